// Reconnection policy for live sources: exponential backoff with seeded jitter, and the stall
// watchdog that turns "no packet for read_timeout_ms" into an aborted read.
import CFFmpeg
import Foundation
import SplitMix

/// How a live source retries after its stream stalls or ends: `initialMs` doubling on each failed
/// attempt up to `maxMs`, each delay scaled by a random factor in `[1 − jitter, 1 + jitter]`
/// drawn from a generator seeded with `seed` (so runs are reproducible).
///
/// Mirrors the pipeline YAML `reconnect: {initial_ms, max_ms}`.
public struct ReconnectPolicy: Sendable, Equatable {
    /// Delay before the first attempt, in milliseconds (> 0).
    public var initialMs: Int
    /// Largest delay before jitter, in milliseconds (≥ `initialMs`).
    public var maxMs: Int
    /// Relative jitter in [0, 1); 0.2 means ± up to 20 %.
    public var jitter: Double
    /// Give up (and throw from `next()`) after this many consecutive failed attempts; nil = never.
    public var maxAttempts: Int?
    /// Seed of the jitter generator.
    public var seed: UInt64

    /// - Parameters:
    ///   - initialMs: delay before the first attempt (default 500 ms).
    ///   - maxMs: cap of the doubling delay (default 8000 ms).
    ///   - jitter: relative jitter (default 0.2).
    ///   - maxAttempts: consecutive failures before giving up (default nil: never).
    ///   - seed: jitter seed (default 0).
    public init(initialMs: Int = 500, maxMs: Int = 8000, jitter: Double = 0.2, maxAttempts: Int? = nil, seed: UInt64 = 0) {
        self.initialMs = initialMs
        self.maxMs = maxMs
        self.jitter = jitter
        self.maxAttempts = maxAttempts
        self.seed = seed
    }

    /// Checks the values.
    /// - Parameter path: the source named in the error.
    /// - Throws: `MediaError.Kind.invalidArgument` naming the bad field and value.
    public func validate(path: String) throws {
        guard initialMs > 0 else {
            throw MediaError(.invalidArgument, path: path, "reconnect initial_ms must be > 0, got \(initialMs)")
        }
        guard maxMs >= initialMs else {
            throw MediaError(.invalidArgument, path: path, "reconnect max_ms (\(maxMs)) must be ≥ initial_ms (\(initialMs))")
        }
        guard jitter >= 0, jitter < 1 else {
            throw MediaError(.invalidArgument, path: path, "reconnect jitter must be in [0, 1), got \(jitter)")
        }
        if let maxAttempts, maxAttempts < 1 {
            throw MediaError(.invalidArgument, path: path, "reconnect max attempts must be ≥ 1, got \(maxAttempts)")
        }
    }
}

/// The delay sequence of a `ReconnectPolicy`: attempt k (1-based) waits
/// `min(initialMs · 2^(k−1), maxMs) · (1 + u)` ms with `u` uniform in `[−jitter, jitter]`.
///
/// Deterministic for a given seed; `reset()` after a success starts the doubling over (the
/// generator keeps its state, so later outages get fresh jitter).
public struct Backoff: Sendable {
    public let policy: ReconnectPolicy
    /// Consecutive failed attempts so far.
    public private(set) var attempt: Int = 0
    private var rng: SplitMix64

    public init(policy: ReconnectPolicy) {
        self.policy = policy
        self.rng = SplitMix64(seed: policy.seed)
    }

    /// The delay before the next attempt, in milliseconds; advances the attempt counter.
    /// - Returns: the jittered delay (≥ 1 ms).
    public mutating func nextDelayMs() -> Int {
        attempt += 1
        // Doubling without overflow: stop doubling once the cap is reached.
        var base = Double(policy.initialMs)
        var k = 1
        while k < attempt && base < Double(policy.maxMs) {
            base *= 2
            k += 1
        }
        base = min(base, Double(policy.maxMs))
        let u = (rng.nextUnit() * 2 - 1) * policy.jitter   // [−jitter, jitter)
        return max(1, Int((base * (1 + u)).rounded()))
    }

    /// Starts the doubling over (after a successful reconnect delivered frames).
    public mutating func reset() { attempt = 0 }
}

/// Owner of the C `atp_watchdog` installed as a format context's interrupt callback.
///
/// `arm(ms:)` sets a deadline measured from now; FFmpeg polls the callback while blocked in I/O
/// and aborts with `AVERROR_EXIT` once the deadline passed (`fired` is then true) or once
/// `close()` was called from any thread.
final class StallWatchdog: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<atp_watchdog>

    init(path: String) throws {
        guard let w = atp_watchdog_new() else {
            throw MediaError(.decode, path: path, "cannot allocate watchdog (out of memory)")
        }
        pointer = w
    }

    /// Deadline `ms` from now; `ms ≤ 0` disarms.
    func arm(ms: Int) { atp_watchdog_arm(pointer, Int64(ms)) }
    func disarm() { atp_watchdog_arm(pointer, 0) }
    func close() { atp_watchdog_close(pointer) }
    var isClosed: Bool { atp_watchdog_is_closed(pointer) != 0 }
    /// Whether the deadline (not `close()`) aborted the last blocking call.
    var fired: Bool { atp_watchdog_fired(pointer) != 0 }

    func install(on ctx: UnsafeMutablePointer<AVFormatContext>) { atp_watchdog_install(ctx, pointer) }

    deinit { atp_watchdog_free(pointer) }
}

/// Seconds on a monotonic clock (for pacing and outage lengths).
func monotonicSeconds() -> Double { Double(atp_monotonic_ns()) / 1e9 }
