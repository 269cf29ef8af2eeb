import CKernels

// Dequantisation of ggml tensor data to f32, bit-exact to gguf-py's `gguf.quants.dequantize`
// (same float32 operations in the same order: e.g. Q4_1 is `d * q + m`, K-quants compute
// `(d * scale) * q - (dmin * min)`). Block layouts from gguf-py's `quants.py`; no FMA is used
// (Swift does not contract `a * b + c`), so every value matches numpy's float32 result.

/// The f16 → f32 conversion of every half bit pattern (exact; NaN payloads kept).
nonisolated(unsafe) private let halfToFloatTable: UnsafeMutablePointer<Float> = {
    let table = UnsafeMutablePointer<Float>.allocate(capacity: 1 << 16)
    for h in 0..<(1 << 16) {
        table[h] = halfBitsToFloat(UInt16(h))
    }
    return table
}()

/// Converts IEEE binary16 bits to a `Float` exactly (without relying on `Float16`).
func halfBitsToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        // zero or subnormal: mantissa × 2⁻²⁴, exact in f32
        let magnitude = Float(mantissa) * Float(bitPattern: 0x3380_0000)  // 2^-24
        return Float(bitPattern: magnitude.bitPattern | sign)
    }
    if exponent == 31 {
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))  // inf / NaN (payload kept)
    }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}

enum GGUFDequant {
    /// Dequantises `count` elements of `type` from `src` into `dst`.
    ///
    /// The caller guarantees `type.canDequantize`, `count % blockSize == 0` and that `src`
    /// holds exactly `count / blockSize * typeSize` bytes.
    /// - Complexity: O(count).
    static func run(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        guard count > 0, let p = src.baseAddress else { return }
        let half = UnsafePointer(halfToFloatTable)
        switch type {
        case .f32:
            // GGUF is little-endian, as are the hosts this package targets (x86_64, arm64).
            UnsafeMutableRawPointer(dst).copyMemory(from: p, byteCount: count * 4)
        case .f16, .bf16, .q8_0, .q4_0, .q4_1:
            // The resident-weight kernels' dequantisation (CKernels, also bit-exact to gguf-py),
            // in chunks of whole blocks so that each call's element count fits its Int32.
            let format = type.weightFormat!
            let chunk = 1 << 20, (elems, bytes) = (format.blockElements, format.blockBytes)
            var done = 0
            while done < count {
                let n = min(chunk, count - done)
                atp_dequant_rows(format.rawValue, p + done / elems * bytes, n / elems * bytes, 0, 1, Int32(n), dst + done, n)
                done += n
            }
        case .q4_K:
            q4_K(p, blocks: count / 256, dst, half)
        case .q5_K:
            q5_K(p, blocks: count / 256, dst, half)
        case .q6_K:
            q6_K(p, blocks: count / 256, dst, half)
        default:
            break  // callers check canDequantize first
        }
    }

