import XCTest
import Foundation
@testable import Serve
import Pipeline

/// The `/queries` rules without a socket: parsing, errors naming the field, rendering, bearer tokens.
final class QueryAPITests: XCTestCase {
    let base = GateSpec(method: "atp", alpha: 0.5, keep: 0.5)

    func parse(_ json: String) throws -> StandingQuery {
        try QueryAPI.parseQuery(Data(json.utf8), baseGate: base)
    }

    func assertRejected(_ json: String, status: Int = 400, naming field: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(json), json, file: file, line: line) { error in
            guard let e = error as? APIError else { return XCTFail("not an APIError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.status, status, e.message, file: file, line: line)
            XCTAssertTrue(e.message.hasPrefix(field + ":"), "'\(e.message)' does not name \(field)", file: file, line: line)
            XCTAssertFalse(e.message.contains("\n"), file: file, line: line)
            // The body is one JSON object with an "error" string.
            let obj = try? JSONSerialization.jsonObject(with: Data(e.jsonBody.utf8)) as? [String: String]
            XCTAssertEqual(obj?["error"], e.message, file: file, line: line)
        }
    }

    func testValidQueryOverridesTheBaseGate() throws {
        let q = try parse(#"{"id":"forklift","text":"Is a forklift moving?","gate":{"method":"cls","tokens":3,"sign":-1}}"#)
        XCTAssertEqual(q.id, "forklift")
        XCTAssertEqual(q.text, "Is a forklift moving?")
        XCTAssertEqual(q.gate.method, .cls)
        XCTAssertEqual(q.gate.alpha, 0.5)          // from the base
        XCTAssertEqual(q.gate.sign, -1)
        XCTAssertEqual(q.gate.norm, .minmax)
        XCTAssertEqual(q.gate.budget, .tokens(3))  // replaces the base's keep
        let plain = try parse(#"{"id":"a.b_c-1","text":"Anyone there?"}"#)
        XCTAssertEqual(plain.gate.budget, .keep(0.5))
        XCTAssertEqual(plain.gate.method, .atp)
        let mass = try parse(#"{"id":"m","text":"x","gate":{"mass":0.9,"alpha":1,"norm":"zscore"}}"#)
        XCTAssertEqual(mass.gate.budget, .mass(0.9))
        XCTAssertEqual(mass.gate.alpha, 1)
        XCTAssertEqual(mass.gate.norm, .zscore)
    }

    func testBadInputNamesTheField() {
        assertRejected("{not json", naming: "body")
        assertRejected("[1,2]", naming: "body")
        assertRejected(#"{"id":"a","text":"b","colour":"red"}"#, naming: "colour")
        assertRejected(#"{"text":"b"}"#, naming: "id")
        assertRejected(#"{"id":7,"text":"b"}"#, naming: "id")
        assertRejected(#"{"id":"has/slash","text":"b"}"#, naming: "id")
        assertRejected(#"{"id":"","text":"b"}"#, naming: "id")
        assertRejected(#"{"id":"a"}"#, naming: "text")
        assertRejected(#"{"id":"a","text":"   "}"#, naming: "text")
        assertRejected(#"{"id":"a","text":true}"#, naming: "text")
        assertRejected(#"{"id":"a","text":"b","gate":3}"#, naming: "gate")
        assertRejected(#"{"id":"a","text":"b","gate":{"keep":1.5}}"#, naming: "gate.keep")
        assertRejected(#"{"id":"a","text":"b","gate":{"keep":0}}"#, naming: "gate.keep")
        assertRejected(#"{"id":"a","text":"b","gate":{"keep":"half"}}"#, naming: "gate.keep")
        assertRejected(#"{"id":"a","text":"b","gate":{"alpha":-0.1}}"#, naming: "gate.alpha")
        assertRejected(#"{"id":"a","text":"b","gate":{"alpha":true}}"#, naming: "gate.alpha")
        assertRejected(#"{"id":"a","text":"b","gate":{"tokens":2.5}}"#, naming: "gate.tokens")
        assertRejected(#"{"id":"a","text":"b","gate":{"tokens":0}}"#, naming: "gate.tokens")
        assertRejected(#"{"id":"a","text":"b","gate":{"mass":2}}"#, naming: "gate.mass")
        assertRejected(#"{"id":"a","text":"b","gate":{"sign":2}}"#, naming: "gate.sign")
        assertRejected(#"{"id":"a","text":"b","gate":{"method":"magic"}}"#, naming: "gate.method")
        assertRejected(#"{"id":"a","text":"b","gate":{"norm":"l2"}}"#, naming: "gate.norm")
        assertRejected(#"{"id":"a","text":"b","gate":{"keep":0.5,"tokens":3}}"#, naming: "gate.keep")   // as the YAML reader names it
        assertRejected(#"{"id":"a","text":"b","gate":{"beta":1}}"#, naming: "gate.beta")
    }

    func testMessagesAreExact() {
        for (body, message) in [
            (#"{"id":"a","text":"b","gate":{"keep":3}}"#, "gate.keep: must be in (0, 1], got 3"),
            (#"{"id":"a","text":"b","gate":{"alpha":1.5}}"#, "gate.alpha: must be in [0, 1], got 1.5"),
            (#"{"id":"a","text":"b","gate":{"keep":"all"}}"#, "gate.keep: expected a number, got a string"),
            (#"{"id":"a","text":"b","colour":1}"#, "colour: unknown key (expected id, text, gate)"),
        ] {
            XCTAssertThrowsError(try parse(body)) { XCTAssertEqual(($0 as? APIError)?.message, message) }
        }
    }

    func testListRendersEveryGateField() throws {
        let q1 = try parse(#"{"id":"q1","text":"Is there a \"box\"?","gate":{"keep":0.35}}"#)
        let q2 = try parse(#"{"id":"q2","text":"two","gate":{"tokens":4,"sign":-1}}"#)
        let list = QueryAPI.listJSON([q1, q2])
        let arr = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]])
        XCTAssertEqual(arr.count, 2)
        XCTAssertEqual(arr[0]["id"] as? String, "q1")
        XCTAssertEqual(arr[0]["text"] as? String, "Is there a \"box\"?")
        let g1 = try XCTUnwrap(arr[0]["gate"] as? [String: Any])
        XCTAssertEqual(Set(g1.keys), ["method", "alpha", "sign", "norm", "keep"])
        XCTAssertEqual(g1["keep"] as? Double, 0.35)
        XCTAssertEqual(g1["alpha"] as? Double, 0.5)
        XCTAssertEqual(g1["method"] as? String, "atp")
        let g2 = try XCTUnwrap(arr[1]["gate"] as? [String: Any])
        XCTAssertEqual(g2["tokens"] as? Int, 4)
        XCTAssertEqual(g2["sign"] as? Int, -1)
        XCTAssertNil(g2["keep"])
        // What GET lists, POST accepts back unchanged.
        let body = try JSONSerialization.data(withJSONObject: arr[1])
        XCTAssertEqual(try QueryAPI.parseQuery(body, baseGate: base), q2)
    }

    func testLoopbackAddresses() {
        for h in ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "LOCALHOST"] {
            XCTAssertTrue(ServeAuth.isLoopback(h), h)
        }
        for h in ["0.0.0.0", "192.168.1.4", "10.0.0.1", "::", "example.com", "128.0.0.1", "127.0.0", "127.0.0.256", ""] {
            XCTAssertFalse(ServeAuth.isLoopback(h), h)
        }
    }

    func testOffLoopbackNeedsATokenToStart() {
        XCTAssertNoThrow(try ServeAuth.checkStart(host: "127.0.0.1", token: nil))
        XCTAssertNoThrow(try ServeAuth.checkStart(host: "0.0.0.0", token: "s3cret"))
        for token in [nil, ""] as [String?] {
            XCTAssertThrowsError(try ServeAuth.checkStart(host: "0.0.0.0", token: token)) { e in
                XCTAssertTrue("\(e)".contains("--host 0.0.0.0"), "\(e)")
                XCTAssertTrue("\(e)".contains("ATP_SERVE_TOKEN"), "\(e)")
            }
        }
        // The service itself refuses too (nothing is bound).
        XCTAssertThrowsError(try HTTPService(configuration: ServeConfiguration(host: "0.0.0.0", port: 0, token: nil),
                                             backend: ServeBackend(profiler: Profiler(), queries: QueryRegistry())))
    }

    func testBearerTokenDecision() {
        XCTAssertNoThrow(try ServeAuth.authorizeChange(token: nil, authorization: nil))
        XCTAssertNoThrow(try ServeAuth.authorizeChange(token: "", authorization: nil))
        XCTAssertNoThrow(try ServeAuth.authorizeChange(token: "s3cret", authorization: "Bearer s3cret"))
        XCTAssertNoThrow(try ServeAuth.authorizeChange(token: "s3cret", authorization: "bearer s3cret"))
        for header in [nil, "s3cret", "Bearer", "Bearer ", "Bearer s3cre", "Bearer s3cretX", "Basic czNjcmV0", "Bearer S3CRET"] as [String?] {
            XCTAssertThrowsError(try ServeAuth.authorizeChange(token: "s3cret", authorization: header), "\(header ?? "nil")") { e in
                XCTAssertEqual((e as? APIError)?.status, 401)
                XCTAssertTrue((e as? APIError)?.message.hasPrefix("Authorization:") ?? false)
            }
        }
    }
}
