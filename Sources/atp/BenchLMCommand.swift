import ArgumentParser
import COpenBLAS
import Foundation
import Tensor
import ModelIO
import Models

/// `atp bench lm`: prefill and decode speed of the Llama-family decoder, each beside a BLAS baseline
/// over the same matrix shapes in the same process (as llama-bench's pp512 / tg128).
struct BenchLM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lm",
        abstract: "Time LLM prefill and decode against cblas_sgemm / cblas_sgemv on the same matrix shapes.")

    @Option(help: "A .gguf file or an HF folder (llama, qwen2).")
    var model: String
    @Option(help: "Prompt positions processed in one batched prefill (pp).")
    var promptTokens: Int = 512
    @Option(help: "Tokens decoded one at a time from an empty cache (tg).")
    var genTokens: Int = 128
    @Option(help: "Timed repetitions (median is reported).")
    var repeats: Int = 3
    @Flag(help: "Decode through cblas_sgemm with m = 1 instead of the GEMV kernel.")
    var decodeGemm = false
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard promptTokens >= 1 else { throw ValidationError("--prompt-tokens \(promptTokens): must be ≥ 1") }
        guard genTokens >= 1 else { throw ValidationError("--gen-tokens \(genTokens): must be ≥ 1") }
        guard repeats >= 1 else { throw ValidationError("--repeats \(repeats): must be ≥ 1") }
    }

    func run() throws {
        try compute.apply()
        let precision = compute.loadPrecision()
        printErr("loading \(model) (precision \(precision))…")
        var lm = try LlamaModel.load(URL(fileURLWithPath: model), precision: precision)
        printErr("kernels: OpenBLAS \(BLAS.coreName), atp \(CPUKernels.level) (cpu: \(CPUKernels.features)); weights \(lm.storageName), "
                 + String(format: "%.1f MB resident", Double(lm.residentWeightBytes.values.reduce(0, +)) / 1e6))
        if let better = BLAS.betterCoreType {
            printErr("atp: warning: OpenBLAS runs its generic \(BLAS.coreName) kernels on this CPU; set OPENBLAS_CORETYPE=\(better) for its vector kernels")
        }
        lm.decodeUsesGEMV = !decodeGemm
        let c = lm.config
        var g = UInt64(7)
        let prompt = (0..<promptTokens).map { _ -> Int in
            g = g &* 6364136223846793005 &+ 1442695040888963407; return Int(g >> 33) % c.vocabSize
        }
        // Check once that the pass runs; the timed closures cannot throw.
        var probe = lm.makeCache(capacity: promptTokens)
        _ = try lm.forward(ids: Array(prompt.prefix(2)), cache: &probe)
        let model = lm

        printErr("timing prefill of \(promptTokens) tokens (\(repeats) runs after a warm-up)…")
        let prefill = medianSeconds(repeats: repeats) {
            var cache = model.makeCache(capacity: promptTokens)
            _ = try? model.forward(ids: prompt, cache: &cache)
        }
        let prefillFlops = model.flops(tokens: promptTokens)
        printErr("timing cblas_sgemm on the prefill shapes…")
        let prefillShapes = model.gemmShapes(tokens: promptTokens)
        let prefillBase = sgemmBaseline(prefillShapes, repeats: repeats)
        let prefillShapeFlops = prefillShapes.reduce(0.0) { $0 + 2 * Double($1.m * $1.n * $1.k * $1.count) }

        printErr("timing decode of \(genTokens) tokens (\(repeats) runs after a warm-up)…")
        let decode = medianSeconds(repeats: repeats) {
            var cache = model.makeCache(capacity: genTokens)
            for i in 0..<genTokens { _ = try? model.forward(ids: [prompt[i % prompt.count]], cache: &cache) }
        }
        let decodeFlops = (0..<genTokens).reduce(0.0) { $0 + model.flops(tokens: 1, past: $1) }
        printErr("timing cblas_sgemv on the decode shapes (one matrix per layer, as in the model)…")
        let decodeShapes = model.gemmShapes(tokens: 1)
        let decodeBase = gemvBaseline(decodeShapes, steps: genTokens, repeats: repeats, kernel: blasGEMV)
        printErr("timing the GEMV kernel alone on the decode shapes…")
        let decodeKernel = gemvBaseline(decodeShapes, steps: genTokens, repeats: repeats) { w, n, k, x, y in
            gemv(w, rows: n, cols: k, x: x, into: y)
        }
        let decodeShapeFlops = Double(genTokens) * decodeShapes.reduce(0.0) { $0 + 2 * Double($1.n * $1.k * $1.count) }
        // Bytes of weights one decode step streams: the matrices it multiplies, as stored (the
        // baselines' f32 copies of the same shapes for the kernel-alone figure).
        let stepBytes = Double(model.decodeStepWeightBytes)
        let f32StepBytes = decodeShapes.reduce(0.0) { $0 + 4 * Double($1.n * $1.k * $1.count) }

        let pg = prefillFlops / prefill / 1e9, pb = prefillShapeFlops / prefillBase / 1e9
        let dg = decodeFlops / decode / 1e9, db = decodeShapeFlops / decodeBase / 1e9
        let result = JSON.object([
            ("prefill_tok_s", .double(Double(promptTokens) / prefill)),
            ("prefill_gflops", .double(pg)), ("prefill_sgemm_gflops", .double(pb)), ("prefill_ratio", .double(pg / pb)),
            ("decode_tok_s", .double(Double(genTokens) / decode)),
            ("decode_gflops", .double(dg)), ("decode_sgemm_gflops", .double(db)), ("decode_ratio", .double(dg / db)),
            ("decode_weight_gb_s", .double(stepBytes * Double(genTokens) / decode / 1e9)),
            ("decode_kernel_gflops", .double(decodeShapeFlops / decodeKernel / 1e9)),
            ("decode_kernel_weight_gb_s", .double(f32StepBytes * Double(genTokens) / decodeKernel / 1e9)),
            ("prompt_tokens", .int(promptTokens)), ("gen_tokens", .int(genTokens)), ("threads", .int(BLAS.threads)),
            ("precision", .string(precision.rawValue)), ("weights", .string(model.storageName)),
            ("resident_weight_bytes", .int(model.residentWeightBytes.values.reduce(0, +))),
            ("openblas_core", .string(BLAS.coreName)), ("atp_kernels", .string(CPUKernels.level.description)),
        ])
        if json { result.printLine() } else {
            printErr(String(format: "prefill pp%d: %.1f tok/s, %.1f GFLOP/s; cblas_sgemm same shapes: %.1f GFLOP/s; ratio %.2f",
                            promptTokens, Double(promptTokens) / prefill, pg, pb, pg / pb))
            printErr(String(format: "decode tg%d: %.1f tok/s, %.1f GFLOP/s (weights at %.1f GB/s); cblas_sgemv same shapes: %.1f GFLOP/s; ratio %.2f; GEMV kernel alone %.1f GFLOP/s",
                            genTokens, Double(genTokens) / decode, dg, stepBytes * Double(genTokens) / decode / 1e9, db, dg / db,
                            decodeShapeFlops / decodeKernel / 1e9))
        }
    }
}

