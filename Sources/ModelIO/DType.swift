/// Element types of stored tensors that convert to f32 at load.
public enum StoredDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        }
    }
}

/// Converts `count` little-endian values of `dtype` at `src` to f32.
///
/// - Complexity: O(count).
public func convertToF32(_ src: UnsafeRawBufferPointer, dtype: StoredDType, count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { dst, initialised in
        guard count > 0, let s = src.baseAddress else { initialised = 0; return }
        switch dtype {
        case .f32:
            for i in 0..<count { dst[i] = Float(bitPattern: UInt32(littleEndian: s.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            for i in 0..<count {
                let bits = UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                dst[i] = Float(Float16(bitPattern: bits))
            }
        case .bf16:
            for i in 0..<count {
                let bits = UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                dst[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        }
        initialised = count
    }
}
