import XCTest
import Foundation
@testable import Serve
import Pipeline

/// A strict reader of the Prometheus text format (0.0.4): every line is a comment (`# HELP`, `# TYPE`)
/// or `name{label="value",…} number`; duplicate series are an error.
struct PrometheusText {
    var samples: [String: Double] = [:]   // "name{a="x",b="y"}" with labels sorted
    var types: [String: String] = [:]

    struct Failure: Error, CustomStringConvertible { let description: String }

    init(_ text: String) throws {
        let namePattern = try NSRegularExpression(pattern: #"^[a-zA-Z_:][a-zA-Z0-9_:]*$"#)
        func validName(_ s: String) -> Bool { namePattern.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(raw)
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                    throw Failure(description: "bad TYPE line: \(line)")
                }
                types[String(parts[2])] = String(parts[3])
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw Failure(description: "no value: \(line)")
            }
            let series = String(line[..<space])
            var name = series
            var labels: [(String, String)] = []
            if let open = series.firstIndex(of: "{") {
                guard series.hasSuffix("}") else { throw Failure(description: "unclosed labels: \(line)") }
                name = String(series[..<open])
                let body = series[series.index(after: open)..<series.index(before: series.endIndex)]
                let pair = try NSRegularExpression(pattern: #"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#)
                let s = String(body)
                var consumed = 0
                for m in pair.matches(in: s, range: NSRange(s.startIndex..., in: s)) {
                    labels.append((String(s[Range(m.range(at: 1), in: s)!]), String(s[Range(m.range(at: 2), in: s)!])))
                    consumed += m.range.length
                }
                guard consumed + max(0, labels.count - 1) == s.utf16.count else { throw Failure(description: "bad labels: \(line)") }
            }
            guard validName(name) else { throw Failure(description: "bad metric name: \(line)") }
            let key = Self.key(name, labels)
            guard samples[key] == nil else { throw Failure(description: "duplicate series: \(key)") }
            samples[key] = value
        }
    }

    static func key(_ name: String, _ labels: [(String, String)]) -> String {
        labels.isEmpty ? name : name + "{" + labels.sorted { $0.0 < $1.0 }.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: ",") + "}"
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples[Self.key(name, labels.map { ($0.key, $0.value) })]
    }
}

/// `/metrics` content from a profiler with known numbers.
final class MetricsTests: XCTestCase {
    /// A profiler with exact, hand-checkable numbers: encode took 1…100 ms (p50 50, p95 95, p99 99),
    /// gate 2 ms twice; drops, overruns, frames and answers counted.
    func makeProfiler() -> Profiler {
        let p = Profiler()
        p.register(stage: "encode", budgetMs: 60)
        p.register(stage: "gate")
        p.register(sink: "sink")
        p.recordDrop(stage: "sink", reason: .closed)
        for ms in 1...100 { p.record(stage: "encode", ms: Double(ms)) }
        p.record(stage: "gate", ms: 2)
        p.record(stage: "gate", ms: 2)
        p.recordDrop(stage: "encode", reason: .dropOldest, count: 3)
        p.recordDrop(stage: "encode", reason: .error)
        for _ in 0..<40 { p.recordOverrun(stage: "encode") }
        for _ in 0..<7 { p.recordFrameIn() }
        for ms in [10.0, 20, 30, 40] { p.recordAnswer(e2eMs: ms) }
        return p
    }