    @inline(__always)
    private static func u16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
        UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// Unpacks the 8 six-bit scales and mins of a Q4_K/Q5_K block from its 12 `scales` bytes:
    /// bytes 0–3 hold scales 0–3 (low 6 bits) and the top 2 bits of scales 4–7; bytes 4–7 the same
    /// for mins; bytes 8–11 the low 4 bits of scales 4–7 (low nibble) and mins 4–7 (high nibble).
    @inline(__always)
    private static func scaleMin(_ s: UnsafePointer<UInt8>, _ j: Int) -> (scale: UInt8, min: UInt8) {
        if j < 4 {
            return (s[j] & 0x3F, s[j + 4] & 0x3F)
        }
        let scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30)
        let min = (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30)
        return (scale, min)
    }

    // Q4_K block (144 bytes): d f16, dmin f16, scales[12], qs[128]. Sub-block j (32 elements)
    // reads qs[(j / 2) * 32 ..< +32], low nibble for even j, high nibble for odd j.
    // x = (d * scale_j) * q - (dmin * min_j)
    private static func q4_K(_ p: UnsafeRawPointer, blocks: Int, _ dst: UnsafeMutablePointer<Float>, _ half: UnsafePointer<Float>) {
        for b in 0..<blocks {
            let block = p + b * 144
            let d = half[Int(u16(block, 0))]
            let dmin = half[Int(u16(block, 2))]
            let scales = (block + 4).assumingMemoryBound(to: UInt8.self)
            let qs = (block + 16).assumingMemoryBound(to: UInt8.self)
            let out = dst + b * 256
            for j in 0..<8 {
                let (sc, mn) = scaleMin(scales, j)
                let dl = d * Float(sc)
                let ml = dmin * Float(mn)
                let q = qs + (j >> 1) * 32
                let shift = UInt8((j & 1) * 4)
                let o = out + j * 32
                for l in 0..<32 {
                    o[l] = dl * Float((q[l] >> shift) & 0x0F) - ml
                }
            }
        }
    }

    // Q5_K block (176 bytes): d f16, dmin f16, scales[12], qh[32], qs[128]. As Q4_K, plus
    // bit j of qh[l] as the fifth bit of element l of sub-block j.
    private static func q5_K(_ p: UnsafeRawPointer, blocks: Int, _ dst: UnsafeMutablePointer<Float>, _ half: UnsafePointer<Float>) {
        for b in 0..<blocks {
            let block = p + b * 176
            let d = half[Int(u16(block, 0))]
            let dmin = half[Int(u16(block, 2))]
            let scales = (block + 4).assumingMemoryBound(to: UInt8.self)
            let qh = (block + 16).assumingMemoryBound(to: UInt8.self)
            let qs = (block + 48).assumingMemoryBound(to: UInt8.self)
            let out = dst + b * 256
            for j in 0..<8 {
                let (sc, mn) = scaleMin(scales, j)
                let dl = d * Float(sc)
                let ml = dmin * Float(mn)
                let q = qs + (j >> 1) * 32
                let shift = UInt8((j & 1) * 4)
                let hshift = UInt8(j)
                let o = out + j * 32
                for l in 0..<32 {
                    let low = (q[l] >> shift) & 0x0F
                    let high = ((qh[l] >> hshift) & 1) << 4
                    o[l] = dl * Float(low | high) - ml
                }
            }
        }
    }

    // Q6_K block (210 bytes): ql[128], qh[64], scales[16] int8, d f16. Element e = 128h + r
    // (h ∈ {0,1}, r < 128): low 4 bits from ql[64h + r % 64] (high nibble when r ≥ 64), high
    // 2 bits from qh[32h + r % 32] >> (2 · (r / 32)). x = (d * scale[e / 16]) * (q - 32)
    private static func q6_K(_ p: UnsafeRawPointer, blocks: Int, _ dst: UnsafeMutablePointer<Float>, _ half: UnsafePointer<Float>) {
        for b in 0..<blocks {
            let block = p + b * 210
            let ql = block.assumingMemoryBound(to: UInt8.self)
            let qh = (block + 128).assumingMemoryBound(to: UInt8.self)
            let scales = (block + 192).assumingMemoryBound(to: Int8.self)
            let d = half[Int(u16(block, 208))]
            let out = dst + b * 256
            for h in 0..<2 {
                for quarter in 0..<4 {                 // r / 32
                    let lowBase = ql + 64 * h + (quarter & 1) * 32
                    let lowShift = UInt8((quarter >> 1) * 4)
                    let highBase = qh + 32 * h
                    let highShift = UInt8(quarter * 2)
                    let e0 = 128 * h + 32 * quarter
                    let dl0 = d * Float(scales[e0 / 16])
                    let dl1 = d * Float(scales[e0 / 16 + 1])
                    let o = out + e0
                    for l in 0..<32 {
                        let low = (lowBase[l] >> lowShift) & 0x0F
                        let high = ((highBase[l] >> highShift) & 0x03) << 4
                        let q = Float(Int32(low | high) - 32)
                        o[l] = (l < 16 ? dl0 : dl1) * q
                    }
                }
            }
        }
    }
}
