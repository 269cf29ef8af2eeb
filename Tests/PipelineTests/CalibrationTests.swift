import XCTest
import Foundation
import Gate
@testable import Pipeline

/// The calibration grid, its tie rule, gate_config.json's validation and how flags layer on top.
final class CalibrationTests: XCTestCase {
    func testGridTriesEveryAlphaAndSignWithAlphaZeroOnce() {
        let g = Calibrator.grid(methods: [.atp, .atpDiv], keep: 0.25)
        XCTAssertEqual(g.count, 18)
        XCTAssertEqual(g.filter { $0.alpha == 0 }.map(\.sign), [1, 1])
        XCTAssertTrue(g.allSatisfy { $0.budget == .keep(0.25) })
        XCTAssertEqual(g.prefix(9).map(\.method), Array(repeating: .atp, count: 9))
        XCTAssertEqual(g.prefix(5).map(\.alpha), Calibrator.alphas)
    }

    /// A constructed case: sign −1 at α 0.5 answers best; a later exact tie does not displace it.
    func testChooseTakesTheBestAndTiesGoToTheEarlier() {
        let g = Calibrator.grid(methods: [.atp], keep: 0.25)
        var acc = [Double](repeating: 0.5, count: g.count)
        let minusHalf = g.firstIndex { $0.sign == -1 && $0.alpha == 0.5 }!
        let minusOne = g.firstIndex { $0.sign == -1 && $0.alpha == 1 }!
        acc[minusHalf] = 0.9
        acc[minusOne] = 0.9
        let best = Calibrator.choose(Array(zip(g, acc)).map { (config: $0, accuracy: $1) })!
        XCTAssertEqual(best, minusHalf)
        XCTAssertEqual(g[best].sign, -1)
        XCTAssertEqual(g[best].alpha, 0.5)
        XCTAssertNil(Calibrator.choose([]))
    }

    func testGateConfigFileRoundTripsAndFlagsOverrideIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-calib-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("clip"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = GateCalibration(method: "atp-div", alpha: 0.25, sign: -1, norm: "minmax", keep: 0.25, chosenOn: "/val",
                                dataset: "synthetic-val", grid: [.init(method: "atp-div", alpha: 0.25, sign: -1, accuracy: 0.9, count: 10)])
        try c.write(folder: dir)
        XCTAssertEqual(try GateCalibration.load(folder: dir), c)
        XCTAssertEqual(try GateCalibration.load(folder: dir.appendingPathComponent("clip")), c, "a VLM's clip/ uses the VLM's file")
        var notes: [String] = []
        let spec = try GateCalibration.resolve(folder: dir, overrides: GateSpec(alpha: 1, tokens: 10)) { notes.append($0) }
        XCTAssertEqual(notes.count, 1)
        let cfg = try gateConfig(spec)
        XCTAssertEqual(cfg.method, .atpDiv)
        XCTAssertEqual(cfg.sign, -1)
        XCTAssertEqual(cfg.alpha, 1, "a flag beats the file")
        XCTAssertEqual(cfg.budget, .tokens(10), "a budget flag replaces the calibrated keep")
        XCTAssertNil(try GateCalibration.load(folder: dir.appendingPathComponent("nowhere")))

        let url = dir.appendingPathComponent("gate_config.json")
        for (text, message) in [
            (#"{"method":"atp","alpha":0.5,"sign":2,"norm":"minmax","keep":0.25,"chosen_on":"v","grid":[]}"#, "sign: must be 1 or -1, got 2"),
            (#"{"method":"full","alpha":0.5,"sign":1,"norm":"minmax","keep":0.25,"chosen_on":"v","grid":[]}"#, "method: 'full' is not a pruning method"),
            (#"{"method":"magic","alpha":0.5,"sign":1,"norm":"minmax","keep":0.25,"chosen_on":"v","grid":[]}"#,
             "method: unknown method 'magic' (expected one of atp, atp-div, cls, text, random, uniform, full)"),
            (#"{"method":"atp","alpha":0.5,"sign":1,"norm":"minmax","chosen_on":"v","grid":[]}"#, "keep: missing"),
            (#"{"method":"atp","#, "not valid JSON"),
        ] {
            try Data(text.utf8).write(to: url)
            XCTAssertThrowsError(try GateCalibration.load(folder: dir)) { e in
                XCTAssertEqual("\(e)", "\(url.path): \(message)")
            }
        }
    }
}
