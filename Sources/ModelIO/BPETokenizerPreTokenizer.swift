import Foundation

// tokenizer.json `pre_tokenizer`: ByteLevel, Split (known regexes, or a literal string), Digits,
// Sequence. The split regexes are not run by a regex engine: each known pattern has a hand-written
// scanner below that reproduces Oniguruma's leftmost-alternative, backtracking semantics (including
// `\s+(?!\S)`), on Unicode scalars, with `\p{L}`, `\p{N}`, `\s` as in `BPEScalarClass`.

/// A split regex whose scanner is implemented here; other patterns are rejected at load.
enum BPESplitRegex: Sendable, Equatable {
    /// GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    /// (ByteLevel's own regex; SmolLM2 runs it after Digits).
    case gpt2
    /// Llama-3's / Qwen2's `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` with k = 3 (Llama-3) or 1 (Qwen2, `\p{N}`).
    case llama3(maxDigits: Int)

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The scanner for a pattern string, or nil when the pattern is not one of the known ones.
    init?(pattern: String) {
        switch pattern {
        case Self.gpt2Pattern: self = .gpt2
        case Self.qwen2Pattern: self = .llama3(maxDigits: 1)
        case Self.llama3Pattern: self = .llama3(maxDigits: 3)
        default: return nil
        }
    }

    /// The matches of the pattern in `s`, left to right, as scalar index ranges.
    func matches(in s: [Unicode.Scalar]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < s.count {
            let end: Int
            switch self {
            case .gpt2: end = Self.gpt2Match(s, i)
            case .llama3(let k): end = Self.llama3Match(s, i, maxDigits: k)
            }
            out.append(i..<end)
            i = end
        }
        return out
    }

    private typealias C = BPEScalarClass

    @inline(__always)
    private static func isOther(_ c: Unicode.Scalar) -> Bool {
        !C.isSpace(c) && !C.isLetter(c) && !C.isNumber(c)
    }

    /// `\s+(?!\S)|\s+` at `i` (s[i] is whitespace): the whole run when it ends the text, else the run
    /// less its last scalar (left for the next token), else the single scalar.
    @inline(__always)
    private static func whitespaceMatch(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        var e = i
        while e < s.count && C.isSpace(s[e]) { e += 1 }
        if e == s.count || e - i < 2 { return e }
        return e - 1
    }

    /// End of the GPT-2 pattern's match at `i`. Every scalar is in one class, so a match always exists.
    private static func gpt2Match(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        let n = s.count
        let c = s[i]
        if c == "'" && i + 1 < n {
            let d = s[i + 1]
            if d == "s" || d == "t" || d == "m" || d == "d" { return i + 2 }
            if i + 2 < n {
                let e = s[i + 2]
                if (d == "r" && e == "e") || (d == "v" && e == "e") || (d == "l" && e == "l") { return i + 3 }
            }
        }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
        let j = (c == " " && i + 1 < n) ? i + 1 : i
        for cls in 0..<3 {
            @inline(__always) func test(_ x: Unicode.Scalar) -> Bool {
                switch cls {
                case 0: return C.isLetter(x)
                case 1: return C.isNumber(x)
                default: return isOther(x)
                }
            }
            guard test(s[j]) else { continue }
            var k = j + 1
            while k < n && test(s[k]) { k += 1 }
            return k
        }
        if C.isSpace(c) { return whitespaceMatch(s, i) }
        return i + 1
    }

    /// Case-insensitive contraction after an apostrophe: `'s 't 're 've 'm 'll 'd`.
    @inline(__always)
    private static func contraction(_ s: [Unicode.Scalar], _ i: Int) -> Int? {
        guard s[i] == "'", i + 1 < s.count else { return nil }
        func lower(_ c: Unicode.Scalar) -> Unicode.Scalar {
            if c == "\u{017F}" { return "s" }   // ſ folds to s
            if c == "\u{212A}" { return "k" }   // Kelvin sign folds to k
            return (c.value >= 0x41 && c.value <= 0x5A) ? Unicode.Scalar(c.value | 0x20)! : c
        }
        let d = lower(s[i + 1])
        if d == "s" || d == "t" || d == "m" || d == "d" { return i + 2 }
        if i + 2 < s.count {
            let e = lower(s[i + 2])
            if (d == "r" && e == "e") || (d == "v" && e == "e") || (d == "l" && e == "l") { return i + 3 }
        }
        return nil
    }

