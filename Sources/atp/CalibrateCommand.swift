import ArgumentParser
import Foundation
import Gate
import Pipeline

/// `atp calibrate`: choose the gate's relevance sign and α on a validation split and write them as
/// the model's `gate_config.json`.
struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Choose the gate's relevance sign and alpha on a validation split; write MODEL/gate_config.json.",
        discussion: """
        Tries every alpha in {0, 0.25, 0.5, 0.75, 1} with sign +1 and -1 (alpha 0 once: without relevance the \
        sign does not matter) for each method of --methods, at --keep, scores each with `atp eval`'s rule, and \
        keeps the most accurate (ties: the earlier method, sign +1, the smaller alpha). Give it a validation \
        split, never the test split you report.
        """)

    @Option(help: "HF LLaVA folder (gate_config.json is written into it).")
    var model: String
    @Option(help: "HF CLIP folder for relevance (default: MODEL/clip when present).")
    var clip: String?
    @Option(help: "Validation data folder (images + qa.jsonl).")
    var data: String
    @Option(help: "Fraction of visual tokens kept while calibrating.")
    var keep: Double = 0.25
    @Option(help: "Comma-separated methods to calibrate: atp, atp-div.")
    var methods: String = "atp,atp-div"
    @Option(help: "Score only the first N questions.")
    var limit: Int?
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate per answer.")
    var maxTokens: Int = 8
    @Flag(help: "Print the written configuration as one JSON object on stdout.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard keep > 0, keep <= 1 else { throw ValidationError("--keep \(keep): must be in (0, 1]") }
        for m in methodList where !(m == .atp || m == .atpDiv) {
            throw ValidationError("--methods: '\(m.rawValue)' has no sign or alpha to calibrate (use atp, atp-div)")
        }
        guard !methodList.isEmpty, methodList.count == methods.split(separator: ",").count else {
            throw ValidationError("--methods \(methods): use a comma-separated list of atp, atp-div")
        }
        if let limit { guard limit >= 1 else { throw ValidationError("--limit \(limit): must be ≥ 1") } }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens \(maxTokens): must be ≥ 1") }
    }

    var methodList: [GateMethod] { methods.split(separator: ",").compactMap { GateMethod(rawValue: String($0)) } }

    func run() throws {
        try compute.apply()
        let dataFolder: DataFolder
        do { dataFolder = try DataFolder(url: URL(fileURLWithPath: data)) } catch let e as DataFolderError {
            throw CLIError(e.description)
        }
        if dataFolder.name.hasSuffix("-test") {
            printErr("atp: warning: --data \(data) is named '\(dataFolder.name)': calibrate on a validation split, not on the split you report")
        }
        let session = try loadSession(model: model, clip: clip, precision: compute.loadPrecision())
        guard session.hasRelevance else {
            throw CLIError("--model \(model): the gate has no relevance signal (no CLIP text tower), so there is no sign or alpha to calibrate")
        }
        let configs = Calibrator.grid(methods: methodList, keep: keep)
        let total = min(limit ?? dataFolder.items.count, dataFolder.items.count)
        printErr("calibrate: \(configs.count) configurations × \(total) questions of \(dataFolder.name) at keep \(keep)")
        let progress = Progress(label: "calibrate", total: total)
        let results: [EvalResult]
        do {
            results = try Evaluator.runGrid(session: session, data: dataFolder, configs: configs, limit: limit,
                                            maxTokens: maxTokens) { done, _, correct in
                progress.update(done, extra: String(format: "best so far %.3f", Double(correct.max() ?? 0) / Double(done)))
            }
        } catch let e as DataFolderError {
            throw CLIError(e.description)
        }
        progress.finish()
        let scored = zip(configs, results).map { (config: $0, accuracy: $1.accuracy) }
        let best = Calibrator.choose(scored)!
        printErr(String(format: "%-8@ %5@ %6@ %9@", "method", "sign", "alpha", "accuracy"))
        for (i, (c, r)) in zip(configs, results).enumerated() {
            printErr(String(format: "%-8@ %5@ %6.2f %9.4f%@", c.method.rawValue, c.sign > 0 ? "+1" : "-1", c.alpha, r.accuracy,
                            i == best ? "  <- chosen" : ""))
        }
        let chosen = configs[best]
        let calibration = GateCalibration(
            method: chosen.method.rawValue, alpha: chosen.alpha, sign: chosen.sign, norm: chosen.norm.rawValue, keep: keep,
            chosenOn: data, dataset: dataFolder.name,
            grid: zip(configs, results).map {
                .init(method: $0.method.rawValue, alpha: $0.alpha, sign: $0.sign, accuracy: $1.accuracy, count: $1.count)
            })
        try calibration.write(folder: URL(fileURLWithPath: model))
        printErr("calibrate: wrote \(model)/\(GateCalibration.fileName): \(calibration.summary)")
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(calibration), as: UTF8.self))
        }
    }
}
