// `atp bench serve`: HTTP under load, on loopback only. It starts `atp serve PIPELINE.yaml` on 127.0.0.1
// with a random token (or attaches to a running server with --url/--pid/--token), and for --seconds
//   - keeps --clients SSE clients connecting to /events, reading for a random short time and dropping,
//   - adds and removes standing queries with the token,
//   - sends requests that must be refused (401/400/404/405/413) and checks that GET /queries never shows
//     their effect,
// while it samples the server's RSS (/proc/PID/status VmRSS) and open fds (/proc/PID/fd). Then it waits for
// the server to notice the closed sockets and checks that the fds are back to the warm-up baseline and the
// RSS within --rss-tolerance of it. Exits non-zero when a check fails.
import ArgumentParser
import Dispatch
import Foundation
import SplitMix
#if canImport(Glibc)
import Glibc
#endif

struct BenchServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Load atp serve's HTTP side on 127.0.0.1 (SSE clients that come and go, query changes, refused requests) and check RSS and fds.",
        discussion: """
            Starts 'atp serve PIPELINE --host 127.0.0.1 --port 0' with a random token (or attaches to a running \
            server: --url http://127.0.0.1:PORT --pid PID --token T). Exits non-zero when a check fails: a wrong \
            status code, a refused request that changed GET /queries, an SSE client that got no event or an \
            SSE error, fds not back to the baseline within --settle seconds, RSS after above the baseline by \
            more than --rss-tolerance, or a server that died.
            """)

    @Argument(help: "Pipeline YAML to serve (not with --url).")
    var pipeline: String?
    @Option(help: "Attach to a server already listening at this loopback URL instead of starting one.")
    var url: String?
    @Option(help: "With --url: the server's process id (RSS and fds are read from /proc/PID).")
    var pid: Int32?
    @Option(help: "The bearer token (default: $ATP_SERVE_TOKEN; a started server gets a random one).")
    var token: String?
    @Option(help: "SSE clients connected at once.")
    var clients: Int = 200
    @Option(help: "Seconds of load.")
    var seconds: Double = 60
    @Option(help: "Seconds of the same load before the baseline is taken.")
    var warmup: Double = 3
    @Option(help: "Most seconds to wait, after the clients leave, for the server's fds to return to the baseline.")
    var settle: Double = 20
    @Option(name: .customLong("rss-tolerance"), help: "Largest accepted RSS growth after the run, as a fraction of the baseline.")
    var rssTolerance: Double = 0.05
    @Option(name: .customLong("hold-max"), help: "Longest time an SSE session reads before it drops, seconds (the shortest is 0.1).")
    var holdMax: Double = 1.5
    @Option(help: "Seed of the clients' random behaviour.")
    var seed: UInt64 = 1
    @Option(name: .customLong("server-arg"), parsing: .unconditionalSingleValue,
            help: "An extra argument for the started 'atp serve' (repeatable), e.g. --server-arg=--threads --server-arg=1.")
    var serverArgs: [String] = []
    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    func validate() throws {
        guard (pipeline == nil) != (url == nil) else { throw ValidationError("give either PIPELINE or --url, not both or neither") }
        if url != nil && pid == nil { throw ValidationError("--url: needs --pid (RSS and fds are read from /proc/PID)") }
        guard (1...4096).contains(clients) else { throw ValidationError("--clients \(clients): must be in 1...4096") }
        guard seconds > 0 else { throw ValidationError("--seconds \(seconds): must be > 0") }
        guard warmup >= 0 else { throw ValidationError("--warmup \(warmup): must be ≥ 0") }
        guard settle > 0 else { throw ValidationError("--settle \(settle): must be > 0") }
        guard rssTolerance >= 0 else { throw ValidationError("--rss-tolerance \(rssTolerance): must be ≥ 0") }
        guard holdMax >= 0.1 else { throw ValidationError("--hold-max \(holdMax): must be ≥ 0.1") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let server = try ServerUnderLoad.open(self)
        defer { server.terminate() }
        let port = server.port
        let token = server.token
        printErr("atp bench serve: \(server.url) (pid \(server.pid)), \(clients) SSE clients for \(fmt(seconds)) s")

        // The standing queries before anything happens; refused requests must never change them.
        let initial = try fetchQueries(port: port)
        let existingID = initial.ids.first ?? "none"
        let battery = BadRequests.battery(port: port, token: token, existingID: existingID)
        let refusals = Refusals(port: port, battery: battery, initialIDs: initial.ids)
        // Every refused request once on the quiet server, then in rounds during the load, then once more after.
        refusals.round(stoppable: false)

        // Warm-up: the same load for a short time, so that lazily allocated state and the allocator's pools for
        // this many connections exist before the baseline; growth during the run is then what the load leaves.
        if warmup > 0 {
            printErr("warming up for \(fmt(warmup)) s…")
            let w = LoadPhase(port: port, token: token, clients: clients, hold: 0.1...holdMax, seed: seed ^ 0xAA, refusals: refusals)
            w.start()
            Thread.sleep(forTimeInterval: warmup)
            w.stop()
        }
        guard let baseline = quietSample(pid: server.pid, port: port, fdLimit: nil, limit: settle).sample else {
            throw CLIError("pid \(server.pid): the server is gone (\(server.tail))")
        }

        // Load.
        printErr("baseline: RSS \(fmt(mb(baseline.rssKB))) MB, \(baseline.fds) fds; loading for \(fmt(seconds)) s…")
        let load = LoadPhase(port: port, token: token, clients: clients, hold: 0.1...holdMax, seed: seed, refusals: refusals)
        var peak = baseline
        let t0 = monotonicSeconds()
        load.start()
        var nextReport = t0 + 10
        while monotonicSeconds() - t0 < seconds {
            Thread.sleep(forTimeInterval: 0.25)
            guard let s = ProcSample(pid: server.pid) else { break }
            peak = ProcSample(rssKB: max(peak.rssKB, s.rssKB), fds: max(peak.fds, s.fds))
            if monotonicSeconds() >= nextReport {
                let t = load.sse.snapshot
                printErr("  \(Int(monotonicSeconds() - t0)) s: \(t.connections) connections, \(t.events) events, "
                         + "RSS \(fmt(mb(s.rssKB))) MB, \(s.fds) fds")
                nextReport += 10
            }
        }
        let loadSeconds = monotonicSeconds() - t0
        load.stop()   // each load ends its request in flight
        printErr(String(format: "load stopped %.1f s after its end; waiting for the server to be quiet…", monotonicSeconds() - t0 - loadSeconds))
        refusals.round(stoppable: false)

        // After: the server must notice every closed socket; then the fds are back and the RSS settles.
        let (last, fdsBackAfter, sseClientsAfter) = quietSample(pid: server.pid, port: port, fdLimit: baseline.fds, limit: settle)
        let final = try? fetchQueries(port: port)
        let alive = ProcSample(pid: server.pid) != nil
        let exitStatus = server.terminate()

        // Checks.
        let sse = load.sse.snapshot
        let mut = load.mutator.snapshot
        let bad = refusals.snapshot
        let after = last ?? ProcSample(rssKB: 0, fds: -1)
        let fdsBack = fdsBackAfter != nil && after.fds <= baseline.fds
        let rssGrowth = Double(after.rssKB - baseline.rssKB) / Double(max(1, baseline.rssKB))
        var failures: [String] = []
        if sse.errorCount > 0 { failures.append("SSE errors: \(sse.errors.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))") }
        if sse.clientsWithData < clients { failures.append("\(clients - sse.clientsWithData) of \(clients) SSE clients got no event") }
        if mut.errorCount > 0 { failures.append("query changes failed: \(mut.errors.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))") }
        if mut.adds == 0 || mut.removes != mut.adds { failures.append("query adds \(mut.adds), removes \(mut.removes)") }
        if bad.wrong > 0 { failures.append("\(bad.wrong) refused requests got the wrong reply: \(bad.examples.joined(separator: "; "))") }
        if bad.rounds == 0 { failures.append("no round of refused requests completed") }
        if bad.intrusions > 0 { failures.append("GET /queries showed a refused change \(bad.intrusions) times: \(bad.intrusionExamples.joined(separator: "; "))") }
        if final?.body != initial.body { failures.append("GET /queries after the run differs from before: \(final?.body ?? "no reply") vs \(initial.body)") }
        if !fdsBack { failures.append("fds not back to \(baseline.fds) within \(fmt(settle)) s (\(after.fds), /events clients \(sseClientsAfter))") }
        if rssGrowth > rssTolerance {
            failures.append(String(format: "RSS after %.1f MB is %.1f %% above the baseline %.1f MB (limit %.1f %%)",
                                   mb(after.rssKB), rssGrowth * 100, mb(baseline.rssKB), rssTolerance * 100))
        }
        if !alive { failures.append("the server died during the run (\(server.tail))") }
        if let exitStatus, exitStatus != 0 { failures.append("the server exited with status \(exitStatus) (\(server.tail))") }

        let result = JSON.object([
            ("clients", .int(clients)), ("seconds", .double(loadSeconds)),
            ("connections", .int(sse.connections)), ("streams", .int(sse.streams)),
            ("streams_with_data", .int(sse.streamsWithData)), ("clients_with_data", .int(sse.clientsWithData)),
            ("events", .int(sse.events)), ("event_bytes", .int(sse.bytes)), ("peak_open", .int(sse.peakOpen)),
            ("longest_first_event_s", .double(sse.longestFirstEvent)),
            ("endings", .object(sse.endings.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("sse_errors", .object(sse.errors.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("query_adds", .int(mut.adds)), ("query_removes", .int(mut.removes)), ("query_errors", .int(mut.errorCount)),
            ("refused_kinds", .int(battery.count)), ("refused_rounds", .int(bad.rounds)), ("refused_checks", .int(bad.checks)),
            ("refused_wrong", .int(bad.wrong)),
            ("refused_by_status", .object(bad.byStatus.sorted { $0.key < $1.key }.map { (String($0.key), .int($0.value)) })),
            ("queries_checks", .int(bad.listChecks)), ("queries_intrusions", .int(bad.intrusions)),
            ("queries_unchanged", .bool(final?.body == initial.body && bad.intrusions == 0)),
            ("rss_kb", .object([("baseline", .int(baseline.rssKB)), ("peak", .int(peak.rssKB)), ("after", .int(after.rssKB))])),
            ("rss_growth", .double(rssGrowth)), ("rss_within_tolerance", .bool(rssGrowth <= rssTolerance)),
            ("fds", .object([("baseline", .int(baseline.fds)), ("peak", .int(peak.fds)), ("after", .int(after.fds))])),
            ("fds_back", .bool(fdsBack)), ("fds_back_s", fdsBackAfter.map { .double($0) } ?? .null),
            ("sse_clients_after", .int(sseClientsAfter)),
            ("server_exit", exitStatus.map { .int(Int($0)) } ?? .null),
            ("pass", .bool(failures.isEmpty)), ("failures", .array(failures.map { .string($0) })),
        ])
        if json { result.printLine() }
        let endings = sse.endings.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let statuses = bad.byStatus.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        printErr("""
            SSE: \(sse.connections) connections, \(sse.streams) streams (\(sse.streamsWithData) with data), \(sse.events) events \
            (\(fmt(Double(sse.bytes) / 1e6)) MB), peak \(sse.peakOpen) open; endings: \(endings); errors: \(sse.errorCount)
            clients that got events: \(sse.clientsWithData)/\(clients); longest wait for a session's first event \(String(format: "%.2f", sse.longestFirstEvent)) s
            queries: \(mut.adds) added, \(mut.removes) removed, \(mut.errorCount) errors
            refused requests: \(battery.count) kinds, \(bad.rounds) rounds (before, during, after the load), \(bad.checks) checks \
            (\(statuses)), \(bad.wrong) wrong; slowest \(bad.slowest.0) \(String(format: "%.0f", bad.slowest.1 * 1000)) ms
            GET /queries unchanged by them: \(final?.body == initial.body && bad.intrusions == 0 ? "yes" : "NO") \
            (\(bad.listChecks) checks, one after each round, and a comparison with the list before the bench)
            RSS: baseline \(fmt(mb(baseline.rssKB))) MB, peak \(fmt(mb(peak.rssKB))) MB, after \(fmt(mb(after.rssKB))) MB \
            (\(String(format: "%+.1f", rssGrowth * 100)) %, limit \(fmt(rssTolerance * 100)) %)
            fds: baseline \(baseline.fds), peak \(peak.fds), after \(after.fds) \
            (\(fdsBack ? "back in \(String(format: "%.2f", fdsBackAfter ?? 0)) s" : "NOT back within \(fmt(settle)) s")); /events clients after: \(sseClientsAfter)
            server: \(alive ? "alive" : "DEAD") after the run\(exitStatus.map { ", exit status \($0)" } ?? "")
            \(failures.isEmpty ? "PASS" : "FAIL: " + failures.joined(separator: " | "))
            """)
        if !failures.isEmpty { throw CLIError("bench serve: \(failures.count) check\(failures.count == 1 ? "" : "s") failed") }
    }

    // MARK: - Helpers

    /// Seconds waited after the server is quiet before its RSS is read: it hands freed memory back to the OS
    /// one second after its last /events client leaves.
    static let linger = 1.5

    /// Waits (up to `limit` seconds) until the server is quiet — no /events client, and at most `fdLimit` fds
    /// (nil: an fd count that held still for 0.4 s) — then ``linger`` seconds more, and samples it.
    /// - Returns: the sample (nil: the process is gone), the seconds it took to be quiet (nil: not within
    ///   `limit`; the sample is then taken at once) and the last `atp_sse_clients` read (-1: unreadable).
    private func quietSample(pid: Int32, port: Int, fdLimit: Int?, limit: Double) -> (sample: ProcSample?, quietAfter: Double?, sseClients: Int) {
        let start = monotonicSeconds()
        var previous: ProcSample?
        var clients = -1
        while monotonicSeconds() - start < limit {
            guard let s = ProcSample(pid: pid) else { return (nil, nil, clients) }
            clients = (try? sseClients(port: port)) ?? -1
            let fdsOK = fdLimit.map { s.fds <= $0 } ?? (previous?.fds == s.fds)
            if fdsOK && clients == 0 {
                let quietAfter = monotonicSeconds() - start
                Thread.sleep(forTimeInterval: Self.linger)
                return (ProcSample(pid: pid), quietAfter, clients)
            }
            previous = s
            Thread.sleep(forTimeInterval: fdLimit == nil ? 0.4 : 0.2)
        }
        return (ProcSample(pid: pid), nil, clients)
    }

    private func fetchQueries(port: Int) throws -> (body: String, ids: [String]) {
        let r = try LoopbackHTTP.request("GET", "/queries", port: port)
        guard r.status == 200, let list = try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [[String: Any]] else {
            throw CLIError("GET /queries: status \(r.status), body \(r.body.prefix(200))")
        }
        return (r.body, list.compactMap { $0["id"] as? String })
    }
}

/// `atp_sse_clients` from /metrics.
func sseClients(port: Int) throws -> Int {
    let r = try LoopbackHTTP.request("GET", "/metrics", port: port, timeout: 5)
    for line in r.body.split(separator: "\n") where line.hasPrefix("atp_sse_clients ") {
        if let v = Double(line.split(separator: " ").last ?? "") { return Int(v) }
    }
    throw CLIError("/metrics: no atp_sse_clients line")
}

private func mb(_ kb: Int) -> Double { Double(kb) / 1024 }
private func fmt(_ x: Double) -> String {
    x == x.rounded() && abs(x) < 1e9 ? String(Int(x)) : String(format: "%.1f", x)
}

/// A process's resident memory and open file descriptors, from /proc.
struct ProcSample {
    var rssKB: Int
    var fds: Int

    init(rssKB: Int, fds: Int) {
        self.rssKB = rssKB
        self.fds = fds
    }

    /// nil when the process is gone.
    init?(pid: Int32) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? ""),
              let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return nil }
        rssKB = kb
        self.fds = fds.count
    }
}

// MARK: - The server

/// The server under load: started here (`atp serve` from this executable) or attached to.
final class ServerUnderLoad: @unchecked Sendable {
    let port: Int
    let pid: Int32
    let token: String
    var url: String { "http://127.0.0.1:\(port)" }
    private let process: Process?
    private let log: StderrTail?

    private init(port: Int, pid: Int32, token: String, process: Process?, log: StderrTail?) {
        (self.port, self.pid, self.token, self.process, self.log) = (port, pid, token, process, log)
    }

    /// The last lines the started server wrote on stderr.
    var tail: String { log?.text.split(separator: "\n").suffix(3).joined(separator: " / ") ?? "attached" }

    static func open(_ o: BenchServe) throws -> ServerUnderLoad {
        let envToken = ProcessInfo.processInfo.environment["ATP_SERVE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if let url = o.url {
            guard let u = URL(string: url), u.scheme == "http", let host = u.host, ["127.0.0.1", "localhost"].contains(host),
                  let port = u.port else {
                throw CLIError("--url \(url): must be http://127.0.0.1:PORT (loopback only)")
            }
            guard let token = o.token ?? envToken else {
                throw CLIError("--url: needs the server's token (--token or ATP_SERVE_TOKEN) to check that others are refused")
            }
            guard ProcSample(pid: o.pid!) != nil else { throw CLIError("--pid \(o.pid!): no such process readable in /proc") }
            return ServerUnderLoad(port: port, pid: o.pid!, token: token, process: nil, log: nil)
        }
        var rng = SystemRandomNumberGenerator()
        let token = o.token ?? envToken ?? (0..<4).map { _ in String(format: "%016llx", rng.next() as UInt64) }.joined()
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        // Long enough for the whole bench; the bench ends it with SIGTERM.
        let duration = o.warmup + o.seconds + 3 * o.settle + 120
        p.arguments = ["serve", o.pipeline!, "--host", "127.0.0.1", "--port", "0", "--duration", String(Int(duration))] + o.serverArgs
        var env = ProcessInfo.processInfo.environment
        env["ATP_SERVE_TOKEN"] = token
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        let log = StderrTail(err.fileHandleForReading)
        try p.run()
        guard let port = log.waitForPort(timeout: 180, while: { p.isRunning }) else {
            if p.isRunning { p.terminate() }
            p.waitUntilExit()
            throw CLIError("atp serve \(o.pipeline!): no address on stderr (\(log.text.suffix(400)))")
        }
        return ServerUnderLoad(port: port, pid: p.processIdentifier, token: token, process: p, log: log)
    }

    /// Stops a started server (SIGTERM, then SIGKILL after 20 s) and returns its exit status; nil when attached.
    @discardableResult
    func terminate() -> Int32? {
        guard let p = process else { return nil }
        if p.isRunning {
            p.terminate()
            let deadline = monotonicSeconds() + 20
            while p.isRunning && monotonicSeconds() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        p.waitUntilExit()
        return p.terminationStatus
    }
}

/// Reads a child's stderr on its own thread, keeping the last 16 KiB.
final class StderrTail: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = ""
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                lock.withLock {
                    buffer += String(decoding: data, as: UTF8.self)
                    if buffer.utf8.count > 32 * 1024 { buffer = String(buffer.suffix(16 * 1024)) }
                }
            }
            done.signal()
        }
    }

    var text: String { lock.withLock { buffer } }

    /// The port in `atp: serving on http://127.0.0.1:PORT`, once written.
    func waitForPort(timeout: Double, while running: () -> Bool) -> Int? {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline && running() {
            let t = text
            if let r = t.range(of: #"serving on http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression),
               let port = Int(t[r].split(separator: ":").last ?? "") {
                return port
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }
}

// MARK: - The load

/// The three loads of a phase, each on its own thread: SSE clients, query changes, refused requests (their
/// counts kept across phases).
final class LoadPhase: @unchecked Sendable {
    let sse: SSELoad
    let mutator: QueryMutator
    let refusals: Refusals
    private let done = DispatchSemaphore(value: 0)

    init(port: Int, token: String, clients: Int, hold: ClosedRange<Double>, seed: UInt64, refusals: Refusals) {
        sse = SSELoad(port: port, clients: clients, hold: hold, seed: seed)
        mutator = QueryMutator(port: port, token: token, seed: seed &+ 1)
        self.refusals = refusals
    }

    func start() {
        refusals.resume()
        for body in [sse.run, mutator.run, refusals.run] as [@Sendable () -> Void] {
            Thread.detachNewThread { [done] in
                body()
                done.signal()
            }
        }
    }

    /// Stops the three loads and waits for them to end (each ends its current request first).
    func stop() {
        sse.stop()
        mutator.stop()
        refusals.stop()
        for _ in 0..<3 { done.wait() }
    }
}

/// Adds a query, waits, removes it, waits, … with the token. Every added query is removed before it stops.
final class QueryMutator: @unchecked Sendable {
    struct Totals {
        var adds = 0
        var removes = 0
        var errors: [String: Int] = [:]
        var errorCount: Int { errors.values.reduce(0, +) }
    }
    private let port: Int
    private let token: String
    private var random: SplitMix64
    private let lock = NSLock()
    private var totals = Totals()
    private var stopFlag = false

    init(port: Int, token: String, seed: UInt64) {
        (self.port, self.token, random) = (port, token, SplitMix64(seed: seed))
    }

    var snapshot: Totals { lock.withLock { totals } }
    func stop() { lock.withLock { stopFlag = true } }

    func run() {
        var n = 0
        let auth = [("Authorization", "Bearer \(token)")]
        while !lock.withLock({ stopFlag }) {
            let id = "bench-\(n)"
            // Texts repeat every 40 queries: both fresh embeddings and forgotten ones are exercised.
            let body = Array(#"{"id":"\#(id)","text":"Is there a pallet in bay \#(n % 40)?","gate":{"keep":0.\#(1 + n % 8)}}"#.utf8)
            var added = false
            do {
                let r = try LoopbackHTTP.request("POST", "/queries", port: port, headers: auth, body: body, timeout: 30)
                added = r.status == 201
                if added { lock.withLock { totals.adds += 1 } } else { record("POST → \(r.status)") }
            } catch {
                record("POST: \(error)")
            }
            Thread.sleep(forTimeInterval: random.uniform(0.05...0.3))
            do {
                // Removed (204) when it was added; else 404, unless a POST that timed out added it after all.
                let r = try LoopbackHTTP.request("DELETE", "/queries/\(id)", port: port, headers: auth, timeout: 30)
                if r.status == 204 { lock.withLock { totals.removes += 1 } }
                if added ? r.status != 204 : r.status != 404 && r.status != 204 { record("DELETE → \(r.status)") }
            } catch {
                record("DELETE: \(error)")
            }
            n += 1
            if lock.withLock({ stopFlag }) { break }
            Thread.sleep(forTimeInterval: random.uniform(0.05...0.3))
        }
    }

    private func record(_ e: String) { lock.withLock { totals.errors[e, default: 0] += 1 } }
}

/// Sends the battery of refused requests over and over; after each round GET /queries must still list
/// the initial queries and none that a refused request tried to add.
final class Refusals: @unchecked Sendable {
    struct Totals {
        var rounds = 0
        var checks = 0
        var wrong = 0
        var byStatus: [Int: Int] = [:]
        var examples: [String] = []
        var listChecks = 0
        var intrusions = 0
        var intrusionExamples: [String] = []
        /// The slowest refused request: its name and seconds.
        var slowest = ("", 0.0)
    }
    private let port: Int
    private let battery: [BadRequest]
    private let initialIDs: [String]
    private let lock = NSLock()
    private var totals = Totals()
    private var stopFlag = false

    init(port: Int, battery: [BadRequest], initialIDs: [String]) {
        (self.port, self.battery, self.initialIDs) = (port, battery, initialIDs)
    }

    var snapshot: Totals { lock.withLock { totals } }
    func stop() { lock.withLock { stopFlag = true } }
    /// Undoes ``stop()`` before the next phase's ``run()``.
    func resume() { lock.withLock { stopFlag = false } }

    /// Rounds until ``stop()``; the last may be partial.
    func run() {
        while !lock.withLock({ stopFlag }) {
            round(stoppable: true)
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    /// Sends the battery once (`stoppable`: ending early at ``stop()``), then checks GET /queries.
    func round(stoppable: Bool) {
        for b in battery {
            if stoppable && lock.withLock({ stopFlag }) { break }   // a partial round still ends with the list check
            var problem: String?
            var got = -1
            let t0 = monotonicSeconds()
            do {
                let r = try LoopbackHTTP.exchange(port: port, raw: b.raw, timeout: 15)
                got = r.status
                if r.status != b.expected {
                    problem = "\(b.name): \(r.status) (expected \(b.expected)) \(r.body.prefix(120))"
                } else if b.jsonError {
                    let obj = try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any]
                    if obj?["error"] as? String == nil || r.body.trimmingCharacters(in: .newlines).contains("\n") {
                        problem = "\(b.name): body is not one {\"error\":…} line: \(r.body.prefix(120))"
                    }
                }
            } catch {
                problem = "\(b.name): \(error)"
            }
            let dt = monotonicSeconds() - t0
            lock.withLock {
                if dt > totals.slowest.1 { totals.slowest = (b.name, dt) }
                totals.checks += 1
                if got >= 0 { totals.byStatus[got, default: 0] += 1 }
                if let problem {
                    totals.wrong += 1
                    if totals.examples.count < 5 && !totals.examples.contains(problem) { totals.examples.append(problem) }
                }
            }
        }
        // The refused requests changed nothing: every initial query is listed, none of theirs.
        var intrusion: String?
        do {
            let r = try LoopbackHTTP.request("GET", "/queries", port: port)
            let list = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [[String: Any]]) ?? []
            let ids = list.compactMap { $0["id"] as? String }
            if r.status != 200 { intrusion = "GET /queries → \(r.status)" }
            else if let missing = initialIDs.first(where: { !ids.contains($0) }) { intrusion = "\(missing) was removed" }
            else if let added = ids.first(where: { $0.hasPrefix(BadRequests.idPrefix) }) { intrusion = "\(added) was added" }
        } catch {
            intrusion = "GET /queries: \(error)"
        }
        lock.withLock {
            totals.rounds += 1
            totals.listChecks += 1
            if let intrusion {
                totals.intrusions += 1
                if totals.intrusionExamples.count < 3 { totals.intrusionExamples.append(intrusion) }
            }
        }
    }
}
