// Still-image read/write through FFmpeg (libavformat image demuxers + libavcodec + libswscale).
//
// Every FFmpeg object is owned by a final class below whose throwing init checks the allocation
// and whose deinit frees it; packets and frames are unreferenced after each use.
import CFFmpeg
import Foundation

/// FFmpeg logs to stderr by default; the errors it would print are returned as `MediaError`
/// text instead, so its own logging is switched off (once, on first use of `ImageIO`).
private let ffmpegLogsSilenced: Void = {
    av_log_set_level(AV_LOG_QUIET)
}()

/// Reads still images of any format FFmpeg decodes and writes PNG.
public enum ImageIO {
    /// Decodes the first frame of a still image (PNG, JPEG, BMP, PPM, TIFF, WebP, …) to RGB24.
    ///
    /// Grey, palette, 16-bit and YUV images are converted with swscale (accurate rounding,
    /// bit-exact mode, full-range output; 8-bit RGB input is copied as is). Images with alpha are
    /// composited onto white exactly as transformers' `convert_to_rgb` does with Pillow's
    /// `alpha_composite`, so a processor sees the same RGB as the Python reference.
    /// - Parameter url: a file URL.
    /// - Returns: the image.
    /// - Throws: `MediaError` naming the file: missing, unreadable, empty, or not decodable
    ///   (with FFmpeg's reason).
    public static func read(_ url: URL) throws -> RGBImage {
        _ = ffmpegLogsSilenced
        let name = displayName(url)
        try checkReadable(url, name: name)

        let input = try ImageFormatInput(path: url.path, name: name)
        var decoder: UnsafePointer<AVCodec>? = nil
        let stream = av_find_best_stream(input.pointer, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0)
        guard stream >= 0, let decoder else {
            throw MediaError.ffmpeg(.decode, path: name, "cannot decode image: no image stream", code: stream)
        }
        guard let params = input.pointer.pointee.streams[Int(stream)]?.pointee.codecpar else {
            throw MediaError(.decode, path: name, "cannot decode image: stream \(stream) has no parameters")
        }
        let codec = try OwnedCodecContext(codec: decoder, name: name)
        var rc = avcodec_parameters_to_context(codec.pointer, params)
        guard rc >= 0 else { throw MediaError.ffmpeg(.decode, path: name, "cannot decode image", code: rc) }
        // Abort on damaged data (e.g. a truncated file) instead of concealing it.
        codec.pointer.pointee.err_recognition |= AV_EF_EXPLODE
        codec.pointer.pointee.thread_count = 1
        rc = avcodec_open2(codec.pointer, decoder, nil)
        guard rc >= 0 else {
            throw MediaError.ffmpeg(.decode, path: name, "cannot open \(String(cString: decoder.pointee.name)) decoder", code: rc)
        }

        let packet = try OwnedPacket(name: name)
        let frame = try OwnedFrame(name: name)
        let decoded = try decodeFirstFrame(input: input, stream: stream, codec: codec, packet: packet, frame: frame, name: name)
        guard decoded else {
            throw MediaError.ffmpeg(.decode, path: name, "cannot decode image", code: atp_averror_invaliddata())
        }
        defer { av_frame_unref(frame.pointer) }
        return try convertToRGB(frame.pointer, name: name)
    }

