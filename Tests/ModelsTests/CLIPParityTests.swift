import XCTest
import Foundation
import Tensor
import ModelIO
import Models
import Gate
import Media

/// Parity of the Swift CLIP with transformers 5.24.0 (float32, eager attention, PIL image processor)
/// on random-weight checkpoints written by `Tools/make_clip_fixtures.py`.
/// Tolerance: max abs error ≤ 1e-4 on every value.
final class CLIPParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/clip")
    static let tolerance: Float = 1e-4

    struct Golden: Decodable {
        struct Case: Decodable {
            let image: String, query: String
            let input_ids: [Int], grid: [Int]
            let cls_attention: [Float], image_embedding: [Float], text_embedding: [Float], relevance: [Float]
        }
        let cases: [Case]
    }

    func assertClose(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): length", file: file, line: line)
        let err = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err, Self.tolerance, "\(what): max abs error \(err)", file: file, line: line)
    }

    func runParity(_ name: String) throws {
        let folder = Self.fixtures.appendingPathComponent(name)
        let model = try CLIPModel(folder: folder)
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: folder.appendingPathComponent("golden.json")))
        XCTAssertGreaterThanOrEqual(golden.cases.count, 8)
        var encoded: [String: CLIPVisionOutput] = [:]
        for c in golden.cases {
            let out: CLIPVisionOutput
            if let o = encoded[c.image] { out = o } else {
                let img = try ImageIO.read(folder.appendingPathComponent(c.image))
                let pre = try model.processor.preprocess(rgb: img.pixels, width: img.width, height: img.height)
                out = model.vision.encode(pixels: pre.pixels)
                encoded[c.image] = out
            }
            XCTAssertEqual([out.grid.0, out.grid.1], c.grid)
            XCTAssertEqual(model.tokenizer.encode(c.query, maxLength: model.config.textConfig.maxPositionEmbeddings), c.input_ids, "ids of '\(c.query)'")
            assertClose(CLIPModel.clsAttention(out), c.cls_attention, "\(name) \(c.image) cls_attention")
            assertClose(model.imageEmbedding(out), c.image_embedding, "\(name) \(c.image) image_embedding")
            let t = try model.textEmbedding(c.query)
            assertClose(t, c.text_embedding, "\(name) '\(c.query)' text_embedding")
            let pe = model.patchEmbeddings(out)
            let rel = try cosineRelevance(patchEmbeddings: pe.data, count: pe.rows, dim: pe.cols, text: t)
            assertClose(rel, c.relevance, "\(name) \(c.image) '\(c.query)' relevance")
        }
    }

    func testQuickGeluPatch14F16TransformersV5Layout() throws { try runParity("tiny-quickgelu-p14-f16") }
    func testGeluPatch16F32TransformersV4Layout() throws { try runParity("tiny-gelu-p16-f32") }

    /// Loading is strict: a missing tensor, an unknown activation, a truncated file each name the problem.
    func testBadCheckpointsAreNamedErrors() throws {
        let src = Self.fixtures.appendingPathComponent("tiny-gelu-p16-f32")
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("atp-clip-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: src, to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let cfgURL = tmp.appendingPathComponent("config.json")
        let original = try Data(contentsOf: cfgURL)

        var cfg = try JSONSerialization.jsonObject(with: original) as! [String: Any]
        var vc = cfg["vision_config"] as! [String: Any]
        vc["hidden_act"] = "swooshy"
        cfg["vision_config"] = vc
        try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
        XCTAssertThrowsError(try CLIPModel(folder: tmp)) { e in
            XCTAssertTrue("\(e)".contains("hidden_act") && "\(e)".contains("swooshy") && "\(e)".contains("config.json"), "\(e)")
        }
        vc["hidden_act"] = "gelu"; vc["num_hidden_layers"] = 3
        cfg["vision_config"] = vc
        try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
        XCTAssertThrowsError(try CLIPModel(folder: tmp)) { e in
            XCTAssertTrue("\(e)".contains("vision_model.encoder.layers.2"), "\(e)")
        }
        vc["num_hidden_layers"] = 1
        cfg["vision_config"] = vc
        try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
        XCTAssertThrowsError(try CLIPModel(folder: tmp)) { e in
            XCTAssertTrue("\(e)".contains("unused tensor") && "\(e)".contains("layers.1"), "\(e)")
        }
        try original.write(to: cfgURL)

        let st = tmp.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: st)
        try bytes.prefix(bytes.count - 100).write(to: st)
        XCTAssertThrowsError(try CLIPModel(folder: tmp)) { e in
            XCTAssertTrue("\(e)".contains("model.safetensors") && "\(e)".contains("past the end"), "\(e)")
        }
        try bytes.prefix(5).write(to: st)
        XCTAssertThrowsError(try CLIPModel(folder: tmp)) { e in XCTAssertTrue("\(e)".contains("truncated"), "\(e)") }
        try bytes.write(to: st)

        try FileManager.default.removeItem(at: tmp.appendingPathComponent("vocab.json"))
        XCTAssertThrowsError(try CLIPModel(folder: tmp)) { e in XCTAssertTrue("\(e)".contains("vocab.json"), "\(e)") }
    }
}
