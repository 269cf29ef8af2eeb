// Token selection: top-K by score and the index-only baselines (DESIGN.md, "Selection", "Baselines").
// Every selector returns indices in ASCENDING order, the spatial order the LLM sees them in.

import SplitMix

/// The K highest scores, ties broken by lower index, returned in ascending index order.
///
/// Ranking is by score descending, then index ascending, so the result is deterministic under ties.
/// NaN ranks below every number (runGate rejects NaN before it gets here).
///
/// - Parameters:
///   - scores: N scores.
///   - k: how many to keep; clamped to [0, N] (the [1, N] clamp of `--tokens` lives in ``TokenBudget``).
/// - Returns: min(max(k, 0), N) distinct indices in ascending order.
/// - Complexity: O(N log N).
public func selectTopK(scores: [Float], k: Int) -> [Int] {
    let n = scores.count
    let k = min(max(k, 0), n)
    if k == n { return Array(0..<n) }
    if k == 0 { return [] }
    let key = scores.map { $0.isNaN ? -Float.infinity : $0 }
    let ranked = (0..<n).sorted { a, b in
        key[a] != key[b] ? key[a] > key[b] : a < b
    }
    return ranked.prefix(k).sorted()
}

/// The `uniform` baseline: K evenly spaced indices `floor((j + 0.5)·N/K)` for j = 0…K−1.
///
/// Evaluated exactly in integers as `((2j + 1)·N) / (2K)` (floor division). For 1 ≤ K ≤ N the indices
/// are distinct (consecutive ones differ by at least N/K ≥ 1) and lie in [0, N).
///
/// - Parameters:
///   - n: the number of tokens N.
///   - k: the number to keep; clamped to [0, N].
/// - Returns: K ascending indices.
/// - Complexity: O(K).
public func uniformIndices(n: Int, k: Int) -> [Int] {
    let n = max(n, 0)
    let k = min(max(k, 0), n)
    guard k > 0 else { return [] }
    return (0..<k).map { j in ((2 * j + 1) * n) / (2 * k) }
}

/// The `random` baseline: K distinct indices drawn uniformly from 0..<N, stable across platforms.
///
/// Algorithm (fixed; changing it changes published baselines): a ``SplitMix64`` generator seeded
/// with `seed`, then a partial Fisher–Yates shuffle of `[0, 1, …, N−1]`: for i = 0…K−1, draw
/// `j = i + g.next(below: N − i)` and swap positions i and j. The first K entries, sorted ascending,
/// are returned.
///
/// - Parameters:
///   - n: the number of tokens N.
///   - k: the number to keep; clamped to [0, N].
///   - seed: the generator seed (`--seed`, default 0).
/// - Returns: K distinct ascending indices in [0, N).
/// - Complexity: O(N + K log K).
public func randomIndices(n: Int, k: Int, seed: UInt64) -> [Int] {
    let n = max(n, 0)
    let k = min(max(k, 0), n)
    var generator = SplitMix64(seed: seed)
    var pool = Array(0..<n)
    for i in 0..<k {
        let j = i + Int(generator.next(below: UInt64(n - i)))
        pool.swapAt(i, j)
    }
    return pool.prefix(k).sorted()
}
