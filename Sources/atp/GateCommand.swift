import ArgumentParser
import Foundation
import Gate
import Media
import Models
import Pipeline

/// Gate options shared by `gate` and `ask`.
struct GateOptions: ParsableArguments {
    @Option(help: "Method: atp, atp-div, cls, text, random, uniform, full (default: the model's gate_config.json, else atp).")
    var method: String?
    @Option(help: "Keep K tokens (clamped to [1, N]).")
    var tokens: Int?
    @Option(help: "Keep a fraction r in (0, 1] of the tokens (default: gate_config.json's, else 0.25).")
    var keep: Double?
    @Option(help: "Keep the fewest tokens holding fraction m of the score mass.")
    var mass: Double?
    @Option(help: "Weight of text relevance in [0, 1] (default: gate_config.json's, else 0.5).")
    var alpha: Double?
    @Option(parsing: .unconditional, help: "Sign of the relevance term: 1 or -1 (default: gate_config.json's, else 1).")
    var sign: String?
    @Option(help: "Score normalisation: minmax or zscore (default: gate_config.json's, else minmax).")
    var norm: String?
    @Option(help: "Seed of the random baseline.")
    var seed: UInt64 = 0

    func validate() throws {
        if let sign, !(sign == "1" || sign == "-1" || sign == "+1") { throw ValidationError("--sign \(sign): use 1 or -1") }
        // The gate's one set of rules (GateSpec.issue), as for YAML and HTTP.
        if let (key, message) = spec.issue { throw ValidationError("--\(key): \(message)") }
    }

    /// The flags that were given, as a gate block (nil fields: not given).
    var spec: GateSpec {
        GateSpec(method: method, alpha: alpha, keep: keep, tokens: tokens, mass: mass,
                 sign: sign.map { $0 == "-1" ? -1 : 1 }, norm: norm)
    }

    /// The gate configuration these flags describe on top of the model's `gate_config.json` (said
    /// once on stderr when one is used); without one, the built-in defaults (atp, α 0.5, sign +1, keep 0.25).
    func config(model: String) throws -> GateConfig {
        let resolved = try GateCalibration.resolve(folder: URL(fileURLWithPath: model), overrides: spec) { printErr("atp: note: \($0)") }
        var c = try gateConfig(resolved)
        c.seed = seed
        return c
    }
}

struct GateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate",
        abstract: "Score an image's patches for a query and print the kept indices.")

    @Option(help: "HF CLIP folder.")
    var model: String
    @Option(help: "Image file.")
    var image: String
    @Option(help: "Query text.")
    var query: String
    @OptionGroup var gate: GateOptions
    @Option(help: "Write the image with pruned patches dimmed and kept ones outlined (PNG).")
    var overlay: String?
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        let config = try gate.config(model: model)
        let (model, a) = try analyse(modelDir: model, imagePath: image, query: query)
        let feats = a.output.patchFeatures
        let decision = try runGate(saliency: saliency(clsAttention: a.clsAttention), relevance: a.relevance, config: config,
                                   features: feats.values, featureDim: feats.dim)
        if let overlay {
            let geometry = try PatchGeometry(processor: model.processor, imageWidth: a.image.width, imageHeight: a.image.height,
                                             grid: a.output.grid)
            let picture = drawOverlay(a.image, geometry: geometry, kept: decision.kept)
            try ImageIO.writePNG(picture, to: URL(fileURLWithPath: overlay))
        }
        if json {
            JSON.object([("kept", .ints(decision.kept)), ("scores", .floats(decision.scores)),
                         ("method", .string(decision.method.rawValue))]).printLine()
        } else {
            printErr("kept \(decision.kept.count) of \(decision.scores.count) patches (\(decision.method.rawValue)): \(decision.kept)")
        }
    }
}
