import ArgumentParser
import Foundation
import Gate
import Pipeline

/// One row of `atp bench gate` (DESIGN.md's keys).
struct GateBenchRow: Codable, Equatable {
    var model: String
    var dataset: String
    var method: String
    var alpha: Double
    var sign: Int
    var calibrated: Bool
    var precision: String
    var keep: Double
    var count: Int
    var accuracy: Double
    var prefill_gflops: Double
    var ms_per_answer: Double

    static let columns = ["model", "dataset", "method", "alpha", "sign", "calibrated", "precision", "keep", "count",
                          "accuracy", "prefill_gflops", "ms_per_answer"]

    var csv: String {
        [model, dataset, method, String(alpha), String(sign), String(calibrated), precision, String(keep), String(count),
         String(format: "%.6f", accuracy), String(format: "%.6f", prefill_gflops), String(format: "%.3f", ms_per_answer)]
            .joined(separator: ",")
    }

    /// The label of a line in the plot and the table: method, with α when it is not a baseline.
    var label: String {
        switch method {
        case "atp", "atp-div": return "\(method) α=\(alpha.formatted2)\(sign < 0 ? " s=-1" : "")\(calibrated ? " (calibrated)" : "")"
        case "text": return "text\(sign < 0 ? " s=-1" : "")"
        default: return method
        }
    }
}

struct GateBenchFile: Codable { var rows: [GateBenchRow] }

extension Double {
    var formatted2: String {
        let s = String(format: "%.2f", self)
        return s.hasSuffix("0") ? String(s.dropLast()) : s
    }
}

