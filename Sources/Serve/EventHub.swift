// Fan-out of the pipeline's JSON lines to Server-Sent Events clients.
// The pipeline's sink thread calls `publish`; it never waits for a client: each client has a bounded
// buffer, and a client whose buffer is full is dropped (its stream ends and its connection is closed).
import Foundation

/// Broadcasts JSON lines to subscribers, each with a bounded buffer; slow subscribers are dropped.
///
/// Thread-safe. ``publish(_:)`` takes one lock, appends to each subscriber's buffer without waiting
/// and returns: the pipeline is never stalled by a client.
public final class EventHub: @unchecked Sendable {
    /// What ``publish(_:)`` and ``subscribe(onDrop:)`` have done so far.
    public struct Stats: Sendable, Equatable {
        /// Subscribers connected now.
        public var clients: Int
        /// Lines published.
        public var published: Int
        /// Subscribers dropped because their buffer was full.
        public var droppedClients: Int
        /// Lines delivered into subscriber buffers (one per subscriber per line).
        public var delivered: Int
    }

    /// One subscriber: its lines, and its id for ``unsubscribe(_:)``.
    public struct Subscription: Sendable {
        /// The subscriber's id.
        public let id: Int
        /// The lines published after subscribing, in order; it ends when the subscriber is dropped,
        /// unsubscribed, or the hub is closed.
        public let lines: AsyncStream<String>
    }

    private struct Client {
        let continuation: AsyncStream<String>.Continuation
        let onDrop: @Sendable () -> Void
    }

    /// The most lines buffered per subscriber before it is dropped.
    public let capacity: Int
    private let lock = NSLock()
    private var clients: [Int: Client] = [:]
    private var nextID = 0
    private var closed = false
    private var stats = Stats(clients: 0, published: 0, droppedClients: 0, delivered: 0)

    /// Creates a hub.
    /// - Parameter capacity: the most lines buffered per subscriber (≥ 1; smaller values become 1).
    public init(capacity: Int = 256) {
        self.capacity = max(1, capacity)
    }

    /// Counters and the number of connected subscribers.
    public var currentStats: Stats { lock.withLock { stats } }

    /// Adds a subscriber.
    /// - Parameter onDrop: called once (on the publishing thread, so it must not block) when the subscriber
    ///   is dropped for falling behind; the HTTP layer closes the connection there.
    /// - Returns: the subscription; after ``close()`` its stream is already finished.
    public func subscribe(onDrop: @escaping @Sendable () -> Void = {}) -> Subscription {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(capacity))
        let id: Int? = lock.withLock {
            guard !closed else { return nil }
            nextID += 1
            clients[nextID] = Client(continuation: continuation, onDrop: onDrop)
            stats.clients = clients.count
            return nextID
        }
        guard let id else {
            continuation.finish()
            return Subscription(id: -1, lines: stream)
        }
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(id) }
        return Subscription(id: id, lines: stream)
    }

    /// Removes a subscriber and ends its stream (no effect when it is already gone).
    public func unsubscribe(_ id: Int) {
        let client: Client? = lock.withLock {
            let c = clients.removeValue(forKey: id)
            stats.clients = clients.count
            return c
        }
        client?.continuation.finish()
    }

    /// Hands a line to every subscriber without waiting; a subscriber whose buffer is full is dropped.
    /// - Parameter line: one JSON object on one line (no newline).
    /// - Complexity: O(subscribers).
    public func publish(_ line: String) {
        var dropped: [Client] = []
        lock.withLock {
            guard !closed else { return }
            stats.published += 1
            for (id, c) in clients {
                switch c.continuation.yield(line) {
                case .enqueued:
                    stats.delivered += 1
                case .dropped:
                    clients[id] = nil
                    stats.droppedClients += 1
                    dropped.append(c)
                case .terminated:
                    clients[id] = nil
                @unknown default:
                    break
                }
            }
            stats.clients = clients.count
        }
        for c in dropped {
            c.continuation.finish()
            c.onDrop()
        }
    }

    /// Ends every subscriber's stream and refuses new ones (at shutdown).
    public func close() {
        let all: [Client] = lock.withLock {
            closed = true
            let all = Array(clients.values)
            clients.removeAll()
            stats.clients = 0
            return all
        }
        for c in all { c.continuation.finish() }
    }
}
