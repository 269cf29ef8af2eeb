import Dispatch
import Foundation
import XCTest
@testable import Pipeline

/// A synthetic video frame.
struct Frame: Sendable {
    let seq: Int
}

/// A stage that takes `ms` on a manual clock, can be held mid-item by the test, and checks the
/// executor discipline.
final class StepStage<T: Sendable>: Stage, @unchecked Sendable {
    typealias Input = T
    typealias Output = T
    let name: String
    let ms: Double
    let clock: ManualClock
    let onProcess: (@Sendable (T) -> Void)?
    let overlap: OverlapProbe?
    /// When set, each item waits for one `signal()` before finishing (the test releases it).
    let hold: DispatchSemaphore?

    init(name: String, ms: Double, clock: ManualClock, overlap: OverlapProbe? = nil, hold: DispatchSemaphore? = nil,
         onProcess: (@Sendable (T) -> Void)? = nil) {
        self.name = name
        self.ms = ms
        self.clock = clock
        self.overlap = overlap
        self.hold = hold
        self.onProcess = onProcess
    }

    func process(_ input: T) throws -> [T] {
        overlap?.enter()
        defer { overlap?.leave() }
        onProcess?(input)
        hold?.wait()
        clock.advance(milliseconds: ms)
        return [input]
    }
}

/// Counts how many stages run at once.
final class OverlapProbe: @unchecked Sendable {
    private let lock = NSLock()
    private var active = 0
    private(set) var maxActive = 0
    func enter() { lock.withLock { active += 1; maxActive = max(maxActive, active) } }
    func leave() { lock.withLock { active -= 1 } }
    var observedMax: Int { lock.withLock { maxActive } }
}

final class GraphTests: XCTestCase {
    /// Waits (polling, up to 10 s of real time) until `condition` holds.
    private func eventually(_ what: String, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(10)
        while !condition() && Date() < deadline { usleep(1000) }
        XCTAssertTrue(condition(), what)
    }

    /// Four stages on a manual clock, the "LLM" one slow (100 ms per item) behind a `latest` queue of
    /// one: while it works, newer frames replace each other in its queue, so when it is free it takes
    /// the newest frame; queues stay within their bounds, frames stay in order, every frame is an
    /// answer or a counted drop, and the stages on the shared compute executor never overlap. The test
    /// steps the slow stage itself (no sleeps, no wall-clock thresholds).
    func testSlowStageWithLatestStaysBoundedAndFresh() throws {
        let clock = ManualClock()
        let compute = ComputeExecutor(label: "atp.test.compute")
        let probe = OverlapProbe()
        let llmSeen = LockedBox<[Int]>([])
        let e2e = LockedBox<[Double]>([])
        let release = DispatchSemaphore(value: 0)
        let decode = StepStage<Frame>(name: "video_decode", ms: 1, clock: clock)
        let encode = StepStage<Frame>(name: "encode", ms: 5, clock: clock, overlap: probe)
        let gate = StepStage<Frame>(name: "gate", ms: 1, clock: clock, overlap: probe)
        let llm = StepStage<Frame>(name: "llm", ms: 100, clock: clock, hold: release) { frame in
            llmSeen.mutate { $0.append(frame.seq) }
        }
        let graph = try GraphBuilder(first: decode, options: .init(queue: 4, policy: .block), clock: clock)
            .then(encode, options: .init(queue: 2, policy: .block, executor: .shared(compute)))
            .then(gate, options: .init(queue: 2, policy: .block, executor: .shared(compute)))
            .then(llm, options: .init(queue: 1, policy: .latest, budget: try StageBudget(ms: 150)))
            .sink(queue: 4) { _, info in e2e.mutate { $0.append(info.e2eMs) } }
        try graph.run()
        let llmQueue = { graph.queueStats[3].stats }
        // Three rounds: the slow stage holds one frame while five more arrive behind it.
        var next = 0, expected: [Int] = []
        for round in 0..<3 {
            if round == 0 {
                graph.submit(Frame(seq: next))
                expected.append(next)
                next += 1
            }
            let held = expected.last!
            eventually("the slow stage holds frame \(held)") { llmSeen.value.last == held }
            let pushedBefore = llmQueue().pushed
            for _ in 0..<5 {
                graph.submit(Frame(seq: next))
                next += 1
            }
            eventually("five frames reached the slow stage's queue") { llmQueue().pushed == pushedBefore + 5 }
            XCTAssertEqual(llmQueue().depth, 1, "latest keeps one")
            expected.append(next - 1)   // the newest is what it takes next
            release.signal()
        }
        eventually("the last frame is taken") { llmSeen.value.count == expected.count }
        release.signal()
        graph.finish()

        XCTAssertEqual(llmSeen.value, expected, "the slow stage always takes the newest frame: \(llmSeen.value)")
        XCTAssertEqual(graph.inFlight, 0, "nothing in flight after finish")
        for (name, stats) in graph.queueStats {
            XCTAssertLessThanOrEqual(stats.highWater, stats.capacity, "\(name) high-water within its bound")
            XCTAssertEqual(stats.depth, 0, "\(name) drained")
        }
        XCTAssertEqual(probe.observedMax, 1, "stages on the shared compute executor never overlap")
        let report = graph.profiler.report()
        XCTAssertEqual(report.framesIn, next)
        XCTAssertEqual(report.answers, expected.count)
        XCTAssertEqual(graph.profiler.stageProfiles().first { $0.name == "llm" }!.drops, [.latest: next - expected.count])
        XCTAssertEqual(report.stages["llm"]?.count, expected.count)
        // One manual clock for all stages: the slow stage's time also holds what the others advanced
        // while it held its frame.
        XCTAssertGreaterThanOrEqual(report.stages["llm"]?.p50Ms ?? 0, 100)
        // Every answer includes its own 100 ms in the slow stage; the first waited for nothing else.
        XCTAssertEqual(e2e.value.count, expected.count)
        XCTAssertTrue(e2e.value.allSatisfy { $0 >= 107 }, "\(e2e.value)")
    }

