import CSpin
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Worker threads that stay awake between short parallel loops.
///
/// A decode step runs ~100 matrix–vector products of a few hundred microseconds each, separated by
/// small serial kernels. Waking a parked thread for each (Dispatch's `concurrentPerform`) costs tens
/// of microseconds and leaves a core idle meanwhile; here workers spin for `spinIterations` pause
/// hints after each loop before they park on a condition variable. The caller takes part in every
/// loop and parts are claimed dynamically, so a loop never waits for a worker that is slow to wake.
/// One loop runs at a time: a caller that finds the pool busy (another thread's loop, or a nested
/// call) gets `false` back and runs its loop some other way.
public final class HotPool: @unchecked Sendable {
    /// The process-wide pool, with `Parallel.threads − 1` workers (started on first use).
    public static let shared = HotPool()

    /// Pause hints a worker spins for before it parks (a pause takes ~20–50 ns here: ~0.05–0.1 ms).
    public let spinIterations: Int

    private let busy = Atomic<Bool>(false)
    /// `generation << 32 | parts << 16 | next part to claim`: one word, so that a worker claims a part
    /// only of the loop it saw published, checked against that loop's own part count (a
    /// compare-exchange fails once a newer loop replaced it).
    private let state = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let workerCount = Atomic<Int>(0)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    /// The current loop's body (a `Body`), published before its generation and read by a worker only
    /// after it claimed an unfinished part of that generation (so the caller still holds it).
    private let current = Atomic<UnsafeMutableRawPointer?>(nil)

    private final class Body {
        let run: (Int) -> Void
        init(_ run: @escaping (Int) -> Void) { self.run = run }
    }

    /// A pool of its own (tests); its workers, once started, live as long as the process, like the shared one's.
    init(spinIterations: Int = 2000) {
        self.spinIterations = spinIterations
        mutex = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    /// Workers started so far.
    public var workers: Int { workerCount.load(ordering: .relaxed) }

    /// Runs `body(p)` for every `p` in `0..<parts` on the caller and up to `helpers` workers, and
    /// returns after all parts ran. Returns `false`, running nothing, when the pool is busy.
    public func run(parts n: Int, helpers: Int, _ body: (Int) -> Void) -> Bool {
        precondition(n >= 0 && n < 1 << 16, "HotPool: \(n) parts (at most 65535)")
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        ensureWorkers(helpers)
        withoutActuallyEscaping(body) { escaping in
            let box = Body(escaping)
            current.store(Unmanaged.passUnretained(box).toOpaque(), ordering: .releasing)
            pending.store(n, ordering: .relaxed)
            let g = (generation(of: state.load(ordering: .relaxed)) + 1) & 0x7FFF_FFFF   // wraps after 2³¹ loops
            state.store(g << 32 | n << 16, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(cond)
                pthread_mutex_unlock(mutex)
            }
            claimAndRun(generation: g)
            while pending.load(ordering: .acquiring) > 0 { atp_spin_pause() }
            current.store(nil, ordering: .releasing)
            withExtendedLifetime(box) {}
        }
        return true
    }

    @inline(__always)
    private func generation(of s: Int) -> Int { (s >> 32) & 0x7FFF_FFFF }

    /// Claims and runs parts of loop `g` until none is left or a newer loop replaced it.
    private func claimAndRun(generation g: Int) {
        var s = state.load(ordering: .acquiring)
        while generation(of: s) == g {
            let next = s & 0xFFFF, parts = (s >> 16) & 0xFFFF
            guard next < parts else { return }
            let (done, now) = state.compareExchange(expected: s, desired: s + 1, ordering: .acquiringAndReleasing)
            if done {
                // Loop g holds an unfinished part (ours), so the caller has not replaced its body.
                // No retain here: a worker's reference must be gone before its part counts as done,
                // since the caller ends the body's life as soon as the last part is.
                Unmanaged<Body>.fromOpaque(current.load(ordering: .acquiring)!)._withUnsafeGuaranteedRef { $0.run(next) }
                pending.subtract(1, ordering: .releasing)
                s = state.load(ordering: .acquiring)
            } else {
                s = now
            }
        }
    }

    private func ensureWorkers(_ wanted: Int) {
        while workerCount.load(ordering: .relaxed) < wanted {
            workerCount.add(1, ordering: .relaxed)
            let me = Unmanaged.passRetained(self)   // a worker keeps its pool alive
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { arg in
                Unmanaged<HotPool>.fromOpaque(arg!).takeUnretainedValue().workerLoop()
                return nil
            }, me.toOpaque())
            precondition(rc == 0, "HotPool: cannot start a worker thread (pthread_create \(rc))")
            pthread_detach(thread)
        }
    }

    private func workerLoop() -> Never {
        var seen = generation(of: state.load(ordering: .acquiring))
        while true {
            var spins = 0
            while generation(of: state.load(ordering: .acquiring)) == seen {
                spins += 1
                if spins < spinIterations { atp_spin_pause(); continue }
                pthread_mutex_lock(mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while generation(of: state.load(ordering: .sequentiallyConsistent)) == seen { pthread_cond_wait(cond, mutex) }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(mutex)
            }
            seen = generation(of: state.load(ordering: .acquiring))
            claimAndRun(generation: seen)
        }
    }
}
