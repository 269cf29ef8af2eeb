// swift-tools-version:6.1
import PackageDescription

import Foundation

// Numeric targets are compiled with optimisation even in debug/test builds:
// unoptimised Swift kernels are 10–100× slower and would make the parity tests crawl.
// They also target the build machine's vector extensions (like -march=native: SIMD16<Float>
// becomes one AVX-512 register instead of four SSE ones); the binary is meant for the machine
// that builds it. ATP_TARGET_CPU overrides the choice (e.g. "x86-64" for a portable build).
func vectorTarget() -> [String] {
    if let cpu = ProcessInfo.processInfo.environment["ATP_TARGET_CPU"] { return cpu.isEmpty ? [] : ["-target-cpu", cpu] }
    #if arch(x86_64) && os(Linux)
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
    let flags = Set(line.split(separator: " ").map(String.init))
    if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return ["-target-cpu", "skylake-avx512"] }
    if flags.isSuperset(of: ["avx2", "fma"]) { return ["-target-cpu", "haswell"] }
    #endif
    return []
}
let optimised: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug)), .unsafeFlags(vectorTarget())]

// ATP_CORE_ONLY=1 leaves out the HTTP service and the CLI (and their tests): the ThreadSanitizer
// build of the pipeline's concurrency tests needs neither, and NIO/Hummingbird under TSan would
// double CI's time.
let coreOnly = ProcessInfo.processInfo.environment["ATP_CORE_ONLY"] == "1"

let package = Package(
    name: "atp",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "ATPEngine", targets: ["Tensor", "ModelIO", "Models", "Gate", "Media", "Pipeline"]),
    ] + (coreOnly ? [] : [.executable(name: "atp", targets: ["atp"])]),
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ] + (coreOnly ? [] : [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ]),
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CFFmpeg", pkgConfig: "libavformat",
                       providers: [.apt(["libavformat-dev", "libavcodec-dev", "libswscale-dev", "libavdevice-dev"])]),
        .target(name: "CSpin"),
        // Kernels over quantised and 16-bit weights: vector paths are chosen at run time by cpuid
        // (per-function target attributes), so the flags here only set the optimisation level.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
        .target(name: "Tensor", dependencies: ["COpenBLAS", "CSpin", "CKernels"], swiftSettings: optimised),
        .target(name: "ModelIO", dependencies: ["Tensor", "CKernels"], swiftSettings: optimised),
        .target(name: "SplitMix", swiftSettings: optimised),
        .target(name: "Models", dependencies: ["Tensor", "ModelIO", "SplitMix"], swiftSettings: optimised),
        .target(name: "Gate", dependencies: ["SplitMix"], swiftSettings: optimised),
        .target(name: "Media", dependencies: ["CFFmpeg", "SplitMix"], swiftSettings: optimised),
        .target(name: "Pipeline", dependencies: [
            "Media", "Models", "Gate", "SplitMix",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "CKernels"], swiftSettings: optimised),
        .testTarget(name: "ModelIOTests", dependencies: ["ModelIO", "Tensor"], swiftSettings: optimised),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "ModelIO", "Tensor", "Gate", "Media", "SplitMix"], swiftSettings: optimised),
        .testTarget(name: "GateTests", dependencies: ["Gate", "SplitMix"], swiftSettings: optimised),
        .testTarget(name: "MediaTests", dependencies: ["Media", "SplitMix"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Media", "Gate"]),
    ] + (coreOnly ? [] : [
        .target(name: "Serve", dependencies: [
            "Pipeline",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .executableTarget(name: "atp", dependencies: [
            "Tensor", "ModelIO", "Models", "Gate", "Media", "Pipeline", "Serve", "SplitMix",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "CLITests", dependencies: ["atp", "Media", "ModelIO", "Pipeline"]),
        .testTarget(name: "ServeTests", dependencies: ["Serve", "Pipeline"]),
    ])
)
