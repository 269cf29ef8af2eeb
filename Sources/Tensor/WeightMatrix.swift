#if canImport(Glibc)
import Glibc
#endif

/// A read-only f32 weight matrix `[rows × cols]`, row-major, in memory laid out for streaming:
/// 2 MiB aligned and advised for transparent huge pages before its pages are first touched.
///
/// Decoding one token reads every weight once, so decode speed is the memory bandwidth the kernels
/// reach. With 4 KiB pages the hardware prefetchers stop at every page boundary and each page costs
/// a TLB walk; on this machine kind a GEMV over huge pages streams ~15–25 % faster. Where the kernel
/// refuses the advice (THP `never`), the matrix still works, on small pages.
public final class WeightMatrix: @unchecked Sendable {
    /// Number of rows (output features of a projection).
    public let rows: Int
    /// Number of columns (input features).
    public let cols: Int
    /// The values; immutable after `init` (the class is `Sendable` on that promise).
    public let pointer: UnsafePointer<Float>
    private let base: UnsafeMutableRawPointer

    /// Alignment of the storage: one huge page.
    public static let alignment = 2 << 20

    /// Copies `parts` (each a matrix with `cols` columns, or a vector when `cols` is 1) one after the
    /// other into a new matrix; `rows` is the sum of their rows.
    ///
    /// - Precondition: every part has `cols` columns.
    public init(concatenating parts: [Tensor]) {
        let cols = parts.first.map { $0.shape.count >= 2 ? $0.cols : 1 } ?? 1
        var rows = 0
        for p in parts {
            precondition(p.count % cols == 0, "WeightMatrix: a part of shape \(p.shape) does not have \(cols) columns")
            rows += p.count / cols
        }
        self.rows = rows
        self.cols = cols
        let bytes = max(1, rows * cols) * MemoryLayout<Float>.stride
        var raw: UnsafeMutableRawPointer?
        let rc = posix_memalign(&raw, Self.alignment, bytes)
        precondition(rc == 0 && raw != nil, "WeightMatrix: cannot allocate \(bytes) bytes")
        base = raw!
        #if canImport(Glibc)
        if bytes >= Self.alignment { _ = madvise(base, bytes, Int32(MADV_HUGEPAGE)) }
        #endif
        let dst = base.bindMemory(to: Float.self, capacity: rows * cols)
        var offset = 0
        for p in parts {
            p.data.withUnsafeBufferPointer { (dst + offset).update(from: $0.baseAddress!, count: p.count) }
            offset += p.count
        }
        pointer = UnsafePointer(dst)
    }

    /// Copies a 2-D tensor (or a vector, as one column).
    public convenience init(_ tensor: Tensor) { self.init(concatenating: [tensor]) }

    deinit { free(base) }

    /// Number of values.
    public var count: Int { rows * cols }

    /// The values as a tensor of shape `[rows, cols]` (a copy).
    public var tensor: Tensor { Tensor(shape: [rows, cols], data: Array(UnsafeBufferPointer(start: pointer, count: count))) }
}
