// `synthetic:` video source: frames of a `SyntheticScene`, rendered on demand.
import Foundation

/// Frames of the built-in synthetic scene, e.g.
/// `synthetic:shapes?w=320&h=240&fps=15&seed=3&frames=300&objects=4`.
///
/// Parameters (all optional): `w`, `h` (default 320×240), `fps` (15), `seed` (0), `frames`
/// (clip length; 0 or absent = endless), `objects` (4). With `loop` a finite clip repeats
/// (frame content restarts, pts keep increasing); with `realtime` frames are paced at `fps`.
public final class SyntheticSource: VideoSource, @unchecked Sendable {
    public let url: String
    public let streamId: String
    /// The scene being rendered.
    public let scene: SyntheticScene
    public let fps: Double
    /// Clip length in frames; nil = endless.
    public let frames: Int?

    private let options: SourceOptions
    private let scaler = VideoScaler()
    private let lock = NSLock()
    private let wake = NSCondition()
    private var closed = false
    private var index = 0
    private var started: Double?

    /// Names accepted in the URL's query.
    public static let parameters = ["w", "h", "fps", "seed", "frames", "objects"]

    /// Parses the URL and builds the scene.
    /// - Throws: `MediaError.Kind.invalidArgument` naming the URL and the unknown scene,
    ///   unknown parameters or bad values.
    public init(url: String, options: SourceOptions = SourceOptions()) throws {
        try options.validate(path: url)
        guard SourceURL.scheme(of: url) == "synthetic" else {
            throw MediaError(.invalidArgument, path: url, "not a synthetic: URL")
        }
        var body = String(url.drop(while: { $0 != ":" }).dropFirst())
        var query = ""
        if let q = body.firstIndex(of: "?") {
            query = String(body[body.index(after: q)...])
            body = String(body[..<q])
        }
        guard body.isEmpty || body == "shapes" else {
            throw MediaError(.invalidArgument, path: url, "unknown synthetic scene '\(body)' (expected shapes)")
        }
        let pairs = try SourceURL.queryPairs(query, url: url)
        let unknown = pairs.map(\.0).filter { !Self.parameters.contains($0) }
        guard unknown.isEmpty else {
            throw MediaError(.invalidArgument, path: url,
                             "unknown synthetic parameter\(unknown.count > 1 ? "s" : "") \(unknown.map { "'\($0)'" }.joined(separator: ", ")) (expected \(Self.parameters.joined(separator: ", ")))")
        }
        var values: [String: String] = [:]
        for (k, v) in pairs { values[k] = v }
        func int(_ key: String, _ def: Int, _ range: ClosedRange<Int>) throws -> Int {
            guard let text = values[key] else { return def }
            guard let v = Int(text), range.contains(v) else {
                throw MediaError(.invalidArgument, path: url, "parameter \(key)=\(text) must be an integer in \(range.lowerBound)…\(range.upperBound)")
            }
            return v
        }
        let w = try int("w", 320, 16...4096), h = try int("h", 240, 16...4096)
        let frames = try int("frames", 0, 0...Int(Int32.max))
        let objects = try int("objects", 4, 0...SyntheticScene.palette.count)
        var seed: UInt64 = 0
        if let text = values["seed"] {
            guard let v = UInt64(text) else {
                throw MediaError(.invalidArgument, path: url, "parameter seed=\(text) must be a non-negative integer")
            }
            seed = v
        }
        var fps = 15.0
        if let text = values["fps"] {
            guard let v = Double(text), v > 0, v <= 240 else {
                throw MediaError(.invalidArgument, path: url, "parameter fps=\(text) must be a number in (0, 240]")
            }
            fps = v
        }
        self.url = url
        self.streamId = options.streamId ?? url
        self.options = options
        self.fps = fps
        self.frames = frames > 0 ? frames : nil
        self.scene = try SyntheticScene(width: w, height: h, seed: seed, objects: objects)
    }

    /// Ground truth of the frame that `next()` returned with this `index`.
    public func objects(forIndex index: Int) -> [SyntheticObject] {
        scene.objects(frame: sceneFrame(index))
    }

    private func sceneFrame(_ index: Int) -> Int {
        guard let frames else { return index }
        return index % frames
    }

    public func next() throws -> VideoFrame? {
        lock.lock()
        let closed = self.closed
        lock.unlock()
        if closed { return nil }
        if let frames, !options.loop, index >= frames { return nil }
        let pts = Double(index) / fps
        if options.realtime {
            let now = monotonicSeconds()
            if started == nil { started = now }
            let due = started! + pts
            if due > now, !sleep(seconds: due - now) { return nil }
        }
        var (image, _) = scene.render(frame: sceneFrame(index))
        if let size = options.outputSize {
            image = try scaler.resize(image, to: size, name: url)
        }
        let frame = VideoFrame(image: image, pts: pts, capturedAt: Date().timeIntervalSince1970, index: index, streamId: streamId)
        index += 1
        return frame
    }

    /// A synthetic scene has no outages: always empty.
    public func drainEvents() -> [SourceEvent] { [] }

    public func close() {
        lock.lock()
        closed = true
        lock.unlock()
        wake.lock()
        wake.broadcast()
        wake.unlock()
    }

    private func sleep(seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        wake.lock()
        defer { wake.unlock() }
        while !isClosed {
            if !wake.wait(until: deadline) { break }
        }
        return !isClosed
    }

    private var isClosed: Bool {
        lock.lock()
        defer { lock.unlock() }
        return closed
    }
}
