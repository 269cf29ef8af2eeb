// Standing queries, their gate settings, and the registry changed at run time.
import Foundation
import Gate

/// A standing query and its gate settings.
public struct StandingQuery: Sendable, Equatable {
    public var id: String
    public var text: String
    public var gate: GateConfig
    public init(id: String, text: String, gate: GateConfig) {
        self.id = id
        self.text = text
        self.gate = gate
    }
}

/// Converts a spec gate block to the gate's configuration, filling what it leaves out from
/// ``GateSpec/defaults``.
/// - Throws: ``PipelineError/spec(file:key:message:)`` naming the key that breaks ``GateSpec/issue``.
public func gateConfig(_ g: GateSpec) throws -> GateConfig {
    if let (key, message) = g.issue { throw PipelineError.spec(file: "gate", key: key, message: message) }
    let d = GateSpec.defaults.overridden(by: g)
    let budget: TokenBudget
    if let t = d.tokens { budget = .tokens(t) } else if let m = d.mass { budget = .mass(m) } else { budget = .keep(d.keep!) }
    return GateConfig(method: GateMethod(rawValue: d.method!)!, alpha: d.alpha!, sign: d.sign!,
                      norm: ScoreNormalization(rawValue: d.norm!)!, budget: budget)
}

/// The set of standing queries, changed at run time (HTTP API) and read once per frame.
public final class QueryRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var queries: [StandingQuery] = []
    private var removalObservers: [@Sendable (String) -> Void] = []
    public init(_ initial: [StandingQuery] = []) { queries = initial }
    /// Calls `observer` with the id of every query removed from now on (after the removal), so that
    /// state kept per query id (the last answers of each stream) goes with the query.
    public func onRemove(_ observer: @escaping @Sendable (String) -> Void) {
        lock.withLock { removalObservers.append(observer) }
    }
    public var all: [StandingQuery] { lock.withLock { queries } }
    /// Whether a query with this id is standing.
    public func contains(id: String) -> Bool { lock.withLock { queries.contains { $0.id == id } } }
    /// Adds or replaces a query; returns false when the id was new.
    @discardableResult
    public func upsert(_ q: StandingQuery) -> Bool {
        lock.withLock {
            if let i = queries.firstIndex(where: { $0.id == q.id }) { queries[i] = q; return true }
            queries.append(q)
            return false
        }
    }
    /// Removes a query; returns whether it existed.
    @discardableResult
    public func remove(id: String) -> Bool {
        let (removed, observers) = lock.withLock {
            let before = queries.count
            queries.removeAll { $0.id == id }
            return (queries.count != before, removalObservers)
        }
        if removed { for o in observers { o(id) } }
        return removed
    }
}

/// Options of a run beyond the spec.
public struct RunOptions: Sendable {
    /// Replaces the first source's URL.
    public var sourceOverride: String?
    /// Replaces the spec's queries (ids q1, q2, …).
    public var queries: [String] = []
    /// Stop after this many seconds.
    public var duration: Double?
    /// Pace file sources at their frame rate.
    public var realtime = false
    /// Most tokens per answer.
    public var maxTokens = 8
    /// Mean absolute difference (0–255, grey 32×32 thumbnail) under which a frame reuses the last answers; 0 disables.
    public var changeThreshold: Double = 1.5
    /// How video frames reach the model's resize size: swscale while decoding (the fast path), or
    /// the PIL-exact resize of the image processor on the native frame.
    public var scaler: FrameScaling = .swscale
    public init() {}
}

/// Where a video frame is resized to the image processor's resize size (the centre crop, rescale
/// and normalisation are the processor's in both cases).
public enum FrameScaling: String, Sendable, CaseIterable {
    /// swscale (bilinear, widened when shrinking) while decoding: fast; the frame the pipeline sees
    /// (change gate, overlay video) is then at the resize size.
    case swscale
    /// The image processor's PIL-exact resize of the native frame: the reference, slower on large frames.
    case pil
}
