import Foundation
import XCTest
@testable import Pipeline

final class BoundedQueueTests: XCTestCase {
    func testCapacityBelowOneIsAnErrorNamingTheValue() {
        XCTAssertThrowsError(try BoundedQueue<Int>(capacity: 0, policy: .latest, name: "encode")) { error in
            XCTAssertEqual("\(error)", "queue capacity of encode must be >= 1, got 0")
        }
        XCTAssertThrowsError(try BackPressure(policy: .block, capacity: -3))
    }

    func testBackPressureDecisions() throws {
        var bp = try BackPressure(policy: .dropOldest, capacity: 2)
        XCTAssertEqual(bp.decide(depth: 0), .enqueue)
        XCTAssertEqual(bp.decide(depth: 1), .enqueue)
        XCTAssertEqual(bp.decide(depth: 2), .dropOldestThenEnqueue)
        XCTAssertEqual(bp.drops, [.dropOldest: 1])

        var newest = try BackPressure(policy: .dropNewest, capacity: 1)
        XCTAssertEqual(newest.decide(depth: 1), .dropIncoming)
        XCTAssertEqual(newest.drops, [.dropNewest: 1])

        var latest = try BackPressure(policy: .latest, capacity: 4)
        XCTAssertEqual(latest.decide(depth: 0), .enqueue)
        XCTAssertEqual(latest.decide(depth: 1), .replaceAll)
        XCTAssertEqual(latest.drops, [.latest: 1])

        var block = try BackPressure(policy: .block, capacity: 3)
        XCTAssertEqual(block.decide(depth: 2), .enqueue)
        XCTAssertEqual(block.decide(depth: 3), .wait)
        XCTAssertEqual(block.waits, 1)
        XCTAssertEqual(block.drops, [:])
    }

