// The BPE model of the CLIP tokenizer (huggingface/tokenizers `models::bpe`, as configured by
// transformers 5.24's CLIPTokenizer: end_of_word_suffix "</w>", no continuing-subword prefix,
// no dropout, ignore_merges false, unk "<|endoftext|>", fuse_unk false).
//
// Reference semantics reproduced:
// - A word (one pre-tokenised piece) starts as one symbol per UTF-8 byte, each the byte-level
//   character of that byte; the LAST symbol carries the "</w>" suffix. A start symbol missing from
//   the vocabulary becomes the unknown token and never merges.
// - Merging repeatedly applies the pair of adjacent symbols with the lowest merge rank; among
//   equal ranks the leftmost pair goes first (tokenizers keeps a heap ordered by (rank, position)).
// - Duplicate lines in the merge list: the later line's rank wins, as in tokenizers' hash map.

/// Merge tables of a CLIP BPE vocabulary, keyed by token ids.
struct CLIPBPEModel: Sendable {
    /// Id of the byte-level symbol of byte `b` at index `b`, and of the symbol + "</w>" at `256 + b`;
    /// -1 where the vocabulary lacks it.
    let startIds: [Int32]
    /// (left id, right id) packed as `left << 32 | right` → (rank, merged id).
    let merges: [UInt64: Merge]
    /// Id emitted for a start symbol the vocabulary lacks.
    let unkId: Int32

    struct Merge: Sendable {
        let rank: Int32
        let id: Int32
    }

    @inline(__always)
    static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// Appends the ids of one word to `out`.
    /// - Parameters:
    ///   - bytes: the word's UTF-8 bytes (non-empty).
    ///   - out: receives the token ids in order.
    /// - Complexity: O(n log n) for n bytes (a heap of candidate pairs over a linked list of symbols).
    func encodeWord(_ bytes: [UInt8], into out: inout [Int]) {
        let n = bytes.count
        if n == 0 { return }
        var ids = [Int32](repeating: 0, count: n)
        for (k, b) in bytes.enumerated() {
            let id = startIds[(k == n - 1 ? 256 : 0) + Int(b)]
            ids[k] = id < 0 ? unkId : id
        }
        if n == 1 {
            out.append(Int(ids[0]))
            return
        }
        if n == 2 {
            if let m = merges[Self.key(ids[0], ids[1])] {
                out.append(Int(m.id))
            } else {
                out.append(Int(ids[0]))
                out.append(Int(ids[1]))
            }
            return
        }
        // Doubly linked list over symbol slots; a merged-away slot gets alive = false.
        var prev = [Int32](unsafeUninitializedCapacity: n) { buf, count in
            for k in 0..<n { buf[k] = Int32(k - 1) }
            count = n
        }
        var next = [Int32](unsafeUninitializedCapacity: n) { buf, count in
            for k in 0..<n { buf[k] = k + 1 < n ? Int32(k + 1) : -1 }
            count = n
        }
        var alive = [Bool](repeating: true, count: n)
        // Min-heap of candidate merges at slot `pos` (pair pos, next[pos]), ordered by (rank, pos).
        var heap = CandidateHeap()
        for k in 0..<(n - 1) {
            if let m = merges[Self.key(ids[k], ids[k + 1])] {
                heap.push(Candidate(rank: m.rank, pos: Int32(k), merged: m.id))
            }
        }
        while let c = heap.pop() {
            // A candidate is stale when its left slot was merged away, or when the pair now at
            // that slot no longer merges into the same token (the check tokenizers makes).
            let p = Int(c.pos)
            guard alive[p] else { continue }
            let q = Int(next[p])
            guard q >= 0, merges[Self.key(ids[p], ids[q])]?.id == c.merged else { continue }
            // Merge q into p.
            ids[p] = c.merged
            alive[q] = false
            let r = next[q]
            next[p] = r
            if r >= 0 { prev[Int(r)] = Int32(p) }
            let l = prev[p]
            if l >= 0, let m = merges[Self.key(ids[Int(l)], ids[p])] {
                heap.push(Candidate(rank: m.rank, pos: l, merged: m.id))
            }
            if r >= 0, let m = merges[Self.key(ids[p], ids[Int(r)])] {
                heap.push(Candidate(rank: m.rank, pos: Int32(p), merged: m.id))
            }
        }
        var k: Int32 = 0
        while k >= 0 {
            out.append(Int(ids[Int(k)]))
            k = next[Int(k)]
        }
    }
}

extension CLIPBPEModel {
    /// A pending merge of the symbols at `pos` and the one after it.
    fileprivate struct Candidate {
        let rank: Int32
        let pos: Int32
        let merged: Int32

        @inline(__always)
        func precedes(_ o: Candidate) -> Bool {
            rank != o.rank ? rank < o.rank : pos < o.pos
        }
    }

    /// A binary min-heap of merge candidates ordered by (rank, position).
    fileprivate struct CandidateHeap {
        private var items: [Candidate] = []

        mutating func push(_ c: Candidate) {
            items.append(c)
            var i = items.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                if !items[i].precedes(items[parent]) { break }
                items.swapAt(i, parent)
                i = parent
            }
        }

        mutating func pop() -> Candidate? {
            guard let last = items.popLast() else { return nil }
            if items.isEmpty { return last }
            let top = items[0]
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                var m = l
                if l + 1 < n, items[l + 1].precedes(items[l]) { m = l + 1 }
                if !items[m].precedes(items[i]) { break }
                items.swapAt(i, m)
                i = m
            }
            return top
        }
    }
}
