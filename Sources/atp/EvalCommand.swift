import ArgumentParser
import Foundation
import Tensor
import Gate
import Pipeline

/// `atp eval`: accuracy of a LLaVA folder on a data folder through the gate.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a VLM on a data folder (images + qa.jsonl) through the gate: accuracy by question type, time per answer.")

    @Option(help: "HF LLaVA folder.")
    var model: String
    @Option(help: "HF CLIP folder for the gate's relevance (default: MODEL/clip when present).")
    var clip: String?
    @Option(help: "Data folder: images and qa.jsonl.")
    var data: String
    @OptionGroup var gate: GateOptions
    @Option(help: "Score only the first N questions.")
    var limit: Int?
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate per answer.")
    var maxTokens: Int = 8
    @Option(help: "Also write each question's answer as JSON Lines to this file: image, question, answer (expected), type, generated, correct.")
    var predictions: String?
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @Option(help: "How images reach the model's resize size: pil (the image processor's exact resize, the default) or swscale (the video frames' fast path, to measure what it costs).")
    var scaler: FrameScaling = .pil
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens \(maxTokens): must be ≥ 1") }
        if let limit { guard limit >= 1 else { throw ValidationError("--limit \(limit): must be ≥ 1") } }
    }

    func run() throws {
        try compute.apply()
        let dataFolder: DataFolder
        do { dataFolder = try DataFolder(url: URL(fileURLWithPath: data)) } catch let e as DataFolderError {
            throw CLIError(e.description)
        }
        let precision = compute.loadPrecision()
        let session = try loadSession(model: model, clip: clip, precision: precision)
        let config = try gate.config(model: model)
        let total = min(limit ?? dataFolder.items.count, dataFolder.items.count)
        let progress = Progress(label: "eval", total: total)
        let result: EvalResult
        do {
            result = try Evaluator.run(session: session, data: dataFolder, config: config, limit: limit, maxTokens: maxTokens,
                                    scaler: scaler) {
                done, _, correct in progress.update(done, extra: String(format: "accuracy %.3f", Double(correct) / Double(done)))
            }
        } catch let e as DataFolderError {
            throw CLIError(e.description)
        }
        progress.finish()
        let keep: JSON
        switch config.budget {
        case .keep(let r): keep = .double(r)
        case .tokens(let k): keep = .double(Double(min(max(k, 1), result.visualTokens)) / Double(result.visualTokens))
        default: keep = .double(result.meanKept / Double(result.visualTokens))
        }
        let types = result.byType.keys.sorted()
        let out = JSON.object([
            ("dataset", .string(result.dataset)), ("count", .int(result.count)), ("accuracy", .double(result.accuracy)),
            ("by_type", .object(types.map { ($0, .double(Double(result.byType[$0]!.correct) / Double(result.byType[$0]!.count))) })),
            ("method", .string(config.method.rawValue)), ("alpha", .double(session.hasRelevance ? config.alpha : 0)),
            ("sign", .int(config.sign)), ("keep", keep), ("mean_kept", .double(result.meanKept)),
            ("visual_tokens", .int(result.visualTokens)), ("precision", .string(session.precisionName)),
            ("ms_per_answer", .double(result.msPerAnswer)), ("scaler", .string(scaler.rawValue)),
        ])
        printErr(String(format: "eval: %@: %d questions, accuracy %.4f, %.1f ms per answer, mean kept %.1f of %d",
                        result.dataset, result.count, result.accuracy, result.msPerAnswer, result.meanKept, result.visualTokens))
        for t in types {
            let (c, n) = result.byType[t]!
            printErr(String(format: "  %-12@ %5d  %.4f", t, n, Double(c) / Double(n)))
        }
        if let predictions {
            var lines: [String] = []
            for (item, text) in zip(dataFolder.items, result.answers) {
                lines.append(JSON.object([("image", .string(item.image)), ("question", .string(item.question)),
                                          ("answer", .string(item.answer)), ("type", .string(item.type)),
                                          ("generated", .string(text)),
                                          ("correct", .bool(AnswerScoring.isCorrect(text, expected: item.answer)))]).text)
            }
            try writeAtomically(Data((lines.joined(separator: "\n") + "\n").utf8), to: URL(fileURLWithPath: predictions))
        }
        if json { out.printLine() }
    }
}

/// Loads a LLaVA folder with its CLIP (`--clip`, else `MODEL/clip` when present); notes go to stderr.
func loadSession(model: String, clip: String?, precision: Precision) throws -> VLMSession {
    let folder = URL(fileURLWithPath: model)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
        throw CLIError("--model \(model): not a folder (expected an HF LLaVA folder)")
    }
    let session = try VLMSession(vlmFolder: folder, clipFolder: clip.map { URL(fileURLWithPath: $0) }, precision: precision)
    for note in session.notes { printErr("atp: note: \(note)") }
    return session
}
