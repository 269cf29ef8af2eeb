// The two per-patch signals of ATP (DESIGN.md, "Saliency", "Relevance"), computed from arrays the
// vision tower returns. No model code here: the encoder hands over plain `[Float]`s.

/// Saliency `S_intra` from the final layer's CLS→patch attention, renormalised to sum 1.
///
/// `S_intra(i) = a(i) / Σ_j a(j)` with `a` the head-mean (or head-sum: the scale cancels) attention of
/// the CLS query on patch i, over the N patches only (the CLS column excluded). If Σa = 0 the result
/// is uniform, 1/N each. Sums in `Double`, results rounded to `Float` once.
///
/// - Parameter clsAttention: N values `Σ_h A_h[cls, 1 + i]` (or the head mean).
/// - Returns: N saliencies summing to 1 (empty for empty input).
/// - Complexity: O(N).
public func saliency(clsAttention: [Float]) -> [Float] {
    renormalized(clsAttention.map(Double.init))
}

/// Saliency fallback for towers without a CLS token (SigLIP): the attention each patch *receives*.
///
/// `a(i) = Σ_h Σ_q A_h[q, i]` (column sums over all query patches and heads), then renormalised as in
/// ``saliency(clsAttention:)``; head-sum and head-mean give the same result.
///
/// - Parameters:
///   - attention: `[heads, n, n]` row-major: `attention[(h·n + q)·n + k]` is the attention of query
///     patch q on key patch k in head h. Pass `heads: 1` for an already head-averaged `[n, n]` matrix.
///   - heads: the number of heads H in the array (≥ 1).
///   - n: the number of patch tokens N.
/// - Returns: N saliencies summing to 1.
/// - Throws: `GateError` if N = 0, H < 1, or `attention.count ≠ H·N·N`.
/// - Complexity: O(H·N²).
public func saliencyFromAttention(_ attention: [Float], heads: Int = 1, tokens n: Int) throws -> [Float] {
    guard n >= 1 else { throw GateError.noTokens }
    guard heads >= 1, attention.count == heads * n * n else {
        throw GateError.shapeMismatch(name: "attention", count: attention.count, shape: [heads, n, n])
    }
    var received = [Double](repeating: 0, count: n)  // [n] column sums
    attention.withUnsafeBufferPointer { a in
        for row in 0..<(heads * n) {  // rows of [heads·n, n]
            let base = row * n
            for k in 0..<n { received[k] += Double(a[base + k]) }
        }
    }
    return renormalized(received)
}

/// `x / Σx` rounded to `Float`, or uniform `1/N` when Σx = 0.
func renormalized(_ x: [Double]) -> [Float] {
    guard !x.isEmpty else { return [] }
    var total = 0.0
    for v in x { total += v }
    if total == 0 { return [Float](repeating: Float(1.0 / Double(x.count)), count: x.count) }
    return x.map { Float($0 / total) }
}

/// Text relevance `S_inter(i) = cos(v_i, t)` of each patch embedding to the query's text embedding.
///
/// `v_i` is patch i's embedding in the joint CLIP space (`P_v · LN_post(h_i)`), `t` the query's text
/// embedding (`get_text_features`). A patch or text vector of zero norm gets relevance 0.
/// Dot products and norms are accumulated in `Double`; the result is clamped to [−1, 1].
///
/// - Parameters:
///   - patchEmbeddings: `[n, p]` row-major.
///   - n: the number of patches N.
///   - p: the embedding width P.
///   - text: the text embedding, P values.
/// - Returns: N cosine similarities in [−1, 1].
/// - Throws: `GateError` if `patchEmbeddings.count ≠ N·P` or `text.count ≠ P`.
/// - Complexity: O(N·P).
public func cosineRelevance(patchEmbeddings: [Float], count n: Int, dim p: Int, text: [Float]) throws -> [Float] {
    guard n >= 0, p >= 0, patchEmbeddings.count == n * p else {
        throw GateError.shapeMismatch(name: "patch embeddings", count: patchEmbeddings.count, shape: [n, p])
    }
    guard text.count == p else {
        throw GateError.shapeMismatch(name: "text embedding", count: text.count, shape: [p])
    }
    var textNormSq = 0.0
    for v in text { textNormSq += Double(v) * Double(v) }
    let textNorm = textNormSq.squareRoot()
    var out = [Float](repeating: 0, count: n)
    guard textNorm > 0 else { return out }
    patchEmbeddings.withUnsafeBufferPointer { e in
        text.withUnsafeBufferPointer { t in
            for i in 0..<n {
                let row = i * p  // patch i: e[row ..< row + p]
                var dot = 0.0, normSq = 0.0
                for j in 0..<p {
                    let v = Double(e[row + j])
                    dot += v * Double(t[j])
                    normSq += v * v
                }
                let norm = normSq.squareRoot()
                out[i] = norm > 0 ? Float(min(max(dot / (norm * textNorm), -1), 1)) : 0
            }
        }
    }
    return out
}
