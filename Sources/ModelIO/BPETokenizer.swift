import Foundation

// A byte-level BPE tokenizer for LLMs, following huggingface/tokenizers' `Tokenizer::encode` /
// `decode`: added tokens are split out of the text first (leftmost-longest), the rest is normalised,
// pre-tokenised and merged by the BPE model, and the post-processor adds BOS/EOS.
//
// One file per phase (STYLE.md): BPETokenizerNormalizer, BPETokenizerPreTokenizer (with the
// hand-written scanners for the known split regexes), BPETokenizerModel, BPETokenizerPostProcessor,
// BPETokenizerDecoder; loading from an HF folder is in BPETokenizerLoading, from a GGUF file in
// GGUFTokenizer.

/// A tokenizer for a language model's text: ids in, ids out, plus the special tokens and the chat
/// template a generator needs.
public protocol TextTokenizer: Sendable {
    /// The ids of `text`.
    /// - Parameters:
    ///   - text: any string; added/special tokens written in it (e.g. `<|im_start|>`) map to their ids.
    ///   - addSpecialTokens: when true, BOS/EOS are added as the tokenizer's files say
    ///     (`post_processor` of tokenizer.json, else `add_bos_token`/`add_eos_token`).
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
    /// The text of `ids`; unknown ids are skipped.
    /// - Parameters:
    ///   - ids: token ids.
    ///   - skipSpecialTokens: leave out tokens marked special (BOS, EOS, `<|im_end|>`, …).
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    /// The beginning-of-sequence token's id, if the tokenizer names one.
    var bosTokenId: Int? { get }
    /// The end-of-sequence token's id, if the tokenizer names one.
    var eosTokenId: Int? { get }
    /// The id of a vocabulary or added token, written as stored (byte-level alphabet, e.g. "Ġthe").
    func tokenId(for token: String) -> Int?
    /// The stored form of the token with this id.
    func token(for id: Int) -> String?
    /// One more than the largest id (vocabulary plus added tokens).
    var vocabularySize: Int { get }
    /// The model's chat template, when its files carry one.
    var chatTemplate: ChatTemplate? { get }
}

extension TextTokenizer {
    /// The ids of `text` with BOS/EOS added as the tokenizer's files say.
    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: true) }

    /// The ids that end generation: EOS and the chat template's end-of-turn token (`<|im_end|>`),
    /// without duplicates, in that order.
    public var stopTokenIds: [Int] {
        var ids: [Int] = []
        if let eos = eosTokenId { ids.append(eos) }
        if let turn = chatTemplate?.endOfTurnToken, let id = tokenId(for: turn), !ids.contains(id) {
            ids.append(id)
        }
        return ids
    }
}

/// A token that is split out of the text before normalisation and BPE (tokenizer.json
/// `added_tokens`, or GGUF control / user-defined tokens).
public struct BPEAddedToken: Sendable, Equatable {
    /// The token's text.
    public var content: String
    /// Its id.
    public var id: Int
    /// Special tokens are dropped by `decode(_:skipSpecialTokens: true)`.
    public var special: Bool
    /// Absorb the whitespace on its left.
    public var lstrip: Bool
    /// Absorb the whitespace on its right.
    public var rstrip: Bool
    /// Matched on the normalised text (true) or on the raw text (false).
    public var normalized: Bool
    /// Matched only when not inside a word.
    public var singleWord: Bool

    public init(content: String, id: Int, special: Bool, lstrip: Bool = false, rstrip: Bool = false,
                normalized: Bool = false, singleWord: Bool = false) {
        self.content = content
        self.id = id
        self.special = special
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized
        self.singleWord = singleWord
    }
}

/// A byte-level BPE tokenizer (GPT-2, Llama-3, Qwen2, SmolLM2 families), loaded from an HF folder
/// (`init(folder:)`: tokenizer.json, else vocab.json + merges.txt) or a GGUF file (`init(gguf:)`).
///
/// Reference semantics are huggingface/tokenizers 0.23: added tokens are split out first with
/// leftmost-longest matching; merges apply lowest rank first, ties broken on the leftmost pair.
public struct BPETokenizer: TextTokenizer {
    let model: BPEModel
    let normalizer: BPENormalizer?
    let preTokenizer: BPEPreTokenizer?
    let postProcessor: BPEPostProcessor
    let decoder: BPEDecoder?
    /// Added tokens matched on the raw text / on the normalised text.
    let rawMatcher: AddedTokenMatcher
    let normalizedMatcher: AddedTokenMatcher
    let addedById: [Int: BPEAddedToken]
    let addedByContent: [String: Int]

    public let bosTokenId: Int?
    public let eosTokenId: Int?
    public let chatTemplate: ChatTemplate?
    public let vocabularySize: Int
    /// The added tokens, in id order.
    public let addedTokens: [BPEAddedToken]

    init(model: BPEModel, normalizer: BPENormalizer?, preTokenizer: BPEPreTokenizer?,
         postProcessor: BPEPostProcessor, decoder: BPEDecoder?, addedTokens: [BPEAddedToken],
         bosTokenId: Int?, eosTokenId: Int?, chatTemplate: ChatTemplate?) {
        self.model = model
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.postProcessor = postProcessor
        self.decoder = decoder
        let sorted = addedTokens.sorted { $0.id < $1.id }
        self.addedTokens = sorted
        var byId: [Int: BPEAddedToken] = [:]
        var byContent: [String: Int] = [:]
        for token in sorted {
            byId[token.id] = token
            byContent[token.content] = token.id
        }
        addedById = byId
        addedByContent = byContent
        rawMatcher = AddedTokenMatcher(sorted.filter { !$0.normalized }.map { ($0, $0.content) })
        normalizedMatcher = AddedTokenMatcher(sorted.filter { $0.normalized }.map {
            ($0, normalizer?.normalize($0.content) ?? $0.content)
        })
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.chatTemplate = chatTemplate
        vocabularySize = max(model.idToToken.count, (sorted.last?.id ?? -1) + 1)
    }

    /// The ids of `text`.
    /// - Parameters:
    ///   - text: any string; added tokens written in it map to their ids.
    ///   - addSpecialTokens: apply the post-processor (BOS/EOS).
    /// - Returns: token ids.
    /// - Complexity: O(n log n) in the length of the longest pre-tokenised word, linear overall.
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        for segment in rawMatcher.split(text) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let raw):
                let normalised = normalizer?.normalize(raw) ?? raw
                for inner in normalizedMatcher.split(normalised) {
                    switch inner {
                    case .token(let id):
                        ids.append(id)
                    case .text(let piece):
                        let words = preTokenizer?.split(piece) ?? [piece]
                        for word in words where !word.isEmpty {
                            model.tokenize(word, into: &ids)
                        }
                    }
                }
            }
        }
        return addSpecialTokens ? postProcessor.apply(ids) : ids
    }

    /// The text of `ids` (huggingface/tokenizers `decode`: tokens through the decoder; without a
    /// decoder they are joined with spaces). Unknown ids are skipped.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let added = addedById[id] {
                if skipSpecialTokens && added.special { continue }
                tokens.append(added.content)
            } else if let token = model.token(for: id) {
                tokens.append(token)
            }
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decode(tokens).joined()
    }

    public func tokenId(for token: String) -> Int? {
        addedByContent[token] ?? model.vocab[token]
    }

    public func token(for id: Int) -> String? {
        addedById[id]?.content ?? model.token(for: id)
    }
}
