import XCTest
import Foundation
import Media
import ModelIO

/// The swscale fast path for video frames against the image processor's PIL-exact resize.
final class ScalerTests: XCTestCase {
    func testSwscaleResizeIsCloseToPILButNotIdentical() throws {
        // Down (a 640×480 rendered frame to 298×224, as the sample models resize) and up (a 64×48 photo
        // to 224 on its short side): swscale's bilinear stays within a few grey levels of PIL's bicubic
        // on average; it is not the same arithmetic, so the two must differ somewhere.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-scaler-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["synth", "--out", dir.path, "--count", "1", "--seed", "5", "--size", "640x480"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let frame = try ImageIO.read(dir.appendingPathComponent("images/000000.png"))
        let photo = try ImageIO.read(CLI.repo.appendingPathComponent("Tests/Fixtures/images/photo_64x48.jpg"))
        for (img, size) in [(frame, FrameSize(width: 298, height: 224)), (photo, FrameSize(width: 298, height: 224))] {
            let fast = try SwscaleResize.resize(img, to: size)
            let exact = try PILResize.resize(rgb: img.pixels, width: img.width, height: img.height,
                                             toWidth: size.width, toHeight: size.height, filter: .bicubic)
            XCTAssertEqual(fast.pixels.count, exact.count)
            let diff = zip(fast.pixels, exact).map { abs(Int($0) - Int($1)) }
            let mean = Double(diff.reduce(0, +)) / Double(diff.count)
            XCTAssertLessThan(mean, 3, "\(img.width)×\(img.height) → \(size.width)×\(size.height)")
            XCTAssertGreaterThan(diff.max() ?? 0, 0, "swscale and PIL gave identical pixels: the fast path was not exercised")
        }
    }

    func testEvalThroughTheSwscalePathAgreesWithThePILPath() throws {
        // 640×480 frames of the warehouse world, the trained default model, all tokens: the two paths give
        // the same answer to nearly every question and accuracies within 5 points on this small set
        // (the README reports the whole synthetic test split at 640×480: within 1 point).
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-scaler-eval-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data")
        XCTAssertEqual(try CLI.run(["synth", "--out", data.path, "--count", "16", "--seed", "7001", "--size", "640x480"]).status, 0)
        var results: [String: [String: Any]] = [:], predictions: [String: [String]] = [:]
        for scaler in ["pil", "swscale"] {
            let preds = dir.appendingPathComponent("\(scaler).jsonl")
            let r = try CLI.run(["eval", "--model", CLI.repo.appendingPathComponent("Samples/models/atp-tiny").path,
                                 "--data", data.path, "--method", "full", "--scaler", scaler, "--json", "--predictions", preds.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            results[scaler] = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(results[scaler]?["scaler"] as? String, scaler)
            predictions[scaler] = try String(contentsOf: preds, encoding: .utf8).split(separator: "\n").map {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["generated"] as! String
            }
        }
        let pil = try XCTUnwrap(predictions["pil"]), fast = try XCTUnwrap(predictions["swscale"])
        XCTAssertEqual(pil.count, fast.count)
        XCTAssertGreaterThan(pil.count, 40)
        let same = zip(pil, fast).filter { $0 == $1 }.count
        XCTAssertGreaterThanOrEqual(Double(same) / Double(pil.count), 0.9, "answers that differ between the paths")
        XCTAssertEqual(results["pil"]?["accuracy"] as! Double, results["swscale"]?["accuracy"] as! Double, accuracy: 0.05)
    }
}
