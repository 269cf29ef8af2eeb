import Foundation

// The tokenizer embedded in a GGUF file (llama.cpp's `tokenizer.ggml.*` keys), for
// `tokenizer.ggml.model` = "gpt2" (byte-level BPE). `tokenizer.ggml.pre` names the pre-tokeniser as
// llama.cpp does:
//   "smollm" (and the other StarCoder-style names) → Digits(individual) then ByteLevel's GPT-2 regex,
//       as SmolLM2's own tokenizer.json; transformers' GGUF loader instead runs ByteLevel alone, which
//       differs on whitespace before a digit ("  42"); the fixture records where.
//   "qwen2" → Split(Qwen2 regex) + ByteLevel;  "llama-bpe"/"llama3" → Split(Llama-3 regex) +
//       ByteLevel with ignore_merges;  "gpt-2"/"default"/absent → ByteLevel (GPT-2 regex).
// Control tokens (token_type 3) are special added tokens and user-defined ones (4) plain added
// tokens: both are split out of the text first. BOS is added when `tokenizer.ggml.add_bos_token` is
// true, EOS when `tokenizer.ggml.add_eos_token` is (both absent → false).
// SentencePiece ("llama") vocabularies are not supported.

/// llama.cpp token types (`tokenizer.ggml.token_type`).
enum GGUFTokenType: Int {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

extension BPETokenizer {
    /// Loads the tokenizer embedded in a GGUF file.
    /// - Parameter gguf: an opened GGUF file with `tokenizer.ggml.*` metadata.
    /// - Throws: `ModelIOError` `.unsupported` naming `tokenizer.ggml.model` or `tokenizer.ggml.pre`
    ///   when not supported, `.malformed` naming a missing or bad key.
    public init(gguf: GGUFFile) throws {
        let path = gguf.url.path
        let modelName = try gguf.string("tokenizer.ggml.model")
        guard modelName == "gpt2" else {
            throw ModelIOError(.unsupported, path: path,
                               "tokenizer.ggml.model '\(modelName)' is not supported (only 'gpt2' byte-level BPE; SentencePiece 'llama' vocabularies are not)")
        }
        let tokens = try gguf.stringArray("tokenizer.ggml.tokens")
        guard tokens.count < BPEJSON.maxTokenId else {
            throw ModelIOError(.malformed, path: path, "tokenizer.ggml.tokens has \(tokens.count) entries, too many")
        }
        let types: [Int] = gguf.metadata["tokenizer.ggml.token_type"] == nil
            ? [] : try gguf.intArray("tokenizer.ggml.token_type")
        guard types.isEmpty || types.count == tokens.count else {
            throw ModelIOError(.malformed, path: path,
                               "tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
        }
        var merges: [(String, String)] = []
        let mergeLines = try gguf.stringArray("tokenizer.ggml.merges")
        merges.reserveCapacity(mergeLines.count)
        for (i, line) in mergeLines.enumerated() {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ModelIOError(.malformed, path: path,
                                   "tokenizer.ggml.merges[\(i)] '\(line)' is not two symbols separated by one space")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where vocab[token] == nil { vocab[token] = id }

        let pre = gguf.metadata["tokenizer.ggml.pre"] == nil ? "default" : try gguf.string("tokenizer.ggml.pre")
        let preTokenizer: BPEPreTokenizer
        var ignoreMerges = false
        switch pre {
        case "smollm", "starcoder", "refact", "codeshell", "command-r":
            preTokenizer = .sequence([.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)])
        case "qwen2":
            preTokenizer = .sequence([.splitRegex(.llama3(maxDigits: 1), .isolated),
                                      .byteLevel(addPrefixSpace: false, useRegex: false)])
        case "llama-bpe", "llama3":
            preTokenizer = .sequence([.splitRegex(.llama3(maxDigits: 3), .isolated),
                                      .byteLevel(addPrefixSpace: false, useRegex: false)])
            ignoreMerges = true
        case "gpt-2", "gpt2", "default":
            preTokenizer = .byteLevel(addPrefixSpace: false, useRegex: true)
        default:
            throw ModelIOError(.unsupported, path: path,
                               "tokenizer.ggml.pre '\(pre)' is not supported (known: smollm, qwen2, llama-bpe, gpt-2, default)")
        }
        let model = try BPEModel(vocab: vocab, merges: merges, unkToken: nil, byteFallback: false,
                                 fuseUnk: false, ignoreMerges: ignoreMerges, path: path)

        var added: [BPEAddedToken] = []
        for (id, type) in types.enumerated() {
            if type == GGUFTokenType.control.rawValue || type == GGUFTokenType.userDefined.rawValue {
                added.append(BPEAddedToken(content: tokens[id], id: id, special: type == GGUFTokenType.control.rawValue))
            }
        }
        func optionalId(_ key: String) throws -> Int? {
            guard gguf.metadata[key] != nil else { return nil }
            let id = try gguf.int(key)
            guard id >= 0 && id < tokens.count else {
                throw ModelIOError(.malformed, path: path, "\(key) \(id) is outside the vocabulary of \(tokens.count) tokens")
            }
            return id
        }
        func optionalBool(_ key: String) throws -> Bool? {
            gguf.metadata[key] == nil ? nil : try gguf.bool(key)
        }
        let bos = try optionalId("tokenizer.ggml.bos_token_id")
        let eos = try optionalId("tokenizer.ggml.eos_token_id")
        var post = BPEPostProcessor()
        if try optionalBool("tokenizer.ggml.add_bos_token") == true, let bos { post.prefix = [bos] }
        if try optionalBool("tokenizer.ggml.add_eos_token") == true, let eos { post.suffix = [eos] }
        let template = gguf.metadata["tokenizer.chat_template"] == nil
            ? nil : try gguf.string("tokenizer.chat_template")
        self.init(model: model, normalizer: nil, preTokenizer: preTokenizer, postProcessor: post,
                  decoder: .byteLevel, addedTokens: added, bosTokenId: bos, eosTokenId: eos,
                  chatTemplate: template.map { ChatTemplate(source: $0) })
    }

    /// Loads the tokenizer embedded in the GGUF file at `url`.
    /// - Throws: as `GGUFFile(url:)` and `init(gguf:)`.
    public init(ggufURL url: URL) throws {
        try self.init(gguf: try GGUFFile(url: url))
    }
}
