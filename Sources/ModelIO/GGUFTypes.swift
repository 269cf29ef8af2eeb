import Tensor

// GGUF value and tensor types. Facts from the GGUF spec (ggml-org/ggml docs/gguf.md) and
// gguf-py's `constants.py` (GGUFValueType, GGMLQuantizationType, GGML_QUANT_SIZES).

/// A metadata value of a GGUF file: one case per GGUF value type (arrays may nest).
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// The value of any integer case, when it fits in `Int` (nil for other cases).
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(exactly: v)
        default: return nil
        }
    }

    /// The value of `.float32` or `.float64` as a `Double` (nil for other cases).
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return nil
        }
    }

    /// The value of `.float32` (or `.float64` rounded to `Float`); nil for other cases.
    public var floatValue: Float? {
        switch self {
        case .float32(let v): return v
        case .float64(let v): return Float(v)
        default: return nil
        }
    }

    /// The value of `.bool` (nil for other cases).
    public var boolValue: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    /// The value of `.string` (nil for other cases).
    public var stringValue: String? {
        if case .string(let v) = self { return v }
        return nil
    }

    /// The elements of `.array` (nil for other cases).
    public var arrayValue: [GGUFValue]? {
        if case .array(let v) = self { return v }
        return nil
    }

    /// The elements of an array whose elements are all strings (nil otherwise).
    public var stringArray: [String]? {
        guard case .array(let items) = self else { return nil }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .string(let s) = item else { return nil }
            out.append(s)
        }
        return out
    }

    /// The elements of an array whose elements are all integers that fit in `Int` (nil otherwise).
    public var intArray: [Int]? {
        guard case .array(let items) = self else { return nil }
        var out: [Int] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard let v = item.intValue else { return nil }
            out.append(v)
        }
        return out
    }

    /// The elements of an array whose elements are all `.float32`/`.float64` (nil otherwise).
    public var floatArray: [Float]? {
        guard case .array(let items) = self else { return nil }
        var out: [Float] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard let v = item.floatValue else { return nil }
            out.append(v)
        }
        return out
    }

    /// The GGUF type name, for messages: `uint32`, `string`, `array<string>`, `array<array<int32>>`.
    public var typeName: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .float32: return "float32"
        case .bool: return "bool"
        case .string: return "string"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float64: return "float64"
        case .array(let items): return "array<\(items.first?.typeName ?? "empty")>"
        }
    }
}

/// The wire type ids of GGUF metadata values (`gguf_metadata_value_type`).
enum GGUFWireType: UInt32 {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The fewest bytes one value of this type can occupy (used to reject absurd array counts).
    var minimumSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string: return 8          // the u64 length
        case .array: return 12          // u32 element type + u64 count
        }
    }
}

/// A ggml tensor type (`ggml_type`), with its block layout.
///
/// All types known to gguf-py are listed so that any valid file opens; `tensorData` dequantises
/// the ones whose `canDequantize` is true and throws `.unsupported` (naming the type) for the rest.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35, mxfp4 = 39, nvfp4 = 40, q1_0 = 41

    /// The name gguf-py and llama.cpp use (`Q4_K`, `BF16`, …).
    public var name: String {
        switch self {
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        default: return "\(self)".uppercased()
        }
    }

    /// Elements per block and bytes per block (`GGML_QUANT_SIZES`).
    public var blockLayout: (blockSize: Int, typeSize: Int) {
        let qkK = 256
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .q4_0: return (32, 2 + 16)
        case .q4_1: return (32, 2 + 2 + 16)
        case .q5_0: return (32, 2 + 4 + 16)
        case .q5_1: return (32, 2 + 2 + 4 + 16)
        case .q8_0: return (32, 2 + 32)
        case .q8_1: return (32, 4 + 4 + 32)
        case .q2_K: return (qkK, 2 + 2 + qkK / 16 + qkK / 4)
        case .q3_K: return (qkK, 2 + qkK / 4 + qkK / 8 + 12)
        case .q4_K: return (qkK, 2 + 2 + qkK / 2 + 12)
        case .q5_K: return (qkK, 2 + 2 + qkK / 2 + qkK / 8 + 12)
        case .q6_K: return (qkK, 2 + qkK / 2 + qkK / 4 + qkK / 16)
        case .q8_K: return (qkK, 4 + qkK + qkK / 8)
        case .iq2_xxs: return (qkK, 2 + qkK / 4)
        case .iq2_xs: return (qkK, 2 + qkK / 4 + qkK / 32)
        case .iq3_xxs: return (qkK, 2 + qkK / 4 + qkK / 8)
        case .iq1_s: return (qkK, 2 + qkK / 8 + qkK / 16)
        case .iq4_nl: return (32, 2 + 16)
        case .iq3_s: return (qkK, 2 + qkK / 4 + qkK / 8 + qkK / 32 + 4)
        case .iq2_s: return (qkK, 2 + qkK / 4 + qkK / 16)
        case .iq4_xs: return (qkK, 2 + 2 + qkK / 2 + qkK / 64)
        case .i8: return (1, 1)
        case .i16: return (1, 2)
        case .i32: return (1, 4)
        case .i64, .f64: return (1, 8)
        case .iq1_m: return (qkK, qkK / 8 + qkK / 16 + qkK / 32)
        case .tq1_0: return (qkK, 2 + 4 * 13)
        case .tq2_0: return (qkK, 2 + 64)
        case .mxfp4: return (32, 1 + 16)
        case .nvfp4: return (64, 4 + 32)
        case .q1_0: return (128, 2 + 16)
        }
    }

    /// Whether `GGUFFile.tensorData(named:)` can convert this type to f32.
    public var canDequantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q5_K, .q6_K: return true
        default: return false
        }
    }
}

extension GGMLType {
    /// The resident `WeightFormat` of this type, when the engine has kernels for it (nil: the
    /// tensor is converted to f32 at load).
    public var weightFormat: WeightFormat? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        default: return nil
        }
    }

    /// The types `--precision native` keeps resident.
    public static let residentTypes: Set<GGMLType> = Set(allCases.filter { $0.weightFormat != nil && $0 != .f32 })

    /// Whether rows of `rowLength` elements split into whole blocks of this type.
    func keepsRows(of rowLength: Int) -> Bool { rowLength % blockLayout.blockSize == 0 }
}

/// Where and how one tensor is stored in a GGUF file.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The tensor name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// The dimensions in GGUF (ggml `ne`) order: `dims[0]` is the innermost, contiguous one.
    public let dims: [Int]
    /// The storage type.
    public let type: GGMLType
    /// The offset of the data relative to the start of the data section (as stored in the file).
    public let offset: Int
    /// The absolute byte position of the data in the file.
    public let fileOffset: Int
    /// The number of elements (the product of `dims`; 1 for zero dims).
    public let elementCount: Int
    /// The number of bytes the data occupies.
    public let byteCount: Int

    /// The dimensions in row-major (numpy / PyTorch) order: the reverse of `dims`.
    public var shape: [Int] { dims.reversed() }

    /// The elements in one row (`dims[0]`, or 1 for a scalar).
    public var rowLength: Int { dims.first ?? 1 }

    /// The number of rows (`elementCount / rowLength`; 0 for an empty tensor).
    public var rowCount: Int { rowLength == 0 ? 0 : elementCount / rowLength }
}
