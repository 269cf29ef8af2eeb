import XCTest
import Foundation

/// `atp bench serve` as CI runs it: a short version of the load (200 SSE clients for 5 s on 127.0.0.1
/// against `atp serve Pipelines/warehouse.yaml`, queries added and removed, refused requests), with every
/// check asserted from its JSON. The bench starts and stops the server itself; everything is bounded by
/// its options (about 13 s in all).
final class ServeLoadTests: XCTestCase {
    func testTwoHundredSSEClientsComeAndGoAndTheServerReturnsToBaseline() throws {
        let t0 = Date()
        // Under a sanitizer (Tools/sanitize.sh) the instrumented server is several times slower: a
        // quarter of the clients still exercises every path for memory errors and leaks.
        let sanitized = ProcessInfo.processInfo.environment["ATP_SANITIZER"] != nil
        let clients = sanitized ? 50 : 200
        let r = try CLI.run(["bench", "serve", CLI.repo.appendingPathComponent("Pipelines/warehouse.yaml").path,
                             "--clients", "\(clients)", "--seconds", "5", "--warmup", "0.5", "--settle", "8",
                             "--rss-tolerance", "0.5", "--json"])
        let summary = r.stderr.split(separator: "\n").suffix(12).joined(separator: "\n")
        let j = try r.json()
        XCTAssertEqual(r.status, 0, summary)
        XCTAssertEqual(j["pass"] as? Bool, true, "\(j["failures"] ?? "")")

        // Every client got events; no SSE error (connect failure, bad head, early close, bad framing).
        XCTAssertEqual(j["clients_with_data"] as? Int, clients, summary)
        XCTAssertEqual(j["sse_errors"] as? [String: Int], [:], summary)
        XCTAssertGreaterThan(j["connections"] as? Int ?? 0, 2 * clients, "clients did not come and go: \(summary)")
        XCTAssertGreaterThanOrEqual(j["peak_open"] as? Int ?? 0, clients * 95 / 100, summary)
        let endings = try XCTUnwrap(j["endings"] as? [String: Int])
        for kind in ["close", "reset", "half-close", "before-head"] { XCTAssertGreaterThan(endings[kind] ?? 0, 0, kind) }

        // Queries were added and removed under the load.
        XCTAssertGreaterThan(j["query_adds"] as? Int ?? 0, 0, summary)
        XCTAssertEqual(j["query_adds"] as? Int, j["query_removes"] as? Int)
        XCTAssertEqual(j["query_errors"] as? Int, 0, summary)

        // Refused requests: each got its status, and none changed GET /queries.
        XCTAssertGreaterThanOrEqual(j["refused_rounds"] as? Int ?? 0, 1, summary)
        XCTAssertEqual(j["refused_wrong"] as? Int, 0, "\(j["failures"] ?? "")")
        let byStatus = try XCTUnwrap(j["refused_by_status"] as? [String: Int])
        XCTAssertEqual(Set(byStatus.keys), ["400", "401", "404", "405", "413"])
        XCTAssertEqual(j["queries_intrusions"] as? Int, 0)
        XCTAssertEqual(j["queries_unchanged"] as? Bool, true)

        // The server's fds back to the baseline once the clients left; RSS within a generous bound.
        let fds = try XCTUnwrap(j["fds"] as? [String: Int])
        XCTAssertEqual(j["fds_back"] as? Bool, true, "fds \(fds)")
        XCTAssertLessThanOrEqual(fds["after"] ?? .max, fds["baseline"] ?? 0)
        XCTAssertGreaterThan(fds["peak"] ?? 0, (fds["baseline"] ?? 0) + clients / 2, "the load never held many connections: \(fds)")
        XCTAssertEqual(j["sse_clients_after"] as? Int, 0)
        let rss = try XCTUnwrap(j["rss_kb"] as? [String: Int])
        XCTAssertLessThan(Double(rss["after"] ?? .max), Double(rss["baseline"] ?? 0) * 1.5, "RSS \(rss)")
        XCTAssertEqual(j["server_exit"] as? Int, 0, summary)
        XCTAssertLessThan(Date().timeIntervalSince(t0), sanitized ? 120 : 40, "the bounded bench ran long")
    }
}
