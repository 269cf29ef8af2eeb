// Per-stage latency histograms, drops, overruns and end-to-end latency; the `--profile-json` report.
import Foundation
import Histogram

/// The `--profile-json` document of DESIGN.md:
/// `{"stages":{"<stage>":{"count","p50_ms","p95_ms","p99_ms","max_ms","wait_p50_ms","wait_p95_ms",
///   "wait_p99_ms","drops","overruns"}},"e2e":{"p50_ms","p95_ms","p99_ms"},"frames_in","answers",…}`:
/// `p*_ms` are the stage's work per item, `wait_p*_ms` the time items waited for it (in its input
/// queue and for its executor), `e2e` capture to sink.
public struct ProfileReport: Codable, Sendable, Equatable {
    /// One stage's summary.
    public struct StageSummary: Codable, Sendable, Equatable {
        /// Items processed.
        public var count: Int
        /// Work percentiles and maximum, in milliseconds (0 when nothing was processed).
        public var p50Ms, p95Ms, p99Ms, maxMs: Double
        /// Wait percentiles (input queue + executor turn before the work), in milliseconds.
        public var waitP50Ms, waitP95Ms, waitP99Ms: Double
        /// Items dropped at or by this stage (all reasons).
        public var drops: Int
        /// Items that overran the stage's budget.
        public var overruns: Int

        enum CodingKeys: String, CodingKey {
            case count, drops, overruns
            case p50Ms = "p50_ms", p95Ms = "p95_ms", p99Ms = "p99_ms", maxMs = "max_ms"
            case waitP50Ms = "wait_p50_ms", waitP95Ms = "wait_p95_ms", waitP99Ms = "wait_p99_ms"
        }
    }

    /// End-to-end latency percentiles (admission into the graph to the sink), in milliseconds.
    public struct Latency: Codable, Sendable, Equatable {
        public var p50Ms, p95Ms, p99Ms: Double

        enum CodingKeys: String, CodingKey {
            case p50Ms = "p50_ms", p95Ms = "p95_ms", p99Ms = "p99_ms"
        }
    }

    /// Per-stage summaries keyed by stage name.
    public var stages: [String: StageSummary]
    /// End-to-end latency.
    public var e2e: Latency
    /// Items submitted to the graph.
    public var framesIn: Int
    /// Items that reached the sink.
    public var answers: Int
    /// Answer events computed for their frame (not reused by the change gate).
    public var freshAnswers: Int = 0
    /// Per query id: the fraction of its answer events (reused included) that match the truth;
    /// only when a source has a truth sidecar.
    public var accuracy: [String: Double]?

    enum CodingKeys: String, CodingKey {
        case stages, e2e, answers, accuracy
        case framesIn = "frames_in", freshAnswers = "fresh_answers"
    }

    /// The report as JSON with sorted keys.
    /// - Parameter pretty: indent the output.
    public func jsonData(pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        return try encoder.encode(self)
    }
}

/// Everything the profiler knows about one stage, including what the JSON report leaves out.
public struct StageProfile: Sendable {
    /// The stage's name.
    public var name: String
    /// Items processed.
    public var count: Int
    /// Work percentiles and maximum in milliseconds.
    public var p50Ms, p95Ms, p99Ms, maxMs: Double
    /// Wait percentiles in milliseconds (0 when no wait was recorded).
    public var waitP50Ms = 0.0, waitP95Ms = 0.0, waitP99Ms = 0.0
    /// Drops by reason.
    public var drops: [DropReason: Int]
    /// Budget overruns.
    public var overruns: Int
    /// The budget in milliseconds, if any.
    public var budgetMs: Double?
    /// The stage's input queue, if the profiler was given one.
    public var queue: QueueStats?
    /// Whether this is a sink rather than a stage.
    public var isSink: Bool

    /// All drops.
    public var totalDrops: Int { drops.values.reduce(0, +) }
}

/// Collects timings of a running graph. Thread-safe; stages record from their own threads.
///
/// Latencies are recorded in microseconds into `Histogram<UInt64>` (3 significant digits, so
/// percentiles are within 0.1 %); `max_ms` is the exact maximum.
public final class Profiler: @unchecked Sendable {
    private struct StageData {
        var histogram = Profiler.makeHistogram()
        var waits = Profiler.makeHistogram()
        var count = 0
        var maxMs = 0.0
        var drops: [DropReason: Int] = [:]
        var overruns = 0
        var budgetMs: Double?
        var queue: (@Sendable () -> QueueStats)?
        var isSink = false
    }

