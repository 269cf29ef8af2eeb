import XCTest
@testable import Media
#if canImport(Glibc)
import Glibc
#endif

/// Live-stream behaviour: backoff maths, the open watchdog, and a real RTSP outage.
///
/// The outage test needs Debian's `rtsp-server-perl` (binary `rtsp-server-perl`) and the
/// `ffmpeg` command-line tool; it is skipped with a message naming the package when either is
/// missing. It starts every process itself, kills all of them in `tearDown` (also on failure)
/// and bounds its own run time.
final class RTSPTests: XCTestCase {
    private var children: ChildProcesses!

    override func setUpWithError() throws {
        children = try ChildProcesses()
    }

    override func tearDown() {
        children?.stopAll()
    }

    // MARK: - backoff

    func testBackoffDoublesToTheCapWithBoundedSeededJitter() {
        let policy = ReconnectPolicy(initialMs: 200, maxMs: 1000, jitter: 0.2, seed: 7)
        var a = Backoff(policy: policy), b = Backoff(policy: policy)
        let bases = [200, 400, 800, 1000, 1000, 1000, 1000, 1000]
        var delays: [Int] = []
        for (k, base) in bases.enumerated() {
            let d = a.nextDelayMs()
            delays.append(d)
            XCTAssertEqual(a.attempt, k + 1)
            XCTAssertGreaterThanOrEqual(d, Int((Double(base) * 0.8).rounded(.down)), "attempt \(k + 1)")
            XCTAssertLessThanOrEqual(d, Int((Double(base) * 1.2).rounded(.up)), "attempt \(k + 1)")
            XCTAssertEqual(b.nextDelayMs(), d, "same seed, same delays")
        }
        XCTAssertNotEqual(Set(delays.suffix(5)).count, 1, "jitter varies the capped delays")
        var other = Backoff(policy: ReconnectPolicy(initialMs: 200, maxMs: 1000, jitter: 0.2, seed: 8))
        XCTAssertNotEqual(bases.map { _ in other.nextDelayMs() }, delays)

        var exact = Backoff(policy: ReconnectPolicy(initialMs: 200, maxMs: 1000, jitter: 0))
        XCTAssertEqual((0..<6).map { _ in exact.nextDelayMs() }, [200, 400, 800, 1000, 1000, 1000])
        exact.reset()
        XCTAssertEqual(exact.nextDelayMs(), 200, "reset starts the doubling over")

        var huge = Backoff(policy: ReconnectPolicy(initialMs: 1, maxMs: Int.max / 4, jitter: 0))
        for _ in 0..<200 { _ = huge.nextDelayMs() }   // no overflow trap
    }

