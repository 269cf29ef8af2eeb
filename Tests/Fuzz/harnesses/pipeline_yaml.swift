// Feeds the input as a pipeline YAML file (Pipelines/*.yaml) through `PipelineSpec.parse` (Yams,
// strict keys, every value check, relative-path resolution), then the per-query gate resolution
// and the spec's YAML rendering.
import Foundation
import Pipeline

private let base = URL(fileURLWithPath: "/nonexistent/atp-fuzz/pipelines")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let spec = try PipelineSpec.parse(yaml: text, file: "fuzz.yaml", baseDirectory: base)
        for query in spec.queries {
            do { _ = try gateConfig(spec.effectiveGate(for: query)) } catch { consume(error) }
        }
        _ = try? spec.yaml()
    } catch { consume(error) }
    return 0
}