    func testABlockingPushOnALatestQueueWaitsInsteadOfReplacing() throws {
        // A file source pushes with `block` into the `latest` video_decode queue: nothing is dropped,
        // and the producer waits while the queue is full until the consumer makes room.
        let q = try BoundedQueue<Int>(capacity: 2, policy: .latest, name: "video_decode")
        XCTAssertTrue(q.push(1, policy: .block).enqueued)
        XCTAssertTrue(q.push(2, policy: .block).enqueued)
        XCTAssertEqual(q.depth, 2)
        let pushed = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            q.push(3, policy: .block)
            pushed.signal()
        }
        XCTAssertEqual(pushed.wait(timeout: .now() + 0.2), .timedOut, "a full queue makes a blocking push wait")
        XCTAssertEqual(q.pop(), 1)
        XCTAssertEqual(pushed.wait(timeout: .now() + 10), .success)
        XCTAssertEqual([q.pop(), q.pop()], [2, 3])
        XCTAssertEqual(q.stats.drops, [:])
        XCTAssertEqual(q.stats.waits, 1)
        // The queue's own policy still applies to other pushes.
        q.push(4)
        q.push(5)
        XCTAssertEqual(q.stats.drops, [.latest: 1])
        XCTAssertEqual(q.pop(), 5)
    }

    func testPolicySpellings() {
        XCTAssertEqual(OverflowPolicy(rawValue: "drop-oldest"), .dropOldest)
        XCTAssertEqual(OverflowPolicy(rawValue: "drop-newest"), .dropNewest)
        XCTAssertEqual(OverflowPolicy(rawValue: "latest"), .latest)
        XCTAssertEqual(OverflowPolicy(rawValue: "block"), .block)
        XCTAssertNil(OverflowPolicy(rawValue: "dropOldest"))
    }

    private func drain<T>(_ q: BoundedQueue<T>) -> [T] {
        var out: [T] = []
        while let x = q.tryPop() { out.append(x) }
        return out
    }

    func testDropOldestKeepsTheNewestCapacityItemsInOrder() throws {
        let q = try BoundedQueue<Int>(capacity: 3, policy: .dropOldest)
        var evicted: [Int] = []
        for i in 0..<10 {
            let o = q.push(i)
            XCTAssertTrue(o.enqueued)
            evicted += o.dropped
            XCTAssertLessThanOrEqual(q.depth, 3)
        }
        XCTAssertEqual(evicted, [0, 1, 2, 3, 4, 5, 6])
        XCTAssertEqual(drain(q), [7, 8, 9])
        let s = q.stats
        XCTAssertEqual(s.highWater, 3)
        XCTAssertEqual(s.drops, [.dropOldest: 7])
        XCTAssertEqual(s.pushed, 10)
        XCTAssertEqual(s.popped, 3)
    }

    func testDropNewestKeepsTheFirstCapacityItems() throws {
        let q = try BoundedQueue<Int>(capacity: 3, policy: .dropNewest)
        var refused: [Int] = []
        for i in 0..<10 {
            let o = q.push(i)
            XCTAssertEqual(o.enqueued, i < 3)
            refused += o.dropped
        }
        XCTAssertEqual(refused, [3, 4, 5, 6, 7, 8, 9])
        XCTAssertEqual(drain(q), [0, 1, 2])
        XCTAssertEqual(q.stats.drops, [.dropNewest: 7])
        XCTAssertEqual(q.stats.highWater, 3)
    }

    func testLatestKeepsOnlyTheNewest() throws {
        let q = try BoundedQueue<Int>(capacity: 4, policy: .latest)
        var replaced: [Int] = []
        for i in 0..<10 {
            let o = q.push(i)
            XCTAssertTrue(o.enqueued)
            replaced += o.dropped
            XCTAssertEqual(q.depth, 1, "latest: depth <= 1 after each push")
        }
        XCTAssertEqual(replaced, Array(0..<9))
        XCTAssertEqual(q.pop(), 9)
        XCTAssertEqual(q.stats.drops, [.latest: 9])
        XCTAssertEqual(q.stats.highWater, 1)
        q.push(10)
        q.push(11)
        XCTAssertEqual(q.tryPop(), 11)
        XCTAssertNil(q.tryPop())
    }

    func testCloseRefusesPushesAndDrainsBeforeNil() throws {
        let q = try BoundedQueue<Int>(capacity: 2, policy: .block)
        q.push(1)
        q.push(2)
        q.close()
        let o = q.push(3)
        XCTAssertTrue(o.closed)
        XCTAssertFalse(o.enqueued)
        XCTAssertEqual(q.pop(), 1)
        XCTAssertEqual(q.pop(), 2)
        XCTAssertNil(q.pop())
        XCTAssertNil(q.pop())
        XCTAssertTrue(q.stats.closed)
    }

    func testCloseWakesABlockedConsumerAndProducer() throws {
        let empty = try BoundedQueue<Int>(capacity: 1, policy: .block)
        let full = try BoundedQueue<Int>(capacity: 1, policy: .block)
        full.push(0)
        let done = DispatchGroup()
        let results = LockedBox<[String]>([])
        DispatchQueue.global().async(group: done) {
            let x = empty.pop()
            results.mutate { $0.append("pop:\(x.map(String.init) ?? "nil")") }
        }
        DispatchQueue.global().async(group: done) {
            let o = full.push(1)
            results.mutate { $0.append("push-closed:\(o.closed)") }
        }
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(results.value, [], "both wait")
        empty.close()
        full.close()
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(Set(results.value), ["pop:nil", "push-closed:true"])
        XCTAssertEqual(full.stats.waits, 1)
        XCTAssertEqual(full.pop(), 0, "items pushed before close still drain")
    }

    func testCloseAndDiscardReturnsAndCountsTheRest() throws {
        let q = try BoundedQueue<Int>(capacity: 4, policy: .block)
        for i in 0..<3 { q.push(i) }
        XCTAssertEqual(q.closeAndDiscard(), [0, 1, 2])
        XCTAssertNil(q.pop())
        XCTAssertEqual(q.stats.drops, [.closed: 3])
    }

    func testBlockPolicyIsLosslessAndBoundedWithAProducerAndAConsumer() throws {
        let q = try BoundedQueue<Int>(capacity: 2, policy: .block)
        let n = 500
        let received = LockedBox<[Int]>([])
        let done = DispatchGroup()
        DispatchQueue.global().async(group: done) {
            while let x = q.pop() {
                received.mutate { $0.append(x) }
                if x % 50 == 0 { Thread.sleep(forTimeInterval: 0.002) }  // slow consumer now and then
            }
        }
        DispatchQueue.global().async(group: done) {
            for i in 0..<n {
                let o = q.push(i)
                precondition(o.enqueued && o.dropped.isEmpty)
            }
            q.close()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        XCTAssertEqual(received.value, Array(0..<n))
        let s = q.stats
        XCTAssertLessThanOrEqual(s.highWater, 2)
        XCTAssertEqual(s.highWater, 2)
        XCTAssertEqual(s.totalDrops, 0)
        XCTAssertGreaterThan(s.waits, 0, "the producer had to wait for the slow consumer")
        XCTAssertEqual(s.pushed, n)
        XCTAssertEqual(s.popped, n)
    }

    func testLanesHaveTheirOwnCapacityAndPopRoundRobin() throws {
        // Items "a0"… and "b0"…: the lane is the first letter.
        let q = try BoundedQueue<String>(capacity: 3, policy: .dropOldest, name: "encode", lane: { String($0.prefix(1)) })
        for i in 0..<6 { q.push("a\(i)") }
        q.push("b0")
        q.push("b1")
        XCTAssertEqual(q.depth, 5, "each lane holds its own 3")
        XCTAssertEqual(q.stats.drops, [.dropOldest: 3], "only lane a overflowed")
        var out: [String] = []
        while let x = q.tryPop() { out.append(x) }
        XCTAssertEqual(out, ["a3", "b0", "a4", "b1", "a5"], "round-robin across lanes, FIFO within one")

        // A full `block` lane makes only its own producer wait.
        let b = try BoundedQueue<String>(capacity: 1, policy: .block, name: "video_decode", lane: { String($0.prefix(1)) })
        b.push("a0")
        let blocked = expectation(description: "second push into lane a waits")
        blocked.isInverted = true
        DispatchQueue.global().async {
            b.push("a1")
            blocked.fulfill()
        }
        XCTAssertTrue(b.push("b0").enqueued, "lane b has room although lane a is full")
        wait(for: [blocked], timeout: 0.2)
        XCTAssertEqual(b.tryPop(), "a0")
        XCTAssertEqual(b.tryPop(), "b0")
        XCTAssertEqual(b.pop(waitingUntil: Date().addingTimeInterval(5)), "a1", "the waiting push completes once lane a has room")

        // `latest` replaces only its own lane.
        let l = try BoundedQueue<String>(capacity: 2, policy: .latest, name: "video_decode", lane: { String($0.prefix(1)) })
        for x in ["a0", "b0", "a1", "a2"] { l.push(x) }
        XCTAssertEqual([l.tryPop(), l.tryPop(), l.tryPop()], ["a2", "b0", nil])
        XCTAssertEqual(l.closeAndDiscard(), [])
    }

    func testPopWithDeadlineTimesOut() throws {
        let q = try BoundedQueue<Int>(capacity: 1, policy: .latest)
        XCTAssertNil(q.pop(waitingUntil: Date().addingTimeInterval(0.01)))
        q.push(5)
        XCTAssertEqual(q.pop(waitingUntil: Date().addingTimeInterval(0.01)), 5)
    }
}

/// A value behind a lock, for collecting results from several threads in tests.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T { lock.withLock { stored } }
    func mutate<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&stored) } }
}
