// Handing freed memory back to the OS once the HTTP side is idle.
// glibc's malloc keeps blocks freed by other threads in its arenas: after 200 /events clients came and
// went for a minute, `atp serve` held 8–12 MB more than before, all of it free (a malloc_trim from a
// debugger returned it to within 1 % of the baseline). So when the last /events client leaves, the service
// trims once, after a short delay, if no client has come back by then.
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs `malloc_trim(0)` (glibc only; elsewhere nothing) a short while after ``poke()``, when `isIdle` still
/// holds then.
final class IdleTrim: @unchecked Sendable {
    private let lock = NSLock()
    private var scheduled = false
    private var count = 0
    private let queue = DispatchQueue(label: "atp.serve.trim", qos: .utility)
    private let delay: Double
    private let isIdle: @Sendable () -> Bool

    /// - Parameters:
    ///   - delay: seconds between a poke and the trim (pokes in between are merged).
    ///   - isIdle: checked when the delay has passed; no trim when it is false.
    init(delay: Double = 1, isIdle: @escaping @Sendable () -> Bool) {
        self.delay = delay
        self.isIdle = isIdle
    }

    /// Trims done so far.
    var trims: Int { lock.withLock { count } }

    /// Schedules a trim unless one is pending.
    func poke() {
        let schedule: Bool = lock.withLock {
            if scheduled { return false }
            scheduled = true
            return true
        }
        guard schedule else { return }
        queue.asyncAfter(deadline: .now() + delay) { [self] in
            lock.withLock { scheduled = false }
            guard isIdle() else { return }
            _ = Self.mallocTrim?(0)
            lock.withLock { count += 1 }
        }
    }

    /// glibc's `malloc_trim` (its header is not in Swift's Glibc module), looked up once; nil elsewhere.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let process = dlopen(nil, RTLD_NOW), let symbol = dlsym(process, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()
}
