// Video source contract: the frame value, source events, options, the protocol and the factory.
import Foundation

/// One decoded video frame as an owned RGB image plus its timing.
///
/// A plain `Sendable` value: it crosses pipeline queues without borrowing FFmpeg memory.
public struct VideoFrame: Sendable, Equatable {
    /// The picture, RGB24 at the source's output size.
    public var image: RGBImage
    /// Presentation time in seconds of stream time, counted from the source's first frame and
    /// continuous across loops and reconnects (it keeps increasing; an outage advances it by
    /// the outage's wall-clock length).
    public var pts: Double
    /// Unix time (seconds) at which the frame was captured: when the source delivered it, less its
    /// ``decodeMs`` (for a live stream that is about when its last packet arrived; for a paced file,
    /// when it fell due less its decode time).
    public var capturedAt: Double
    /// The source's own work on this frame, in milliseconds: demux, decode and scale (files,
    /// streams, cameras) or render and scale (synthetic), without pacing sleeps or time spent
    /// waiting for a live stream's packets. It includes the work on damaged frames skipped just
    /// before this one (`SourceEvent.corruptPacket`).
    public var decodeMs: Double
    /// 0-based running count of frames this source delivered.
    public var index: Int
    /// The source's id (`SourceOptions.streamId`, else the URL).
    public var streamId: String

    public init(image: RGBImage, pts: Double, capturedAt: Double, index: Int, streamId: String, decodeMs: Double = 0) {
        self.image = image
        self.pts = pts
        self.capturedAt = capturedAt
        self.decodeMs = decodeMs
        self.index = index
        self.streamId = streamId
    }
}

/// Something a source noticed while producing frames (not an error: delivery goes on).
public enum SourceEvent: Sendable, Equatable {
    /// Frames resumed after an outage: the last frame before it had stream time `fromPts`, and
    /// `seconds` of wall-clock time passed between that frame and the next one.
    case gap(streamId: String, fromPts: Double, seconds: Double)
    /// One reconnection attempt, made after waiting `delayMs`; `ok` is whether the stream
    /// opened again, `error` FFmpeg's reason when it did not.
    case reconnect(streamId: String, attempt: Int, delayMs: Int, ok: Bool, error: String?)
    /// A damaged packet or picture was skipped: one the decoder rejected or marked as damaged, or
    /// one decoded after such damage and before the next keyframe (it may be predicted from the
    /// damaged picture), or a frame that could not be converted. No frame leaves half-decoded;
    /// `count` is the running total for the stream.
    case corruptPacket(streamId: String, count: Int)
}

/// RTSP lower transport.
public enum RTSPTransport: String, Sendable, Equatable {
    case udp, tcp
}

/// An output size in pixels.
public struct FrameSize: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }
}

/// How to open a video source; mirrors the pipeline YAML `sources:` entry.
public struct SourceOptions: Sendable {
    /// Id carried by frames and events; nil uses the URL.
    public var streamId: String?
    /// RTSP transport; nil lets FFmpeg choose (UDP, then TCP).
    public var transport: RTSPTransport?
    /// A live read that sees no packet for this long is aborted and the source reconnects.
    public var readTimeoutMs: Int
    /// Limit on opening a stream (connect, handshake, probing); nil uses `readTimeoutMs`.
    public var openTimeoutMs: Int?
    /// Backoff between reconnection attempts of live sources.
    public var reconnect: ReconnectPolicy
    /// Files and synthetic scenes: start again at the end (pts keep increasing).
    public var loop: Bool
    /// Files and synthetic scenes: deliver at the stream's frame rate (by pts, on a monotonic
    /// clock) instead of as fast as the caller pulls. Live sources are paced by the sender.
    public var realtime: Bool
    /// Scale frames to this size (e.g. the model's input size); nil keeps the native size.
    public var outputSize: FrameSize?
    /// When `outputSize` is nil: scale each frame (with swscale, as part of its decode) to the size
    /// this returns for its native size, e.g. an image processor's shortest-edge resize.
    public var scaleTo: (@Sendable (FrameSize) -> FrameSize)?
    /// Called on the thread running `next()` for every event (they are also queued for
    /// `VideoSource.drainEvents()`).
    public var onEvent: (@Sendable (SourceEvent) -> Void)?