/// Runs a GEMV kernel (y = W·x, row-major W[n×k]) over `count` distinct matrices of each shape, `steps`
/// times per pass, returning seconds per pass. Distinct matrices keep the memory traffic of a real
/// decode step (weights stream from DRAM rather than sitting in cache); they live in the same storage
/// as the model's weights (huge-page advised), so ratios compare kernels, not page sizes.
func gemvBaseline(_ shapes: [(m: Int, n: Int, k: Int, count: Int)], steps: Int, repeats: Int,
                  kernel: (_ w: UnsafePointer<Float>, _ n: Int, _ k: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) -> Void) -> Double {
    let mats: [WeightMatrix] = shapes.flatMap { s in
        (0..<s.count).map { j in
            WeightMatrix(Tensor(shape: [s.n, s.k], data: [Float](repeating: 0.01 * Float(j % 13 + 1), count: s.n * s.k)))
        }
    }
    let maxK = mats.map(\.cols).max() ?? 1, maxN = mats.map(\.rows).max() ?? 1
    let x = (0..<maxK).map { Float($0 % 7) * 0.01 }
    var y = [Float](repeating: 0, count: maxN)
    return medianSeconds(repeats: repeats) {
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            for _ in 0..<steps {
                for m in mats { kernel(m.pointer, m.rows, m.cols, xp.baseAddress!, yp.baseAddress!) }
            }
        }}
    }
}

/// `cblas_sgemv` as a `gemvBaseline` kernel.
func blasGEMV(_ w: UnsafePointer<Float>, _ n: Int, _ k: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, w, Int32(k), x, 1, 0, y, 1)
}
