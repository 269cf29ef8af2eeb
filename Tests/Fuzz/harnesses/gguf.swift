// Feeds the input as a `.gguf` file: header, metadata key/values (nested arrays), tensor infos and
// the aligned data section through `GGUFFile`; then every tensor through dequantisation (all of
// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K, and the refusal of the others), whole and by
// rows; the typed metadata getters; `LlamaConfig(gguf:)`; and the embedded tokenizer
// (`BPETokenizer(gguf:)`) with an encode/decode round.
import Foundation
import ModelIO

private let sampleText = "Hello world! It's 2024: naïve café, 你好, 🙂\n\t  <|im_start|>user 12345 <|endoftext|>"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let url = FuzzScratch.write(UnsafeBufferPointer(start: data, count: size), "model.gguf")
    let gguf: GGUFFile
    do { gguf = try GGUFFile(url: url) } catch { consume(error); return 0 }

    _ = gguf.f32Footprint()
    for info in gguf.tensors {
        precondition(gguf.tensorInfo(named: info.name) != nil)
        do {
            let values = try gguf.tensorData(named: info.name)
            precondition(values.count == info.elementCount, "tensor '\(info.name)': \(values.count) values for \(info.elementCount) elements")
        } catch { consume(error) }
        if info.rowCount > 0 {
            _ = try? gguf.tensorRows(named: info.name, (info.rowCount - 1)..<info.rowCount)
        }
        do { _ = try gguf.tensorRows(named: info.name, 0..<(info.rowCount + 1)) } catch { consume(error) }
        _ = try? gguf.withTensorBytes(named: info.name) { bytes in bytes.reduce(0) { $0 &+ Int($1) } }
    }
    do { _ = try gguf.tensorData(named: "\u{0}no such tensor") } catch { consume(error) }

    for key in gguf.metadataKeys {
        guard let value = gguf.metadata[key] else { preconditionFailure("metadata key '\(key)' listed but absent") }
        _ = value.typeName
        _ = value.doubleValue
        _ = try? gguf.string(key)
        _ = try? gguf.int(key)
        _ = try? gguf.float(key)
        _ = try? gguf.bool(key)
        _ = try? gguf.stringArray(key)
        _ = try? gguf.intArray(key)
        _ = try? gguf.floatArray(key)
    }

    do {
        let config = try LlamaConfig(gguf: gguf)
        if config.headDim <= 1 << 12 { _ = config.rope.inverseFrequencies(headDim: config.headDim) }
    } catch { consume(error) }

    do {
        let tokenizer = try BPETokenizer(gguf: gguf)
        let ids = tokenizer.encode(sampleText)
        _ = tokenizer.decode(ids, skipSpecialTokens: true)
        _ = tokenizer.decode(ids, skipSpecialTokens: false)
        if let first = ids.first { _ = tokenizer.token(for: first) }
    } catch { consume(error) }
    return 0
}