    /// Encodes an image as PNG (FFmpeg's png encoder, RGB24) and writes it atomically: the bytes
    /// go to a temporary file in the same folder that is then renamed over `url`, so a failure
    /// leaves neither a half-written file nor a temporary one.
    /// - Parameters:
    ///   - image: the image (sizes and byte count must agree).
    ///   - url: the destination file URL; its folder must exist.
    /// - Throws: `MediaError` naming the file when the image is invalid, encoding fails or the
    ///   file cannot be written.
    public static func writePNG(_ image: RGBImage, to url: URL) throws {
        _ = ffmpegLogsSilenced
        let name = displayName(url)
        try image.validate(path: name)
        let png = try encodePNG(image, name: name)

        let folder = url.deletingLastPathComponent()
        let temp = folder.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UUID().uuidString)")
        do {
            try png.write(to: temp)
        } catch {
            try? FileManager.default.removeItem(at: temp)
            throw MediaError(.io, path: name, "cannot write PNG (\(reason(error)))")
        }
        if rename(temp.path, url.path) != 0 {
            let err = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temp)
            throw MediaError(.io, path: name, "cannot write PNG (rename failed: \(err))")
        }
    }

    // MARK: - helpers

    /// The path as the caller spelled it (relative paths stay relative).
    static func displayName(_ url: URL) -> String {
        url.isFileURL ? url.relativePath : url.absoluteString
    }

    private static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }

    private static func checkReadable(_ url: URL, name: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw MediaError(.notFound, path: name, "cannot read image (no such file)")
        }
        guard !isDir.boolValue else {
            throw MediaError(.unreadable, path: name, "cannot read image (is a directory)")
        }
        guard FileManager.default.isReadableFile(atPath: url.path) else {
            throw MediaError(.unreadable, path: name, "cannot read image (permission denied)")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)??.intValue
        if size == 0 {
            throw MediaError(.unreadable, path: name, "cannot decode image (empty file)")
        }
    }

    /// Feeds packets of `stream` to the decoder until it returns a frame (then `true`) or the
    /// input ends without one (`false`).
    private static func decodeFirstFrame(
        input: ImageFormatInput, stream: Int32, codec: OwnedCodecContext, packet: OwnedPacket, frame: OwnedFrame, name: String
    ) throws -> Bool {
        let eagain = atp_averror_eagain(), eof = atp_averror_eof()
        // Returns true when a frame came out; throws on decoder errors.
        func receive() throws -> Bool {
            let rc = avcodec_receive_frame(codec.pointer, frame.pointer)
            if rc == 0 { return true }
            if rc == eagain || rc == eof { return false }
            throw MediaError.ffmpeg(.decode, path: name, "cannot decode image", code: rc)
        }
        while true {
            let rc = av_read_frame(input.pointer, packet.pointer)
            if rc == eof { break }
            if rc < 0 { throw MediaError.ffmpeg(.decode, path: name, "cannot read image data", code: rc) }
            defer { av_packet_unref(packet.pointer) }
            guard packet.pointer.pointee.stream_index == stream else { continue }
            let sent = avcodec_send_packet(codec.pointer, packet.pointer)
            if sent < 0 && sent != eagain {
                throw MediaError.ffmpeg(.decode, path: name, "cannot decode image", code: sent)
            }
            if try receive() { return true }
        }
        // Drain: a decoder may hold the frame until it is told the input ended.
        let sent = avcodec_send_packet(codec.pointer, nil)
        if sent < 0 && sent != eof {
            throw MediaError.ffmpeg(.decode, path: name, "cannot decode image", code: sent)
        }
        return try receive()
    }

    /// Converts a decoded frame to RGB24, compositing alpha onto white.
    private static func convertToRGB(_ frame: UnsafeMutablePointer<AVFrame>, name: String) throws -> RGBImage {
        let width = Int(frame.pointee.width), height = Int(frame.pointee.height)
        guard width > 0, height > 0 else {
            throw MediaError(.decode, path: name, "cannot decode image (decoded size \(width)×\(height))")
        }
        let srcFormat = AVPixelFormat(rawValue: frame.pointee.format)
        guard let desc = av_pix_fmt_desc_get(srcFormat) else {
            throw MediaError(.unsupported, path: name, "cannot convert image (unknown pixel format \(frame.pointee.format))")
        }
        let hasAlpha = desc.pointee.flags & UInt64(AV_PIX_FMT_FLAG_ALPHA) != 0
        let dstFormat = hasAlpha ? AV_PIX_FMT_RGBA : AV_PIX_FMT_RGB24
        let channels = hasAlpha ? 4 : 3
        var packed = [UInt8](repeating: 0, count: width * height * channels)

        if srcFormat == dstFormat {
            // Already packed 8-bit RGB(A): copy the rows, dropping the line padding.
            guard let data = frame.pointee.data.0 else {
                throw MediaError(.decode, path: name, "cannot decode image (frame has no data)")
            }
            let linesize = Int(frame.pointee.linesize.0)
            packed.withUnsafeMutableBytes { dst in
                for y in 0..<height {
                    memcpy(dst.baseAddress! + y * width * channels, data + y * linesize, width * channels)
                }
            }
        } else {
            let scaler = try ImageScaler(width: width, height: height, from: srcFormat, to: dstFormat, name: name)
            scaler.setRanges(frame: frame, source: desc)
            let rc = packed.withUnsafeMutableBufferPointer { buf -> Int32 in
                var dstData: [UnsafeMutablePointer<UInt8>?] = [buf.baseAddress, nil, nil, nil]
                var dstLines: [Int32] = [Int32(width * channels), 0, 0, 0]
                return withUnsafePointer(to: &frame.pointee.data) { srcData in
                    withUnsafePointer(to: &frame.pointee.linesize) { srcLines in
                        srcData.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { sd in
                            srcLines.withMemoryRebound(to: Int32.self, capacity: 8) { sl in
                                sws_scale(scaler.pointer, sd, sl, 0, Int32(height), &dstData, &dstLines)
                            }
                        }
                    }
                }
            }
            guard rc == Int32(height) else {
                throw MediaError.ffmpeg(.decode, path: name, "cannot convert image to RGB", code: rc < 0 ? rc : atp_averror_invaliddata())
            }
        }
        guard hasAlpha else { return RGBImage(width: width, height: height, pixels: packed) }
        return RGBImage(width: width, height: height, pixels: compositeOnWhite(rgba: packed))
    }

    /// Pillow's `alpha_composite(white, image)` then `convert("RGB")`, which is what
    /// transformers' `convert_to_rgb` does to an image with alpha: integer maths with 7 extra
    /// bits, `out = ((t >> 8) + t) >> 8 >> 7` where `t = c·a·128 + 255·(255 − a)·128 + (128 << 7)`.
    static func compositeOnWhite(rgba: [UInt8]) -> [UInt8] {
        let n = rgba.count / 4
        var rgb = [UInt8](repeating: 0, count: n * 3)
        for i in 0..<n {
            let a = UInt32(rgba[i * 4 + 3])
            for c in 0..<3 {
                let v = UInt32(rgba[i * 4 + c])
                if a == 0 {
                    rgb[i * 3 + c] = 255
                    continue
                }
                // Background alpha 255: outa255 = 255·255, so coef1 = a·128 and coef2 = (255 − a)·128.
                let coef1 = a * 128, coef2 = 255 * 128 - coef1
                let t = v * coef1 + 255 * coef2 + (0x80 << 7)
                rgb[i * 3 + c] = UInt8(truncatingIfNeeded: (((t >> 8) + t) >> 8) >> 7)
            }
        }
        return rgb
    }

    private static func encodePNG(_ image: RGBImage, name: String) throws -> Data {
        guard let encoder = avcodec_find_encoder(AV_CODEC_ID_PNG) else {
            throw MediaError(.unsupported, path: name, "cannot encode PNG (FFmpeg has no png encoder)")
        }
        let codec = try OwnedCodecContext(codec: encoder, name: name)
        codec.pointer.pointee.width = Int32(image.width)
        codec.pointer.pointee.height = Int32(image.height)
        codec.pointer.pointee.pix_fmt = AV_PIX_FMT_RGB24
        codec.pointer.pointee.time_base = AVRational(num: 1, den: 1)
        var rc = avcodec_open2(codec.pointer, encoder, nil)
        guard rc >= 0 else { throw MediaError.ffmpeg(.encode, path: name, "cannot open png encoder", code: rc) }

        let frame = try OwnedFrame(name: name)
        frame.pointer.pointee.format = AV_PIX_FMT_RGB24.rawValue
        frame.pointer.pointee.width = Int32(image.width)
        frame.pointer.pointee.height = Int32(image.height)
        rc = av_frame_get_buffer(frame.pointer, 0)
        guard rc >= 0, let plane = frame.pointer.pointee.data.0 else {
            throw MediaError.ffmpeg(.encode, path: name, "cannot allocate frame for PNG", code: rc)
        }
        defer { av_frame_unref(frame.pointer) }
        let linesize = Int(frame.pointer.pointee.linesize.0)
        let rowBytes = image.width * 3
        image.pixels.withUnsafeBytes { src in
            for y in 0..<image.height {
                memcpy(plane + y * linesize, src.baseAddress! + y * rowBytes, rowBytes)
            }
        }
        frame.pointer.pointee.pts = 0

        let packet = try OwnedPacket(name: name)
        var out = Data()
        let eagain = atp_averror_eagain(), eof = atp_averror_eof()
        func drain() throws {
            while true {
                let r = avcodec_receive_packet(codec.pointer, packet.pointer)
                if r == eagain || r == eof { return }
                guard r >= 0 else { throw MediaError.ffmpeg(.encode, path: name, "cannot encode PNG", code: r) }
                if let data = packet.pointer.pointee.data {
                    out.append(data, count: Int(packet.pointer.pointee.size))
                }
                av_packet_unref(packet.pointer)
            }
        }
        rc = avcodec_send_frame(codec.pointer, frame.pointer)
        guard rc >= 0 else { throw MediaError.ffmpeg(.encode, path: name, "cannot encode PNG", code: rc) }
        try drain()
        rc = avcodec_send_frame(codec.pointer, nil)
        guard rc >= 0 || rc == eof else { throw MediaError.ffmpeg(.encode, path: name, "cannot encode PNG", code: rc) }
        try drain()
        guard !out.isEmpty else {
            throw MediaError(.encode, path: name, "cannot encode PNG (encoder produced no data)")
        }
        return out
    }
}

