import XCTest
import Foundation
@testable import Serve
import Pipeline

/// The HTTP service on 127.0.0.1 (port 0) with a fake event source: /metrics, /events, /queries, tokens.
/// Every socket has a timeout; nothing binds off loopback.
final class HTTPServiceTests: XCTestCase {
    final class Prepared: @unchecked Sendable {
        private let lock = NSLock()
        private var texts: [String] = []
        private var forgotten: [String] = []
        func add(_ t: String) { lock.withLock { texts.append(t) } }
        func forget(_ t: String) { lock.withLock { forgotten.append(t) } }
        var value: (prepared: [String], forgotten: [String]) { lock.withLock { (texts, forgotten) } }
    }

    var service: HTTPService!
    var profiler: Profiler!
    var registry: QueryRegistry!
    let prepared = Prepared()

    func startService(token: String? = nil, eventBuffer: Int = 256) throws -> Int {
        profiler = Profiler()
        profiler.register(stage: "encode", budgetMs: 60)
        profiler.register(stage: "llm_decode")
        profiler.record(stage: "encode", ms: 12)
        profiler.record(stage: "llm_decode", ms: 30)
        profiler.recordOverrun(stage: "encode")
        profiler.recordFrameIn()
        profiler.recordAnswer(e2eMs: 45)
        registry = QueryRegistry([StandingQuery(id: "person", text: "Is there a person?", gate: try gateConfig(GateSpec(keep: 0.5)))])
        let prepared = self.prepared
        let backend = ServeBackend(profiler: profiler, queries: registry, baseGate: GateSpec(method: "atp", alpha: 0.5, keep: 0.5),
                                   prepare: { q in
                                       if q.text.contains("FAIL") { throw NSError(domain: "test", code: 1) }
                                       prepared.add(q.text)
                                   },
                                   forget: { prepared.forget($0) })
        service = try HTTPService(configuration: ServeConfiguration(host: "127.0.0.1", port: 0, token: token, eventBuffer: eventBuffer),
                                  backend: backend)
        let port = try service.start()
        XCTAssertGreaterThan(port, 0)
        XCTAssertEqual(service.url, "http://127.0.0.1:\(port)")
        return port
    }

    override func tearDown() {
        service?.stop()
        service = nil
        profiler = nil   // XCTest keeps every test case alive until exit: drop what each one built
        registry = nil
        super.tearDown()
    }

    func testMetricsEndpointServesPrometheusText() throws {
        let port = try startService()
        let r = try HTTP.request("GET", "/metrics", port: port)
        XCTAssertEqual(r.status, 200)
        XCTAssertTrue(r.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") ?? false, "\(r.headers)")
        let m = try PrometheusText(r.body)
        XCTAssertEqual(m.value("atp_stage_items_total", ["stage": "encode"]), 1)
        XCTAssertEqual(m.value("atp_stage_items_total", ["stage": "llm_decode"]), 1)
        XCTAssertEqual(m.value("atp_stage_overruns_total", ["stage": "encode"]), 1)
        XCTAssertEqual(m.value("atp_stage_latency_ms", ["stage": "encode", "quantile": "0.95"])!, 12, accuracy: 0.02)
        XCTAssertEqual(m.value("atp_stage_latency_ms", ["stage": "llm_decode", "quantile": "0.5"])!, 30, accuracy: 0.03)
        XCTAssertEqual(m.value("atp_e2e_latency_ms", ["quantile": "0.5"])!, 45, accuracy: 0.05)
        XCTAssertEqual(m.value("atp_frames_in_total"), 1)
        XCTAssertEqual(m.value("atp_answers_total"), 1)
        XCTAssertEqual(m.value("atp_queue_depth", ["stage": "encode"]), 0)
        // Unknown paths are 404.
        XCTAssertEqual(try HTTP.request("GET", "/nope", port: port).status, 404)
    }

    func testEventsDeliverDataLinesAsJSON() throws {
        let port = try startService()
        let client = try SSEClient(port: port)
        XCTAssertEqual(client.status, 200)
        XCTAssertEqual(client.headers["content-type"], "text/event-stream")
        XCTAssertEqual(service.hub.currentStats.clients, 1)
        let lines = (0..<20).map { #"{"stream":"s","query":"q","pts":\#($0),"answer":"line\nbreak"}"# }
        for l in lines { service.hub.publish(l) }
        for i in 0..<20 {
            let data = try XCTUnwrap(try client.next())
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])
            XCTAssertEqual(obj["pts"] as? Int, i)
            XCTAssertEqual(obj["answer"] as? String, "line\nbreak")
        }
        // Stopping the service ends the stream cleanly.
        service.stop()
        XCTAssertNil(try client.next())
    }

