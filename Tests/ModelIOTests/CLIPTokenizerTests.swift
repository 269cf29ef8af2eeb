import Foundation
import XCTest
@testable import ModelIO

/// Parity of `CLIPTokenizer` with transformers 5.24's `CLIPTokenizer` (goldens from
/// Tools/make_tokenizer_fixtures.py), over every loading path, plus load errors.
final class CLIPTokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/clip-tokenizer")
    static let reducedFolder = fixtures.appendingPathComponent("reduced")

    struct Golden: Decodable {
        struct Case: Decodable {
            let text: String
            let max_length: Int?
            let ids: [Int]
            let decoded: String
        }
        let reference: String
        let transformers: String
        let vocab_size: Int
        let bos_token_id: Int
        let eos_token_id: Int
        let cases: [Case]
    }

    static func golden(_ url: URL) throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }

    /// Checks every golden case: ids exactly, and decode(ids) exactly. Returns the number of cases.
    @discardableResult
    func check(_ tok: CLIPTokenizer, _ golden: Golden, _ label: String,
               file: StaticString = #filePath, line: UInt = #line) -> Int {
        XCTAssertEqual(golden.transformers, "5.24.0", file: file, line: line)
        XCTAssertEqual(tok.vocabularySize, golden.vocab_size, "\(label) vocabularySize", file: file, line: line)
        XCTAssertEqual(tok.bosTokenId, golden.bos_token_id, "\(label) bos", file: file, line: line)
        XCTAssertEqual(tok.eosTokenId, golden.eos_token_id, "\(label) eos", file: file, line: line)
        var failures = 0
        for c in golden.cases {
            let ids = tok.encode(c.text, maxLength: c.max_length)
            if ids != c.ids {
                failures += 1
                XCTFail("\(label): encode(\(c.text.debugDescription), maxLength: \(c.max_length.map(String.init) ?? "nil")) = \(ids), expected \(c.ids)",
                        file: file, line: line)
            }
            let text = tok.decode(c.ids)
            if text != c.decoded {
                failures += 1
                XCTFail("\(label): decode(\(c.ids)) = \(text.debugDescription), expected \(c.decoded.debugDescription)",
                        file: file, line: line)
            }
            if failures > 20 { break }
        }
        return golden.cases.count
    }

    // MARK: - Full CLIP vocabulary (49408 tokens)

    func testFullVocabularyFromVocabAndMerges() throws {
        let golden = try Self.golden(Self.fixtures.appendingPathComponent("golden.json"))
        XCTAssertGreaterThanOrEqual(golden.cases.count, 250)
        // The folder holds no tokenizer.json, so init(folder:) takes the vocab.json + merges.txt path.
        let tok = try CLIPTokenizer(folder: Self.fixtures)
        let n = check(tok, golden, "full vocab.json+merges.txt")
        XCTAssertEqual(tok.vocabularySize, 49408)
        XCTAssertEqual(tok.encode("a photo of a cat"), [49406, 320, 1125, 539, 320, 2368, 49407])
        print("CLIPTokenizer full vocabulary, vocab.json+merges.txt: \(n) golden strings")
    }

    func testFullVocabularyFromTokenizerJSON() throws {
        let golden = try Self.golden(Self.fixtures.appendingPathComponent("golden.json"))
        // The full tokenizer.json (3.6 MB) is not committed: splice the full vocabulary and merges
        // (as "a b" strings, the older layout) into the reduced folder's tokenizer.json.
        let template = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.reducedFolder.appendingPathComponent("tokenizer.json"))) as! [String: Any]
        let vocab = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.fixtures.appendingPathComponent("vocab.json")))
        let mergesText = try String(contentsOf: Self.fixtures.appendingPathComponent("merges.txt"), encoding: .utf8)
        let merges = mergesText.split(separator: "\n").filter { !$0.hasPrefix("#version") }.map(String.init)
        XCTAssertEqual(merges.count, 48894)
        var root = template
        var model = root["model"] as! [String: Any]
        model["vocab"] = vocab
        model["merges"] = merges
        root["model"] = model
        let ids = vocab as! [String: Int]
        root["added_tokens"] = (root["added_tokens"] as! [[String: Any]]).map { token in
            var token = token
            token["id"] = ids[token["content"] as! String]!
            return token
        }
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("tokenizer.json")
        try JSONSerialization.data(withJSONObject: root).write(to: url)
        let tok = try CLIPTokenizer(tokenizerJSON: url)
        let n = check(tok, golden, "full tokenizer.json")
        print("CLIPTokenizer full vocabulary, tokenizer.json: \(n) golden strings")
    }

    // MARK: - Reduced vocabulary (first 1000 merges, 1514 tokens)

    func testReducedVocabularyAllLoadingPaths() throws {
        let golden = try Self.golden(Self.reducedFolder.appendingPathComponent("golden.json"))
        XCTAssertGreaterThanOrEqual(golden.cases.count, 50)
        let dir = Self.reducedFolder
        let viaFolder = try CLIPTokenizer(folder: dir)  // tokenizer.json is present: that path
        let viaJSON = try CLIPTokenizer(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
        let viaFiles = try CLIPTokenizer(vocab: dir.appendingPathComponent("vocab.json"),
                                         merges: dir.appendingPathComponent("merges.txt"))
        XCTAssertEqual(viaFolder.vocabularySize, 1514)
        var n = 0
        n += check(viaFolder, golden, "reduced folder")
        n += check(viaJSON, golden, "reduced tokenizer.json")
        n += check(viaFiles, golden, "reduced vocab.json+merges.txt")
        print("CLIPTokenizer reduced vocabulary: \(golden.cases.count) golden strings × 3 loading paths = \(n) checks")
    }

    // MARK: - Unicode tables of the reference, every code point

    /// Every scalar's class under CLIP's split pattern (`\s`, `\p{L}`, `\p{N}`, other) and its
    /// normalised form (NFC, whitespace, lowercase) match what tokenizers 0.23 does.
    func testEveryCodePointMatchesReferenceUnicodeTables() throws {
        let url = Self.fixtures.appendingPathComponent("unicode.json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let ranges = root["classes"] as! [[Any]]
        var classMismatches: [String] = []
        var checked = 0
        for r in ranges {
            let lo = r[0] as! Int, hi = r[1] as! Int, k = r[2] as! String
            if k == "x" { continue }
            let expected: CLIPTokenizer.ScalarClass =
                k == "s" ? .space : k == "l" ? .letter : k == "n" ? .number : .other
            for c in lo...hi {
                checked += 1
                let got = CLIPTokenizer.scalarClass(Unicode.Scalar(UInt32(c))!)
                if got != expected, classMismatches.count < 10 {
                    classMismatches.append(String(format: "U+%04X: %@ vs %@", c, "\(got)", "\(expected)"))
                }
            }
        }
        XCTAssertEqual(checked, 0x110000 - 0x800)
        XCTAssertEqual(classMismatches, [])

        let normalized = root["normalized"] as! [String: [Int]]
        var normMismatches: [String] = []
        for c in 0..<0x110000 where !(0xD800..<0xE000).contains(c) {
            let scalar = Unicode.Scalar(UInt32(c))!
            let got = CLIPTokenizer.normalize(String(Character(scalar))).map { Int($0.value) }
            let expected = normalized[String(c)] ?? [c]
            if got != expected, normMismatches.count < 10 {
                normMismatches.append(String(format: "U+%04X: %@ vs %@", c, "\(got)", "\(expected)"))
            }
        }
        XCTAssertEqual(normMismatches, [])
    }

    // MARK: - Behaviour spelled out

    func testTruncationKeepsBOSAndEOS() throws {
        let tok = try CLIPTokenizer(folder: Self.reducedFolder)
        let long = String(repeating: "forklift ", count: 200)
        let full = tok.encode(long, maxLength: nil)
        XCTAssertGreaterThan(full.count, 77)
        let ids = tok.encode(long)
        XCTAssertEqual(ids.count, 77)
        XCTAssertEqual(ids.first, tok.bosTokenId)
        XCTAssertEqual(ids.last, tok.eosTokenId)
        XCTAssertEqual(Array(ids[1..<76]), Array(full[1..<76]))
        XCTAssertEqual(tok.encode(long, maxLength: 2), [tok.bosTokenId, tok.eosTokenId])
        XCTAssertEqual(tok.encode(long, maxLength: 1), full, "transformers does not truncate below 2")
        XCTAssertEqual(tok.encode(""), [tok.bosTokenId, tok.eosTokenId])
        XCTAssertEqual(tok.encode(" \t\n "), [tok.bosTokenId, tok.eosTokenId])
    }

    func testLongWordWithoutSpacesIsFast() throws {
        let tok = try CLIPTokenizer(folder: Self.reducedFolder)
        let word = String(repeating: "abcdefghij", count: 5_000)  // one 50 000-byte BPE word
        let start = Date()
        let ids = tok.encode(word, maxLength: nil)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5.0)
        XCTAssertEqual(tok.decode(ids), word)
    }

    // MARK: - Load errors

    func testMissingVocabularyNamesTheFile() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try copy("merges.txt", to: dir)
        XCTAssertThrowsError(try CLIPTokenizer(folder: dir)) { error in
            let e = error as? ModelIOError
            XCTAssertEqual(e?.kind, .notFound)
            XCTAssertEqual(e?.path, dir.appendingPathComponent("vocab.json").path)
            XCTAssertTrue("\(error)".contains("vocab.json"), "\(error)")
        }
    }

    func testMissingMergesNamesTheFile() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try copy("vocab.json", to: dir)
        XCTAssertThrowsError(try CLIPTokenizer(folder: dir)) { error in
            let e = error as? ModelIOError
            XCTAssertEqual(e?.kind, .notFound)
            XCTAssertTrue("\(error)".contains("merges.txt"), "\(error)")
        }
    }

    func testMalformedMergesLine() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try copy("vocab.json", to: dir)
        try "#version: 0.2\ni n\nt h e\n".write(to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(folder: dir)) { error in
            let e = error as? ModelIOError
            XCTAssertEqual(e?.kind, .malformed)
            XCTAssertTrue("\(error)".contains("merges.txt line 3 't h e'"), "\(error)")
        }
    }

    func testMergeOutsideTheVocabulary() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try copy("vocab.json", to: dir)
        try "#version: 0.2\ni n\nqq zz\n".write(to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(folder: dir)) { error in
            XCTAssertEqual((error as? ModelIOError)?.kind, .malformed)
            XCTAssertTrue("\(error)".contains("merge 2 'qq zz': 'qq' is not in the vocabulary"), "\(error)")
        }
    }

    func testMalformedVocabulary() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try copy("merges.txt", to: dir)
        let vocab = dir.appendingPathComponent("vocab.json")
        try "{\"a\": 0, ".write(to: vocab, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(folder: dir)) { error in
            XCTAssertEqual((error as? ModelIOError)?.kind, .malformed)
            XCTAssertTrue("\(error)".contains("vocab.json"), "\(error)")
        }
        try "{\"a\": 0, \"b\": \"one\"}".write(to: vocab, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(folder: dir)) { error in
            XCTAssertTrue("\(error)".contains("vocab.json: vocabulary entry 'b' has id one, not an integer"), "\(error)")
        }
        try "[1, 2]".write(to: vocab, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(folder: dir)) { error in
            XCTAssertTrue("\(error)".contains("vocab.json: top level is not a JSON object"), "\(error)")
        }
    }

    func testMalformedTokenizerJSONNamesTheKey() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("tokenizer.json")
        let template = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.reducedFolder.appendingPathComponent("tokenizer.json"))) as! [String: Any]

        func write(_ edit: (inout [String: Any]) -> Void) throws {
            var root = template
            var model = root["model"] as! [String: Any]
            edit(&model)
            root["model"] = model
            try JSONSerialization.data(withJSONObject: root).write(to: url)
        }
        func expect(_ kind: ModelIOError.Kind, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try CLIPTokenizer(folder: dir), line: line) { error in
                XCTAssertEqual((error as? ModelIOError)?.kind, kind, "\(error)", line: line)
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
                XCTAssertTrue("\(error)".contains("tokenizer.json"), "\(error)", line: line)
            }
        }
        try write { $0["vocab"] = nil }
        expect(.malformed, "model.vocab")
        try write { $0["merges"] = 5 }
        expect(.malformed, "model.merges")
        try write { $0["merges"] = [["i", "n"], ["t"]] }
        expect(.malformed, "model.merges[1]")
        try write { $0["merges"] = ["i n", "th e x"] }
        expect(.malformed, "model.merges[1] 'th e x'")
        try write { $0["type"] = "WordPiece" }
        expect(.unsupported, "model.type 'WordPiece'")
        try "not json".write(to: url, atomically: true, encoding: .utf8)
        expect(.malformed, "not valid JSON")
    }

    func testMissingTokenizerJSONFile() {
        let url = URL(fileURLWithPath: "/nonexistent-atp-dir/tokenizer.json")
        XCTAssertThrowsError(try CLIPTokenizer(tokenizerJSON: url)) { error in
            XCTAssertEqual(error as? ModelIOError,
                           ModelIOError(.notFound, path: url.path, "tokenizer.json not found"))
        }
    }

    // MARK: - Helpers

    func makeTempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func copy(_ name: String, to dir: URL) throws {
        try FileManager.default.copyItem(at: Self.reducedFolder.appendingPathComponent(name),
                                         to: dir.appendingPathComponent(name))
    }
}
