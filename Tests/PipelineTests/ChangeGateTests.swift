import Gate
import XCTest
@testable import Pipeline

final class ChangeGateTests: XCTestCase {
    private func query(_ id: String) -> StandingQuery {
        StandingQuery(id: id, text: "Is there a \(id)?", gate: GateConfig(method: .full, alpha: 0.5, sign: 1, norm: .minmax, budget: .keep(1)))
    }

    func testAnswersOfRemovedQueriesAreForgotten() {
        // A client adding and removing queries under new ids must not grow the gate's memory.
        let registry = QueryRegistry([query("fixed")])
        let gate = ChangeGate.tracking(registry, threshold: 1.5)
        let answer = RememberedAnswer(text: "yes", pYes: 0.9, kept: [1, 2], visualTokens: 4)
        for i in 0..<500 {
            let id = "q\(i)"
            registry.upsert(query(id))
            for stream in ["a", "b"] {
                XCTAssertTrue(gate.remember(stream: stream, query: id, answer))
                _ = gate.remember(stream: stream, query: "fixed", answer)
            }
            XCTAssertNotNil(gate.recall(stream: "a", query: id))
            XCTAssertTrue(registry.remove(id: id))
            XCTAssertNil(gate.recall(stream: "b", query: id), "forgotten when removed")
            // An answer that arrives after the removal (a frame still in flight) is not kept.
            _ = gate.remember(stream: "a", query: id, answer)
            XCTAssertNil(gate.recall(stream: "a", query: id))
        }
        XCTAssertEqual(gate.rememberedCount, 2, "only the standing query's answer, per stream")
        XCTAssertNotNil(gate.recall(stream: "a", query: "fixed"))
        XCTAssertFalse(registry.remove(id: "q0"), "removing an unknown id is a no-op")
    }
}
