// A thread-safe bounded FIFO edge with a back-pressure policy, blocking pop and close.
import Foundation

/// The result of one ``BoundedQueue/push(_:)``.
public struct PushOutcome<Element: Sendable>: Sendable {
    /// Whether the pushed item is now in the queue.
    public var enqueued: Bool
    /// Items that left the queue without being popped because of this push, oldest first: queued
    /// items evicted to make room, or the pushed item itself when it was refused.
    public var dropped: [Element]
    /// The reason for `dropped` (nil when nothing was dropped).
    public var dropReason: DropReason?
    /// Whether the push found the queue closed (the item is then in neither `dropped` nor the queue).
    public var closed: Bool
}

/// Counters of one edge, read atomically.
public struct QueueStats: Sendable, Equatable {
    /// The most items the edge holds.
    public var capacity: Int
    /// The edge's policy.
    public var policy: OverflowPolicy
    /// Items queued now.
    public var depth: Int
    /// The largest depth seen after any push (≤ capacity).
    public var highWater: Int
    /// Items accepted by `push`.
    public var pushed: Int
    /// Items handed out by `pop`.
    public var popped: Int
    /// Items evicted or refused, by reason.
    public var drops: [DropReason: Int]
    /// Pushes that had to wait for room (`block`).
    public var waits: Int
    /// Whether ``BoundedQueue/close()`` was called.
    public var closed: Bool

    /// All drops, whatever the reason.
    public var totalDrops: Int { drops.values.reduce(0, +) }
}

/// A bounded, thread-safe FIFO queue: the edge between two stages.
///
/// `push` follows the queue's ``OverflowPolicy`` (see its guarantees); `pop` blocks until an item
/// is available or the queue is closed and empty. Closing wakes every waiter: later pushes are
/// refused (`closed`), pops drain what is left and then return `nil`.
///
/// With a `lane` function (e.g. the item's stream), the queue is fair: each lane has its own
/// `capacity` and policy (a full lane blocks, drops or replaces only its own items) and `pop`
/// takes lanes round-robin, so a busy lane cannot starve a quiet one. Within a lane order is FIFO.
///
/// - Complexity: `push` and `pop` are O(capacity + lanes) at worst; both are small.
public final class BoundedQueue<Element: Sendable>: @unchecked Sendable {
    // Everything below is guarded by `condition`.
    private let condition = NSCondition()
    /// Queued items per lane, and the lanes in the order they first appeared.
    private var lanes: [String: [Element]] = [:]
    private var laneOrder: [String] = []
    /// The lane `pop` looks at first.
    private var cursor = 0
    private var count = 0
    private let laneOf: (@Sendable (Element) -> String)?
    private var backPressure: BackPressure
    private var isClosed = false
    private var highWater = 0
    private var pushed = 0
    private var popped = 0
    private var closedDrops = 0

    /// A name for messages (the consuming stage's name in a graph).
    public let name: String

    /// Creates an empty queue.
    /// - Parameters:
    ///   - capacity: the most items held; must be ≥ 1.
    ///   - policy: what a push into a full queue does.
    ///   - name: a name for messages.
    ///   - lane: the lane of an item (nil: one lane, a plain FIFO).
    /// - Throws: ``PipelineError/invalidCapacity(_:edge:)`` when `capacity < 1`.
    public init(capacity: Int, policy: OverflowPolicy, name: String = "queue",
                lane: (@Sendable (Element) -> String)? = nil) throws {
        backPressure = try BackPressure(policy: policy, capacity: capacity, edge: name)
        self.name = name
        self.laneOf = lane
    }

    /// The most items the queue holds (per lane, when it has lanes).
    public var capacity: Int { backPressure.capacity }
    /// The queue's policy.
    public var policy: OverflowPolicy { backPressure.policy }

    /// Items queued now.
    public var depth: Int { condition.withLock { count } }

    /// Whether the queue has been closed.
    public var closed: Bool { condition.withLock { isClosed } }

