// Feeds the input as every JSON config a model folder holds, through the loaders that read them:
// config.json as CLIP (`CLIPConfig.load`, CLIP or SigLIP vision tower), Llama/Qwen2 (`LlamaConfig.load`,
// RoPE variants), LLaVA (`LlavaConfig`, vision + text configs) and `ModelRegistry.kind`;
// processor_config.json / preprocessor_config.json (`ImageProcessorConfig.load`); gate_config.json
// (`GateCalibration.read`).
import Foundation
import ModelIO
import Models
import Pipeline

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let folder = FuzzScratch.folder
    let configURL = FuzzScratch.write(bytes, "config.json")

    do { _ = try ModelRegistry.kind(folder: folder) } catch { consume(error) }
    do {
        let clip = try CLIPConfig.load(folder: folder)
        _ = clip.visionConfig.gridSide
        _ = clip.visionConfig.activation
        _ = clip.textConfig.activation
        _ = try? JSONEncoder().encode(clip)
    } catch { consume(error) }
    do {
        let llama = try LlamaConfig.load(folder: folder)
        if llama.headDim <= 1 << 12 { _ = llama.rope.inverseFrequencies(headDim: llama.headDim) }
        _ = try? JSONEncoder().encode(llama)
    } catch { consume(error) }
    do {
        let llava = try decodeJSONFile(LlavaConfig.self, at: configURL)
        for l in llava.visionFeatureLayers { _ = llava.hiddenStateIndex(l) }
        _ = llava.visionConfig.gridSide
    } catch { consume(error) }

    // The same bytes as both processor files: processor_config.json wins when it has an
    // image_processor section, else preprocessor_config.json is read.
    FuzzScratch.write(bytes, "processor_config.json")
    FuzzScratch.write(bytes, "preprocessor_config.json")
    do {
        let processorConfig = try ImageProcessorConfig.load(folder: folder)
        let processor = ImageProcessor(config: processorConfig)
        _ = try? processor.resizedSize(height: 37, width: 53)
        _ = try? JSONEncoder().encode(processorConfig)
    } catch { consume(error) }

    let gateURL = FuzzScratch.write(bytes, "gate_config.json")
    do { _ = try GateCalibration.read(gateURL) } catch { consume(error) }
    return 0
}
