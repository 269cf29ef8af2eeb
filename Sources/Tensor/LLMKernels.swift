import COpenBLAS
import Foundation

// Kernels of a decoder-only LLM step, on raw row-major buffers so that a forward pass can run
// over preallocated scratch memory: out-of-place RMSNorm, rotary embeddings (rotate_half / NeoX
// layout, as transformers' Llama), SwiGLU, matrix × vector, and causal attention over a KV cache.

/// `y[T×out] = x[T×in] · Wᵀ + beta·y`, with a PyTorch-layout weight `W[out×in]`; T = 1 runs as a GEMV.
///
/// - Parameters:
///   - useGEMV: run single rows through `gemv` (else `cblas_sgemm` with m = 1).
/// - Complexity: O(T·in·out).
@inline(__always)
public func linearRows(_ x: UnsafePointer<Float>, rows t: Int, inFeatures: Int, ldx: Int? = nil,
                       weight: UnsafePointer<Float>, outFeatures: Int,
                       into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, beta: Float = 0,
                       useGEMV: Bool = true) {
    let ldx = ldx ?? inFeatures, ldy = ldy ?? outFeatures
    if t == 1 && useGEMV {
        gemv(weight, rows: outFeatures, cols: inFeatures, x: x, into: y, beta: beta)
    } else {
        BLAS.sgemm(transB: true, m: t, n: outFeatures, k: inFeatures, a: x, lda: ldx,
                   b: weight, ldb: inFeatures, beta: beta, c: y, ldc: ldy)
    }
}

/// `y = W·x + beta·y` for a row-major `W[rows×cols]`: rows split over `Parallel.threads` in contiguous
/// halves (one sequential stream per core: interleaving rows or streaming two rows at once measured
/// slower here), each dot product with four 16-lane fused multiply-add accumulators. Decode is bound by
/// reading W once per token; fewer instructions per byte leave the core more loads in flight.
///
/// - Complexity: O(rows·cols).
public func gemv(_ w: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>,
                 into y: UnsafeMutablePointer<Float>, beta: Float = 0) {
    let ys = UncheckedSendable(y)
    Parallel.forEachChunk(rows, minChunk: 64, hot: true) { range in
        let xr = UnsafeRawPointer(x)
        for r in range {
            let row = UnsafeRawPointer(w + r * cols)
            var a0 = FloatVector(repeating: 0), a1 = a0, a2 = a0, a3 = a0
            var i = 0
            while i + 64 <= cols {
                let o = i * 4
                a0.addProduct(row.loadUnaligned(fromByteOffset: o, as: FloatVector.self), xr.loadUnaligned(fromByteOffset: o, as: FloatVector.self))
                a1.addProduct(row.loadUnaligned(fromByteOffset: o + 64, as: FloatVector.self), xr.loadUnaligned(fromByteOffset: o + 64, as: FloatVector.self))
                a2.addProduct(row.loadUnaligned(fromByteOffset: o + 128, as: FloatVector.self), xr.loadUnaligned(fromByteOffset: o + 128, as: FloatVector.self))
                a3.addProduct(row.loadUnaligned(fromByteOffset: o + 192, as: FloatVector.self), xr.loadUnaligned(fromByteOffset: o + 192, as: FloatVector.self))
                i += 64
            }
            while i + 16 <= cols {
                a0.addProduct(row.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self), xr.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self))
                i += 16
            }
            var sum = ((a0 + a1) + (a2 + a3)).sum()
            while i < cols { sum += w[r * cols + i] * x[i]; i += 1 }
            ys.value[r] = beta == 0 ? sum : sum + beta * ys.value[r]
        }
    }
}

/// Sets each of `rows` rows of `y` (stride `ldy`) to `bias[0..<count]`.
@inline(__always)
public func broadcastRows(_ bias: UnsafePointer<Float>, count: Int, rows: Int,
                          into y: UnsafeMutablePointer<Float>, ldy: Int) {
    for r in 0..<rows { (y + r * ldy).update(from: bias, count: count) }
}

/// RMS normalisation of `rows` rows of width `d`: `dst = src / √(mean(src²) + eps) · γ` (src unchanged).
///
/// - Complexity: O(rows·d).
public func rmsNormRows(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, rows: Int, width d: Int,
                        weight: UnsafePointer<Float>, eps: Float) {
    for r in 0..<rows {
        let x = src + r * d, y = dst + r * d
        var acc = FloatVector(repeating: 0)
        var i = 0
        let raw = UnsafeRawPointer(x)
        while i + 16 <= d {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self)
            acc += v * v
            i += 16
        }
        var ss = acc.sum()
        while i < d { ss += x[i] * x[i]; i += 1 }
        let inv = 1 / (ss / Float(d) + eps).squareRoot()
        for j in 0..<d { y[j] = (x[j] * inv) * weight[j] }
    }
}

