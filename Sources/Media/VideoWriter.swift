// Writes RGB frames to a video file (H.264 via libx264 when FFmpeg has it, else MPEG-4 part 2,
// else MJPEG). The file appears atomically: frames go to a temporary file in the same folder
// that `finish()` renames over the destination, so a failure leaves nothing behind.
import CFFmpeg
import Foundation

/// Encodes `RGBImage`s into a video container chosen by the destination's extension
/// (`.mp4`, `.mkv`, `.mov`, `.avi`).
///
/// Usage: `let w = try VideoWriter(url: out, width: 320, height: 240, fps: 15)`, then
/// `try w.write(image)` per frame and `try w.finish()`. Dropping a writer without `finish()`
/// (or after a failure) removes the temporary file.
public final class VideoWriter {
    /// Which encoder to use.
    public enum Codec: String, Sendable {
        /// libx264 if available, else mpeg4, else mjpeg.
        case auto
        case h264, mpeg4, mjpeg
    }

    public let url: URL
    public let width: Int
    public let height: Int
    public let fps: Int
    /// The FFmpeg encoder in use ("libx264", "mpeg4" or "mjpeg").
    public let encoderName: String
    /// Frames written so far.
    public private(set) var frameCount = 0

    private let name: String
    private let temp: URL
    private let output: VideoOutput
    private let codec: OwnedCodecContext
    private let stream: UnsafeMutablePointer<AVStream>
    private let frame: OwnedFrame
    private let packet: OwnedPacket
    private let scaler = VideoScaler()
    private var done = false

    /// Opens the encoder and the temporary output file and writes the container header.
    /// - Parameters:
    ///   - url: destination file URL; its folder must exist; the extension picks the container.
    ///   - width: frame width (even, 16…8192; 4:2:0 chroma needs even sizes).
    ///   - height: frame height (even, 16…8192).
    ///   - fps: frames per second (1…240).
    ///   - codec: the encoder (default `.auto`).
    ///   - quality: libx264 CRF / mpeg4 and mjpeg qscale; nil uses 18 (x264) or 3 (others).
    /// - Throws: `MediaError` naming the file: bad sizes, unknown container, no encoder, cannot
    ///   create the file.
    public init(url: URL, width: Int, height: Int, fps: Int = 15, codec: Codec = .auto, quality: Int? = nil) throws {
        _ = ffmpegVideoSetup
        let name = ImageIO.displayName(url)
        guard (16...8192).contains(width), (16...8192).contains(height), width % 2 == 0, height % 2 == 0 else {
            throw MediaError(.invalidArgument, path: name, "video size \(width)×\(height) must be even and within 16…8192")
        }
        guard (1...240).contains(fps) else {
            throw MediaError(.invalidArgument, path: name, "fps \(fps) must be within 1…240")
        }
        guard let format = av_guess_format(nil, url.lastPathComponent, nil) else {
            throw MediaError(.invalidArgument, path: name, "cannot choose a container for extension '.\(url.pathExtension)' (use .mp4, .mkv, .mov or .avi)")
        }
        let candidates: [String]
        switch codec {
        case .auto: candidates = ["libx264", "mpeg4", "mjpeg"]
        case .h264: candidates = ["libx264"]
        case .mpeg4: candidates = ["mpeg4"]
        case .mjpeg: candidates = ["mjpeg"]
        }
        guard let encoder = candidates.lazy.compactMap({ avcodec_find_encoder_by_name($0) }).first else {
            throw MediaError(.unsupported, path: name, "cannot encode video (FFmpeg has no \(candidates.joined(separator: "/")) encoder)")
        }
        let encoderName = String(cString: encoder.pointee.name)
        self.url = url
        self.name = name
        self.width = width
        self.height = height
        self.fps = fps
        self.encoderName = encoderName
        self.temp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.deletingPathExtension().lastPathComponent).tmp-\(getpid())-\(UUID().uuidString).\(url.pathExtension)")

