import ArgumentParser
import Foundation
import Tensor
import ModelIO
import Models

/// A language model and its tokenizer, from a GGUF file or an HF folder.
struct LoadedLM {
    let model: LlamaModel
    let tokenizer: any TextTokenizer

    init(path: String, precision: Precision) throws {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw CLIError("--model \(path): no such file or folder")
        }
        if isDir.boolValue {
            let kind = try ModelRegistry.kind(folder: url)
            guard kind == .llama || kind == .qwen2 else {
                throw CLIError("--model \(path): model_type '\(kind.rawValue)' is not a language model (use atp ask for llava)")
            }
            model = try LlamaModel(folder: url, precision: precision)
            tokenizer = try BPETokenizer(folder: url)
        } else {
            let file = try GGUFFile(url: url)
            model = try LlamaModel(gguf: url, precision: precision)
            tokenizer = try BPETokenizer(gguf: file)
        }
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text with a Llama-family model (GGUF file or HF folder).")

    @Option(help: "A .gguf file or an HF folder (config.json + safetensors + tokenizer files).")
    var model: String
    @Option(help: "A user message, wrapped in the model's chat template (with its default system prompt).")
    var chat: String?
    @Option(help: "Raw prompt text (BOS added as the tokenizer says).")
    var prompt: String?
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.")
    var maxTokens: Int = 64
    @Option(help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass.")
    var topP: Float = 1
    @Option(help: "Sampling seed.")
    var seed: UInt64 = 0
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard (chat == nil) != (prompt == nil) else { throw ValidationError("give exactly one of --chat or --prompt") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens \(maxTokens): must be ≥ 1") }
        guard temperature >= 0 else { throw ValidationError("--temperature \(temperature): must be ≥ 0") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p \(topP): must be in (0, 1]") }
    }

    func run() throws {
        try compute.apply()
        let lm = try LoadedLM(path: model, precision: compute.loadPrecision())
        let promptIds: [Int]
        if let chat {
            guard let template = lm.tokenizer.chatTemplate else {
                throw CLIError("--model \(model): the model has no chat template; use --prompt")
            }
            let text = try template.render(messages: [ChatMessage(role: "user", content: chat)], addGenerationPrompt: true)
            promptIds = lm.tokenizer.encode(text, addSpecialTokens: false)
        } else {
            promptIds = lm.tokenizer.encode(prompt!, addSpecialTokens: true)
        }
        guard !promptIds.isEmpty else { throw CLIError("--prompt: empty after tokenisation") }
        var cache = lm.model.makeCache(capacity: promptIds.count + maxTokens + 1)
        let options = GenerationOptions(maxTokens: maxTokens, stopIds: Set(lm.tokenizer.stopTokenIds),
                                        temperature: temperature, topP: topP, seed: seed)
        let result = try lm.model.generate(prompt: promptIds, cache: &cache, options: options)
        let text = lm.tokenizer.decode(result.ids, skipSpecialTokens: true)
        if json {
            JSON.object([("prompt_ids", .ints(promptIds)), ("ids", .ints(result.ids)), ("text", .string(text))]).printLine()
        } else {
            print(text)
        }
        printErr(String(format: "prefill %d tokens %.1f ms (%.1f tok/s), decode %d tokens %.1f ms (%.1f tok/s)",
                        result.timings.promptTokens, result.timings.prefillMs, result.timings.prefillTokensPerSecond,
                        result.timings.generatedTokens, result.timings.decodeMs, result.timings.decodeTokensPerSecond))
    }
}
