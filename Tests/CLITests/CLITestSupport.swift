import XCTest
import Foundation

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
