import ArgumentParser
import Foundation
import Tensor
import ModelIO
import Models

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks, each with a baseline measured in the same process.",
        subcommands: [BenchEncode.self, BenchLM.self])
}

/// Times `body` `repeats` times after one warm-up; returns the median seconds.
func medianSeconds(repeats: Int, _ body: () -> Void) -> Double {
    body()
    var times: [Double] = []
    for _ in 0..<max(1, repeats) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    times.sort()
    return times[times.count / 2]
}

/// Runs `cblas_sgemm` over the given shapes (row-major A[m×k]·B[k×n]), returning seconds per pass.
func sgemmBaseline(_ shapes: [(m: Int, n: Int, k: Int, count: Int)], repeats: Int) -> Double {
    let maxA = shapes.map { $0.m * $0.k }.max() ?? 1, maxB = shapes.map { $0.k * $0.n }.max() ?? 1
    let maxC = shapes.map { $0.m * $0.n }.max() ?? 1
    let a = (0..<maxA).map { Float(($0 % 13)) * 0.01 }, b = (0..<maxB).map { Float(($0 % 7)) * 0.01 }
    var c = [Float](repeating: 0, count: maxC)
    return medianSeconds(repeats: repeats) {
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            for s in shapes { for _ in 0..<s.count {
                BLAS.sgemm(m: s.m, n: s.n, k: s.k, a: ap.baseAddress!, lda: s.k, b: bp.baseAddress!, ldb: s.n,
                           c: cp.baseAddress!, ldc: s.n)
            }}
        }}}
    }
}

struct BenchEncode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Time the vision tower against cblas_sgemm on the same matrix shapes.")

    @Option(help: "HF CLIP folder.")
    var model: String
    @Option(help: "Timed repetitions (median is reported).")
    var repeats: Int = 5
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        guard repeats >= 1 else { throw CLIError("--repeats \(repeats): must be ≥ 1") }
        printErr("loading \(model)…")
        let clip = try CLIPModel(folder: URL(fileURLWithPath: model))
        let s = clip.config.visionConfig.imageSize, c = clip.config.visionConfig.numChannels
        var g = UInt64(1)
        let pixels = (0..<(c * s * s)).map { _ -> Float in
            g = g &* 6364136223846793005 &+ 1; return Float(Int64(bitPattern: g >> 33) % 2000) / 1000 - 1
        }
        printErr("timing the vision tower (\(repeats) runs after a warm-up)…")
        let ours = medianSeconds(repeats: repeats) { _ = clip.vision.encode(pixels: pixels) }
        printErr("timing cblas_sgemm on the same shapes…")
        let shapes = clip.vision.gemmShapes
        let base = sgemmBaseline(shapes, repeats: repeats)
        let flops = clip.vision.flops
        let gflops = flops / ours / 1e9, sgemmGflops = flops / base / 1e9
        let result = JSON.object([
            ("gflops", .double(gflops)), ("sgemm_gflops", .double(sgemmGflops)),
            ("ratio", .double(gflops / sgemmGflops)), ("ms_per_image", .double(ours * 1000)),
            ("threads", .int(BLAS.threads)),
        ])
        if json { result.printLine() } else {
            printErr(String(format: "vision tower: %.1f ms/image, %.1f GFLOP/s; cblas_sgemm same shapes: %.1f GFLOP/s; ratio %.2f",
                            ours * 1000, gflops, sgemmGflops, gflops / sgemmGflops))
        }
    }
}
