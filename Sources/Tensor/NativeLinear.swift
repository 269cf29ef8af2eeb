import CKernels
import Synchronization

// Projections over weights kept in their own precision (`WeightMatrix` segments that are not f32).
//
// One row of activations (a decode step): a GEMV per segment on the hot worker pool. Block formats
// multiply against the activations quantised once to 8 bits per 32-element block, with integer dot
// products (`atp_gemv_rows`); F16/BF16 rows are widened to f32 in registers. Several rows (prefill):
// panels of weight rows are widened to f32 in a reused scratch buffer and multiplied by
// `cblas_sgemm`, so prefill keeps the BLAS ceiling and pays one extra pass over the panel.

/// `y[T×out] = x[T×in] · Wᵀ + beta·y` for a weight matrix in any `WeightFormat`.
///
/// - Parameters:
///   - useGEMV: for f32 weights, run single rows through `gemv` (else `cblas_sgemm` with m = 1).
/// - Complexity: O(T·in·out).
public func linearRows(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int? = nil,
                       weight w: WeightMatrix, into y: UnsafeMutablePointer<Float>, ldy: Int? = nil,
                       beta: Float = 0, useGEMV: Bool = true) {
    if w.isF32 {
        linearRows(x, rows: t, inFeatures: w.cols, ldx: ldx, weight: w.pointer, outFeatures: w.rows,
                   into: y, ldy: ldy, beta: beta, useGEMV: useGEMV)
        return
    }
    let ldx = ldx ?? w.cols, ldy = ldy ?? w.rows
    if t <= nativeGEMVRowLimit {
        for r in 0..<t { nativeGEMV(w, x: x + r * ldx, into: y + r * ldy, beta: beta) }
        return
    }
    let panelRows = max(16, min(w.rows, nativePanelFloats / max(1, w.cols)))
    let scratch = DequantScratch.shared.take(panelRows * w.cols)
    defer { DequantScratch.shared.give(scratch) }
    for s in w.segments {
        var p0 = 0
        while p0 < s.rows {
            let n = min(panelRows, s.rows - p0)
            let dst = UncheckedSendable(scratch.pointer)
            Parallel.forEachChunk(n, minChunk: 16, hot: true) { range in
                atp_dequant_rows(s.format.rawValue, s.data, s.rowBytes, Int32(p0 + range.lowerBound), Int32(p0 + range.upperBound),
                                 Int32(w.cols), dst.value + range.lowerBound * w.cols, w.cols)
            }
            BLAS.sgemm(transB: true, m: t, n: n, k: w.cols, a: x, lda: ldx, b: scratch.pointer, ldb: w.cols,
                       beta: beta, c: y + s.firstRow + p0, ldc: ldy)
            p0 += n
        }
    }
}

/// Up to this many activation rows run as separate GEMVs (each streams the weights once); more run
/// as dequantised panels through `cblas_sgemm`.
public let nativeGEMVRowLimit = 2

/// Floats per dequantised panel (4 MiB: the panel stays in cache between being written and multiplied).
let nativePanelFloats = 1 << 20

/// `y = W·x + beta·y` for one activation row over every segment of `w`, rows split over the hot pool.
///
/// - Complexity: O(rows·cols).
public func nativeGEMV(_ w: WeightMatrix, x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, beta: Float = 0) {
    let cols = w.cols
    let needsQ8 = w.segments.contains { $0.format.isBlockQuantised }
    // The quantised activations live on the stack (a few KiB): no allocation per projection.
    withUnsafeTemporaryAllocation(of: atp_q8x_block.self, capacity: needsQ8 ? cols / 32 : 1) { xq in
        if needsQ8 { atp_quantize_q8x(x, Int32(cols), xq.baseAddress!) }
        let ys = UncheckedSendable(y), xqs = UncheckedSendable(UnsafePointer(xq.baseAddress!)), xs = UncheckedSendable(x)
        let segments = w.segments
        Parallel.forEachChunk(w.rows, minChunk: 64, hot: true) { range in
            for s in segments {
                let lo = max(range.lowerBound, s.firstRow), hi = min(range.upperBound, s.firstRow + s.rows)
                guard lo < hi else { continue }
                atp_gemv_rows(s.format.rawValue, s.data, s.rowBytes, Int32(lo - s.firstRow), Int32(hi - s.firstRow), Int32(cols),
                              xs.value, xqs.value, ys.value + s.firstRow, beta)
            }
        }
    }
}

/// Reused f32 buffers for dequantised panels: a prefill asks for one per projection, and a fresh
/// multi-megabyte allocation each time would cost its page faults every time.
final class DequantScratch: @unchecked Sendable {
    static let shared = DequantScratch()

    struct Buffer: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<Float>
        let capacity: Int
    }

    private let free = Mutex<[Buffer]>([])

    /// A buffer of at least `count` floats (one of the kept ones when large enough).
    func take(_ count: Int) -> Buffer {
        let reused: Buffer? = free.withLock { list in
            guard let i = list.firstIndex(where: { $0.capacity >= count }) else { return nil }
            return list.remove(at: i)
        }
        return reused ?? Buffer(pointer: .allocate(capacity: count), capacity: count)
    }

    /// Returns a buffer for reuse; keeps at most four (one per concurrent forward), freeing the smallest.
    func give(_ b: Buffer) {
        let dropped: Buffer? = free.withLock { list in
            list.append(b)
            guard list.count > 4 else { return nil }
            let i = list.indices.min { list[$0].capacity < list[$1].capacity }!
            return list.remove(at: i)
        }
        dropped?.pointer.deallocate()
    }
}
