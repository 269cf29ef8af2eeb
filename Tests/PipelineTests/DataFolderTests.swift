import XCTest
import Media
@testable import Pipeline

final class DataFolderTests: XCTestCase {
    private var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("atp-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private func folder(_ qa: String, images: [String] = ["a.png"]) throws -> URL {
        let dir = tmp.appendingPathComponent("d\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in images { try ImageIO.writePNG(RGBImage(width: 4, height: 4, fill: (1, 2, 3)), to: dir.appendingPathComponent(name)) }
        try Data(qa.utf8).write(to: dir.appendingPathComponent("qa.jsonl"))
        return dir
    }

    private func error(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "no error"
    }

    func testReadsAnyWellFormedFolder() throws {
        let dir = try folder("""
            {"image":"a.png","question":"Is it red?","answer":"yes","type":"presence","extra":1}

            {"type":"shape","answer":"circle","question":"What shape?","image":"a.png"}
            """)
        let d = try DataFolder(url: dir)
        XCTAssertEqual(d.items.count, 2)
        XCTAssertEqual(d.lines, [1, 3])
        XCTAssertEqual(d.items[1], QAItem(image: "a.png", question: "What shape?", answer: "circle", type: "shape"))
        XCTAssertEqual(d.name, dir.lastPathComponent)
        try Data(#"{"name":"easy-vqa-test"}"#.utf8).write(to: dir.appendingPathComponent("dataset.json"))
        XCTAssertEqual(try DataFolder(url: dir).name, "easy-vqa-test")
    }

    func testErrorsNameTheFileAndLine() throws {
        XCTAssertTrue(error { _ = try DataFolder(url: tmp.appendingPathComponent("nope")) }.hasSuffix("nope: no such data folder"))
        let malformed = try folder("{\"image\":\"a.png\",\"question\":\"q\",\"answer\":\"a\",\"type\":\"t\"}\n{not json\n")
        XCTAssertEqual(error { _ = try DataFolder(url: malformed) }, "\(malformed.path)/qa.jsonl:2: not a JSON object")
        let missing = try folder("{\"image\":\"a.png\",\"question\":\"q\",\"type\":\"t\"}\n")
        XCTAssertEqual(error { _ = try DataFolder(url: missing) }, "\(missing.path)/qa.jsonl:1: missing \"answer\"")
        let noImage = try folder("{\"image\":\"b.png\",\"question\":\"q\",\"answer\":\"a\",\"type\":\"t\"}\n")
        XCTAssertEqual(error { _ = try DataFolder(url: noImage) }, "\(noImage.path)/qa.jsonl:1: image \"b.png\" does not exist in \(noImage.path)")
        let escape = try folder("{\"image\":\"../a.png\",\"question\":\"q\",\"answer\":\"a\",\"type\":\"t\"}\n")
        XCTAssertTrue(error { _ = try DataFolder(url: escape) }.contains("must be a path inside the folder"))
        let empty = try folder("\n\n")
        XCTAssertEqual(error { _ = try DataFolder(url: empty) }, "\(empty.path)/qa.jsonl: no questions")
        let noQA = tmp.appendingPathComponent("noqa")
        try FileManager.default.createDirectory(at: noQA, withIntermediateDirectories: true)
        XCTAssertTrue(error { _ = try DataFolder(url: noQA) }.contains("qa.jsonl: missing"))
    }

    func testScoringNormalisesOnlyCaseSpaceAndOneFinalMark() {
        XCTAssertTrue(AnswerScoring.isCorrect(" Yes.\n", expected: "yes"))
        XCTAssertTrue(AnswerScoring.isCorrect("LEFT!", expected: "left"))
        XCTAssertTrue(AnswerScoring.isCorrect("two", expected: "Two"))
        XCTAssertFalse(AnswerScoring.isCorrect("yes..", expected: "yes"))
        XCTAssertFalse(AnswerScoring.isCorrect("yes, there is", expected: "yes"))
        XCTAssertFalse(AnswerScoring.isCorrect("2", expected: "two"))
        XCTAssertFalse(AnswerScoring.isCorrect("", expected: "no"))
    }

    func testSynthFolderRoundTripsAndMatchesTheWorld() throws {
        let out = tmp.appendingPathComponent("synth")
        try DataFolderWriter.writeWarehouse(to: out, count: 6, seed: 11, width: 224, height: 224, name: "synthetic-test")
        let d = try DataFolder(url: out)
        XCTAssertEqual(d.name, "synthetic-test")
        XCTAssertEqual(Set(d.items.map(\.image)).count, 6)
        for i in 0..<6 {
            let (image, questions, _) = DataFolderWriter.warehouseSample(seed: 11, index: i, width: 224, height: 224)
            let rel = String(format: "images/%06d.png", i)
            XCTAssertEqual(try ImageIO.read(out.appendingPathComponent(rel)), image, "PNG is lossless")
            XCTAssertEqual(d.items.filter { $0.image == rel }.map(\.answer), questions.map(\.answer))
        }
        // Writing into a folder that holds files is refused and leaves it as it was.
        XCTAssertTrue(error { try DataFolderWriter.writeWarehouse(to: out, count: 1, seed: 0, width: 224, height: 224, name: "x") }
            .hasSuffix("exists and is not empty"))
        XCTAssertEqual(try DataFolder(url: out).items.count, d.items.count)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: tmp.path).contains { $0.contains("partial") })
    }

    func testTruthTrackLooksUpByPtsAndWrapsLoops() throws {
        let url = tmp.appendingPathComponent("v.truth.jsonl")
        let lines = (0..<4).map { i in
            #"{"frame":\#(i),"pts":\#(Double(i) * 0.5),"objects":[],"answers":{"Q":"\#(i < 2 ? "yes" : "no")"}}"#
        }
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        let t = try TruthTrack(url: url)
        XCTAssertEqual(t.period, 2.0, accuracy: 1e-9)
        XCTAssertEqual(t.frame(at: 0.49).answers["Q"], "yes")
        XCTAssertEqual(t.frame(at: 1.0).answers["Q"], "no")
        XCTAssertEqual(t.frame(at: 2.2).answers["Q"], "yes", "a looped file starts the clip again")
        XCTAssertEqual(t.frame(at: 3.6).answers["Q"], "no")
        try Data("{\"pts\":0,\"answers\":{}}\n{\"pts\":0,\"answers\":{}}\n".utf8).write(to: url)
        XCTAssertEqual(error { _ = try TruthTrack(url: url) }, "\(url.path):2: pts 0.0 is not after the previous line's 0.0")
    }

    func testVideoAndTruthAreWrittenTogether() throws {
        let video = tmp.appendingPathComponent("w.mp4")
        try DataFolderWriter.writeWarehouseVideo(to: video, seconds: 1, seed: 2, fps: 5)
        let truth = try TruthTrack(url: DataFolderWriter.truthSidecar(for: video))
        XCTAssertEqual(truth.frames.count, 5)
        XCTAssertEqual(truth.questions.count, 5)
        let source = try FFmpegSource(url: video.path)
        var frames = 0
        while try source.next() != nil { frames += 1 }
        XCTAssertEqual(frames, 5)
        XCTAssertTrue(error { try DataFolderWriter.writeWarehouseVideo(to: tmp.appendingPathComponent("no/x.mp4"), seconds: 1, seed: 0, fps: 5) }
            .hasSuffix("does not exist"))
    }
}
