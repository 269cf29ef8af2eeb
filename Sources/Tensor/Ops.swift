import Foundation

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
    var y = Tensor(zeros: [t, outF])
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
                var mean: Float = 0
                for i in 0..<d { mean += row[i] }
                mean /= Float(d)
                var v: Float = 0
                for i in 0..<d { let c = row[i] - mean; v += c * c }
                v /= Float(d)
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
                var ss: Float = 0
                for i in 0..<d { ss += row[i] * row[i] }
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
        var m = -Float.infinity
        for i in 0..<n { m = max(m, row[i]) }
        var sumV = FloatVector(repeating: 0)
        var i = 0
        let raw = UnsafeMutableRawPointer(row)
        while i + 16 <= n {
            let e = vexp(raw.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self) - m)
            raw.storeBytes(of: e, toByteOffset: i * 4, as: FloatVector.self)
            sumV += e
            i += 16
        }
        var sum = sumV.sum()
        if i < n {
            var v = FloatVector(repeating: -.infinity)
            for j in 0..<(n - i) { v[j] = row[i + j] }
            let e = vexp(v - m)
            for j in 0..<(n - i) { row[i + j] = e[j]; sum += e[j] }
        }
        let inv = 1 / sum
        for j in 0..<n { row[j] *= inv }
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
    let tq = q.rows, tk = k.rows
    let qStride = heads * headDim, kvStride = kvHeads * headDim
    precondition(q.cols == qStride && k.cols == kvStride && v.cols == kvStride && v.rows == tk,
                 "attention: q \(q.shape) k \(k.shape) v \(v.shape) heads \(heads)/\(kvHeads)×\(headDim)")
    precondition(heads % kvHeads == 0, "attention: \(heads) heads not divisible by \(kvHeads) kv heads")
    let group = heads / kvHeads
    let s = scale ?? 1 / Float(headDim).squareRoot()
    var out = Tensor(zeros: [tq, qStride])
    var mean: [Float] = returnMeanProbs ? [Float](repeating: 0, count: tq * tk) : []
    var probs = [Float](repeating: 0, count: tq * tk)
    q.data.withUnsafeBufferPointer { qp in
    k.data.withUnsafeBufferPointer { kp in
    v.data.withUnsafeBufferPointer { vp in
    out.data.withUnsafeMutableBufferPointer { op in
    probs.withUnsafeMutableBufferPointer { pp in
        let P = pp.baseAddress!
        for h in 0..<heads {
            let kvh = h / group
            // scores[Tq×Tk] = s · Q_h · K_hᵀ
            BLAS.sgemm(transB: true, m: tq, n: tk, k: headDim, alpha: s,
                       a: qp.baseAddress! + h * headDim, lda: qStride,
                       b: kp.baseAddress! + kvh * headDim, ldb: kvStride,
                       c: P, ldc: tk)
            if let off = causalOffset {
                softmaxRows(P, rows: tq, cols: tk, ld: tk, valid: { off + $0 + 1 })
            } else {
                softmaxRows(P, rows: tq, cols: tk, ld: tk)
            }
            if returnMeanProbs {
                let invH = 1 / Float(heads)
                for i in 0..<(tq * tk) { mean[i] += P[i] * invH }
            }
            // out_h[Tq×D] = P · V_h
            BLAS.sgemm(m: tq, n: headDim, k: tk,
                       a: P, lda: tk,
                       b: vp.baseAddress! + kvh * headDim, ldb: kvStride,
                       c: op.baseAddress! + h * headDim, ldc: qStride)
        }
    }}}}}
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