        output = try VideoOutput(format: format, path: temp.path, name: name)
        self.codec = try OwnedCodecContext(codec: encoder, name: name)
        let c = self.codec.pointer
        let isMJPEG = encoderName == "mjpeg"
        c.pointee.width = Int32(width)
        c.pointee.height = Int32(height)
        c.pointee.time_base = AVRational(num: 1, den: Int32(fps))
        c.pointee.framerate = AVRational(num: Int32(fps), den: 1)
        c.pointee.gop_size = Int32(fps)   // a keyframe every second
        c.pointee.pix_fmt = isMJPEG ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_YUV420P
        c.pointee.color_range = isMJPEG ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG
        c.pointee.colorspace = AVCOL_SPC_SMPTE170M   // BT.601, what swscale converts RGB with
        c.pointee.color_primaries = AVCOL_PRI_SMPTE170M
        c.pointee.color_trc = AVCOL_TRC_SMPTE170M
        c.pointee.thread_count = 1
        if format.pointee.flags & AVFMT_GLOBALHEADER != 0 {
            c.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER
        }
        var encoderOptions: OpaquePointer? = nil
        if encoderName == "libx264" {
            av_dict_set(&encoderOptions, "preset", "veryfast", 0)
            av_dict_set(&encoderOptions, "crf", String(quality ?? 18), 0)
        } else {
            c.pointee.flags |= AV_CODEC_FLAG_QSCALE
            c.pointee.global_quality = Int32(quality ?? 3) * FF_QP2LAMBDA
        }
        var rc = avcodec_open2(c, encoder, &encoderOptions)
        av_dict_free(&encoderOptions)
        guard rc >= 0 else { throw MediaError.ffmpeg(.encode, path: name, "cannot open \(encoderName) encoder", code: rc) }

        guard let st = avformat_new_stream(output.pointer, nil) else {
            throw MediaError(.encode, path: name, "cannot add a video stream (out of memory)")
        }
        stream = st
        st.pointee.time_base = c.pointee.time_base
        st.pointee.avg_frame_rate = c.pointee.framerate
        rc = avcodec_parameters_from_context(st.pointee.codecpar, c)
        guard rc >= 0 else { throw MediaError.ffmpeg(.encode, path: name, "cannot set stream parameters", code: rc) }

        frame = try OwnedFrame(name: name)
        frame.pointer.pointee.format = c.pointee.pix_fmt.rawValue
        frame.pointer.pointee.width = Int32(width)
        frame.pointer.pointee.height = Int32(height)
        rc = av_frame_get_buffer(frame.pointer, 0)
        guard rc >= 0 else { throw MediaError.ffmpeg(.encode, path: name, "cannot allocate a frame", code: rc) }
        packet = try OwnedPacket(name: name)

