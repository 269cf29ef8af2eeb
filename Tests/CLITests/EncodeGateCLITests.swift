import XCTest
import Foundation

/// `atp encode` and `atp gate` as text: run the command, check stdout's JSON and stderr's one-line errors.
final class EncodeGateCLITests: XCTestCase {
    let model = CLI.fixtures.appendingPathComponent("clip/tiny-gelu-p16-f32")
    var image: String { model.appendingPathComponent("image-odd.png").path }

    struct Golden: Decodable {
        struct Case: Decodable { let image: String; let query: String; let cls_attention: [Double]; let relevance: [Double]; let image_embedding: [Double]; let text_embedding: [Double] }
        let cases: [Case]
    }

    func golden(_ query: String) throws -> Golden.Case {
        let g = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: model.appendingPathComponent("golden.json")))
        return g.cases.first { $0.image == "image-odd.png" && $0.query == query }!
    }

    func maxErr(_ a: Any?, _ b: [Double]) -> Double {
        let x = (a as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue } ?? []
        XCTAssertEqual(x.count, b.count)
        return zip(x, b).map { abs($0 - $1) }.max() ?? .infinity
    }

    func testEncodeJSONMatchesTransformers() throws {
        let q = "a red box on the shelf"
        let r = try CLI.run(["encode", "--model", model.path, "--image", image, "--query", q, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 1, "stdout is exactly one JSON line")
        let j = try r.json()
        XCTAssertEqual(Set(j.keys), ["grid", "cls_attention", "image_embedding", "text_embedding", "relevance"])
        XCTAssertEqual((j["grid"] as? [Int]) ?? [], [5, 5])
        let g = try golden(q)
        XCTAssertLessThanOrEqual(maxErr(j["cls_attention"], g.cls_attention), 1e-4)
        XCTAssertLessThanOrEqual(maxErr(j["relevance"], g.relevance), 1e-4)
        XCTAssertLessThanOrEqual(maxErr(j["image_embedding"], g.image_embedding), 1e-4)
        XCTAssertLessThanOrEqual(maxErr(j["text_embedding"], g.text_embedding), 1e-4)
        // Without --query the text keys are absent.
        let r2 = try CLI.run(["encode", "--model", model.path, "--image", image, "--json"])
        XCTAssertEqual(Set(try r2.json().keys), ["grid", "cls_attention", "image_embedding"])
    }

    /// The kept set the definitions give (computed here from the goldens) for --tokens, --keep, --mass and both signs.
    func testGateKeptSetsFollowTheDefinitions() throws {
        let q = "Is there a person in the aisle?"
        let g = try golden(q)
        let n = g.cls_attention.count
        func minmax(_ v: [Double]) -> [Double] {
            let lo = v.min()!, hi = v.max()!
            return hi > lo ? v.map { ($0 - lo) / (hi - lo) } : v.map { _ in 0 }
        }
        let sal = g.cls_attention.map { $0 / g.cls_attention.reduce(0, +) }
        func expected(sign: Double, alpha: Double, k: Int) -> [Int] {
            let s = zip(minmax(g.relevance.map { $0 * sign }), minmax(sal)).map { alpha * $0 + (1 - alpha) * $1 }
            return Array((0..<n).sorted { s[$0] != s[$1] ? s[$0] > s[$1] : $0 < $1 }.prefix(k)).sorted()
        }
        for (args, sign, k) in [(["--tokens", "7"], 1.0, 7), (["--keep", "0.4"], 1.0, 10), (["--tokens", "6", "--sign", "-1"], -1.0, 6),
                                (["--sign", "-1", "--keep", "0.2"], -1.0, 5)] {
            let r = try CLI.run(["gate", "--model", model.path, "--image", image, "--query", q, "--alpha", "0.7", "--json"] + args)
            XCTAssertEqual(r.status, 0, r.stderr)
            let j = try r.json()
            XCTAssertEqual(j["method"] as? String, "atp")
            XCTAssertEqual((j["scores"] as? [Any])?.count, n)
            XCTAssertEqual(j["kept"] as? [Int], expected(sign: sign, alpha: 0.7, k: k), "args \(args)")
        }
        // --mass: the smallest K whose top scores hold the fraction of Σ(S − min S).
        let r = try CLI.run(["gate", "--model", model.path, "--image", image, "--query", q, "--mass", "0.5", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try r.json()
        let scores = (j["scores"] as! [Any]).map { ($0 as! NSNumber).doubleValue }
        let lo = scores.min()!
        let sorted = scores.map { $0 - lo }.sorted(by: >)
        let total = sorted.reduce(0, +)
        var acc = 0.0, k = 0
        while acc < 0.5 * total - 1e-12 { acc += sorted[k]; k += 1 }
        XCTAssertEqual((j["kept"] as? [Int])?.count, max(1, k))
        // Baselines.
        let u = try CLI.run(["gate", "--model", model.path, "--image", image, "--query", q, "--method", "uniform", "--tokens", "4", "--json"]).json()
        XCTAssertEqual(u["kept"] as? [Int], [3, 9, 15, 21])
        let f = try CLI.run(["gate", "--model", model.path, "--image", image, "--query", q, "--method", "full", "--json"]).json()
        XCTAssertEqual(f["kept"] as? [Int], Array(0..<n))
    }

    func testOverlayIsWrittenAsPNG() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("atp-overlay-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try CLI.run(["gate", "--model", model.path, "--image", image, "--query", "box", "--tokens", "5", "--overlay", out.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let data = try Data(contentsOf: out)
        XCTAssertEqual(Array(data.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    }

    /// Bad inputs: one line on stderr naming the input, non-zero exit, nothing on stdout.
    func testErrorsAreOneLineNamingTheInput() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("atp-cli-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: model, to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        func expectError(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
            let r = try CLI.run(args)
            XCTAssertNotEqual(r.status, 0, "exit status", file: file, line: line)
            XCTAssertEqual(r.stdout, "", "stdout must stay empty", file: file, line: line)
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "one line: \(r.stderr)", file: file, line: line)
            for m in mentions { XCTAssertTrue(r.stderr.contains(m), "'\(m)' in: \(r.stderr)", file: file, line: line) }
            XCTAssertFalse(r.stderr.contains("Fatal error"), file: file, line: line)
        }
        try expectError(["encode", "--model", tmp.path, "--image", "/nonexistent/x.png", "--json"], mentions: ["/nonexistent/x.png"])
        let notImage = tmp.appendingPathComponent("config.json").path
        try expectError(["encode", "--model", tmp.path, "--image", notImage, "--json"], mentions: ["config.json"])
        try expectError(["gate", "--model", tmp.path, "--image", image, "--query", "x", "--keep", "1.5", "--json"], mentions: ["--keep", "1.5"])
        try expectError(["gate", "--model", tmp.path, "--image", image, "--query", "x", "--method", "magic", "--json"], mentions: ["magic"])
        try expectError(["encode", "--model", "/nonexistent-model", "--image", image, "--json"], mentions: ["/nonexistent-model"])

        // Unknown hidden_act.
        let cfgURL = tmp.appendingPathComponent("config.json")
        let cfgData = try Data(contentsOf: cfgURL)
        var cfg = try JSONSerialization.jsonObject(with: cfgData) as! [String: Any]
        var vc = cfg["vision_config"] as! [String: Any]
        vc["hidden_act"] = "mish3"
        cfg["vision_config"] = vc
        try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
        try expectError(["encode", "--model", tmp.path, "--image", image, "--json"], mentions: ["hidden_act", "mish3", "config.json"])
        try cfgData.write(to: cfgURL)

        // Truncated safetensors; and one whose header points a tensor past the end of the file.
        let st = tmp.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: st)
        try bytes.prefix(bytes.count / 2).write(to: st)
        try expectError(["encode", "--model", tmp.path, "--image", image, "--json"], mentions: ["model.safetensors"])
        // A header that moves the last tensor's data past the end of the file.
        let n = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = try JSONSerialization.jsonObject(with: bytes[8..<(8 + n)]) as! [String: Any]
        let last = header.filter { $0.key != "__metadata__" }.max {
            (($0.value as! [String: Any])["data_offsets"] as! [Int])[1] < (($1.value as! [String: Any])["data_offsets"] as! [Int])[1]
        }!
        var entry = last.value as! [String: Any]
        let offs = entry["data_offsets"] as! [Int]
        entry["data_offsets"] = [offs[0] + 1_000_000, offs[1] + 1_000_000]
        header[last.key] = entry
        let newHeader = try JSONSerialization.data(withJSONObject: header)
        var lying = Data()
        withUnsafeBytes(of: UInt64(newHeader.count).littleEndian) { lying.append(contentsOf: $0) }
        lying.append(newHeader)
        lying.append(bytes[(8 + n)...])
        try lying.write(to: st)
        try expectError(["encode", "--model", tmp.path, "--image", image, "--json"], mentions: ["model.safetensors", "past the end"])
        try bytes.write(to: st)

        // Missing tokenizer file.
        try FileManager.default.removeItem(at: tmp.appendingPathComponent("merges.txt"))
        try expectError(["encode", "--model", tmp.path, "--image", image, "--query", "x", "--json"], mentions: ["merges.txt"])
    }

    func testSignMinusOneParses() throws {
        let r = try CLI.run(["gate", "--model", model.path, "--image", image, "--query", "box", "--sign", "-1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let r2 = try CLI.run(["gate", "--model", model.path, "--image", image, "--query", "box", "--sign", "2", "--json"])
        XCTAssertNotEqual(r2.status, 0)
        XCTAssertTrue(r2.stderr.contains("--sign"), r2.stderr)
    }
}
