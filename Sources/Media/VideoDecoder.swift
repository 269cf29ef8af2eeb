// Owners of the FFmpeg objects behind video sources and the writer, the scaler to RGB24, one
// decode session (an opened input + its video decoder) with the bookkeeping that keeps damaged
// pictures out, and the damaged copies that tests feed it.
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

/// Decode-order bookkeeping that keeps damaged pictures, and pictures predicted from them, inside
/// the decoder.
///
/// A picture the decoder marks as damaged (`decode_error_flags`, `AV_FRAME_FLAG_CORRUPT`) or a
/// packet it rejects taints every packet after it in decode order up to the next keyframe packet:
/// those pictures may reference the damaged one. Pictures leave a decoder in presentation order,
/// which with B-frames is not decode order (a B-frame leaves before the later picture it is predicted
/// from), so a picture is held until every packet decoded before it has left the decoder or is known
/// lost: only then are all its possible references known. Streams without reordering (cameras,
/// zero-latency encoders) release each picture as it leaves the decoder.
///
/// Pictures are matched to packets by pts (decoders copy the packet's pts to its picture). A picture
/// without one, or with one no packet had, is judged at once: skipped when damaged or while damage is
/// open. Pure bookkeeping: the decode session holds the frames themselves.
struct DamageTracker {
    enum State { case waiting, out, done }
    struct Entry {
        let pts: Int64
        let key: Bool
        var tainted: Bool
        var state: State
    }

    /// Damage that no keyframe packet closes (streams without keyframes, e.g. intra refresh) ends
    /// after this many packets, so the source cannot go dark for good.
    static let maxTaintedPackets = 300
    /// Limits on the bookkeeping when pts do not match up (broken timestamps).
    static let maxEntries = 512, maxHeld = 32
    /// A packet still waiting when one decoded this many packets later has come out is lost: H.264
    /// holds at most 16 pictures for reordering.
    static let lostDistance = 16

    /// Packets in decode order, from the oldest whose picture has not been released; `base` is the
    /// sequence number of `entries[0]`.
    private(set) var entries: [Entry] = []
    private var base = 0
    /// Pictures out of the decoder and not yet released, in output order: their entry's sequence
    /// number, or nil and the verdict for a picture matched to no packet.
    private var held: [(seq: Int?, tainted: Bool)] = []
    /// Damage seen and no keyframe packet sent since: packets sent now are tainted.
    private var tainting = false
    private var taintedSinceKey = 0

    /// Pictures out of the decoder and not yet released.
    var heldCount: Int { held.count }

    /// A packet goes to the decoder.
    mutating func sent(pts: Int64?, key: Bool) {
        if key {
            tainting = false
        } else if tainting {
            taintedSinceKey += 1
            if taintedSinceKey > Self.maxTaintedPackets { tainting = false }
        }
        guard let pts else { return }
        if entries.count >= Self.maxEntries {
            // Nothing has matched for a long time: forget the older half of the waiting packets.
            var forget = entries.count / 2
            for i in entries.indices where forget > 0 && entries[i].state == .waiting {
                entries[i].state = .done
                forget -= 1
            }
            trim()
        }
        entries.append(Entry(pts: pts, key: key, tainted: tainting, state: .waiting))
    }

    /// The decoder rejected the latest packet or failed to produce a picture (a single-threaded
    /// decoder reports a packet's error while it is sent): that packet and the rest up to the next
    /// keyframe are tainted.
    /// - Returns: how many corrupt packets to count now (1 when no pending packet can carry the
    ///   count; otherwise each tainted packet is counted when its picture is skipped or lost).
    mutating func failed() -> Int {
        guard let last = entries.indices.last, entries[last].state != .done else {
            startTaint()
            return 1
        }
        taint(from: last)
        return 0
    }

    /// A picture left the decoder.
    /// - Parameters:
    ///   - pts: its pts in stream ticks, if it has one.
    ///   - damaged: whether the decoder marked it as damaged.
    /// - Returns: how many tainted packets are now known lost (they produced no picture).
    mutating func received(pts: Int64?, damaged: Bool) -> Int {
        var match: Int? = nil
        if let pts { match = entries.firstIndex { $0.state == .waiting && $0.pts == pts } }
        var lost = 0
        if let i = match {
            // Packets that can no longer come out are lost: everything decoded before a keyframe
            // picture (a stream joined mid-GOP, pictures the decoder dropped), and anything decoded
            // more than a reorder buffer before this picture. (Damage can make a decoder put pictures
            // out of pts order, so pts order decides nothing.)
            let lastLost = entries[i].key ? i - 1 : i - Self.lostDistance
            for j in 0..<max(0, lastLost + 1) where entries[j].state == .waiting {
                entries[j].state = .done
                if entries[j].tainted { lost += 1 }
            }
            entries[i].state = .out
            if damaged { taint(from: i) }
            held.append((seq: base + i, tainted: false))
        } else {
            if damaged { startTaint() }
            held.append((seq: nil, tainted: damaged || tainting))
        }
        trim()
        return lost
    }