    /// End of the Llama-3 / Qwen2 pattern's match at `i`.
    private static func llama3Match(_ s: [Unicode.Scalar], _ i: Int, maxDigits: Int) -> Int {
        let n = s.count
        let c = s[i]
        if let end = contraction(s, i) { return end }
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if C.isLetter(c) {
            var k = i + 1
            while k < n && C.isLetter(s[k]) { k += 1 }
            return k
        }
        if c != "\r" && c != "\n" && !C.isNumber(c) && i + 1 < n && C.isLetter(s[i + 1]) {
            var k = i + 2
            while k < n && C.isLetter(s[k]) { k += 1 }
            return k
        }
        // `\p{N}{1,k}`
        if C.isNumber(c) {
            var k = i + 1
            while k < n && k - i < maxDigits && C.isNumber(s[k]) { k += 1 }
            return k
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let j = (c == " " && i + 1 < n && isOther(s[i + 1])) ? i + 1 : i
        if isOther(s[j]) {
            var k = j + 1
            while k < n && isOther(s[k]) { k += 1 }
            while k < n && (s[k] == "\r" || s[k] == "\n") { k += 1 }
            return k
        }
        // `\s*[\r\n]+`: up to the last CR/LF of the whitespace run.
        if C.isSpace(c) {
            var e = i
            var lastBreak = -1
            while e < n && C.isSpace(s[e]) {
                if s[e] == "\r" || s[e] == "\n" { lastBreak = e }
                e += 1
            }
            if lastBreak >= 0 { return lastBreak + 1 }
            return whitespaceMatch(s, i)
        }
        return i + 1
    }
}

/// How Split treats the matches.
enum BPESplitBehavior: String, Sendable, Equatable {
    case isolated = "Isolated", removed = "Removed"
}

/// A pre-tokeniser from tokenizer.json.
indirect enum BPEPreTokenizer: Sendable, Equatable {
    /// Optional prefix space, GPT-2 regex split (`useRegex`), then bytes → byte-level alphabet.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case splitRegex(BPESplitRegex, BPESplitBehavior)
    case splitString(String, BPESplitBehavior)
    /// Numbers (`\p{N}`) apart from the rest: each alone (`individual`) or as runs.
    case digits(individual: Bool)
    case sequence([BPEPreTokenizer])

    /// The words of `text`.
    func split(_ text: String) -> [String] { apply([text]) }

    func apply(_ pieces: [String]) -> [String] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(pieces) { $1.apply($0) }
        case .byteLevel(let addPrefixSpace, let useRegex):
            var out: [String] = []
            for var piece in pieces {
                if addPrefixSpace && !piece.hasPrefix(" ") { piece = " " + piece }
                if useRegex {
                    let s = Array(piece.unicodeScalars)
                    for r in BPESplitRegex.gpt2.matches(in: s) { out.append(BPEByteLevel.encode(s[r])) }
                } else {
                    out.append(BPEByteLevel.encode(piece))
                }
            }
            return out
        case .splitRegex(let regex, let behavior):
            return pieces.flatMap { piece -> [String] in
                let s = Array(piece.unicodeScalars)
                return Self.cut(s, regex.matches(in: s), behavior)
            }
        case .splitString(let literal, let behavior):
            return pieces.flatMap { piece -> [String] in
                let s = Array(piece.unicodeScalars)
                let p = Array(literal.unicodeScalars)
                var ranges: [Range<Int>] = []
                var i = 0
                while !p.isEmpty && i + p.count <= s.count {
                    if Array(s[i..<(i + p.count)]) == p {
                        ranges.append(i..<(i + p.count))
                        i += p.count
                    } else {
                        i += 1
                    }
                }
                return Self.cut(s, ranges, behavior)
            }
        case .digits(let individual):
            return pieces.flatMap { piece -> [String] in
                let s = Array(piece.unicodeScalars)
                var ranges: [Range<Int>] = []
                var i = 0
                while i < s.count {
                    guard BPEScalarClass.isNumber(s[i]) else { i += 1; continue }
                    var e = i + 1
                    if !individual { while e < s.count && BPEScalarClass.isNumber(s[e]) { e += 1 } }
                    ranges.append(i..<e)
                    i = e
                }
                return Self.cut(s, ranges, .isolated)
            }
        }
    }

    /// `s` cut at the (sorted, disjoint) `matches`: the gaps and, when isolated, the matches.
    private static func cut(_ s: [Unicode.Scalar], _ matches: [Range<Int>], _ behavior: BPESplitBehavior) -> [String] {
        var out: [String] = []
        var last = 0
        func emit(_ r: Range<Int>) {
            guard !r.isEmpty else { return }
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s[r])
            out.append(String(v))
        }
        for m in matches {
            emit(last..<m.lowerBound)
            if behavior == .isolated { emit(m) }
            last = m.upperBound
        }
        emit(last..<s.count)
        return out
    }

    /// Builds the pre-tokeniser of a tokenizer.json `pre_tokenizer` object (nil for JSON null).
    /// - Throws: `.unsupported` naming the type, behaviour or regex and the file.
    static func parse(_ json: Any?, path: String) throws -> BPEPreTokenizer? {
        guard let json, !(json is NSNull) else { return nil }
        let object = try BPEJSON.object(json, "pre_tokenizer", path: path)
        let type = try BPEJSON.string(object["type"], "pre_tokenizer.type", path: path)
        switch type {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: BPEJSON.bool(object["add_prefix_space"]) ?? true,
                              useRegex: BPEJSON.bool(object["use_regex"]) ?? true)
        case "Digits":
            return .digits(individual: BPEJSON.bool(object["individual_digits"]) ?? false)
        case "Sequence":
            let list = try BPEJSON.array(object["pretokenizers"], "pre_tokenizer.pretokenizers", path: path)
            return .sequence(try list.compactMap { try parse($0, path: path) })
        case "Split":
            if BPEJSON.bool(object["invert"]) == true {
                throw ModelIOError(.unsupported, path: path, "unsupported pre_tokenizer Split with invert: true")
            }
            let behaviorName = (object["behavior"] as? String) ?? "Isolated"
            guard let behavior = BPESplitBehavior(rawValue: behaviorName) else {
                throw ModelIOError(.unsupported, path: path, "unsupported pre_tokenizer Split behavior '\(behaviorName)'")
            }
            guard let pattern = object["pattern"] as? [String: Any] else {
                throw ModelIOError(.malformed, path: path, "pre_tokenizer Split has no pattern object")
            }
            if let literal = pattern["String"] as? String { return .splitString(literal, behavior) }
            if let regex = pattern["Regex"] as? String {
                guard let known = BPESplitRegex(pattern: regex) else {
                    throw ModelIOError(.unsupported, path: path,
                                       "unsupported pre_tokenizer Split regex '\(regex.prefix(80))' (known: GPT-2, Llama-3, Qwen2)")
                }
                return .splitRegex(known, behavior)
            }
            throw ModelIOError(.malformed, path: path, "pre_tokenizer Split pattern is neither String nor Regex")
        default:
            throw ModelIOError(.unsupported, path: path, "unsupported pre_tokenizer type '\(type)'")
        }
    }
}

/// GPT-2's byte-level alphabet: each byte stands as one printable character.
enum BPEByteLevel {
    /// The character of each byte: printable Latin-1 bytes ('!'…'~', '¡'…'¬', '®'…'ÿ') stand for
    /// themselves, the other 68 map in increasing order to U+0100, U+0101, ….
    static let scalars: [Unicode.Scalar] = {
        var table: [Unicode.Scalar] = []
        var extra: UInt32 = 0
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table.append(Unicode.Scalar(UInt32(b))!)
            } else {
                table.append(Unicode.Scalar(256 + extra)!)
                extra += 1
            }
        }
        return table
    }()

    /// Byte of each alphabet character.
    static let bytes: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in scalars.enumerated() { map[c] = UInt8(b) }
        return map
    }()

    /// The byte-level form of some text's UTF-8.
    static func encode<S: Sequence>(_ text: S) -> String where S.Element == Unicode.Scalar {
        var v = String.UnicodeScalarView()
        for scalar in text {
            for b in String(scalar).utf8 { v.append(scalars[Int(b)]) }
        }
        return String(v)
    }

    static func encode(_ text: String) -> String { encode(text.unicodeScalars) }
}
