import Foundation

// Loading a BPETokenizer from an HF folder: tokenizer.json when present, else vocab.json + merges.txt
// (GPT-2 style), with tokenizer_config.json for BOS/EOS names, `add_bos_token` (only for folders
// without a post-processor) and the chat template (or chat_template.jinja / chat_template.json).

extension BPETokenizer {
    /// Loads the tokenizer of an HF model folder.
    /// - Parameter folder: a folder with `tokenizer.json`, or with `vocab.json` + `merges.txt`.
    /// - Throws: `ModelIOError` `.notFound` naming the folder when neither is there, `.unsupported`
    ///   naming an unsupported component type and its file, `.malformed` for bad contents.
    public init(folder: URL) throws {
        let fm = FileManager.default
        let tokenizerJSON = folder.appendingPathComponent("tokenizer.json")
        let vocabJSON = folder.appendingPathComponent("vocab.json")
        let mergesTxt = folder.appendingPathComponent("merges.txt")
        let config = try TokenizerConfig(folder: folder)
        if fm.fileExists(atPath: tokenizerJSON.path) {
            try self.init(tokenizerJSON: tokenizerJSON, config: config)
        } else if fm.fileExists(atPath: vocabJSON.path) && fm.fileExists(atPath: mergesTxt.path) {
            try self.init(vocabJSON: vocabJSON, mergesTxt: mergesTxt, config: config)
        } else {
            let missing = fm.fileExists(atPath: vocabJSON.path) ? "merges.txt" : "vocab.json"
            throw ModelIOError(.notFound, path: folder.path,
                               "no tokenizer.json, and no vocab.json + merges.txt (\(missing) missing) in \(folder.path)")
        }
    }

