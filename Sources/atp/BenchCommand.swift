import ArgumentParser
import Foundation
import Tensor
import ModelIO
import Models
import Pipeline

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks, each with a baseline measured in the same process.",
        subcommands: [BenchKernels.self, BenchEncode.self, BenchLM.self, BenchAsk.self, BenchGraph.self, BenchGate.self, BenchServe.self])
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

/// `atp bench graph`: the stage graph's own cost per item — end-to-end time minus the sum of the
/// stages' times — with five synthetic stages that each spin for a fixed time (no models).
struct BenchGraph: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Measure the stage graph's overhead per item (end-to-end minus the sum of stage times).")

    @Option(help: "Items pushed through the graph.")
    var items: Int = 2000
    @Option(name: .customLong("stage-us"), help: "Work per stage and item, in microseconds (a busy spin).")
    var stageMicros: Int = 200
    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    func validate() throws {
        guard items >= 10 else { throw ValidationError("--items \(items): must be ≥ 10") }
        guard stageMicros >= 0 else { throw ValidationError("--stage-us \(stageMicros): must be ≥ 0") }
    }

    func run() throws {
        let spinNs = UInt64(stageMicros) * 1000
        func stage(_ name: String) -> ClosureStage<Int, Int> {
            ClosureStage(name: name) { x in
                let t0 = DispatchTime.now().uptimeNanoseconds
                while DispatchTime.now().uptimeNanoseconds - t0 < spinNs {}
                return [x]
            }
        }
        let overheads = LockedValues()
        let done = DispatchSemaphore(value: 0)
        let compute = ComputeExecutor(label: "bench.compute")
        let graph = try GraphBuilder(first: stage("video_decode"), options: StageOptions(queue: 4, policy: .block))
            .then(stage("encode"), options: StageOptions(queue: 2, policy: .block, executor: .shared(compute)))
            .then(stage("gate"), options: StageOptions(queue: 2, policy: .block))
            .then(stage("prefill"), options: StageOptions(queue: 2, policy: .block, executor: .shared(compute)))
            .then(stage("llm_decode"), options: StageOptions(queue: 2, policy: .block, executor: .shared(compute)))
            .sink { _, info in
                overheads.append((info.e2eMs - info.stagesMs.values.reduce(0, +)) * 1000, stages: info.stagesMs.values.reduce(0, +) * 1000)
                done.signal()
            }
        try graph.run()
        printErr("pushing \(items) items, one at a time, through 5 stages of \(stageMicros) µs…")
        // Closed loop: the next item enters when the last reached the sink, so no time is spent queued
        // behind other items and what remains beyond the stages is the graph's own hand-off cost.
        for i in 0..<items {
            graph.submit(i)
            done.wait()
        }
        graph.finish()
        let (o, s) = overheads.sorted()
        func q(_ v: [Double], _ p: Double) -> Double { v.isEmpty ? 0 : v[min(v.count - 1, Int(p * Double(v.count - 1)))] }
        let result = JSON.object([
            ("items", .int(o.count)), ("stages", .int(5)),
            ("overhead_p50_us", .double(q(o, 0.5))), ("overhead_p99_us", .double(q(o, 0.99))),
            ("stage_sum_p50_us", .double(q(s, 0.5))),
        ])
        if json { result.printLine() } else {
            printErr(String(format: "graph overhead per item: p50 %.1f µs, p99 %.1f µs (stages sum p50 %.1f µs)", q(o, 0.5), q(o, 0.99), q(s, 0.5)))
        }
    }
}

/// Values appended from the sink thread.
final class LockedValues: @unchecked Sendable {
    private let lock = NSLock()
    private var overheads: [Double] = [], stages: [Double] = []
    func append(_ v: Double, stages s: Double) { lock.withLock { overheads.append(v); stages.append(s) } }
    func sorted() -> ([Double], [Double]) { lock.withLock { (overheads.sorted(), stages.sorted()) } }
}
