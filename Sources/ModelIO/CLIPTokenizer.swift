import Foundation

// CLIP's byte-level BPE tokenizer, reproducing `transformers.CLIPTokenizer` of transformers 5.24.0
// (models/clip/tokenization_clip.py, a `TokenizersBackend` over huggingface/tokenizers 0.23):
//
//   ids = tokenizer(text, truncation=True, max_length=77)["input_ids"]
//
// 1. Added tokens: "<|startoftext|>" and "<|endoftext|>" are special, non-normalised added tokens;
//    they are cut out of the RAW text first (leftmost, then longest match) and map straight to
//    their ids. The text between them is processed piece by piece:
// 2. normaliser NFC → `\s+` to " " → lowercase; 3. CLIP split pattern + ByteLevel
//    (see CLIPTokenizerPreTokenizer.swift); 4. BPE with the "</w>" end-of-word suffix
//    (see CLIPTokenizerBPE.swift);
// 5. post-processor RobertaProcessing: `<|startoftext|> ids <|endoftext|>`;
// 6. truncation (longest_first, right side) to `max_length` INCLUDING the two specials, so at most
//    `max_length - 2` content ids are kept, then BOS and EOS are added. No padding.
// `decode` follows `tokenizer.decode(ids, skip_special_tokens=True)`: byte-level decode of the
// concatenated tokens (lossy UTF-8), every "</w>" replaced by " ", then whitespace stripped at both ends.

/// The CLIP text tokenizer (byte-level BPE with an end-of-word suffix), bit-exact with
/// transformers 5.24's `CLIPTokenizer`.
///
/// Loads either a Hugging Face `tokenizer.json` or the `vocab.json` + `merges.txt` pair.
public struct CLIPTokenizer: Sendable {
    /// Id of `<|startoftext|>`, put first in every encoding.
    public var bosTokenId: Int
    /// Id of `<|endoftext|>`, put last in every encoding (also CLIP's unknown and padding token).
    public var eosTokenId: Int
    /// Number of token ids: one more than the largest id in the vocabulary or added tokens.
    public var vocabularySize: Int

    let model: CLIPBPEModel
    /// Added tokens matched on the raw text, as UTF-8 bytes, with their ids.
    let addedTokens: [(bytes: [UInt8], id: Int)]
    /// Ids that `decode` skips (the special added tokens).
    let specialIds: Set<Int>
    /// Byte string of every id (byte-level symbols turned back into bytes); nil for unused ids.
    let idBytes: [[UInt8]?]

    /// The names CLIP uses for its two special tokens.
    public static let bosToken = "<|startoftext|>"
    /// The end-of-text token name; also the unknown and padding token.
    public static let eosToken = "<|endoftext|>"

    // MARK: - Loading

