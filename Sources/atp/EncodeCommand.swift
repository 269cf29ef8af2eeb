import ArgumentParser
import Foundation
import Tensor
import ModelIO
import Models
import Gate
import Media

/// What one image and an optional query give through a CLIP checkpoint.
struct CLIPAnalysis {
    let image: RGBImage
    let output: CLIPVisionOutput
    let clsAttention: [Float]
    let imageEmbedding: [Float]
    let textEmbedding: [Float]?
    let relevance: [Float]?
}

/// Loads the model and the image, encodes, and computes the gate's inputs.
func analyse(modelDir: String, imagePath: String, query: String?) throws -> (CLIPModel, CLIPAnalysis) {
    let folder = URL(fileURLWithPath: modelDir)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
        throw CLIError("--model \(modelDir): not a folder (expected an HF CLIP folder with config.json and model.safetensors)")
    }
    let model = try CLIPModel(folder: folder)
    let img = try ImageIO.read(URL(fileURLWithPath: imagePath))
    let pre = try model.processor.preprocess(rgb: img.pixels, width: img.width, height: img.height)
    let side = model.config.visionConfig.imageSize
    guard pre.height == side, pre.width == side else {
        throw CLIError("\(modelDir): the image processor yields \(pre.width)×\(pre.height) pixels but the vision tower takes \(side)×\(side)")
    }
    let out = model.vision.encode(pixels: pre.pixels)
    var text: [Float]? = nil
    var rel: [Float]? = nil
    if let query {
        let t = try model.textEmbedding(query)
        let pe = model.patchEmbeddings(out)
        rel = try cosineRelevance(patchEmbeddings: pe.data, count: pe.rows, dim: pe.cols, text: t)
        text = t
    }
    return (model, CLIPAnalysis(image: img, output: out, clsAttention: CLIPModel.clsAttention(out),
                                imageEmbedding: model.imageEmbedding(out), textEmbedding: text, relevance: rel))
}

struct EncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Encode an image (and a query) with a CLIP checkpoint; print the gate's inputs as JSON.")

    @Option(help: "HF CLIP folder (config.json, model.safetensors, tokenizer files, image processor config).")
    var model: String
    @Option(help: "Image file (PNG, JPEG, …).")
    var image: String
    @Option(help: "Query text; adds text_embedding and relevance.")
    var query: String?
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        let (_, a) = try analyse(modelDir: model, imagePath: image, query: query)
        var obj: [(String, JSON)] = [
            ("grid", .ints([a.output.grid.0, a.output.grid.1])),
            ("cls_attention", .floats(a.clsAttention)),
            ("image_embedding", .floats(a.imageEmbedding)),
        ]
        if let t = a.textEmbedding, let r = a.relevance {
            obj.append(("text_embedding", .floats(t)))
            obj.append(("relevance", .floats(r)))
        }
        if json {
            JSON.object(obj).printLine()
        } else {
            printErr("grid \(a.output.grid.0)×\(a.output.grid.1), \(a.clsAttention.count) patches, embedding width \(a.imageEmbedding.count) (use --json for the values)")
        }
    }
}
