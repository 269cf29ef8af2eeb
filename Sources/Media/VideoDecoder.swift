// Owners of the FFmpeg objects behind video sources and the writer, the scaler to RGB24, and one
// decode session (an opened input + its video decoder).
//
// Every FFmpeg object is owned by a final class whose throwing init checks the allocation and
// whose deinit frees it; each packet is unreferenced after use and each frame after conversion.
import CFFmpeg
import Foundation

/// FFmpeg's log output is switched off once (errors are returned as `MediaError` text) and the
/// capture devices are registered once.
let ffmpegVideoSetup: Void = {
    av_log_set_level(AV_LOG_QUIET)
    avdevice_register_all()
    avformat_network_init()
}()

/// An opened input (`AVFormatContext`), closed on deinit.
final class VideoInput {
    let pointer: UnsafeMutablePointer<AVFormatContext>

    /// Opens `url` with the watchdog installed as the interrupt callback, then probes streams.
    /// - Parameters:
    ///   - format: a forced input format (e.g. video4linux2), nil to guess.
    ///   - options: demuxer/protocol options (`rtsp_transport`, `timeout`, …).
    ///   - failure: the message prefix for errors ("cannot open video", "cannot open camera").
    init(url: String, format: UnsafePointer<AVInputFormat>?, options: [(String, String)],
         watchdog: StallWatchdog, name: String, failure: String) throws {
        var ctx: UnsafeMutablePointer<AVFormatContext>? = avformat_alloc_context()
        guard let allocated = ctx else {
            throw MediaError(.decode, path: name, "\(failure) (out of memory)")
        }
        watchdog.install(on: allocated)
        var dict: OpaquePointer? = nil
        for (k, v) in options { av_dict_set(&dict, k, v, 0) }
        let rc = avformat_open_input(&ctx, url, format, &dict)   // frees ctx on failure
        av_dict_free(&dict)
        guard rc >= 0, let opened = ctx else {
            throw MediaError(.decode, path: name, "\(failure) (\(VideoInput.reason(rc, watchdog)))")
        }
        pointer = opened
        let info = avformat_find_stream_info(opened, nil)
        guard info >= 0 else {
            throw MediaError(.decode, path: name, "\(failure): cannot read stream info (\(VideoInput.reason(info, watchdog)))")
        }
    }

    /// FFmpeg's text, or "timed out" when the watchdog aborted the call.
    static func reason(_ code: Int32, _ watchdog: StallWatchdog) -> String {
        // Demuxers do not always pass AVERROR_EXIT through (RTSP reports a reply it could not
        // read as invalid data), so a fired deadline decides.
        if watchdog.fired { return "timed out" }
        if code == atp_averror_exit() && watchdog.isClosed { return "closed" }
        return MediaError.ffmpegMessage(code)
    }

    deinit {
        var ctx: UnsafeMutablePointer<AVFormatContext>? = pointer
        avformat_close_input(&ctx)
    }
}

/// swscale's resize of RGB images, as video frames get it (bilinear, widened when shrinking):
/// the fast path that `atp eval --scaler swscale` measures against the PIL-exact processor.
public enum SwscaleResize {
    /// `image` resized to `size` (unchanged when the size already matches).
    /// - Throws: `MediaError` when swscale refuses the geometry.
    public static func resize(_ image: RGBImage, to size: FrameSize) throws -> RGBImage {
        try VideoScaler().resize(image, to: size, name: "image")
    }
}

/// A converter between pixel formats and sizes (`SwsContext`), rebuilt when the geometry
/// changes and freed on deinit.
final class VideoScaler {
    private var context: OpaquePointer? = nil
    private var key: [Int32] = []

    /// Bilinear (swscale widens the filter when shrinking), accurate rounding, full chroma.
    static let flags = SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP

