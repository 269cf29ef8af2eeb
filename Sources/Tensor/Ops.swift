import Foundation
import Dispatch

// The kernels every transformer needs. Activations are [tokens, features], row-major.

/// Activation functions by their `hidden_act` names in HF configs.
public enum Activation: String, Sendable, CaseIterable {
    case gelu
    case quickGelu = "quick_gelu"
    case geluTanh = "gelu_pytorch_tanh"
    case geluNew = "gelu_new"
    case silu
    case relu

    /// Parses an HF `hidden_act` value; `nil` for names not supported.
    public init?(hfName: String) {
        switch hfName {
        case "gelu_fast": self = .geluTanh
        case "swish": self = .silu
        default: self.init(rawValue: hfName)
        }
    }
}

/// `y[T×out] = x[T×in] · Wᵀ + b` with a PyTorch-layout weight `W[out×in]`.
///
/// - Complexity: O(T·in·out) through `cblas_sgemm`.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let t = x.rows, inF = x.cols, outF = weight.shape[0]
    precondition(weight.cols == inF, "linear: input has \(inF) features, weight \(weight.shape)")
    // Uninitialised output: sgemm overwrites it (beta 0) or the bias rows are copied in first.
    var y = Tensor(shape: [t, outF], data: [Float](unsafeUninitializedCapacity: t * outF) { _, n in n = t * outF })
    if let bias {
        precondition(bias.count == outF, "linear: bias \(bias.shape) for \(outF) outputs")
        y.data.withUnsafeMutableBufferPointer { yp in
            bias.data.withUnsafeBufferPointer { bp in
                for r in 0..<t { (yp.baseAddress! + r * outF).update(from: bp.baseAddress!, count: outF) }
            }
        }
    }
    x.data.withUnsafeBufferPointer { xp in
        weight.data.withUnsafeBufferPointer { wp in
            y.data.withUnsafeMutableBufferPointer { yp in
                BLAS.sgemm(transB: true, m: t, n: outF, k: inF,
                           a: xp.baseAddress!, lda: inF, b: wp.baseAddress!, ldb: inF,
                           beta: bias == nil ? 0 : 1, c: yp.baseAddress!, ldc: outF)
            }
        }
    }
    return y
}

/// Layer normalisation over the last dimension, in place: `(x − mean)/√(var + eps)·γ + β`.
///
/// - Complexity: O(count).
public func layerNorm(_ x: inout Tensor, weight: Tensor, bias: Tensor?, eps: Float) {
    let d = x.cols, rows = x.count / max(1, d)
    precondition(weight.count == d, "layerNorm: weight \(weight.shape) for width \(d)")
    x.data.withUnsafeMutableBufferPointer { xp in
        weight.data.withUnsafeBufferPointer { gp in
            let bp = bias?.data
            for r in 0..<rows {
                let row = xp.baseAddress! + r * d
                let mean = vectorSum(row, d) / Float(d)
                let v = vectorSumSquares(row, d, minus: mean) / Float(d)
                let inv = 1 / (v + eps).squareRoot()
                if let bp {
                    for i in 0..<d { row[i] = (row[i] - mean) * inv * gp[i] + bp[i] }
                } else {
                    for i in 0..<d { row[i] = (row[i] - mean) * inv * gp[i] }
                }
            }
        }
    }
}

/// Σ x[i], 16 lanes at a time.
@inlinable
func vectorSum(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    let raw = UnsafeRawPointer(p)
    var acc = FloatVector(repeating: 0)
    var i = 0
    while i + 16 <= n { acc += raw.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self); i += 16 }
    var s = acc.sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

/// Σ (x[i] − c)², 16 lanes at a time.
@inlinable
func vectorSumSquares(_ p: UnsafeMutablePointer<Float>, _ n: Int, minus c: Float) -> Float {
    let raw = UnsafeRawPointer(p)
    var acc = FloatVector(repeating: 0)
    var i = 0
    while i + 16 <= n { let v = raw.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self) - c; acc += v * v; i += 16 }
    var s = acc.sum()
    while i < n { let v = p[i] - c; s += v * v; i += 1 }
    return s
}

/// RMS normalisation over the last dimension, in place: `x / √(mean(x²) + eps) · γ`.
///
/// - Complexity: O(count).
public func rmsNorm(_ x: inout Tensor, weight: Tensor, eps: Float) {
    let d = x.cols, rows = x.count / max(1, d)
    precondition(weight.count == d, "rmsNorm: weight \(weight.shape) for width \(d)")
    x.data.withUnsafeMutableBufferPointer { xp in
        weight.data.withUnsafeBufferPointer { gp in
            for r in 0..<rows {
                let row = xp.baseAddress! + r * d
                let ss = vectorSumSquares(row, d, minus: 0)
                let inv = 1 / (ss / Float(d) + eps).squareRoot()
                for i in 0..<d { row[i] = (row[i] * inv) * gp[i] }
            }
        }
    }
}