    /// The verdict on the oldest held picture once every packet decoded before it is accounted for.
    /// - Returns: nil when none can be released yet; true to deliver it, false to skip it (count it).
    mutating func release() -> Bool? {
        guard let head = held.first else { return nil }
        guard let seq = head.seq else {
            held.removeFirst()
            return !head.tainted
        }
        let i = seq - base
        if entries[..<i].contains(where: { $0.state == .waiting }) {
            guard held.count > Self.maxHeld else { return nil }
            // Held too long for a packet that never came out: treat it as lost.
            for j in 0..<i where entries[j].state == .waiting { entries[j].state = .done }
        }
        held.removeFirst()
        entries[i].state = .done
        let deliver = !entries[i].tainted
        trim()
        return deliver
    }

    /// The decoder is drained: packets that produced no picture are lost, and every held picture can
    /// be released.
    /// - Returns: how many tainted packets were lost.
    mutating func flush() -> Int {
        var lost = 0
        for i in entries.indices where entries[i].state == .waiting {
            entries[i].state = .done
            if entries[i].tainted { lost += 1 }
        }
        trim()
        return lost
    }

    /// Taints `entries[from]` (a keyframe too) and the entries after it up to the next keyframe; with
    /// none sent yet, the packets sent next are tainted.
    private mutating func taint(from: Int) {
        for i in from..<entries.count {
            if i > from && entries[i].key { return }
            if entries[i].state != .done { entries[i].tainted = true }
        }
        startTaint()
    }

    private mutating func startTaint() {
        tainting = true
        taintedSinceKey = 0
    }

    /// Drops released entries from the front.
    private mutating func trim() {
        var n = 0
        while n < entries.count && entries[n].state == .done { n += 1 }
        if n > 0 {
            entries.removeFirst(n)
            base += n
        }
    }
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
    /// Holds the frame `decodeNext()` returned until `unrefFrame()`.
    let frame: OwnedFrame
    /// Receives pictures from the decoder.
    private let incoming: OwnedFrame
    /// Pictures out of the decoder that `damage` has not released yet, in output order, and spares.
    private var heldFrames: [OwnedFrame] = []
    private var spareFrames: [OwnedFrame] = []
    private var damage = DamageTracker()
    private var draining = false
    /// The decoder returned end of stream (or kept failing while draining).
    private var decoderEnded = false
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
    init(url: String, format: UnsafePointer<AVInputFormat>?, options: [(String, String)],
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
        // One thread: a threaded H.264 decoder lets damage through undetected (FFmpeg 5.1, measured
        // on truncated slices: with frame threads a picture can leave before its error flags are set,
        // so the same packet was flagged in some runs and not in others; with slice threads a slice
        // that ends early is not concealed, so not flagged). Decoding is a small part of a frame's
        // cost next to the model.
        codec.pointer.pointee.thread_count = 1
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
        incoming = try OwnedFrame(name: name)
    }

