import Foundation

// Normaliser and pre-tokeniser of the CLIP tokenizer, as transformers 5.24's `CLIPTokenizer`
// (tokenization_clip.py, backed by huggingface/tokenizers 0.23) builds them:
//
//   normalizer    = Sequence[NFC, Replace(Regex(r"\s+"), " "), Lowercase]
//   pre_tokenizer = Sequence[Split(Regex(CLIP_PATTERN), behavior: removed, invert: true),
//                            ByteLevel(add_prefix_space: false, use_regex: true)]
//   CLIP_PATTERN  = <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// Facts reproduced here (all checked by the golden tests):
// - The regexes run on Oniguruma: `\s` is U+0009–U+000D, U+0085 and the Zs/Zl/Zp categories
//   (U+0020, U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000);
//   `\p{L}` is Lu/Ll/Lt/Lm/Lo and `\p{N}` is Nd/Nl/No, from Unicode 16.0 tables: scalars that
//   Unicode 17+ assigned are neither (the Swift runtime's tables are newer, so they are masked by age).
// - `Lowercase` maps each scalar on its own with the full Unicode lowercase mapping (Rust's
//   `char::to_lowercase`): "İ" becomes "i" + U+0307, and "Σ" is always "σ" (no final-sigma rule).
// - Alternation is ordered, not longest: at each position the special-token names are tried first,
//   then the contractions (straight apostrophe only, after lower-casing), then a letter run, then
//   ONE number scalar, then a greedy run of anything that is neither space, letter nor number.
//   Text between matches (whitespace) is dropped.
// - `ByteLevel(use_regex: true)` splits each piece again with GPT-2's pattern. Pieces hold no
//   whitespace, so this only changes the two special names, which become "<|", "name", "|>".
// - Each piece is then mapped to its UTF-8 bytes; the BPE model sees one symbol per byte.

extension CLIPTokenizer {
    /// The character classes CLIP's split pattern distinguishes.
    enum ScalarClass {
        case space, letter, number, other
    }

    /// Major Unicode version of the tables in the reference's regex engine (Oniguruma inside
    /// tokenizers 0.23): every scalar Unicode 17.0 added is classified as unassigned there.
    static let regexUnicodeMajor = 16

    /// Classifies one scalar as Oniguruma does for `\s`, `\p{L}` and `\p{N}`.
    static func scalarClass(_ s: Unicode.Scalar) -> ScalarClass {
        switch s.value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0: return .space
        case 0x30...0x39: return .number
        case 0x61...0x7A, 0x41...0x5A: return .letter
        case 0..<0x80: return .other
        default: break
        }
        // tokenizers 0.23's Oniguruma has Unicode 16.0 tables: later scalars are unassigned there.
        if let age = s.properties.age, age.major > regexUnicodeMajor { return .other }
        switch s.properties.generalCategory {
        case .spaceSeparator, .lineSeparator, .paragraphSeparator:
            return .space
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    /// Applies CLIP's normaliser: NFC, every run of whitespace to one space, then per-scalar lower-casing.
    /// - Parameter text: one stretch of user text that holds no special token.
    /// - Returns: the normalised scalars.
    static func normalize(_ text: String) -> [Unicode.Scalar] {
        let composed = text.precomposedStringWithCanonicalMapping
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(composed.unicodeScalars.count)
        var inSpace = false
        for s in composed.unicodeScalars {
            if scalarClass(s) == .space {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            if s.isASCII {
                out.append(s.value >= 0x41 && s.value <= 0x5A ? Unicode.Scalar(s.value + 0x20)! : s)
            } else if s.properties.changesWhenLowercased {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            } else {
                out.append(s)
            }
        }
        return out
    }

    /// The special-token names CLIP's split pattern keeps whole (before ByteLevel re-splits them).
    private static let patternSpecialNames: [[Unicode.Scalar]] = [
        Array("startoftext".unicodeScalars), Array("endoftext".unicodeScalars),
    ]

    /// Splits normalised text into the pieces BPE sees, as UTF-8 byte arrays, in order.
    /// - Parameters:
    ///   - s: normalised scalars (output of ``normalize(_:)``).
    ///   - body: called with each piece's UTF-8 bytes; return `false` to stop early.
    /// - Complexity: O(n) in the number of scalars.
    static func forEachPiece(_ s: [Unicode.Scalar], _ body: ([UInt8]) -> Bool) {
        let n = s.count
        var i = 0
        func emit(_ lo: Int, _ hi: Int) -> Bool {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(hi - lo)
            for k in lo..<hi { bytes.append(contentsOf: UTF8.encode(s[k])!) }
            return body(bytes)
        }
        while i < n {
            let c = s[i]
            // `<\|startoftext\|>|<\|endoftext\|>`: kept whole by Split, then cut into "<|", name, "|>".
            if c == "<", i + 1 < n, s[i + 1] == "|" {
                var matched = false
                for name in patternSpecialNames {
                    let end = i + 2 + name.count
                    if end + 2 <= n, Array(s[(i + 2)..<end]) == name, s[end] == "|", s[end + 1] == ">" {
                        if !emit(i, i + 2) || !emit(i + 2, end) || !emit(end, end + 2) { return }
                        i = end + 2
                        matched = true
                        break
                    }
                }
                if matched { continue }
            }
            // `'s|'t|'re|'ve|'m|'ll|'d`, tried in this order.
            if c == "'", i + 1 < n {
                let a = s[i + 1]
                var len = 0
                if a == "s" || a == "t" || a == "m" || a == "d" {
                    len = 2
                } else if i + 2 < n {
                    let b = s[i + 2]
                    if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { len = 3 }
                }
                if len > 0 {
                    if !emit(i, i + len) { return }
                    i += len
                    continue
                }
            }
            switch scalarClass(c) {
            case .space:
                i += 1
            case .number:  // `[\p{N}]`: one scalar per piece
                if !emit(i, i + 1) { return }
                i += 1
            case .letter:  // `[\p{L}]+`
                var j = i + 1
                while j < n, scalarClass(s[j]) == .letter { j += 1 }
                if !emit(i, j) { return }
                i = j
            case .other:  // `[^\s\p{L}\p{N}]+`
                var j = i + 1
                while j < n, scalarClass(s[j]) == .other { j += 1 }
                if !emit(i, j) { return }
                i = j
            }
        }
    }
}
