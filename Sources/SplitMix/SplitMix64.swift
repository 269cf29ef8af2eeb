// The one seeded generator of the project: the gate's random baseline, temperature sampling and the
// video side (reconnect jitter, synthetic scenes) all draw from it.

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

    /// A uniform `Double` in [0, 1) from the top 53 bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A uniform `Float` in [0, 1) from the top 24 bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
}