    /// A consistent snapshot of the queue's counters.
    public var stats: QueueStats {
        condition.withLock {
            var drops = backPressure.drops
            if closedDrops > 0 { drops[.closed, default: 0] += closedDrops }
            return QueueStats(capacity: backPressure.capacity, policy: backPressure.policy,
                              depth: count, highWater: highWater, pushed: pushed, popped: popped,
                              drops: drops, waits: backPressure.waits, closed: isClosed)
        }
    }

    /// Pushes an item according to the policy. With `block` this waits while the queue is full.
    /// - Parameters:
    ///   - element: the item.
    ///   - override: a policy for this push only (nil: the queue's).
    /// - Returns: what happened to it and to any item it displaced.
    @discardableResult
    public func push(_ element: Element, policy override: OverflowPolicy? = nil) -> PushOutcome<Element> {
        let key = laneOf?(element) ?? ""
        condition.lock()
        defer { condition.unlock() }
        if lanes[key] == nil {
            lanes[key] = []
            laneOrder.append(key)
        }
        while true {
            if isClosed {
                return PushOutcome(enqueued: false, dropped: [], dropReason: nil, closed: true)
            }
            switch backPressure.decide(depth: lanes[key]!.count, policy: override) {
            case .enqueue:
                return append(element, lane: key, dropped: [], reason: nil)
            case .dropOldestThenEnqueue:
                let evicted = lanes[key]!.removeFirst()
                count -= 1
                return append(element, lane: key, dropped: [evicted], reason: .dropOldest)
            case .replaceAll:
                let evicted = lanes[key]!
                lanes[key]!.removeAll(keepingCapacity: true)
                count -= evicted.count
                return append(element, lane: key, dropped: evicted, reason: .latest)
            case .dropIncoming:
                return PushOutcome(enqueued: false, dropped: [element], dropReason: .dropNewest, closed: false)
            case .wait:
                condition.wait()
            }
        }
    }

    // Caller holds the lock.
    private func append(_ element: Element, lane: String, dropped: [Element], reason: DropReason?) -> PushOutcome<Element> {
        lanes[lane]!.append(element)
        count += 1
        pushed += 1
        highWater = max(highWater, count)
        condition.broadcast()
        return PushOutcome(enqueued: true, dropped: dropped, dropReason: reason, closed: false)
    }

    /// Takes the oldest item, waiting while the queue is empty and open.
    /// - Returns: the item, or `nil` once the queue is closed and empty.
    public func pop() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while count == 0 && !isClosed { condition.wait() }
        return takeFirst()
    }

    /// Takes the oldest item without waiting.
    /// - Returns: the item, or `nil` when the queue is empty.
    public func tryPop() -> Element? {
        condition.withLock { takeFirst() }
    }

    /// Takes the oldest item, waiting at most until `deadline`.
    /// - Parameter deadline: the latest wall time to wait until.
    /// - Returns: the item, or `nil` when the queue stayed empty or is closed and empty.
    public func pop(waitingUntil deadline: Date) -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while count == 0 && !isClosed {
            if !condition.wait(until: deadline) { break }
        }
        return takeFirst()
    }

    // Caller holds the lock. The oldest item of the next non-empty lane, round-robin.
    private func takeFirst() -> Element? {
        guard count > 0 else { return nil }
        for step in 0..<laneOrder.count {
            let i = (cursor + step) % laneOrder.count
            let key = laneOrder[i]
            guard !lanes[key]!.isEmpty else { continue }
            let first = lanes[key]!.removeFirst()
            cursor = (i + 1) % laneOrder.count
            count -= 1
            popped += 1
            condition.broadcast()  // wakes a producer blocked on a full `block` lane
            return first
        }
        return nil
    }

    /// Closes the queue: waiters wake, later pushes are refused, pops drain what is left.
    public func close() {
        condition.withLock {
            isClosed = true
            condition.broadcast()
        }
    }

    /// Closes the queue and removes everything still in it, counting those items as `closed` drops.
    /// - Returns: the removed items, oldest first.
    @discardableResult
    public func closeAndDiscard() -> [Element] {
        condition.withLock {
            isClosed = true
            let rest = laneOrder.flatMap { lanes[$0]! }
            for key in laneOrder { lanes[key]!.removeAll() }
            count = 0
            closedDrops += rest.count
            condition.broadcast()
            return rest
        }
    }
}