    func testStageMetricsMatchTheProfiler() throws {
        let profiler = makeProfiler()
        let hub = EventHub(capacity: 4)
        hub.publish("{}")
        let text = MetricsExporter().render(profiler: profiler, hub: hub)
        let m = try PrometheusText(text)

        // Latency percentiles: the profiler's histogram (3 significant digits) over 1…100 ms.
        let encodeProfile = try XCTUnwrap(profiler.stageProfiles().first { $0.name == "encode" })
        XCTAssertEqual(encodeProfile.p50Ms, 50, accuracy: 0.05)
        XCTAssertEqual(m.value("atp_stage_latency_ms", ["stage": "encode", "quantile": "0.5"])!, 50, accuracy: 0.05)
        XCTAssertEqual(m.value("atp_stage_latency_ms", ["stage": "encode", "quantile": "0.95"])!, 95, accuracy: 0.1)
        XCTAssertEqual(m.value("atp_stage_latency_ms", ["stage": "encode", "quantile": "0.99"])!, 99, accuracy: 0.1)
        XCTAssertEqual(m.value("atp_stage_latency_ms", ["stage": "gate", "quantile": "0.5"])!, 2, accuracy: 0.005)
        XCTAssertEqual(m.value("atp_stage_items_total", ["stage": "encode"]), 100)
        XCTAssertEqual(m.value("atp_stage_items_total", ["stage": "gate"]), 2)
        XCTAssertEqual(m.value("atp_stage_drops_total", ["stage": "encode", "reason": "drop-oldest"]), 3)
        XCTAssertEqual(m.value("atp_stage_drops_total", ["stage": "encode", "reason": "error"]), 1)
        XCTAssertEqual(m.value("atp_stage_drops_total", ["stage": "gate", "reason": "latest"]), 0)
        XCTAssertEqual(m.value("atp_stage_overruns_total", ["stage": "encode"]), 40)
        XCTAssertEqual(m.value("atp_stage_overruns_total", ["stage": "gate"]), 0)
        XCTAssertEqual(m.value("atp_queue_depth", ["stage": "encode"]), 0)
        XCTAssertEqual(m.value("atp_frames_in_total"), 7)
        XCTAssertEqual(m.value("atp_answers_total"), 4)
        // e2e over 10, 20, 30, 40 ms: p50 is the 2nd value, p95 and p99 the 4th.
        XCTAssertEqual(m.value("atp_e2e_latency_ms", ["quantile": "0.5"])!, 20, accuracy: 0.02)
        XCTAssertEqual(m.value("atp_e2e_latency_ms", ["quantile": "0.99"])!, 40, accuracy: 0.04)
        XCTAssertEqual(m.value("atp_sse_events_total"), 1)
        XCTAssertEqual(m.value("atp_sse_clients"), 0)
        XCTAssertEqual(m.value("atp_sse_dropped_clients_total"), 0)

        XCTAssertEqual(m.types["atp_stage_items_total"], "counter")
        XCTAssertEqual(m.types["atp_stage_drops_total"], "counter")
        XCTAssertEqual(m.types["atp_stage_latency_ms"], "gauge")
        XCTAssertEqual(m.types["atp_queue_depth"], "gauge")
        // The sink has drops and a queue but no latency or item count.
        XCTAssertEqual(m.value("atp_stage_drops_total", ["stage": "sink", "reason": "closed"]), 1)
        XCTAssertEqual(m.value("atp_queue_depth", ["stage": "sink"]), 0)
        XCTAssertNil(m.value("atp_stage_items_total", ["stage": "sink"]))
        XCTAssertNil(m.value("atp_stage_latency_ms", ["stage": "sink", "quantile": "0.5"]))
        // Every drop reason has a series for every stage and the sink (3 × 6 reasons).
        XCTAssertEqual(m.samples.keys.filter { $0.hasPrefix("atp_stage_drops_total{") }.count, 3 * DropReason.allCases.count)
    }

    func testCountersFollowTheProfilerAcrossScrapes() throws {
        let profiler = makeProfiler()
        let exporter = MetricsExporter()
        _ = exporter.render(profiler: profiler, hub: nil)
        for _ in 0..<5 { profiler.record(stage: "gate", ms: 3) }
        profiler.recordDrop(stage: "gate", reason: .latest, count: 2)
        profiler.recordFrameIn()
        let m = try PrometheusText(exporter.render(profiler: profiler, hub: nil))
        XCTAssertEqual(m.value("atp_stage_items_total", ["stage": "gate"]), 7)
        XCTAssertEqual(m.value("atp_stage_drops_total", ["stage": "gate", "reason": "latest"]), 2)
        XCTAssertEqual(m.value("atp_frames_in_total"), 8)
        XCTAssertEqual(m.value("atp_stage_items_total", ["stage": "encode"]), 100)   // not double-counted
        XCTAssertNil(m.value("atp_sse_events_total"))
    }
}
