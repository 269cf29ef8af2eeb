import ArgumentParser
import Foundation
import Dispatch
import Pipeline
import Serve

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a pipeline: answer events as JSON Lines on stdout, a per-stage profile on stderr.")

    @Argument(help: "Pipeline YAML (see Pipelines/).")
    var pipeline: String
    @OptionGroup var flags: PipelineRunFlags
    @OptionGroup var compute: ComputeOptions
    @Option(name: .customLong("overlay-video"), help: "Also write the first source's answered frames to this video (.mp4, .mkv, .mov, .avi) with each query's kept patches outlined and its answer written below.")
    var overlayVideo: String?
    @Option(name: .customLong("overlay-fps"), help: "Frame rate of --overlay-video (default: the source's, else 10).")
    var overlayFPS: Int?

    func validate() throws {
        if let overlayFPS, !(1...240).contains(overlayFPS) { throw ValidationError("--overlay-fps \(overlayFPS): must be within 1…240") }
        if let overlayVideo {
            let folder = URL(fileURLWithPath: overlayVideo).deletingLastPathComponent().path
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("--overlay-video \(overlayVideo): folder \(folder) does not exist")
            }
            guard ["mp4", "mkv", "mov", "avi"].contains(URL(fileURLWithPath: overlayVideo).pathExtension.lowercased()) else {
                throw ValidationError("--overlay-video \(overlayVideo): use a .mp4, .mkv, .mov or .avi file")
            }
        }
    }

    func run() throws {
        try compute.apply()
        var spec = try PipelineSpec.load(from: URL(fileURLWithPath: pipeline))
        if let p = compute.precision { spec.model?.precision = p }
        // Sinks as the YAML says: JSON Lines to stdout (also when it names none) and files; an http sink
        // starts `atp serve`'s HTTP service on its address (a token from ATP_SERVE_TOKEN off loopback).
        let sinks = try EventSinks(spec.sinks, stdoutWhenEmpty: true)
        var http: ServeConfiguration?
        if let h = sinks.http {
            http = ServeConfiguration(host: h.host, port: h.port,
                                      token: ProcessInfo.processInfo.environment["ATP_SERVE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 })
        }
        var overlay: OverlayVideo?
        try PipelineHost.run(spec: spec, sinks: sinks, options: flags.runOptions(), flags: flags,
                             http: http) { runner in
            guard let overlayVideo else { return }
            let stream = spec.sources.first?.id ?? "source"
            let chosen = overlayFPS
            let fps = { chosen ?? runner.firstSourceFrameRate.map { max(1, min(240, Int($0.rounded()))) } ?? 10 }
            let grid = runner.session.vlm.config.visionConfig.gridSide
            let v = OverlayVideo(url: URL(fileURLWithPath: overlayVideo), processor: runner.session.vlm.processor,
                                 grid: (grid, grid), fps: fps, stream: stream, queryOrder: runner.queries.all.map(\.id))
            runner.onFrameAnswered = { v.add($0) }
            overlay = v
            if spec.sources.count > 1 { printErr("atp: note: --overlay-video draws stream '\(stream)' only (the first of \(spec.sources.count) sources)") }
        }
        if let overlay, let overlayVideo {
            let (frames, drawn) = try overlay.finish()
            printErr("atp: wrote \(overlayVideo): \(frames) frames (\(drawn) answered, the rest repeat the last answered frame)")
        }
    }
}

/// The options `atp run` and `atp serve` share.
struct PipelineRunFlags: ParsableArguments {
    @Option(help: "Replace the first source's URL (file, rtsp://, v4l2://, synthetic:).")
    var source: String?
    @Option(help: "A standing query (repeatable); replaces the YAML's queries.")
    var query: [String] = []
    @Option(help: "Stop after this many seconds.")
    var duration: Double?
    @Flag(help: "Pace file sources at their frame rate.")
    var realtime = false
    @Option(name: .customLong("profile-json"), help: "Write the per-stage profile as JSON to this file at exit.")
    var profileJSON: String?
    @Option(name: .customLong("max-tokens"), help: "Most tokens per answer.")
    var maxTokens: Int = 8
    @Option(name: .customLong("change-threshold"), help: "Mean grey-level difference under which a frame reuses the last answers (0 disables).")
    var changeThreshold: Double = 1.5
    @Option(help: "Where video frames are resized to the model's resize size: swscale while decoding (fast) or pil (the image processor's exact resize of the native frame).")
    var scaler: FrameScaling = .swscale

    func validate() throws {
        if let duration, !(duration > 0) { throw ValidationError("--duration \(duration): must be > 0") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens \(maxTokens): must be ≥ 1") }
        guard changeThreshold >= 0 else { throw ValidationError("--change-threshold \(changeThreshold): must be ≥ 0") }
    }

    /// Runs the pipeline until its sources end, `--duration` passes or SIGINT/SIGTERM stops it, with
    /// the live table on a terminal; then `afterRun` (a caller's own shutdown), the profile table on
    /// stderr and `--profile-json`.
    func runToEnd(_ runner: PipelineRunner, name: String, afterRun: () -> Void = {}) throws {
        let signals = SignalStop.install { runner.stop() }
        defer { signals.cancel() }
        let live = LiveTable(profiler: runner.profiler)
        printErr("atp: running \(name) (\(runner.queries.all.count) queries)…")
        let report = try runner.run()
        live.stop()
        afterRun()
        printErr(runner.profiler.renderTable())
        if let profileJSON {
            try writeAtomically(try report.jsonData(pretty: true), to: URL(fileURLWithPath: profileJSON))
        }
    }

    /// The runner's options (video is decoded on one thread whatever --threads says: see SourceOptions).
    func runOptions() -> RunOptions {
        var o = RunOptions()
        o.sourceOverride = source
        o.queries = query
        o.duration = duration
        o.realtime = realtime
        o.maxTokens = maxTokens
        o.changeThreshold = changeThreshold
        o.scaler = scaler
        return o
    }
}

extension FrameScaling: ExpressibleByArgument {}

/// Serialises stdout lines from several threads.
final class LineWriter: @unchecked Sendable {
    private let lock = NSLock()
    func write(_ line: String) {
        lock.withLock { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    }
}

/// SIGINT/SIGTERM end the run cleanly.
struct SignalStop {
    let sources: [DispatchSourceSignal]
    static func install(_ action: @escaping @Sendable () -> Void) -> SignalStop {
        var list: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler {
                printErr("atp: signal \(sig): stopping (flushing events and the profile)…")
                action()
            }
            s.resume()
            list.append(s)
        }
        return SignalStop(sources: list)
    }
    func cancel() { for s in sources { s.cancel() } }
}

/// A per-stage table redrawn on stderr every second, only when stderr is a terminal.
final class LiveTable: @unchecked Sendable {
    private var timer: DispatchSourceTimer?
    init(profiler: Profiler) {
        guard isatty(2) == 1 else { return }
        let t = DispatchSource.makeTimerSource(queue: .global())
        t.schedule(deadline: .now() + 1, repeating: 1)
        t.setEventHandler {
            let table = profiler.renderTable()
            FileHandle.standardError.write(Data(("\u{1B}[2J\u{1B}[H" + table + "\n").utf8))
        }
        t.resume()
        timer = t
    }
    func stop() { timer?.cancel() }
}

/// Writes `data` to a temporary file beside `url`, then renames it over `url` (POSIX `rename`, which
/// replaces an existing file atomically): nothing half-written is left, and an earlier file stays
/// whole until the new one replaces it. (Foundation's `replaceItemAt` on Linux failed here and lost
/// the existing file.)
func writeAtomically(_ data: Data, to url: URL) throws {
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    do {
        try data.write(to: tmp)
        guard rename(tmp.path, url.path) == 0 else {
            throw CLIError(String(cString: strerror(errno)))
        }
    } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw CLIError("\(url.path): cannot write (\((error as? CLIError)?.description ?? error.localizedDescription))")
    }
}
