// The key/value cache of a decoder (transformers' DynamicCache, one sequence): per layer the
// post-RoPE keys and the values of every position so far, `[capacity, kvHeads·headDim]` row-major.

import Tensor

/// Per-layer keys and values of one sequence, appended by `LlamaModel.forward`.
///
/// A value type: assigning or `copy()`ing it snapshots the cache (storage is shared until one side
/// writes), so a fixed prompt prefix can be computed once and each request can start from a copy;
/// the continuation is bit-identical to recomputing the prefix.
public struct KVCache: Sendable {
    /// Number of decoder layers.
    public let layers: Int
    /// Width of one cached row (`kvHeads · headDim`).
    public let kvDim: Int
    /// Positions cached so far.
    public private(set) var count: Int = 0
    /// The RoPE position the next appended row gets: `count` unless a forward was given explicit
    /// positions (pruned visual tokens keep their original positions, so the text after them
    /// continues where it would be with every token).
    public internal(set) var nextPosition: Int = 0
    /// Positions the storage holds before it must grow.
    public private(set) var capacity: Int
    // [layer][capacity × kvDim]
    var keys: [[Float]]
    var values: [[Float]]

    /// An empty cache with room for `capacity` positions (it grows by doubling past that).
    public init(layers: Int, kvDim: Int, capacity: Int = 256) {
        self.layers = layers
        self.kvDim = kvDim
        self.capacity = max(1, capacity)
        keys = Array(repeating: [Float](repeating: 0, count: self.capacity * kvDim), count: layers)
        values = keys
    }

    /// A snapshot of the cache (value semantics: the same as `let copy = cache`).
    public func copy() -> KVCache { self }

    /// Forgets positions from `newCount` on, e.g. to return to a cached prefix (whose rows had the
    /// positions 0..<newCount: the next row gets position `newCount`).
    ///
    /// - Precondition: `0 ≤ newCount ≤ count` (callers pass their own bookkeeping, not user input).
    public mutating func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "KVCache.truncate: \(newCount) outside 0...\(count)")
        count = newCount
        nextPosition = newCount
    }

    /// Makes room for `total` positions, growing the storage geometrically.
    public mutating func reserve(_ total: Int) {
        guard total > capacity else { return }
        var newCap = capacity
        while newCap < total { newCap *= 2 }
        for l in 0..<layers {
            keys[l].append(contentsOf: repeatElement(0, count: (newCap - capacity) * kvDim))
            values[l].append(contentsOf: repeatElement(0, count: (newCap - capacity) * kvDim))
        }
        capacity = newCap
    }

    /// The cached keys of `layer` as `[count, kvDim]` (a copy, for inspection and tests).
    public func keys(layer: Int) -> Tensor {
        Tensor(shape: [count, kvDim], data: Array(keys[layer][0..<(count * kvDim)]))
    }

    /// The cached values of `layer` as `[count, kvDim]` (a copy, for inspection and tests).
    public func values(layer: Int) -> Tensor {
        Tensor(shape: [count, kvDim], data: Array(values[layer][0..<(count * kvDim)]))
    }

    /// Called by the model after all layers appended `n` rows at `count`.
    mutating func advance(by n: Int) { count += n }
}
