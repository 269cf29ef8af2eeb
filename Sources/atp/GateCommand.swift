import ArgumentParser
import Foundation
import Gate
import Media
import Models

/// Gate options shared by `gate` and `ask`.
struct GateOptions: ParsableArguments {
    @Option(help: "Method: atp, atp-div, cls, text, random, uniform, full.")
    var method: String = "atp"
    @Option(help: "Keep K tokens (clamped to [1, N]).")
    var tokens: Int?
    @Option(help: "Keep a fraction r in (0, 1] of the tokens.")
    var keep: Double?
    @Option(help: "Keep the fewest tokens holding fraction m of the score mass.")
    var mass: Double?
    @Option(help: "Weight of text relevance in [0, 1].")
    var alpha: Double = 0.5
    @Option(parsing: .unconditional, help: "Sign of the relevance term: 1 or -1.")
    var sign: String = "1"
    @Option(help: "Score normalisation: minmax or zscore.")
    var norm: String = "minmax"
    @Option(help: "Seed of the random baseline.")
    var seed: UInt64 = 0

    func validate() throws {
        let given = [tokens != nil, keep != nil, mass != nil].filter { $0 }.count
        guard given <= 1 else { throw ValidationError("give at most one of --tokens, --keep, --mass") }
        guard GateMethod(rawValue: method) != nil else {
            throw ValidationError("--method \(method): unknown (use \(GateMethod.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard ScoreNormalization(rawValue: norm) != nil else { throw ValidationError("--norm \(norm): use minmax or zscore") }
        guard sign == "1" || sign == "-1" || sign == "+1" else { throw ValidationError("--sign \(sign): use 1 or -1") }
        guard (0...1).contains(alpha) else { throw ValidationError("--alpha \(alpha): must be in [0, 1]") }
    }

    /// The gate configuration these options describe (default budget: keep 0.25).
    func config() -> GateConfig {
        let budget: TokenBudget
        if let tokens { budget = .tokens(tokens) } else if let keep { budget = .keep(keep) }
        else if let mass { budget = .mass(mass) } else { budget = .keep(0.25) }
        return GateConfig(method: GateMethod(rawValue: method)!, alpha: alpha, sign: sign == "-1" ? -1 : 1,
                          norm: ScoreNormalization(rawValue: norm)!, budget: budget, seed: seed)
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
        let (model, a) = try analyse(modelDir: model, imagePath: image, query: query)
        let feats = a.output.patchFeatures
        let decision = try runGate(saliency: saliency(clsAttention: a.clsAttention), relevance: a.relevance, config: gate.config(),
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
