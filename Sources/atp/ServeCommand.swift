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
        var spec = try PipelineSpec.load(from: URL(fileURLWithPath: pipeline))
        if let p = compute.precision { spec.model?.precision = p }
        var config = ServeConfiguration()
        for case let .http(h, p) in spec.sinks { (config.host, config.port) = (h, p) }
        if let host { config.host = host }
        if let port { config.port = port }
        config.token = token ?? ProcessInfo.processInfo.environment["ATP_SERVE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        config.eventBuffer = eventBuffer
        // Line sinks as the YAML says (stdout only with {jsonl: stdout}); the HTTP service always.
        let sinks = try EventSinks(spec.sinks, stdoutWhenEmpty: false)
        try PipelineHost.run(spec: spec, sinks: sinks, options: flags.runOptions(), flags: flags,
                             http: config)
    }
}
