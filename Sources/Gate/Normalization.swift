// Per-frame score normalisation and the ATP fusion rule (DESIGN.md, "Normalisation", "Fusion", "Sign").

/// Normalises one frame's scores.
///
/// - `minmax`: `(x − min)/(max − min)`, into [0, 1]; a constant vector maps to all zeros.
/// - `zscore`: `(x − mean)/std` with the population std `sqrt(Σ(x − mean)²/N)`; a constant vector
///   (std 0) maps to all zeros.
///
/// Arithmetic is in `Double` (sums taken in index order); each result is rounded to `Float` once.
/// Inputs are expected to be finite (``runGate(saliency:relevance:config:)`` checks this).
///
/// - Parameters:
///   - values: the N scores of one frame.
///   - method: which normalisation.
/// - Returns: N normalised scores (empty for empty input).
/// - Complexity: O(N).
public func normalize(_ values: [Float], method: ScoreNormalization) -> [Float] {
    normalizedDouble(values.map(Double.init), method: method).map(Float.init)
}

/// `normalize` on `Double` values, returning `Double` (no intermediate rounding to `Float`).
func normalizedDouble(_ x: [Double], method: ScoreNormalization) -> [Double] {
    guard let lo = x.min(), let hi = x.max() else { return [] }
    if lo == hi { return [Double](repeating: 0, count: x.count) }
    switch method {
    case .minmax:
        let range = hi - lo
        return x.map { ($0 - lo) / range }
    case .zscore:
        let n = Double(x.count)
        var sum = 0.0
        for v in x { sum += v }
        let mean = sum / n
        var squares = 0.0
        for v in x { squares += (v - mean) * (v - mean) }
        let std = (squares / n).squareRoot()
        if std == 0 { return [Double](repeating: 0, count: x.count) }
        return x.map { ($0 - mean) / std }
    }
}

/// Fuses saliency and text relevance into the gate score of each patch:
/// `S(i) = α·norm(s·S_inter)(i) + (1−α)·norm(S_intra)(i)`.
///
/// The sign `s` multiplies relevance *before* normalisation. With `relevance == nil` (no text tower,
/// or a SigLIP tower) α is treated as 0, so `S = norm(S_intra)`. α = 0 gives exactly `norm(S_intra)`
/// and α = 1 exactly `norm(s·S_inter)`. Computed in `Double`, rounded to `Float` once per score.
///
/// - Parameters:
///   - saliency: `S_intra`, N values (see ``saliency(clsAttention:)``).
///   - relevance: `S_inter`, N values (see ``cosineRelevance(patchEmbeddings:count:dim:text:)``), or nil.
///   - alpha: α ∈ [0, 1], the weight of relevance.
///   - sign: s ∈ {+1, −1}.
///   - norm: the per-signal normalisation.
/// - Returns: N fused scores.
/// - Throws: `GateError` for α outside [0, 1], s ∉ {1, −1}, N = 0, a relevance length other than N,
///   or a non-finite input.
/// - Complexity: O(N).
public func fuse(saliency: [Float], relevance: [Float]?, alpha: Double, sign: Int,
                 norm: ScoreNormalization) throws -> [Float] {
    guard alpha >= 0, alpha <= 1 else { throw GateError.invalidAlpha(alpha) }
    guard sign == 1 || sign == -1 else { throw GateError.invalidSign(sign) }
    guard !saliency.isEmpty else { throw GateError.noTokens }
    try checkFinite(saliency, name: "saliency")
    let intra = normalizedDouble(saliency.map(Double.init), method: norm)
    guard let relevance else { return intra.map(Float.init) }
    guard relevance.count == saliency.count else {
        throw GateError.lengthMismatch(name: "relevance", count: relevance.count, expected: saliency.count)
    }
    try checkFinite(relevance, name: "relevance")
    let s = Double(sign)
    let inter = normalizedDouble(relevance.map { s * Double($0) }, method: norm)
    let beta = 1 - alpha
    return zip(inter, intra).map { Float(alpha * $0 + beta * $1) }
}
