import XCTest
import Foundation
import Tensor
import ModelIO
import Models
import Media

/// LLaVA parity with transformers 5.24.0 (float32) on random-weight folders from `Tools/make_llava_fixtures.py`:
/// CLIP + Llama in the 4.x layout, SigLIP + Qwen2 in the 5.x layout. With all visual tokens and with a
/// `uniform` kept subset: the prompt ids (the placeholder expanded to exactly K tokens), the last-position
/// logits of the prefill within 1e-3, and 8 greedy ids exactly.
final class LLaVAParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/llava")

    struct Golden: Decodable {
        struct Case: Decodable { let image: String; let query: String; let kept: [Int]?; let prompt_ids: [Int]; let last_logits: [Float]; let greedy_ids: [Int] }
        let cases: [Case]
    }

    func run(_ name: String) throws {
        let folder = Self.fixtures.appendingPathComponent(name)
        let model = try LlavaModel(folder: folder)
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: folder.appendingPathComponent("golden.json")))
        XCTAssertEqual(golden.cases.count, 3)
        for c in golden.cases {
            let img = try ImageIO.read(folder.appendingPathComponent(c.image))
            let pre = try model.processor.preprocess(rgb: img.pixels, width: img.width, height: img.height)
            let enc = try model.encodeImage(pixels: pre.pixels)
            let kept = c.kept ?? Array(0..<enc.features.rows)
            // Logits of the prefill, with and without the cached prefix.
            for reuse in [true, false] {
                let a = try model.answer(encoding: enc, keptTokens: kept, query: c.query,
                                         options: GenerationOptions(maxTokens: 8), reusePrefix: reuse, yesIds: [])
                XCTAssertEqual(a.promptIds, c.prompt_ids, "\(name) prompt ids")
                XCTAssertEqual(a.ids, c.greedy_ids, "\(name) '\(c.query)' kept \(c.kept ?? []) greedy ids (reuse \(reuse))")
            }
            let logits = try model.prefillLogits(encoding: enc, keptTokens: kept, query: c.query)
            let err = zip(logits, c.last_logits).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertEqual(logits.count, c.last_logits.count)
            XCTAssertLessThanOrEqual(err, 1e-3, "\(name) '\(c.query)' last logits max abs error \(err)")
        }
    }

    func testCLIPLlamaTransformersV4Layout() throws { try run("clip-llama") }
    func testSigLIPQwen2TransformersV5Layout() throws { try run("siglip-qwen2") }

    func testUnknownModelTypeIsANamedError() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("atp-mt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        try Data(#"{"model_type": "mamba9"}"#.utf8).write(to: tmp.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try ModelRegistry.kind(folder: tmp)) { e in
            XCTAssertTrue("\(e)".contains("mamba9") && "\(e)".contains("config.json"), "\(e)")
        }
    }
}
