import XCTest
import Foundation

/// `atp run` end to end on the sample pipeline: JSON Lines on stdout with DESIGN's keys, the profile JSON,
/// clean exit at --duration and on SIGTERM.
final class RunCLITests: XCTestCase {
    let pipeline = CLI.repo.appendingPathComponent("Pipelines/warehouse.yaml").path
    static let stageNames: Set<String> = ["video_decode", "encode", "gate", "prefill", "llm_decode"]

    func checkEvents(_ stdout: String, truth: Bool = true) throws -> [[String: Any]] {
        var answers: [[String: Any]] = []
        for line in stdout.split(separator: "\n") {
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            if obj["event"] != nil { continue }
            XCTAssertEqual(Set(obj.keys), Set(["stream", "query", "pts", "captured_at", "answer", "p_yes", "changed", "reused",
                                               "kept_count", "visual_tokens", "stages_ms", "queue_ms", "e2e_ms"] + (truth ? ["truth", "correct"] : [])),
                           "\(line)")
            answers.append(obj)
        }
        return answers
    }

    func testWarehousePipelineRunsForItsDuration() throws {
        let prof = FileManager.default.temporaryDirectory.appendingPathComponent("atp-prof-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: prof) }
        // The sample pipeline as shipped, less the prefill's latency budget: on a loaded machine its
        // shrink-k action lowers K (by design), which would make the kept count and accuracy below depend
        // on the machine's load. Everything else is the shipped YAML (paths made absolute).
        var yaml = try String(contentsOfFile: pipeline, encoding: .utf8)
        let budget = ", budget_ms: 150, on_overrun: shrink-k"
        XCTAssertTrue(yaml.contains(budget), "the sample pipeline's prefill budget changed: update this test")
        yaml = yaml.replacingOccurrences(of: budget, with: "")
            .replacingOccurrences(of: "\"../", with: "\"\(CLI.repo.path)/").replacingOccurrences(of: " ../", with: " \(CLI.repo.path)/")
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("atp-warehouse-\(UUID().uuidString).yaml")
        try yaml.write(to: copy, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: copy) }
        let t0 = Date()
        let r = try CLI.run(["run", copy.path, "--duration", "4", "--profile-json", prof.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 30)
        let answers = try checkEvents(r.stdout)
        XCTAssertGreaterThan(answers.count, 4)
        XCTAssertEqual(Set(answers.map { $0["query"] as! String }), ["person-in-aisle", "forklift-side"])
        let fresh = answers.filter { ($0["reused"] as! Bool) == false }
        XCTAssertFalse(fresh.isEmpty)
        for a in fresh {
            XCTAssertEqual(a["stream"] as? String, "aisle3")
            XCTAssertEqual(a["visual_tokens"] as? Int, 196)
            XCTAssertEqual(Set((a["stages_ms"] as! [String: Any]).keys), Self.stageNames)
            if a["query"] as! String == "person-in-aisle" {
                let p = a["p_yes"] as! Double
                XCTAssertTrue((0...1).contains(p))
            }
            // The sidecar answers both standing questions on every frame; `correct` is the scored answer.
            let truth = try XCTUnwrap(a["truth"] as? String)
            XCTAssertEqual(a["correct"] as? Bool, (a["answer"] as! String).lowercased() == truth)
        }
        // Every millisecond accounted for: capture → work and waits → answer, for fresh and reused answers.
        for a in answers {
            let work = (a["stages_ms"] as! [String: Double]).values.reduce(0, +)
            let queue = a["queue_ms"] as! Double, e2e = a["e2e_ms"] as! Double
            XCTAssertGreaterThan(try XCTUnwrap((a["stages_ms"] as! [String: Double])["video_decode"]), 0)
            XCTAssertGreaterThanOrEqual(queue, 0)
            XCTAssertEqual(e2e, work + queue, accuracy: max(1, 0.05 * e2e), "e2e ≠ Σ stages_ms + queue_ms in \(a)")
        }
        // Every frame is answered for every standing query (queries travel together, so a `latest`
        // queue keeps the newest frame with all its queries rather than starving one of them).
        let ptsByQuery = Dictionary(grouping: answers, by: { $0["query"] as! String }).mapValues { Set($0.map { $0["pts"] as! Double }) }
        let a = ptsByQuery["person-in-aisle"] ?? [], b = ptsByQuery["forklift-side"] ?? []
        XCTAssertLessThanOrEqual(a.symmetricDifference(b).count, 2, "frames answered for one query only")
        // The sample pipeline keeps a quarter of the visual tokens (keep 0.25, the calibrated atp-div gate).
        XCTAssertEqual(Set(fresh.map { $0["kept_count"] as! Int }), [49])
        // The trained model answers the sample clip (the README reports a 20 s run).
        let right = answers.filter { $0["correct"] as? Bool == true }.count
        XCTAssertGreaterThanOrEqual(Double(right) / Double(answers.count), 0.85)
        // `changed` is true for the first answer of each query and whenever the text differs from the last one.
        var last: [String: String] = [:]
        for a in answers where (a["reused"] as! Bool) == false {
            let q = a["query"] as! String, text = a["answer"] as! String
            XCTAssertEqual(a["changed"] as? Bool, last[q].map { $0 != text } ?? true)
            last[q] = text
        }
        let profile = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: prof)) as? [String: Any])
        XCTAssertEqual(Set(profile.keys), ["stages", "e2e", "frames_in", "answers", "fresh_answers", "accuracy"])
        XCTAssertEqual(profile["fresh_answers"] as? Int, fresh.count)
        let accuracy = try XCTUnwrap(profile["accuracy"] as? [String: Double])
        XCTAssertEqual(Set(accuracy.keys), ["person-in-aisle", "forklift-side"])
        for (q, value) in accuracy {
            let events = answers.filter { $0["query"] as! String == q }
            let right = events.filter { $0["correct"] as? Bool == true }.count
            XCTAssertEqual(value, Double(right) / Double(events.count), accuracy: 1e-9, "accuracy of \(q) over its answer events")
        }
        XCTAssertTrue(r.stderr.contains("accuracy person-in-aisle"), "accuracy per query on stderr")
        let stages = try XCTUnwrap(profile["stages"] as? [String: [String: Any]])
        XCTAssertEqual(Set(stages.keys), Self.stageNames)
        for (_, s) in stages {
            XCTAssertEqual(Set(s.keys), ["count", "p50_ms", "p95_ms", "p99_ms", "max_ms", "wait_p50_ms", "wait_p95_ms",
                                         "wait_p99_ms", "drops", "overruns"])
        }
        // The profile's work is what events report as stages_ms: video_decode's median is the median of
        // the events' video_decode (the same items, fresh and reused), within histogram resolution.
        // (Not under a sanitizer: there the instrumented stages fall behind real time, `latest` drops
        // frames after their decode, and the answered frames are no longer a fair sample of the decodes.)
        let decodes = answers.map { ($0["stages_ms"] as! [String: Double])["video_decode"]! }.sorted()
        let median = decodes[decodes.count / 2]
        if ProcessInfo.processInfo.environment["ATP_SANITIZER"] == nil {
            XCTAssertEqual(stages["video_decode"]?["p50_ms"] as! Double, median, accuracy: max(0.5, 0.5 * median))
        }
        XCTAssertEqual(profile["answers"] as? Int, answers.count)
        XCTAssertTrue(r.stderr.contains("p99"), "profile summary on stderr")
    }

    func testProfileJSONReplacesAnExistingFile() throws {
        // A second run's profile replaces the first one's whole (an earlier version lost the file).
        let prof = FileManager.default.temporaryDirectory.appendingPathComponent("atp-prof-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: prof) }
        try Data("{\"old\":true}".utf8).write(to: prof)
        let r = try CLI.run(["run", pipeline, "--duration", "1", "--profile-json", prof.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let profile = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: prof)) as? [String: Any])
        XCTAssertNil(profile["old"])
        XCTAssertNotNil(profile["stages"])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: prof.deletingLastPathComponent().path)
            .filter { $0.hasPrefix(".\(prof.lastPathComponent).tmp") }
        XCTAssertEqual(leftovers, [], "no temporary file left beside it")
    }

    func testSIGTERMEndsTheRunCleanly() throws {
        let prof = FileManager.default.temporaryDirectory.appendingPathComponent("atp-prof-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: prof) }
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = ["run", pipeline, "--source", "synthetic:shapes?w=160&h=120&fps=15&seed=2", "--realtime",
                       "--profile-json", prof.path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: 3)
        p.terminate()   // SIGTERM
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 0)
        let answers = try checkEvents(String(decoding: data, as: UTF8.self), truth: false)
        XCTAssertGreaterThan(answers.count, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: prof.path), "profile written on SIGTERM")
    }

    func testReusedFramesTakeNoComputeTurn() throws {
        // A change threshold of 255 grey levels reuses answers for every frame once a first answer has
        // reached the sink (the frames already in flight before that are answered afresh): only fresh frames
        // take compute turns; reused ones appear only in video_decode.
        let prof = FileManager.default.temporaryDirectory.appendingPathComponent("atp-prof-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: prof) }
        let r = try CLI.run(["run", pipeline, "--duration", "4", "--change-threshold", "255", "--profile-json", prof.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let answers = try checkEvents(r.stdout)
        let fresh = answers.filter { ($0["reused"] as! Bool) == false }.count
        XCTAssertEqual(fresh % 2, 0)
        let freshFrames = fresh / 2
        XCTAssertGreaterThan(answers.count, fresh + 10, "most answers are reused")
        let profile = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: prof)) as? [String: Any])
        XCTAssertEqual(profile["fresh_answers"] as? Int, fresh)
        let stages = try XCTUnwrap(profile["stages"] as? [String: [String: Any]])
        for s in ["prefill", "llm_decode"] { XCTAssertEqual(stages[s]?["count"] as? Int, freshFrames, s) }
        // encode and gate may also count a fresh frame that a later queue dropped.
        for s in ["encode", "gate"] { XCTAssertLessThanOrEqual(stages[s]?["count"] as? Int ?? .max, freshFrames + 2, s) }
        XCTAssertGreaterThanOrEqual(stages["video_decode"]?["count"] as? Int ?? 0, answers.count / 2)
        for a in answers where a["reused"] as! Bool { XCTAssertEqual(Set((a["stages_ms"] as! [String: Any]).keys), ["video_decode"]) }
    }

    func testRunHonoursTheYAMLSinks() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-sinks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let events = dir.appendingPathComponent("events.jsonl")
        func yaml(_ sinks: String) throws -> String {
            let url = dir.appendingPathComponent("p-\(UUID().uuidString).yaml")
            try """
            name: sinks
            sources: [{id: s, url: "\(CLI.repo.appendingPathComponent("Samples/video/warehouse.mp4").path)"}]
            model: {vlm: "\(CLI.repo.appendingPathComponent("Samples/models/atp-tiny").path)"}
            queries: [{id: q, text: "Is there a person in the aisle?"}]
            sinks: \(sinks)
            """.write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }
        // A file sink alone: events go to the file, stdout stays empty.
        let r = try CLI.run(["run", try yaml("[{jsonl: \"\(events.path)\"}]"), "--duration", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "")
        let lines = try String(contentsOf: events, encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 0)
        let answers = try checkEvents(lines.filter { !$0.contains("\"event\"") }.joined(separator: "\n"))
        XCTAssertEqual(answers.count, lines.filter { !$0.contains("\"event\"") }.count)
        // stdout plus an http sink: `atp run` serves the HTTP API on the sink's address.
        let h = try CLI.run(["run", try yaml("[{jsonl: stdout}, {http: {host: 127.0.0.1, port: 0}}]"), "--duration", "2"])
        XCTAssertEqual(h.status, 0, h.stderr)
        XCTAssertTrue(h.stderr.contains("atp: serving on http://127.0.0.1:"), h.stderr)
        XCTAssertFalse(try checkEvents(h.stdout).isEmpty)
    }

    func testBadPipelineFilesAreOneLineErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atp-yaml-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.yaml")
        try "name: x\nsources: []\nqueries: []\nstages: {encode: {queue: 0, policy: latest}}\n".write(to: bad, atomically: true, encoding: .utf8)
        var r = try CLI.run(["run", bad.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("bad.yaml") && r.stderr.contains("queue"), r.stderr)
        try "name: x\nsorces: []\n".write(to: bad, atomically: true, encoding: .utf8)
        r = try CLI.run(["run", bad.path])
        XCTAssertTrue(r.stderr.contains("sorces") && r.stderr.contains("bad.yaml"), r.stderr)
        r = try CLI.run(["run", pipeline, "--source", "rtsp://127.0.0.1:9/none", "--duration", "2"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("rtsp://127.0.0.1:9/none"), r.stderr)
    }
}

/// `atp bench graph`: stage times are measured (their sum covers the spun time) and the overhead is reported.
final class BenchGraphCLITests: XCTestCase {
    func testGraphOverheadBenchmarkReportsItsKeys() throws {
        let r = try CLI.run(["bench", "graph", "--items", "50", "--stage-us", "300", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try r.json()
        XCTAssertEqual(Set(j.keys), ["items", "stages", "overhead_p50_us", "overhead_p99_us", "stage_sum_p50_us"])
        XCTAssertEqual(j["items"] as? Int, 50)
        XCTAssertGreaterThanOrEqual((j["stage_sum_p50_us"] as? Double) ?? 0, 5 * 300, "five stages spinning 300 µs each")
        XCTAssertGreaterThanOrEqual((j["overhead_p50_us"] as? Double) ?? -1, 0)
    }
}
