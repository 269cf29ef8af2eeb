import XCTest
import Foundation

/// `atp bench kernels`, the OpenBLAS kernel-set check and restart, and `--precision` with its
/// fallbacks, as a user meets them.
final class KernelsCLITests: XCTestCase {
    static let quant = CLI.fixtures.appendingPathComponent("quant")

    /// A CPU with AVX2/FMA (or AVX-512) must run OpenBLAS's vector kernels: fails loudly otherwise.
    func testBenchKernelsReportsVectorKernels() throws {
        let r = try CLI.run(["bench", "kernels", "--rows", "256", "--matrices", "2", "--repeats", "1", "--json", "--strict"])
        let cpu = r.stderr.split(separator: "\n").first { $0.hasPrefix("cpu: ") } ?? ""
        guard cpu.contains("avx2") && cpu.contains("fma") else { throw XCTSkip("no AVX2/FMA here (\(cpu))") }
        XCTAssertEqual(r.status, 0, "generic OpenBLAS kernels on an AVX2 CPU: \(r.stderr)")
        let j = try r.json()
        XCTAssertEqual(j["openblas_generic"] as? Bool, false)
        XCTAssertTrue(["Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"].contains(j["openblas_core"] as? String ?? ""),
                      "\(j["openblas_core"] ?? "none")")
        XCTAssertEqual(j["atp_kernels"] as? String, "avx2")
        let rows = try XCTUnwrap(j["gemv"] as? [[String: Any]])
        XCTAssertEqual(rows.compactMap { $0["format"] as? String }, ["F32", "BF16", "F16", "Q8_0", "Q4_1", "Q4_0"])
        XCTAssertGreaterThan(j["sgemm_1024_gflops"] as? Double ?? 0, 0)
    }

    /// OpenBLAS picked a generic kernel set (as it does on CPUs missing from its table, forced here
    /// with OPENBLAS_CORETYPE=Prescott): `atp` restarts once with the set the cpuid flags call for.
    func testGenericOpenBLASKernelsAreReplacedByARestart() throws {
        let plain = try CLI.run(["bench", "kernels", "--coretype"], environment: ["ATP_BLAS_KEEP_CORE": "1", "OPENBLAS_CORETYPE": "Prescott"])
        let wanted = plain.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !wanted.isEmpty else { throw XCTSkip("no AVX2/FMA here: Prescott is what this CPU gets") }
        XCTAssertTrue(["Haswell", "SkylakeX", "Cooperlake"].contains(wanted), wanted)
        let r = try CLI.run(["bench", "kernels", "--rows", "64", "--matrices", "1", "--repeats", "1", "--json", "--strict"],
                            environment: ["OPENBLAS_CORETYPE": "Prescott"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("OpenBLAS chose its generic Prescott kernels"), r.stderr)
        XCTAssertTrue(r.stderr.contains("restarting with OPENBLAS_CORETYPE=\(wanted)"), r.stderr)
        XCTAssertEqual(try r.json()["openblas_core"] as? String, wanted)
        // Kept on request, the generic set fails the strict check with its name.
        let kept = try CLI.run(["bench", "kernels", "--rows", "64", "--matrices", "1", "--repeats", "1", "--strict"],
                               environment: ["OPENBLAS_CORETYPE": "Prescott", "ATP_BLAS_KEEP_CORE": "1"])
        XCTAssertEqual(kept.status, 3, kept.stderr)
        XCTAssertTrue(kept.stderr.contains("generic Prescott kernels"), kept.stderr)
    }

    func testPrecisionNativeKeepsQuantisedWeightsAndFallsBackWithANote() throws {
        let model = Self.quant.appendingPathComponent("llama-q8_0.gguf.bin").path
        let args = ["bench", "lm", "--model", model, "--prompt-tokens", "8", "--gen-tokens", "4", "--repeats", "1", "--json"]
        let native = try CLI.run(args)
        XCTAssertEqual(native.status, 0, native.stderr)
        let n = try native.json()
        XCTAssertEqual(n["precision"] as? String, "native")
        XCTAssertEqual(n["weights"] as? String, "q8_0")
        let f32 = try CLI.run(args + ["--precision", "f32"])
        XCTAssertEqual(f32.status, 0, f32.stderr)
        let f = try f32.json()
        XCTAssertEqual(f["weights"] as? String, "f32")
        let nb = try XCTUnwrap(n["resident_weight_bytes"] as? Int), fb = try XCTUnwrap(f["resident_weight_bytes"] as? Int)
        XCTAssertEqual(Double(nb) / Double(fb), 34.0 / 128.0, accuracy: 1e-9, "Q8_0 keeps 34 bytes per 32 weights")

        // No vector kernels (forced): native runs as f32, said once on stderr.
        let scalar = try CLI.run(args, environment: ["ATP_KERNELS": "scalar"])
        XCTAssertEqual(scalar.status, 0, scalar.stderr)
        XCTAssertEqual(scalar.stderr.components(separatedBy: "--precision native runs as f32").count - 1, 1, scalar.stderr)
        XCTAssertEqual(try scalar.json()["weights"] as? String, "f32")

        let bf16 = try CLI.run(args + ["--precision", "bf16"])
        XCTAssertEqual(bf16.status, 0, bf16.stderr)
        XCTAssertTrue(bf16.stderr.contains("--precision bf16 runs as f32"), bf16.stderr)
        XCTAssertEqual(try bf16.json()["precision"] as? String, "f32")
        let bad = try CLI.run(args + ["--precision", "int3"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("int3"), bad.stderr)
    }
}
