import XCTest
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// `atp calibrate` and `atp bench gate` on the trained model and a few rendered frames: the grid and
/// the choice, gate_config.json as every command's default, the bench's rows, CSV and SVG, and a row
/// that `atp eval` reproduces.
final class CalibrateBenchCLITests: XCTestCase {
    var tmp: URL!
    var model: URL!
    var val: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("atp-cal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        // A copy of the shipped model without its calibration (the test writes its own).
        model = tmp.appendingPathComponent("atp-tiny")
        try FileManager.default.copyItem(at: CLI.repo.appendingPathComponent("Samples/models/atp-tiny"), to: model)
        try? FileManager.default.removeItem(at: model.appendingPathComponent("gate_config.json"))
        val = tmp.appendingPathComponent("val")
        let r = try CLI.run(["synth", "--out", val.path, "--count", "3", "--seed", "2900", "--name", "synthetic-val"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private func object(_ s: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], s)
    }

    func testCalibrateChoosesTheBestOfItsGridAndEveryCommandUsesIt() throws {
        var r = try CLI.run(["calibrate", "--model", model.path, "--data", val.path, "--methods", "atp", "--limit", "8", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let written = try object(String(contentsOf: model.appendingPathComponent("gate_config.json"), encoding: .utf8))
        XCTAssertEqual(try object(r.stdout)["alpha"] as? Double, written["alpha"] as? Double)
        XCTAssertEqual(Set(written.keys), ["method", "alpha", "sign", "norm", "keep", "chosen_on", "dataset", "grid"])
        let grid = try XCTUnwrap(written["grid"] as? [[String: Any]])
        // α ∈ {0, .25, .5, .75, 1} × sign ±1, α = 0 once.
        XCTAssertEqual(grid.count, 9)
        XCTAssertEqual(grid.filter { $0["alpha"] as? Double == 0 }.count, 1)
        let accuracies = grid.map { $0["accuracy"] as! Double }
        let best = accuracies.firstIndex(of: accuracies.max()!)!
        XCTAssertEqual(written["alpha"] as? Double, grid[best]["alpha"] as? Double, "the first best entry wins")
        XCTAssertEqual(written["sign"] as? Int, grid[best]["sign"] as? Int)
        XCTAssertEqual(written["keep"] as? Double, 0.25)
        XCTAssertEqual(written["chosen_on"] as? String, val.path)
        XCTAssertTrue(r.stderr.contains("<- chosen"), r.stderr)

        // eval with no gate flags runs the calibrated gate (said once) and scores what the grid says.
        r = try CLI.run(["eval", "--model", model.path, "--data", val.path, "--limit", "8", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "gate: defaults from").count - 1, 1, r.stderr)
        let e = try object(r.stdout)
        XCTAssertEqual(e["alpha"] as? Double, written["alpha"] as? Double)
        XCTAssertEqual(e["sign"] as? Int, written["sign"] as? Int)
        XCTAssertEqual(e["accuracy"] as! Double, accuracies[best], accuracy: 1e-12)
        // A flag overrides the calibrated value; the rest stay.
        r = try CLI.run(["eval", "--model", model.path, "--data", val.path, "--limit", "3", "--alpha", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try object(r.stdout)["alpha"] as? Double, 1)
        XCTAssertEqual(try object(r.stdout)["sign"] as? Int, written["sign"] as? Int)

        // A lying gate_config.json is a one-line error naming the file and the key.
        try Data(#"{"method":"atp","alpha":2,"sign":1,"norm":"minmax","keep":0.25,"chosen_on":"x","grid":[]}"#.utf8)
            .write(to: model.appendingPathComponent("gate_config.json"))
        r = try CLI.run(["eval", "--model", model.path, "--data", val.path, "--limit", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stderr, "atp: error: \(model.appendingPathComponent("gate_config.json").path): alpha: must be in [0, 1], got 2\n")
    }

    func testBenchGateRowsCSVAndSVGAndARowThatEvalReproduces() throws {
        var r = try CLI.run(["calibrate", "--model", model.path, "--data", val.path, "--limit", "4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let csv = tmp.appendingPathComponent("gate.csv"), svg = tmp.appendingPathComponent("gate.svg")
        r = try CLI.run(["bench", "gate", "--model", model.path, "--data", val.path, "--keeps", "0.1,0.5", "--limit", "6",
                         "--csv", csv.path, "--svg", svg.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try XCTUnwrap(try object(r.stdout)["rows"] as? [[String: Any]])
        // full once; per budget random, uniform, cls, text, atp (calibrated), atp α .25/.5/.75, atp-div (calibrated).
        XCTAssertEqual(rows.count, 1 + 2 * 9)
        for row in rows {
            XCTAssertEqual(Set(row.keys), ["model", "dataset", "method", "alpha", "sign", "calibrated", "precision", "keep",
                                           "count", "accuracy", "prefill_gflops", "ms_per_answer"])
            XCTAssertEqual(row["model"] as? String, "atp-tiny")
            XCTAssertEqual(row["dataset"] as? String, "synthetic-val")
            XCTAssertEqual(row["count"] as? Int, 6)
        }
        XCTAssertEqual(Set(rows.map { $0["method"] as! String }), ["full", "random", "uniform", "cls", "text", "atp", "atp-div"])
        XCTAssertEqual(rows.filter { $0["calibrated"] as? Bool == true }.map { $0["method"] as! String }.sorted(),
                       ["atp", "atp", "atp-div", "atp-div"])
        // Fewer tokens, fewer prefill FLOPs.
        let gf = { (m: String, k: Double) in rows.first { $0["method"] as? String == m && $0["keep"] as? Double == k }!["prefill_gflops"] as! Double }
        XCTAssertLessThan(gf("uniform", 0.1), gf("uniform", 0.5))
        XCTAssertLessThan(gf("uniform", 0.5), gf("full", 1))
        // CSV: a header and one line per row; SVG: well-formed, one panel title, a legend entry per line.
        let lines = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.first, "model,dataset,method,alpha,sign,calibrated,precision,keep,count,accuracy,prefill_gflops,ms_per_answer")
        XCTAssertEqual(lines.count, rows.count + 1)
        let svgData = try Data(contentsOf: svg)
        XCTAssertTrue(XMLParser(data: svgData).parse(), "the SVG is well-formed XML")
        let svgText = String(decoding: svgData, as: UTF8.self)
        XCTAssertTrue(svgText.contains("synthetic-val (atp-tiny, 6 questions)"))
        XCTAssertTrue(svgText.contains("fraction of visual tokens kept"))
        XCTAssertTrue(svgText.contains(">uniform<") && svgText.contains(">full (every token)<"))

        // A row again with atp eval.
        let row = rows.first { $0["method"] as? String == "atp-div" && $0["keep"] as? Double == 0.1 }!
        r = try CLI.run(["eval", "--model", model.path, "--data", val.path, "--limit", "6", "--method", "atp-div", "--keep", "0.1",
                         "--alpha", "\(row["alpha"] as! Double)", "--sign", "\(row["sign"] as! Int)", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try object(r.stdout)["accuracy"] as! Double, row["accuracy"] as! Double, accuracy: 1e-12)

        // Merging keeps every row; a file that is not a bench output is named.
        let first = tmp.appendingPathComponent("a.json")
        try Data(r.stdout.utf8).write(to: first)
        r = try CLI.run(["bench", "gate", "--merge", first.path, "--json"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.hasPrefix("atp: error: --merge \(first.path): not the JSON of `atp bench gate --json`"), r.stderr)
    }
}
