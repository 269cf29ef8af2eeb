import XCTest
@testable import Pipeline

final class KControllerTests: XCTestCase {
    /// Feeds the controller the latency of a linear model `a + b·K` for `steps` observations.
    private func run(_ c: inout KController, a: Double, b: Double, budget: Double, steps: Int) -> [Int] {
        var ks: [Int] = []
        for _ in 0..<steps {
            let latency = a + b * Double(c.k)
            ks.append(c.observe(latencyMs: latency, budgetMs: budget))
        }
        return ks
    }

    /// The largest K with a + b·K <= budget, clamped to [kMin, kMax].
    private func bestK(a: Double, b: Double, budget: Double, kMin: Int, kMax: Int) -> Int {
        min(kMax, max(kMin, Int(((budget - a) / b + 1e-9).rounded(.down))))
    }

    func testConvergesFromAboveToTheLargestKThatFits() throws {
        var c = try KController(kMin: 1, kMax: 576, initial: 576)
        // 20 ms fixed + 0.5 ms per token against 150 ms: K* = 260.
        let ks = run(&c, a: 20, b: 0.5, budget: 150, steps: 60)
        XCTAssertEqual(bestK(a: 20, b: 0.5, budget: 150, kMin: 1, kMax: 576), 260)
        XCTAssertEqual(ks.first, 252, "multiplicative decrease: floor(576 * 150/308 * 0.9)")
        XCTAssertEqual(c.k, 260)
        XCTAssertEqual(Array(ks.suffix(40)), [Int](repeating: 260, count: 40), "settled")
        for k in ks.dropFirst() { XCTAssertLessThanOrEqual(20 + 0.5 * Double(k), 150, "no overrun after the first") }
    }

    func testConvergesFromBelowAndNeverOvershoots() throws {
        var c = try KController(kMin: 8, kMax: 576, initial: 8)
        let ks = run(&c, a: 35, b: 0.3, budget: 120, steps: 300)
        let best = bestK(a: 35, b: 0.3, budget: 120, kMin: 8, kMax: 576)
        XCTAssertEqual(best, 283)
        XCTAssertEqual(c.k, best)
        XCTAssertTrue(ks.allSatisfy { 35 + 0.3 * Double($0) <= 120 + 1e-9 }, "increases never overrun")
        XCTAssertEqual(ks, ks.sorted(), "monotone climb")
        // The headroom regime moves by `step` per observation.
        XCTAssertEqual(c.step, (576 - 8) / 32)
    }

    func testRecoversWhenTheLoadDropsAndShrinksWhenItRises() throws {
        var c = try KController(kMin: 1, kMax: 576, initial: 576)
        _ = run(&c, a: 20, b: 0.5, budget: 150, steps: 60)
        XCTAssertEqual(c.k, 260)
        // Load drops: 0.2 ms per token → K* = 650 → clamped to kMax.
        _ = run(&c, a: 20, b: 0.2, budget: 150, steps: 200)
        XCTAssertEqual(c.k, 576)
        // Load rises again: 1 ms per token → K* = 130.
        let ks = run(&c, a: 20, b: 1.0, budget: 150, steps: 100)
        XCTAssertEqual(c.k, 130)
        XCTAssertEqual(Array(ks.suffix(20)), [Int](repeating: 130, count: 20))
    }

    func testALoadSpikeDoesNotHoldKDownForGood() throws {
        // A spike while K moved by one teaches a huge slope (295 ms per token): before the fix the
        // controller then predicted that no further token fits and stayed at K = 1 for good (a
        // 10-minute soak answered with one visual token after a busy minute). Once the load is gone
        // (2 ms + 0.1 ms per token against 150 ms) K climbs back to kMax.
        var c = try KController(kMin: 1, kMax: 196, initial: 2)
        XCTAssertEqual(c.observe(latencyMs: 300, budgetMs: 150), 1)
        XCTAssertGreaterThan(c.observe(latencyMs: 5, budgetMs: 150), 1, "ample room: K moves up")
        let ks = run(&c, a: 2, b: 0.1, budget: 150, steps: 60)
        XCTAssertEqual(c.k, 196)
        XCTAssertTrue(ks.allSatisfy { 2 + 0.1 * Double($0) <= 150 })
    }

    func testStaysInsideBounds() throws {
        var c = try KController(kMin: 16, kMax: 64, initial: 1000)
        XCTAssertEqual(c.k, 64)
        for _ in 0..<20 { c.observe(latencyMs: 1000, budgetMs: 10) }
        XCTAssertEqual(c.k, 16, "never below kMin even when nothing fits")
        for _ in 0..<50 { c.observe(latencyMs: 0.1, budgetMs: 10) }
        XCTAssertEqual(c.k, 64, "never above kMax")
        // A non-finite observation changes nothing.
        XCTAssertEqual(c.observe(latencyMs: .nan, budgetMs: 10), 64)
    }

    func testDecreaseIsAtLeastOneStep() throws {
        var c = try KController(kMin: 1, kMax: 100, initial: 50)
        // 1 % over budget: 50 * 0.99 * 0.9 = 44.5 → 44.
        XCTAssertEqual(c.observe(latencyMs: 101, budgetMs: 100), 44)
        var d = try KController(kMin: 1, kMax: 100, initial: 2, decreaseMargin: 1)
        XCTAssertEqual(d.observe(latencyMs: 100.001, budgetMs: 100), 1)
    }

    func testInvalidArgumentsAreErrorsNamingValues() {
        XCTAssertThrowsError(try KController(kMin: 0, kMax: 10, initial: 5)) { error in
            XCTAssertEqual("\(error)", "invalid pipeline graph: KController needs 1 <= kMin <= kMax, got kMin 0, kMax 10")
        }
        XCTAssertThrowsError(try KController(kMin: 5, kMax: 4, initial: 5))
        XCTAssertThrowsError(try KController(kMin: 1, kMax: 4, initial: 2, headroom: 0))
    }
}
