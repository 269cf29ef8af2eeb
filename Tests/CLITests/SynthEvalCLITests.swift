import XCTest
import Foundation

/// `atp synth` and `atp eval` as a user runs them: data folders, the video with its truth, the trained
/// model's accuracy through the gate, and one-line errors naming the bad file and line.
final class SynthEvalCLITests: XCTestCase {
    let model = CLI.repo.appendingPathComponent("Samples/models/atp-tiny").path
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("atp-synth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private func qaLines(_ dir: URL) throws -> [[String: String]] {
        try String(contentsOf: dir.appendingPathComponent("qa.jsonl"), encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String])
        }
    }

    func testSynthWritesADataFolderAndAVideoWithTruth() throws {
        let out = tmp.appendingPathComponent("split")
        var r = try CLI.run(["synth", "--out", out.path, "--count", "5", "--seed", "7", "--name", "synthetic-test"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "", "progress and summary go to stderr")
        XCTAssertTrue(r.stderr.contains("5/5"), r.stderr)
        let lines = try qaLines(out)
        XCTAssertEqual(Set(lines.map { $0["image"]! }).count, 5)
        for l in lines { XCTAssertEqual(Set(l.keys), ["image", "question", "answer", "type"]) }
        // Same seed, same bytes.
        let again = tmp.appendingPathComponent("again")
        r = try CLI.run(["synth", "--out", again.path, "--count", "5", "--seed", "7", "--name", "synthetic-test"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("qa.jsonl")), try Data(contentsOf: again.appendingPathComponent("qa.jsonl")))
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("images/000003.png")),
                       try Data(contentsOf: again.appendingPathComponent("images/000003.png")))

        let video = tmp.appendingPathComponent("clip.mp4")
        r = try CLI.run(["synth", "--video", video.path, "--seconds", "2", "--seed", "3", "--fps", "5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let truth = try String(contentsOf: tmp.appendingPathComponent("clip.truth.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(truth.count, 10)
        let first = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(truth[0].utf8)) as? [String: Any])
        XCTAssertEqual(Set(first.keys), ["frame", "pts", "objects", "answers"])
        let answers = try XCTUnwrap(first["answers"] as? [String: String])
        XCTAssertEqual(answers["Is the forklift on the left or the right?"], "left")
        let objects = try XCTUnwrap(first["objects"] as? [[String: Any]])
        XCTAssertTrue(objects.contains { $0["kind"] as? String == "forklift" })
        for o in objects { XCTAssertEqual(Set(o.keys), ["kind", "color", "bbox"]) }

        r = try CLI.run(["synth", "--out", out.path, "--count", "2", "--seed", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stderr, "atp: error: \(out.path): exists and is not empty\n")
        r = try CLI.run(["synth", "--out", tmp.appendingPathComponent("x").path, "--seed", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--count"), r.stderr)
    }

    func testEvalScoresTheTrainedModelThroughTheGate() throws {
        let data = tmp.appendingPathComponent("test")
        var r = try CLI.run(["synth", "--out", data.path, "--count", "12", "--seed", "7001", "--name", "synthetic-test"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let questions = try qaLines(data)
        r = try CLI.run(["eval", "--model", model, "--data", data.path, "--method", "full", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let all = try r.json()
        XCTAssertEqual(Set(all.keys), ["dataset", "count", "accuracy", "by_type", "method", "alpha", "sign", "keep", "mean_kept",
                                       "visual_tokens", "precision", "ms_per_answer", "scaler"])
        XCTAssertEqual(all["dataset"] as? String, "synthetic-test")
        XCTAssertEqual(all["count"] as? Int, questions.count)
        XCTAssertEqual(all["visual_tokens"] as? Int, 196)
        XCTAssertEqual(all["mean_kept"] as? Double, 196)
        XCTAssertEqual(all["precision"] as? String, "f16", "the bundled model stores F16; --precision native (the default) keeps it so")
        XCTAssertEqual(Set((all["by_type"] as! [String: Double]).keys), Set(questions.map { $0["type"]! }))
        // The trained model answers these scenes (the README reports the full test split).
        XCTAssertGreaterThanOrEqual(all["accuracy"] as! Double, 0.8, r.stderr)
        XCTAssertTrue(r.stderr.contains("eval: \(questions.count)/\(questions.count)"), "progress on stderr: \(r.stderr)")

        r = try CLI.run(["eval", "--model", model, "--data", data.path, "--keep", "0.25", "--limit", "10", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let pruned = try r.json()
        XCTAssertEqual(pruned["count"] as? Int, 10)
        XCTAssertEqual(pruned["mean_kept"] as? Double, 49)
        XCTAssertEqual(pruned["keep"] as? Double, 0.25)
        // No gate flags: the shipped model's gate_config.json (atp calibrate) chooses the method.
        XCTAssertEqual(pruned["method"] as? String, "atp-div")
        XCTAssertTrue(r.stderr.contains("gate: defaults from"), r.stderr)
        XCTAssertGreaterThanOrEqual(pruned["accuracy"] as! Double, 0.8, "pruned to a quarter, the calibrated gate still answers")
    }

    func testEvalErrorsNameTheFileAndLine() throws {
        let data = tmp.appendingPathComponent("bad")
        var r = try CLI.run(["synth", "--out", data.path, "--count", "1", "--seed", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let qa = data.appendingPathComponent("qa.jsonl")
        var text = try String(contentsOf: qa, encoding: .utf8)
        func eval() throws -> CLIResult { try CLI.run(["eval", "--model", model, "--data", data.path, "--json"]) }
        r = try CLI.run(["eval", "--model", model, "--data", tmp.appendingPathComponent("missing").path])
        XCTAssertEqual(r.stderr, "atp: error: \(tmp.appendingPathComponent("missing").path): no such data folder\n")
        try (text + "{\"image\": \"images/000000.png\", \"question\": \"Is it?\"}\n").write(to: qa, atomically: true, encoding: .utf8)
        let n = text.split(separator: "\n").count + 1
        r = try eval()
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(r.stderr, "atp: error: \(qa.path):\(n): missing \"answer\"\n")
        try (text + "{oops\n").write(to: qa, atomically: true, encoding: .utf8)
        r = try eval()
        XCTAssertEqual(r.stderr, "atp: error: \(qa.path):\(n): not a JSON object\n")
        // An image that does not decode.
        try Data("not a png".utf8).write(to: data.appendingPathComponent("images/broken.png"))
        text += "{\"image\": \"images/broken.png\", \"question\": \"Is there a person in the aisle?\", \"answer\": \"no\", \"type\": \"presence\"}\n"
        try text.write(to: qa, atomically: true, encoding: .utf8)
        r = try eval()
        XCTAssertNotEqual(r.status, 0)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("atp: error:") }
        XCTAssertEqual(errors.count, 1, r.stderr)
        XCTAssertTrue(errors.first?.hasPrefix("atp: error: \(qa.path):\(n): image \"images/broken.png\" does not decode") ?? false, r.stderr)
        r = try CLI.run(["eval", "--model", model, "--data", data.path, "--precision", "bf16"])
        XCTAssertTrue(r.stderr.contains("--precision bf16"), r.stderr)
    }
}
