// Vectorised transcendental functions for the activation and softmax kernels.
// Scalar libm calls (expf, erff) would cost more than the matmuls around them.

public typealias FloatVector = SIMD16<Float>

@usableFromInline let log2e: Float = 1.442_695_040_888_963_4
@usableFromInline let ln2Hi: Float = 0.693_145_751_953_125
@usableFromInline let ln2Lo: Float = 1.428_606_765_330_187e-6

/// e^x per lane; relative error ≈ 1 ulp on [-87, 88]; inputs below −87.3 give ≈ 0 (1e-38), above 88.7 saturate.
///
/// - Complexity: O(1) per lane.
@inlinable @inline(__always)
public func vexp(_ x0: FloatVector) -> FloatVector {
    let x = pointwiseMin(pointwiseMax(x0, FloatVector(repeating: -87.3)), FloatVector(repeating: 88.7))
    // Round to nearest by adding and subtracting 1.5·2²³ (SIMD `rounded` is a per-lane loop).
    let shifted = x * log2e + 12_582_912
    let n = shifted - 12_582_912
    let r = (x - n * ln2Hi) - n * ln2Lo
    // Taylor series of e^r on |r| ≤ ln2/2, degree 7 (truncation error < 1e-8).
    var p = FloatVector(repeating: 1.0 / 5040)
    p = p * r + 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    // n is integral and |n| ≤ 128: adding 1.5·2²³ puts it in the low mantissa bits (a generic
    // SIMD Float→Int32 conversion is not lowered to one instruction).
    let ni = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((ni &+ 127) &<< 23, to: FloatVector.self)
    return p * scale
}

/// erf(x) per lane: Taylor series for |x| < 0.5 (error < 2e-8), Abramowitz–Stegun 7.1.26 beyond (absolute error ≤ 1.5e-7).
@inlinable @inline(__always)
public func verf(_ x: FloatVector) -> FloatVector {
    let ax = x.replacing(with: -x, where: x .< 0)
    let t = 1 / (1 + 0.327_591_1 * ax)
    var p = FloatVector(repeating: 1.061_405_429)
    p = p * t - 1.453_152_027
    p = p * t + 1.421_413_741
    p = p * t - 0.284_496_736
    p = p * t + 0.254_829_592
    p = p * t
    var y = 1 - p * vexp(-ax * ax)
    y.replace(with: -y, where: x .< 0)
    // Near 0 the formula above cancels; use 2/√π·(x − x³/3 + x⁵/10 − x⁷/42 + x⁹/216 − x¹¹/1320).
    let x2 = x * x
    var s = FloatVector(repeating: -1.0 / 1320)
    s = s * x2 + 1.0 / 216
    s = s * x2 - 1.0 / 42
    s = s * x2 + 1.0 / 10
    s = s * x2 - 1.0 / 3
    s = s * x2 + 1
    let small = 1.128_379_167_095_512_6 * x * s
    return y.replacing(with: small, where: ax .< 0.5)
}

/// Applies `body` to `buffer` in place, 16 lanes at a time with a scalar-free tail (padded lane load).
@inlinable @inline(__always)
public func mapInPlace(_ buffer: UnsafeMutablePointer<Float>, count: Int,
                       _ body: (FloatVector) -> FloatVector) {
    var i = 0
    let raw = UnsafeMutableRawPointer(buffer)
    while i + 16 <= count {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self)
        raw.storeBytes(of: body(v), toByteOffset: i * 4, as: FloatVector.self)
        i += 16
    }
    if i < count {
        let rem = count - i
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { tmp in
            let t = tmp.baseAddress!
            t.initialize(repeating: 0, count: 16)
            t.update(from: buffer + i, count: rem)
            UnsafeMutableRawPointer(t).storeBytes(of: body(UnsafeRawPointer(t).loadUnaligned(as: FloatVector.self)), as: FloatVector.self)
            (buffer + i).update(from: t, count: rem)
        }
    }
}