    private init(tokenizerJSON url: URL, config: TokenizerConfig) throws {
        let path = url.path
        let root = try BPEJSON.object(try BPEJSON.read(url), "tokenizer.json", path: path)
        let modelObject = try BPEJSON.object(root["model"], "model", path: path)
        let modelType = (modelObject["type"] as? String) ?? "BPE"
        guard modelType == "BPE" else {
            throw ModelIOError(.unsupported, path: path, "unsupported model type '\(modelType)' (only BPE)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = modelObject[key] as? String, !value.isEmpty {
                throw ModelIOError(.unsupported, path: path, "unsupported model.\(key) '\(value)'")
            }
        }
        if let dropout = modelObject["dropout"], let p = dropout as? NSNumber, p.doubleValue > 0 {
            throw ModelIOError(.unsupported, path: path, "unsupported model.dropout \(p) (BPE dropout is random)")
        }
        let vocabObject = try BPEJSON.object(modelObject["vocab"], "model.vocab", path: path)
        let vocab = try BPEJSON.vocabTable(vocabObject, key: "model.vocab", path: path)
        let mergeList = try BPEJSON.array(modelObject["merges"] ?? [Any](), "model.merges", path: path)
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeList.count)
        for (i, item) in mergeList.enumerated() {
            if let s = item as? String {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw ModelIOError(.malformed, path: path, "model.merges[\(i)] '\(s)' is not two symbols separated by one space")
                }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = item as? [Any], pair.count == 2, let a = pair[0] as? String, let b = pair[1] as? String {
                merges.append((a, b))
            } else {
                throw ModelIOError(.malformed, path: path, "model.merges[\(i)] is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
        let model = try BPEModel(vocab: vocab, merges: merges, unkToken: modelObject["unk_token"] as? String,
                                 byteFallback: BPEJSON.bool(modelObject["byte_fallback"]) ?? false,
                                 fuseUnk: BPEJSON.bool(modelObject["fuse_unk"]) ?? false,
                                 ignoreMerges: BPEJSON.bool(modelObject["ignore_merges"]) ?? false, path: path)

        var added: [BPEAddedToken] = []
        for (i, item) in try BPEJSON.array(root["added_tokens"] ?? [Any](), "added_tokens", path: path).enumerated() {
            guard let t = item as? [String: Any], let content = t["content"] as? String,
                  let id = BPEJSON.integer(t["id"] ?? NSNull()), id >= 0, id < BPEJSON.maxTokenId else {
                throw ModelIOError(.malformed, path: path, "added_tokens[\(i)] lacks a string content or an integer id")
            }
            let special = BPEJSON.bool(t["special"]) ?? false
            added.append(BPEAddedToken(content: content, id: id, special: special,
                                       lstrip: BPEJSON.bool(t["lstrip"]) ?? false,
                                       rstrip: BPEJSON.bool(t["rstrip"]) ?? false,
                                       normalized: BPEJSON.bool(t["normalized"]) ?? !special,
                                       singleWord: BPEJSON.bool(t["single_word"]) ?? false))
        }
        let normalizer = try BPENormalizer.parse(root["normalizer"], path: path)
        let preTokenizer = try BPEPreTokenizer.parse(root["pre_tokenizer"], path: path)
        let decoder = try BPEDecoder.parse(root["decoder"], path: path)
        let addedIds = Dictionary(added.map { ($0.content, $0.id) }, uniquingKeysWith: { a, _ in a })
        func lookup(_ token: String) -> Int? { addedIds[token] ?? vocab[token] }
        let bos = config.bosToken.flatMap(lookup)
        let eos = config.eosToken.flatMap(lookup)
        let post: BPEPostProcessor
        if let parsed = try BPEPostProcessor.parse(root["post_processor"], path: path, tokenId: lookup) {
            post = parsed
        } else {
            post = config.fallbackPostProcessor(bos: bos, eos: eos)
        }
        self.init(model: model, normalizer: normalizer, preTokenizer: preTokenizer, postProcessor: post,
                  decoder: decoder, addedTokens: added, bosTokenId: bos, eosTokenId: eos,
                  chatTemplate: config.chatTemplate)
    }

    private init(vocabJSON: URL, mergesTxt: URL, config: TokenizerConfig) throws {
        let vocabObject = try BPEJSON.object(try BPEJSON.read(vocabJSON), "vocab.json", path: vocabJSON.path)
        let vocab = try BPEJSON.vocabTable(vocabObject, key: "", path: vocabJSON.path)
        let merges = try readMergesFile(mergesTxt)
        let model = try BPEModel(vocab: vocab, merges: merges, unkToken: nil, byteFallback: false,
                                 fuseUnk: false, ignoreMerges: false, path: mergesTxt.path)
        // Added tokens: tokenizer_config.json's added_tokens_decoder, plus the named special tokens.
        var added = config.addedTokens
        var seen = Set(added.map(\.content))
        for name in [config.bosToken, config.eosToken, config.unkToken, config.padToken].compactMap({ $0 })
        where !seen.contains(name) {
            if let id = vocab[name] {
                added.append(BPEAddedToken(content: name, id: id, special: true))
                seen.insert(name)
            }
        }
        let ids = Dictionary(added.map { ($0.content, $0.id) }, uniquingKeysWith: { a, _ in a })
        let bos = config.bosToken.flatMap { ids[$0] ?? vocab[$0] }
        let eos = config.eosToken.flatMap { ids[$0] ?? vocab[$0] }
        self.init(model: model, normalizer: nil,
                  preTokenizer: .byteLevel(addPrefixSpace: config.addPrefixSpace ?? false, useRegex: true),
                  postProcessor: config.fallbackPostProcessor(bos: bos, eos: eos), decoder: .byteLevel,
                  addedTokens: added, bosTokenId: bos, eosTokenId: eos, chatTemplate: config.chatTemplate)
    }
}

/// What the tokenizer uses from tokenizer_config.json (and chat_template.jinja / .json).
struct TokenizerConfig {
    var bosToken: String?
    var eosToken: String?
    var unkToken: String?
    var padToken: String?
    var addBosToken: Bool?
    var addEosToken: Bool?
    var addPrefixSpace: Bool?
    var addedTokens: [BPEAddedToken] = []
    var chatTemplate: ChatTemplate?

    /// Reads the folder's tokenizer_config.json when present (all fields nil otherwise).
    init(folder: URL) throws {
        let url = folder.appendingPathComponent("tokenizer_config.json")
        let path = url.path
        var object: [String: Any] = [:]
        if FileManager.default.fileExists(atPath: path) {
            object = try BPEJSON.object(try BPEJSON.read(url), "tokenizer_config.json", path: path)
        }
        func tokenName(_ key: String) throws -> String? {
            switch object[key] {
            case nil, is NSNull: return nil
            case let s as String: return s
            case let o as [String: Any]:
                if let s = o["content"] as? String { return s }
                fallthrough
            default:
                throw ModelIOError(.malformed, path: path, "\(key) is neither a string nor an object with content")
            }
        }
        bosToken = try tokenName("bos_token")
        eosToken = try tokenName("eos_token")
        unkToken = try tokenName("unk_token")
        padToken = try tokenName("pad_token")
        addBosToken = BPEJSON.bool(object["add_bos_token"])
        addEosToken = BPEJSON.bool(object["add_eos_token"])
        addPrefixSpace = BPEJSON.bool(object["add_prefix_space"])
        if let decoder = object["added_tokens_decoder"] as? [String: Any] {
            for (key, value) in decoder {
                guard let id = Int(key), let t = value as? [String: Any], let content = t["content"] as? String else {
                    throw ModelIOError(.malformed, path: path, "added_tokens_decoder entry '\(key)' is not id → {content, …}")
                }
                let special = BPEJSON.bool(t["special"]) ?? false
                addedTokens.append(BPEAddedToken(content: content, id: id, special: special,
                                                 lstrip: BPEJSON.bool(t["lstrip"]) ?? false,
                                                 rstrip: BPEJSON.bool(t["rstrip"]) ?? false,
                                                 normalized: BPEJSON.bool(t["normalized"]) ?? !special,
                                                 singleWord: BPEJSON.bool(t["single_word"]) ?? false))
            }
        }
        // Chat template: tokenizer_config.json (a string, or a list of {name, template}), then the
        // 5.x files chat_template.jinja / chat_template.json.
        var template: String?
        if let s = object["chat_template"] as? String {
            template = s
        } else if let list = object["chat_template"] as? [[String: Any]] {
            template = (list.first { ($0["name"] as? String) == "default" } ?? list.first)?["template"] as? String
        }
        let jinja = folder.appendingPathComponent("chat_template.jinja")
        let json = folder.appendingPathComponent("chat_template.json")
        if template == nil, FileManager.default.fileExists(atPath: jinja.path) {
            template = String(decoding: try readModelFile(jinja), as: UTF8.self)
        }
        if template == nil, FileManager.default.fileExists(atPath: json.path) {
            let o = try BPEJSON.object(try BPEJSON.read(json), "chat_template.json", path: json.path)
            template = o["chat_template"] as? String
        }
        chatTemplate = template.map { ChatTemplate(source: $0) }
    }

    /// BOS/EOS for folders without a post-processor: `add_bos_token` / `add_eos_token`
    /// (absent means false).
    func fallbackPostProcessor(bos: Int?, eos: Int?) -> BPEPostProcessor {
        var p = BPEPostProcessor()
        if addBosToken == true, let bos { p.prefix = [bos] }
        if addEosToken == true, let eos { p.suffix = [eos] }
        return p
    }
}

/// JSON reading helpers for the tokenizer files; errors name the file and key.
enum BPEJSON {
    /// Ids at or above this are rejected, so a corrupt file cannot make the id tables huge.
    static let maxTokenId = 1 << 24

    static func read(_ url: URL) throws -> Any {
        let data = try readModelFile(url)
        do {
            return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw ModelIOError(.malformed, path: url.path, "\(url.lastPathComponent) is not valid JSON (\(error.localizedDescription))")
        }
    }

    static func object(_ value: Any?, _ key: String, path: String) throws -> [String: Any] {
        guard let o = value as? [String: Any] else {
            throw ModelIOError(.malformed, path: path, "\(key) is missing or not a JSON object")
        }
        return o
    }

    static func array(_ value: Any?, _ key: String, path: String) throws -> [Any] {
        guard let a = value as? [Any] else {
            throw ModelIOError(.malformed, path: path, "\(key) is missing or not a JSON array")
        }
        return a
    }

    static func string(_ value: Any?, _ key: String, path: String) throws -> String {
        guard let s = value as? String else {
            throw ModelIOError(.malformed, path: path, "\(key) is missing or not a string")
        }
        return s
    }

    /// A `{"String": "…"}` pattern (a `{"Regex": …}` one is unsupported).
    static func stringPattern(_ value: Any?, _ key: String, path: String) throws -> String {
        guard let o = value as? [String: Any] else {
            throw ModelIOError(.malformed, path: path, "\(key) is missing or not a pattern object")
        }
        if let s = o["String"] as? String { return s }
        if let r = o["Regex"] as? String {
            throw ModelIOError(.unsupported, path: path, "unsupported \(key) regex '\(r.prefix(60))'")
        }
        throw ModelIOError(.malformed, path: path, "\(key) is neither String nor Regex")
    }

    /// A JSON boolean (nil for anything else; NSNumber 0/1 are not taken as booleans).
    static func bool(_ value: Any?) -> Bool? {
        guard let n = value as? NSNumber, n.objCType.pointee == CChar(UInt8(ascii: "c")) else {
            return nil
        }
        return n.boolValue
    }

    /// A JSON integer (nil for booleans, fractions, strings and the rest).
    static func integer(_ value: Any) -> Int? {
        guard let n = value as? NSNumber, n.objCType.pointee != CChar(UInt8(ascii: "c")) else { return nil }
        return Int(exactly: n.doubleValue)
    }

    /// A token → id object; every id must be an integer in [0, maxTokenId).
    static func vocabTable(_ dict: [String: Any], key: String, path: String) throws -> [String: Int] {
        var table: [String: Int] = [:]
        table.reserveCapacity(dict.count)
        for (token, value) in dict {
            guard let id = integer(value), id >= 0, id < maxTokenId else {
                throw ModelIOError(.malformed, path: path,
                                   "\(key.isEmpty ? "vocabulary entry" : key) '\(token)' has id \(value), not an integer in [0, \(maxTokenId))")
            }
            table[token] = id
        }
        return table
    }
}