        try output.open(name: name, faststart: ["mp4", "mov"].contains(url.pathExtension.lowercased()))
    }

    /// Encodes one frame (its pts is the frame count / fps).
    /// - Parameter image: an RGB image of the writer's size.
    /// - Throws: `MediaError` naming the file on a size mismatch or an encoding/write failure.
    public func write(_ image: RGBImage) throws {
        guard !done else { throw MediaError(.invalidArgument, path: name, "cannot write a frame after finish()") }
        try image.validate(path: name)
        guard image.width == width, image.height == height else {
            throw MediaError(.invalidArgument, path: name, "frame \(frameCount) is \(image.width)×\(image.height), expected \(width)×\(height)")
        }
        var rc = av_frame_make_writable(frame.pointer)
        guard rc >= 0 else { throw MediaError.ffmpeg(.encode, path: name, "cannot reuse the frame buffer", code: rc) }
        try scaler.fill(frame.pointer, from: image, name: name)
        frame.pointer.pointee.pts = Int64(frameCount)
        rc = avcodec_send_frame(codec.pointer, frame.pointer)
        guard rc >= 0 else { throw MediaError.ffmpeg(.encode, path: name, "cannot encode frame \(frameCount)", code: rc) }
        frameCount += 1
        try drain()
    }

    /// Flushes the encoder, writes the trailer and renames the temporary file over `url`.
    /// - Throws: `MediaError` naming the file; the temporary file is removed on failure.
    public func finish() throws {
        guard !done else { return }
        done = true
        do {
            guard frameCount > 0 else { throw MediaError(.invalidArgument, path: name, "cannot write a video with no frames") }
            let rc = avcodec_send_frame(codec.pointer, nil)
            guard rc >= 0 || rc == atp_averror_eof() else {
                throw MediaError.ffmpeg(.encode, path: name, "cannot flush the encoder", code: rc)
            }
            try drain()
            try output.finish(name: name)
            if rename(temp.path, url.path) != 0 {
                throw MediaError(.io, path: name, "cannot write video (rename failed: \(String(cString: strerror(errno))))")
            }
        } catch {
            output.abandon()
            try? FileManager.default.removeItem(at: temp)
            throw error
        }
    }

    /// Stops without producing a file (the temporary file is removed).
    public func cancel() {
        guard !done else { return }
        done = true
        output.abandon()
        try? FileManager.default.removeItem(at: temp)
    }

    deinit { cancel() }

    /// Moves every packet the encoder has ready into the muxer.
    private func drain() throws {
        let eagain = atp_averror_eagain(), eof = atp_averror_eof()
        while true {
            let r = avcodec_receive_packet(codec.pointer, packet.pointer)
            if r == eagain || r == eof { return }
            guard r >= 0 else { throw MediaError.ffmpeg(.encode, path: name, "cannot encode video", code: r) }
            av_packet_rescale_ts(packet.pointer, codec.pointer.pointee.time_base, stream.pointee.time_base)
            packet.pointer.pointee.stream_index = stream.pointee.index
            let w = av_interleaved_write_frame(output.pointer, packet.pointer)   // takes the packet's reference
            av_packet_unref(packet.pointer)
            guard w >= 0 else { throw MediaError.ffmpeg(.io, path: name, "cannot write video", code: w) }
        }
    }
}

/// An output `AVFormatContext` and its file, closed and freed on deinit.
final class VideoOutput {
    let pointer: UnsafeMutablePointer<AVFormatContext>
    private var headerWritten = false
    private var fileOpen = false

    init(format: UnsafePointer<AVOutputFormat>, path: String, name: String) throws {
        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        let rc = avformat_alloc_output_context2(&ctx, format, nil, path)
        guard rc >= 0, let ctx else { throw MediaError.ffmpeg(.encode, path: name, "cannot create the container", code: rc) }
        pointer = ctx
    }

    /// Opens the file and writes the header.
    func open(name: String, faststart: Bool) throws {
        if pointer.pointee.oformat.pointee.flags & AVFMT_NOFILE == 0 {
            let rc = avio_open(&pointer.pointee.pb, pointer.pointee.url, AVIO_FLAG_WRITE)
            guard rc >= 0 else { throw MediaError.ffmpeg(.io, path: name, "cannot create video file", code: rc) }
            fileOpen = true
        }
        var options: OpaquePointer? = nil
        // The index goes to the front so the file plays (and survives truncation) while streamed.
        if faststart { av_dict_set(&options, "movflags", "+faststart", 0) }
        let rc = avformat_write_header(pointer, &options)
        av_dict_free(&options)
        guard rc >= 0 else { throw MediaError.ffmpeg(.encode, path: name, "cannot write the container header", code: rc) }
        headerWritten = true
    }

    /// Writes the trailer and closes the file.
    func finish(name: String) throws {
        let rc = av_write_trailer(pointer)
        headerWritten = false
        guard rc >= 0 else { throw MediaError.ffmpeg(.io, path: name, "cannot write the container trailer", code: rc) }
        if fileOpen {
            let c = avio_closep(&pointer.pointee.pb)
            fileOpen = false
            guard c >= 0 else { throw MediaError.ffmpeg(.io, path: name, "cannot close video file", code: c) }
        }
    }

    /// Closes the file without a trailer.
    func abandon() {
        if fileOpen {
            avio_closep(&pointer.pointee.pb)
            fileOpen = false
        }
    }

    deinit {
        abandon()
        avformat_free_context(pointer)
    }
}
