// ImageIO against Pillow's decode (Tests/Fixtures/images/images.json from Tools/make_image_fixtures.py).
import Foundation
import XCTest
@testable import Media

final class ImageIOTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images")

    struct Expected {
        let width: Int, height: Int, rgb: [UInt8]
    }

    static func expected() throws -> [String: Expected] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("images.json"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let files = try XCTUnwrap(root["files"] as? [String: [String: Any]])
        var out: [String: Expected] = [:]
        for (name, f) in files {
            let rgb = try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(f["rgb_b64"] as? String)))
            out[name] = Expected(width: try XCTUnwrap(f["width"] as? Int), height: try XCTUnwrap(f["height"] as? Int),
                                 rgb: [UInt8](rgb))
        }
        return out
    }

    var tempDir: URL!

    override func setUpWithError() throws {
        tempDir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-imageio-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tempDir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tempDir)
    }

    // MARK: decoding

    /// PNG (RGB, RGBA, grey, palette), BMP and PPM decode to exactly the RGB that Pillow +
    /// transformers' convert_to_rgb produce (alpha composited onto white).
    func testLosslessFormatsMatchPillowExactly() throws {
        let expected = try Self.expected()
        let names = ["pattern_97x61.png", "pattern_61x97.png", "pattern_17x23.png", "pattern_17x23.bmp",
                     "pattern_17x23.ppm", "rgba_40x30.png", "grey_33x21.png", "palette_20x12.png"]
        for name in names {
            let want = try XCTUnwrap(expected[name], name)
            let img = try ImageIO.read(Self.fixtures.appendingPathComponent(name))
            XCTAssertEqual(img.width, want.width, name)
            XCTAssertEqual(img.height, want.height, name)
            XCTAssertEqual(img.pixels.count, want.width * want.height * 3, name)
            let diffs = zip(img.pixels, want.rgb).filter { $0 != $1 }.count
            XCTAssertEqual(diffs, 0, "\(name): \(diffs) bytes differ from Pillow")
        }
    }

    /// JPEG decoders differ in IDCT and chroma upsampling; FFmpeg's and libjpeg-turbo's (Pillow)
    /// agree to within a few levels (measured: 4:4:4 max 2, mean 0.04; 4:2:0 max 6, mean 0.82).
    /// Tolerances per channel value: 4:4:4 max |Δ| ≤ 3, mean ≤ 0.25; 4:2:0 max |Δ| ≤ 10, mean ≤ 1.5
    /// (the chroma upsampling filters differ at edges).
    func testJPEGIsCloseToPillow() throws {
        let expected = try Self.expected()
        for (name, maxAllowed, meanAllowed) in [("photo_64x48.jpg", 3, 0.25), ("photo_64x48_420.jpg", 10, 1.5)] {
            let want = try XCTUnwrap(expected[name])
            let img = try ImageIO.read(Self.fixtures.appendingPathComponent(name))
            XCTAssertEqual(img.width, 64, name)
            XCTAssertEqual(img.height, 48, name)
            let deltas = zip(img.pixels, want.rgb).map { abs(Int($0) - Int($1)) }
            XCTAssertEqual(deltas.count, 64 * 48 * 3, name)
            let maxDelta = deltas.max() ?? 0
            let mean = Double(deltas.reduce(0, +)) / Double(deltas.count)
            XCTAssertLessThanOrEqual(maxDelta, maxAllowed, "\(name): max |Δ| vs Pillow")
            XCTAssertLessThanOrEqual(mean, meanAllowed, "\(name): mean |Δ| vs Pillow")
        }
    }

    func testAlphaCompositeMatchesPillowFormula() {
        // a = 0 → white; a = 255 → the colour; in between Pillow's rounding.
        XCTAssertEqual(ImageIO.compositeOnWhite(rgba: [10, 20, 30, 0]), [255, 255, 255])
        XCTAssertEqual(ImageIO.compositeOnWhite(rgba: [10, 20, 30, 255]), [10, 20, 30])
        XCTAssertEqual(ImageIO.compositeOnWhite(rgba: [0, 100, 200, 128]), [127, 177, 227])
    }

    // MARK: writing

    func testPNGRoundTripIsIdentical() throws {
        for (w, h) in [(1, 1), (3, 5), (97, 61), (64, 1)] {
            var px = [UInt8](repeating: 0, count: w * h * 3)
            var s: UInt32 = 12345
            for i in px.indices {
                s = s &* 1_103_515_245 &+ 12345
                px[i] = UInt8(truncatingIfNeeded: s >> 16)
            }
            let image = RGBImage(width: w, height: h, pixels: px)
            let url = tempDir.appendingPathComponent("rt_\(w)x\(h).png")
            try ImageIO.writePNG(image, to: url)
            XCTAssertEqual(try ImageIO.read(url), image, "\(w)×\(h)")
            // It is a real PNG (signature) and nothing else was left in the folder.
            let head = [UInt8](try Data(contentsOf: url).prefix(8))
            XCTAssertEqual(head, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: tempDir.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(left, [])
    }

    func testWriteOverwritesAndRereadsFixture() throws {
        let src = try ImageIO.read(Self.fixtures.appendingPathComponent("pattern_97x61.png"))
        let url = tempDir.appendingPathComponent("out.png")
        try ImageIO.writePNG(RGBImage(width: 2, height: 2, fill: (1, 2, 3)), to: url)
        try ImageIO.writePNG(src, to: url)
        XCTAssertEqual(try ImageIO.read(url), src)
    }

    func testWriteToMissingFolderThrowsAndLeavesNothing() throws {
        let url = tempDir.appendingPathComponent("no/such/dir/out.png")
        XCTAssertThrowsError(try ImageIO.writePNG(RGBImage(width: 4, height: 4), to: url)) { error in
            let e = error as? MediaError
            XCTAssertEqual(e?.kind, .io)
            XCTAssertTrue("\(error)".hasPrefix(url.path + ": "), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tempDir.path), [])
    }

    func testFailedRenameRemovesTempFile() throws {
        // The destination is a non-empty folder: the encode and temp write succeed, the rename fails.
        let url = tempDir.appendingPathComponent("taken.png")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("x"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try ImageIO.writePNG(RGBImage(width: 4, height: 4), to: url)) { error in
            XCTAssertTrue("\(error)".contains("taken.png"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tempDir.path), ["taken.png"])
    }

    func testWriteRejectsInconsistentImage() throws {
        let url = tempDir.appendingPathComponent("bad.png")
        XCTAssertThrowsError(try ImageIO.writePNG(RGBImage(width: 4, height: 4, pixels: [1, 2, 3]), to: url)) { error in
            XCTAssertEqual((error as? MediaError)?.kind, .invalidArgument)
            XCTAssertTrue("\(error)".contains("bad.png") && "\(error)".contains("4×4"), "\(error)")
        }
        XCTAssertThrowsError(try ImageIO.writePNG(RGBImage(width: 0, height: 4, pixels: []), to: url))
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    // MARK: read errors

    func testMissingFileThrowsNamingIt() {
        let url = tempDir.appendingPathComponent("photo.png")
        XCTAssertThrowsError(try ImageIO.read(url)) { error in
            XCTAssertEqual((error as? MediaError)?.kind, .notFound)
            XCTAssertEqual("\(error)", "\(url.path): cannot read image (no such file)")
        }
    }

    func testEmptyFileThrowsNamingIt() throws {
        let url = tempDir.appendingPathComponent("empty.png")
        try Data().write(to: url)
        XCTAssertThrowsError(try ImageIO.read(url)) { error in
            XCTAssertTrue("\(error)".hasPrefix(url.path + ": "), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
    }

    func testTruncatedPNGThrowsNamingIt() throws {
        let full = try Data(contentsOf: Self.fixtures.appendingPathComponent("pattern_97x61.png"))
        for keep in [8, 40, full.count / 2, full.count - 20] {
            let url = tempDir.appendingPathComponent("cut_\(keep).png")
            try full.prefix(keep).write(to: url)
            XCTAssertThrowsError(try ImageIO.read(url), "kept \(keep) of \(full.count) bytes") { error in
                XCTAssertEqual((error as? MediaError)?.kind, .decode)
                XCTAssertTrue("\(error)".hasPrefix(url.path + ": cannot "), "\(error)")
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }

    func testGarbageAndDirectoryThrow() throws {
        let url = tempDir.appendingPathComponent("noise.jpg")
        try Data((0..<500).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: url)
        XCTAssertThrowsError(try ImageIO.read(url)) { error in
            XCTAssertTrue("\(error)".hasPrefix(url.path + ": "), "\(error)")
        }
        XCTAssertThrowsError(try ImageIO.read(tempDir)) { error in
            XCTAssertEqual((error as? MediaError)?.kind, .unreadable)
        }
    }

    func testRelativePathIsNamedAsGiven() throws {
        let url = URL(fileURLWithPath: "missing-image.png", relativeTo: tempDir)
        XCTAssertThrowsError(try ImageIO.read(url)) { error in
            XCTAssertEqual("\(error)", "missing-image.png: cannot read image (no such file)")
        }
    }
}

/// The 5×7 label font.
final class BitmapFontTests: XCTestCase {
    func testGlyphInkAndWidth() {
        var img = RGBImage(width: 12, height: 7)
        BitmapFont.draw("1", into: &img, x: 0, y: 0, color: (255, 0, 0))
        // "1": ..#.. / .##.. / ..#.. ×4 / .###. → 10 ink pixels, all in columns 1…3.
        var ink: [(Int, Int)] = []
        for y in 0..<7 { for x in 0..<12 where img.pixels[(y * 12 + x) * 3] == 255 { ink.append((x, y)) } }
        XCTAssertEqual(ink.count, 10)
        XCTAssertTrue(ink.allSatisfy { (1...3).contains($0.0) })
        XCTAssertEqual(BitmapFont.width(of: "ab", scale: 2), 22)
        XCTAssertEqual(BitmapFont.width(of: ""), 0)
        // Scale 2 quadruples the ink; drawing past the edge is clipped, never a crash.
        var big = RGBImage(width: 20, height: 20)
        BitmapFont.draw("1", into: &big, x: 0, y: 0, scale: 2, color: (0, 255, 0))
        XCTAssertEqual(stride(from: 1, to: big.pixels.count, by: 3).filter { big.pixels[$0] == 255 }.count, 40)
        BitmapFont.draw("W?", into: &big, x: 17, y: 18, scale: 3, color: (0, 0, 255))
        // An unknown character draws the box glyph (20 ink pixels on its outline).
        var box = RGBImage(width: 5, height: 7)
        BitmapFont.draw("\u{263A}", into: &box, x: 0, y: 0, color: (9, 9, 9))
        XCTAssertEqual(stride(from: 0, to: box.pixels.count, by: 3).filter { box.pixels[$0] == 9 }.count, 20)
    }
}