    func testTypedStagesFilterFanOutAndErrors() throws {
        let clock = ManualClock()
        let events = LockedBox<[PipelineEvent]>([])
        struct Boom: Error, CustomStringConvertible { var description: String { "boom on 4" } }
        // Int → String (drops odd numbers) → [Character] fan-out → Int (throws on "4").
        let toText = ClosureStage<Int, String>(name: "encode") { n in
            clock.advance(milliseconds: 2)
            return n % 2 == 0 ? ["\(n)\(n)"] : []
        }
        let split = ClosureStage<String, Character>(name: "gate") { s in Array(s) }
        let parse = ClosureStage<Character, Int>(name: "prefill", budgetMs: 1) { c in
            if c == "4" { throw Boom() }
            clock.advance(milliseconds: 3)
            return [Int(String(c))!]
        }
        let out = LockedBox<[(Int, ItemInfo)]>([])
        // One shared executor: the manual clock is advanced by one stage at a time, so each stage's
        // measured work is exactly its own advance (on separate executors, encode's advance could land
        // inside prefill's timing window).
        let compute = ComputeExecutor(label: "test.compute")
        let graph = try GraphBuilder(first: toText, options: .init(queue: 8, policy: .block, executor: .shared(compute)),
                                     clock: clock, onEvent: { e in events.mutate { $0.append(e) } })
            .then(split, options: .init(queue: 8, policy: .block, executor: .shared(compute)))
            .then(parse, options: .init(queue: 8, policy: .block, executor: .shared(compute)))
            .sink { v, info in out.mutate { $0.append((v, info)) } }
        XCTAssertEqual(graph.stageNames, ["encode", "gate", "prefill"])
        for i in 0..<7 { graph.submit(i) }
        try graph.run()
        graph.finish()
        XCTAssertEqual(graph.inFlight, 0)
        XCTAssertEqual(out.value.map(\.0), [0, 0, 2, 2, 6, 6])
        XCTAssertEqual(out.value.map(\.1.sequence), [0, 0, 2, 2, 6, 6])
        XCTAssertEqual(out.value[0].1.stagesMs["encode"], 2)
        XCTAssertEqual(out.value[0].1.stagesMs["prefill"], 3)
        let p = graph.profiler.stageProfiles().filter { !$0.isSink }
        XCTAssertEqual(p.map(\.name), ["encode", "gate", "prefill"])
        XCTAssertEqual(p[0].count, 7)
        XCTAssertEqual(p[1].count, 4)
        XCTAssertEqual(p[2].count, 8)
        XCTAssertEqual(p[2].drops, [.error: 2])
        XCTAssertEqual(p[2].overruns, 6, "the stage's own 1 ms budget applies")
        XCTAssertEqual(events.value.filter { if case .stageError = $0 { return true } else { return false } },
                       [.stageError(stage: "prefill", message: "boom on 4"), .stageError(stage: "prefill", message: "boom on 4")])
        XCTAssertThrowsError(try graph.run(), "a graph runs once")
    }

