import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `atp run` on a live RTSP stream: Debian's rtsp-server-perl on 127.0.0.1, an ffmpeg pusher that is
/// stopped mid-run and restarted; the outage is reported (`reconnect`, `gap`) and answers resume.
final class RTSPPipelineCLITests: ProcessTestCase {
    func testOutageIsReportedAndAnswersResume() throws {
        let (ffmpeg, push, clientPort) = try startRTSPServer()
        var pusher = try launch(ffmpeg, push)
        Thread.sleep(forTimeInterval: 2)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-rtsp-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let samples = CLI.repo.appendingPathComponent("Samples/models/atp-tiny").path
        let yaml = dir.appendingPathComponent("live.yaml")
        try """
        name: live-test
        sources:
          - {id: cam, url: "rtsp://127.0.0.1:\(clientPort)/live", transport: udp, read_timeout_ms: 1500, reconnect: {initial_ms: 200, max_ms: 1000}}
        model: {vlm: "\(samples)", clip: "\(samples)/clip"}
        queries:
          - {id: q, text: "Is there a person?"}
        stages:
          video_decode: {queue: 2, policy: latest}
          prefill: {queue: 1, policy: latest}
        sinks: [{jsonl: stdout}]
        """.write(to: yaml, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("events.jsonl")
        let atp = try launch(CLI.binary.path, ["run", yaml.path, "--change-threshold", "0", "--max-tokens", "2"], stdout: out)
        XCTAssertTrue(waitUntil(15) { lines(out).filter { $0["event"] == nil }.count >= 3 }, "answers before the outage")
        // Outage: stop the pusher, restart it 3 s later.
        pusher.terminate()
        pusher.waitUntilExit()
        Thread.sleep(forTimeInterval: 3)
        pusher = try launch(ffmpeg, push)
        let resumed = waitUntil(20) {
            let all = lines(out)
            guard let gap = all.firstIndex(where: { $0["event"] as? String == "gap" }) else { return false }
            return all[(gap + 1)...].filter { $0["event"] == nil }.count >= 2
        }
        atp.terminate()   // SIGTERM: a clean stop
        atp.waitUntilExit()
        let all = lines(out)
        XCTAssertTrue(resumed, "answers resume after the gap: \(all.compactMap { $0["event"] as? String })")
        XCTAssertTrue(all.contains { $0["event"] as? String == "reconnect" }, "a reconnect event")
        let gap = all.first { $0["event"] as? String == "gap" }
        XCTAssertGreaterThan((gap?["seconds"] as? Double) ?? 0, 1)
        XCTAssertEqual(atp.terminationStatus, 0)
    }

    /// Fresh answers per stream and the longest time a stream went without one (by `captured_at`,
    /// counting the start and end of the window).
    func freshStats(_ events: [[String: Any]], stream: String, from t0: Double, to t1: Double) -> (count: Int, longestGap: Double) {
        let times = events.filter { $0["event"] == nil && $0["stream"] as? String == stream && $0["reused"] as? Bool == false }
            .compactMap { $0["captured_at"] as? Double }.filter { $0 >= t0 && $0 <= t1 }.sorted()
        let edges = [t0] + times + [t1]
        return (times.count, zip(edges, edges.dropFirst()).map { $1 - $0 }.max() ?? (t1 - t0))
    }

    func testThreeStreamsShareTheComputeFairlyThroughAnRTSPOutage() throws {
        // A 30 fps and a 5 fps synthetic stream and a 10 fps RTSP stream whose pusher is killed for 3 s and
        // restarted, all in one pipeline: every stream keeps at least 70 % of its fair share of the
        // measured capacity (min(its rate, capacity / 3)), the synthetic ones never go 2 s without a fresh
        // answer, also during the outage, and the RTSP stream resumes after it.
        let (ffmpeg, push, clientPort) = try startRTSPServer()
        var pusher = try launch(ffmpeg, push)
        Thread.sleep(forTimeInterval: 2)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-fair-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let samples = CLI.repo.appendingPathComponent("Samples/models/atp-tiny").path
        let yaml = dir.appendingPathComponent("three.yaml")
        try """
        name: three-streams
        sources:
          - {id: fast, url: "synthetic:shapes?w=160&h=120&fps=30&seed=1", realtime: true}
          - {id: slow, url: "synthetic:shapes?w=160&h=120&fps=5&seed=2", realtime: true}
          - {id: cam, url: "rtsp://127.0.0.1:\(clientPort)/live", transport: udp, read_timeout_ms: 1500, reconnect: {initial_ms: 200, max_ms: 1000}}
        model: {vlm: "\(samples)"}
        queries:
          - {id: q, text: "Is there a person?"}
        sinks: [{jsonl: stdout}]
        """.write(to: yaml, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("events.jsonl")
        let atp = try launch(CLI.binary.path, ["run", yaml.path, "--change-threshold", "0", "--max-tokens", "2"], stdout: out)
        XCTAssertTrue(waitUntil(20) { Set(lines(out).compactMap { $0["event"] == nil ? $0["stream"] as? String : nil }).count == 3 },
                      "every stream answers")
        let start = Date().timeIntervalSince1970
        Thread.sleep(forTimeInterval: 4)
        pusher.terminate()
        pusher.waitUntilExit()
        let outageStart = Date().timeIntervalSince1970
        Thread.sleep(forTimeInterval: 3)
        pusher = try launch(ffmpeg, push)
        let resumed = waitUntil(15) {
            let all = lines(out)
            guard let gap = all.firstIndex(where: { $0["event"] as? String == "gap" }) else { return false }
            return all[(gap + 1)...].contains { $0["event"] == nil && $0["stream"] as? String == "cam" }
        }
        Thread.sleep(forTimeInterval: 2)
        let end = Date().timeIntervalSince1970
        atp.terminate()
        atp.waitUntilExit()
        XCTAssertEqual(atp.terminationStatus, 0)
        let all = lines(out)
        XCTAssertTrue(resumed, "the RTSP stream answers again after its gap: \(all.compactMap { $0["event"] as? String })")
        let seconds = end - start
        let stats = Dictionary(uniqueKeysWithValues: ["fast", "slow", "cam"].map { ($0, freshStats(all, stream: $0, from: start, to: end)) })
        let capacity = Double(stats.values.map(\.count).reduce(0, +)) / seconds
        let report = stats.map { "\($0.key): \($0.value.count) fresh, longest gap \(String(format: "%.2f", $0.value.longestGap)) s" }.sorted()
            .joined(separator: "; ") + String(format: "; capacity %.1f answers/s over %.1f s", capacity, seconds)
        for (stream, rate) in [("fast", 30.0), ("slow", 5.0)] {
            let share = min(rate, capacity / 3) * seconds
            XCTAssertGreaterThanOrEqual(Double(stats[stream]!.count), 0.7 * share, "\(stream) below 70 % of its fair share: \(report)")
            XCTAssertLessThan(stats[stream]!.longestGap, 2, "\(stream) went 2 s without a fresh answer: \(report)")
        }
        // Through the outage the other two streams kept answering.
        for stream in ["fast", "slow"] {
            XCTAssertGreaterThan(freshStats(all, stream: stream, from: outageStart, to: outageStart + 3).count, 0, "\(stream) during the outage: \(report)")
        }
        print("three streams: \(report)")
    }
}
