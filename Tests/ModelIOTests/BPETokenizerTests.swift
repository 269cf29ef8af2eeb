import Foundation
import XCTest
@testable import ModelIO

/// BPETokenizer against goldens from transformers' AutoTokenizer / huggingface tokenizers
/// (Tools/make_bpe_fixtures.py): exact id equality for every string and every loading path.
final class BPETokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/bpe")

    struct Case: Decodable {
        let text: String
        let ids: [Int]
        let ids_special: [Int]?
        let ids_shipped: [Int]?
        let decoded: String
        let decoded_skip: String
    }

    struct Golden: Decodable {
        let cases: [Case]
        let bos_token_id: Int?
        let eos_token_id: Int?
        let vocab_size: Int
    }

    static func golden(_ name: String) throws -> Golden {
        let data = try Data(contentsOf: fixtures.appendingPathComponent(name))
        return try JSONDecoder().decode(Golden.self, from: data)
    }

    /// Checks ids (with and without special tokens) and both decodes of every case; reports the
    /// first mismatches with their text.
    func check(_ tokenizer: BPETokenizer, _ golden: Golden, label: String,
               skip: (Case) -> Bool = { _ in false }, file: StaticString = #filePath, line: UInt = #line) {
        var checked = 0
        var failures: [String] = []
        for c in golden.cases where !skip(c) {
            checked += 1
            let plain = tokenizer.encode(c.text, addSpecialTokens: false)
            if plain != c.ids { failures.append("ids of \(c.text.debugDescription): \(plain) != \(c.ids)") }
            let special = c.ids_special ?? c.ids
            let withSpecial = tokenizer.encode(c.text, addSpecialTokens: true)
            if withSpecial != special {
                failures.append("ids+special of \(c.text.debugDescription): \(withSpecial) != \(special)")
            }
            let decoded = tokenizer.decode(special, skipSpecialTokens: false)
            // Scalar-exact (Swift's == would accept canonically equivalent text).
            if !decoded.unicodeScalars.elementsEqual(c.decoded.unicodeScalars) {
                failures.append("decode of \(c.text.debugDescription): \(decoded.debugDescription) != \(c.decoded.debugDescription)")
            }
            let decodedSkip = tokenizer.decode(special, skipSpecialTokens: true)
            if !decodedSkip.unicodeScalars.elementsEqual(c.decoded_skip.unicodeScalars) {
                failures.append("decode(skip) of \(c.text.debugDescription): \(decodedSkip.debugDescription) != \(c.decoded_skip.debugDescription)")
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 200, "\(label): too few cases checked", file: file, line: line)
        XCTAssertTrue(failures.isEmpty, "\(label): \(failures.count) mismatches:\n" + failures.prefix(12).joined(separator: "\n"),
                      file: file, line: line)
    }

    // MARK: tokenizer.json folders

    func testGPT2PatternTokenizerJSON() throws {
        let golden = try Self.golden("gpt2/golden.json")
        let tokenizer = try BPETokenizer(folder: Self.fixtures.appendingPathComponent("gpt2"))
        check(tokenizer, golden, label: "gpt2")
        XCTAssertEqual(tokenizer.bosTokenId, golden.bos_token_id)
        XCTAssertEqual(tokenizer.eosTokenId, golden.eos_token_id)
        XCTAssertEqual(tokenizer.vocabularySize, golden.vocab_size)
    }

    func testQwen2PatternTokenizerJSON() throws {
        let golden = try Self.golden("qwen2/golden.json")
        let tokenizer = try BPETokenizer(folder: Self.fixtures.appendingPathComponent("qwen2"))
        check(tokenizer, golden, label: "qwen2")
        XCTAssertEqual(tokenizer.bosTokenId, golden.bos_token_id)
        XCTAssertEqual(tokenizer.eosTokenId, golden.eos_token_id)
        XCTAssertEqual(tokenizer.vocabularySize, golden.vocab_size)
    }

    func testLlama3PatternTokenizerJSON() throws {
        let golden = try Self.golden("llama3/golden.json")
        let tokenizer = try BPETokenizer(folder: Self.fixtures.appendingPathComponent("llama3"))
        check(tokenizer, golden, label: "llama3")
        XCTAssertEqual(tokenizer.vocabularySize, golden.vocab_size)
    }

    /// Llama-1/2 / LLaVA-1.5 style: Prepend + Replace normaliser, no pre-tokenizer, byte fallback,
    /// fused <unk>, Replace/ByteFallback/Fuse/Strip decoder; the chat template from chat_template.json.
    func testLlamaSentencePieceStyleTokenizerJSON() throws {
        let golden = try Self.golden("llama-sp/golden.json")
        let tokenizer = try BPETokenizer(folder: Self.fixtures.appendingPathComponent("llama-sp"))
        check(tokenizer, golden, label: "llama-sp")
        XCTAssertEqual(tokenizer.bosTokenId, 1)
        XCTAssertEqual(tokenizer.eosTokenId, 2)
        XCTAssertEqual(tokenizer.vocabularySize, golden.vocab_size)
        XCTAssertEqual(tokenizer.chatTemplate?.family, .llava)
    }

    /// vocab.json + merges.txt (no tokenizer.json, no post-processor): `add_bos_token: true` in
    /// tokenizer_config.json adds BOS; ids equal the tokenizer.json folder's.
    func testVocabAndMergesFolder() throws {
        let golden = try Self.golden("gpt2/golden.json")
        let tokenizer = try BPETokenizer(folder: Self.fixtures.appendingPathComponent("gpt2-files"))
        check(tokenizer, golden, label: "gpt2-files")
        XCTAssertEqual(tokenizer.bosTokenId, golden.bos_token_id)
        XCTAssertEqual(tokenizer.eosTokenId, golden.eos_token_id)
    }

    func testTokenLookups() throws {
        let tokenizer = try BPETokenizer(folder: Self.fixtures.appendingPathComponent("gpt2"))
        for token in ["<|im_start|>", "<|im_end|>", "<image>", "<mask>", "Ġthe"] {
            let id = try XCTUnwrap(tokenizer.tokenId(for: token), token)
            XCTAssertEqual(tokenizer.token(for: id), token)
        }
        XCTAssertNil(tokenizer.tokenId(for: "not a token at all"))
        XCTAssertNil(tokenizer.token(for: -1))
        XCTAssertNil(tokenizer.token(for: 1 << 30))
        // Unknown ids are skipped by decode.
        let hello = tokenizer.encode("Hello", addSpecialTokens: false)
        XCTAssertEqual(tokenizer.decode(hello + [1 << 30], skipSpecialTokens: false), "Hello")
        XCTAssertEqual(tokenizer.stopTokenIds, [tokenizer.tokenId(for: "<|im_end|>")!])
    }

    /// Byte-level BPE loses nothing: long mixed text and a 50 000-scalar word without spaces decode
    /// back to themselves (the merge loop is O(n log n), so the long word is quick).
    func testLongInputsRoundTrip() throws {
        let tokenizer = try BPETokenizer(folder: Self.fixtures.appendingPathComponent("qwen2"))
        let golden = try Self.golden("qwen2/golden.json")
        let nfc = golden.cases.map(\.text).filter {   // <mask> absorbs the space on its left (lstrip)
            !$0.contains("<mask>") && $0.precomposedStringWithCanonicalMapping.unicodeScalars.elementsEqual($0.unicodeScalars)
        }
        let long = String(repeating: nfc.joined(separator: " | "), count: 20)
        let ids = tokenizer.encode(long, addSpecialTokens: false)
        XCTAssertTrue(tokenizer.decode(ids, skipSpecialTokens: false).unicodeScalars.elementsEqual(long.unicodeScalars))
        let word = String(repeating: "abcé東😀", count: 50_000 / 6)
        let start = Date()
        let wordIds = tokenizer.encode(word, addSpecialTokens: false)
        XCTAssertEqual(tokenizer.decode(wordIds, skipSpecialTokens: false), word)
        XCTAssertLessThan(Date().timeIntervalSince(start), 20, "a 50k-scalar word took too long")
    }

    // MARK: GGUF

    /// The fixture vocabularies as GGUF metadata: gpt-2, qwen2 and llama-bpe pre-tokenisers,
    /// add_bos_token true. GGUF carries no lstrip flag (cases with `<mask>` skipped) and no NFC
    /// normaliser (cases whose text is not already NFC skipped for qwen2 / llama3).
    func testGGUFVocabularies() throws {
        for (name, needsNFC) in [("gpt2", false), ("qwen2", true), ("llama3", true)] {
            let golden = try Self.golden("\(name)/golden.json")
            let tokenizer = try BPETokenizer(ggufURL: Self.fixtures.appendingPathComponent("\(name)-vocab.gguf.bin"))
            check(tokenizer, golden, label: "\(name)-vocab.gguf.bin", skip: { c in
                c.text.contains("<mask>")
                    || (needsNFC && !c.text.precomposedStringWithCanonicalMapping.unicodeScalars.elementsEqual(c.text.unicodeScalars))
            })
            XCTAssertEqual(tokenizer.bosTokenId, golden.bos_token_id)
            XCTAssertEqual(tokenizer.eosTokenId, golden.eos_token_id)
            XCTAssertEqual(tokenizer.chatTemplate?.family, .chatML(defaultSystemPrompt: "You are a helpful assistant."))
        }
    }

    /// The real SmolLM2-135M-Instruct GGUF (env ATP_SMOLLM2_GGUF). Ids are transformers'
    /// (`AutoTokenizer.from_pretrained(dir, gguf_file=…)`), except where SmolLM2's shipped
    /// pre-tokeniser (Digits before ByteLevel, which llama.cpp's "smollm" also runs) differs from
    /// transformers' GGUF conversion (ByteLevel alone): there the shipped ids are expected.
    func testSmolLM2GGUF() throws {
        guard let path = ProcessInfo.processInfo.environment["ATP_SMOLLM2_GGUF"], !path.isEmpty else {
            throw XCTSkip("set ATP_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf to run the SmolLM2 tokenizer test")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("ATP_SMOLLM2_GGUF=\(path) does not exist")
        }
        struct SmolGolden: Decodable {
            struct Chat: Decodable {
                let messages: [[String: String]]
                let add_generation_prompt: Bool
                let text: String
                let ids: [Int]
            }
            let cases: [Case]
            let bos_token_id: Int?
            let eos_token_id: Int?
            let vocab_size: Int
            let chat: [Chat]
        }
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("smollm2_golden.json"))
        let golden = try JSONDecoder().decode(SmolGolden.self, from: data)
        let tokenizer = try BPETokenizer(ggufURL: URL(fileURLWithPath: path))
        var shipped = golden.cases.map { c in
            Case(text: c.text, ids: c.ids_shipped ?? c.ids, ids_special: c.ids_shipped ?? c.ids, ids_shipped: nil,
                 decoded: c.decoded, decoded_skip: c.decoded_skip)
        }
        // Decodes were made from transformers' ids; for the differing cases decode those.
        shipped = shipped.enumerated().map { i, c in
            guard golden.cases[i].ids_shipped != nil else { return c }
            return Case(text: c.text, ids: c.ids, ids_special: c.ids, ids_shipped: nil,
                        decoded: tokenizer.decode(golden.cases[i].ids, skipSpecialTokens: false),
                        decoded_skip: tokenizer.decode(golden.cases[i].ids, skipSpecialTokens: true))
        }
        XCTAssertLessThanOrEqual(golden.cases.filter { $0.ids_shipped != nil }.count, 2)
        check(tokenizer, Golden(cases: shipped, bos_token_id: golden.bos_token_id, eos_token_id: golden.eos_token_id,
                                vocab_size: golden.vocab_size), label: "SmolLM2 GGUF")
        XCTAssertEqual(tokenizer.vocabularySize, golden.vocab_size)
        XCTAssertEqual(tokenizer.eosTokenId, 2)
        XCTAssertEqual(tokenizer.bosTokenId, 1)
        XCTAssertEqual(tokenizer.stopTokenIds, [2])
        let template = try XCTUnwrap(tokenizer.chatTemplate)
        XCTAssertEqual(template.family,
                       .chatML(defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
        for chat in golden.chat {
            let messages = chat.messages.map { ChatMessage(role: $0["role"]!, content: $0["content"]!) }
            let text = try template.render(messages: messages, addGenerationPrompt: chat.add_generation_prompt)
            XCTAssertEqual(text, chat.text)
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: true), chat.ids)
        }
    }

    // MARK: errors

    func testMissingFilesNameTheFolder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bpe-empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try BPETokenizer(folder: dir)) { error in
            let e = error as? ModelIOError
            XCTAssertEqual(e?.kind, .notFound)
            XCTAssertTrue(e?.description.contains(dir.path) == true, "\(error)")
            XCTAssertTrue(e?.description.contains("tokenizer.json") == true, "\(error)")
            XCTAssertTrue(e?.description.contains("vocab.json") == true, "\(error)")
        }
        // vocab.json without merges.txt names merges.txt.
        try Data("{}".utf8).write(to: dir.appendingPathComponent("vocab.json"))
        XCTAssertThrowsError(try BPETokenizer(folder: dir)) { error in
            XCTAssertTrue("\(error)".contains("merges.txt"), "\(error)")
        }
    }

    func testUnsupportedGGUFVocabulariesAreNamed() {
        for (file, name) in [("unsupported-llama.gguf.bin", "'llama'"), ("unsupported-pre.gguf.bin", "'mystery-pre'")] {
            XCTAssertThrowsError(try BPETokenizer(ggufURL: Self.fixtures.appendingPathComponent(file))) { error in
                XCTAssertEqual((error as? ModelIOError)?.kind, .unsupported, "\(error)")
                XCTAssertTrue("\(error)".contains(name) && "\(error)".contains(file), "\(error)")
            }
        }
    }

    /// Copies the gpt2 fixture's tokenizer.json with one section replaced and loads it.
    func load(replacing key: String, with value: Any) throws -> BPETokenizer {
        let source = Self.fixtures.appendingPathComponent("gpt2/tokenizer.json")
        var root = try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as! [String: Any]
        root[key] = value
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bpe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try JSONSerialization.data(withJSONObject: root).write(to: dir.appendingPathComponent("tokenizer.json"))
        return try BPETokenizer(folder: dir)
    }

    func testUnsupportedComponentsAreNamed() throws {
        let cases: [(String, Any, String)] = [
            ("pre_tokenizer", ["type": "UnicodeScripts"], "UnicodeScripts"),
            ("pre_tokenizer", ["type": "Sequence", "pretokenizers": [["type": "Metaspace", "replacement": "▁"]]], "Metaspace"),
            ("pre_tokenizer", ["type": "Split", "pattern": ["Regex": "\\w+|[^\\w\\s]+"], "behavior": "Isolated", "invert": false], "\\w+"),
            ("normalizer", ["type": "BertNormalizer"], "BertNormalizer"),
            ("decoder", ["type": "WordPiece"], "WordPiece"),
            ("post_processor", ["type": "Mystery"], "Mystery"),
            ("model", ["type": "WordPiece", "vocab": [:]], "WordPiece"),
        ]
        for (key, value, name) in cases {
            XCTAssertThrowsError(try load(replacing: key, with: value), "\(key) \(name)") { error in
                let e = error as? ModelIOError
                XCTAssertEqual(e?.kind, .unsupported, "\(error)")
                XCTAssertTrue("\(error)".contains(name), "\(error)")
                XCTAssertTrue("\(error)".contains("tokenizer.json"), "\(error)")
            }
        }
    }

    /// Without a post-processor and without add_bos_token no BOS is added; a RobertaProcessing adds cls/sep.
    func testPostProcessorVariants() throws {
        let none = try load(replacing: "post_processor", with: NSNull())
        let golden = try Self.golden("gpt2/golden.json")
        let c = golden.cases.first { $0.text == "Hello world" }!
        XCTAssertEqual(none.encode(c.text, addSpecialTokens: true), c.ids)
        let roberta = try load(replacing: "post_processor",
                               with: ["type": "RobertaProcessing", "sep": ["<|im_end|>", 3], "cls": ["<|im_start|>", 2]])
        XCTAssertEqual(roberta.encode(c.text, addSpecialTokens: true), [2] + c.ids + [3])
        XCTAssertEqual(roberta.encode(c.text, addSpecialTokens: false), c.ids)
    }

    // MARK: scanners

    /// Pieces of the hand-written regex scanners on cases where the regex's backtracking matters.
    func testSplitScanners() {
        func pieces(_ regex: BPESplitRegex, _ text: String) -> [String] {
            let s = Array(text.unicodeScalars)
            return regex.matches(in: s).map { r in
                var v = String.UnicodeScalarView()
                v.append(contentsOf: s[r])
                return String(v)
            }
        }
        XCTAssertEqual(pieces(.gpt2, "a   b"), ["a", "  ", " b"])
        XCTAssertEqual(pieces(.gpt2, "a\tb  "), ["a", "\t", "b", "  "])
        XCTAssertEqual(pieces(.gpt2, "I'm 12!?"), ["I", "'m", " 12", "!?"])
        XCTAssertEqual(pieces(.gpt2, "I'M"), ["I", "'", "M"])
        XCTAssertEqual(pieces(.llama3(maxDigits: 3), "I'M 12345"), ["I", "'M", " ", "123", "45"])
        XCTAssertEqual(pieces(.llama3(maxDigits: 1), "x  \n\n  y"), ["x", "  \n\n", " ", " y"])
        XCTAssertEqual(pieces(.llama3(maxDigits: 1), "...\n\nok"), ["...\n\n", "ok"])
    }
}
