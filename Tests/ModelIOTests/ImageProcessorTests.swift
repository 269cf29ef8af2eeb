// Parity of PILResize / ImageProcessor with Pillow and transformers' CLIPImageProcessorPil.
// Goldens: Tests/Fixtures/images/{resize,processor}_golden.json from Tools/make_image_fixtures.py.
import Foundation
import XCTest
@testable import ModelIO

final class ImageProcessorTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images")

    /// The synthetic image of make_image_fixtures.py's `pattern(w, h)`, RGB24 row-major.
    static func pattern(_ w: Int, _ h: Int) -> [UInt8] {
        var img = [UInt8](repeating: 0, count: w * h * 3)
        let rx0 = w / 5, ry0 = h / 6
        let rx1 = rx0 + max(1, w / 4), ry1 = ry0 + max(1, h / 5)
        let cx = (2 * w) / 3, cy = (2 * h) / 3, m = min(w, h)
        let rect: [Int] = [255, 0, 255], disc: [Int] = [30, 220, 10]
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    let v: Int
                    if rx0 <= x && x < rx1 && ry0 <= y && y < ry1 {
                        v = rect[c]
                    } else if ((x - cx) * (x - cx) + (y - cy) * (y - cy)) * 16 <= m * m {
                        v = disc[c]
                    } else if (x / 4 + y / 4) % 3 == 0 {
                        var n = UInt32(truncatingIfNeeded: x &* 374761393 &+ y &* 668265263 &+ c &* 2246822519)
                        n = (n ^ (n >> 13)) &* 1274126177
                        v = Int((n ^ (n >> 16)) & 255)
                    } else {
                        v = ((x * 255) / max(1, w - 1) * (c + 1) + (y * 255) / max(1, h - 1) * (3 - c)) / 4
                    }
                    img[(y * w + x) * 3 + c] = UInt8(v)
                }
            }
        }
        return img
    }

    static func fnv1a64(_ bytes: [UInt8]) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        let s = String(h, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent(name))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func floats(_ b64: String) throws -> [Float] {
        let data = try XCTUnwrap(Data(base64Encoded: b64))
        return data.withUnsafeBytes { raw in
            (0..<data.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    // MARK: resize

    func testResizeIsBitExactWithPillow() throws {
        let golden = try Self.json("resize_golden.json")
        let cases = try XCTUnwrap(golden["cases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 40)
        var images: [String: [UInt8]] = [:]
        for c in cases {
            let src = try XCTUnwrap(c["src"] as? [Int]), dst = try XCTUnwrap(c["dst"] as? [Int])
            let rs = try XCTUnwrap(c["resample"] as? Int)
            let key = "\(src[0])x\(src[1])"
            let input = images[key] ?? Self.pattern(src[0], src[1])
            images[key] = input
            let got = try PILResize.resize(rgb: input, width: src[0], height: src[1], toWidth: dst[0], toHeight: dst[1],
                                           filter: PILResample(configValue: rs))
            let label = "\(key) → \(dst[0])x\(dst[1]) resample \(rs)"
            XCTAssertEqual(got.count, dst[0] * dst[1] * 3, label)
            if let b64 = c["rgb_b64"] as? String {
                let want = [UInt8](try XCTUnwrap(Data(base64Encoded: b64)))
                let diffs = zip(got, want).filter { $0 != $1 }.count
                XCTAssertEqual(diffs, 0, "\(label): \(diffs) bytes differ from Pillow")
            }
            if let stride = c["sample_stride"] as? Int, let sample = c["sample"] as? [Int] {
                let mine = Swift.stride(from: 0, to: got.count, by: stride).map { Int(got[$0]) }
                XCTAssertEqual(mine, sample, label)
            }
            XCTAssertEqual(Self.fnv1a64(got), c["fnv1a64"] as? String, label)
        }
    }

    func testResizeSameSizeIsCopyAndRejectsBadInput() throws {
        let img = Self.pattern(9, 7)
        XCTAssertEqual(try PILResize.resize(rgb: img, width: 9, height: 7, toWidth: 9, toHeight: 7, filter: .bicubic), img)
        XCTAssertThrowsError(try PILResize.resize(rgb: img, width: 9, height: 7, toWidth: 0, toHeight: 7, filter: .bicubic))
        XCTAssertThrowsError(try PILResize.resize(rgb: [1, 2], width: 9, height: 7, toWidth: 3, toHeight: 3, filter: .bicubic)) {
            XCTAssertTrue("\($0)".contains("expected 9×7×3"), "\($0)")
        }
    }

    func testResizeSpeed224FromVGA() throws {
        let img = Self.pattern(640, 480)
        let processor = ImageProcessor(config: ImageProcessorConfig())
        _ = try processor.preprocess(rgb: img, width: 640, height: 480)  // warm up
        let start = DispatchTime.now().uptimeNanoseconds
        let n = 5
        for _ in 0..<n { _ = try processor.preprocess(rgb: img, width: 640, height: 480) }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 / Double(n)
        // Typically a few ms with -O; the bound is loose so a busy 2-core CI box does not flake.
        XCTAssertLessThan(ms, 100, "640×480 → 224×224 took \(ms) ms")
    }

    // MARK: processor

    func testProcessorMatchesTransformersPil() throws {
        let golden = try Self.json("processor_golden.json")
        let configs = try XCTUnwrap(golden["configs"] as? [String: Any])
        let cases = try XCTUnwrap(golden["cases"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(cases.count, 15)
        for c in cases {
            let name = try XCTUnwrap(c["config"] as? String)
            let cfgJSON = try JSONSerialization.data(withJSONObject: try XCTUnwrap(configs[name]))
            let config = try JSONDecoder().decode(ImageProcessorConfig.self, from: cfgJSON)
            let src = try XCTUnwrap(c["src"] as? [Int]), shape = try XCTUnwrap(c["shape"] as? [Int])
            let out = try ImageProcessor(config: config).preprocess(rgb: Self.pattern(src[0], src[1]), width: src[0], height: src[1])
            let label = "\(name) on \(src[0])x\(src[1])"
            XCTAssertEqual([3, out.height, out.width], shape, label)
            XCTAssertEqual(out.pixels.count, shape.reduce(1, *), label)
            var want: [Float] = []
            var mine: [Float] = []
            if let b64 = c["values_b64"] as? String {
                want = try Self.floats(b64)
                mine = out.pixels
            } else {
                let stride = try XCTUnwrap(c["sample_stride"] as? Int)
                want = try Self.floats(try XCTUnwrap(c["sample_b64"] as? String))
                mine = Swift.stride(from: 0, to: out.pixels.count, by: stride).map { out.pixels[$0] }
            }
            XCTAssertEqual(mine.count, want.count, label)
            let maxDiff = zip(mine, want).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(maxDiff, 1e-6, label)
            let sum = out.pixels.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(sum, try XCTUnwrap(c["sum"] as? Double), accuracy: 1e-6 * Double(out.pixels.count), label)
        }
    }

    func testResizedSizeRules() throws {
        let p = ImageProcessor(config: ImageProcessorConfig())
        XCTAssertTrue(try p.resizedSize(height: 480, width: 640) == (224, 298))
        XCTAssertTrue(try p.resizedSize(height: 97, width: 61) == (356, 224))
        XCTAssertTrue(try p.resizedSize(height: 224, width: 224) == (224, 224))
        // get_size_with_aspect_ratio: 100×400 with shortest 50 / longest 120 → long side capped.
        let q = ImageProcessor(config: ImageProcessorConfig(size: .shortestLongest(shortest: 50, longest: 120)))
        XCTAssertTrue(try q.resizedSize(height: 100, width: 400) == (30, 120))
    }

    // MARK: config loading

    func testLoadsTransformers4And5Layouts() throws {
        let v4 = try ImageProcessorConfig.load(folder: Self.fixtures.appendingPathComponent("configs/v4"))
        XCTAssertEqual(v4.size, .shortestEdge(30))
        XCTAssertEqual(v4.cropSize, .exact(height: 28, width: 28))
        XCTAssertEqual(v4.resample, 3)
        XCTAssertEqual(v4.imageMean, ImageProcessorConfig.openAIClipMean)
        XCTAssertEqual(v4.rescaleFactor, 1.0 / 255.0)
        XCTAssertEqual(v4.imageProcessorType, "CLIPImageProcessor")

        let v5 = try ImageProcessorConfig.load(folder: Self.fixtures.appendingPathComponent("configs/v5"))
        XCTAssertEqual(v5.size, .exact(height: 24, width: 36))
        XCTAssertEqual(v5.resample, 2)
        XCTAssertFalse(v5.doCenterCrop)
        XCTAssertEqual(v5.imageStd, [0.5, 0.5, 0.5])

        // Round trip through Codable.
        let again = try JSONDecoder().decode(ImageProcessorConfig.self, from: JSONEncoder().encode(v5))
        XCTAssertEqual(again, v5)
    }

    func testConfigDefaultsAndShorthands() throws {
        let empty = try JSONDecoder().decode(ImageProcessorConfig.self, from: Data("{}".utf8))
        XCTAssertEqual(empty, ImageProcessorConfig())
        let ints = try JSONDecoder().decode(
            ImageProcessorConfig.self,
            from: Data(#"{"size": 336, "crop_size": 336, "image_mean": 0.5, "image_std": [0.5, 0.5, 0.5]}"#.utf8))
        XCTAssertEqual(ints.size, .shortestEdge(336))
        XCTAssertEqual(ints.cropSize, .exact(height: 336, width: 336))
        XCTAssertEqual(ints.imageMean, [0.5])
    }

    func testLoadErrorsNameTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-img-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        XCTAssertThrowsError(try ImageProcessorConfig.load(folder: dir)) {
            XCTAssertTrue("\($0)".contains(dir.path) && "\($0)".contains("preprocessor_config.json"), "\($0)")
        }
        let file = dir.appendingPathComponent("preprocessor_config.json")
        try Data("{\"size\": ".utf8).write(to: file)
        XCTAssertThrowsError(try ImageProcessorConfig.load(folder: dir)) {
            XCTAssertTrue("\($0)".hasPrefix(file.path + ":"), "\($0)")
        }
        try Data(#"{"resample": 0}"#.utf8).write(to: file)
        XCTAssertThrowsError(try ImageProcessorConfig.load(folder: dir)) {
            XCTAssertTrue("\($0)".contains("resample 0") && "\($0)".contains(file.path), "\($0)")
        }
        try Data(#"{"size": {"max_height": 3}}"#.utf8).write(to: file)
        XCTAssertThrowsError(try ImageProcessorConfig.load(folder: dir)) {
            XCTAssertTrue("\($0)".contains("max_height") && "\($0)".contains(file.path), "\($0)")
        }
        try Data(#"{"do_resize": "yes"}"#.utf8).write(to: file)
        XCTAssertThrowsError(try ImageProcessorConfig.load(folder: dir)) {
            XCTAssertTrue("\($0)".contains("do_resize"), "\($0)")
        }
    }

    func testPreprocessRejectsBadInput() throws {
        let p = ImageProcessor(config: ImageProcessorConfig())
        XCTAssertThrowsError(try p.preprocess(rgb: [0, 0], width: 1, height: 1)) {
            XCTAssertTrue("\($0)".contains("expected 1×1×3"), "\($0)")
        }
        XCTAssertThrowsError(try p.preprocess(rgb: [], width: 0, height: 0))
        var bad = ImageProcessorConfig()
        bad.resample = 9
        XCTAssertThrowsError(try ImageProcessor(config: bad).preprocess(rgb: [0, 0, 0], width: 1, height: 1)) {
            XCTAssertTrue("\($0)".contains("resample 9"), "\($0)")
        }
    }
}
