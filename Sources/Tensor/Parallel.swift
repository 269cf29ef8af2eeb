import Dispatch

/// How many threads the Swift-side kernels split work over (OpenBLAS has its own setting).
public enum Parallel {
    nonisolated(unsafe) private static var _threads = 2
    /// Number of worker threads for element-wise kernels (≥ 1).
    public static var threads: Int {
        get { _threads }
        set { _threads = max(1, newValue) }
    }

    /// Runs `body(range)` over `0..<count` split into at most `threads` contiguous chunks.
    /// Work smaller than `minChunk` items per thread runs inline.
    /// With `hot`, the loop runs on `HotPool.shared` (workers that stay awake between loops: for the
    /// many short loops of a decode step) when that pool is free, else as without.
    @inlinable
    public static func forEachChunk(_ count: Int, minChunk: Int = 4096, hot: Bool = false, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, max(1, count / max(1, minChunk)))
        if parts <= 1 {
            body(0..<count)
            return
        }
        let step = (count + parts - 1) / parts
        if hot && HotPool.shared.run(parts: parts, helpers: threads - 1, { p in
            let lo = p * step
            let hi = min(count, lo + step)
            if lo < hi { body(lo..<hi) }
        }) { return }
        withoutActuallyEscaping(body) { escaping in
            // The chunks are disjoint; callers only write inside their own range.
            let work = UncheckedSendable(escaping)
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let lo = p * step
                let hi = min(count, lo + step)
                if lo < hi { work.value(lo..<hi) }
            }
        }
    }
}

/// Wraps a value that is shared across threads by construction (disjoint writes), so it may cross a `@Sendable` boundary.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
