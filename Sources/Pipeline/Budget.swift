// Latency budgets: overrun events, degradation actions and the shrink-k controller.
import Foundation

/// What a stage does after an item overran its budget. An overrun is an event, not an error: it is
/// always counted and reported; the action is the degradation on top.
public enum OverrunAction: Sendable {
    /// Count and report only.
    case none
    /// Drop the stage's next input (counted as a `skip` drop), giving the stage time to catch up.
    case skip
    /// Feed every item's latency to the knob's ``KController``; the stage reads the knob's `k`
    /// (e.g. the number of visual tokens the gate keeps before the LLM prefill).
    case shrinkK(KKnob)

    /// The spec spelling of the action (`none`, `skip`, `shrink-k`).
    public var kind: OverrunActionKind {
        switch self {
        case .none: return .none
        case .skip: return .skip
        case .shrinkK: return .shrinkK
        }
    }
}

/// The spelling of an ``OverrunAction`` in a pipeline spec (`on_overrun:`).
public enum OverrunActionKind: String, Sendable, Codable, CaseIterable {
    case none
    case skip
    case shrinkK = "shrink-k"
}

/// A stage's latency budget.
public struct StageBudget: Sendable {
    /// The budget per item, in milliseconds (> 0).
    public var ms: Double
    /// What to do after an overrun.
    public var onOverrun: OverrunAction

    /// Creates a budget.
    /// - Parameters:
    ///   - ms: the budget per item in milliseconds; must be > 0 and finite.
    ///   - onOverrun: the degradation action.
    /// - Throws: ``PipelineError/invalidGraph(_:)`` naming the value when `ms` is not > 0.
    public init(ms: Double, onOverrun: OverrunAction = .none) throws {
        guard ms.isFinite, ms > 0 else { throw PipelineError.invalidGraph("budget_ms must be > 0, got \(ms)") }
        self.ms = ms
        self.onOverrun = onOverrun
    }
}

/// Chooses K (e.g. the number of visual tokens kept) so that a stage whose latency grows with K
/// fits its budget. A pure value type: feed it one observation per item.
///
/// The rule, for an observation of latency `L` at the current `K` against budget `B`:
/// 1. **Overrun** (`L > B`): multiplicative decrease,
///    `K ← max(kMin, min(K − 1, floor(K · B / L · decreaseMargin)))` (decreaseMargin = 0.9).
/// 2. **Headroom** (`L < headroom · B`, headroom = 0.7): additive increase by `step`,
///    capped by the prediction below.
/// 3. **In band** (`headroom · B ≤ L ≤ B`): slow increase by 1, capped by the prediction.
///
/// The prediction is the largest K' whose predicted latency is ≤ B. Latency is modelled as linear
/// in K: the slope is the secant through the last two observations made at different K (when it
/// is positive); before there are two, latency is taken as proportional to K (`L · K'/K`), which
/// over-estimates it whenever there is a fixed cost, so the first increases never overshoot.
/// Under a linear latency model `L = a + b·K` the controller therefore settles on the largest K
/// with `a + b·K ≤ B` (clamped to [kMin, kMax]) and stays there; when the load drops it climbs
/// back, at most `step` per observation. K never leaves [kMin, kMax].
public struct KController: Sendable, Equatable {
    /// The smallest K (≥ 1).
    public let kMin: Int
    /// The largest K.
    public let kMax: Int
    /// Additive increase per observation in the headroom regime.
    public let step: Int
    /// Latency fraction of the budget below which K grows by `step`.
    public let headroom: Double
    /// Safety factor of the multiplicative decrease.
    public let decreaseMargin: Double
    /// The current K.
    public private(set) var k: Int

    private var last: (k: Int, latencyMs: Double)?
    private var slopeMsPerK: Double?

