import XCTest
import Foundation
@testable import Serve
import Pipeline

/// The service beside a real pipeline run: the sample pipeline (Pipelines/warehouse.yaml, the bundled
/// random-weight tiny model) on 127.0.0.1 port 0.
final class ServeRunnerTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testSamplePipelineServesEventsMetricsAndAcceptsANewQuery() throws {
        var spec = try PipelineSpec.load(from: Self.repo.appendingPathComponent("Pipelines/warehouse.yaml"))
        // Without the prefill budget: its shrink-k action would cap K by the machine's load, and this test
        // checks the added query's own K.
        XCTAssertNotNil(spec.stages["prefill"]?.budgetMs)
        spec.stages["prefill"]?.budgetMs = nil
        spec.stages["prefill"]?.onOverrun = nil
        var options = RunOptions()
        options.duration = 60   // an upper bound; the test stops it sooner
        options.changeThreshold = 0   // every frame is answered afresh
        let hub = EventHub()
        let runner = try PipelineRunner(spec: spec, options: options) { line in hub.publish(line) }
        let service = try HTTPService(configuration: ServeConfiguration(), backend: ServeBackend(runner: runner), hub: hub)
        let port = try service.start()
        let client = try SSEClient(port: port, timeout: 30)
        XCTAssertEqual(client.status, 200)

        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            _ = try? runner.run()
            finished.signal()
        }
        defer {
            runner.stop()
            _ = finished.wait(timeout: .now() + 30)
            service.stop()
        }

        // Answer events arrive as JSON with DESIGN's keys.
        var seen: [String: Int] = [:]
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, (seen["person-in-aisle"] ?? 0) < 2 || (seen["forklift-side"] ?? 0) < 2 {
            let data = try XCTUnwrap(try client.next(), "stream ended")
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any], data)
            if obj["event"] != nil { continue }
            XCTAssertEqual(Set(obj.keys), ["stream", "query", "pts", "captured_at", "answer", "p_yes", "changed", "reused",
                                           "kept_count", "visual_tokens", "stages_ms", "queue_ms", "e2e_ms", "truth", "correct"])
            XCTAssertEqual(obj["stream"] as? String, "aisle3")
            seen[obj["query"] as! String, default: 0] += 1
        }
        XCTAssertGreaterThanOrEqual(seen["forklift-side"] ?? 0, 2)

        // A query added over HTTP is answered on the next frames, with its own gate (3 of 196 patches kept).
        let r = try HTTP.request("POST", "/queries", port: port, body: #"{"id":"forklift","text":"How many pallets are there?","gate":{"method":"atp","tokens":3}}"#)
        XCTAssertEqual(r.status, 201, r.body)
        var forklift: [String: Any]?
        while Date() < deadline, forklift == nil {
            let data = try XCTUnwrap(try client.next(), "stream ended")
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])
            if obj["query"] as? String == "forklift", obj["reused"] as? Bool == false { forklift = obj }
        }
        let f = try XCTUnwrap(forklift, "no answer for the added query")
        XCTAssertEqual(f["kept_count"] as? Int, 3)
        XCTAssertEqual(f["visual_tokens"] as? Int, 196)

        // Deleted: no more answers for it once the frames in flight are through.
        XCTAssertEqual(try HTTP.request("DELETE", "/queries/forklift", port: port).status, 204)
        XCTAssertEqual(runner.queries.all.map(\.id), ["person-in-aisle", "forklift-side"])

        // /metrics reflects the run.
        let m = try PrometheusText(try HTTP.request("GET", "/metrics", port: port).body)
        for stage in ["video_decode", "encode", "gate", "prefill", "llm_decode"] {
            XCTAssertGreaterThan(m.value("atp_stage_items_total", ["stage": stage]) ?? 0, 0, stage)
            XCTAssertNotNil(m.value("atp_stage_latency_ms", ["stage": stage, "quantile": "0.99"]), stage)
            XCTAssertNotNil(m.value("atp_queue_depth", ["stage": stage]), stage)
            XCTAssertNotNil(m.value("atp_stage_drops_total", ["stage": stage, "reason": "latest"]), stage)
        }
        XCTAssertGreaterThan(m.value("atp_frames_in_total") ?? 0, 0)
        XCTAssertGreaterThanOrEqual(m.value("atp_answers_total") ?? 0, 5)
        XCTAssertGreaterThan(m.value("atp_e2e_latency_ms", ["quantile": "0.5"]) ?? 0, 0)
        XCTAssertEqual(m.value("atp_sse_clients"), 1)
    }
}