/// `atp bench gate`: accuracy, prefill GFLOPs and time per answer of every gate method at several budgets.
struct BenchGate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate",
        abstract: "Accuracy, prefill GFLOPs and ms per answer of every gate method at several budgets on a data folder.",
        discussion: """
        Methods: full; and at each --keeps budget random, uniform, cls, text (the calibrated sign), atp with the \
        calibrated alpha and sign, atp with alpha 0.25/0.5/0.75 (calibrated sign), atp-div with its calibrated \
        alpha and sign. Calibrated values are read from MODEL/gate_config.json (`atp calibrate`); each method's \
        best entry of its grid. Every image is encoded once for all methods. Table on stderr, JSON on stdout \
        (--json), --csv and --svg files; --merge adds rows of earlier runs (e.g. another model's).
        """)

    @Option(help: "HF LLaVA folder (with gate_config.json from `atp calibrate`).")
    var model: String?
    @Option(help: "HF CLIP folder for relevance (default: MODEL/clip).")
    var clip: String?
    @Option(help: "Data folder (images + qa.jsonl) whose dataset.json names it (synthetic-test, easy-vqa-test).")
    var data: String?
    @Option(help: "Comma-separated kept fractions.")
    var keeps: String = "0.1,0.25,0.4,0.6"
    @Option(help: "Score only the first N questions.")
    var limit: Int?
    @Option(help: "Seed of the random baseline.")
    var seed: UInt64 = 0
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate per answer.")
    var maxTokens: Int = 8
    @Option(help: "Rows of an earlier `atp bench gate --json` to include (repeatable).")
    var merge: [String] = []
    @Option(help: "Write the rows as CSV.")
    var csv: String?
    @Option(help: "Write accuracy against kept fraction as an SVG plot, one panel per data set.")
    var svg: String?
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    var keepList: [Double] { keeps.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard keepList.count == keeps.split(separator: ",").count, !keepList.isEmpty,
              keepList.allSatisfy({ $0 > 0 && $0 <= 1 }) else {
            throw ValidationError("--keeps \(keeps): use comma-separated fractions in (0, 1]")
        }
        guard (model == nil) == (data == nil) else { throw ValidationError("give --model and --data together") }
        guard model != nil || !merge.isEmpty else { throw ValidationError("give --model and --data, or --merge files") }
        if let limit { guard limit >= 1 else { throw ValidationError("--limit \(limit): must be ≥ 1") } }
    }

    func run() throws {
        try compute.apply()
        var rows: [GateBenchRow] = []
        for path in merge {
            do {
                rows += try JSONDecoder().decode(GateBenchFile.self, from: Data(contentsOf: URL(fileURLWithPath: path))).rows
            } catch {
                throw CLIError("--merge \(path): not the JSON of `atp bench gate --json` (\(error.localizedDescription))")
            }
        }
        if let model, let data { rows += try measure(model: model, data: data) }
        printTable(rows)
        if let csv {
            let text = ([GateBenchRow.columns.joined(separator: ",")] + rows.map(\.csv)).joined(separator: "\n") + "\n"
            try Data(text.utf8).write(to: URL(fileURLWithPath: csv), options: .atomic)
        }
        if let svg { try Data(gateBenchSVG(rows).utf8).write(to: URL(fileURLWithPath: svg), options: .atomic) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(GateBenchFile(rows: rows)), as: UTF8.self))
        }
    }

    /// The configurations of one model and their rows.
    func measure(model: String, data: String) throws -> [GateBenchRow] {
        let folder = URL(fileURLWithPath: model)
        let dataFolder: DataFolder
        do { dataFolder = try DataFolder(url: URL(fileURLWithPath: data)) } catch let e as DataFolderError {
            throw CLIError(e.description)
        }
        guard let cal = try GateCalibration.load(folder: folder) else {
            throw CLIError("--model \(model): no \(GateCalibration.fileName); run `atp calibrate --model \(model) --data VAL` first")
        }
        printErr("atp: note: gate: calibrated values from \(model)/\(GateCalibration.fileName): \(cal.summary)")
        let session = try loadSession(model: model, clip: clip, precision: compute.loadPrecision())
        func best(_ m: String) -> (alpha: Double, sign: Int)? {
            let g = cal.grid.filter { $0.method == m }
            guard var b = g.first else { return nil }
            for p in g where p.accuracy > b.accuracy { b = p }
            return (b.alpha, b.sign)
        }
        let atpCal = best("atp") ?? (cal.alpha, cal.sign)
        var configs: [(GateConfig, calibrated: Bool)] = [(GateConfig(method: .full, alpha: 0, sign: 1, budget: .all), false)]
        for k in keepList {
            func c(_ m: GateMethod, _ a: Double, _ s: Int) -> GateConfig {
                GateConfig(method: m, alpha: a, sign: s, budget: .keep(k), seed: seed)
            }
            configs += [(c(.random, 0, 1), false), (c(.uniform, 0, 1), false), (c(.cls, 0, 1), false),
                        (c(.text, 1, atpCal.sign), false), (c(.atp, atpCal.alpha, atpCal.sign), true)]
            for a in [0.25, 0.5, 0.75] { configs.append((c(.atp, a, atpCal.sign), false)) }
            if let d = best("atp-div") { configs.append((c(.atpDiv, d.alpha, d.sign), true)) }
        }
        let total = min(limit ?? dataFolder.items.count, dataFolder.items.count)
        printErr("bench gate: \(configs.count) configurations × \(total) questions of \(dataFolder.name)")
        let progress = Progress(label: "bench gate", total: total)
        let results: [EvalResult]
        do {
            results = try Evaluator.runGrid(session: session, data: dataFolder, configs: configs.map(\.0), limit: limit,
                                            maxTokens: maxTokens) { done, _, _ in progress.update(done) }
        } catch let e as DataFolderError {
            throw CLIError(e.description)
        }
        progress.finish()
        let name = folder.standardizedFileURL.lastPathComponent
        return zip(configs, results).map { cc, r in
            let (c, calibrated) = cc
            let keep: Double
            if case .keep(let f) = c.budget { keep = f } else { keep = 1 }
            let relevant = c.method == .atp || c.method == .atpDiv || c.method == .text
            return GateBenchRow(model: name, dataset: r.dataset, method: c.method.rawValue,
                                alpha: c.method == .text ? 1 : (relevant ? c.alpha : 0), sign: relevant ? c.sign : 1,
                                calibrated: calibrated, precision: session.precisionName, keep: keep, count: r.count, accuracy: r.accuracy,
                                prefill_gflops: r.prefillGFLOPs, ms_per_answer: r.msPerAnswer)
        }
    }

    func printTable(_ rows: [GateBenchRow]) {
        for ds in orderedUnique(rows.map { "\($0.model) on \($0.dataset)" }) {
            let sub = rows.filter { "\($0.model) on \($0.dataset)" == ds }
            let keeps = orderedUnique(sub.filter { $0.method != "full" }.map(\.keep)).sorted()
            printErr("\n\(ds) (\(sub.first?.count ?? 0) questions); accuracy [ms per answer]")
            printErr(String(format: "%-28@", "method") + keeps.map { String(format: "%16@", "keep \($0.formatted2)") }.joined())
            if let full = sub.first(where: { $0.method == "full" }) {
                printErr(String(format: "%-28@%16@", "full (every token)", String(format: "%.4f [%.1f]", full.accuracy, full.ms_per_answer)))
            }
            for label in orderedUnique(sub.filter { $0.method != "full" }.map(\.label)) {
                let cells = keeps.map { k -> String in
                    guard let r = sub.first(where: { $0.label == label && $0.keep == k }) else { return String(format: "%16@", "-") }
                    return String(format: "%16@", String(format: "%.4f [%.1f]", r.accuracy, r.ms_per_answer))
                }
                printErr(String(format: "%-28@", label) + cells.joined())
            }
        }
    }
}

