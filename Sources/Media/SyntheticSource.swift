// `synthetic:` video source: frames of a `SyntheticScene`, rendered on demand.
import Foundation

/// Frames of a built-in synthetic scene: the warehouse world (`synthetic:warehouse?seed=3&fps=10`, or
/// just `synthetic:`; the scripted video of `WarehouseWorld.Video`, 224×224 by default) or moving shapes
/// (`synthetic:shapes?w=320&h=240&fps=15&seed=3&frames=300&objects=4`).
///
/// Parameters (all optional): `w`, `h` (default 320×240; 224×224 for the warehouse), `fps` (15),
/// `seed` (0), `frames` (clip length; 0 or absent = endless), `objects` (4, shapes only). With `loop`
/// a finite clip repeats (frame content restarts, pts keep increasing); with `realtime` frames are
/// paced at `fps`.
public final class SyntheticSource: VideoSource, @unchecked Sendable {
    public let url: String
    public let streamId: String
    /// The shapes scene being rendered (nil for the warehouse).
    public let scene: SyntheticScene?
    /// The warehouse world being rendered (nil for shapes).
    public let warehouse: WarehouseWorld.Video?
    private let size: (w: Int, h: Int)
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
        guard body.isEmpty || body == "shapes" || body == "warehouse" else {
            throw MediaError(.invalidArgument, path: url, "unknown synthetic scene '\(body)' (expected warehouse or shapes)")
        }
        let isWarehouse = body == "warehouse" || body.isEmpty
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
        let w = try int("w", isWarehouse ? 224 : 320, 16...4096), h = try int("h", isWarehouse ? 224 : 240, 16...4096)
        let frames = try int("frames", 0, 0...Int(Int32.max))
        let objects = try int("objects", 4, 0...SyntheticScene.palette.count)
        if isWarehouse, values["objects"] != nil {
            throw MediaError(.invalidArgument, path: url, "parameter objects applies to synthetic:shapes only")
        }
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
        self.size = (w, h)
        if isWarehouse {
            scene = nil
            warehouse = WarehouseWorld.Video(seed: seed)
        } else {
            scene = try SyntheticScene(width: w, height: h, seed: seed, objects: objects)
            warehouse = nil
        }
    }

    /// Ground truth of the frame that `next()` returned with this `index` (shapes scene; empty for the warehouse).
    public func objects(forIndex index: Int) -> [SyntheticObject] {
        scene?.objects(frame: sceneFrame(index)) ?? []
    }

    /// The warehouse layout of the frame with this `index` (nil for shapes).
    public func warehouseLayout(forIndex index: Int) -> WarehouseLayout? {
        warehouse?.layout(at: Double(sceneFrame(index)) / fps)
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
        let workStart = DispatchTime.now().uptimeNanoseconds
        var image: RGBImage
        if let warehouse {
            let f = sceneFrame(index)
            image = WarehouseWorld.render(warehouse.layout(at: Double(f) / fps), width: size.w, height: size.h,
                                          noiseSeed: warehouse.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(f))
        } else {
            image = scene!.render(frame: sceneFrame(index)).0
        }
        if let size = options.outputSize ?? options.scaleTo?(FrameSize(width: image.width, height: image.height)) {
            image = try scaler.resize(image, to: size, name: url)
        }
        let decodeMs = Double(DispatchTime.now().uptimeNanoseconds &- workStart) / 1e6
        let frame = VideoFrame(image: image, pts: pts, capturedAt: Date().timeIntervalSince1970 - decodeMs / 1000,
                               index: index, streamId: streamId, decodeMs: decodeMs)
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