    /// Returns a context for the conversion, reusing the cached one when nothing changed.
    /// `srcFullRange`/`colorspace` describe YUV input; YUV output is BT.601 limited range.
    private func prepare(srcW: Int32, srcH: Int32, src: AVPixelFormat, dstW: Int32, dstH: Int32, dst: AVPixelFormat,
                         srcFullRange: Bool, colorspace: AVColorSpace, name: String) throws -> OpaquePointer {
        let k: [Int32] = [srcW, srcH, src.rawValue, dstW, dstH, dst.rawValue, srcFullRange ? 1 : 0, Int32(colorspace.rawValue)]
        if let context, k == key { return context }
        sws_freeContext(context)
        context = nil
        guard let ctx = sws_getContext(srcW, srcH, src, dstW, dstH, dst, Self.flags, nil, nil, nil) else {
            let srcName = av_get_pix_fmt_name(src).map { String(cString: $0) } ?? "\(src.rawValue)"
            let dstName = av_get_pix_fmt_name(dst).map { String(cString: $0) } ?? "\(dst.rawValue)"
            throw MediaError(.unsupported, path: name, "cannot convert \(srcName) \(srcW)×\(srcH) to \(dstName) \(dstW)×\(dstH)")
        }
        var invTable: UnsafeMutablePointer<Int32>? = nil, table: UnsafeMutablePointer<Int32>? = nil
        var sr: Int32 = 0, dr: Int32 = 0, brightness: Int32 = 0, contrast: Int32 = 0, saturation: Int32 = 0
        if sws_getColorspaceDetails(ctx, &invTable, &sr, &table, &dr, &brightness, &contrast, &saturation) >= 0 {
            var coefficients = invTable
            if colorspace != AVCOL_SPC_UNSPECIFIED && colorspace != AVCOL_SPC_RGB,
               let c = sws_getCoefficients(Int32(colorspace.rawValue)) {
                coefficients = UnsafeMutablePointer(mutating: c)
            }
            // RGB and the JPEG ("yuvj") formats are full range; other YUV output is limited range.
            let dstFull = dst == AV_PIX_FMT_RGB24 || dst == AV_PIX_FMT_YUVJ420P || dst == AV_PIX_FMT_YUVJ422P
                || dst == AV_PIX_FMT_YUVJ444P
            _ = sws_setColorspaceDetails(ctx, coefficients, srcFullRange || sr != 0 ? 1 : 0,
                                         table, dstFull ? 1 : 0, brightness, contrast, saturation)
        }
        context = ctx
        key = k
        return ctx
    }

    /// Converts a decoded frame to an RGB24 image of `size` (nil: the frame's size).
    func rgb(from frame: UnsafeMutablePointer<AVFrame>, size: FrameSize?, name: String) throws -> RGBImage {
        let w = frame.pointee.width, h = frame.pointee.height
        guard w > 0, h > 0 else {
            throw MediaError(.decode, path: name, "decoded frame has size \(w)×\(h)")
        }
        let src = AVPixelFormat(rawValue: frame.pointee.format)
        let desc = av_pix_fmt_desc_get(src)
        let isRGB = desc.map { $0.pointee.flags & UInt64(AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL) != 0 } ?? false
        let isGrey = desc.map { $0.pointee.nb_components <= 2 } ?? false
        let full = isRGB || isGrey || frame.pointee.color_range == AVCOL_RANGE_JPEG
        let dstW = Int32(size?.width ?? Int(w)), dstH = Int32(size?.height ?? Int(h))
        let ctx = try prepare(srcW: w, srcH: h, src: src, dstW: dstW, dstH: dstH, dst: AV_PIX_FMT_RGB24,
                              srcFullRange: full, colorspace: frame.pointee.colorspace, name: name)
        var pixels = [UInt8](repeating: 0, count: Int(dstW) * Int(dstH) * 3)
        let rc = pixels.withUnsafeMutableBufferPointer { buf -> Int32 in
            var dstData: [UnsafeMutablePointer<UInt8>?] = [buf.baseAddress, nil, nil, nil]
            var dstLines: [Int32] = [dstW * 3, 0, 0, 0]
            return withUnsafePointer(to: &frame.pointee.data) { sd in
                withUnsafePointer(to: &frame.pointee.linesize) { sl in
                    sd.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { srcData in
                        sl.withMemoryRebound(to: Int32.self, capacity: 8) { srcLines in
                            sws_scale(ctx, srcData, srcLines, 0, h, &dstData, &dstLines)
                        }
                    }
                }
            }
        }
        guard rc == dstH else {
            throw MediaError.ffmpeg(.decode, path: name, "cannot convert frame to RGB", code: rc < 0 ? rc : atp_averror_invaliddata())
        }
        return RGBImage(width: Int(dstW), height: Int(dstH), pixels: pixels)
    }