    /// Decodes until a frame is available, the input ends, or a read fails.
    ///
    /// A picture the decoder marks as damaged, a packet it rejects, and every picture decoded after
    /// either up to the next keyframe are skipped (see `DamageTracker`); the time spent on them is
    /// part of the call that returns the next good frame.
    /// - Parameters:
    ///   - beforeRead: called before each blocking `av_read_frame` (arms the watchdog).
    ///   - onCorrupt: called once for each packet or picture skipped as damaged.
    func decodeNext(beforeRead: () -> Void, onCorrupt: () -> Void) -> Step {
        let eagain = atp_averror_eagain(), eof = atp_averror_eof(), nopts = atp_av_nopts_value()
        var receiveErrors = 0
        func count(_ n: Int) { for _ in 0..<n { onCorrupt() } }
        while true {
            // Held pictures whose references are all accounted for leave first, in output order.
            while let deliver = damage.release() {
                let held = heldFrames.removeFirst()
                spareFrames.append(held)
                if deliver {
                    av_frame_move_ref(frame.pointer, held.pointer)
                    return .frame
                }
                av_frame_unref(held.pointer)
                onCorrupt()
            }
            if decoderEnded { return .end }
            let r = avcodec_receive_frame(codec.pointer, incoming.pointer)
            if r == 0 {
                let f = incoming.pointer.pointee
                let damaged = f.decode_error_flags != 0 || f.flags & AV_FRAME_FLAG_CORRUPT != 0
                count(damage.received(pts: f.pts == nopts ? nil : f.pts, damaged: damaged))
                guard let slot = spareFrames.popLast() ?? (try? OwnedFrame(name: "")) else {
                    av_frame_unref(incoming.pointer)
                    return .failed(atp_averror_enomem())
                }
                av_frame_move_ref(slot.pointer, incoming.pointer)
                heldFrames.append(slot)
                continue
            }
            if r == eof {
                count(damage.flush())
                decoderEnded = true
                continue
            }
            if r != eagain {
                // A decode error surfaced on output: count it, and stop asking after a few in a row.
                count(damage.failed())
                receiveErrors += 1
                if receiveErrors < 4 { continue }
            }
            if draining {
                count(damage.flush())
                decoderEnded = true
                continue
            }
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
                let p = packet.pointer.pointee
                damage.sent(pts: p.pts == nopts ? nil : p.pts, key: p.flags & AV_PKT_FLAG_KEY != 0)
                let sent = avcodec_send_packet(codec.pointer, packet.pointer)
                if sent < 0 && sent != eagain && sent != eof { count(damage.failed()) }
            }
            av_packet_unref(packet.pointer)
        }
    }

    /// Stream time of the frame in `frame`, in ticks: its packet's pts, else FFmpeg's best-effort
    /// guess, else nil. (The guess switches to decode timestamps once pictures came out of pts order,
    /// which damaged pictures do; skipped, they would still skew every later frame's time.)
    var framePtsTicks: Int64? {
        let f = frame.pointer.pointee
        let nopts = atp_av_nopts_value()
        if f.pts != nopts { return f.pts }
        if f.best_effort_timestamp != nopts { return f.best_effort_timestamp }
        return nil
    }

    func unrefFrame() { av_frame_unref(frame.pointer) }
}

// MARK: - Damaged copies (for tests of broken input)

/// Damage done to one H.264 packet by `VideoDamage.copy`.
enum PacketDamage: Sendable, Equatable {
    /// Bit flips in every slice: the first byte after its NAL header (the start of the slice header:
    /// first macroblock, slice type, parameter set) inverted, and every 16th byte from the 8th XORed
    /// with 0x5A. The NAL length fields and header bytes stay intact.
    case flipBits
    /// The first slice cut to this fraction of its bytes (0 < keep < 1) and the rest of the packet
    /// dropped, its length field rewritten to match so that demuxers and RTP packetisers still see a
    /// whole unit.
    case truncate(keep: Double)
}

/// One packet of a copied video, in decode order.
struct CopiedPacket: Sendable, Equatable {
    /// 0-based position in decode order among the video stream's packets.
    let index: Int
    /// pts in seconds from the stream's first picture (the smallest pts), nil without one.
    let pts: Double?
    let key: Bool
    let damage: PacketDamage?
}

