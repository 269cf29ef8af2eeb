// Events the graph reports besides answers (JSON Lines with an "event" key).
import Foundation
import Media

/// A non-answer event of a running graph. Encodes to one JSON object with an `event` key, e.g.
/// `{"event":"budget_overrun","stage":"prefill","ms":171.2,"budget_ms":150}`.
public enum PipelineEvent: Sendable, Equatable, Encodable {
    /// An item took longer than its stage's budget.
    case budgetOverrun(stage: String, ms: Double, budgetMs: Double)
    /// The shrink-k controller of a stage changed K.
    case kChanged(stage: String, k: Int)
    /// A stage threw; the item was dropped.
    case stageError(stage: String, message: String)

    private enum Keys: String, CodingKey {
        case event, stage, ms, k, message
        case budgetMs = "budget_ms"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case let .budgetOverrun(stage, ms, budgetMs):
            try c.encode("budget_overrun", forKey: .event)
            try c.encode(stage, forKey: .stage)
            try c.encode(roundedMs(ms), forKey: .ms)
            try c.encode(budgetMs, forKey: .budgetMs)
        case let .kChanged(stage, k):
            try c.encode("k_changed", forKey: .event)
            try c.encode(stage, forKey: .stage)
            try c.encode(k, forKey: .k)
        case let .stageError(stage, message):
            try c.encode("stage_error", forKey: .event)
            try c.encode(stage, forKey: .stage)
            try c.encode(message, forKey: .message)
        }
    }

    /// The event as one line of JSON (sorted keys, no trailing newline).
    public func jsonLine() -> String { JSONLine.encode(self) }
}

/// The one JSON encoder of events and API bodies: compact, sorted keys, one line.
public enum JSONLine {
    /// `value` as one line of JSON. Values whose encoding fails (a non-finite number) are written as
    /// an `encode_error` event naming the type, never silently dropped.
    public static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            return #"{"event":"encode_error","type":"\#(T.self)"}"#
        }
    }
}

/// One answer event (DESIGN.md, answer events). Absent values are written as `null`.
public struct AnswerEvent: Sendable, Encodable {
    public var stream: String
    public var query: String
    public var pts: Double
    public var capturedAt: Double
    public var answer: String
    public var pYes: Float?
    public var changed: Bool
    public var reused: Bool
    public var keptCount: Int
    public var visualTokens: Int
    /// Each stage's work on this answer's frame (a reused answer: `video_decode` only), in ms.
    public var stagesMs: [String: Double]
    /// Total time the frame waited in queues and for the compute executor, in ms.
    public var queueMs: Double
    /// From `captured_at` to the event's emission, in ms (≈ Σ `stagesMs` + `queueMs`).
    public var e2eMs: Double
    /// The source has a truth sidecar: the event carries `truth` and `correct` (null when the sidecar
    /// does not answer this query at this frame).
    public var hasTruth = false
    public var truth: String?
    public var correct: Bool?

    enum CodingKeys: String, CodingKey {
        case stream, query, pts, answer, changed, reused, truth, correct
        case capturedAt = "captured_at", pYes = "p_yes", keptCount = "kept_count", visualTokens = "visual_tokens"
        case stagesMs = "stages_ms", queueMs = "queue_ms", e2eMs = "e2e_ms"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(stream, forKey: .stream)
        try c.encode(query, forKey: .query)
        try c.encode(roundedMs(pts), forKey: .pts)
        try c.encode((capturedAt * 1e6).rounded() / 1e6, forKey: .capturedAt)
        try c.encode(answer, forKey: .answer)
        try c.encode(pYes.map { roundedMs(Double($0)) }, forKey: .pYes)
        try c.encode(changed, forKey: .changed)
        try c.encode(reused, forKey: .reused)
        try c.encode(keptCount, forKey: .keptCount)
        try c.encode(visualTokens, forKey: .visualTokens)
        try c.encode(stagesMs.mapValues(roundedMs), forKey: .stagesMs)
        try c.encode(roundedMs(queueMs), forKey: .queueMs)
        try c.encode(roundedMs(e2eMs), forKey: .e2eMs)
        if hasTruth {
            try c.encode(truth, forKey: .truth)
            try c.encode(correct, forKey: .correct)
        }
    }

    /// The event as one JSON line.
    public func jsonLine() -> String { JSONLine.encode(self) }
}

/// A source event (`reconnect`, `gap`, `corrupt_packets`) or a source's final error, as a JSON line.
public struct SourceEventRecord: Sendable, Encodable {
    public var event: SourceEvent?
    /// A source that failed for good (`source_error`).
    public var error: String?

    public init(_ event: SourceEvent) { self.event = event }
    public init(sourceError: String) { self.error = sourceError }

    enum CodingKeys: String, CodingKey {
        case event, stream, count, attempt, ok, error, seconds
        case fromPts = "from_pts", delayMs = "delay_ms"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch event {
        case .gap(let s, let from, let seconds):
            try c.encode("gap", forKey: .event)
            try c.encode(s, forKey: .stream)
            try c.encode(roundedMs(from), forKey: .fromPts)
            try c.encode(roundedMs(seconds), forKey: .seconds)
        case .reconnect(let s, let attempt, let delay, let ok, let err):
            try c.encode("reconnect", forKey: .event)
            try c.encode(s, forKey: .stream)
            try c.encode(attempt, forKey: .attempt)
            try c.encode(delay, forKey: .delayMs)
            try c.encode(ok, forKey: .ok)
            try c.encode(err, forKey: .error)
        case .corruptPacket(let s, let count):
            try c.encode("corrupt_packets", forKey: .event)
            try c.encode(s, forKey: .stream)
            try c.encode(count, forKey: .count)
        case nil:
            try c.encode("source_error", forKey: .event)
            try c.encode(error, forKey: .error)
        }
    }

    /// The event as one JSON line.
    public func jsonLine() -> String { JSONLine.encode(self) }
}

/// Milliseconds rounded to the microsecond, for output.
func roundedMs(_ ms: Double) -> Double { (ms * 1000).rounded() / 1000 }
