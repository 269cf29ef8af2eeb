import Foundation

// File reading for CLIPTokenizer: vocab.json, merges.txt, tokenizer.json, and the GPT-2 byte-level
// alphabet that CLIP's vocabulary is written in.

extension CLIPTokenizer {
    /// The printable character standing for each byte (GPT-2's `bytes_to_unicode`): bytes that are
    /// printable Latin-1 ('!'…'~', '¡'…'¬', '®'…'ÿ') stand for themselves; the other 68 bytes map, in
    /// increasing order, to U+0100, U+0101, ….
    static let byteLevelCharacters: [Character] = {
        var table = [Character](repeating: " ", count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Character(Unicode.Scalar(UInt32(b))!)
            } else {
                table[b] = Character(Unicode.Scalar(256 + extra)!)
                extra += 1
            }
        }
        return table
    }()

    /// The bytes a vocabulary token stands for: each byte-level character maps back to its byte; a
    /// token holding any other character (an added token such as "<|endoftext|>" is all ASCII and maps
    /// to itself) is taken as its own UTF-8, as tokenizers' ByteLevel decoder does.
    static func byteLevelDecode(_ token: String, _ charToByte: [Character: UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for scalar in token.unicodeScalars {
            guard let b = charToByte[Character(scalar)] else { return Array(token.utf8) }
            out.append(b)
        }
        return out
    }

    /// Reads and parses a JSON file.
    /// - Throws: `.notFound` when the file is absent, `.unreadable` when it cannot be read,
    ///   `.malformed` when it is not JSON.
    static func readJSON(_ url: URL) throws -> Any {
        let data = try readModelFile(url)
        do {
            return try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw ModelIOError(.malformed, path: url.path, "not valid JSON (\(error.localizedDescription))")
        }
    }

    /// Ids at or above this are rejected, so a corrupt file cannot make the id tables huge.
    static let maxTokenId = 1 << 24

    /// Checks a token → id object: every value must be a non-negative integer.
    /// - Parameters:
    ///   - dict: the parsed object.
    ///   - path: file named in errors.
    ///   - key: JSON key of the object ("" for the top level), named in errors.
    static func vocabTable(_ dict: [String: Any], path: String, key: String) throws -> [String: Int] {
        var table: [String: Int] = [:]
        table.reserveCapacity(dict.count)
        for (token, value) in dict {
            guard let id = jsonInteger(value), id >= 0, id < maxTokenId else {
                let where_ = key.isEmpty ? "vocabulary entry" : key
                throw ModelIOError(.malformed, path: path,
                                   "\(where_) '\(token)' has id \(value), not an integer in [0, \(maxTokenId))")
            }
            table[token] = id
        }
        return table
    }

    /// The integer a parsed JSON value holds, or nil for booleans, fractions, strings and the rest.
    /// (`value as? Int` would also accept `true`, and `is Bool` is true for the numbers 0 and 1 on Linux.)
    static func jsonInteger(_ value: Any) -> Int? {
        guard let number = value as? NSNumber, number.objCType.pointee != CChar(UInt8(ascii: "c")) else { return nil }
        return Int(exactly: number.doubleValue)
    }

}