// MARK: - Owners of FFmpeg objects

/// An opened input (`AVFormatContext`), closed on deinit.
final class ImageFormatInput {
    let pointer: UnsafeMutablePointer<AVFormatContext>

    init(path: String, name: String) throws {
        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        var options: OpaquePointer? = nil
        // The image2 demuxer reads file names as printf-style sequences ("img%03d.png") by
        // default; a still-image path is taken literally.
        av_dict_set(&options, "pattern_type", "none", 0)
        let rc = avformat_open_input(&ctx, path, nil, &options)
        av_dict_free(&options)
        guard rc >= 0, let ctx else {
            throw MediaError.ffmpeg(.decode, path: name, "cannot decode image", code: rc)
        }
        pointer = ctx
    }

    deinit {
        var ctx: UnsafeMutablePointer<AVFormatContext>? = pointer
        avformat_close_input(&ctx)
    }
}

/// A same-size pixel-format converter (`SwsContext`), freed on deinit.
final class ImageScaler {
    let pointer: OpaquePointer

    /// Flags: no resampling happens (same size), so the filter only matters for chroma
    /// upsampling; accurate rounding and bit-exact arithmetic make results reproducible.
    static let flags = SWS_BILINEAR | SWS_ACCURATE_RND | SWS_BITEXACT | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP

