import ArgumentParser
import CKernels
import Foundation
import Tensor

/// `atp bench kernels`: which kernels run on this machine and how fast, each against a baseline in
/// the same process: OpenBLAS's chosen kernel set with `cblas_sgemm` 1024³, and the GEMV over each
/// resident weight format against the f32 GEMV on the same matrix shape (decode's inner loop).
struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Show the CPU features, OpenBLAS's kernel set and the native GEMV kernels, each timed against f32.")

    @Option(help: "Rows of the GEMV matrices (a decode projection's outputs).")
    var rows: Int = 8192
    @Option(help: "Columns of the GEMV matrices (inputs; a multiple of 32).")
    var cols: Int = 896
    @Option(help: "Distinct matrices per pass, so that the weights stream from memory as in a decode step.")
    var matrices: Int = 24
    @Option(help: "Timed repetitions (median is reported).")
    var repeats: Int = 5
    @Flag(help: "Print only the OPENBLAS_CORETYPE this CPU needs when OpenBLAS chose a generic kernel set (nothing otherwise), and exit.")
    var coretype = false
    @Flag(help: "Exit with status 3 when OpenBLAS runs a generic kernel set on a CPU with AVX2 or AVX-512.")
    var strict = false
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard rows >= 1, matrices >= 1, repeats >= 1 else { throw ValidationError("--rows, --matrices and --repeats must be ≥ 1") }
        guard cols >= 32, cols % 32 == 0 else { throw ValidationError("--cols \(cols): must be a positive multiple of 32") }
    }

    func run() throws {
        if coretype {
            if let t = BLAS.betterCoreType { print(t) }
            return
        }
        try compute.apply()
        let features = CPUKernels.features, core = BLAS.coreName
        let generic = BLAS.betterCoreType != nil
        printErr("cpu: \(features.description.isEmpty ? "no AVX2" : features.description)")
        printErr("openblas: \(core) kernels (\(BLAS.config))" + (generic ? " — GENERIC: this CPU calls for \(BLAS.betterCoreType!)" : ""))
        printErr("atp kernels: \(CPUKernels.level)")

        // cblas_sgemm 1024³: the f32 GEMM ceiling prefill and the vision tower live under.
        let n = 1024
        let sgemm = sgemmBaseline([(n, n, n, 1)], repeats: repeats)
        let sgemmGF = 2 * Double(n * n * n) / sgemm / 1e9
        printErr(String(format: "cblas_sgemm 1024³: %.1f GFLOP/s", sgemmGF))

        // GEMV per format against f32 on the same shape.
        var x = [Float](repeating: 0, count: cols)
        var g = UInt64(3)
        for i in 0..<cols { g = g &* 6364136223846793005 &+ 1442695040888963407; x[i] = Float(Int(g >> 40) % 2001 - 1000) / 1000 }
        var y = [Float](repeating: 0, count: rows)
        var rowsOut: [JSON] = []
        var f32Seconds = 0.0
        for format in [WeightFormat.f32, .bf16, .f16, .q8_0, .q4_1, .q4_0] {
            let rb = format.rowBytes(cols: cols)!
            let mats = (0..<matrices).map { j -> WeightMatrix in
                var bytes = [UInt8](repeating: 0, count: rows * rb)
                var s = UInt64(j + 1)
                for i in bytes.indices { s = s &* 6364136223846793005 &+ 1442695040888963407; bytes[i] = UInt8(truncatingIfNeeded: s >> 56) }
                if format != .f32 && format != .bf16 && format != .f16 {
                    // Small finite f16 scales (and offsets) in each block, like a real file's.
                    for b in stride(from: 0, to: bytes.count, by: format.blockBytes) { bytes[b] = 0x00; bytes[b + 1] = 0x20 }
                } else if format == .f32 {
                    for b in stride(from: 0, to: bytes.count, by: 4) { bytes[b + 3] = 0x3c }
                } else {
                    for b in stride(from: 0, to: bytes.count, by: 2) { bytes[b + 1] = format == .f16 ? 0x30 : 0x3c }
                }
                return bytes.withUnsafeBytes { WeightMatrix(cols: cols, parts: [.init(format: format, rows: rows, cols: cols, bytes: $0)]) }
            }
            let t = medianSeconds(repeats: repeats) {
                x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                    for m in mats { nativeGEMV(m, x: xp.baseAddress!, into: yp.baseAddress!) }
                }}
            }
            if format == .f32 { f32Seconds = t }
            let bytes = Double(matrices * rows * rb)
            let weights = Double(matrices * rows * cols)
            printErr(String(format: "gemv %@ %d×%d ×%d: %.2f ms, %.1f GB/s, %.2f G weights/s, %.2f× f32", format.description, rows, cols,
                            matrices, t * 1e3, bytes / t / 1e9, weights / t / 1e9, f32Seconds / t))
            rowsOut.append(.object([("format", .string(format.description)), ("ms", .double(t * 1e3)),
                                    ("gb_s", .double(bytes / t / 1e9)), ("gweights_s", .double(weights / t / 1e9)),
                                    ("speedup_vs_f32", .double(f32Seconds / t))]))
        }
        if json {
            JSON.object([
                ("cpu_features", .string(features.description)), ("openblas_core", .string(core)),
                ("openblas_generic", .bool(generic)), ("openblas_config", .string(BLAS.config)),
                ("atp_kernels", .string(CPUKernels.level.description)), ("sgemm_1024_gflops", .double(sgemmGF)),
                ("gemv", .array(rowsOut)), ("threads", .int(Parallel.threads)),
            ]).printLine()
        }
        if generic && strict {
            printErr("atp: error: OpenBLAS runs its generic \(core) kernels on a CPU with \(features) (set OPENBLAS_CORETYPE=\(BLAS.betterCoreType!))")
            throw ExitCode(3)
        }
    }
}
