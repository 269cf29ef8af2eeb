import XCTest
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `atp serve` as a process: it prints its address, answers /metrics and /queries, and stops at --duration.
final class ServeCLITests: XCTestCase {
    func testServeAnswersMetricsAndQueries() throws {
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = ["serve", CLI.repo.appendingPathComponent("Pipelines/warehouse.yaml").path, "--port", "0", "--duration", "8"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        // Read stderr until the address line.
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        var base: String?
        while base == nil && Date() < deadline {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            if let r = text.range(of: #"http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) { base = String(text[r]) }
        }
        let url = try XCTUnwrap(base, "no address on stderr: \(text)")
        let metrics = String(decoding: try Data(contentsOf: URL(string: url + "/metrics")!), as: UTF8.self)
        XCTAssertTrue(metrics.contains("atp_stage_latency_ms{"), metrics.prefix(300).description)
        XCTAssertTrue(metrics.contains("atp_frames_in_total"))
        let queries = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(string: url + "/queries")!)) as? [[String: Any]]
        XCTAssertEqual(Set(queries?.compactMap { $0["id"] as? String } ?? []), ["person-in-aisle", "forklift-side"])
        // Drain stderr so the process never blocks on a full pipe, then wait for --duration to end it.
        DispatchQueue.global().async { _ = err.fileHandleForReading.readDataToEndOfFile() }
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
    }
}