    private let lock = NSLock()
    private var order: [String] = []
    private var stages: [String: StageData] = [:]
    private var e2e = Profiler.makeHistogram()
    private var framesIn = 0
    private var answers = 0
    private var fresh = 0
    /// Per query id: (correct, scored).
    private var scored: [String: (Int, Int)] = [:]

    /// Creates an empty profiler.
    public init() {}

    private static func makeHistogram() -> Histogram<UInt64> {
        // 1 µs … 1 hour.
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    }

    /// Declares a stage so that it appears in reports (in declaration order) even before it runs.
    /// - Parameters:
    ///   - name: the stage's name.
    ///   - budgetMs: its budget, for the table.
    ///   - queue: a reader of its input queue's counters.
    public func register(stage name: String, budgetMs: Double? = nil, queue: (@Sendable () -> QueueStats)? = nil) {
        lock.withLock {
            if stages[name] == nil { order.append(name); stages[name] = StageData() }
            stages[name]!.budgetMs = budgetMs
            stages[name]!.queue = queue
        }
    }

    /// Declares a sink: its drops and queue appear in the table and in ``stageProfiles()``, but
    /// not among the report's `stages`.
    public func register(sink name: String, queue: (@Sendable () -> QueueStats)? = nil) {
        lock.withLock {
            if stages[name] == nil { order.append(name); stages[name] = StageData() }
            stages[name]!.queue = queue
            stages[name]!.isSink = true
        }
    }

    private func withStage(_ name: String, _ body: (inout StageData) -> Void) {
        lock.withLock {
            if stages[name] == nil { order.append(name); stages[name] = StageData() }
            body(&stages[name]!)
        }
    }

    /// Records one processed item of a stage.
    /// - Parameters:
    ///   - stage: the stage's name.
    ///   - ms: the stage's work on it (`process`, plus a producer's work for the first stage), in ms.
    ///   - waitMs: how long it waited before that work (input queue, executor turn), in ms.
    public func record(stage: String, ms: Double, waitMs: Double = 0) {
        withStage(stage) {
            $0.histogram.record(Self.micros(ms))
            $0.waits.record(Self.micros(waitMs))
            $0.count += 1
            $0.maxMs = max($0.maxMs, ms)
        }
    }

    /// Milliseconds as whole microseconds within the histograms' range.
    private static func micros(_ ms: Double) -> UInt64 {
        guard ms.isFinite, ms > 0 else { return 0 }
        return min(UInt64((ms * 1000).rounded()), 3_600_000_000)
    }

    /// Counts items dropped at a stage.
    public func recordDrop(stage: String, reason: DropReason, count: Int = 1) {
        guard count > 0 else { return }
        withStage(stage) { $0.drops[reason, default: 0] += count }
    }

    /// Counts one budget overrun of a stage.
    public func recordOverrun(stage: String) {
        withStage(stage) { $0.overruns += 1 }
    }

    /// Counts one item admitted into the graph.
    public func recordFrameIn() { lock.withLock { framesIn += 1 } }

    /// Records one answer (an item that reached the sink) and its end-to-end latency.
    public func recordAnswer(e2eMs: Double) {
        let us = Self.micros(e2eMs)
        lock.withLock {
            answers += 1
            e2e.record(us)
        }
    }

    /// Records what the sink learned about one answer event: fresh or reused, and, when the source has
    /// truth for this query at this frame, whether it was correct.
    public func recordOutcome(query: String, fresh isFresh: Bool, correct: Bool?) {
        lock.withLock {
            if isFresh { fresh += 1 }
            if let correct {
                let (c, n) = scored[query] ?? (0, 0)
                scored[query] = (c + (correct ? 1 : 0), n + 1)
            }
        }
    }

    private static func ms(_ h: Histogram<UInt64>, _ p: Double) -> Double {
        h.totalCount == 0 ? 0 : roundedMs(Double(h.valueAtPercentile(p)) / 1000)
    }

