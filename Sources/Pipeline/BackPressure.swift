// Back-pressure for one bounded edge of the stage graph: a small value type whose mutating hook
// turns (depth, capacity) into a decision, in the manner of swift-nio's watermark strategies.
import Foundation

/// What an edge does when a producer pushes into it while it is full.
///
/// Guarantees, per policy (capacity `c ≥ 1`):
/// - `block`: lossless. A push waits until the depth is below `c` or the edge is closed;
///   depth ≤ c always; items leave in FIFO order.
/// - `dropOldest` (`drop-oldest`): when the edge is full the oldest queued item is evicted and the
///   new one enqueued; depth ≤ c; the newest item always survives; items leave in FIFO order.
/// - `dropNewest` (`drop-newest`): when the edge is full the incoming item is dropped; depth ≤ c;
///   an item already queued is never lost.
/// - `latest`: every push replaces everything queued, so depth ≤ 1 after each push and the item a
///   consumer pops is always the newest one pushed so far. The capacity only has to be ≥ 1.
public enum OverflowPolicy: String, Sendable, Codable, CaseIterable {
    case block
    case dropOldest = "drop-oldest"
    case dropNewest = "drop-newest"
    case latest
}

/// Why an item left the graph without reaching the sink.
public enum DropReason: String, Sendable, Codable, CaseIterable, Comparable {
    /// Evicted from a full `drop-oldest` edge by a newer item.
    case dropOldest = "drop-oldest"
    /// Refused by a full `drop-newest` edge.
    case dropNewest = "drop-newest"
    /// Replaced on a `latest` edge by a newer item.
    case latest
    /// Skipped by a stage because its previous item overran its budget (`on_overrun: skip`).
    case skip
    /// Pushed into, or left in, an edge that was closed by a cancelling stop.
    case closed
    /// The stage threw while processing it.
    case error

    public static func < (lhs: DropReason, rhs: DropReason) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The back-pressure state of one edge: its policy, its capacity and counts of the decisions taken.
///
/// The owner (``BoundedQueue``) calls ``decide(depth:)`` under its lock before every push and
/// carries the decision out.
public struct BackPressure: Sendable, Equatable {
    /// What to do with one push.
    public enum Decision: Sendable, Equatable {
        /// There is room: append the item.
        case enqueue
        /// Full: evict the oldest item, then append (`drop-oldest`).
        case dropOldestThenEnqueue
        /// Full: drop the incoming item (`drop-newest`).
        case dropIncoming
        /// Remove every queued item, then append (`latest`).
        case replaceAll
        /// Full: the producer waits for room (`block`).
        case wait
    }

    /// The edge's policy.
    public let policy: OverflowPolicy
    /// The most items the edge holds.
    public let capacity: Int
    /// Items evicted or refused so far, by reason (only `drop-oldest`, `drop-newest`, `latest`).
    public private(set) var drops: [DropReason: Int] = [:]
    /// How many times a producer was told to wait (`block`).
    public private(set) var waits = 0

    /// Creates the back-pressure state of an edge.
    /// - Parameters:
    ///   - policy: what to do on overflow.
    ///   - capacity: the most items the edge holds; must be ≥ 1.
    /// - Throws: ``PipelineError/invalidCapacity(_:edge:)`` when `capacity < 1`.
    public init(policy: OverflowPolicy, capacity: Int, edge: String = "edge") throws {
        guard capacity >= 1 else { throw PipelineError.invalidCapacity(capacity, edge: edge) }
        self.policy = policy
        self.capacity = capacity
    }

    /// Decides what one push does, and counts the items that decision drops.
    /// - Parameters:
    ///   - depth: the number of items queued now (0…capacity).
    ///   - override: a policy for this push only (a producer that must not lose items, such as a file
    ///     read as fast as the graph accepts, pushes with `block`); nil: the edge's policy.
    /// - Returns: the decision for this push.
    public mutating func decide(depth: Int, policy override: OverflowPolicy? = nil) -> Decision {
        precondition(depth >= 0 && depth <= capacity, "depth \(depth) outside 0...\(capacity)")
        switch override ?? policy {
        case .latest:
            if depth == 0 { return .enqueue }
            drops[.latest, default: 0] += depth
            return .replaceAll
        case .block:
            if depth < capacity { return .enqueue }
            waits += 1
            return .wait
        case .dropOldest:
            if depth < capacity { return .enqueue }
            drops[.dropOldest, default: 0] += 1
            return .dropOldestThenEnqueue
        case .dropNewest:
            if depth < capacity { return .enqueue }
            drops[.dropNewest, default: 0] += 1
            return .dropIncoming
        }
    }
}

/// Errors of the pipeline module (graph construction and spec loading). Messages are one line and
/// name the offending input.
public enum PipelineError: Error, Equatable, CustomStringConvertible {
    /// A queue capacity below 1.
    case invalidCapacity(Int, edge: String)
    /// A graph was wired with no stage, or started twice.
    case invalidGraph(String)
    /// A pipeline spec could not be read or is invalid: the file, the key path and what is wrong.
    case spec(file: String, key: String, message: String)

    public var description: String {
        switch self {
        case let .invalidCapacity(c, edge):
            return "queue capacity of \(edge) must be >= 1, got \(c)"
        case let .invalidGraph(message):
            return "invalid pipeline graph: \(message)"
        case let .spec(file, key, message):
            return key.isEmpty ? "\(file): \(message)" : "\(file): \(key): \(message)"
        }
    }
}

extension PipelineError: LocalizedError {
    public var errorDescription: String? { description }
}
