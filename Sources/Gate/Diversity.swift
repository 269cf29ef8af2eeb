// `atp-div`: ATP's fused scores selected by a greedy DPP over the patches' normalised features
// (DESIGN.md, "Diversity"). Top-K alone keeps near-duplicates (the patches of one box all score high);
// the DPP trades each patch's score against how much it repeats what is already kept, as the
// diversity-aware pruners (CDPruner, DivPrune) do.
import Foundation

/// Parameters of the `atp-div` selection.
public enum DiversitySelection {
    /// Default β: the weight of the fused score in each patch's quality `q_i = exp(β·S_i)`.
    ///
    /// With min-max scores in [0, 1], β = 3 lets the best patch be worth e³ ≈ 20× the worst one in
    /// quality; β = 0 is pure diversity, β → ∞ is top-K of S.
    public static let defaultBeta = 3.0
    /// Residual variance at or below which a candidate counts as already spanned by the kept set.
    public static let epsilon = 1e-9
}

/// Greedy MAP selection of a DPP with kernel `L_ij = q_i · ⟨f_i, f_j⟩ · q_j`.
///
/// The rule (fixed; the tests hold it to a brute-force oracle):
/// - `f_i` is patch i's feature row, L2-normalised (a zero row stays zero); `q_i = exp(β·S_i)`;
///   `L_ii` is taken as exactly `q_i²` for a non-zero row (0 for a zero row).
/// - Start empty. At each of K steps add the candidate j that maximises `log det(L_{Y ∪ {j}})`,
///   i.e. the largest residual `d_j² = L_jj − ‖c_j‖²` of the incremental Cholesky factorisation
///   (Chen, Zhang & Zhou 2018). Ties go to the lower index.
/// - A candidate whose residual is ≤ ``DiversitySelection/epsilon``·q_j² (its feature lies in the
///   span of the kept ones) is not eligible; when none is, the remaining slots are filled by the highest S among the unkept
///   patches, ties to the lower index.
/// - The result is returned in ascending index order, like every selector.
///
/// - Parameters:
///   - scores: the fused scores S (N values).
///   - features: N×D patch features, row-major.
///   - dim: D.
///   - k: how many to keep; clamped to [0, N].
///   - beta: the quality weight β (default ``DiversitySelection/defaultBeta``).
/// - Returns: min(max(k, 0), N) distinct ascending indices.
/// - Throws: `GateError.shapeMismatch` when `features` is not N×D.
/// - Complexity: O(N·K·(K + D)) time, O(N·K) memory.
public func selectDiverse(scores: [Float], features: [Float], dim: Int, k: Int,
                          beta: Double = DiversitySelection.defaultBeta) throws -> [Int] {
    let n = scores.count
    guard dim > 0, features.count == n * dim else {
        throw GateError.shapeMismatch(name: "features", count: features.count, shape: [n, dim])
    }
    let k = min(max(k, 0), n)
    if k == n { return Array(0..<n) }
    if k == 0 { return [] }
    // Normalised features in Double.
    var f = [Double](repeating: 0, count: n * dim)
    for i in 0..<n {
        var s = 0.0
        for c in 0..<dim { let v = Double(features[i * dim + c]); s += v * v }
        let inv = s > 0 ? 1 / s.squareRoot() : 0
        for c in 0..<dim { f[i * dim + c] = Double(features[i * dim + c]) * inv }
    }
    let q = scores.map { Foundation.exp(beta * Double($0)) }
    // L_ii = q_i²·‖f_i‖², taken as exactly q_i² for a non-zero row (so equal scores tie exactly).
    var d2 = (0..<n).map { i -> Double in
        (0..<dim).contains { features[i * dim + $0] != 0 } ? q[i] * q[i] : 0
    }
    var chol = [Double](repeating: 0, count: n * k)   // row i: c_i, the Cholesky coefficients so far
    var chosen = [Bool](repeating: false, count: n)
    var kept: [Int] = []
    kept.reserveCapacity(k)
    let eps = DiversitySelection.epsilon
    f.withUnsafeBufferPointer { f in
        chol.withUnsafeMutableBufferPointer { chol in
            d2.withUnsafeMutableBufferPointer { d2 in
                q.withUnsafeBufferPointer { q in
                    while kept.count < k {
                        var best = -1
                        for i in 0..<n where !chosen[i] && d2[i] > eps * q[i] * q[i]
                            && (best < 0 || d2[i] > d2[best]) { best = i }
                        guard best >= 0 else { break }
                        let t = kept.count
                        let dj = d2[best].squareRoot()
                        chosen[best] = true
                        kept.append(best)
                        let fb = f.baseAddress! + best * dim, cb = chol.baseAddress! + best * k
                        for i in 0..<n where !chosen[i] {
                            let fi = f.baseAddress! + i * dim, ci = chol.baseAddress! + i * k
                            var e = q[best] * dot4(fb, fi, dim) * q[i]
                            e -= dot4(cb, ci, t)
                            e /= dj
                            ci[t] = e
                            d2[i] -= e * e
                        }
                    }
                }
            }
        }
    }
    if kept.count < k {
        let rest = (0..<n).filter { !chosen[$0] }
        let key = scores.map { $0.isNaN ? -Float.infinity : $0 }
        let ranked = rest.sorted { a, b in key[a] != key[b] ? key[a] > key[b] : a < b }
        kept += ranked.prefix(k - kept.count)
    }
    return kept.sorted()
}

/// Σ a[i]·b[i] over `count` doubles with four independent accumulators (SIMD lanes), then the tail:
/// within a few ulps of the sequential sum, several times faster.
@inline(__always)
private func dot4(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ count: Int) -> Double {
    var acc = SIMD4<Double>(repeating: 0)
    var i = 0
    while i + 4 <= count {
        let x = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD4<Double>.self)
        let y = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD4<Double>.self)
        acc += x * y
        i += 4
    }
    var sum = (acc[0] + acc[1]) + (acc[2] + acc[3])
    while i < count {
        sum += a[i] * b[i]
        i += 1
    }
    return sum
}