/// Applies an activation in place, split over `Parallel.threads`.
///
/// - Complexity: O(count).
public func activate(_ x: inout Tensor, _ act: Activation) {
    let n = x.count
    x.data.withUnsafeMutableBufferPointer { xp in
        let base = xp.baseAddress!
        Parallel.forEachChunk(n, minChunk: 16384) { range in
            let p = base + range.lowerBound
            let c = range.count
            switch act {
            case .gelu:
                mapInPlace(p, count: c) { v in 0.5 * v * (1 + verf(v * 0.707_106_781_186_547_5)) }
            case .quickGelu:
                mapInPlace(p, count: c) { v in v / (1 + vexp(-1.702 * v)) }
            case .geluTanh, .geluNew:
                mapInPlace(p, count: c) { v in
                    let u = 0.797_884_560_802_865_4 * (v + 0.044_715 * v * v * v)
                    // tanh(u) = 1 − 2/(e^{2u} + 1)
                    let th = 1 - 2 / (vexp(2 * u) + 1)
                    return 0.5 * v * (1 + th)
                }
            case .silu:
                mapInPlace(p, count: c) { v in v / (1 + vexp(-v)) }
            case .relu:
                mapInPlace(p, count: c) { v in v.replacing(with: 0, where: v .< 0) }
            }
        }
    }
}

/// Softmax over each row of a `rows × cols` block with row stride `ld`, in place.
/// Only the first `valid(r)` columns of row r take part; the rest are set to 0 (causal masking).
///
/// - Complexity: O(rows·cols).
@inlinable
public func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int,
                        valid: (Int) -> Int = { _ in Int.max }) {
    for r in 0..<rows {
        let row = p + r * ld
        let n = min(cols, valid(r))
        let raw = UnsafeMutableRawPointer(row)
        var mV = FloatVector(repeating: -.infinity)
        var i = 0
        while i + 16 <= n {
            mV = pointwiseMax(mV, raw.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self))
            i += 16
        }
        var m = mV.max()
        while i < n { m = max(m, row[i]); i += 1 }
        var sumV = FloatVector(repeating: 0)
        i = 0
        while i + 16 <= n {
            let e = vexp(raw.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self) - m)
            raw.storeBytes(of: e, toByteOffset: i * 4, as: FloatVector.self)
            sumV += e
            i += 16
        }
        var sum = sumV.sum()
        if i < n {
            // Tail: through a 16-float scratch buffer (lane-by-lane SIMD subscripts are slow).
            let rem = n - i
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { tmp in
                let t = tmp.baseAddress!
                t.initialize(repeating: -.infinity, count: 16)
                t.update(from: row + i, count: rem)
                let e = vexp(UnsafeRawPointer(t).loadUnaligned(as: FloatVector.self) - m)
                UnsafeMutableRawPointer(t).storeBytes(of: e, as: FloatVector.self)
                for j in 0..<rem { sum += t[j] }
                (row + i).update(from: t, count: rem)
            }
        }
        let inv = 1 / sum
        i = 0
        while i + 16 <= n {
            raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self) * inv, toByteOffset: i * 4, as: FloatVector.self)
            i += 16
        }
        while i < n { row[i] *= inv; i += 1 }
        if n < cols { for j in n..<cols { row[j] = 0 } }
    }
}

/// Result of `attention`.
public struct AttentionOutput: Sendable {
    /// `[Tq, heads·headDim]`, heads concatenated.
    public var output: Tensor
    /// Head-mean attention probabilities `[Tq, Tk]`, when requested.
    public var meanProbs: Tensor?
}

/// Scaled dot-product attention over heads, with grouped-query sharing.
///
/// - Parameters:
///   - q: `[Tq, heads·headDim]`.
///   - k: `[Tk, kvHeads·headDim]`; `v` likewise.
///   - causalOffset: when set, query i may attend keys `0...(causalOffset + i)` (causal mask with a KV cache of that length).
///   - returnMeanProbs: also return the head-mean probabilities `[Tq, Tk]` (for the ATP saliency).
/// - Complexity: O(heads·Tq·Tk·headDim).
public func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, kvHeads: Int, headDim: Int,
                      scale: Float? = nil, causalOffset: Int? = nil,
                      returnMeanProbs: Bool = false) -> AttentionOutput {
    precondition(q.cols == heads * headDim && k.cols == kvHeads * headDim && v.cols == kvHeads * headDim && v.rows == k.rows,
                 "attention: q \(q.shape) k \(k.shape) v \(v.shape) heads \(heads)/\(kvHeads)×\(headDim)")
    return q.data.withUnsafeBufferPointer { qp in
        k.data.withUnsafeBufferPointer { kp in
            v.data.withUnsafeBufferPointer { vp in
                attention(q: qp.baseAddress!, ldq: q.cols, k: kp.baseAddress!, ldk: k.cols, v: vp.baseAddress!, ldv: v.cols,
                          tq: q.rows, tk: k.rows, heads: heads, kvHeads: kvHeads, headDim: headDim,
                          scale: scale, causalOffset: causalOffset, returnMeanProbs: returnMeanProbs)
            }
        }
    }
}

