import Foundation
import Tensor

/// OpenBLAS (DYNAMIC_ARCH) picks its kernels when the library loads, from a table of CPU models.
/// On a CPU it does not know (a VM reporting a bare "Intel(R) Xeon(R) Processor") it falls back to
/// its SSE3 "Prescott" kernels, 4× slower, although the CPU has AVX-512. The library reads
/// `OPENBLAS_CORETYPE` only while loading, before `main`, so the fix is to restart the process once
/// with the kernel set the CPU's instruction sets call for.
enum BLASCoreCheck {
    /// Restarts this process with `OPENBLAS_CORETYPE` set when OpenBLAS chose a generic kernel set
    /// on a CPU with AVX2 or AVX-512 (one note on stderr); warns when a restart did not help.
    /// `ATP_BLAS_KEEP_CORE=1` keeps whatever OpenBLAS chose.
    static func restartWithVectorKernelsIfNeeded() {
        let env = ProcessInfo.processInfo.environment
        guard env["ATP_BLAS_KEEP_CORE"] != "1", let wanted = BLAS.betterCoreType else { return }
        let chosen = BLAS.coreName
        if env["ATP_BLAS_RESTARTED"] != nil {
            FileHandle.standardError.write(Data("atp: warning: OpenBLAS still runs its generic \(chosen) kernels after a restart with OPENBLAS_CORETYPE=\(wanted) (CPU: \(CPUKernels.features)); GEMMs will be several times slower\n".utf8))
            return
        }
        FileHandle.standardError.write(Data("atp: note: OpenBLAS chose its generic \(chosen) kernels on a CPU with \(CPUKernels.features); restarting with OPENBLAS_CORETYPE=\(wanted)\n".utf8))
        setenv("OPENBLAS_CORETYPE", wanted, 1)
        setenv("ATP_BLAS_RESTARTED", "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Only reached when exec failed: go on with the slow kernels, loudly.
        FileHandle.standardError.write(Data("atp: warning: could not restart (\(String(cString: strerror(errno)))); running on OpenBLAS's \(chosen) kernels\n".utf8))
    }
}
