// FFmpeg-backed video sources: files, network streams (RTSP, …) and V4L2 cameras.
//
// Live inputs get a stall watchdog (an AVIOInterruptCB that aborts a read when no packet arrived
// for `read_timeout_ms`) and reconnect with exponential backoff and seeded jitter; files can loop
// and be paced in real time. Frames leave as owned RGB24 values.
import CFFmpeg
import Foundation

/// A video file, network stream or camera read through libavformat/libavcodec/libswscale.
///
/// `next()` runs on one thread at a time; `close()` may come from any thread: it aborts a
/// blocked read or backoff wait and makes `next()` return nil. Resources are released by the
/// thread that was in `next()`, by `close()` when none was, or at deinit.
public final class FFmpegSource: VideoSource, @unchecked Sendable {
    enum Target {
        case file(path: String)
        case network
        case camera(device: String, params: [(String, String)])
    }

    public let url: String
    public let streamId: String
    /// Whether the input is live (network stream or camera): it reconnects instead of ending.
    public let isLive: Bool
    /// The first connection's native frame size.
    public let nativeSize: FrameSize
    /// The first connection's nominal frame rate, when the container states one.
    public let frameRate: Double?

    private let target: Target
    private let options: SourceOptions
    private let watchdog: StallWatchdog
    private let scaler = VideoScaler()
    /// Guards `busy`, `events` and releasing `session` from `close()`.
    private let lock = NSLock()
    /// Wakes interruptible sleeps (backoff, pacing) on `close()`.
    private let wake = NSCondition()

    // State below is touched only by the thread inside next() (or by close() when not busy).
    private var session: DecodeSession?
    private var busy = false
    private var finished = false
    private var events: [SourceEvent] = []
    private var backoff: Backoff
    private var corruptCount = 0
    /// Work on frames skipped after decoding (a conversion failed), carried into the next frame's
    /// `decodeMs` so that it does not vanish from the accounts.
    private var skippedWorkNanos: UInt64 = 0
    private var index = 0
    /// Added to session-relative pts so pts stay continuous over loops and reconnects.
    private var ptsOffset = 0.0
    /// Raw pts of the current session's first frame.
    private var sessionFirstTicks: Int64?
    private var sessionFrames = 0
    private var lastPts: Double?
    /// Monotonic time of the last delivered frame.
    private var lastWall: Double?
    /// Set when the stream stalled or ended after delivering frames: the next frame emits a gap.
    private var outagePending = false
    private var lastError: String?
    private var pacer: (wall: Double, pts: Double)?

    /// Opens a file path, `file://` URL, network stream URL or `v4l2://` camera.
    /// - Parameters:
    ///   - url: the source (see `VideoSources.open`; `synthetic:` is not handled here).
    ///   - options: how to open and read it.
    /// - Throws: `MediaError` naming the URL when it cannot be opened.
    public convenience init(url: String, options: SourceOptions = SourceOptions()) throws {
        try options.validate(path: url)
        switch try SourceURL.parse(url) {
        case .file(let path): try self.init(url: url, target: .file(path: path), options: options)
        case .network: try self.init(url: url, target: .network, options: options)
        case .v4l2(let device, let params):
            try self.init(url: url, target: .camera(device: device, params: params), options: options)
        case .synthetic:
            throw MediaError(.invalidArgument, path: url, "synthetic scenes are opened with VideoSources.open, not FFmpegSource")
        }
    }

