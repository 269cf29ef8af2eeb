import XCTest
import Foundation
@testable import Media

/// `atp run` on broken video (issue 12): a clip with bit-flipped packets in one GOP and truncated
/// packets in the next, read from the file and from an RTSP stream that ffmpeg publishes it to
/// (`-re -c copy`). The damaged frames are counted (`corrupt_packets`) and skipped, nothing else is
/// lost, answers go on after the damage, and the process exits 0.
final class BrokenVideoPipelineTests: ProcessTestCase {
    static let width = 160, height = 120, fps = 10   // VideoWriter: a keyframe every second

    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-broken-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        super.tearDown()
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    struct BrokenClip {
        let url: URL
        let frames: Int
        let damagedPackets: Int
        /// pts (ms from the first frame) of the frames from each damaged packet to the next keyframe.
        let window: Set<Int>
    }

    static func ms(_ seconds: Double) -> Int { Int((seconds * 1000).rounded()) }

    /// A `seconds`-long synthetic clip copied with three bit-flipped packets from the 3rd packet of
    /// GOP `flipGOP`, and two packets cut to a third in GOP `truncateGOP`: a P-frame whose B-frames
    /// are shown before it, and the packet after it.
    func makeBrokenClip(seconds: Int, flipGOP: Int, truncateGOP: Int) throws -> BrokenClip {
        let clean = dir.appendingPathComponent("clean.mp4")
        let scene = try SyntheticScene(width: Self.width, height: Self.height, seed: 5)
        let writer = try VideoWriter(url: clean, width: Self.width, height: Self.height, fps: Self.fps, codec: .h264)
        for f in 0..<(seconds * Self.fps) { try writer.write(scene.render(frame: f).0) }
        try writer.finish()
        let layout = try VideoDamage.copy(clean, to: dir.appendingPathComponent("copy.mp4"), damage: [:])
        let keys = layout.filter(\.key).map(\.index)
        XCTAssertEqual(keys.count, seconds, "a keyframe every second")
        var damage: [Int: PacketDamage] = [:]
        for i in keys[flipGOP] + 2...keys[flipGOP] + 4 { damage[i] = .flipBits }
        let gop = layout[keys[truncateGOP] + 1..<keys[truncateGOP + 1] - 1]
        let p = try XCTUnwrap(gop.first { $0.pts! > layout[$0.index + 1].pts! }, "a P-frame with B-frames after it")
        damage[p.index] = .truncate(keep: 1.0 / 3)
        damage[p.index + 1] = .truncate(keep: 1.0 / 3)
        let url = dir.appendingPathComponent("broken.mp4")
        let packets = try VideoDamage.copy(clean, to: url, damage: damage)
        var window = Set<Int>(), open = false
        for p in packets {
            if p.damage != nil { open = true } else if p.key { open = false }
            if open { window.insert(Self.ms(p.pts!)) }
        }
        return BrokenClip(url: url, frames: packets.count, damagedPackets: damage.count, window: window)
    }

    func pipeline(source: String, stages: String) throws -> URL {
        let samples = CLI.repo.appendingPathComponent("Samples/models/atp-tiny").path
        let yaml = dir.appendingPathComponent("broken.yaml")
        try """
        name: broken-video
        sources:
          - \(source)
        model: {vlm: "\(samples)"}
        queries:
          - {id: q, text: "Is there a person?"}
        stages: \(stages)
        sinks: [{jsonl: stdout}]
        """.write(to: yaml, atomically: true, encoding: .utf8)
        return yaml
    }

    static let blockingStages = "{video_decode: {queue: 4, policy: block}, encode: {queue: 2, policy: block}, "
        + "gate: {queue: 2, policy: block}, prefill: {queue: 2, policy: block}, llm_decode: {queue: 2, policy: block}}"

    static func corruptCounts(_ events: [[String: Any]]) -> [Int] {
        events.filter { $0["event"] as? String == "corrupt_packets" }.compactMap { $0["count"] as? Int }
    }

