// How many visual tokens the gate keeps (DESIGN.md, "Selection": --tokens, --keep, --mass).

/// The number of visual tokens K the gate keeps, as the user or the scheduler asked for it.
public enum TokenBudget: Sendable, Equatable {
    /// Exactly K tokens, clamped to [1, N] (so `tokens(0)` keeps 1 and `tokens(N + 3)` keeps N).
    case tokens(Int)
    /// A fraction r ∈ (0, 1] of the N tokens: K = max(1, floor(r·N + 0.5)).
    case keep(Double)
    /// The smallest K whose top scores hold a fraction m ∈ (0, 1] of ΣS', where S' = S − min S.
    case mass(Double)
    /// All N tokens.
    case all

    /// Resolves the budget to a token count K for a frame of `n` tokens.
    ///
    /// - `tokens(K)`: K clamped to [1, N].
    /// - `keep(r)`: r must be in (0, 1]; K = max(1, floor(r·N + 0.5)), computed in `Double`.
    /// - `mass(m)`: m must be in (0, 1]. With S' = S − min S (in `Double`, so it is non-negative under
    ///   either normalisation) sorted in descending order, K is the smallest count whose running sum
    ///   is ≥ m·ΣS'. ΣS' is summed in the same descending order, so m = 1 stops at the last non-zero
    ///   S' (K may be < N when several scores equal the minimum). If ΣS' = 0 (constant scores), K = 1.
    /// - `all`: N.
    ///
    /// - Parameters:
    ///   - n: the number of patch tokens N (must be ≥ 1).
    ///   - scores: the fused scores S (N values); only read by `mass`, whose values must be finite.
    /// - Returns: K in [1, N].
    /// - Throws: `GateError` for N = 0, r or m outside (0, 1], or (for `mass`) a length mismatch or
    ///   a non-finite score.
    /// - Complexity: O(1), or O(N log N) for `mass`.
    public func count(n: Int, scores: [Float]) throws -> Int {
        guard n >= 1 else { throw GateError.noTokens }
        switch self {
        case .tokens(let k):
            return min(max(k, 1), n)
        case .keep(let r):
            guard r > 0, r <= 1 else { throw GateError.invalidKeep(r) }
            let k = Int((r * Double(n) + 0.5).rounded(.down))
            return min(max(k, 1), n)
        case .mass(let m):
            guard m > 0, m <= 1 else { throw GateError.invalidMass(m) }
            guard scores.count == n else {
                throw GateError.lengthMismatch(name: "scores", count: scores.count, expected: n)
            }
            try checkFinite(scores, name: "scores")
            let lowest = Double(scores.min()!)
            let shifted = scores.map { Double($0) - lowest }.sorted(by: >)
            var total = 0.0
            for v in shifted { total += v }
            guard total > 0 else { return 1 }
            let target = m * total
            var running = 0.0
            for (i, v) in shifted.enumerated() {
                running += v
                if running >= target { return i + 1 }
            }
            return n  // unreachable for m ≤ 1: the full running sum equals `total`
        case .all:
            return n
        }
    }
}
