import Foundation
import XCTest
import Tensor
import Gate
@testable import Pipeline

final class PipelineSpecTests: XCTestCase {
    private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pipeline")

    func testGoodFileParsesResolvesPathsAndRoundTrips() throws {
        let url = fixtures.appendingPathComponent("warehouse.yaml")
        let spec = try PipelineSpec.load(from: url)
        XCTAssertEqual(spec.name, "warehouse-monitor")
        XCTAssertEqual(spec.sources.count, 2)
        XCTAssertEqual(spec.sources[0], SourceSpec(id: "aisle3", url: "rtsp://127.0.0.1:8554/aisle3", transport: "udp",
                                                   readTimeoutMs: 3000, reconnect: .init(initialMs: 500, maxMs: 8000)))
        let folder = url.deletingLastPathComponent().standardizedFileURL
        XCTAssertEqual(spec.sources[1].url, folder.appendingPathComponent("clips/loop.mp4").path)
        XCTAssertEqual(spec.sources[1].loop, true)
        XCTAssertEqual(spec.sources[1].realtime, true)
        XCTAssertEqual(spec.sources[1].truth, folder.appendingPathComponent("clips/loop.truth.jsonl").path)
        let samples = folder.deletingLastPathComponent().appendingPathComponent("Samples/models/atp-tiny").path
        XCTAssertEqual(spec.model?.vlm, samples)
        XCTAssertEqual(spec.model?.clip, samples + "/clip")
        XCTAssertEqual(spec.model?.precision, .native)
        XCTAssertEqual(spec.gate, GateSpec(method: "atp", alpha: 0.5, keep: 0.25, sign: -1, norm: "minmax"))
        XCTAssertEqual(spec.queries.map(\.id), ["person-in-aisle", "forklift", "spill"])
        XCTAssertEqual(spec.stages["video_decode"], StageSpec(queue: 4, policy: .latest, budgetMs: 10))
        XCTAssertEqual(spec.stages["encode"], StageSpec(queue: 2, policy: .dropOldest, budgetMs: 60))
        XCTAssertEqual(spec.stages["gate"], StageSpec(queue: 2, policy: .dropNewest))
        XCTAssertEqual(spec.stages["prefill"], StageSpec(queue: 1, policy: .latest, budgetMs: 150, onOverrun: .shrinkK))
        XCTAssertEqual(spec.stages["llm_decode"], StageSpec(queue: 1, policy: .block, budgetMs: 80.5, onOverrun: .skip))
        XCTAssertEqual(spec.sinks, [.jsonl("stdout"), .http(host: "127.0.0.1", port: 0)])

        // Per-query gate overrides.
        XCTAssertEqual(spec.effectiveGate(for: spec.queries[0]),
                       GateSpec(method: "atp", alpha: 0.5, keep: 0.4, sign: -1, norm: "minmax"))
        XCTAssertEqual(spec.effectiveGate(for: spec.queries[1]),
                       GateSpec(method: "atp", alpha: 1, tokens: 64, sign: -1, norm: "minmax"))
        XCTAssertEqual(spec.effectiveGate(for: spec.queries[2]), spec.gate)

        // Round trip: encode to YAML and parse again strictly.
        let again = try PipelineSpec.parse(yaml: try spec.yaml(), file: "roundtrip.yaml")
        XCTAssertEqual(again, spec)
    }

    func testUnknownKeyInAFileNamesTheKeyAndTheFile() {
        let url = fixtures.appendingPathComponent("unknown-key.yaml")
        XCTAssertThrowsError(try PipelineSpec.load(from: url)) { error in
            XCTAssertEqual("\(error)", "\(url.path): stages.encode.budget: unknown key 'budget' "
                           + "(expected one of queue, policy, budget_ms, on_overrun)")
        }
    }

    func testMissingFileIsAnErrorNamingIt() {
        XCTAssertThrowsError(try PipelineSpec.load(from: URL(fileURLWithPath: "/nonexistent/p.yaml"))) {
            XCTAssertEqual("\($0)", "/nonexistent/p.yaml: cannot read file")
        }
    }