    /// Resizes an RGB24 image (returns it unchanged when the size already matches).
    func resize(_ image: RGBImage, to size: FrameSize, name: String) throws -> RGBImage {
        if image.width == size.width && image.height == size.height { return image }
        let ctx = try prepare(srcW: Int32(image.width), srcH: Int32(image.height), src: AV_PIX_FMT_RGB24,
                              dstW: Int32(size.width), dstH: Int32(size.height), dst: AV_PIX_FMT_RGB24,
                              srcFullRange: true, colorspace: AVCOL_SPC_RGB, name: name)
        var out = [UInt8](repeating: 0, count: size.width * size.height * 3)
        let rc = image.pixels.withUnsafeBufferPointer { src -> Int32 in
            out.withUnsafeMutableBufferPointer { dst -> Int32 in
                let srcData: [UnsafePointer<UInt8>?] = [src.baseAddress, nil, nil, nil]
                let srcLines: [Int32] = [Int32(image.width * 3), 0, 0, 0]
                let dstData: [UnsafeMutablePointer<UInt8>?] = [dst.baseAddress, nil, nil, nil]
                let dstLines: [Int32] = [Int32(size.width * 3), 0, 0, 0]
                return sws_scale(ctx, srcData, srcLines, 0, Int32(image.height), dstData, dstLines)
            }
        }
        guard rc == Int32(size.height) else {
            throw MediaError.ffmpeg(.decode, path: name, "cannot resize frame", code: rc < 0 ? rc : atp_averror_invaliddata())
        }
        return RGBImage(width: size.width, height: size.height, pixels: out)
    }

    /// Converts an RGB24 image into `frame`'s buffers (already allocated in the frame's format
    /// and size, e.g. YUV420P for an encoder).
    func fill(_ frame: UnsafeMutablePointer<AVFrame>, from image: RGBImage, name: String) throws {
        let dst = AVPixelFormat(rawValue: frame.pointee.format)
        let ctx = try prepare(srcW: Int32(image.width), srcH: Int32(image.height), src: AV_PIX_FMT_RGB24,
                              dstW: frame.pointee.width, dstH: frame.pointee.height, dst: dst,
                              srcFullRange: true, colorspace: AVCOL_SPC_RGB, name: name)
        let rc = image.pixels.withUnsafeBufferPointer { src -> Int32 in
            let srcData: [UnsafePointer<UInt8>?] = [src.baseAddress, nil, nil, nil]
            let srcLines: [Int32] = [Int32(image.width * 3), 0, 0, 0]
            return withUnsafePointer(to: &frame.pointee.data) { dd in
                withUnsafePointer(to: &frame.pointee.linesize) { dl in
                    dd.withMemoryRebound(to: UnsafeMutablePointer<UInt8>?.self, capacity: 8) { dstData in
                        dl.withMemoryRebound(to: Int32.self, capacity: 8) { dstLines in
                            sws_scale(ctx, srcData, srcLines, 0, Int32(image.height), dstData, dstLines)
                        }
                    }
                }
            }
        }
        guard rc >= 0 else {
            throw MediaError.ffmpeg(.encode, path: name, "cannot convert RGB frame for encoding", code: rc)
        }
    }

    deinit { sws_freeContext(context) }
}

/// One opened input and its video decoder; a source holds one per connection (a file loop or a
/// reconnect opens a new one).
final class DecodeSession {
    let input: VideoInput
    let codec: OwnedCodecContext
    let streamIndex: Int32
    /// Seconds per pts tick of the video stream.
    let timeBase: Double
    /// Nominal frames per second (avg_frame_rate, else r_frame_rate), nil when unknown.
    let frameRate: Double?
    private let packet: OwnedPacket
    /// Holds the last decoded frame between `decodeNext()` and `unrefFrame()`.
    let frame: OwnedFrame
    private var draining = false
    /// Nanoseconds spent inside `av_read_frame` since the session opened (for a live stream mostly
    /// waiting for packets to arrive, which is not decode work).
    private(set) var readNanos: UInt64 = 0

    /// Result of one decode step.
    enum Step {
        /// `frame` holds a decoded picture (call `unrefFrame()` after converting it).
        case frame
        /// The input ended and the decoder is drained.
        case end
        /// Reading failed with this FFmpeg code (a stall abort is `AVERROR_EXIT`).
        case failed(Int32)
    }