    init(width: Int, height: Int, from src: AVPixelFormat, to dst: AVPixelFormat, name: String) throws {
        guard let ctx = sws_getContext(Int32(width), Int32(height), src, Int32(width), Int32(height), dst,
                                       Self.flags, nil, nil, nil) else {
            let srcName = av_get_pix_fmt_name(src).map { String(cString: $0) } ?? "\(src.rawValue)"
            throw MediaError(.unsupported, path: name, "cannot convert pixel format \(srcName) to RGB")
        }
        pointer = ctx
    }

    /// Full-range output; full-range input unless the frame is YUV marked (or defaulting to)
    /// limited range. Grey, RGB and palette images are full range by definition.
    func setRanges(frame: UnsafeMutablePointer<AVFrame>, source desc: UnsafePointer<AVPixFmtDescriptor>) {
        var invTable: UnsafeMutablePointer<Int32>? = nil, table: UnsafeMutablePointer<Int32>? = nil
        var srcRange: Int32 = 0, dstRange: Int32 = 0, brightness: Int32 = 0, contrast: Int32 = 0, saturation: Int32 = 0
        guard sws_getColorspaceDetails(pointer, &invTable, &srcRange, &table, &dstRange,
                                       &brightness, &contrast, &saturation) >= 0 else { return }
        let flags = desc.pointee.flags
        let isRGBorPal = flags & UInt64(AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL) != 0
        let isGrey = desc.pointee.nb_components <= 2 && !isRGBorPal
        let fullRange = isRGBorPal || isGrey || frame.pointee.color_range == AVCOL_RANGE_JPEG || srcRange != 0
        var coefficients = invTable
        let space = frame.pointee.colorspace
        if space != AVCOL_SPC_UNSPECIFIED && space != AVCOL_SPC_RGB, let c = sws_getCoefficients(Int32(space.rawValue)) {
            coefficients = UnsafeMutablePointer(mutating: c)
        }
        _ = sws_setColorspaceDetails(pointer, coefficients, fullRange ? 1 : 0, table, 1,
                                     brightness, contrast, saturation)
    }

    deinit {
        sws_freeContext(pointer)
    }
}
