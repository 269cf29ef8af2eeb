import ArgumentParser
import Foundation
import Dispatch
import Pipeline
import Serve

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a pipeline and serve it over HTTP: /metrics (Prometheus), /events (SSE), /queries (GET/POST/DELETE).",
        discussion: """
            Binds to 127.0.0.1 unless --host says otherwise (default: the YAML's http sink, else 127.0.0.1, port 0 = a free \
            port; the address is printed on stderr). Off loopback, POST/DELETE /queries need 'Authorization: Bearer TOKEN' \
            with the token from --token or ATP_SERVE_TOKEN, and the server refuses to start without one. Answer events \
            also go to stdout as JSON Lines when the YAML has a {jsonl: stdout} sink.
            """)

    @Argument(help: "Pipeline YAML (see Pipelines/).")
    var pipeline: String
    @Option(help: "Address to bind (default: the YAML's http sink, else 127.0.0.1).")
    var host: String?
    @Option(help: "Port to bind; 0 picks a free port (default: the YAML's http sink, else 0).")
    var port: Int?
    @Option(help: "Bearer token for POST/DELETE /queries (default: $ATP_SERVE_TOKEN); required off loopback.")
    var token: String?
    @OptionGroup var flags: PipelineRunFlags
    @Option(name: .customLong("event-buffer"), help: "Events buffered per /events client before a client that falls behind is dropped.")
    var eventBuffer: Int = 256
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if let port, !(0...65535).contains(port) { throw ValidationError("--port \(port): must be in 0...65535") }
        guard eventBuffer >= 1 else { throw ValidationError("--event-buffer \(eventBuffer): must be ≥ 1") }
        if let host, host.isEmpty { throw ValidationError("--host: must not be empty") }
    }

    func run() throws {
        try compute.apply()
        let spec = try PipelineSpec.load(from: URL(fileURLWithPath: pipeline))
        var config = ServeConfiguration()
        for case let .http(h, p) in spec.sinks {
            config.host = h
            config.port = p
        }
        if let host { config.host = host }
        if let port { config.port = port }
        config.token = token ?? ProcessInfo.processInfo.environment["ATP_SERVE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        config.eventBuffer = eventBuffer
        do {
            // Refuse an unprotected public bind before loading any model.
            try ServeAuth.checkStart(host: config.host, token: config.token)
        } catch let e as ServeError {
            throw CLIError(e.description)
        }

        let options = flags.runOptions(threads: compute.threads)

        // Sinks: JSON Lines to stdout and/or files, as the YAML says; SSE always.
        var writers: [LineWriter] = []
        var files: [FileLineWriter] = []
        for case let .jsonl(target) in spec.sinks {
            if target == "stdout" {
                if writers.isEmpty { writers.append(LineWriter()) }
            } else {
                files.append(try FileLineWriter(path: target))
            }
        }
        let hub = EventHub(capacity: eventBuffer)
        let stdoutWriters = writers, fileWriters = files
        let runner = try PipelineRunner(spec: spec, options: options) { line in
            for w in stdoutWriters { w.write(line) }
            for f in fileWriters { f.write(line) }
            hub.publish(line)
        }
        for note in runner.notes { printErr("atp: note: \(note)") }

        let service: HTTPService
        do {
            service = try HTTPService(configuration: config, backend: ServeBackend(runner: runner), hub: hub)
            try service.start()
        } catch let e as ServeError {
            throw CLIError(e.description)
        }
        defer { service.stop() }
        printErr("atp: serving on \(service.url ?? "?")")

        try flags.runToEnd(runner, name: spec.name) {
            service.stop()
            for f in fileWriters { f.close() }
        }
        let stats = hub.currentStats
        printErr("atp: /events: \(stats.published) events, \(stats.droppedClients) clients dropped for falling behind")
    }
}

/// JSON Lines appended to a file (a `{jsonl: FILE}` sink), serialised across threads.
final class FileLineWriter: @unchecked Sendable {
    private let lock = NSLock()
    private var handle: FileHandle?
    private let path: String

    init(path: String) throws {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CLIError("\(path): cannot create the jsonl sink file")
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw CLIError("\(path): cannot open the jsonl sink file") }
        handle = h
    }

    func write(_ line: String) {
        lock.withLock { handle?.write(Data((line + "\n").utf8)) }
    }

    func close() {
        lock.withLock {
            try? handle?.close()
            handle = nil
        }
    }
}
