// Feeds the input as `model.safetensors` of a model folder: the header (length, JSON, every entry's
// dtype/shape/offsets) through `SafetensorsFile`, then every tensor through the f32 conversion.
import Foundation
import ModelIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzScratch.write(UnsafeBufferPointer(start: data, count: size), "model.safetensors")
    do {
        let files = try WeightFiles(folder: FuzzScratch.folder)
        _ = files.f32Footprint
        for name in files.names.sorted() {
            do {
                let t = try files.tensor(name)
                precondition(t.data.count == t.shape.reduce(1, *), "tensor '\(name)': element count differs from its shape")
            } catch { consume(error) }
        }
        let strict = StrictWeights(files: files)
        for name in files.names.sorted().prefix(4) { _ = try? strict.takeOptional(name) }
        do { try strict.finish() } catch { consume(error) }
    } catch {
        consume(error)
    }
    return 0
}
