import Foundation
import XCTest
@testable import Pipeline

/// A stage whose `process` "takes" a scripted number of milliseconds on a manual clock.
final class ScriptedCostStage: Stage, @unchecked Sendable {
    typealias Input = Int
    typealias Output = Int
    let name: String
    let clock: ManualClock
    let cost: @Sendable (Int) -> Double
    let knob: KKnob?
    let seen = LockedBox<[(item: Int, k: Int?)]>([])

    init(name: String, clock: ManualClock, knob: KKnob? = nil, cost: @escaping @Sendable (Int) -> Double) {
        self.name = name
        self.clock = clock
        self.cost = cost
        self.knob = knob
    }

    func process(_ input: Int) throws -> [Int] {
        let k = knob?.k
        seen.mutate { $0.append((input, k)) }
        clock.advance(milliseconds: cost(input))
        return [input]
    }
}

final class BudgetTests: XCTestCase {
    func testOverrunsAreCountedAndReported() throws {
        let clock = ManualClock()
        let events = LockedBox<[PipelineEvent]>([])
        // Items 3 and 7 take 40 ms against a 25 ms budget; the rest take 10 ms.
        let stage = ScriptedCostStage(name: "encode", clock: clock) { $0 == 3 || $0 == 7 ? 40 : 10 }
        let answers = LockedBox<[Int]>([])
        let graph = try GraphBuilder(first: stage, options: .init(queue: 16, policy: .block, budget: try StageBudget(ms: 25)),
                                     clock: clock, onEvent: { e in events.mutate { $0.append(e) } })
            .sink { v, _ in answers.mutate { $0.append(v) } }
        for i in 0..<10 { graph.submit(i) }
        try graph.run()
        graph.finish()

        XCTAssertEqual(answers.value, Array(0..<10))
        XCTAssertEqual(events.value, [.budgetOverrun(stage: "encode", ms: 40, budgetMs: 25),
                                      .budgetOverrun(stage: "encode", ms: 40, budgetMs: 25)])
        XCTAssertEqual(events.value[0].jsonLine(), #"{"budget_ms":25,"event":"budget_overrun","ms":40,"stage":"encode"}"#)
        let p = graph.profiler.report()
        XCTAssertEqual(p.stages["encode"]?.overruns, 2)
        XCTAssertEqual(p.stages["encode"]?.count, 10)
        XCTAssertEqual(p.stages["encode"]?.maxMs, 40)
        XCTAssertEqual(p.stages["encode"]?.p50Ms ?? 0, 10, accuracy: 0.01, "histogram: 3 significant digits")
        XCTAssertEqual(p.stages["encode"]?.drops, 0)
        XCTAssertEqual(graph.inFlight, 0)
    }

    func testSkipDropsTheInputAfterAnOverrun() throws {
        let clock = ManualClock()
        let stage = ScriptedCostStage(name: "prefill", clock: clock) { $0 == 2 || $0 == 5 ? 200 : 50 }
        let answers = LockedBox<[Int]>([])
        let graph = try GraphBuilder(first: stage,
                                     options: .init(queue: 16, policy: .block,
                                                    budget: try StageBudget(ms: 100, onOverrun: .skip)),
                                     clock: clock)
            .sink { v, _ in answers.mutate { $0.append(v) } }
        for i in 0..<10 { graph.submit(i) }
        try graph.run()
        graph.finish()
        XCTAssertEqual(answers.value, [0, 1, 2, 4, 5, 7, 8, 9], "3 and 6 follow an overrun and are skipped")
        let profile = graph.profiler.stageProfiles()[0]
        XCTAssertEqual(profile.drops, [.skip: 2])
        XCTAssertEqual(profile.overruns, 2)
        XCTAssertEqual(profile.count, 8)
        XCTAssertEqual(graph.inFlight, 0)
    }

    func testShrinkKDrivesTheStageKnob() throws {
        let clock = ManualClock()
        let knob = KKnob(try KController(kMin: 1, kMax: 576, initial: 576))
        // latency = 20 + 0.5·K ms, against a 150 ms budget: the largest K that fits is 260.
        let stage = ScriptedCostStage(name: "prefill", clock: clock, knob: knob) { _ in 20 + 0.5 * Double(knob.k) }
        let events = LockedBox<[PipelineEvent]>([])
        let graph = try GraphBuilder(first: stage,
                                     options: .init(queue: 64, policy: .block,
                                                    budget: try StageBudget(ms: 150, onOverrun: .shrinkK(knob))),
                                     clock: clock, onEvent: { e in events.mutate { $0.append(e) } })
            .sink { _, _ in }
        for i in 0..<40 { graph.submit(i) }
        try graph.run()
        graph.finish()
        let ks = stage.seen.value.map { $0.k! }
        XCTAssertEqual(ks.first, 576)
        XCTAssertEqual(ks[1], 252)
        XCTAssertEqual(knob.k, 260)
        XCTAssertEqual(Array(ks.suffix(20)), [Int](repeating: 260, count: 20))
        XCTAssertEqual(graph.profiler.report().stages["prefill"]?.overruns, 1)
        XCTAssertEqual(events.value.first, .budgetOverrun(stage: "prefill", ms: 308, budgetMs: 150))
        XCTAssertEqual(events.value[1], .kChanged(stage: "prefill", k: 252))
        XCTAssertEqual(events.value.last, .kChanged(stage: "prefill", k: 260))
    }

    func testBudgetMustBePositive() {
        XCTAssertThrowsError(try StageBudget(ms: 0))
        XCTAssertThrowsError(try StageBudget(ms: -5)) { error in
            XCTAssertEqual("\(error)", "invalid pipeline graph: budget_ms must be > 0, got -5.0")
        }
    }

    func testManualClock() {
        let c = ManualClock(startNanoseconds: 5)
        XCTAssertEqual(c.nowNanoseconds(), 5)
        c.advance(milliseconds: 1.5)
        XCTAssertEqual(c.nowNanoseconds(), 1_500_005)
        XCTAssertEqual(c.now(), .nanoseconds(1_500_005))
        let s = SystemClock()
        let a = s.nowNanoseconds()
        XCTAssertGreaterThanOrEqual(s.nowNanoseconds(), a)
    }
}
