// Token selection: top-K by score and the index-only baselines (DESIGN.md, "Selection", "Baselines").
// Every selector returns indices in ASCENDING order, the spatial order the LLM sees them in.

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

/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014):
/// a 64-bit state advanced by the golden-ratio increment 0x9E3779B97F4A7C15 and mixed by two
/// xor-shift-multiply rounds. Fully specified here, so the sequence for a seed never depends on the
/// platform or the Swift standard library. With seed 0 the first output is 0xE220A8397B1DCDAF.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The current state.
    public private(set) var state: UInt64

    /// Creates a generator whose first `next()` mixes `seed + 0x9E3779B97F4A7C15`.
    public init(seed: UInt64) { state = seed }

    /// The next 64-bit output.
    /// - Complexity: O(1).
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// An unbiased integer in [0, bound) by rejection: outputs below `2^64 mod bound` are redrawn, then
    /// the output is reduced modulo `bound`. `bound` must be ≥ 1 (0 returns 0).
    /// - Complexity: O(1) expected (fewer than 2 draws on average).
    public mutating func next(below bound: UInt64) -> UInt64 {
        guard bound > 1 else { return 0 }
        let threshold = (0 &- bound) % bound  // 2^64 mod bound
        while true {
            let x = next()
            if x >= threshold { return x % bound }
        }
    }
}
