import Foundation

// tokenizer.json `post_processor` for a single sequence: TemplateProcessing, RobertaProcessing,
// BertProcessing, ByteLevel (ids unchanged), Sequence, or none (then `add_bos_token` /
// `add_eos_token` of tokenizer_config.json decide, DESIGN.md "Loading").

/// What the post-processor adds around one sequence's ids.
struct BPEPostProcessor: Sendable, Equatable {
    var prefix: [Int] = []
    var suffix: [Int] = []

    func apply(_ ids: [Int]) -> [Int] {
        prefix.isEmpty && suffix.isEmpty ? ids : prefix + ids + suffix
    }

    /// Builds the post-processor of a tokenizer.json `post_processor` object; nil for JSON null or
    /// an absent key (then the caller falls back to tokenizer_config.json).
    /// - Parameters:
    ///   - tokenId: looks up a token's id (for Roberta/Bert processors, which name tokens).
    /// - Throws: `.unsupported` naming the type and the file for other types.
    static func parse(_ json: Any?, path: String, tokenId: (String) -> Int?) throws -> BPEPostProcessor? {
        guard let json, !(json is NSNull) else { return nil }
        let object = try BPEJSON.object(json, "post_processor", path: path)
        let type = try BPEJSON.string(object["type"], "post_processor.type", path: path)
        switch type {
        case "ByteLevel":
            return BPEPostProcessor()
        case "TemplateProcessing":
            let single = try BPEJSON.array(object["single"], "post_processor.single", path: path)
            let specials = (object["special_tokens"] as? [String: Any]) ?? [:]
            var result = BPEPostProcessor()
            var seenSequence = false
            for item in single {
                guard let item = item as? [String: Any] else {
                    throw ModelIOError(.malformed, path: path, "post_processor.single holds a non-object item")
                }
                if item["Sequence"] != nil {
                    seenSequence = true
                } else if let special = item["SpecialToken"] as? [String: Any], let name = special["id"] as? String {
                    guard let entry = specials[name] as? [String: Any],
                          let ids = entry["ids"] as? [Any] else {
                        throw ModelIOError(.malformed, path: path, "post_processor special token '\(name)' is not in special_tokens")
                    }
                    let values = try ids.map { value -> Int in
                        guard let id = BPEJSON.integer(value) else {
                            throw ModelIOError(.malformed, path: path, "post_processor special token '\(name)' has a non-integer id")
                        }
                        return id
                    }
                    if seenSequence { result.suffix += values } else { result.prefix += values }
                } else {
                    throw ModelIOError(.malformed, path: path, "post_processor.single item \(item.keys.sorted()) is neither Sequence nor SpecialToken")
                }
            }
            return result
        case "RobertaProcessing", "BertProcessing":
            func pair(_ key: String) throws -> Int {
                guard let p = object[key] as? [Any], p.count == 2, let id = BPEJSON.integer(p[1]) else {
                    throw ModelIOError(.malformed, path: path, "post_processor.\(key) is not a [token, id] pair")
                }
                return id
            }
            return BPEPostProcessor(prefix: [try pair("cls")], suffix: [try pair("sep")])
        case "Sequence":
            let list = try BPEJSON.array(object["processors"], "post_processor.processors", path: path)
            var result = BPEPostProcessor()
            for item in list {
                guard let p = try parse(item, path: path, tokenId: tokenId) else { continue }
                result = BPEPostProcessor(prefix: p.prefix + result.prefix, suffix: result.suffix + p.suffix)
            }
            return result
        default:
            throw ModelIOError(.unsupported, path: path, "unsupported post_processor type '\(type)'")
        }
    }
}
