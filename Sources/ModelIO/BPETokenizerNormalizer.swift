import Foundation

// tokenizer.json `normalizer`: the types used by the GPT-2, Llama, Qwen2 and SmolLM2 families.

/// A text normaliser from tokenizer.json.
indirect enum BPENormalizer: Sendable, Equatable {
    case nfc, nfd, nfkc, nfkd, lowercase
    case prepend(String)
    case replace(String, String)
    case sequence([BPENormalizer])

    func normalize(_ text: String) -> String {
        switch self {
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase: return text.lowercased()
        case .prepend(let prefix): return text.isEmpty ? text : prefix + text
        case .replace(let pattern, let content):
            return pattern.isEmpty ? text : text.replacingOccurrences(of: pattern, with: content)
        case .sequence(let steps):
            return steps.reduce(text) { $1.normalize($0) }
        }
    }

    /// Builds the normaliser of a tokenizer.json `normalizer` object (nil for JSON null).
    /// - Throws: `.unsupported` naming the type and the file for other types.
    static func parse(_ json: Any?, path: String) throws -> BPENormalizer? {
        guard let json, !(json is NSNull) else { return nil }
        let object = try BPEJSON.object(json, "normalizer", path: path)
        let type = try BPEJSON.string(object["type"], "normalizer.type", path: path)
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Prepend": return .prepend(try BPEJSON.string(object["prepend"], "normalizer.prepend", path: path))
        case "Replace":
            let pattern = try BPEJSON.stringPattern(object["pattern"], "normalizer.pattern", path: path)
            return .replace(pattern, try BPEJSON.string(object["content"], "normalizer.content", path: path))
        case "Sequence":
            let list = try BPEJSON.array(object["normalizers"], "normalizer.normalizers", path: path)
            return .sequence(try list.compactMap { try parse($0, path: path) })
        default:
            throw ModelIOError(.unsupported, path: path, "unsupported normalizer type '\(type)'")
        }
    }
}