    /// Per-stage details (sinks included, flagged), in declaration order.
    public func stageProfiles() -> [StageProfile] {
        let snapshot: [(String, StageData)] = lock.withLock { order.map { ($0, stages[$0]!) } }
        return snapshot.map { name, d in
            StageProfile(name: name, count: d.count, p50Ms: Self.ms(d.histogram, 50), p95Ms: Self.ms(d.histogram, 95),
                         p99Ms: Self.ms(d.histogram, 99), maxMs: roundedMs(d.maxMs),
                         waitP50Ms: Self.ms(d.waits, 50), waitP95Ms: Self.ms(d.waits, 95), waitP99Ms: Self.ms(d.waits, 99),
                         drops: d.drops,
                         overruns: d.overruns, budgetMs: d.budgetMs, queue: d.queue?(), isSink: d.isSink)
        }
    }

    /// The `--profile-json` report.
    public func report() -> ProfileReport {
        let profiles = stageProfiles()
        let (h, frames, answered, freshCount, scores) = lock.withLock { (e2e, framesIn, answers, fresh, scored) }
        var summaries: [String: ProfileReport.StageSummary] = [:]
        for p in profiles where !p.isSink {
            summaries[p.name] = .init(count: p.count, p50Ms: p.p50Ms, p95Ms: p.p95Ms, p99Ms: p.p99Ms, maxMs: p.maxMs,
                                      waitP50Ms: p.waitP50Ms, waitP95Ms: p.waitP95Ms, waitP99Ms: p.waitP99Ms,
                                      drops: p.totalDrops, overruns: p.overruns)
        }
        return ProfileReport(stages: summaries,
                             e2e: .init(p50Ms: Self.ms(h, 50), p95Ms: Self.ms(h, 95), p99Ms: Self.ms(h, 99)),
                             framesIn: frames, answers: answered, freshAnswers: freshCount,
                             accuracy: scores.isEmpty ? nil : scores.mapValues { Double($0.0) / Double(max(1, $0.1)) })
    }

    /// A human-readable table of the profile, for stderr.
    public func renderTable() -> String {
        let profiles = stageProfiles()
        let r = report()
        let header = ["stage", "count", "p50 ms", "p95 ms", "p99 ms", "max ms", "wait p50", "wait p95", "wait p99",
                      "budget", "overruns", "drops", "queue"]
        var rows: [[String]] = [header]
        func f(_ x: Double) -> String { String(format: "%.2f", x) }
        for p in profiles {
            let drops = p.drops.isEmpty ? "0"
                : p.drops.sorted { $0.key < $1.key }.map { "\($0.key.rawValue):\($0.value)" }.joined(separator: " ")
            let queue = p.queue.map { "\($0.depth)/\($0.capacity) hw \($0.highWater) \($0.policy.rawValue)" } ?? "-"
            let waits = p.isSink ? ["", "", ""] : [f(p.waitP50Ms), f(p.waitP95Ms), f(p.waitP99Ms)]
            rows.append([p.isSink ? "(\(p.name))" : p.name, "\(p.count)", f(p.p50Ms), f(p.p95Ms), f(p.p99Ms), f(p.maxMs)]
                        + waits + [p.budgetMs.map { f($0) } ?? "-", "\(p.overruns)", drops, queue])
        }
        rows.append(["e2e", "\(r.answers)", f(r.e2e.p50Ms), f(r.e2e.p95Ms), f(r.e2e.p99Ms)] + Array(repeating: "", count: 8))
        var widths = [Int](repeating: 0, count: header.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = rows.map { row in
            row.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return i == 0 || i >= 11 ? cell + pad : pad + cell
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        out.append("frames_in \(r.framesIn), answers \(r.answers) (fresh \(r.freshAnswers)); "
                   + "p*: work per item, wait p*: time in the stage's queue and waiting for its executor, e2e: capture to answer")
        if let acc = r.accuracy {
            let counts = lock.withLock { scored }
            for q in acc.keys.sorted() {
                out.append(String(format: "accuracy %@: %.3f (%d of %d answer events match the truth)", q, acc[q]!,
                                  counts[q]?.0 ?? 0, counts[q]?.1 ?? 0))
            }
        }
        return out.joined(separator: "\n") + "\n"
    }
}