/// Fills `cos`/`sin` (`[positions.count, invFreq.count]`) with `cos(p·f)`, `sin(p·f)`; the angle is
/// rounded to f32 first, as transformers computes `position · inv_freq` in float32.
public func ropeTables(invFreq: [Float], positions: some Sequence<Int>,
                       cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
    let half = invFreq.count
    for (r, p) in positions.enumerated() {
        let fp = Float(p)
        for i in 0..<half {
            let angle = Double(fp * invFreq[i])
            cos[r * half + i] = Float(Foundation.cos(angle))
            sin[r * half + i] = Float(Foundation.sin(angle))
        }
    }
}


/// Rotary embedding in place over `heads` heads of width `headDim` in each of `rows` rows (stride `ld`),
/// rotate_half layout: `x[i]' = x[i]·c − x[i+h]·s`, `x[i+h]' = x[i+h]·c + x[i]·s` with h = headDim/2.
///
/// - Parameters:
///   - cos, sin: `[rows, headDim/2]`, from `ropeTables`.
/// - Complexity: O(rows·heads·headDim).
public func applyRoPE(_ x: UnsafeMutablePointer<Float>, rows: Int, ld: Int, heads: Int, headDim: Int,
                      cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
    let half = headDim / 2
    for r in 0..<rows {
        let c = cos + r * half, s = sin + r * half
        for h in 0..<heads {
            let a = x + r * ld + h * headDim, b = a + half
            for i in 0..<half {
                let x1 = a[i], x2 = b[i]
                a[i] = x1 * c[i] - x2 * s[i]
                b[i] = x2 * c[i] + x1 * s[i]
            }
        }
    }
}

/// SwiGLU: `out[r, i] = silu(gu[r, i]) · gu[r, inner + i]` for a fused gate/up projection `gu[rows, 2·inner]`.
///
/// - Complexity: O(rows·inner).
public func swiGLU(_ gu: UnsafePointer<Float>, rows: Int, inner: Int, into out: UnsafeMutablePointer<Float>) {
    let raw = UnsafeRawPointer(gu), oraw = UnsafeMutableRawPointer(out)
    for r in 0..<rows {
        let g = r * 2 * inner, o = r * inner
        var i = 0
        while i + 16 <= inner {
            let gv = raw.loadUnaligned(fromByteOffset: (g + i) * 4, as: FloatVector.self)
            let uv = raw.loadUnaligned(fromByteOffset: (g + inner + i) * 4, as: FloatVector.self)
            oraw.storeBytes(of: gv / (1 + vexp(-gv)) * uv, toByteOffset: (o + i) * 4, as: FloatVector.self)
            i += 16
        }
        while i < inner {
            var gv = FloatVector(repeating: 0)
            gv[0] = gu[g + i]
            let s = (gv / (1 + vexp(-gv)))[0]
            out[o + i] = s * gu[g + inner + i]
            i += 1
        }
    }
}

/// Causal scaled-dot-product attention of `tq` new queries over `tk` cached keys (the new ones last),
/// with grouped-query sharing, writing into caller-owned memory (no allocation).
///
/// Query row i sits at position `tk − tq + i` and sees keys `0...(tk − tq + i)`.
/// - Parameters:
///   - q: `[tq, heads·headDim]`, stride `ldq`.
///   - k, v: `[tk, kvHeads·headDim]`, stride `ldkv` (the cache, read in place).
///   - out: `[tq, heads·headDim]`, contiguous.
///   - scratch: at least `attentionScratchCount(tq:tk:heads:kvHeads:)` floats.
/// - Complexity: O(heads·tq·tk·headDim).
public func cachedAttention(q: UnsafePointer<Float>, ldq: Int, tq: Int,
                            k: UnsafePointer<Float>, v: UnsafePointer<Float>, ldkv: Int, tk: Int,
                            heads: Int, kvHeads: Int, headDim: Int,
                            out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
    let group = heads / kvHeads, width = heads * headDim
    let scale = 1 / Float(headDim).squareRoot()
    let past = tk - tq
    let ldTk = (tk + 15) / 16 * 16   // score rows padded to whole vectors
    if tq == 1 {
        // One query: the `group` heads sharing a kv head form a [group, headDim] matrix.
        for g in 0..<kvHeads {
            let qg = q + g * group * headDim
            BLAS.sgemm(transB: true, m: group, n: tk, k: headDim, alpha: scale,
                       a: qg, lda: headDim, b: k + g * headDim, ldb: ldkv, c: scratch, ldc: ldTk)
            softmaxCausal(scratch, rows: group, ld: ldTk, firstValid: tk, growth: 0)
            BLAS.sgemm(m: group, n: headDim, k: tk, a: scratch, lda: ldTk, b: v + g * headDim, ldb: ldkv,
                       c: out + g * group * headDim, ldc: headDim)
        }
        return
    }
    // Many queries: blocks of query rows, each against only the keys it may see. Per block, the
    // scores of every head are computed first, so that the softmax runs over all of them in parallel.
    let block = attentionBlockRows
    var r0 = 0
    while r0 < tq {
        let r1 = min(tq, r0 + block), n = past + r1, rows = r1 - r0
        let ldn = (n + 15) / 16 * 16
        for h in 0..<heads {   // scores of head h: [rows, n] at scratch + h·rows·ldn
            BLAS.sgemm(transB: true, m: rows, n: n, k: headDim, alpha: scale,
                       a: q + r0 * ldq + h * headDim, lda: ldq, b: k + (h / group) * headDim, ldb: ldkv,
                       c: scratch + h * rows * ldn, ldc: ldn)
        }
        let firstValid = past + r0 + 1
        Parallel.forEachChunk(heads * rows, minChunk: 32) { range in
            for idx in range {   // idx = h·rows + row
                softmaxCausal(scratch + idx * ldn, rows: 1, ld: ldn, firstValid: firstValid + idx % rows)
            }
        }
        for h in 0..<heads {
            BLAS.sgemm(m: rows, n: headDim, k: n, a: scratch + h * rows * ldn, lda: ldn, b: v + (h / group) * headDim, ldb: ldkv,
                       c: out + r0 * width + h * headDim, ldc: width)
        }
        r0 = r1
    }
}