    init(url: String, target: Target, options: SourceOptions) throws {
        _ = ffmpegVideoSetup
        self.url = url
        self.target = target
        self.options = options
        self.streamId = options.streamId ?? url
        self.backoff = Backoff(policy: options.reconnect)
        switch target {
        case .file(let path):
            isLive = false
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                throw MediaError(.notFound, path: url, "cannot open video (no such file)")
            }
            guard !isDir.boolValue else { throw MediaError(.unreadable, path: url, "cannot open video (is a directory)") }
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw MediaError(.unreadable, path: url, "cannot open video (permission denied)")
            }
        case .network, .camera:
            isLive = true
        }
        watchdog = try StallWatchdog(path: url)
        let first = try Self.openSession(url: url, target: target, options: options, watchdog: watchdog)
        session = first
        nativeSize = FrameSize(width: Int(first.codec.pointer.pointee.width), height: Int(first.codec.pointer.pointee.height))
        frameRate = first.frameRate
    }

    deinit {
        // The format context polls the watchdog while it closes (RTSP TEARDOWN): release it
        // while the watchdog still exists; the closed flag makes that teardown immediate.
        watchdog.close()
        session = nil
    }

    // MARK: - VideoSource

    public func next() throws -> VideoFrame? {
        lock.lock()
        if watchdog.isClosed {
            session = nil
            lock.unlock()
            return nil
        }
        busy = true
        lock.unlock()
        defer {
            lock.lock()
            busy = false
            if watchdog.isClosed { session = nil }
            lock.unlock()
        }
        return try produce()
    }

    public func drainEvents() -> [SourceEvent] {
        lock.lock()
        defer { lock.unlock() }
        let out = events
        events.removeAll()
        return out
    }

    public func close() {
        watchdog.close()
        wake.lock()
        wake.broadcast()
        wake.unlock()
        lock.lock()
        if !busy { session = nil }
        lock.unlock()
    }

    // MARK: - Reading

    private func produce() throws -> VideoFrame? {
        while true {
            if watchdog.isClosed || finished { return nil }
            if session == nil {
                guard let s = try reopen() else { return nil }
                session = s
                sessionFirstTicks = nil
                sessionFrames = 0
            }
            guard let s = session else { return nil }
            let live = isLive, timeout = options.readTimeoutMs
            let started = DispatchTime.now().uptimeNanoseconds, readBefore = s.readNanos
            let step = s.decodeNext(
                beforeRead: { if live { self.watchdog.arm(ms: timeout) } },
                onCorrupt: { self.countCorrupt() })
            switch step {
            case .frame:
                defer { s.unrefFrame() }
                // Work on this frame: demux (a file's reads), decode, and the scale in `deliver`; a
                // live stream's reads are mostly waiting for the network, so they do not count.
                let waited = live ? s.readNanos &- readBefore : 0
                if let frame = try deliver(from: s, workStartNanos: started &+ waited) { return frame }
            case .end:
                session = nil
                if isLive {
                    beginOutage(reason: "stream ended")
                } else if options.loop && sessionFrames > 0 {
                    // Next session starts one frame after the last one.
                    ptsOffset = (lastPts ?? 0) + frameDuration(s)
                } else {
                    finished = true
                    return nil
                }
            case .failed(let code):
                session = nil
                if watchdog.isClosed { return nil }
                let reason = VideoInput.reason(code, watchdog)
                if isLive {
                    beginOutage(reason: watchdog.fired ? "no packet for \(options.readTimeoutMs) ms" : reason)
                } else {
                    finished = true
                    let at = lastPts.map { String(format: " after %.3f s", $0) } ?? ""
                    throw MediaError(.decode, path: url, "cannot read video\(at) (\(reason))")
                }
            }
        }
    }

    /// Converts the decoded frame, stamps it and paces it; nil when it must be skipped.
    /// - Parameter workStartNanos: when the work on this frame began (monotonic), so that the decode
    ///   time excludes pacing.
    private func deliver(from s: DecodeSession, workStartNanos: UInt64) throws -> VideoFrame? {
        let image: RGBImage
        do {
            let native = FrameSize(width: Int(s.frame.pointer.pointee.width), height: Int(s.frame.pointer.pointee.height))
            image = try scaler.rgb(from: s.frame.pointer, size: options.outputSize ?? options.scaleTo?(native), name: url)
        } catch {
            let now = DispatchTime.now().uptimeNanoseconds
            skippedWorkNanos &+= now &- min(now, workStartNanos)
            countCorrupt()
            return nil
        }
        let decodeNow = DispatchTime.now().uptimeNanoseconds
        let decodeMs = Double((decodeNow &- min(decodeNow, workStartNanos)) &+ skippedWorkNanos) / 1e6
        skippedWorkNanos = 0
        let now = monotonicSeconds()
        var rel: Double
        if let ticks = s.framePtsTicks {
            if sessionFirstTicks == nil {
                // Frames before this one had no time (an RTSP stream's first packet can lack one) and
                // were stamped one frame apart: this one follows them.
                sessionFirstTicks = ticks - Int64((Double(sessionFrames) * frameDuration(s) / s.timeBase).rounded())
            }
            rel = Double(ticks - sessionFirstTicks!) * s.timeBase
        } else {
            rel = sessionFrames == 0 ? 0 : Double(sessionFrames) * frameDuration(s)
        }
        if sessionFrames == 0, outagePending, let lastPts, let lastWall {
            // Resume after an outage: stream time advances by the wall-clock length of the outage.
            let seconds = now - lastWall
            ptsOffset = lastPts + seconds - rel
            emit(.gap(streamId: streamId, fromPts: lastPts, seconds: seconds))
            outagePending = false
            backoff.reset()
        }
        var pts = ptsOffset + rel
        if let lastPts, pts <= lastPts {
            // Out-of-order or repeated timestamps (damaged input): keep pts strictly increasing.
            pts = lastPts + frameDuration(s)
            rel = pts - ptsOffset
        }
        if options.realtime && !isLive {
            guard pace(pts: pts) else { return nil }
        }
        let frame = VideoFrame(image: image, pts: pts, capturedAt: Date().timeIntervalSince1970 - decodeMs / 1000,
                               index: index, streamId: streamId, decodeMs: decodeMs)
        index += 1
        sessionFrames += 1
        lastPts = pts
        lastWall = monotonicSeconds()
        if isLive && outagePending == false && backoff.attempt > 0 { backoff.reset() }
        return frame
    }

    private func frameDuration(_ s: DecodeSession) -> Double {
        if let r = s.frameRate, r > 0, r < 1000 { return 1 / r }
        return 1.0 / 25
    }

    /// Waits until the frame's pts is due on the monotonic clock; false when closed meanwhile.
    private func pace(pts: Double) -> Bool {
        let now = monotonicSeconds()
        guard let p = pacer else {
            pacer = (now, pts)
            return true
        }
        let due = p.wall + (pts - p.pts)
        if due - now < -1 {
            // The caller fell more than a second behind: re-anchor instead of bursting.
            pacer = (now, pts)
            return true
        }
        return due <= now ? true : sleep(seconds: due - now)
    }

    /// Sleeps, waking early on `close()`; false when closed.
    private func sleep(seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        wake.lock()
        defer { wake.unlock() }
        while !watchdog.isClosed {
            if !wake.wait(until: deadline) { break }
        }
        return !watchdog.isClosed
    }

    private func beginOutage(reason: String) {
        lastError = reason
        if lastPts != nil { outagePending = true }
    }

    /// Opens the next session: at once for a looping file, after backoff for a live stream.
    /// - Returns: the session, or nil when closed while waiting.
    private func reopen() throws -> DecodeSession? {
        guard isLive else {
            return try Self.openSession(url: url, target: target, options: options, watchdog: watchdog)
        }
        while !watchdog.isClosed {
            if let max = options.reconnect.maxAttempts, backoff.attempt >= max {
                finished = true
                throw MediaError(.decode, path: url,
                                 "gave up after \(backoff.attempt) reconnect attempts (last error: \(lastError ?? "unknown"))")
            }
            let delay = backoff.nextDelayMs()
            guard sleep(seconds: Double(delay) / 1000) else { return nil }
            do {
                let s = try Self.openSession(url: url, target: target, options: options, watchdog: watchdog)
                emit(.reconnect(streamId: streamId, attempt: backoff.attempt, delayMs: delay, ok: true, error: nil))
                return s
            } catch {
                if watchdog.isClosed { return nil }
                let text = (error as? MediaError)?.message ?? "\(error)"
                lastError = text
                emit(.reconnect(streamId: streamId, attempt: backoff.attempt, delayMs: delay, ok: false, error: text))
            }
        }
        return nil
    }

    private func countCorrupt() {
        corruptCount += 1
        emit(.corruptPacket(streamId: streamId, count: corruptCount))
    }

    private func emit(_ event: SourceEvent) {
        lock.lock()
        if events.count >= 1024 { events.removeFirst(events.count - 1023) }
        events.append(event)
        lock.unlock()
        options.onEvent?(event)
    }

    // MARK: - Opening

    private static func openSession(url: String, target: Target, options: SourceOptions,
                                    watchdog: StallWatchdog) throws -> DecodeSession {
        let openMs = options.openTimeoutMs ?? options.readTimeoutMs
        switch target {
        case .file(let path):
            watchdog.disarm()
            return try DecodeSession(url: path, format: nil, options: [],
                                     lowDelay: false, watchdog: watchdog, name: url, failure: "cannot open video")
        case .network:
            var opts: [(String, String)] = [
                ("analyzeduration", "1000000"),   // µs: live streams must start quickly
                ("probesize", "262144"),
                ("fflags", "nobuffer"),
            ]
            let scheme = SourceURL.scheme(of: url) ?? ""
            if scheme == "rtsp" || scheme == "rtsps" {
                if let t = options.transport { opts.append(("rtsp_transport", t.rawValue)) }
                // Socket I/O timeout in µs (`timeout` since libavformat 59, `stimeout` before): a
                // backstop for calls that do not poll the interrupt callback, set a second later
                // than the watchdog so the watchdog's clearer "timed out" normally wins.
                opts.append((avformat_version() >> 16 >= 59 ? "timeout" : "stimeout", String((max(openMs, options.readTimeoutMs) + 1000) * 1000)))
                opts.append(("max_delay", "500000"))
            } else {
                opts.append(("rw_timeout", String((max(openMs, options.readTimeoutMs) + 1000) * 1000)))
            }
            watchdog.arm(ms: openMs)
            defer { watchdog.disarm() }
            return try DecodeSession(url: url, format: nil, options: opts,
                                     lowDelay: true, watchdog: watchdog, name: url, failure: "cannot open stream")
        case .camera(let device, let params):
            guard let format = av_find_input_format("video4linux2") else {
                throw MediaError(.unsupported, path: url, "cannot open camera (FFmpeg has no video4linux2 input)")
            }
            var opts: [(String, String)] = []
            for (key, value) in params {
                switch key {
                case "size": opts.append(("video_size", value))
                case "fps": opts.append(("framerate", value))
                case "format": opts.append(("input_format", value))
                default:
                    throw MediaError(.invalidArgument, path: url, "unknown v4l2 parameter '\(key)' (expected size, fps, format)")
                }
            }
            watchdog.arm(ms: openMs)
            defer { watchdog.disarm() }
            return try DecodeSession(url: device, format: format, options: opts,
                                     lowDelay: true, watchdog: watchdog, name: url, failure: "cannot open camera")
        }
    }
}
