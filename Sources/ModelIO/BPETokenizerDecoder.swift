import Foundation

// tokenizer.json `decoder`: each decoder maps the token list to a new list (huggingface/tokenizers'
// `decode_chain`); the final strings are concatenated.

/// A decoder from tokenizer.json.
indirect enum BPEDecoder: Sendable, Equatable {
    /// Byte-level alphabet → bytes → UTF-8 (invalid sequences become U+FFFD). A token with a
    /// character outside the alphabet is taken as its own UTF-8.
    case byteLevel
    /// `<0xXX>` tokens → bytes; a run that is not valid UTF-8 gives one U+FFFD per byte.
    case byteFallback
    /// All tokens joined into one.
    case fuse
    /// Up to `start` leading and `stop` trailing `content` characters removed from each token.
    case strip(content: Character, start: Int, stop: Int)
    /// Each occurrence of `pattern` replaced by `content` in each token.
    case replace(pattern: String, content: String)
    case sequence([BPEDecoder])

    func decode(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens {
                var own: [UInt8] = []
                var ok = true
                for scalar in token.unicodeScalars {
                    guard let b = BPEByteLevel.bytes[scalar] else { ok = false; break }
                    own.append(b)
                }
                bytes += ok ? own : Array(token.utf8)
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let text = String(validating: pending, as: UTF8.self) {
                    out.append(text)
                } else {
                    out.append(String(repeating: "\u{FFFD}", count: pending.count))
                }
                pending = []
            }
            for token in tokens {
                let u = Array(token.utf8)
                if u.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">"),
                   let b = UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16) {
                    pending.append(b)
                } else {
                    flush()
                    out.append(token)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                var chars = Array(token)
                var lead = 0
                while lead < start && lead < chars.count && chars[lead] == content { lead += 1 }
                chars.removeFirst(lead)
                var trail = 0
                while trail < stop && !chars.isEmpty && chars[chars.count - 1] == content {
                    chars.removeLast()
                    trail += 1
                }
                return String(chars)
            }
        case .replace(let pattern, let content):
            return tokens.map { $0.replacingOccurrences(of: pattern, with: content) }
        case .sequence(let steps):
            return steps.reduce(tokens) { $1.decode($0) }
        }
    }

    /// Builds the decoder of a tokenizer.json `decoder` object (nil for JSON null).
    /// - Throws: `.unsupported` naming the type and the file for other types.
    static func parse(_ json: Any?, path: String) throws -> BPEDecoder? {
        guard let json, !(json is NSNull) else { return nil }
        let object = try BPEJSON.object(json, "decoder", path: path)
        let type = try BPEJSON.string(object["type"], "decoder.type", path: path)
        switch type {
        case "ByteLevel": return .byteLevel
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            let content = try BPEJSON.string(object["content"], "decoder.content", path: path)
            guard content.count == 1 else {
                throw ModelIOError(.malformed, path: path, "decoder Strip content '\(content)' is not one character")
            }
            return .strip(content: content.first!, start: BPEJSON.integer(object["start"] ?? 0) ?? 0,
                          stop: BPEJSON.integer(object["stop"] ?? 0) ?? 0)
        case "Replace":
            let pattern = try BPEJSON.stringPattern(object["pattern"], "decoder.pattern", path: path)
            return .replace(pattern: pattern, content: try BPEJSON.string(object["content"], "decoder.content", path: path))
        case "Sequence":
            let list = try BPEJSON.array(object["decoders"], "decoder.decoders", path: path)
            return .sequence(try list.compactMap { try parse($0, path: path) })
        default:
            throw ModelIOError(.unsupported, path: path, "unsupported decoder type '\(type)'")
        }
    }
}
