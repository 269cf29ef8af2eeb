// Feeds the input as prompt text (a question posted to /queries or given to `atp ask` reaches the
// tokenizer as is) through the fixture tokenizers: byte-level BPE from tokenizer.json (GPT-2, Llama-3,
// Qwen2, a SentencePiece-style Llama), from vocab.json + merges.txt, from a GGUF vocabulary, and
// CLIP's; each encodes and decodes it. Fixtures are read from $ATP_FUZZ_FIXTURES (default
// Tests/Fixtures, relative to the working directory).
import Foundation
import ModelIO

private let tokenizers: (bpe: [BPETokenizer], clip: [CLIPTokenizer]) = withoutLeakChecks {
    let root = URL(fileURLWithPath: ProcessInfo.processInfo.environment["ATP_FUZZ_FIXTURES"] ?? "Tests/Fixtures")
    do {
        let bpe = try ["bpe/gpt2", "bpe/llama3", "bpe/qwen2", "bpe/llama-sp", "bpe/gpt2-files"].map {
            try BPETokenizer(folder: root.appendingPathComponent($0))
        } + [try BPETokenizer(ggufURL: root.appendingPathComponent("bpe/qwen2-vocab.gguf.bin"))]
        let clip = [try CLIPTokenizer(folder: root.appendingPathComponent("clip-tokenizer/reduced"))]
        return (bpe, clip)
    } catch {
        fatalError("tokenizer_encode: cannot load the fixture tokenizers under \(root.path) (run from the repository root or set ATP_FUZZ_FIXTURES): \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    for tokenizer in tokenizers.bpe {
        let ids = tokenizer.encode(text)
        _ = tokenizer.decode(ids, skipSpecialTokens: true)
        _ = tokenizer.decode(tokenizer.encode(text, addSpecialTokens: false), skipSpecialTokens: false)
    }
    for tokenizer in tokenizers.clip {
        let ids = tokenizer.encode(text)
        precondition(ids.count <= 77, "CLIP encoding longer than max_length")
        _ = tokenizer.decode(tokenizer.encode(text, maxLength: nil))
    }
    return 0
}
