import XCTest
import Foundation
@testable import atp
import Media
import ModelIO
import Pipeline

/// `atp run --overlay-video`: the picture drawn from the gate's recorded decision, the video's timing,
/// and the file a real run writes.
final class OverlayVideoTests: XCTestCase {
    let model = CLI.repo.appendingPathComponent("Samples/models/atp-tiny")
    let yellow = OverlayVideo.palette[0], cyan = OverlayVideo.palette[1]

    func geometry() throws -> PatchGeometry {
        let processor = ImageProcessor(config: try ImageProcessorConfig.load(folder: model))
        return try PatchGeometry(processor: processor, imageWidth: 224, imageHeight: 224, grid: (14, 14))
    }

    func frame(pts: Double, grey: UInt8 = 200) -> VideoFrame {
        VideoFrame(image: RGBImage(width: 224, height: 224, fill: (grey, grey, grey)), pts: pts, capturedAt: 0, index: 0, streamId: "s")
    }

    func pixel(_ img: RGBImage, _ x: Int, _ y: Int) -> [UInt8] {
        let p = (y * img.width + x) * 3
        return Array(img.pixels[p..<p + 3])
    }

    func testComposeDrawsTheRecordedDecision() throws {
        // Query a keeps patches 0 and 15 (row 1, column 1 of 14); query b keeps 15 only.
        let fa = FrameAnswers(frame: frame(pts: 1.5), answers: [
            QueryOverlay(queryId: "a", answer: "yes", kept: [0, 15], reused: false, correct: true),
            QueryOverlay(queryId: "b", answer: "left", kept: [15], reused: true, correct: nil)])
        let colors = ["a": yellow, "b": cyan]
        let img = OverlayVideo.compose(fa, geometry: try geometry(), scale: 2, width: 448, height: 500) { colors[$0]! }
        XCTAssertEqual(img.width, 448)
        XCTAssertEqual(img.height, 500)
        // A kept patch keeps its pixels; a patch kept by no query is dimmed to 35 % (200 → 70).
        XCTAssertEqual(pixel(img, 16, 16), [200, 200, 200])
        XCTAssertEqual(pixel(img, 48, 16), [70, 70, 70])
        XCTAssertEqual(pixel(img, 400, 400), [70, 70, 70])
        // Patch 0 spans output pixels 0…31: query a's outline on its border.
        XCTAssertEqual(pixel(img, 0, 0), [yellow.0, yellow.1, yellow.2])
        XCTAssertEqual(pixel(img, 31, 10), [yellow.0, yellow.1, yellow.2])
        // Patch 15 spans 32…63 both ways: a's outline at its border, b's one pixel inside.
        XCTAssertEqual(pixel(img, 32, 40), [yellow.0, yellow.1, yellow.2])
        XCTAssertEqual(pixel(img, 33, 40), [cyan.0, cyan.1, cyan.2])
        XCTAssertEqual(pixel(img, 62, 50), [cyan.0, cyan.1, cyan.2])
        XCTAssertEqual(pixel(img, 48, 48), [200, 200, 200])
        // The legend (below the frame) writes each query's line in its colour.
        func inks(_ c: (UInt8, UInt8, UInt8)) -> Int {
            var n = 0
            for y in 448..<500 { for x in 0..<448 where pixel(img, x, y) == [c.0, c.1, c.2] { n += 1 } }
            return n
        }
        XCTAssertGreaterThan(inks(yellow), 50)
        XCTAssertGreaterThan(inks(cyan), 50)
    }

    func testVideoKeepsTheSourceTiming() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-ov-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("o.mp4")
        let processor = ImageProcessor(config: try ImageProcessorConfig.load(folder: model))
        let v = OverlayVideo(url: url, processor: processor, grid: (14, 14), fps: { 10 }, stream: "s", queryOrder: ["a"])
        // Answered at 0.0, 0.1 and 0.5 s (0.2–0.4 dropped by the pipeline); another stream is ignored.
        for (i, pts) in [0.0, 0.1, 0.5].enumerated() {
            var f = frame(pts: pts, grey: UInt8(60 + 60 * i))
            f.index = i
            v.add(FrameAnswers(frame: f, answers: [QueryOverlay(queryId: "a", answer: "no", kept: [i], reused: false, correct: nil)]))
        }
        var other = frame(pts: 0.3)
        other.streamId = "t"
        v.add(FrameAnswers(frame: other, answers: []))
        let (frames, drawn) = try v.finish()
        XCTAssertEqual(drawn, 3)
        XCTAssertEqual(frames, 6, "frames 2–4 repeat the frame answered at 0.1 s")
        let src = try VideoSources.open(url: url.path, options: SourceOptions())
        defer { src.close() }
        var decoded: [RGBImage] = []
        while let f = try src.next() { decoded.append(f.image) }
        XCTAssertEqual(decoded.count, 6)
        XCTAssertEqual(decoded.first?.width, 448)
        // Grey levels of patch 100 (dimmed: kept only patches 0–2): 60, 120, 120, 120, 120, 180 × 0.35.
        let levels = decoded.map { Int(pixel($0, 200, 200)[0]) }
        for (got, want) in zip(levels, [21, 42, 42, 42, 42, 63]) { XCTAssertEqual(got, want, accuracy: 4, "\(levels)") }
    }

    func testRunWritesAPlayableOverlayVideo() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-ov-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run.mp4")
        let r = try CLI.run(["run", CLI.repo.appendingPathComponent("Pipelines/warehouse.yaml").path, "--duration", "4",
                             "--overlay-video", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("atp: wrote \(out.path)"), r.stderr)
        let src = try VideoSources.open(url: out.path, options: SourceOptions())
        defer { src.close() }
        var frames: [RGBImage] = []
        while let f = try src.next() { frames.append(f.image) }
        XCTAssertGreaterThan(frames.count, 10)
        XCTAssertEqual(frames[0].width, 448)
        XCTAssertEqual(frames[0].height, 448 + 8 + 2 * 20 + 20)
        // The outlines (query 1's yellow) follow the objects: the outlined pixels differ between the first
        // and the last frame (the forklift and people move in the sample clip).
        func outlined(_ img: RGBImage) -> Set<Int> {
            var s = Set<Int>()
            for y in 0..<448 { for x in 0..<448 {
                let p = pixel(img, x, y)
                if abs(Int(p[0]) - Int(yellow.0)) < 40, abs(Int(p[1]) - Int(yellow.1)) < 40, p[2] < 80 { s.insert(y / 32 * 14 + x / 32) }
            }}
            return s
        }
        let first = outlined(frames[0]), last = outlined(frames[frames.count - 1])
        XCTAssertFalse(first.isEmpty)
        XCTAssertNotEqual(first, last)
        // A folder that does not exist is a one-line error before anything runs.
        let bad = try CLI.run(["run", CLI.repo.appendingPathComponent("Pipelines/warehouse.yaml").path, "--duration", "1",
                               "--overlay-video", "/nonexistent-folder/x.mp4"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--overlay-video /nonexistent-folder/x.mp4"), bad.stderr)
    }
}
