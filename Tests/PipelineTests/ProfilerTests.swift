import Foundation
import XCTest
@testable import Pipeline

final class ProfilerTests: XCTestCase {
    func testPercentilesOfKnownValues() throws {
        let p = Profiler()
        p.register(stage: "encode", budgetMs: 60)
        // 1, 2, …, 100 ms: nearest-rank p50 = 50, p95 = 95, p99 = 99, max = 100.
        for ms in (1...100).reversed() { p.record(stage: "encode", ms: Double(ms)) }
        let s = try XCTUnwrap(p.report().stages["encode"])
        XCTAssertEqual(s.count, 100)
        // Histogram<UInt64> with 3 significant digits: within 0.1 %.
        XCTAssertEqual(s.p50Ms, 50, accuracy: 0.05)
        XCTAssertEqual(s.p95Ms, 95, accuracy: 0.095)
        XCTAssertEqual(s.p99Ms, 99, accuracy: 0.099)
        XCTAssertEqual(s.maxMs, 100)
        XCTAssertGreaterThanOrEqual(s.p50Ms, 50)
    }

    func testSubMillisecondResolution() throws {
        let p = Profiler()
        for _ in 0..<10 { p.record(stage: "gate", ms: 0.25) }
        XCTAssertEqual(p.report().stages["gate"]?.p50Ms, 0.25)
        XCTAssertEqual(p.report().stages["gate"]?.maxMs, 0.25)
    }

    func testProfileJSONHasExactlyTheDesignShape() throws {
        let p = Profiler()
        p.register(stage: "video_decode", budgetMs: 10)
        p.register(stage: "prefill", budgetMs: 150)
        p.register(sink: "sink")
        p.record(stage: "video_decode", ms: 4)
        p.record(stage: "prefill", ms: 160)
        p.recordOverrun(stage: "prefill")
        p.recordDrop(stage: "prefill", reason: .latest, count: 3)
        p.recordDrop(stage: "prefill", reason: .skip)
        p.recordDrop(stage: "sink", reason: .closed)
        for _ in 0..<5 { p.recordFrameIn() }
        p.recordAnswer(e2eMs: 170)

        let data = try p.report().jsonData()
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["stages", "e2e", "frames_in", "answers", "fresh_answers"], "accuracy only with truth")
        let stages = try XCTUnwrap(json["stages"] as? [String: [String: Any]])
        XCTAssertEqual(Set(stages.keys), ["video_decode", "prefill"], "sinks are not stages")
        for (_, s) in stages {
            XCTAssertEqual(Set(s.keys), ["count", "p50_ms", "p95_ms", "p99_ms", "max_ms", "wait_p50_ms", "wait_p95_ms",
                                          "wait_p99_ms", "drops", "overruns"])
        }
        XCTAssertEqual(stages["prefill"]?["drops"] as? Int, 4)
        XCTAssertEqual(stages["prefill"]?["overruns"] as? Int, 1)
        XCTAssertEqual(stages["prefill"]?["count"] as? Int, 1)
        XCTAssertEqual(stages["video_decode"]?["max_ms"] as? Double, 4)
        let e2e = try XCTUnwrap(json["e2e"] as? [String: Any])
        XCTAssertEqual(Set(e2e.keys), ["p50_ms", "p95_ms", "p99_ms"])
        XCTAssertEqual(e2e["p99_ms"] as? Double ?? 0, 170, accuracy: 0.17)
        XCTAssertEqual(json["frames_in"] as? Int, 5)
        XCTAssertEqual(json["answers"] as? Int, 1)

        // Round trip through Codable.
        XCTAssertEqual(try JSONDecoder().decode(ProfileReport.self, from: data), p.report())
    }

    func testEmptyProfileIsZeros() throws {
        let p = Profiler()
        p.register(stage: "encode")
        let r = p.report()
        XCTAssertEqual(r.stages["encode"], .init(count: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0, maxMs: 0, waitP50Ms: 0, waitP95Ms: 0, waitP99Ms: 0, drops: 0, overruns: 0))
        XCTAssertEqual(r.e2e, .init(p50Ms: 0, p95Ms: 0, p99Ms: 0))
    }

    func testTableListsStagesInOrder() throws {
        let p = Profiler()
        let q = try BoundedQueue<Int>(capacity: 2, policy: .latest, name: "prefill")
        q.push(1)
        p.register(stage: "encode", budgetMs: 60)
        p.register(stage: "prefill", budgetMs: 150, queue: { q.stats })
        p.record(stage: "encode", ms: 12.5)
        p.record(stage: "prefill", ms: 170)
        p.recordOverrun(stage: "prefill")
        p.recordDrop(stage: "prefill", reason: .latest, count: 2)
        let table = p.renderTable()
        let lines = table.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines[0].hasPrefix("stage"))
        XCTAssertTrue(lines[1].hasPrefix("encode "))
        XCTAssertTrue(lines[2].hasPrefix("prefill "))
        XCTAssertTrue(lines[2].contains("latest:2"))
        XCTAssertTrue(lines[2].contains("1/2 hw 1 latest"))
        XCTAssertTrue(lines[2].contains("170.00"))
        XCTAssertTrue(lines[3].hasPrefix("e2e "))
        XCTAssertTrue(lines.last?.hasPrefix("frames_in 0, answers 0 (fresh 0); p*: work per item, wait p*:") == true)
    }

    func testEventJSON() {
        XCTAssertEqual(PipelineEvent.kChanged(stage: "prefill", k: 120).jsonLine(),
                       #"{"event":"k_changed","k":120,"stage":"prefill"}"#)
        XCTAssertEqual(PipelineEvent.budgetOverrun(stage: "encode", ms: 61.23456, budgetMs: 60).jsonLine(),
                       #"{"budget_ms":60,"event":"budget_overrun","ms":61.235,"stage":"encode"}"#)
        XCTAssertEqual(PipelineEvent.stageError(stage: "gate", message: "bad \"x\"").jsonLine(),
                       #"{"event":"stage_error","message":"bad \"x\"","stage":"gate"}"#)
    }
}