/// Attention over a fused projection `qkv[T, 3·heads·headDim]` (q, then k, then v columns): self-attention
/// without splitting the matrix.
public func attention(qkv: Tensor, heads: Int, headDim: Int, causalOffset: Int? = nil,
                      returnMeanProbs: Bool = false) -> AttentionOutput {
    let w = heads * headDim
    precondition(qkv.cols == 3 * w, "attention: fused qkv \(qkv.shape) for \(heads)×\(headDim)")
    return qkv.data.withUnsafeBufferPointer { p in
        attention(q: p.baseAddress!, ldq: 3 * w, k: p.baseAddress! + w, ldk: 3 * w, v: p.baseAddress! + 2 * w, ldv: 3 * w,
                  tq: qkv.rows, tk: qkv.rows, heads: heads, kvHeads: heads, headDim: headDim,
                  scale: nil, causalOffset: causalOffset, returnMeanProbs: returnMeanProbs)
    }
}

/// Attention on raw row-major matrices with leading dimensions (the kernel behind the other two).
public func attention(q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
                      v: UnsafePointer<Float>, ldv: Int, tq: Int, tk: Int,
                      heads: Int, kvHeads: Int, headDim: Int, scale: Float? = nil,
                      causalOffset: Int? = nil, returnMeanProbs: Bool = false) -> AttentionOutput {
    let qStride = heads * headDim
    precondition(heads % kvHeads == 0, "attention: \(heads) heads not divisible by \(kvHeads) kv heads")
    let group = heads / kvHeads
    let s = scale ?? 1 / Float(headDim).squareRoot()
    var out = Tensor(zeros: [tq, qStride])
    // Heads are independent: split them over the worker threads, each running single-threaded
    // BLAS on its own scratch (small per-head GEMMs gain nothing from BLAS threading).
    let parts = min(Parallel.threads, heads)
    var probs = [Float](repeating: 0, count: parts * tq * tk)
    var means = [Float](repeating: 0, count: returnMeanProbs ? parts * tq * tk : 0)
    let blasThreads = BLAS.threads
    if parts > 1 { BLAS.setThreads(1) }
    out.data.withUnsafeMutableBufferPointer { op in
    probs.withUnsafeMutableBufferPointer { pp in
    means.withUnsafeMutableBufferPointer { mp in
        let o = UncheckedSendable(op.baseAddress!), pb = UncheckedSendable(pp.baseAddress!)
        let mb = UncheckedSendable(returnMeanProbs ? mp.baseAddress : nil), qs = UncheckedSendable(q), ks = UncheckedSendable(k), vs = UncheckedSendable(v)
        let work: @Sendable (Int) -> Void = { part in
            let P = pb.value + part * tq * tk
            let M = mb.value.map { $0 + part * tq * tk }
            let lo = part * heads / parts, hi = (part + 1) * heads / parts
            for h in lo..<hi {
                let kvh = h / group
                // scores[Tq×Tk] = s · Q_h · K_hᵀ
                BLAS.sgemm(transB: true, m: tq, n: tk, k: headDim, alpha: s,
                           a: qs.value + h * headDim, lda: ldq, b: ks.value + kvh * headDim, ldb: ldk,
                           c: P, ldc: tk)
                if let off = causalOffset {
                    softmaxRows(P, rows: tq, cols: tk, ld: tk, valid: { off + $0 + 1 })
                } else {
                    softmaxRows(P, rows: tq, cols: tk, ld: tk)
                }
                if let M {
                    let invH = 1 / Float(heads)
                    for i in 0..<(tq * tk) { M[i] += P[i] * invH }
                }
                // out_h[Tq×D] = P · V_h
                BLAS.sgemm(m: tq, n: headDim, k: tk, a: P, lda: tk, b: vs.value + kvh * headDim, ldb: ldv,
                           c: o.value + h * headDim, ldc: qStride)
            }
        }
        if parts > 1 {
            DispatchQueue.concurrentPerform(iterations: parts, execute: work)
        } else {
            work(0)
        }
    }}}
    if parts > 1 { BLAS.setThreads(blasThreads) }
    var mean: [Float] = []
    if returnMeanProbs {
        mean = Array(means[0..<(tq * tk)])
        for p in 1..<parts { for i in 0..<(tq * tk) { mean[i] += means[p * tq * tk + i] } }
    }
    return AttentionOutput(output: out,
                           meanProbs: returnMeanProbs ? Tensor(shape: [tq, tk], data: mean) : nil)
}

/// `x += y` element-wise (residual connections).
///
/// - Complexity: O(count).
public func addInPlace(_ x: inout Tensor, _ y: Tensor) {
    precondition(x.count == y.count, "add: \(x.shape) vs \(y.shape)")
    x.data.withUnsafeMutableBufferPointer { xp in
        y.data.withUnsafeBufferPointer { yp in
            for i in 0..<xp.count { xp[i] += yp[i] }
        }
    }
}
