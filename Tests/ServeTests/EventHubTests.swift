import XCTest
import Foundation
@testable import Serve

/// The SSE fan-out without sockets: bounded buffers, dropping a subscriber that falls behind,
/// never blocking the publisher.
final class EventHubTests: XCTestCase {
    /// Collects a subscription's lines on a task.
    final class Collector: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        private var ended = false
        var value: (lines: [String], ended: Bool) { lock.withLock { (lines, ended) } }
        func add(_ l: String) { lock.withLock { lines.append(l) } }
        func end() { lock.withLock { ended = true } }
    }

    func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(2000)
        }
        return condition()
    }

    func testSlowSubscriberIsDroppedFastOneGetsEverything() {
        let hub = EventHub(capacity: 8)
        let slowDropped = DispatchSemaphore(value: 0)
        let slow = hub.subscribe(onDrop: { slowDropped.signal() })   // never read
        let fast = hub.subscribe()
        let collector = Collector()
        let task = Task.detached {
            for await line in fast.lines { collector.add(line) }
            collector.end()
        }
        XCTAssertEqual(hub.currentStats.clients, 2)
        var maxPublishMs = 0.0
        for i in 0..<200 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            hub.publish("{\"i\":\(i)}")
            maxPublishMs = max(maxPublishMs, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            // Let the fast reader keep up (its buffer holds 8).
            XCTAssertTrue(waitUntil(5) { collector.value.lines.count == i + 1 }, "fast subscriber stalled at \(i)")
        }
        XCTAssertEqual(slowDropped.wait(timeout: .now() + 1), .success, "slow subscriber not dropped")
        XCTAssertEqual(collector.value.lines, (0..<200).map { "{\"i\":\($0)}" })
        let stats = hub.currentStats
        XCTAssertEqual(stats.published, 200)
        XCTAssertEqual(stats.droppedClients, 1)
        XCTAssertEqual(stats.clients, 1)
        // The slow subscriber got its first 8 lines, then its stream ended.
        var slowLines: [String] = []
        let slowDone = DispatchSemaphore(value: 0)
        let slowBox = Collector()
        Task.detached {
            for await l in slow.lines { slowBox.add(l) }
            slowDone.signal()
        }
        XCTAssertEqual(slowDone.wait(timeout: .now() + 5), .success)
        slowLines = slowBox.value.lines
        XCTAssertEqual(slowLines, (0..<8).map { "{\"i\":\($0)}" })
        XCTAssertLessThan(maxPublishMs, 250, "publish blocked")
        hub.close()
        XCTAssertTrue(waitUntil(5) { collector.value.ended })
        task.cancel()
    }

    func testCloseEndsStreamsAndRefusesNewSubscribers() {
        let hub = EventHub(capacity: 4)
        let a = hub.subscribe()
        hub.publish("x")
        hub.close()
        hub.publish("y")   // ignored after close
        let done = DispatchSemaphore(value: 0)
        let box = Collector()
        Task.detached {
            for await l in a.lines { box.add(l) }
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(box.value.lines, ["x"])
        let late = hub.subscribe()
        let lateDone = DispatchSemaphore(value: 0)
        Task.detached {
            for await _ in late.lines {}
            lateDone.signal()
        }
        XCTAssertEqual(lateDone.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(hub.currentStats.published, 1)
    }

    func testUnsubscribeRemovesTheClient() {
        let hub = EventHub(capacity: 4)
        let a = hub.subscribe()
        XCTAssertEqual(hub.currentStats.clients, 1)
        hub.unsubscribe(a.id)
        XCTAssertEqual(hub.currentStats.clients, 0)
        hub.publish("x")
        XCTAssertEqual(hub.currentStats.delivered, 0)
    }
}
