import Foundation

// Splitting added tokens out of the text, as huggingface/tokenizers' `AddedVocabulary::find_matches`:
// non-overlapping matches found left to right, the longest token at the leftmost position winning;
// a `single_word` token is skipped inside a word; `lstrip`/`rstrip` tokens absorb the whitespace
// (Unicode White_Space) next to them.

/// A piece of text after added-token splitting.
enum AddedSegment: Equatable {
    case text(String)
    case token(Int)
}

struct AddedTokenMatcher: Sendable {
    private struct Entry: Sendable {
        let scalars: [Unicode.Scalar]
        let token: BPEAddedToken
    }
    /// Entries by first scalar, longest first.
    private let byFirst: [Unicode.Scalar: [Entry]]

    /// - Parameter tokens: each token with the text it is matched as (its content, normalised for
    ///   `normalized` tokens).
    init(_ tokens: [(BPEAddedToken, String)]) {
        var table: [Unicode.Scalar: [Entry]] = [:]
        for (token, text) in tokens {
            let scalars = Array(text.unicodeScalars)
            guard let first = scalars.first else { continue }
            table[first, default: []].append(Entry(scalars: scalars, token: token))
        }
        for key in table.keys { table[key]!.sort { $0.scalars.count > $1.scalars.count } }
        byFirst = table
    }

    var isEmpty: Bool { byFirst.isEmpty }

    /// `text` cut into plain pieces and added-token ids, in order; empty pieces are left out.
    func split(_ text: String) -> [AddedSegment] {
        if byFirst.isEmpty { return text.isEmpty ? [] : [.text(text)] }
        let s = Array(text.unicodeScalars)
        var out: [AddedSegment] = []
        var offset = 0   // end of the last emitted match
        var i = 0
        func emitText(_ lo: Int, _ hi: Int) {
            if hi > lo {
                var piece = String.UnicodeScalarView()
                piece.append(contentsOf: s[lo..<hi])
                out.append(.text(String(piece)))
            }
        }
        while i < s.count {
            guard let candidates = byFirst[s[i]],
                  let entry = candidates.first(where: { matches($0.scalars, s, at: i) }) else {
                i += 1
                continue
            }
            var start = i
            var stop = i + entry.scalars.count
            let token = entry.token
            if token.singleWord {
                let startOK = start == 0 || !Self.isWordScalar(s[start - 1])
                let stopOK = stop == s.count || !Self.isWordScalar(s[stop])
                if !(startOK && stopOK) {
                    i = stop   // the match is consumed but not used, as the reference does
                    continue
                }
            }
            if token.lstrip {
                var newStart = start
                while newStart > offset && s[newStart - 1].properties.isWhitespace { newStart -= 1 }
                start = newStart
            }
            if token.rstrip {
                while stop < s.count && s[stop].properties.isWhitespace { stop += 1 }
            }
            emitText(offset, start)
            out.append(.token(token.id))
            offset = stop
            i = stop
        }
        emitText(offset, s.count)
        return out
    }

    private func matches(_ pattern: [Unicode.Scalar], _ s: [Unicode.Scalar], at i: Int) -> Bool {
        guard i + pattern.count <= s.count else { return false }
        for k in 0..<pattern.count where s[i + k] != pattern[k] { return false }
        return true
    }

    private static func isWordScalar(_ c: Unicode.Scalar) -> Bool {
        c == "_" || BPEScalarClass.isLetter(c) || BPEScalarClass.isNumber(c)
    }
}

/// Unicode classes used by the pre-tokenisers (the regex classes `\p{L}`, `\p{N}`, `\s`).
enum BPEScalarClass {
    /// `\p{L}`: general category Lu, Ll, Lt, Lm, Lo.
    @inline(__always)
    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return (c.value | 0x20) >= 0x61 && (c.value | 0x20) <= 0x7A }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// `\p{N}`: general category Nd, Nl, No (Rust's `char::is_numeric`).
    @inline(__always)
    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return c.value >= 0x30 && c.value <= 0x39 }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// `\s`: the White_Space property.
    @inline(__always)
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return c == " " || (c.value >= 0x09 && c.value <= 0x0D) }
        return c.properties.isWhitespace
    }
}
