import ArgumentParser
import Foundation
import Gate
import Pipeline
import Tensor

/// `atp bench ask`: the time to answer one question about one image with every visual token, against
/// the same answer from the tokens the ATP gate keeps; each stage timed, median of the repeats.
struct BenchAsk: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask",
        abstract: "Time answering a question with all visual tokens against a pruned set (keep 0.25 by default).")

    @OptionGroup var input: VLMInputOptions
    @Option(help: "The question.")
    var query: String = "Is there a person in the aisle?"
    @Option(help: "Gate method of the pruned run: atp, cls, text, random, uniform.")
    var method: String = "atp"
    @Option(help: "Fraction of the visual tokens the pruned run keeps, in (0, 1).")
    var keep: Double = 0.25
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate per answer.")
    var maxTokens: Int = 8
    @Option(help: "Timed repetitions of each run (median is reported), after one warm-up.")
    var repeats: Int = 3
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard keep > 0 && keep < 1 else { throw ValidationError("--keep \(keep): must be in (0, 1)") }
        guard let m = GateMethod(rawValue: method), m != .full else {
            throw ValidationError("--method \(method): use one of atp, cls, text, random, uniform")
        }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens \(maxTokens): must be ≥ 1") }
        guard repeats >= 1 else { throw ValidationError("--repeats \(repeats): must be ≥ 1") }
    }

    /// One configuration's medians.
    struct Row {
        var method: String, keep: Double, visualTokens = 0, keptTokens = 0, promptTokens = 0, generated = 0
        var relevanceMs: Double?
        var encodeMs = 0.0, gateMs = 0.0, prefillMs = 0.0, decodeMs = 0.0, totalMs = 0.0
        var relevanceSortKey: Double { relevanceMs ?? 0 }
    }

    func run() throws {
        try compute.apply()
        printErr("loading \(input.model)…")
        let (session, pixels) = try input.load(precision: compute.loadPrecision())

        let full = GateConfig(method: .full, budget: .keep(1))
        let pruned = GateConfig(method: GateMethod(rawValue: method)!, budget: .keep(keep))
        var rows: [Row] = []
        for (name, cfg) in [("full", full), (method, pruned)] {
            printErr("timing \(name) (\(repeats) runs after a warm-up)…")
            var samples: [Row] = []
            for i in 0...repeats {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let encoded = try session.encode(pixels: pixels)
                let (_, kept, gateMs) = try session.gate(encoded, query: query, config: cfg)
                let answer = try session.answer(encoded, keptTokens: kept, query: query, maxTokens: maxTokens)
                let total = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                if i == 0 { continue }   // warm-up: caches of the prompt prefix and the query embedding
                samples.append(Row(method: name, keep: name == "full" ? 1 : keep,
                                   visualTokens: encoded.encoding.features.rows, keptTokens: kept.count,
                                   promptTokens: answer.promptIds.count, generated: answer.ids.count,
                                   relevanceMs: encoded.relevanceEncodeMs, encodeMs: encoded.encodeMs,
                                   gateMs: gateMs, prefillMs: answer.timings.prefillMs,
                                   decodeMs: answer.timings.decodeMs, totalMs: total))
            }
            func median(_ key: KeyPath<Row, Double>) -> Double {
                let v = samples.map { $0[keyPath: key] }.sorted()
                return v[v.count / 2]
            }
            var r = samples[0]
            r.encodeMs = median(\.encodeMs); r.gateMs = median(\.gateMs)
            if r.relevanceMs != nil { r.relevanceMs = median(\.relevanceSortKey) }
            r.prefillMs = median(\.prefillMs); r.decodeMs = median(\.decodeMs); r.totalMs = median(\.totalMs)
            rows.append(r)
        }
        let (f, p) = (rows[0], rows[1])
        let result = JSON.object([
            ("rows", .array(rows.map { r in
                .object([("method", .string(r.method)), ("keep", .double(r.keep)),
                         ("visual_tokens", .int(r.visualTokens)), ("kept_tokens", .int(r.keptTokens)),
                         ("prompt_tokens", .int(r.promptTokens)), ("generated", .int(r.generated)),
                         ("timings_ms", .object([("encode", .double(r.encodeMs))]
                                                + (r.relevanceMs.map { [("relevance_encode", JSON.double($0))] } ?? [])
                                                + [("gate", .double(r.gateMs)), ("prefill", .double(r.prefillMs)),
                                                 ("llm_decode", .double(r.decodeMs)), ("total", .double(r.totalMs))]))])
            })),
            ("prefill_speedup", .double(f.prefillMs / p.prefillMs)),
            ("answer_speedup", .double(f.totalMs / p.totalMs)),
            ("threads", .int(Parallel.threads)),
        ])
        if json { result.printLine() } else {
            for r in rows {
                printErr(String(format: "%@ keep %.2f: %d of %d visual tokens, prompt %d, generated %d; encode %.0f, gate %.1f, prefill %.0f, decode %.0f, total %.0f ms",
                                r.method, r.keep, r.keptTokens, r.visualTokens, r.promptTokens, r.generated,
                                r.encodeMs + (r.relevanceMs ?? 0), r.gateMs, r.prefillMs, r.decodeMs, r.totalMs))
            }
            printErr(String(format: "prefill %.2f× faster, answer %.2f× faster with keep %.2f", f.prefillMs / p.prefillMs, f.totalMs / p.totalMs, keep))
        }
    }
}