    /// Opens `url`, finds the best video stream and opens its decoder.
    init(url: String, format: UnsafePointer<AVInputFormat>?, options: [(String, String)], threads: Int,
         lowDelay: Bool, watchdog: StallWatchdog, name: String, failure: String) throws {
        input = try VideoInput(url: url, format: format, options: options, watchdog: watchdog, name: name, failure: failure)
        var decoder: UnsafePointer<AVCodec>? = nil
        let index = av_find_best_stream(input.pointer, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0)
        guard index >= 0, let decoder else {
            throw MediaError.ffmpeg(.decode, path: name, "\(failure): no decodable video stream", code: index)
        }
        guard let stream = input.pointer.pointee.streams[Int(index)], let params = stream.pointee.codecpar else {
            throw MediaError(.decode, path: name, "\(failure): video stream \(index) has no parameters")
        }
        // Only the video stream is demuxed; audio and data packets are discarded early.
        for i in 0..<Int(input.pointer.pointee.nb_streams) where i != Int(index) {
            input.pointer.pointee.streams[i]?.pointee.discard = AVDISCARD_ALL
        }
        codec = try OwnedCodecContext(codec: decoder, name: name)
        var rc = avcodec_parameters_to_context(codec.pointer, params)
        guard rc >= 0 else { throw MediaError.ffmpeg(.decode, path: name, "\(failure): bad codec parameters", code: rc) }
        codec.pointer.pointee.thread_count = Int32(threads)
        // Frame threading adds one frame of latency per thread: live streams use slices only.
        codec.pointer.pointee.thread_type = lowDelay ? FF_THREAD_SLICE : (FF_THREAD_FRAME | FF_THREAD_SLICE)
        if lowDelay { codec.pointer.pointee.flags |= AV_CODEC_FLAG_LOW_DELAY }
        codec.pointer.pointee.pkt_timebase = stream.pointee.time_base
        rc = avcodec_open2(codec.pointer, decoder, nil)
        guard rc >= 0 else {
            throw MediaError.ffmpeg(.decode, path: name, "\(failure): cannot open \(String(cString: decoder.pointee.name)) decoder", code: rc)
        }
        streamIndex = index
        let tb = stream.pointee.time_base
        timeBase = tb.den != 0 ? Double(tb.num) / Double(tb.den) : 1.0 / 90000
        func rate(_ r: AVRational) -> Double? { r.num > 0 && r.den > 0 ? Double(r.num) / Double(r.den) : nil }
        frameRate = rate(stream.pointee.avg_frame_rate) ?? rate(stream.pointee.r_frame_rate)
        packet = try OwnedPacket(name: name)
        frame = try OwnedFrame(name: name)
    }

    /// Decodes until a frame is available, the input ends, or a read fails.
    /// - Parameters:
    ///   - beforeRead: called before each blocking `av_read_frame` (arms the watchdog).
    ///   - onCorrupt: called for each packet or frame the decoder rejected (it is skipped).
    func decodeNext(beforeRead: () -> Void, onCorrupt: () -> Void) -> Step {
        let eagain = atp_averror_eagain(), eof = atp_averror_eof()
        var receiveErrors = 0
        while true {
            let r = avcodec_receive_frame(codec.pointer, frame.pointer)
            if r == 0 { return .frame }
            if r == eof { return .end }
            if r != eagain {
                // A decode error surfaced on output: count it, and stop asking after a few in a row.
                onCorrupt()
                receiveErrors += 1
                if receiveErrors < 4 { continue }
                if draining { return .end }
            }
            if draining { return .end }
            receiveErrors = 0
            beforeRead()
            let readStart = DispatchTime.now().uptimeNanoseconds
            let rc = av_read_frame(input.pointer, packet.pointer)
            readNanos &+= DispatchTime.now().uptimeNanoseconds &- readStart
            if rc == eof {
                draining = true
                _ = avcodec_send_packet(codec.pointer, nil)
                continue
            }
            if rc < 0 { return .failed(rc) }
            if packet.pointer.pointee.stream_index == streamIndex {
                let sent = avcodec_send_packet(codec.pointer, packet.pointer)
                if sent < 0 && sent != eagain && sent != eof { onCorrupt() }
            }
            av_packet_unref(packet.pointer)
        }
    }

    /// Stream time of the frame in `frame`, in ticks (best effort), or nil.
    var framePtsTicks: Int64? {
        let f = frame.pointer.pointee
        let nopts = atp_av_nopts_value()
        if f.best_effort_timestamp != nopts { return f.best_effort_timestamp }
        if f.pts != nopts { return f.pts }
        return nil
    }

    func unrefFrame() { av_frame_unref(frame.pointer) }
}
