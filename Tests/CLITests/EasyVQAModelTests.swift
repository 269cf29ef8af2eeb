import XCTest
import Foundation

/// The shipped easy-VQA model (`Samples/models/atp-easyvqa`) against transformers on a committed check set:
/// the first 24 easy-VQA test images with all their questions (`Tests/Fixtures/easyvqa-check`, written by
/// `Tools/export_easy_vqa.py --check`; the goldens by `Tools/train_easy_vqa.py --answers-of`).
final class EasyVQAModelTests: XCTestCase {
    let model = CLI.repo.appendingPathComponent("Samples/models/atp-easyvqa")
    let check = CLI.fixtures.appendingPathComponent("easyvqa-check")

    func lines(_ url: URL) throws -> [[String: Any]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testEveryAnswerWithAllTokensIsTransformersGreedyAnswer() throws {
        let preds = FileManager.default.temporaryDirectory.appendingPathComponent("atp-evqa-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: preds) }
        let r = try CLI.run(["eval", "--model", model.path, "--data", check.path, "--method", "full",
                             "--predictions", preds.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try r.json()
        XCTAssertEqual(j["dataset"] as? String, "easyvqa-check")
        XCTAssertEqual(j["visual_tokens"] as? Int, 64, "64×64 images up-sampled to 128 px, 16 px patches")
        let mine = try lines(preds), golden = try lines(check.appendingPathComponent("transformers_answers.jsonl"))
        XCTAssertEqual(mine.count, 231)
        XCTAssertEqual(mine.count, golden.count)
        var right = 0
        for (m, g) in zip(mine, golden) {
            XCTAssertEqual(m["question"] as? String, g["question"] as? String)
            XCTAssertEqual((m["generated"] as! String).trimmingCharacters(in: .whitespaces),
                           (g["generated"] as! String).trimmingCharacters(in: .whitespaces), "\(g)")
            XCTAssertEqual(m["correct"] as? Bool, g["correct"] as? Bool)
            if m["correct"] as? Bool == true { right += 1 }
        }
        XCTAssertEqual(j["accuracy"] as! Double, Double(right) / 231, accuracy: 1e-9)
    }
}