/// Query rows per block in `cachedAttention`'s multi-query path.
public let attentionBlockRows = 128

/// Floats of scratch `cachedAttention` needs.
public func attentionScratchCount(tq: Int, tk: Int, heads: Int, kvHeads: Int) -> Int {
    (tq == 1 ? heads / kvHeads : heads * min(tq, attentionBlockRows)) * ((tk + 15) / 16 * 16)
}

/// Causal softmax in place over `rows` rows of stride `ld` (a multiple of 16): row r uses its first
/// `firstValid + growth·r` columns (capped at `ld`) and sets the rest of its `ld` columns to 0.
/// Whole 16-lane vectors only: the last partial vector is masked, never read lane by lane.
///
/// - Complexity: O(rows·ld).
@inlinable
public func softmaxCausal(_ p: UnsafeMutablePointer<Float>, rows: Int, ld: Int, firstValid: Int, growth: Int = 1) {
    precondition(ld % 16 == 0, "softmaxCausal: ld \(ld) is not a multiple of 16")
    let raw = UnsafeMutableRawPointer(p)
    let lanes = SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    let negInf = FloatVector(repeating: -.infinity), zero = FloatVector(repeating: 0)
    for r in 0..<rows {
        let base = r * ld * 4
        let n = min(ld, firstValid + growth * r)
        let full = n / 16, rem = n % 16
        let tailMask = lanes .>= SIMD16<Int32>(repeating: Int32(rem))   // lanes past the valid ones
        var mv = negInf
        // (`pointwiseMax` is lane-by-lane in the standard library; compare + select vectorises.)
        for v in 0..<full {
            let x = raw.loadUnaligned(fromByteOffset: base + v * 64, as: FloatVector.self)
            mv.replace(with: x, where: x .> mv)
        }
        if rem > 0 {
            let x = raw.loadUnaligned(fromByteOffset: base + full * 64, as: FloatVector.self).replacing(with: -.infinity, where: tailMask)
            mv.replace(with: x, where: x .> mv)
        }
        var m8 = mv.lowHalf, h8 = mv.highHalf
        m8.replace(with: h8, where: h8 .> m8)
        var m4 = m8.lowHalf, h4 = m8.highHalf
        m4.replace(with: h4, where: h4 .> m4)
        let mvec = FloatVector(repeating: max(max(m4[0], m4[1]), max(m4[2], m4[3])))
        var sumV = zero
        for v in 0..<full {
            let e = vexp(raw.loadUnaligned(fromByteOffset: base + v * 64, as: FloatVector.self) - mvec)
            raw.storeBytes(of: e, toByteOffset: base + v * 64, as: FloatVector.self)
            sumV += e
        }
        if rem > 0 {
            let e = vexp(raw.loadUnaligned(fromByteOffset: base + full * 64, as: FloatVector.self) - mvec)
                .replacing(with: 0, where: tailMask)
            raw.storeBytes(of: e, toByteOffset: base + full * 64, as: FloatVector.self)
            sumV += e
        }
        let s8 = sumV.lowHalf + sumV.highHalf, s4 = s8.lowHalf + s8.highHalf, s2 = s4.lowHalf + s4.highHalf
        let inv = FloatVector(repeating: 1 / (s2[0] + s2[1]))
        let used = (n + 15) / 16
        for v in 0..<used {
            raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: base + v * 64, as: FloatVector.self) * inv,
                           toByteOffset: base + v * 64, as: FloatVector.self)
        }
        for v in used..<(ld / 16) { raw.storeBytes(of: zero, toByteOffset: base + v * 64, as: FloatVector.self) }
    }
}
