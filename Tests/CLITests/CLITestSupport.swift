import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `atp` binary and captures stdout, stderr and the exit status.
struct CLIResult {
    let status: Int32
    let stdout: String
    let stderr: String

    /// stdout parsed as one JSON object.
    func json() throws -> [String: Any] {
        let obj = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        guard let d = obj as? [String: Any] else { throw NSError(domain: "CLI", code: 1, userInfo: [NSLocalizedDescriptionKey: "stdout is not a JSON object: \(stdout.prefix(200))"]) }
        return d
    }
}

enum CLI {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repo.appendingPathComponent("Tests/Fixtures")

    /// The `atp` executable next to the test bundle (same build folder).
    static var binary: URL {
        var dir = Bundle.main.bundleURL
        for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") { dir = b.bundleURL.deletingLastPathComponent() }
        let candidate = dir.appendingPathComponent("atp")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        return repo.appendingPathComponent(".build/debug/atp")
    }

    static func run(_ args: [String], environment: [String: String] = [:]) throws -> CLIResult {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        // Files rather than pipes: no deadlock on large outputs, no shared mutable capture.
        let dir = FileManager.default.temporaryDirectory
        let outURL = dir.appendingPathComponent("atp-out-\(UUID().uuidString)")
        let errURL = dir.appendingPathComponent("atp-err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try out.close(); try err.close()
        let outData = try Data(contentsOf: outURL), errData = try Data(contentsOf: errURL)
        return CLIResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
    }
}

/// A base for CLI tests that start helper processes (an RTSP server, an ffmpeg publisher, `atp`):
/// every process started with `launch` is stopped in `tearDown`, also when the test fails.
class ProcessTestCase: XCTestCase {
    var started: [Process] = []

    override func tearDown() {
        for p in started where p.isRunning {
            p.terminate()
            let deadline = Date().addingTimeInterval(2)
            while p.isRunning && Date() < deadline { usleep(50_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        started.removeAll()
    }

    func tool(_ name: String) -> String? {
        ["/usr/bin/", "/usr/local/bin/", "/bin/"].map { $0 + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// An ephemeral loopback port (bound to 0 and released).
    func ephemeralPort(type: Int32 = Int32(SOCK_STREAM.rawValue)) -> Int {
        let fd = socket(AF_INET, type, 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }

    /// Whether something accepts TCP connections on the loopback `port`.
    func listening(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    func launch(_ path: String, _ args: [String], stdout: URL? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.standardInput = FileHandle.nullDevice
        if let stdout {
            FileManager.default.createFile(atPath: stdout.path, contents: nil)
            p.standardOutput = try FileHandle(forWritingTo: stdout)
        } else {
            p.standardOutput = FileHandle.nullDevice
        }
        p.standardError = FileHandle.nullDevice
        try p.run()
        started.append(p)
        return p
    }

    func lines(_ url: URL) -> [[String: Any]] {
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func waitUntil(_ seconds: Double, _ cond: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline { if cond() { return true }; usleep(200_000) }
        return cond()
    }

    /// Starts rtsp-server-perl on loopback ports and waits (up to 10 s) until it listens; returns the
    /// ffmpeg CLI, the URL publishers push to (UDP: the server takes no interleaved TCP) and the port
    /// clients read `rtsp://127.0.0.1:PORT/live` from.
    func startRTSPRelay() throws -> (ffmpeg: String, publish: String, clientPort: Int) {
        guard let server = tool("rtsp-server-perl") else { throw XCTSkip("rtsp-server-perl is not installed (Debian package rtsp-server-perl; Tools/setup.sh installs it)") }
        guard let ffmpeg = tool("ffmpeg") else { throw XCTSkip("the ffmpeg CLI is not installed (Debian package ffmpeg)") }
        let clientPort = ephemeralPort(), sourcePort = ephemeralPort(), rtp = ephemeralPort(type: Int32(SOCK_DGRAM.rawValue)) & ~1
        _ = try launch(server, ["--clientport", "\(clientPort)", "--serverport", "\(sourcePort)",
                                "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1",
                                "--rtp_start_port", "\(rtp)", "-l", "2"])
        // The Perl server takes one to two seconds to start on a loaded machine.
        XCTAssertTrue(waitUntil(10) { listening(sourcePort) && listening(clientPort) }, "rtsp-server-perl did not start listening")
        return (ffmpeg, "rtsp://127.0.0.1:\(sourcePort)/live", clientPort)
    }

    /// `startRTSPRelay()` plus the arguments of a 10 fps test-pattern pusher into it.
    func startRTSPServer() throws -> (ffmpeg: String, push: [String], clientPort: Int) {
        let (ffmpeg, publish, clientPort) = try startRTSPRelay()
        let push = ["-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-pix_fmt", "yuv420p", "-g", "10", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                    "-f", "rtsp", publish]
        return (ffmpeg, push, clientPort)
    }
}
