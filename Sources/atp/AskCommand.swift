import ArgumentParser
import Foundation
import Gate
import Media
import Models
import Pipeline
import Tensor

struct AskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask",
        abstract: "Answer a question about an image with a LLaVA checkpoint, through the ATP gate.")

    @OptionGroup var input: VLMInputOptions
    @Option(help: "The question.")
    var query: String
    @OptionGroup var gate: GateOptions
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.")
    var maxTokens: Int = 32
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens \(maxTokens): must be ≥ 1") }
    }

    func run() throws {
        try compute.apply()
        let (session, pixels) = try input.load(precision: compute.loadPrecision())
        let encoded = try session.encode(pixels: pixels)
        let (decision, keptTokens, gateMs) = try session.gate(encoded, query: query, config: gate.config(model: input.model))
        let answer = try session.answer(encoded, keptTokens: keptTokens, query: query, maxTokens: maxTokens)
        var timings: [(String, JSON)] = [("encode", .double(encoded.encodeMs))]
        if let r = encoded.relevanceEncodeMs { timings.append(("relevance_encode", .double(r))) }
        timings += [("gate", .double(gateMs)), ("prefill", .double(answer.timings.prefillMs)),
                    ("llm_decode", .double(answer.timings.decodeMs))]
        let out = JSON.object([
            ("answer", .string(answer.text)), ("ids", .ints(answer.ids)), ("kept", .ints(decision.kept)),
            ("visual_tokens", .int(encoded.encoding.features.rows)),
            ("p_yes", answer.pYes.map { .float($0) } ?? .null),
            ("timings_ms", .object(timings)),
        ])
        if json { out.printLine() } else {
            print(answer.text)
            printErr("kept \(keptTokens.count) of \(encoded.encoding.features.rows) visual tokens; \(timings.map { "\($0.0) \(($0.1.text))" }.joined(separator: ", ")) ms")
        }
    }
}

/// The inputs `atp ask` and `atp bench ask` share: a LLaVA folder, an optional CLIP folder, an image.
struct VLMInputOptions: ParsableArguments {
    @Option(help: "HF LLaVA folder.")
    var model: String
    @Option(help: "HF CLIP folder whose text tower (and projections) give the gate's relevance (default: MODEL/clip when present; without one the gate uses saliency only).")
    var clip: String?
    @Option(help: "Image file.")
    var image: String

    /// Loads the session (its notes go to stderr) and the image, preprocessed for the vision tower.
    func load(precision: Precision) throws -> (VLMSession, [Float]) {
        let session = try loadSession(model: model, clip: clip, precision: precision)
        let img = try ImageIO.read(URL(fileURLWithPath: image))
        return (session, try session.preprocess(rgb: img.pixels, width: img.width, height: img.height))
    }
}
