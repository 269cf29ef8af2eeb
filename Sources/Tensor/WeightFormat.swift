import CKernels
import Foundation

/// How a weight matrix's rows are stored in memory (the byte layouts of ggml, see `atp_kernels.h`).
public enum WeightFormat: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, bf16 = 30

    /// `F32`, `F16`, `BF16`, `Q8_0`, …, as GGUF names them.
    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q8_0: return "Q8_0"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        }
    }

    /// Elements per block (32 for the Q formats, 1 otherwise).
    public var blockElements: Int { Int(atp_block_elements(rawValue)) }
    /// Bytes per block.
    public var blockBytes: Int { Int(atp_block_bytes(rawValue)) }
    /// Whether GEMV multiplies it against 8-bit quantised activations.
    public var isBlockQuantised: Bool { blockElements > 1 }

    /// Bytes of one row of `cols` elements, or nil when `cols` does not split into whole blocks.
    public func rowBytes(cols: Int) -> Int? {
        cols % blockElements == 0 ? cols / blockElements * blockBytes : nil
    }
}

/// The precision a model computes in (`--precision`, the pipeline's `model: {precision: …}`).
public enum Precision: String, Sendable, CaseIterable, Codable {
    /// The weights' own type: GGUF Q8_0/Q4_0/Q4_1 stay quantised and F16/BF16 stay 16-bit,
    /// multiplied by this CPU's vector kernels (AVX2 integer dot products for the Q formats).
    case native
    /// bf16 weights and bf16 GEMMs (AVX-512 BF16). Not implemented yet: runs as f32, with one line on stderr.
    case bf16
    /// Every weight converted to f32 at load: the reference that reproduces transformers' numbers.
    case f32

    /// The precision actually used on this CPU for a request, and the one line to print when it
    /// differs from the request (nil when it does not).
    public static func resolve(_ requested: Precision) -> (precision: Precision, note: String?) {
        switch requested {
        case .f32:
            return (.f32, nil)
        case .native:
            if CPUKernels.level >= .avx2 { return (.native, nil) }
            return (.f32, "this CPU (or ATP_KERNELS) offers no AVX2/FMA/F16C kernels for quantised or 16-bit weights; --precision native runs as f32")
        case .bf16:
            // The vdpbf16ps GEMMs are not written yet: say so rather than claim bf16.
            let cpu = CPUKernels.features.contains(.avx512bf16) ? "" : " (and this CPU has no AVX-512 BF16)"
            return (.f32, "bf16 GEMMs are not implemented yet\(cpu); --precision bf16 runs as f32")
        }
    }
}

/// The CPU's vector features and the kernel level in force.
public enum CPUKernels {
    /// Features the CPU reports and the OS enables.
    public struct Features: OptionSet, Sendable, CustomStringConvertible {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let avx2 = Features(rawValue: UInt32(ATP_CPU_AVX2))
        public static let fma = Features(rawValue: UInt32(ATP_CPU_FMA))
        public static let f16c = Features(rawValue: UInt32(ATP_CPU_F16C))
        public static let avx512f = Features(rawValue: UInt32(ATP_CPU_AVX512F))
        public static let avx512bw = Features(rawValue: UInt32(ATP_CPU_AVX512BW))
        public static let avx512vl = Features(rawValue: UInt32(ATP_CPU_AVX512VL))
        public static let avx512vnni = Features(rawValue: UInt32(ATP_CPU_AVX512VNNI))
        public static let avx512bf16 = Features(rawValue: UInt32(ATP_CPU_AVX512BF16))
        public static let avxvnni = Features(rawValue: UInt32(ATP_CPU_AVXVNNI))
        public static let avx512dq = Features(rawValue: UInt32(ATP_CPU_AVX512DQ))

        static let names: [(Features, String)] = [
            (.avx2, "avx2"), (.fma, "fma"), (.f16c, "f16c"), (.avx512f, "avx512f"), (.avx512dq, "avx512dq"),
            (.avx512bw, "avx512bw"), (.avx512vl, "avx512vl"), (.avx512vnni, "avx512_vnni"),
            (.avx512bf16, "avx512_bf16"), (.avxvnni, "avx_vnni"),
        ]
        /// Space-separated feature names, in cpuinfo's spelling (`avx2 fma f16c`).
        public var description: String { Self.names.filter { contains($0.0) }.map(\.1).joined(separator: " ") }
    }

    /// Kernel levels, lowest first.
    public enum Level: Int32, Sendable, Comparable, CustomStringConvertible {
        case scalar = 0, avx2 = 1
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        public var description: String { self == .avx2 ? "avx2" : "scalar" }
    }

    /// The features of this CPU.
    public static var features: Features { Features(rawValue: atp_cpu_features()) }

    /// The best level this CPU supports.
    public static var bestLevel: Level { Level(rawValue: atp_kernels_best_level()) ?? .scalar }

    /// The level the kernels run at: the best one, or lower when the environment variable
    /// `ATP_KERNELS=scalar` asks for it (to test fallbacks on any machine).
    public static var level: Level {
        _ = applyEnvironment
        return Level(rawValue: atp_kernels_level()) ?? .scalar
    }

    /// Forces a lower level (clamped to what the CPU supports); returns the level now in force.
    @discardableResult
    public static func setLevel(_ level: Level?) -> Level {
        Level(rawValue: atp_kernels_set_level(level?.rawValue ?? -1)) ?? .scalar
    }

    private static let applyEnvironment: Void = {
        if let v = ProcessInfo.processInfo.environment["ATP_KERNELS"]?.lowercased(), v == "scalar" {
            atp_kernels_set_level(Int32(ATP_LEVEL_SCALAR))
        }
    }()
}
