// Events the graph reports besides answers (JSON Lines with an "event" key).
import Foundation

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
    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Milliseconds rounded to the microsecond, for output.
func roundedMs(_ ms: Double) -> Double { (ms * 1000).rounded() / 1000 }