    func testBrokenFileIsAnsweredExceptItsDamagedFrames() throws {
        // 4 s: flips in the second GOP, truncation in the third, the fourth clean. Every stage blocks,
        // so every frame the source delivers is answered.
        let clip = try makeBrokenClip(seconds: 4, flipGOP: 1, truncateGOP: 2)
        let yaml = try pipeline(source: "{id: cam, url: \"\(clip.url.path)\"}", stages: Self.blockingStages)
        let prof = dir.appendingPathComponent("profile.json")
        let r = try CLI.run(["run", yaml.path, "--change-threshold", "0", "--max-tokens", "2", "--profile-json", prof.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let events = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let answered = events.filter { $0["event"] == nil }.compactMap { ($0["pts"] as? Double).map(Self.ms) }
        let all = Set((0..<clip.frames).map { $0 * 1000 / Self.fps })
        // Nothing lost but the damaged frames; answers go on after them.
        XCTAssertEqual(Set(answered), all.subtracting(clip.window), "unanswered \(all.subtracting(answered).sorted()), window \(clip.window.sorted())")
        XCTAssertEqual(answered.count, Set(answered).count, "one answer per frame")
        XCTAssertGreaterThan(answered.max() ?? 0, clip.window.max() ?? .max, "answers after the damage")
        let corrupt = Self.corruptCounts(events)
        XCTAssertEqual(corrupt, Array(1...clip.window.count), "one corrupt_packets event per skipped frame")
        XCTAssertFalse(events.contains { $0["event"] as? String == "source_error" }, r.stdout)
        let profile = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: prof)) as? [String: Any])
        XCTAssertEqual(profile["frames_in"] as? Int, clip.frames - clip.window.count)
        print("broken file through atp run: \(clip.frames) frames, \(clip.damagedPackets) damaged packets, damaged window "
              + "\(clip.window.count) frames, \(all.subtracting(answered).count) unanswered, \(profile["frames_in"] ?? "?") delivered, "
              + "\(corrupt.count) corrupt_packets events, \(answered.count) answers")
    }

    func testBrokenRTSPStreamIsAnsweredExceptItsDamagedFrames() throws {
        // 8 s published once in real time: the client joins in the first seconds (at 3 s here: 1 s
        // before it asks, 1 s of probing), the damage comes in the sixth and seventh, the eighth is
        // clean. Every stage blocks (the source waits rather than dropping), so every frame the source
        // delivers is answered.
        let clip = try makeBrokenClip(seconds: 8, flipGOP: 5, truncateGOP: 6)
        let (ffmpeg, publish, clientPort) = try startRTSPRelay()
        let pusher = try launch(ffmpeg, ["-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-i", clip.url.path,
                                         "-c", "copy", "-f", "rtsp", publish])
        let pushedAt = Date().timeIntervalSince1970
        Thread.sleep(forTimeInterval: 1)   // the stream is announced before a client asks for it
        let yaml = try pipeline(source: "{id: cam, url: \"rtsp://127.0.0.1:\(clientPort)/live\", transport: udp, read_timeout_ms: 1500, "
                                    + "reconnect: {initial_ms: 200, max_ms: 1000}}",
                                stages: Self.blockingStages)
        let out = dir.appendingPathComponent("events.jsonl"), prof = dir.appendingPathComponent("profile.json")
        let atp = try launch(CLI.binary.path, ["run", yaml.path, "--change-threshold", "0", "--max-tokens", "2", "--profile-json", prof.path],
                             stdout: out)
        XCTAssertTrue(waitUntil(15) { !pusher.isRunning }, "the publisher ends with the clip")
        // The stream's end is a stall (the decoder keeps its last reordered frames): once the answers
        // stop coming, stop the run cleanly.
        var count = -1, stableSince = Date()
        _ = waitUntil(10) {
            let n = lines(out).filter { $0["event"] == nil }.count
            if n != count { count = n; stableSince = Date() }
            return Date().timeIntervalSince(stableSince) > 1
        }
        atp.terminate()
        atp.waitUntilExit()
        XCTAssertEqual(atp.terminationStatus, 0)
        let events = lines(out)
        let answers = events.filter { $0["event"] == nil }
        let corrupt = Self.corruptCounts(events)
        let delivered = try XCTUnwrap(readFramesIn(prof))
        XCTAssertEqual(answers.count, delivered, "every delivered frame answered")
        // The client's first frame is a keyframe (pts 0 on the stream's clock) at `join` in the clip;
        // the frames missing between it and the last answer are exactly the damaged ones.
        let relative = answers.compactMap { ($0["pts"] as? Double).map(Self.ms) }
        XCTAssertEqual(relative.min(), 0)
        let last = relative.max() ?? 0
        let missing = Set(stride(from: 0, through: last, by: 1000 / Self.fps)).subtracting(relative)
        let join = (clip.window.min() ?? 0) - (missing.min() ?? 0)
        XCTAssertEqual(join % 1000, 0, "the first frame is a keyframe: missing \(missing.sorted()), window \(clip.window.sorted())")
        XCTAssertGreaterThanOrEqual(join, 0)
        XCTAssertEqual(Set(missing.map { $0 + join }), clip.window, "nothing lost but the damaged frames (join at \(join) ms)")
        // One event per skipped frame; RTSP's H.264 parser can merge a packet whose slice header lost
        // its first bytes into the packet before (it looks like a second slice of that picture): that
        // damaged picture is not a packet of its own and cannot be counted.
        XCTAssertEqual(corrupt, Array(1...max(1, corrupt.count)), "running totals")
        XCTAssertLessThanOrEqual(corrupt.count, clip.window.count)
        XCTAssertGreaterThanOrEqual(corrupt.count, clip.window.count - clip.damagedPackets)
        XCTAssertGreaterThanOrEqual(relative.filter { $0 + join > clip.window.max()! }.count, 3, "answers after the damage")
        // Cross-check the join with the wall clock: frames are captured about when the publisher sent them.
        let lags = answers.compactMap { a -> Double? in
            guard let pts = a["pts"] as? Double, let at = a["captured_at"] as? Double else { return nil }
            return at - pushedAt - pts
        }
        let lag = lags.min() ?? -1
        XCTAssertEqual(lag, Double(join) / 1000 + 0.5, accuracy: 0.5, "join at \(join) ms")
        print("broken RTSP stream through atp run: \(clip.frames) frames, \(clip.damagedPackets) damaged packets, damaged window "
              + "\(clip.window.count) frames, joined at \(join / 1000) s, \(missing.count) missing up to the last answer (at "
              + "\(Double(join + last) / 1000) s of the clip), \(delivered) delivered, \(corrupt.count) corrupt_packets events, "
              + "\(answers.count) answers")
    }

    func readFramesIn(_ profile: URL) -> Int? {
        guard let data = try? Data(contentsOf: profile),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return json["frames_in"] as? Int
    }
}