    /// Creates a controller.
    /// - Parameters:
    ///   - kMin: the smallest K, ≥ 1.
    ///   - kMax: the largest K, ≥ kMin.
    ///   - initial: the starting K (clamped to [kMin, kMax]).
    ///   - step: additive increase with headroom; default `max(1, (kMax − kMin) / 32)`.
    ///   - headroom: fraction of the budget below which K grows by `step` (0 < headroom ≤ 1).
    ///   - decreaseMargin: factor of the multiplicative decrease (0 < margin ≤ 1).
    /// - Throws: ``PipelineError/invalidGraph(_:)`` naming the bad value.
    public init(kMin: Int, kMax: Int, initial: Int, step: Int? = nil,
                headroom: Double = 0.7, decreaseMargin: Double = 0.9) throws {
        guard kMin >= 1, kMax >= kMin else {
            throw PipelineError.invalidGraph("KController needs 1 <= kMin <= kMax, got kMin \(kMin), kMax \(kMax)")
        }
        let s = step ?? max(1, (kMax - kMin) / 32)
        guard s >= 1 else { throw PipelineError.invalidGraph("KController step must be >= 1, got \(s)") }
        guard headroom > 0, headroom <= 1 else {
            throw PipelineError.invalidGraph("KController headroom must be in (0, 1], got \(headroom)")
        }
        guard decreaseMargin > 0, decreaseMargin <= 1 else {
            throw PipelineError.invalidGraph("KController decreaseMargin must be in (0, 1], got \(decreaseMargin)")
        }
        self.kMin = kMin
        self.kMax = kMax
        self.step = s
        self.headroom = headroom
        self.decreaseMargin = decreaseMargin
        self.k = min(kMax, max(kMin, initial))
    }

    /// Feeds one observation made at the current K and returns the K for the next item.
    /// - Parameters:
    ///   - latencyMs: the measured latency of the item processed at the current K.
    ///   - budgetMs: the stage's budget (> 0).
    /// - Returns: the new K, in [kMin, kMax].
    @discardableResult
    public mutating func observe(latencyMs: Double, budgetMs: Double) -> Int {
        guard latencyMs.isFinite, budgetMs > 0, latencyMs >= 0 else { return k }
        if let last, last.k != k {
            let slope = (latencyMs - last.latencyMs) / Double(k - last.k)
            if slope > 0 { slopeMsPerK = slope }
        }
        last = (k, latencyMs)

        var next: Int
        if latencyMs > budgetMs {
            let scaled = Double(k) * budgetMs / latencyMs * decreaseMargin
            next = min(k - 1, Int(scaled.rounded(.down)))
        } else {
            let roomy = latencyMs < headroom * budgetMs
            next = min(k + (roomy ? step : 1), predictedFit(latencyMs: latencyMs, budgetMs: budgetMs))
            // With ample room K always moves up by at least one: a slope learned from a noisy
            // observation (a load spike while K changed by one) must not hold K down for good; the
            // next change of K re-measures it.
            if roomy { next = max(next, k + 1) }
        }
        k = min(kMax, max(kMin, next))
        return k
    }

    /// The largest K predicted to fit the budget, given latency `latencyMs` at the current K.
    private func predictedFit(latencyMs: Double, budgetMs: Double) -> Int {
        let eps = 1e-9
        if var slope = slopeMsPerK {
            // Latency = fixed + slope·K with a fixed part ≥ 0, so the slope is at most latency / K.
            if latencyMs > 0 { slope = min(slope, latencyMs / Double(k)) }
            let extra = ((budgetMs - latencyMs) / slope + eps).rounded(.down)
            return k + Int(min(extra, Double(kMax)))
        }
        guard latencyMs > 0 else { return kMax }
        let fit = (Double(k) * budgetMs / latencyMs + eps).rounded(.down)
        return Int(min(fit, Double(kMax)))
    }

    public static func == (lhs: KController, rhs: KController) -> Bool {
        lhs.kMin == rhs.kMin && lhs.kMax == rhs.kMax && lhs.step == rhs.step && lhs.headroom == rhs.headroom
            && lhs.decreaseMargin == rhs.decreaseMargin && lhs.k == rhs.k
            && lhs.last?.k == rhs.last?.k && lhs.last?.latencyMs == rhs.last?.latencyMs
            && lhs.slopeMsPerK == rhs.slopeMsPerK
    }
}

/// A thread-safe holder of a ``KController`` shared by the graph (which feeds it latencies) and a
/// stage (which reads ``k`` before each item).
public final class KKnob: @unchecked Sendable {
    private let lock = NSLock()
    private var controller: KController

    /// Creates a knob around a controller.
    public init(_ controller: KController) { self.controller = controller }

    /// The K to use for the next item.
    public var k: Int { lock.withLock { controller.k } }

    /// A copy of the controller's state.
    public var state: KController { lock.withLock { controller } }

    /// Feeds one latency observation; returns the new K.
    @discardableResult
    public func observe(latencyMs: Double, budgetMs: Double) -> Int {
        lock.withLock { controller.observe(latencyMs: latencyMs, budgetMs: budgetMs) }
    }
}
