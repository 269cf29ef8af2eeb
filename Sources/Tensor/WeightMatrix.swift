import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// A read-only weight matrix `[rows × cols]`, row-major, in memory laid out for streaming:
/// 2 MiB aligned and advised for transparent huge pages before its pages are first touched.
///
/// Rows keep the precision they were given in (`WeightFormat`): f32, or a file's own F16, BF16,
/// Q8_0, Q4_0 or Q4_1 blocks. A matrix fused from parts of different formats (llama.cpp's "_M"
/// mixes put v in Q8_0 and q/k in Q4_0, say) holds one segment per run of rows of one format.
///
/// Decoding one token reads every weight once, so decode speed is the memory bandwidth the kernels
/// reach. With 4 KiB pages the hardware prefetchers stop at every page boundary and each page costs
/// a TLB walk; on this machine kind a GEMV over huge pages streams ~15–25 % faster. Where the kernel
/// refuses the advice (THP `never`), the matrix still works, on small pages.
public final class WeightMatrix: @unchecked Sendable {
    /// Rows `firstRow ..< firstRow + rows` stored in one format.
    public struct Segment: @unchecked Sendable {
        public let format: WeightFormat
        public let firstRow: Int
        public let rows: Int
        /// Bytes per row.
        public let rowBytes: Int
        /// The first row's bytes (immutable).
        public let data: UnsafeRawPointer
    }

    /// One part of a matrix: `rows` rows in `format`, written by `write` into the storage it is
    /// given (`rows × format.rowBytes(cols:)` bytes).
    public struct Part {
        public let format: WeightFormat
        public let rows: Int
        public let write: (UnsafeMutableRawPointer) -> Void

        public init(format: WeightFormat, rows: Int, write: @escaping (UnsafeMutableRawPointer) -> Void) {
            self.format = format
            self.rows = rows
            self.write = write
        }

        /// The rows of an f32 tensor with `cols` columns.
        public static func f32(_ t: Tensor, cols: Int) -> Part {
            Part(format: .f32, rows: t.count / cols) { dst in
                t.data.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
        }

        /// A part copied from `bytes` (valid until the matrix is built); `rowOrder[i]`, when given,
        /// names the source row of row i.
        public init(format: WeightFormat, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer, rowOrder: [Int]? = nil) {
            let rb = format.rowBytes(cols: cols) ?? 0
            precondition(bytes.count >= rows * rb, "WeightMatrix: a \(format) part of \(rows) rows has \(bytes.count) bytes")
            self.init(format: format, rows: rows) { dst in
                guard rows > 0, let src = bytes.baseAddress else { return }
                if let order = rowOrder {
                    for (i, r) in order.enumerated() { (dst + i * rb).copyMemory(from: src + r * rb, byteCount: rb) }
                } else {
                    dst.copyMemory(from: src, byteCount: rows * rb)
                }
            }
        }
    }

    /// Number of rows (output features of a projection).
    public let rows: Int
    /// Number of columns (input features).
    public let cols: Int
    /// The rows, by format, in order.
    public let segments: [Segment]
    /// Bytes the values occupy in memory.
    public let residentBytes: Int
    private let base: UnsafeMutableRawPointer

    /// Alignment of the storage: one huge page.
    public static let alignment = 2 << 20

    /// Copies `parts` (each a matrix with `cols` columns, or a vector when `cols` is 1) one after the
    /// other into a new f32 matrix; `rows` is the sum of their rows.
    ///
    /// - Precondition: every part has `cols` columns.
    public convenience init(concatenating parts: [Tensor]) {
        let cols = parts.first.map { $0.shape.count >= 2 ? $0.cols : 1 } ?? 1
        for p in parts {
            precondition(p.count % cols == 0, "WeightMatrix: a part of shape \(p.shape) does not have \(cols) columns")
        }
        self.init(cols: cols, parts: parts.map { Part.f32($0, cols: cols) })
    }

    /// Copies a 2-D tensor (or a vector, as one column).
    public convenience init(_ tensor: Tensor) { self.init(concatenating: [tensor]) }

    /// Copies `parts` one after the other; consecutive parts of one format share a segment.
    ///
    /// - Precondition: `cols` splits into whole blocks of every part's format.
    public init(cols: Int, parts: [Part]) {
        self.cols = cols
        var plan: [(format: WeightFormat, firstRow: Int, rows: Int, rowBytes: Int, offset: Int)] = []
        var rows = 0, bytes = 0
        for p in parts where p.rows > 0 {
            guard let rb = p.format.rowBytes(cols: cols) else {
                preconditionFailure("WeightMatrix: \(cols) columns do not split into \(p.format) blocks")
            }
            if let last = plan.last, last.format == p.format {
                plan[plan.count - 1].rows += p.rows
            } else {
                bytes = (bytes + 63) / 64 * 64
                plan.append((p.format, rows, p.rows, rb, bytes))
            }
            rows += p.rows
            bytes += p.rows * rb
        }
        self.rows = rows
        residentBytes = bytes
        let allocated = max(1, bytes)
        var raw: UnsafeMutableRawPointer?
        let rc = posix_memalign(&raw, Self.alignment, allocated)
        precondition(rc == 0 && raw != nil, "WeightMatrix: cannot allocate \(allocated) bytes")
        let storage = raw!
        #if canImport(Glibc)
        if allocated >= Self.alignment { _ = madvise(storage, allocated, Int32(MADV_HUGEPAGE)) }
        #endif
        var dst = 0, seg = 0
        for p in parts {
            // The segment holding row `dst`, and the byte position of that row.
            while seg + 1 < plan.count && plan[seg + 1].firstRow <= dst { seg += 1 }
            if p.rows > 0 { p.write(storage + plan[seg].offset + (dst - plan[seg].firstRow) * plan[seg].rowBytes) }
            dst += p.rows
        }
        base = storage
        segments = plan.map { Segment(format: $0.format, firstRow: $0.firstRow, rows: $0.rows, rowBytes: $0.rowBytes,
                                      data: UnsafeRawPointer(storage + $0.offset)) }
    }

    deinit { free(base) }

    /// Number of values.
    public var count: Int { rows * cols }

    /// Whether every row is f32 (then `pointer` is valid).
    public var isF32: Bool { segments.count <= 1 && (segments.first?.format ?? .f32) == .f32 }

    /// The f32 values, row-major.
    ///
    /// - Precondition: `isF32`.
    public var pointer: UnsafePointer<Float> {
        precondition(isF32, "WeightMatrix: f32 values asked of a matrix stored as \(segments.map(\.format))")
        return UnsafePointer(base.assumingMemoryBound(to: Float.self))
    }

    /// Writes rows `range` as f32 into `out` (`range.count × cols`, contiguous).
    public func dequantize(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        for s in segments {
            let lo = max(range.lowerBound, s.firstRow), hi = min(range.upperBound, s.firstRow + s.rows)
            guard lo < hi else { continue }
            atp_dequant_rows(s.format.rawValue, s.data, s.rowBytes, Int32(lo - s.firstRow), Int32(hi - s.firstRow), Int32(cols),
                             out + (lo - range.lowerBound) * cols, cols)
        }
    }

    /// The values as an f32 tensor of shape `[rows, cols]` (a copy).
    public var tensor: Tensor {
        var data = [Float](repeating: 0, count: count)
        data.withUnsafeMutableBufferPointer { dequantize(rows: 0..<rows, into: $0.baseAddress!) }
        return Tensor(shape: [rows, cols], data: data)
    }
}
