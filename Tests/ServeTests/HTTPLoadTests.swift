import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import Serve
import Pipeline

/// The service when clients misbehave: they leave while no event flows, hold idle connections, or use
/// the wrong method. Loopback only; every wait is bounded.
final class HTTPLoadTests: XCTestCase {
    var service: HTTPService!
    var registry: QueryRegistry!

    func startService(idleTimeout: Double = 60) throws -> Int {
        registry = QueryRegistry([StandingQuery(id: "person", text: "Is there a person?", gate: try gateConfig(GateSpec(keep: 0.5)))])
        let backend = ServeBackend(profiler: Profiler(), queries: registry, baseGate: GateSpec(method: "atp", alpha: 0.5, keep: 0.5))
        service = try HTTPService(configuration: ServeConfiguration(token: "s3cret", idleTimeout: idleTimeout), backend: backend)
        return try service.start()
    }

    override func tearDown() {
        service?.stop()
        service = nil
        super.tearDown()
    }

    /// This process's open file descriptors.
    static func openFDs() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }

    /// Waits (up to `timeout` s) for `condition`; returns whether it held.
    func eventually(_ timeout: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// /events clients that leave — with a FIN, a reset, or a half-close — while nothing is published are
    /// unsubscribed and their connections closed at once, not at the next event.
    func testEventsClientsLeavingWithoutEventsAreReleased() throws {
        let port = try startService()
        let hub = service.hub
        XCTAssertTrue(eventually(5) { hub.currentStats.clients == 0 })
        let fdsBefore = Self.openFDs()
        var clients: [SSEClient] = []
        for _ in 0..<30 { clients.append(try SSEClient(port: port)) }
        XCTAssertTrue(eventually(10) { hub.currentStats.clients == 30 }, "\(hub.currentStats.clients) subscribed")
        for (i, c) in clients.enumerated() {
            switch i % 3 {
            case 0: break   // closed below (FIN)
            case 1:
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(c.socket.fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            default:
                shutdown(c.socket.fd, Int32(SHUT_WR))
            }
        }
        clients.removeAll()   // closes every socket
        XCTAssertTrue(eventually(10) { hub.currentStats.clients == 0 }, "\(hub.currentStats.clients) still subscribed with no event published")
        // Server and client sides of each connection are both in this process: all must be closed.
        XCTAssertTrue(eventually(10) { Self.openFDs() <= fdsBefore }, "fds \(Self.openFDs()) > \(fdsBefore)")
        XCTAssertEqual(hub.currentStats.published, 0)
        // With no client left, the service hands freed memory back once (the pokes of 30 departures merge).
        XCTAssertTrue(eventually(5) { service.idleTrim.trims == 1 }, "\(service.idleTrim.trims) trims")
        usleep(1_500_000)
        XCTAssertEqual(service.idleTrim.trims, 1)
    }

    /// A connection that sends no request, or only part of one, is closed after the idle timeout; a
    /// streaming /events response is not idle.
    func testIdleConnectionsAreClosed() throws {
        let port = try startService(idleTimeout: 0.5)
        let silent = try TestSocket(port: port, timeout: 10)
        let partial = try TestSocket(port: port, timeout: 10)
        try partial.send("GET /queries HTTP/1.1\r\nHost: 127.0.0.1\r\n")   // no blank line: the head never ends
        let events = try SSEClient(port: port, timeout: 10)
        XCTAssertEqual(events.status, 200)
        let t0 = Date()
        XCTAssertNoThrow(try silent.drainToEOF(deadline: Date().addingTimeInterval(8)))
        XCTAssertNoThrow(try partial.drainToEOF(deadline: Date().addingTimeInterval(8)))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 8)
        // The SSE stream outlives the timeout and still delivers.
        usleep(700_000)
        service.hub.publish(#"{"late":true}"#)
        XCTAssertEqual(try events.next(), #"{"late":true}"#)
        XCTAssertEqual(service.hub.currentStats.clients, 1)
        XCTAssertEqual(service.idleTrim.trims, 0, "trimmed while a client was connected")
    }

    /// A wrong method on a known path is 405 with `Allow` and one `{"error"}` line, and changes nothing.
    func testWrongMethodsAre405() throws {
        let port = try startService()
        let auth = ["Authorization": "Bearer s3cret"]
        let body = #"{"id":"box","text":"Is there a box?"}"#
        let cases: [(String, String, String)] = [
            ("PUT", "/queries", "GET, POST"), ("PATCH", "/queries", "GET, POST"), ("DELETE", "/queries", "GET, POST"),
            ("GET", "/queries/person", "DELETE"), ("PUT", "/queries/person", "DELETE"), ("POST", "/queries/person", "DELETE"),
            ("POST", "/events", "GET"), ("DELETE", "/events", "GET"), ("POST", "/metrics", "GET"), ("PUT", "/metrics", "GET"),
        ]
        for (method, path, allow) in cases {
            let r = try HTTP.request(method, path, port: port, body: method == "DELETE" || method == "GET" ? nil : body, headers: auth)
            XCTAssertEqual(r.status, 405, "\(method) \(path): \(r.body)")
            XCTAssertEqual(r.headers["allow"], allow, "\(method) \(path)")
            XCTAssertTrue(((r.json as? [String: String])?["error"] ?? "").hasPrefix("method:"), r.body)
        }
        XCTAssertEqual(registry.all.map(\.id), ["person"])
        XCTAssertEqual(try HTTP.request("GET", "/nope", port: port).status, 404)
    }
}
