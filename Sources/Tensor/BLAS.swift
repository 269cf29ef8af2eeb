import COpenBLAS

/// Thin, typed access to OpenBLAS.
public enum BLAS {
    /// Sets the number of OpenBLAS threads (≥ 1).
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }

    /// Current number of OpenBLAS threads.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The kernel set OpenBLAS chose when it loaded (`Haswell`, `Zen`, `SkylakeX`, `Prescott`, …).
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// OpenBLAS's build description (version, DYNAMIC_ARCH, threading).
    public static var config: String { openblas_get_config().map { String(cString: $0) } ?? "unknown" }

    /// Kernel sets that use AVX2/FMA or AVX-512 (OpenBLAS's names, lower-cased).
    public static let vectorCores: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"]

    /// Whether `core` (a `coreName`) is one of the vector kernel sets.
    public static func isVectorCore(_ core: String) -> Bool { vectorCores.contains(core.lowercased()) }

    /// The kernel set this CPU's instruction sets call for (`OPENBLAS_CORETYPE` value), whatever its
    /// model number: Cooperlake with AVX-512 BF16, SkylakeX with AVX-512 F/BW/VL/DQ, Haswell with
    /// AVX2 + FMA; nil without AVX2.
    public static func coreType(for f: CPUKernels.Features) -> String? {
        if f.isSuperset(of: [.avx512f, .avx512bw, .avx512vl, .avx512dq]) { return f.contains(.avx512bf16) ? "Cooperlake" : "SkylakeX" }
        if f.isSuperset(of: [.avx2, .fma]) { return "Haswell" }
        return nil
    }

    /// When OpenBLAS runs a generic kernel set on a CPU with AVX2 or AVX-512 (it did not know the
    /// CPU's model), the `OPENBLAS_CORETYPE` that fixes it; nil when the chosen set is fine.
    public static var betterCoreType: String? {
        guard let wanted = coreType(for: CPUKernels.features), !isVectorCore(coreName) else { return nil }
        return wanted
    }

    /// `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, row-major, with leading dimensions.
    ///
    /// - Complexity: O(m·n·k).
    @inline(__always)
    public static func sgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int,
                             alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