    /// Loads the tokenizer in a model folder: `tokenizer.json` when present, else `vocab.json` + `merges.txt`.
    /// - Parameter folder: the model directory.
    /// - Throws: `ModelIOError` `.notFound` naming the missing file, `.malformed` naming the file and key.
    public init(folder: URL) throws {
        let json = folder.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json.path) {
            try self.init(tokenizerJSON: json)
        } else {
            try self.init(vocab: folder.appendingPathComponent("vocab.json"),
                          merges: folder.appendingPathComponent("merges.txt"))
        }
    }

    /// Loads the original-format files: a `vocab.json` object (token → id) and a `merges.txt`
    /// (optional `#version` first line, then one "left right" pair per line, highest priority first).
    /// - Parameters:
    ///   - vocab: path of `vocab.json`.
    ///   - merges: path of `merges.txt`.
    /// - Throws: `ModelIOError` `.notFound`, `.unreadable` or `.malformed` naming the file and the bad entry.
    public init(vocab: URL, merges: URL) throws {
        let vocabObject = try Self.readJSON(vocab)
        guard let dict = vocabObject as? [String: Any] else {
            throw ModelIOError(.malformed, path: vocab.path, "top level is not a JSON object of token → id")
        }
        let table = try Self.vocabTable(dict, path: vocab.path, key: "")
        let pairs = try readMergesFile(merges)
        let added = [Self.bosToken, Self.eosToken].compactMap { name in table[name].map { (name, $0) } }
        try self.init(vocab: table, merges: pairs, mergesPath: merges.path, added: added,
                      unkToken: Self.eosToken, path: vocab.path)
    }

    /// Loads a Hugging Face `tokenizer.json`.
    ///
    /// Like transformers 5.24's `CLIPTokenizer` (which rebuilds its pipeline in `__init__` and takes only
    /// the vocabulary and merges from the file), only `model.vocab`, `model.merges` (either `"a b"` strings
    /// or `["a", "b"]` pairs) and `added_tokens` are read; the normaliser, pre-tokeniser and
    /// post-processor are always CLIP's.
    /// - Parameter tokenizerJSON: path of `tokenizer.json`.
    /// - Throws: `ModelIOError` `.notFound`, `.malformed` naming the key, or `.unsupported` when
    ///   `model.type` is not BPE.
    public init(tokenizerJSON url: URL) throws {
        let path = url.path
        guard let root = try Self.readJSON(url) as? [String: Any] else {
            throw ModelIOError(.malformed, path: path, "top level is not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else {
            throw ModelIOError(.malformed, path: path, "missing object 'model'")
        }
        if let type = model["type"], type as? String != "BPE" {
            throw ModelIOError(.unsupported, path: path, "model.type '\(type)' is not BPE")
        }
        guard let vocabDict = model["vocab"] as? [String: Any] else {
            throw ModelIOError(.malformed, path: path, "model.vocab is missing or not an object of token → id")
        }
        let table = try Self.vocabTable(vocabDict, path: path, key: "model.vocab")
        guard let mergeList = model["merges"] as? [Any] else {
            throw ModelIOError(.malformed, path: path, "model.merges is missing or not an array")
        }
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(mergeList.count)
        for (k, entry) in mergeList.enumerated() {
            if let line = entry as? String {
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw ModelIOError(.malformed, path: path,
                                       "model.merges[\(k)] '\(line)' is not two symbols separated by one space")
                }
                pairs.append((String(parts[0]), String(parts[1])))
            } else if let two = entry as? [Any], two.count == 2, let a = two[0] as? String, let b = two[1] as? String {
                pairs.append((a, b))
            } else {
                throw ModelIOError(.malformed, path: path, "model.merges[\(k)] is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
        var added: [(String, Int)] = []
        if let list = root["added_tokens"], !(list is NSNull) {
            guard let tokens = list as? [Any] else {
                throw ModelIOError(.malformed, path: path, "added_tokens is not an array")
            }
            for (k, item) in tokens.enumerated() {
                guard let obj = item as? [String: Any], let content = obj["content"] as? String, !content.isEmpty,
                      let id = obj["id"].flatMap(Self.jsonInteger), id >= 0, id < Self.maxTokenId else {
                    throw ModelIOError(.malformed, path: path,
                                       "added_tokens[\(k)] lacks a non-empty string 'content' or an integer 'id' in [0, \(Self.maxTokenId))")
                }
                added.append((content, id))
            }
        }
        try self.init(vocab: table, merges: pairs, mergesPath: path, added: added,
                      unkToken: model["unk_token"] as? String, path: path)
    }

    /// Builds the tables shared by both loading paths.
    private init(vocab: [String: Int], merges: [(String, String)], mergesPath: String,
                 added: [(String, Int)], unkToken: String?, path: String) throws {
        guard let bos = added.first(where: { $0.0 == Self.bosToken })?.1 ?? vocab[Self.bosToken] else {
            throw ModelIOError(.malformed, path: path, "no token '\(Self.bosToken)' in the vocabulary")
        }
        guard let eos = added.first(where: { $0.0 == Self.eosToken })?.1 ?? vocab[Self.eosToken] else {
            throw ModelIOError(.malformed, path: path, "no token '\(Self.eosToken)' in the vocabulary")
        }
        bosTokenId = bos
        eosTokenId = eos
        // transformers always registers BOS and EOS as special added tokens, with or without `added_tokens`.
        var added = added
        for (name, id) in [(Self.bosToken, bos), (Self.eosToken, eos)] where !added.contains(where: { $0.0 == name }) {
            added.append((name, id))
        }
        let unkId = unkToken.flatMap { vocab[$0] } ?? eos

        let byteChars = Self.byteLevelCharacters
        var start = [Int32](repeating: -1, count: 512)
        for b in 0..<256 {
            if let id = vocab[String(byteChars[b])] { start[b] = Int32(id) }
            if let id = vocab[String(byteChars[b]) + "</w>"] { start[256 + b] = Int32(id) }
        }
        var table: [UInt64: CLIPBPEModel.Merge] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a] else {
                throw ModelIOError(.malformed, path: mergesPath, "merge \(rank + 1) '\(a) \(b)': '\(a)' is not in the vocabulary")
            }
            guard let ib = vocab[b] else {
                throw ModelIOError(.malformed, path: mergesPath, "merge \(rank + 1) '\(a) \(b)': '\(b)' is not in the vocabulary")
            }
            guard let merged = vocab[a + b] else {
                throw ModelIOError(.malformed, path: mergesPath, "merge \(rank + 1) '\(a) \(b)': '\(a + b)' is not in the vocabulary")
            }
            table[CLIPBPEModel.key(Int32(ia), Int32(ib))] = .init(rank: Int32(rank), id: Int32(merged))
        }
        model = CLIPBPEModel(startIds: start, merges: table, unkId: Int32(unkId))

        var maxId = vocab.values.max() ?? -1
        for (_, id) in added { maxId = max(maxId, id) }
        vocabularySize = maxId + 1
        var bytesById = [[UInt8]?](repeating: nil, count: maxId + 1)
        let charToByte = Dictionary(uniqueKeysWithValues: byteChars.enumerated().map { ($1, UInt8($0)) })
        for (token, id) in vocab { bytesById[id] = Self.byteLevelDecode(token, charToByte) }
        for (token, id) in added { bytesById[id] = Self.byteLevelDecode(token, charToByte) }
        idBytes = bytesById
        addedTokens = added.map { (Array($0.0.utf8), $0.1) }.sorted { $0.bytes.count > $1.bytes.count }
        specialIds = Set(added.map(\.1))
    }

    // MARK: - Encoding

    /// Encodes text as CLIP token ids: `<|startoftext|>`, the BPE ids, `<|endoftext|>`.
    ///
    /// Matches `CLIPTokenizer(...)(text, truncation=True, max_length=maxLength)["input_ids"]` of
    /// transformers 5.24: the result never has more than `maxLength` ids and always keeps BOS and EOS.
    /// - Parameters:
    ///   - text: any text; the empty string gives `[bos, eos]`.
    ///   - maxLength: the longest result, specials included (CLIP's context is 77); `nil` disables
    ///     truncation. Values below 2 cannot hold BOS and EOS, and transformers then does not truncate
    ///     at all; this does the same.
    /// - Returns: the token ids.
    /// - Complexity: O(n log n) in the text length; stops once `maxLength - 2` content ids exist.
    public func encode(_ text: String, maxLength: Int? = 77) -> [Int] {
        let limit = maxLength.flatMap { $0 >= 2 ? $0 - 2 : nil } ?? Int.max
        var ids: [Int] = [bosTokenId]
        if limit > 0 {
            var content: [Int] = []
            encodeContent(text, limit: limit, into: &content)
            ids.append(contentsOf: content.prefix(limit))
        }
        ids.append(eosTokenId)
        return ids
    }

    /// Appends the content ids of `text` (no BOS/EOS) until at least `limit` exist.
    private func encodeContent(_ text: String, limit: Int, into out: inout [Int]) {
        let raw = Array(text.utf8)
        var segmentStart = 0
        var i = 0
        while i < raw.count, out.count < limit {
            var hit: (length: Int, id: Int)?
            if !addedTokens.isEmpty {
                for t in addedTokens where raw.count - i >= t.bytes.count {
                    if raw[i] == t.bytes[0], raw[i..<(i + t.bytes.count)].elementsEqual(t.bytes) {
                        hit = (t.bytes.count, t.id)  // longest first, so the first hit is the longest
                        break
                    }
                }
            }
            if let hit {
                encodeSegment(raw[segmentStart..<i], limit: limit, into: &out)
                if out.count < limit { out.append(hit.id) }
                i += hit.length
                segmentStart = i
            } else {
                i += 1
            }
        }
        if segmentStart < raw.count, out.count < limit {
            encodeSegment(raw[segmentStart...], limit: limit, into: &out)
        }
    }

    /// Normalises, splits and BPE-encodes one stretch of text that holds no added token.
    private func encodeSegment(_ bytes: ArraySlice<UInt8>, limit: Int, into out: inout [Int]) {
        if bytes.isEmpty || out.count >= limit { return }
        let text = String(decoding: bytes, as: UTF8.self)
        let normalized = Self.normalize(text)
        Self.forEachPiece(normalized) { piece in
            model.encodeWord(piece, into: &out)
            return out.count < limit
        }
    }

    // MARK: - Decoding

    /// Turns ids back into text as `tokenizer.decode(ids, skip_special_tokens=True)` does:
    /// special tokens are skipped, each `</w>` becomes a space, and the ends are trimmed.
    /// - Parameter ids: token ids; ids outside the vocabulary are skipped.
    /// - Returns: the decoded text (invalid UTF-8 shows as U+FFFD).
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && id < idBytes.count && !specialIds.contains(id) {
            if let b = idBytes[id] { bytes.append(contentsOf: b) }
        }
        // "</w>" → " " on the bytes: the same as on the decoded text (lossy UTF-8 decoding never eats
        // ASCII), and free of String's grapheme-aware search, which misses "</w>" before a combining mark.
        return Self.stripPythonWhitespace(String(decoding: Self.replacingEndOfWord(bytes), as: UTF8.self))
    }

    /// Replaces every "</w>" in a byte string by one space.
    private static func replacingEndOfWord(_ bytes: [UInt8]) -> [UInt8] {
        let marker = Array("</w>".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == marker[0], i + marker.count <= bytes.count,
               bytes[i..<(i + marker.count)].elementsEqual(marker) {
                out.append(0x20)
                i += marker.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }

    /// Trims the characters Python's `str.strip()` removes (`str.isspace()` true).
    private static func stripPythonWhitespace(_ s: String) -> String {
        func isSpace(_ u: Unicode.Scalar) -> Bool {
            switch u.value {
            case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
                return true
            default:
                return false
            }
        }
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
              let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[first...last])
    }
}