    /// - Parameters: see the properties; defaults match DESIGN.md's YAML defaults
    ///   (read timeout 3000 ms, reconnect 500 → 8000 ms, no loop, not realtime, native size).
    ///   Video is always decoded on one thread: FFmpeg's threaded H.264 decoder lets damaged pictures
    ///   through unflagged (see `SourceEvent.corruptPacket`), so there is no thread option.
    public init(
        streamId: String? = nil, transport: RTSPTransport? = nil, readTimeoutMs: Int = 3000,
        openTimeoutMs: Int? = nil, reconnect: ReconnectPolicy = ReconnectPolicy(), loop: Bool = false,
        realtime: Bool = false, outputSize: FrameSize? = nil,
        onEvent: (@Sendable (SourceEvent) -> Void)? = nil
    ) {
        self.streamId = streamId
        self.transport = transport
        self.readTimeoutMs = readTimeoutMs
        self.openTimeoutMs = openTimeoutMs
        self.reconnect = reconnect
        self.loop = loop
        self.realtime = realtime
        self.outputSize = outputSize
        self.onEvent = onEvent
    }

    /// Checks ranges.
    /// - Parameter path: the source URL named in the error.
    /// - Throws: `MediaError.Kind.invalidArgument` naming the field and value.
    public func validate(path: String) throws {
        guard readTimeoutMs > 0 else {
            throw MediaError(.invalidArgument, path: path, "read_timeout_ms must be > 0, got \(readTimeoutMs)")
        }
        if let openTimeoutMs, openTimeoutMs <= 0 {
            throw MediaError(.invalidArgument, path: path, "open timeout must be > 0 ms, got \(openTimeoutMs)")
        }
        if let s = outputSize, s.width < 1 || s.height < 1 || s.width > 16384 || s.height > 16384 {
            throw MediaError(.invalidArgument, path: path, "output size \(s.width)×\(s.height) must be within 1…16384")
        }
        try reconnect.validate(path: path)
    }
}

/// A pull-based producer of frames.
///
/// `next()` is called from one thread at a time; `close()` may be called from any thread and
/// makes a blocked or later `next()` return nil promptly.
public protocol VideoSource: AnyObject, Sendable {
    /// The URL the source was opened with.
    var url: String { get }
    /// The id carried by its frames and events.
    var streamId: String { get }
    /// The next frame, blocking until one is available.
    /// - Returns: the frame, or nil at the end of the stream or after `close()`.
    /// - Throws: `MediaError` naming the URL when the source fails for good (a file read error,
    ///   reconnection attempts exhausted).
    func next() throws -> VideoFrame?
    /// Events noticed since the last call (oldest first).
    func drainEvents() -> [SourceEvent]
    /// Stops the source and releases its resources (idempotent).
    func close()
}

/// Opens video sources by URL.
public enum VideoSources {
    /// Opens a source, choosing the implementation by scheme:
    /// - a path or `file://` URL: a video file (FFmpeg);
    /// - `rtsp://`, `rtsps://`, `rtmp://`, `http(s)://`, `udp://`, `srt://`: a live stream (FFmpeg)
    ///   with the stall watchdog and reconnection;
    /// - `v4l2:///dev/videoN` or `v4l2://videoN` (optionally `?size=640x480&fps=30&format=mjpeg`):
    ///   a camera through libavdevice;
    /// - `synthetic:shapes?w=…&h=…&fps=…&seed=…&frames=…&objects=…`: the built-in scene.
    ///
    /// Files, cameras and streams are opened before this returns, so a missing file, a camera
    /// that is not there or a refused connection is reported here; reconnection only applies to
    /// streams that opened once.
    /// - Parameters:
    ///   - url: the source.
    ///   - options: how to open it.
    /// - Returns: the open source.
    /// - Throws: `MediaError` naming the URL: unknown scheme, bad parameters, cannot open.
    public static func open(url: String, options: SourceOptions = SourceOptions()) throws -> any VideoSource {
        try options.validate(path: url)
        switch try SourceURL.parse(url) {
        case .file(let path):
            return try FFmpegSource(url: url, target: .file(path: path), options: options)
        case .network:
            return try FFmpegSource(url: url, target: .network, options: options)
        case .v4l2(let device, let params):
            return try FFmpegSource(url: url, target: .camera(device: device, params: params), options: options)
        case .synthetic:
            return try SyntheticSource(url: url, options: options)
        }
    }
}

