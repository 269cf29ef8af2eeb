import Foundation
import Pipeline
import Serve

/// Where a pipeline's events go, as its YAML `sinks:` say: `{jsonl: stdout}`, `{jsonl: FILE}` (JSON
/// Lines) and `{http: {host, port}}` (the HTTP service of `atp serve`: SSE `/events`, `/metrics`,
/// `/queries`). For `atp run` a spec without `sinks:` writes JSON Lines to stdout.
struct EventSinks {
    let stdout: LineWriter?
    let files: [FileLineWriter]
    /// The YAML's http sink, if any (the last one wins).
    let http: (host: String, port: Int)?

    init(_ sinks: [SinkSpec], stdoutWhenEmpty: Bool) throws {
        var out: LineWriter? = sinks.isEmpty && stdoutWhenEmpty ? LineWriter() : nil
        var files: [FileLineWriter] = []
        var http: (String, Int)?
        for sink in sinks {
            switch sink {
            case .jsonl(let target) where target == "stdout": out = out ?? LineWriter()
            case .jsonl(let path): files.append(try FileLineWriter(path: path))
            case .http(let h, let p): http = (h, p)
            }
        }
        stdout = out
        self.files = files
        self.http = http
    }

    /// One JSON line to every line sink.
    func write(_ line: String) {
        stdout?.write(line)
        for f in files { f.write(line) }
    }

    func close() { for f in files { f.close() } }
}

/// Runs a pipeline with its sinks and, when asked, the HTTP service: the one path of `atp run` and
/// `atp serve`.
enum PipelineHost {
    /// - Parameters:
    ///   - http: the service's configuration (nil: no HTTP service).
    ///   - prepare: called with the loaded runner before it starts (e.g. to attach an overlay video).
    static func run(spec: PipelineSpec, sinks: EventSinks, options: RunOptions, flags: PipelineRunFlags,
                    http: ServeConfiguration?, prepare: (PipelineRunner) throws -> Void = { _ in }) throws {
        if let http {
            // Refuse an unprotected public bind before loading any model.
            do { try ServeAuth.checkStart(host: http.host, token: http.token) } catch let e as ServeError { throw CLIError(e.description) }
        }
        let hub = http.map { EventHub(capacity: $0.eventBuffer) }
        let runner = try PipelineRunner(spec: spec, options: options) { line in
            sinks.write(line)
            hub?.publish(line)
        }
        for note in runner.notes { printErr("atp: note: \(note)") }
        try prepare(runner)
        var service: HTTPService?
        if let http, let hub {
            do {
                service = try HTTPService(configuration: http, backend: ServeBackend(runner: runner), hub: hub)
                try service?.start()
            } catch let e as ServeError {
                throw CLIError(e.description)
            }
            printErr("atp: serving on \(service?.url ?? "?")")
        }
        defer { service?.stop() }
        try flags.runToEnd(runner, name: spec.name) {
            service?.stop()
            sinks.close()
        }
        if let hub {
            let stats = hub.currentStats
            printErr("atp: /events: \(stats.published) events, \(stats.droppedClients) clients dropped for falling behind")
        }
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
