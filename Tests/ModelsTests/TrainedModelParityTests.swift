import XCTest
import Foundation
import Tensor
import ModelIO
import Models
import Media

/// The shipped, trained default model (`Samples/models/atp-tiny`) against transformers 5.24.0 in float32
/// (`Tools/make_trained_goldens.py`): on every image and question of the committed check set, with all
/// 196 visual tokens and with a `uniform` 49-token subset, the prompt ids, the greedy answer ids exactly,
/// the last-position prefill logits within 1e-3, and the CLIP text and image embeddings within 1e-4.
final class TrainedModelParityTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repo.appendingPathComponent("Tests/Fixtures/trained")
    static let model = repo.appendingPathComponent("Samples/models/atp-tiny")

    struct Golden: Decodable {
        struct Case: Decodable {
            let image: String, question: String, answer: String
            let kept: [Int]?
            let prompt_ids: [Int], last_logits: [Float], greedy_ids: [Int]
            let text: String
        }
        let cases: [Case]
        let clip_text_embeddings: [String: [Float]]
        let clip_image_embeddings: [String: [Float]]
    }

    func testSwiftGivesTransformersGreedyAnswersOnTheCheckSet() throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("golden.json")))
        let model = try LlavaModel(folder: Self.model)
        XCTAssertEqual(model.patchCount, 196)
        XCTAssertGreaterThanOrEqual(golden.cases.count, 40)
        var encodings: [String: LlavaImageEncoding] = [:]
        let stops = Set(model.tokenizer.stopTokenIds)
        for c in golden.cases {
            let enc: LlavaImageEncoding
            if let e = encodings[c.image] { enc = e } else {
                let img = try ImageIO.read(Self.fixtures.appendingPathComponent(c.image))
                let pre = try model.processor.preprocess(rgb: img.pixels, width: img.width, height: img.height)
                enc = try model.encodeImage(pixels: pre.pixels)
                encodings[c.image] = enc
            }
            let kept = c.kept ?? Array(0..<enc.features.rows)
            let a = try model.answer(encoding: enc, keptTokens: kept, query: c.question,
                                     options: GenerationOptions(maxTokens: 4, stopIds: stops), yesIds: [])
            let what = "\(c.image) '\(c.question)' \(c.kept == nil ? "all tokens" : "\(kept.count) tokens")"
            XCTAssertEqual(a.promptIds, c.prompt_ids, "\(what): prompt ids")
            XCTAssertEqual(a.ids, c.greedy_ids, "\(what): greedy ids")
            XCTAssertEqual(a.text, c.text, "\(what): answer text")
            let logits = try model.prefillLogits(encoding: enc, keptTokens: kept, query: c.question)
            let err = zip(logits, c.last_logits).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertEqual(logits.count, c.last_logits.count)
            XCTAssertLessThanOrEqual(err, 1e-3, "\(what): last logits max abs error \(err)")
        }
    }

    func testCLIPEmbeddingsMatchTransformers() throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("golden.json")))
        let clip = try CLIPModel(folder: Self.model.appendingPathComponent("clip"))
        let vlm = try LlavaModel(folder: Self.model)
        XCTAssertTrue(clip.vision.hasSameWeights(as: vlm.vision), "the VLM's tower is the CLIP's (frozen during LLaVA training)")
        for (q, want) in golden.clip_text_embeddings {
            let got = try clip.textEmbedding(q)
            let err = zip(got, want).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err, 1e-4, "text embedding of '\(q)': max abs error \(err)")
        }
        for (image, want) in golden.clip_image_embeddings {
            let img = try ImageIO.read(Self.fixtures.appendingPathComponent("check").appendingPathComponent(image))
            let pre = try clip.processor.preprocess(rgb: img.pixels, width: img.width, height: img.height)
            let got = clip.imageEmbedding(clip.vision.encode(pixels: pre.pixels))
            let err = zip(got, want).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err, 1e-4, "image embedding of \(image): max abs error \(err)")
        }
    }
}