    func testPassedThroughItemsTakeNoComputeTurnNoSampleAndNoKObservation() throws {
        // Even numbers are "reused frames": every compute stage passes them through. A shrink-k budget
        // on prefill sees only the odd (real) items; on a manual clock each real prefill takes 5 ms
        // against a 10 ms budget, so K may only grow from its start, and passed-through items (which
        // would read as 0 ms) must not be observed at all.
        let clock = ManualClock()
        let compute = ComputeExecutor(label: "test.compute")
        let processed = LockedBox<[String: [Int]]>([:])
        func stage(_ name: String, ms: Double) -> ClosureStage<Int, Int> {
            ClosureStage(name: name, passThrough: { $0 % 2 == 0 ? [$0] : nil }) { n in
                dispatchPrecondition(condition: .onQueue(compute.queue))
                processed.mutate { $0[name, default: []].append(n) }
                clock.advance(milliseconds: ms)
                return [n]
            }
        }
        let knob = KKnob(try KController(kMin: 1, kMax: 100, initial: 50))
        let out = LockedBox<[(Int, ItemInfo)]>([])
        let graph = try GraphBuilder(first: stage("encode", ms: 2), options: .init(queue: 32, policy: .block, executor: .shared(compute)),
                                     clock: clock)
            .then(stage("prefill", ms: 5), options: .init(queue: 32, policy: .block,
                                                           budget: try StageBudget(ms: 10, onOverrun: .shrinkK(knob)),
                                                           executor: .shared(compute)))
            .sink { v, info in out.mutate { $0.append((v, info)) } }
        for i in 0..<20 { graph.submit(i) }
        try graph.run()
        graph.finish()
        XCTAssertEqual(graph.inFlight, 0)
        XCTAssertEqual(out.value.map(\.0), Array(0..<20), "passed-through items still reach the sink, in order")
        XCTAssertEqual(processed.value["encode"], Array(stride(from: 1, to: 20, by: 2)))
        XCTAssertEqual(processed.value["prefill"], Array(stride(from: 1, to: 20, by: 2)))
        for (v, info) in out.value {
            XCTAssertEqual(info.stagesMs.isEmpty, v % 2 == 0, "a passed-through item carries no stage time")
        }
        let p = graph.profiler.stageProfiles().filter { !$0.isSink }
        XCTAssertEqual(p.map(\.count), [10, 10], "only real items are in the stage histograms")
        // Ten 5 ms observations under a 10 ms budget: K grows from 50; a 0 ms observation per reused
        // item would have doubled the observations.
        var reference = try KController(kMin: 1, kMax: 100, initial: 50)
        for _ in 0..<10 { _ = reference.observe(latencyMs: 5, budgetMs: 10) }
        XCTAssertEqual(knob.k, reference.k)
        var withZeros = try KController(kMin: 1, kMax: 100, initial: 50)
        for _ in 0..<10 { _ = withZeros.observe(latencyMs: 0, budgetMs: 10); _ = withZeros.observe(latencyMs: 5, budgetMs: 10) }
        XCTAssertNotEqual(withZeros.k, reference.k, "the check above could tell the difference")
    }

    func testDuplicateStageNamesAndBadCapacityAreErrors() throws {
        let a = ClosureStage<Int, Int>(name: "encode") { [$0] }
        XCTAssertThrowsError(try GraphBuilder(first: a, options: .init(queue: 1)).then(a, options: .init(queue: 1))) {
            XCTAssertEqual("\($0)", "invalid pipeline graph: duplicate stage name 'encode'")
        }
        XCTAssertThrowsError(try GraphBuilder(first: a, options: .init(queue: 0))) {
            XCTAssertEqual("\($0)", "queue capacity of encode must be >= 1, got 0")
        }
    }

    func testCancelDiscardsQueuedItemsAndLeavesNothingInFlight() throws {
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let slow = ClosureStage<Int, Int>(name: "prefill") { n in
            if n == 0 { started.signal(); release.wait() }
            return [n]
        }
        let answers = LockedBox<[Int]>([])
        let graph = try GraphBuilder(first: slow, options: .init(queue: 8, policy: .block))
            .sink { v, _ in answers.mutate { $0.append(v) } }
        try graph.run()
        for i in 0..<6 { graph.submit(i) }
        started.wait()
        XCTAssertEqual(graph.inFlight, 6)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { release.signal() }
        graph.cancel()
        XCTAssertEqual(graph.inFlight, 0)
        XCTAssertTrue(graph.submit(99).closed)
        XCTAssertEqual(graph.inFlight, 0)
        let drops = graph.profiler.stageProfiles()[0].drops
        // Items 1…5 were discarded from the input queue; item 0 finished into a closed sink queue.
        XCTAssertEqual(drops[.closed], 5)
        XCTAssertEqual(answers.value, [])
        XCTAssertEqual(graph.profiler.report().framesIn, 6)
    }