    /// A client that never reads is dropped (its connection closed) while a fast client keeps receiving
    /// every event, and publishing never waits.
    func testSlowClientIsDroppedWithoutStallingOthers() throws {
        let port = try startService(eventBuffer: 16)
        let hub = service.hub
        let slow = try TestSocket(port: port, timeout: 20, receiveBuffer: 4096)
        try slow.send("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")   // and never read
        let fast = try SSEClient(port: port, timeout: 20)
        let deadline = Date().addingTimeInterval(30)
        while hub.currentStats.clients < 2 && Date() < deadline { usleep(1000) }
        XCTAssertEqual(hub.currentStats.clients, 2)

        // The fast client reads on its own thread.
        final class Received: @unchecked Sendable {
            let lock = NSLock()
            var seq: [Int] = []
            var error: String?
        }
        let received = Received()
        let readerDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do {
                while let data = try fast.next() {
                    guard let obj = try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any],
                          let i = obj["seq"] as? Int else { throw NSError(domain: "bad event", code: 0) }
                    received.lock.withLock { received.seq.append(i) }
                }
            } catch {
                received.lock.withLock { received.error = "\(error)" }
            }
            readerDone.signal()
        }

        // 8 KiB events until the slow client is dropped, then 200 more; paced so the fast reader keeps up.
        let pad = String(repeating: "x", count: 8192)
        var published = 0
        var droppedAt: Int?
        var maxPublishMs = 0.0
        while Date() < deadline {
            let t0 = DispatchTime.now().uptimeNanoseconds
            hub.publish(#"{"seq":\#(published),"pad":"\#(pad)"}"#)
            maxPublishMs = max(maxPublishMs, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            published += 1
            if droppedAt == nil, hub.currentStats.droppedClients > 0 { droppedAt = published }
            if let d = droppedAt, published >= d + 200 { break }
            // Wait for the fast client to be within 8 events.
            while Date() < deadline && received.lock.withLock({ received.seq.count }) < published - 8 { usleep(200) }
            if published > 20_000 { break }
        }
        let stats = hub.currentStats
        XCTAssertNotNil(droppedAt, "the slow client was never dropped after \(published) events")
        XCTAssertEqual(stats.droppedClients, 1)
        XCTAssertEqual(stats.clients, 1)
        XCTAssertLessThan(maxPublishMs, 250, "publish blocked on a client")
        // Events kept flowing to the fast client, all of them, in order.
        while Date() < deadline && received.lock.withLock({ received.seq.count }) < published { usleep(1000) }
        received.lock.withLock {
            XCTAssertNil(received.error)
            XCTAssertEqual(received.seq, Array(0..<published))
        }
        // The slow client's connection was closed by the server: draining it reaches EOF.
        XCTAssertNoThrow(try slow.drainToEOF(deadline: Date().addingTimeInterval(20)))
        // /metrics counts the drop.
        let m = try PrometheusText(try HTTP.request("GET", "/metrics", port: port).body)
        XCTAssertEqual(m.value("atp_sse_dropped_clients_total"), 1)
        XCTAssertEqual(m.value("atp_sse_clients"), 1)
        service.stop()
        XCTAssertEqual(readerDone.wait(timeout: .now() + 10), .success)
    }

    func testQueriesRoundTrip() throws {
        let port = try startService()
        var r = try HTTP.request("GET", "/queries", port: port)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.headers["content-type"], "application/json")
        var list = try XCTUnwrap(r.json as? [[String: Any]])
        XCTAssertEqual(list.map { $0["id"] as? String }, ["person"])

        // Add: 201, the embedding is prepared once, the registry has it.
        r = try HTTP.request("POST", "/queries", port: port,
                             body: #"{"id":"box","text":"Is there a red box?","gate":{"method":"atp","keep":0.35,"alpha":0.7}}"#)
        XCTAssertEqual(r.status, 201, r.body)
        let added = try XCTUnwrap(r.json as? [String: Any])
        XCTAssertEqual(added["id"] as? String, "box")
        XCTAssertEqual((added["gate"] as? [String: Any])?["keep"] as? Double, 0.35)
        XCTAssertEqual((added["gate"] as? [String: Any])?["alpha"] as? Double, 0.7)
        XCTAssertEqual(prepared.value.prepared, ["Is there a red box?"])
        XCTAssertEqual(registry.all.map(\.id), ["person", "box"])
        XCTAssertEqual(registry.all[1].gate.budget, .keep(0.35))

        // Replace: 200.
        r = try HTTP.request("POST", "/queries", port: port, body: #"{"id":"box","text":"Is there a blue box?","gate":{"tokens":2}}"#)
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(registry.all.count, 2)
        XCTAssertEqual(registry.all[1].text, "Is there a blue box?")
        XCTAssertEqual(registry.all[1].gate.budget, .tokens(2))

        r = try HTTP.request("GET", "/queries", port: port)
        list = try XCTUnwrap(r.json as? [[String: Any]])
        XCTAssertEqual(list.map { $0["id"] as? String }, ["person", "box"])
        XCTAssertEqual(list[1]["text"] as? String, "Is there a blue box?")
        XCTAssertEqual((list[1]["gate"] as? [String: Any])?["tokens"] as? Int, 2)

        // Delete: 204, then 404.
        r = try HTTP.request("DELETE", "/queries/box", port: port)
        XCTAssertEqual(r.status, 204)
        XCTAssertEqual(registry.all.map(\.id), ["person"])
        XCTAssertEqual(prepared.value.forgotten, ["Is there a blue box?"])
        r = try HTTP.request("DELETE", "/queries/box", port: port)
        XCTAssertEqual(r.status, 404)
        XCTAssertEqual((r.json as? [String: String])?["error"], #"id: no standing query "box""#)
    }

    func testBadQueriesAre400NamingTheField() throws {
        let port = try startService()
        let cases: [(String, String)] = [
            ("{oops", "body:"),
            (#"{"id":"a","text":"b","extra":1}"#, "extra:"),
            (#"{"id":"a","text":"b","gate":{"keep":2}}"#, "gate.keep:"),
            (#"{"id":"a","text":"b","gate":{"method":"best"}}"#, "gate.method:"),
            (#"{"text":"b"}"#, "id:"),
            (#"{"id":"a","text":"FAIL"}"#, "text:"),   // the embedding could not be computed
        ]
        for (body, field) in cases {
            let r = try HTTP.request("POST", "/queries", port: port, body: body)
            XCTAssertEqual(r.status, 400, body)
            XCTAssertFalse(r.body.trimmingCharacters(in: .newlines).contains("\n"), "not one line: \(r.body)")
            let err = try XCTUnwrap((r.json as? [String: String])?["error"], r.body)
            XCTAssertTrue(err.hasPrefix(field), "'\(err)' does not name \(field)")
        }
        XCTAssertEqual(registry.all.map(\.id), ["person"])
        let big = #"{"id":"a","text":""# + String(repeating: "y", count: 70_000) + #""}"#
        XCTAssertEqual(try HTTP.request("POST", "/queries", port: port, body: big).status, 413)
    }

    /// With a token configured, changes need `Authorization: Bearer <token>` (reads do not).
    func testTokenIsEnforcedWhenConfigured() throws {
        let port = try startService(token: "s3cret")
        let body = #"{"id":"box","text":"Is there a box?"}"#
        var r = try HTTP.request("POST", "/queries", port: port, body: body)
        XCTAssertEqual(r.status, 401)
        XCTAssertEqual(r.headers["www-authenticate"], "Bearer")
        XCTAssertTrue(((r.json as? [String: String])?["error"] ?? "").hasPrefix("Authorization:"))
        r = try HTTP.request("POST", "/queries", port: port, body: body, headers: ["Authorization": "Bearer wrong"])
        XCTAssertEqual(r.status, 401)
        XCTAssertEqual(registry.all.count, 1)
        r = try HTTP.request("POST", "/queries", port: port, body: body, headers: ["Authorization": "Bearer s3cret"])
        XCTAssertEqual(r.status, 201)
        XCTAssertEqual(try HTTP.request("DELETE", "/queries/box", port: port).status, 401)
        XCTAssertEqual(try HTTP.request("DELETE", "/queries/box", port: port, headers: ["Authorization": "Bearer s3cret"]).status, 204)
        XCTAssertEqual(try HTTP.request("GET", "/queries", port: port).status, 200)
        XCTAssertEqual(try HTTP.request("GET", "/metrics", port: port).status, 200)
    }

    func testBusyPortIsAnErrorNamingTheAddress() throws {
        let port = try startService()
        let second = try HTTPService(configuration: ServeConfiguration(port: port),
                                     backend: ServeBackend(profiler: Profiler(), queries: QueryRegistry()))
        XCTAssertThrowsError(try second.start(timeout: 20)) { e in
            XCTAssertTrue("\(e)".contains("127.0.0.1:\(port)"), "\(e)")
        }
        second.stop()
    }
}