    func testBadReconnectValuesAreErrors() {
        func message(_ p: ReconnectPolicy) -> String {
            do {
                _ = try VideoSources.open(url: "synthetic:shapes", options: SourceOptions(reconnect: p))
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(message(ReconnectPolicy(initialMs: 0)), "synthetic:shapes: reconnect initial_ms must be > 0, got 0")
        XCTAssertEqual(message(ReconnectPolicy(initialMs: 500, maxMs: 100)), "synthetic:shapes: reconnect max_ms (100) must be ≥ initial_ms (500)")
    }

    // MARK: - open watchdog (no server software needed)

    /// A server that accepts TCP connections but never answers: the interrupt callback must abort
    /// the RTSP handshake after the open timeout with a one-line error.
    func testOpenOnSilentServerTimesOut() throws {
        let (fd, port) = try listenSilently()
        defer { _ = Glibc.close(fd) }
        let url = "rtsp://127.0.0.1:\(port)/live"
        let t0 = Date()
        var text = "no error"
        do {
            _ = try VideoSources.open(url: url, options: SourceOptions(transport: .tcp, readTimeoutMs: 800))
        } catch { text = "\(error)" }
        let elapsed = Date().timeIntervalSince(t0)
        XCTAssertEqual(text, "\(url): cannot open stream (timed out)")
        XCTAssertGreaterThan(elapsed, 0.6)
        XCTAssertLessThan(elapsed, 3.0)
    }

    func testRefusedConnectionIsAClearError() throws {
        let port = try freePort()   // nothing listens there any more
        let url = "rtsp://127.0.0.1:\(port)/live"
        do {
            _ = try VideoSources.open(url: url, options: SourceOptions(transport: .tcp, readTimeoutMs: 1000))
            XCTFail("opened a closed port")
        } catch {
            XCTAssertEqual("\(error)", "\(url): cannot open stream (Connection refused)")
        }
    }

    // MARK: - outage and reconnect against a real RTSP server

    func testStallWatchdogReconnectsAfterPublisherRestart() throws {
        let testStart = Date()
        guard let server = which("rtsp-server-perl") ?? which("rtsp-server.pl") else {
            throw XCTSkip("rtsp-server-perl is not installed (Debian package: rtsp-server-perl)")
        }
        guard let ffmpeg = which("ffmpeg") else {
            throw XCTSkip("the ffmpeg command-line tool is not installed (Debian package: ffmpeg)")
        }
        let clientPort = try freePort(), sourcePort = try freePort()
        let rtpStart = try freePort(udp: true) & ~1
        try children.launch(server, ["--clientport", "\(clientPort)", "--serverport", "\(sourcePort)",
                            "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1",
                            "--rtp_start_port", "\(rtpStart)", "-l", "2"], log: "server.log")
        XCTAssertTrue(waitForPort(clientPort, seconds: 5), "rtsp-server-perl did not listen on \(clientPort)")
        XCTAssertTrue(waitForPort(sourcePort, seconds: 5), "rtsp-server-perl did not listen on \(sourcePort)")

        let encoders = (try? run(ffmpeg, ["-hide_banner", "-encoders"])) ?? ""
        let codec = encoders.contains("libx264")
            ? ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"] : ["-c:v", "mpeg4"]
        let pushArgs = ["-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
                        "-i", "testsrc=size=160x120:rate=15", "-pix_fmt", "yuv420p", "-g", "15"] + codec
            + ["-f", "rtsp", "rtsp://127.0.0.1:\(sourcePort)/live"]
        let pusher = try children.launch(ffmpeg, pushArgs, log: "push1.log")

        // The publisher needs a moment to announce the stream: retry the first open briefly.
        let url = "rtsp://127.0.0.1:\(clientPort)/live"
        let log = EventLog()
        let options = SourceOptions(
            streamId: "aisle", transport: .udp, readTimeoutMs: 1500, openTimeoutMs: 2000,
            reconnect: ReconnectPolicy(initialMs: 200, maxMs: 1000, maxAttempts: 6, seed: 1),
            onEvent: { log.append($0) })
        var opened: (any VideoSource)?
        var lastError = ""
        while opened == nil && Date().timeIntervalSince(testStart) < 10 {
            do { opened = try VideoSources.open(url: url, options: options) } catch {
                lastError = "\(error)"
                Thread.sleep(forTimeInterval: 0.3)
            }
        }
        let source = try XCTUnwrap(opened, "could not open \(url): \(lastError)")
        // Bound the test: whatever happens, close the source 35 s after the start.
        let guardItem = DispatchWorkItem { source.close() }
        DispatchQueue.global().asyncAfter(deadline: .now() + max(1, 35 - Date().timeIntervalSince(testStart)), execute: guardItem)
        defer { guardItem.cancel(); source.close() }

        var before: [VideoFrame] = []
        while before.count < 10, let f = try source.next() { before.append(f) }
        XCTAssertEqual(before.count, 10, "frames before the outage")
        XCTAssertEqual(before.first?.image.width, 160)
        XCTAssertEqual(before.first?.image.height, 120)

        // Outage: stop the publisher, bring it back 3 s later while next() is blocked.
        ChildProcesses.stop(pusher)
        let killedAt = Date()
        let children = self.children!
        DispatchQueue.global().asyncAfter(deadline: .now() + 3) {
            _ = try? children.launch(ffmpeg, pushArgs, log: "push2.log")
        }
        // Frames still in flight when the publisher stopped may arrive first; read until five
        // frames came after the pts jump that marks the outage (or 30 frames in all).
        var after: [VideoFrame] = []
        func resumed() -> Int {
            let all = before + after
            guard let jump = (1..<all.count).first(where: { all[$0].pts - all[$0 - 1].pts > 1 }) else { return 0 }
            return all.count - jump
        }
        while resumed() < 5, after.count < 30, let f = try source.next() { after.append(f) }
        let resumedAfter = Date().timeIntervalSince(killedAt)
        let events = log.events
        print("RTSP outage: before pts \(before.map(\.pts)), after pts \(after.map(\.pts)), resumed after \(resumedAfter) s, events \(events)")
        XCTAssertEqual(resumed(), 5, "frames resume after the publisher restarts (events: \(events))")
        XCTAssertGreaterThan(resumedAfter, 2.5, "the publisher was down for 3 s")

        let reconnects = events.compactMap { e -> (attempt: Int, delay: Int, ok: Bool)? in
            if case .reconnect(let id, let attempt, let delay, let ok, _) = e, id == "aisle" { return (attempt, delay, ok) }
            return nil
        }
        XCTAssertTrue(reconnects.contains { $0.ok }, "a successful reconnect event (events: \(events))")
        XCTAssertEqual(reconnects.first?.attempt, 1)
        for r in reconnects { XCTAssertTrue((160...1200).contains(r.delay), "delay \(r.delay) ms within 200…1000 ms ± 20 %") }
        let gaps = events.compactMap { e -> (from: Double, seconds: Double)? in
            if case .gap(let id, let from, let seconds) = e, id == "aisle" { return (from, seconds) }
            return nil
        }
        XCTAssertEqual(gaps.count, 1, "one gap event (events: \(events))")
        let all = before + after
        for i in 1..<all.count {
            XCTAssertGreaterThan(all[i].pts, all[i - 1].pts)
            XCTAssertEqual(all[i].index, i)
        }
        if let gap = gaps.first, let jump = (1..<all.count).first(where: { all[$0].pts - all[$0 - 1].pts > 1 }) {
            XCTAssertGreaterThan(gap.seconds, 1.0, "the outage lasted longer than the read timeout")
            XCTAssertLessThan(gap.seconds, 15)
            XCTAssertEqual(gap.from, all[jump - 1].pts, accuracy: 1e-9, "the gap starts at the last frame before it")
            XCTAssertEqual(all[jump].pts - all[jump - 1].pts, gap.seconds, accuracy: 1e-6, "pts advance by the outage")
        }

        // With server and publisher gone, the source gives up after `maxAttempts` (6) attempts:
        // 1.5 s stall + 200 + 400 + 800 + 1000 + 1000 + 1000 ms (± 20 %) of backoff.
        children.stopAll()
        let t0 = Date()
        var message = "no error"
        do {
            while try source.next() != nil {}
        } catch { message = "\(error)" }
        XCTAssertTrue(message.hasPrefix("\(url): gave up after 6 reconnect attempts (last error: cannot open stream ("), message)
        XCTAssertGreaterThan(Date().timeIntervalSince(t0), 4)
        let failed = log.events.filter { if case .reconnect(_, _, _, false, let e) = $0 { return e != nil } else { return false } }
        XCTAssertGreaterThanOrEqual(failed.count, 6)
        XCTAssertNil(try source.next(), "a source that gave up stays ended")
        XCTAssertLessThan(Date().timeIntervalSince(testStart), 40)
    }

    // MARK: - helpers

    private func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Runs a short command and returns its standard output.
    private func run(_ path: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// A port that was free a moment ago (bound to port 0, then released).
    private func freePort(udp: Bool = false) throws -> Int {
        let (fd, port) = try loopbackSocket(udp: udp, listening: false)
        _ = Glibc.close(fd)
        return port
    }

    /// A listening TCP socket that never accepts (the kernel completes handshakes; nobody answers).
    private func listenSilently() throws -> (Int32, Int) { try loopbackSocket(udp: false, listening: true) }

    /// A socket bound to 127.0.0.1 on a port the kernel picks (listening when asked), and that port.
    private func loopbackSocket(udp: Bool, listening: Bool) throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw XCTSkip("cannot create a socket") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, !listening || listen(fd, 8) == 0 else {
            _ = Glibc.close(fd)
            throw XCTSkip(bound == 0 ? "cannot listen on a socket" : "cannot bind a socket")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    private func waitForPort(_ port: Int, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(port).bigEndian
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            _ = Glibc.close(fd)
            if rc == 0 { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }
}

/// The processes a test started; `stopAll()` ends every one of them and removes their logs.
final class ChildProcesses: @unchecked Sendable {
    private let lock = NSLock()
    private var processes: [Process] = []
    let logFolder: URL

    init() throws {
        logFolder = FileManager.default.temporaryDirectory.appendingPathComponent("atp-rtsp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: logFolder, withIntermediateDirectories: true)
    }

    /// Starts a process with its output in a log file; tracked for `tearDown`.
    @discardableResult
    func launch(_ path: String, _ args: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let logURL = logFolder.appendingPathComponent(log)
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logURL)
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        lock.lock()
        defer { lock.unlock() }
        try p.run()
        processes.append(p)
        return p
    }

    /// SIGTERM, then SIGKILL if it has not exited within 2 s.
    static func stop(_ p: Process) {
        guard p.isRunning else { return }
        p.terminate()
        let deadline = Date().addingTimeInterval(2)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
    }

    func stopAll() {
        lock.lock()
        let all = processes
        processes.removeAll()
        lock.unlock()
        for p in all { Self.stop(p) }
        try? FileManager.default.removeItem(at: logFolder)
    }
}