    func testFinishWithoutRunDiscards() throws {
        let s = ClosureStage<Int, Int>(name: "encode") { [$0] }
        let graph = try GraphBuilder(first: s, options: .init(queue: 4, policy: .dropNewest)).sink { _, _ in }
        for i in 0..<6 { graph.submit(i) }
        XCTAssertEqual(graph.profiler.stageProfiles()[0].drops, [.dropNewest: 2])
        graph.finish()
        XCTAssertEqual(graph.inFlight, 0)
        XCTAssertEqual(graph.profiler.stageProfiles()[0].drops, [.dropNewest: 2, .closed: 4])
    }

    func testEveryMillisecondIsWorkOrWait() throws {
        // On a manual clock: a producer did 3 ms of work on each item before submitting it (a source's
        // decode); "video_decode" takes 2 ms, "encode" 5 ms, both on one compute executor, so items wait
        // for each other. Each item's e2e (capture → sink) is exactly its work plus its waits, the first
        // stage's work includes the producer's, and the profile's wait histogram holds the waits.
        let clock = ManualClock(startNanoseconds: 1_000_000_000)
        let compute = ComputeExecutor(label: "test.compute")
        func stage(_ name: String, ms: Double) -> ClosureStage<Int, Int> {
            ClosureStage(name: name) { n in
                clock.advance(milliseconds: ms)
                return [n]
            }
        }
        let out = LockedBox<[ItemInfo]>([])
        let graph = try GraphBuilder(first: stage("video_decode", ms: 2), options: .init(queue: 16, policy: .block, executor: .shared(compute)),
                                     clock: clock)
            .then(stage("encode", ms: 5), options: .init(queue: 16, policy: .block, executor: .shared(compute)))
            .sink(queue: 16) { _, info in out.mutate { $0.append(info) } }
        for _ in 0..<6 { graph.submit(0, upstreamWorkMs: 3) }
        try graph.run()
        graph.finish()
        XCTAssertEqual(out.value.count, 6)
        var waits: [Double] = []
        for info in out.value {
            XCTAssertEqual(info.stagesMs, ["video_decode": 5, "encode": 5])
            XCTAssertEqual(info.e2eMs, info.stagesMs.values.reduce(0, +) + info.queueMs, accuracy: 1e-9)
            waits.append(info.queueMs)
        }
        // All six were submitted at the same instant and the executor runs one item at a time: 6 × 7 ms
        // of work, so the last item to reach the sink has waited for most of the others.
        XCTAssertEqual(waits.max()!, out.value.last!.e2eMs - 10, accuracy: 1e-9)
        XCTAssertGreaterThanOrEqual(waits.max()!, 5 * 2, "later items waited at least for five earlier decodes")
        let p = graph.profiler.stageProfiles().filter { !$0.isSink }
        XCTAssertEqual(p[0].p50Ms, 5, "video_decode's work includes the producer's 3 ms")
        XCTAssertEqual(p[1].p50Ms, 5)
        XCTAssertGreaterThan(p[0].waitP99Ms, 0)
        XCTAssertEqual(graph.profiler.report().stages["video_decode"]?.waitP99Ms, p[0].waitP99Ms)
    }

    func testStreamsShareTheStagesRoundRobin() throws {
        // 30 items of a fast stream and 5 of a slow one are waiting when the graph starts: the stage
        // alternates between the streams while both have items, so the slow stream's 5 are done within
        // the first 10 items, not after the fast stream's 30.
        let order = LockedBox<[String]>([])
        let work = ClosureStage<String, String>(name: "encode") { s in
            order.mutate { $0.append(s) }
            return [s]
        }
        let graph = try GraphBuilder(first: work, options: .init(queue: 64, policy: .block))
            .sink(queue: 64) { _, _ in }
        for i in 0..<30 { graph.submit("fast\(i)", lane: "fast") }
        for i in 0..<5 { graph.submit("slow\(i)", lane: "slow") }
        try graph.run()
        graph.finish()
        XCTAssertEqual(order.value.count, 35)
        let firstTen = order.value.prefix(10)
        XCTAssertEqual(firstTen.filter { $0.hasPrefix("slow") }, ["slow0", "slow1", "slow2", "slow3", "slow4"])
        XCTAssertEqual(Array(firstTen), (0..<5).flatMap { ["fast\($0)", "slow\($0)"] })
    }
}
