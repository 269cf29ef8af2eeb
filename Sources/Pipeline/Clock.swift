// Monotonic time sources for the stage graph: a real one and a manual one for tests.
import Dispatch
import Foundation

/// A monotonic source of time, in nanoseconds since an arbitrary origin.
///
/// Stages, budgets and the profiler read time only through a `Clock`, so tests can drive them
/// with a ``ManualClock`` and get deterministic durations.
public protocol Clock: Sendable {
    /// The current time in nanoseconds since the clock's origin. Never decreases.
    func nowNanoseconds() -> UInt64
}

extension Clock {
    /// The current time as a `Duration` since the clock's origin.
    public func now() -> Duration { .nanoseconds(Int64(clamping: nowNanoseconds())) }
}

/// The system's monotonic clock (`DispatchTime.now().uptimeNanoseconds`).
public struct SystemClock: Clock {
    /// Creates the system clock.
    public init() {}

    public func nowNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}

/// A clock that only moves when a test advances it. Thread-safe.
public final class ManualClock: Clock, @unchecked Sendable {
    private let lock = NSLock()
    private var nanos: UInt64

    /// Creates a manual clock.
    /// - Parameter startNanoseconds: the initial reading.
    public init(startNanoseconds: UInt64 = 0) { nanos = startNanoseconds }

    public func nowNanoseconds() -> UInt64 { lock.withLock { nanos } }

    /// Moves the clock forward.
    /// - Parameter nanoseconds: how far to move it.
    public func advance(nanoseconds: UInt64) { lock.withLock { nanos &+= nanoseconds } }

    /// Moves the clock forward by a whole number of milliseconds (may be fractional).
    /// - Parameter milliseconds: how far to move it; negative values are ignored.
    public func advance(milliseconds: Double) {
        guard milliseconds > 0 else { return }
        advance(nanoseconds: UInt64((milliseconds * 1e6).rounded()))
    }
}
