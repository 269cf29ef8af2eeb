// The ATP gate's entry point: from one frame's saliency (and optional text relevance) to the kept
// visual-token indices (DESIGN.md, "Definitions the gate must follow exactly").
// Pure functions over arrays; imports no model code.

/// The gate's options, as `atp gate`/`atp ask` flags and the pipeline YAML `gate:` block set them.
public struct GateConfig: Sendable, Equatable {
    /// `--method` (default `atp`).
    public var method: GateMethod
    /// `--alpha`, the weight α ∈ [0, 1] of text relevance (default 0.5).
    public var alpha: Double
    /// `--sign`, s ∈ {1, −1}, multiplies relevance before normalisation (default +1 until calibrated).
    public var sign: Int
    /// `--norm` (default `minmax`).
    public var norm: ScoreNormalization
    /// `--tokens` / `--keep` / `--mass` (default `keep(0.25)`, the sample pipeline's `keep: 0.25`).
    public var budget: TokenBudget
    /// `--seed` of the `random` baseline (default 0).
    public var seed: UInt64
    /// Upper bound on K whatever the budget says (the pipeline's shrink-k controller sets it when
    /// prefill overruns its latency budget); nil: no cap. `full` keeps every token regardless.
    public var maxTokens: Int? = nil
    /// β of `atp-div`'s quality `exp(β·S_i)` (``DiversitySelection/defaultBeta``).
    public var diversityBeta: Double = DiversitySelection.defaultBeta

    /// Creates a configuration; values are validated by ``runGate(saliency:relevance:config:)``.
    public init(method: GateMethod = .atp, alpha: Double = 0.5, sign: Int = 1,
                norm: ScoreNormalization = .minmax, budget: TokenBudget = .keep(0.25), seed: UInt64 = 0) {
        self.method = method
        self.alpha = alpha
        self.sign = sign
        self.norm = norm
        self.budget = budget
        self.seed = seed
    }
}

/// What the gate decided for one frame; the visualiser and the JSON output read this, never recompute it.
public struct GateDecision: Sendable, Equatable {
    /// The kept patch indices, ascending (spatial order).
    public let kept: [Int]
    /// The fused score S of every patch (N values), under the method's effective α.
    public let scores: [Float]
    /// The method that produced `kept`.
    public let method: GateMethod

    /// Creates a decision (the gate builds these; public for tests and replay).
    public init(kept: [Int], scores: [Float], method: GateMethod) {
        self.kept = kept
        self.scores = scores
        self.method = method
    }
}

/// Runs the gate on one frame.
///
/// 1. Validates α ∈ [0, 1] and s ∈ {1, −1} for every method, N ≥ 1, finite inputs, and
///    `relevance.count == N`.
/// 2. Fuses the scores with ``fuse(saliency:relevance:alpha:sign:norm:)`` under the effective α:
///    `cls` → 0, `text` → 1, every other method → `config.alpha`. Without relevance α is treated as 0,
///    except that `text` then throws ("method text needs a query and a CLIP text tower").
/// 3. Resolves K with ``TokenBudget/count(n:scores:)`` from those fused scores (so `mass` works for
///    every method, `random` and `uniform` included). The budget is validated for `full` too.
/// 4. Selects: `atp`/`cls`/`text` → ``selectTopK(scores:k:)``; `atp-div` →
///    ``selectDiverse(scores:features:dim:k:beta:)`` over `features` (N×`featureDim`); `random` →
///    ``randomIndices(n:k:seed:)``; `uniform` → ``uniformIndices(n:k:)``; `full` → all N.
///
/// - Parameters:
///   - saliency: `S_intra`, N values.
///   - relevance: `S_inter`, N values, or nil without a query or CLIP text tower.
///   - config: the gate options.
///   - features: N×`featureDim` patch features for `atp-div` (the final layer's hidden states).
///   - featureDim: the feature width D.
/// - Returns: the kept indices (ascending), the fused scores, and the method.
/// - Throws: `GateError` naming the bad option or input.
/// - Complexity: O(N log N).
public func runGate(saliency: [Float], relevance: [Float]?, config: GateConfig,
                    features: [Float]? = nil, featureDim: Int = 0) throws -> GateDecision {
    guard config.alpha >= 0, config.alpha <= 1 else { throw GateError.invalidAlpha(config.alpha) }
    let alpha: Double
    switch config.method {
    case .cls: alpha = 0
    case .text:
        guard relevance != nil else { throw GateError.textNeedsRelevance }
        alpha = 1
    case .atp, .atpDiv, .random, .uniform, .full: alpha = config.alpha
    }
    let scores = try fuse(saliency: saliency, relevance: relevance, alpha: alpha,
                          sign: config.sign, norm: config.norm)
    let n = scores.count
    var k = try config.budget.count(n: n, scores: scores)
    if let cap = config.maxTokens { k = max(1, min(k, cap)) }
    let kept: [Int]
    switch config.method {
    case .atp, .cls, .text: kept = selectTopK(scores: scores, k: k)
    case .atpDiv:
        guard let features, featureDim > 0 else { throw GateError.diversityNeedsFeatures }
        kept = try selectDiverse(scores: scores, features: features, dim: featureDim, k: k, beta: config.diversityBeta)
    case .random: kept = randomIndices(n: n, k: k, seed: config.seed)
    case .uniform: kept = uniformIndices(n: n, k: k)
    case .full: kept = Array(0..<n)
    }
    return GateDecision(kept: kept, scores: scores, method: config.method)
}
