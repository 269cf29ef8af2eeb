import Foundation

// tokenizer.json `model` of type BPE: a word starts as its characters (Unicode scalars) and the
// adjacent pair with the lowest merge rank is merged until none is left; ties break on the leftmost
// pair, as huggingface/tokenizers does (its priority queue orders by rank, then position).

/// The BPE merge model.
struct BPEModel: Sendable {
    /// Token → id (the model vocabulary, without added tokens that are not in it).
    let vocab: [String: Int]
    /// Id → token; nil where no vocabulary entry has that id.
    let idToToken: [String?]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    let merges: [UInt64: UInt64]
    /// Id of each single-scalar token, for the initial split.
    let scalarIds: [Unicode.Scalar: Int]
    /// Ids of `<0x00>`…`<0xFF>` when byte fallback is on.
    let byteFallbackIds: [Int]?
    let unkId: Int?
    let fuseUnk: Bool
    /// A word that is itself in the vocabulary is taken whole (Llama-3).
    let ignoreMerges: Bool

    /// - Parameters:
    ///   - vocab: token → id.
    ///   - merges: merge pairs, highest priority first.
    ///   - path: file named in errors.
    /// - Throws: `.malformed` naming a merge whose parts or result are not in the vocabulary.
    init(vocab: [String: Int], merges: [(String, String)], unkToken: String?, byteFallback: Bool,
         fuseUnk: Bool, ignoreMerges: Bool, path: String) throws {
        self.vocab = vocab
        let size = (vocab.values.max() ?? -1) + 1
        var table = [String?](repeating: nil, count: size)
        var scalarIds: [Unicode.Scalar: Int] = [:]
        for (token, id) in vocab {
            table[id] = token
            let scalars = token.unicodeScalars
            if scalars.count == 1 { scalarIds[scalars.first!] = id }
        }
        idToToken = table
        self.scalarIds = scalarIds
        var mergeTable: [UInt64: UInt64] = [:]
        mergeTable.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b] else {
                throw ModelIOError(.malformed, path: path, "merge '\(a) \(b)' (rank \(rank)) uses a token not in the vocabulary")
            }
            guard let merged = vocab[a + b] else {
                throw ModelIOError(.malformed, path: path, "merge '\(a) \(b)' (rank \(rank)) makes '\(a + b)', which is not in the vocabulary")
            }
            // A pair listed twice keeps its last rank, as the reference's map does.
            mergeTable[UInt64(ia) << 32 | UInt64(ib)] = UInt64(rank) << 32 | UInt64(merged)
        }
        self.merges = mergeTable
        if let unkToken {
            guard let id = vocab[unkToken] else {
                throw ModelIOError(.malformed, path: path, "unk_token '\(unkToken)' is not in the vocabulary")
            }
            unkId = id
        } else {
            unkId = nil
        }
        if byteFallback {
            var ids: [Int] = []
            for b in 0..<256 {
                guard let id = vocab[String(format: "<0x%02X>", b)] else { ids = []; break }
                ids.append(id)
            }
            byteFallbackIds = ids.isEmpty ? nil : ids
        } else {
            byteFallbackIds = nil
        }
        self.fuseUnk = fuseUnk
        self.ignoreMerges = ignoreMerges
    }

    func token(for id: Int) -> String? {
        id >= 0 && id < idToToken.count ? idToToken[id] : nil
    }

    /// Appends the ids of one pre-tokenised word.
    /// - Complexity: O(n log n) for a word of n scalars.
    func tokenize(_ word: String, into out: inout [Int]) {
        if ignoreMerges, let id = vocab[word] {
            out.append(id)
            return
        }
        var symbols: [Int] = []
        symbols.reserveCapacity(word.unicodeScalars.count)
        var lastWasUnk = false
        for scalar in word.unicodeScalars {
            if let id = scalarIds[scalar] {
                symbols.append(id)
                lastWasUnk = false
            } else if let bytes = byteFallbackIds {
                for b in String(scalar).utf8 { symbols.append(bytes[Int(b)]) }
                lastWasUnk = false
            } else if let unk = unkId {
                if !(fuseUnk && lastWasUnk) { symbols.append(unk) }
                lastWasUnk = true
            }
            // Without byte fallback or unk token, an unknown character is dropped, as the reference does.
        }
        if symbols.count > 1 { merge(&symbols) }
        out.append(contentsOf: symbols)
    }

    @inline(__always)
    private func rankAndId(_ a: Int, _ b: Int) -> UInt64? {
        merges[UInt64(a) << 32 | UInt64(b)]
    }

    /// Merges `symbols` in place: lowest rank first, leftmost on ties.
    private func merge(_ symbols: inout [Int]) {
        let n = symbols.count
        var next = Array(1...n)            // n = none
        var prev = Array(-1..<(n - 1))     // -1 = none
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        for i in 0..<(n - 1) {
            if let m = rankAndId(symbols[i], symbols[i + 1]) { heap.push(m >> 32, i) }
        }
        while let (rank, pos) = heap.pop() {
            guard alive[pos], next[pos] < n else { continue }
            let right = next[pos]
            guard let m = rankAndId(symbols[pos], symbols[right]), m >> 32 == rank else { continue }
            symbols[pos] = Int(m & 0xFFFF_FFFF)
            alive[right] = false
            next[pos] = next[right]
            if next[right] < n { prev[next[right]] = pos }
            if prev[pos] >= 0, let l = rankAndId(symbols[prev[pos]], symbols[pos]) { heap.push(l >> 32, prev[pos]) }
            if next[pos] < n, let r = rankAndId(symbols[pos], symbols[next[pos]]) { heap.push(r >> 32, pos) }
        }
        var out: [Int] = []
        out.reserveCapacity(n)
        var i = 0
        while i < n {
            out.append(symbols[i])
            i = next[i]
        }
        symbols = out
    }
}

/// A binary min-heap of (rank, position), ordered by rank then position.
private struct MinHeap {
    private var keys: [UInt64] = []

    mutating func push(_ rank: UInt64, _ pos: Int) {
        keys.append(rank << 32 | UInt64(pos))
        var i = keys.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if keys[p] <= keys[i] { break }
            keys.swapAt(p, i)
            i = p
        }
    }

    mutating func pop() -> (UInt64, Int)? {
        guard let top = keys.first else { return nil }
        let last = keys.removeLast()
        if !keys.isEmpty {
            keys[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < keys.count && keys[l] < keys[m] { m = l }
                if r < keys.count && keys[r] < keys[m] { m = r }
                if m == i { break }
                keys.swapAt(m, i)
                i = m
            }
        }
        return (top >> 32, Int(top & 0xFFFF_FFFF))
    }
}