/// A source URL split by scheme.
enum SourceURL: Equatable {
    case file(path: String)
    case network
    case v4l2(device: String, params: [(String, String)])
    case synthetic

    static let networkSchemes: Set<String> = ["rtsp", "rtsps", "rtmp", "http", "https", "udp", "srt"]

    static func == (a: SourceURL, b: SourceURL) -> Bool {
        switch (a, b) {
        case (.file(let x), .file(let y)): return x == y
        case (.network, .network), (.synthetic, .synthetic): return true
        case (.v4l2(let d1, let p1), .v4l2(let d2, let p2)):
            return d1 == d2 && p1.map { $0.0 + "=" + $0.1 } == p2.map { $0.0 + "=" + $0.1 }
        default: return false
        }
    }

    /// The scheme (lower-cased) when `url` starts with `scheme://`, `synthetic:` or `v4l2:`.
    static func scheme(of url: String) -> String? {
        guard let colon = url.firstIndex(of: ":") else { return nil }
        let scheme = url[..<colon]
        guard let first = scheme.first, first.isASCII, first.isLetter,
              scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == ".") })
        else { return nil }
        let lower = scheme.lowercased()
        if lower == "synthetic" || lower == "v4l2" { return lower }
        return url[colon...].hasPrefix("://") ? lower : nil
    }

    static func parse(_ url: String) throws -> SourceURL {
        guard !url.isEmpty else {
            throw MediaError(.invalidArgument, path: "\"\"", "empty video source URL")
        }
        guard let scheme = scheme(of: url) else { return .file(path: url) }
        if scheme == "file" {
            guard let u = URL(string: url), u.isFileURL, !u.path.isEmpty else {
                throw MediaError(.invalidArgument, path: url, "cannot parse file URL")
            }
            return .file(path: u.path)
        }
        if networkSchemes.contains(scheme) { return .network }
        if scheme == "synthetic" { return .synthetic }
        if scheme == "v4l2" {
            var rest = String(url.dropFirst("v4l2:".count))
            if rest.hasPrefix("//") { rest.removeFirst(2) }
            var query = ""
            if let q = rest.firstIndex(of: "?") {
                query = String(rest[rest.index(after: q)...])
                rest = String(rest[..<q])
            }
            let device = rest.hasPrefix("/") ? rest : "/dev/" + rest
            guard device.count > "/dev/".count else {
                throw MediaError(.invalidArgument, path: url, "v4l2 URL names no device (expected v4l2:///dev/videoN or v4l2://videoN)")
            }
            return .v4l2(device: device, params: try queryPairs(query, url: url))
        }
        throw MediaError(.invalidArgument, path: url,
                         "unsupported video source scheme '\(scheme)' (expected a file path, file://, rtsp://, rtsps://, rtmp://, http(s)://, udp://, srt://, v4l2:// or synthetic:)")
    }

    /// `a=1&b=2` as ordered pairs; a key without `=` or a repeated key is an error naming it.
    static func queryPairs(_ query: String, url: String) throws -> [(String, String)] {
        var pairs: [(String, String)] = []
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            guard let eq = part.firstIndex(of: "=") else {
                throw MediaError(.invalidArgument, path: url, "parameter '\(part)' has no value (expected key=value)")
            }
            let key = String(part[..<eq]), value = String(part[part.index(after: eq)...])
            guard !key.isEmpty else {
                throw MediaError(.invalidArgument, path: url, "parameter '\(part)' has no name")
            }
            guard !pairs.contains(where: { $0.0 == key }) else {
                throw MediaError(.invalidArgument, path: url, "parameter '\(key)' is given twice")
            }
            pairs.append((key, value.removingPercentEncoding ?? value))
        }
        return pairs
    }
}
