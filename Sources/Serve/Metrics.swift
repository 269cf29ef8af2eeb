// `GET /metrics`: the profiler's counters and latency percentiles in the Prometheus text format,
// through a swift-prometheus `PrometheusCollectorRegistry` refreshed from the profiler at each scrape.
import Foundation
import Pipeline
import Prometheus

/// Renders a ``Profiler`` (and the SSE hub's counters) as Prometheus text.
///
/// Metric names and labels (all latencies in milliseconds):
/// - `atp_stage_latency_ms{stage, quantile="0.5"|"0.95"|"0.99"}` gauge: per-stage processing latency percentiles.
/// - `atp_stage_items_total{stage}` counter: items processed by the stage.
/// - `atp_stage_drops_total{stage, reason}` counter: items dropped at the stage, one series per reason
///   (`drop-oldest`, `drop-newest`, `latest`, `skip`, `closed`, `error`).
/// - `atp_stage_overruns_total{stage}` counter: items that overran the stage's latency budget.
/// - `atp_queue_depth{stage}` gauge: items waiting in the stage's input queue now.
/// - `atp_frames_in_total` counter: frames admitted into the graph.
/// - `atp_answers_total` counter: items that reached the sink (answer events).
/// - `atp_e2e_latency_ms{quantile="0.5"|"0.95"|"0.99"}` gauge: end-to-end latency percentiles.
/// - `atp_sse_clients` gauge, `atp_sse_events_total` counter, `atp_sse_dropped_clients_total` counter: the `/events` stream.
///
/// `stage` takes the profiler's stage names (`video_decode`, `encode`, `gate`, `prefill`, `llm_decode`); the answer
/// sink appears as `stage="sink"` in `atp_stage_drops_total` and `atp_queue_depth` only. Counters mirror the profiler's running totals: each scrape adds the increase
/// since the previous one, so they only go up.
public final class MetricsExporter: @unchecked Sendable {
    /// The quantiles exported for latencies.
    public static let quantiles: [(label: String, pick: @Sendable (StageProfile) -> Double)] = [
        ("0.5", { $0.p50Ms }), ("0.95", { $0.p95Ms }), ("0.99", { $0.p99Ms }),
    ]

    /// The registry the metrics live in.
    public let registry = PrometheusCollectorRegistry()
    private let lock = NSLock()
    private var last: [String: Int] = [:]

    /// Creates an exporter with an empty registry.
    public init() {}

    private func descriptor(_ name: String, unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "atp", metricName: name, unitName: unit, helpText: help)
    }

    /// Raises a counter to `total` (a running total kept elsewhere); never lowers it.
    private func advance(_ counter: Counter, key: String, to total: Int) {
        let delta = total - (last[key] ?? 0)
        if delta > 0 { counter.increment(by: Int64(delta)) }
        last[key] = max(total, last[key] ?? 0)
    }

    /// Refreshes the registry from the profiler and the hub and returns the Prometheus text exposition.
    /// - Parameters:
    ///   - profiler: the running pipeline's profiler.
    ///   - hub: the SSE hub, if any.
    /// - Returns: the text for `GET /metrics` (content type `text/plain; version=0.0.4`).
    /// - Complexity: O(stages × drop reasons).
    public func render(profiler: Profiler, hub: EventHub?) -> String {
        lock.withLock {
            let latency = descriptor("stage_latency", unit: "ms", "Per-stage processing latency percentiles in milliseconds.")
            let items = descriptor("stage_items", unit: "total", "Items processed by the stage.")
            let drops = descriptor("stage_drops", unit: "total", "Items dropped at the stage, by reason.")
            let overruns = descriptor("stage_overruns", unit: "total", "Items that overran the stage's latency budget.")
            let depth = MetricNameDescriptor(namespace: "atp", metricName: "queue_depth", unitName: "", helpText: "Items waiting in the stage's input queue.")
            for p in profiler.stageProfiles() {
                let stage = [("stage", p.name)]
                if !p.isSink {
                    for (q, pick) in Self.quantiles {
                        registry.makeGauge(descriptor: latency, labels: stage + [("quantile", q)]).set(pick(p))
                    }
                    advance(registry.makeCounter(descriptor: items, labels: stage), key: "items|\(p.name)", to: p.count)
                    advance(registry.makeCounter(descriptor: overruns, labels: stage), key: "overruns|\(p.name)", to: p.overruns)
                }
                for reason in DropReason.allCases {
                    advance(registry.makeCounter(descriptor: drops, labels: stage + [("reason", reason.rawValue)]),
                            key: "drops|\(p.name)|\(reason.rawValue)", to: p.drops[reason] ?? 0)
                }
                registry.makeGauge(descriptor: depth, labels: stage).set(Double(p.queue?.depth ?? 0))
            }
            let report = profiler.report()
            advance(registry.makeCounter(descriptor: descriptor("frames_in", unit: "total", "Frames admitted into the pipeline graph.")),
                    key: "frames_in", to: report.framesIn)
            advance(registry.makeCounter(descriptor: descriptor("answers", unit: "total", "Items that reached the sink (answer events).")),
                    key: "answers", to: report.answers)
            let e2e = descriptor("e2e_latency", unit: "ms", "End-to-end latency percentiles in milliseconds (admission to sink).")
            for (q, v) in [("0.5", report.e2e.p50Ms), ("0.95", report.e2e.p95Ms), ("0.99", report.e2e.p99Ms)] {
                registry.makeGauge(descriptor: e2e, labels: [("quantile", q)]).set(v)
            }
            if let s = hub?.currentStats {
                registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "atp", subsystem: "sse", metricName: "clients", unitName: "",
                                                                    helpText: "Clients connected to /events.")).set(Double(s.clients))
                advance(registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "atp", subsystem: "sse", metricName: "events", unitName: "total",
                                                                              helpText: "Events published to /events.")),
                        key: "sse_events", to: s.published)
                advance(registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "atp", subsystem: "sse", metricName: "dropped_clients", unitName: "total",
                                                                              helpText: "Clients of /events dropped for falling behind.")),
                        key: "sse_dropped", to: s.droppedClients)
            }
            return registry.emitToString()
        }
    }
}