func orderedUnique<T: Hashable>(_ xs: [T]) -> [T] {
    var seen = Set<T>()
    return xs.filter { seen.insert($0).inserted }
}

/// Accuracy against kept fraction, one panel per (model, data set), one line per method; `full` as a
/// dashed horizontal line.
func gateBenchSVG(_ rows: [GateBenchRow]) -> String {
    let panels = orderedUnique(rows.map { "\($0.model)|\($0.dataset)" })
    let pw = 430.0, ph = 330.0, ml = 58.0, mr = 16.0, mt = 40.0, mb = 52.0, legendW = 250.0
    let width = Double(panels.count) * pw + legendW, height = ph
    let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    let labels = orderedUnique(rows.filter { $0.method != "full" }.map(\.label))
    func colour(_ l: String) -> String { palette[(labels.firstIndex(of: l) ?? 0) % palette.count] }
    func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
    var s = """
    <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
    <rect width="100%" height="100%" fill="white"/>

    """
    let sub = rows.filter { $0.method != "full" }
    let lo = max(0, ((sub.map(\.accuracy) + rows.map(\.accuracy)).min() ?? 0) - 0.05)
    let yMin = (lo * 10).rounded(.down) / 10, yMax = 1.0
    for (pi, p) in panels.enumerated() {
        let x0 = Double(pi) * pw + ml, x1 = Double(pi + 1) * pw - mr, y0 = ph - mb, y1 = mt
        let pr = rows.filter { "\($0.model)|\($0.dataset)" == p }
        let parts = p.split(separator: "|").map(String.init)
        func X(_ k: Double) -> Double { x0 + (x1 - x0) * k }
        func Y(_ a: Double) -> Double { y0 - (y0 - y1) * (a - yMin) / (yMax - yMin) }
        s += "<text x=\"\((x0 + x1) / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">\(esc(parts[1])) (\(esc(parts[0])), \(pr.first?.count ?? 0) questions)</text>\n"
        s += "<rect x=\"\(x0)\" y=\"\(y1)\" width=\"\(x1 - x0)\" height=\"\(y0 - y1)\" fill=\"none\" stroke=\"#333\"/>\n"
        for t in stride(from: 0.0, through: 1.0001, by: 0.2) {
            s += "<line x1=\"\(X(t))\" y1=\"\(y0)\" x2=\"\(X(t))\" y2=\"\(y0 + 5)\" stroke=\"#333\"/><text x=\"\(X(t))\" y=\"\(y0 + 18)\" text-anchor=\"middle\">\(t.formatted2)</text>\n"
            s += "<line x1=\"\(X(t))\" y1=\"\(y0)\" x2=\"\(X(t))\" y2=\"\(y1)\" stroke=\"#eee\"/>\n"
        }
        for t in stride(from: yMin, through: yMax + 1e-9, by: 0.1) {
            s += "<line x1=\"\(x0 - 5)\" y1=\"\(Y(t))\" x2=\"\(x0)\" y2=\"\(Y(t))\" stroke=\"#333\"/><text x=\"\(x0 - 8)\" y=\"\(Y(t) + 4)\" text-anchor=\"end\">\(Int((t * 100).rounded()))%</text>\n"
            s += "<line x1=\"\(x0)\" y1=\"\(Y(t))\" x2=\"\(x1)\" y2=\"\(Y(t))\" stroke=\"#eee\"/>\n"
        }
        s += "<text x=\"\((x0 + x1) / 2)\" y=\"\(ph - 12)\" text-anchor=\"middle\">fraction of visual tokens kept</text>\n"
        s += "<text transform=\"translate(\(x0 - 44),\((y0 + y1) / 2)) rotate(-90)\" text-anchor=\"middle\">accuracy</text>\n"
        if let full = pr.first(where: { $0.method == "full" }) {
            s += "<line x1=\"\(X(0))\" y1=\"\(Y(full.accuracy))\" x2=\"\(X(1))\" y2=\"\(Y(full.accuracy))\" stroke=\"black\" stroke-dasharray=\"6,4\"/>\n"
            s += "<circle cx=\"\(X(1))\" cy=\"\(Y(full.accuracy))\" r=\"3.5\" fill=\"black\"/>\n"
        }
        for l in labels {
            let pts = pr.filter { $0.label == l }.sorted { $0.keep < $1.keep }
            guard !pts.isEmpty else { continue }
            let strong = l.hasPrefix("atp")
            s += "<polyline fill=\"none\" stroke=\"\(colour(l))\" stroke-width=\"\(strong ? 2.5 : 1.5)\"\(l.contains("calibrated") ? "" : strong ? " stroke-dasharray=\"2,2\"" : "") points=\"\(pts.map { "\(X($0.keep)),\(Y($0.accuracy))" }.joined(separator: " "))\"/>\n"
            for q in pts { s += "<circle cx=\"\(X(q.keep))\" cy=\"\(Y(q.accuracy))\" r=\"3\" fill=\"\(colour(l))\"/>\n" }
        }
    }
    let lx = Double(panels.count) * pw + 10
    s += "<text x=\"\(lx)\" y=\"\(mt + 4)\" font-weight=\"bold\">method</text>\n"
    s += "<line x1=\"\(lx)\" y1=\"\(mt + 20)\" x2=\"\(lx + 26)\" y2=\"\(mt + 20)\" stroke=\"black\" stroke-dasharray=\"6,4\"/><text x=\"\(lx + 32)\" y=\"\(mt + 24)\">full (every token)</text>\n"
    for (i, l) in labels.enumerated() {
        let y = mt + 40 + Double(i) * 20
        s += "<line x1=\"\(lx)\" y1=\"\(y)\" x2=\"\(lx + 26)\" y2=\"\(y)\" stroke=\"\(colour(l))\" stroke-width=\"2.5\"/><text x=\"\(lx + 32)\" y=\"\(y + 4)\">\(esc(l))</text>\n"
    }
    s += "</svg>\n"
    return s
}