    /// Each bad document and the exact one-line error it must produce.
    func testBadValuesAreErrorsNamingTheKey() {
        let cases: [(String, String)] = [
            ("name: p\nstages: {encode: {queue: 0, policy: latest}}",
             "t.yaml: stages.encode.queue: must be >= 1, got 0"),
            ("name: p\nstages: {encode: {queue: 2, policy: latest, budget_ms: -5}}",
             "t.yaml: stages.encode.budget_ms: must be > 0, got -5.0"),
            ("name: p\nstages: {encode: {queue: 2, policy: fifo}}",
             "t.yaml: stages.encode.policy: unknown policy 'fifo' (expected one of block, drop-oldest, drop-newest, latest)"),
            ("name: p\nstages: {encode: {queue: 2, policy: latest, on_overrun: shrink-k}}",
             "t.yaml: stages.encode.on_overrun: 'shrink-k' needs budget_ms"),
            ("name: p\nstages: {encode: {queue: 2, policy: latest, budget_ms: 5, on_overrun: panic}}",
             "t.yaml: stages.encode.on_overrun: unknown action 'panic' (expected one of none, skip, shrink-k)"),
            ("name: p\nstages: {decoder: {queue: 2, policy: latest}}",
             "t.yaml: stages.decoder: unknown stage 'decoder' (expected one of video_decode, encode, gate, prefill, llm_decode)"),
            ("name: p\nstages: {relevance_encode: {queue: 2, policy: block}}",
             "t.yaml: stages.relevance_encode: relevance_encode runs inside the encode stage and has no queue of its own; configure 'encode'"),
            ("name: p\nstages: {encode: {queue: four, policy: latest}}",
             "t.yaml: stages.encode.queue: expected an integer"),
            ("name: p\nstages: {encode: {policy: latest}}",
             "t.yaml: stages.encode.queue: missing required key"),
            ("name: p\ngate: {keep: 1.5}",
             "t.yaml: gate.keep: must be in (0, 1], got 1.5"),
            ("name: p\ngate: {keep: 0.5, tokens: 10}",
             "t.yaml: gate.keep: only one of tokens, keep, mass may be given (also got tokens)"),
            ("name: p\ngate: {alpha: 2}",
             "t.yaml: gate.alpha: must be in [0, 1], got 2"),
            ("name: p\ngate: {sign: 2}",
             "t.yaml: gate.sign: must be 1 or -1, got 2"),
            ("name: p\ngate: {method: magic}",
             "t.yaml: gate.method: unknown method 'magic' (expected one of atp, atp-div, cls, text, random, uniform, full)"),
            ("name: p\ngate: {norm: l2}",
             "t.yaml: gate.norm: unknown norm 'l2' (expected minmax or zscore)"),
            ("name: p\nqueries: [{id: a, text: x}, {id: a, text: y}]",
             "t.yaml: queries[1].id: duplicate query id 'a'"),
            ("name: p\nqueries: [{id: a, text: x, gate: {keep: 0.5, extra: 1}}]",
             "t.yaml: queries[0].gate.extra: unknown key 'extra' (expected one of method, alpha, keep, tokens, mass, sign, norm)"),
            ("name: p\nsources: [{id: s, url: a.mp4}, {id: s, url: b.mp4}]",
             "t.yaml: sources[1].id: duplicate source id 's'"),
            ("name: p\nsources: [{id: s, url: a.mp4, transport: quic}]",
             "t.yaml: sources[0].transport: unknown transport 'quic' (expected udp or tcp)"),
            ("name: p\nsources: [{id: s, url: a.mp4, reconnect: {initial_ms: 500, max_ms: 100}}]",
             "t.yaml: sources[0].reconnect.max_ms: must be >= initial_ms (500), got 100"),
            ("name: p\nsources: [{id: s, url: a.mp4, read_timeout_ms: 0}]",
             "t.yaml: sources[0].read_timeout_ms: must be > 0, got 0"),
            ("name: p\nmodel: {vlm: a, lora: b}",
             "t.yaml: model.lora: unknown key 'lora' (expected one of vlm, clip, precision)"),
            ("name: p\nmodel: {vlm: a, precision: int3}",
             "t.yaml: model.precision: 'int3' is not a precision (expected one of: native, bf16, f32)"),
            ("name: p\nsinks: [{http: {port: 70000}}]",
             "t.yaml: sinks[0].http.port: must be in 0...65535, got 70000"),
            ("name: p\nsinks: [{kafka: x}]",
             "t.yaml: sinks[0].kafka: unknown key 'kafka' (expected one of jsonl, http)"),
            ("name: p\nthreads: 4",
             "t.yaml: threads: unknown key 'threads' (expected one of name, sources, model, gate, queries, stages, sinks)"),
            ("stages: {}",
             "t.yaml: name: missing required key"),
        ]
        for (yaml, expected) in cases {
            XCTAssertThrowsError(try PipelineSpec.parse(yaml: yaml, file: "t.yaml"), yaml) { error in
                XCTAssertEqual("\(error)", expected, yaml)
            }
        }
    }

    func testMalformedYAMLIsAnErrorNamingTheFile() {
        XCTAssertThrowsError(try PipelineSpec.parse(yaml: "name: [unclosed", file: "t.yaml")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("t.yaml: "), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
        XCTAssertThrowsError(try PipelineSpec.parse(yaml: "name: a\nname: b", file: "t.yaml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("t.yaml: "), "\(error)")
        }
    }

    func testAbsolutePathsAndSchemesAreKept() throws {
        let spec = try PipelineSpec.parse(
            yaml: "name: p\nmodel: {vlm: /models/x}\nsources: [{id: a, url: 'synthetic:moving-box'}, {id: b, url: /dev/video0}]",
            file: "t.yaml", baseDirectory: URL(fileURLWithPath: "/etc/atp"))
        XCTAssertEqual(spec.model?.vlm, "/models/x")
        XCTAssertEqual(spec.sources.map(\.url), ["synthetic:moving-box", "/dev/video0"])
    }

    func testEveryGateMethodParsesAndDefaultsLiveInOnePlace() throws {
        for m in GateMethod.allCases {
            let spec = try PipelineSpec.parse(yaml: "name: p\ngate: {method: \(m.rawValue), tokens: 3}", file: "t.yaml")
            XCTAssertEqual(try gateConfig(try XCTUnwrap(spec.gate)).method, m)
        }
        // An empty gate block is GateSpec.defaults.
        let c = try gateConfig(GateSpec())
        XCTAssertEqual(c.method, .atp)
        XCTAssertEqual(c.alpha, 0.5)
        XCTAssertEqual(c.sign, 1)
        XCTAssertEqual(c.norm, .minmax)
        XCTAssertEqual(c.budget, .keep(0.25))
        // A gate built in code is checked by the same rules as YAML and HTTP.
        XCTAssertThrowsError(try gateConfig(GateSpec(method: "magic"))) { XCTAssertEqual("\($0)", "gate: method: unknown method 'magic' (expected one of atp, atp-div, cls, text, random, uniform, full)") }
    }
}