/// Writes damaged copies of H.264 clips, deterministically, for tests of broken input.
enum VideoDamage {
    /// Copies the video stream of `source` packet by packet (no re-encoding) into `destination`, its
    /// container chosen by extension, damaging the packets at the given decode-order indices.
    /// - Parameters:
    ///   - damage: decode-order packet index → the damage done to it.
    /// - Returns: every packet copied, in decode order.
    /// - Throws: `MediaError` when the input is not length-prefixed H.264 (MP4, MOV, MKV) or a
    ///   chosen packet has no slice to damage.
    static func copy(_ source: URL, to destination: URL, damage: [Int: PacketDamage]) throws -> [CopiedPacket] {
        _ = ffmpegVideoSetup
        let name = source.path
        let watchdog = try StallWatchdog(path: name)
        let input = try VideoInput(url: source.path, format: nil, options: [], watchdog: watchdog, name: name,
                                   failure: "cannot open video")
        let index = av_find_best_stream(input.pointer, AVMEDIA_TYPE_VIDEO, -1, -1, nil, 0)
        guard index >= 0, let inStream = input.pointer.pointee.streams[Int(index)],
              let params = inStream.pointee.codecpar else {
            throw MediaError.ffmpeg(.decode, path: name, "no video stream", code: index)
        }
        // avcC extradata: version 1, and the NAL length size in the low two bits of byte 4.
        guard params.pointee.codec_id == AV_CODEC_ID_H264, params.pointee.extradata_size >= 7,
              let extra = params.pointee.extradata, extra[0] == 1 else {
            throw MediaError(.unsupported, path: name, "damaged copies need length-prefixed H.264 (MP4, MOV or MKV)")
        }
        let lengthSize = Int(extra[4] & 3) + 1
        guard let format = av_guess_format(nil, destination.lastPathComponent, nil) else {
            throw MediaError(.invalidArgument, path: destination.path, "cannot choose a container for '.\(destination.pathExtension)'")
        }
        let output = try VideoOutput(format: format, path: destination.path, name: destination.path)
        guard let outStream = avformat_new_stream(output.pointer, nil) else {
            throw MediaError(.encode, path: destination.path, "cannot add a video stream (out of memory)")
        }
        var rc = avcodec_parameters_copy(outStream.pointee.codecpar, params)
        guard rc >= 0 else { throw MediaError.ffmpeg(.encode, path: destination.path, "cannot copy stream parameters", code: rc) }
        outStream.pointee.codecpar.pointee.codec_tag = 0
        outStream.pointee.time_base = inStream.pointee.time_base
        outStream.pointee.avg_frame_rate = inStream.pointee.avg_frame_rate
        try output.open(name: destination.path, faststart: false)

        let packet = try OwnedPacket(name: name)
        let nopts = atp_av_nopts_value()
        var rows: [(ticks: Int64?, key: Bool, damage: PacketDamage?)] = []
        while true {
            rc = av_read_frame(input.pointer, packet.pointer)
            if rc == atp_averror_eof() { break }
            guard rc >= 0 else { throw MediaError.ffmpeg(.decode, path: name, "cannot read packet \(rows.count)", code: rc) }
            defer { av_packet_unref(packet.pointer) }
            guard packet.pointer.pointee.stream_index == index else { continue }
            let p = packet.pointer
            let kind = damage[rows.count]
            if let kind {
                rc = av_packet_make_writable(p)
                guard rc >= 0, let data = p.pointee.data else {
                    throw MediaError.ffmpeg(.encode, path: name, "cannot copy packet \(rows.count)", code: rc)
                }
                let buffer = UnsafeMutableBufferPointer(start: data, count: Int(p.pointee.size))
                guard let size = Self.damage(buffer, lengthSize: lengthSize, kind) else {
                    throw MediaError(.invalidArgument, path: name, "packet \(rows.count) has no slice to damage")
                }
                p.pointee.size = Int32(size)
            }
            rows.append((p.pointee.pts == nopts ? nil : p.pointee.pts, p.pointee.flags & AV_PKT_FLAG_KEY != 0, kind))
            av_packet_rescale_ts(p, inStream.pointee.time_base, outStream.pointee.time_base)
            p.pointee.stream_index = outStream.pointee.index
            p.pointee.pos = -1
            rc = av_interleaved_write_frame(output.pointer, p)
            guard rc >= 0 else { throw MediaError.ffmpeg(.io, path: destination.path, "cannot write packet \(rows.count - 1)", code: rc) }
        }
        try output.finish(name: destination.path)
        let unmatched = damage.keys.filter { $0 < 0 || $0 >= rows.count }.sorted()
        guard unmatched.isEmpty else {
            throw MediaError(.invalidArgument, path: name, "no packets \(unmatched) (the clip has \(rows.count))")
        }
        let tb = inStream.pointee.time_base
        let seconds = tb.den != 0 ? Double(tb.num) / Double(tb.den) : 1.0 / 90000
        let first = rows.compactMap(\.ticks).min() ?? 0
        return rows.enumerated().map { i, r in
            CopiedPacket(index: i, pts: r.ticks.map { Double($0 - first) * seconds }, key: r.key, damage: r.damage)
        }
    }

    /// Damages the slices (NAL types 1 and 5) of one length-prefixed H.264 access unit in place.
    /// - Returns: the unit's new length, or nil when it has no slice.
    static func damage(_ unit: UnsafeMutableBufferPointer<UInt8>, lengthSize: Int, _ kind: PacketDamage) -> Int? {
        var offset = 0, slices = 0
        while offset + lengthSize < unit.count {
            var length = 0
            for i in 0..<lengthSize { length = length << 8 | Int(unit[offset + i]) }
            let start = offset + lengthSize
            guard length > 0, start + length <= unit.count else { break }
            let type = unit[start] & 0x1F
            if type == 1 || type == 5, length > 2 {
                slices += 1
                switch kind {
                case .flipBits:
                    unit[start + 1] ^= 0xFF
                    for i in stride(from: 8, to: length, by: 16) { unit[start + i] ^= 0x5A }
                case .truncate(let keep):
                    precondition(keep > 0 && keep < 1, "truncate keep \(keep) must be in (0, 1)")
                    let kept = max(2, Int(Double(length) * keep))
                    for i in 0..<lengthSize { unit[offset + i] = UInt8(truncatingIfNeeded: kept >> (8 * (lengthSize - 1 - i))) }
                    // The rest of the unit (later slices) is dropped with the cut.
                    return start + kept
                }
            }
            offset = start + length
        }
        return slices > 0 ? unit.count : nil
    }
}
