import Foundation
import Dispatch
import Media
import Models
import Gate

// The streaming pipeline of DESIGN.md with real stages:
//   source threads (FFmpeg demux + decode)
//     → video_decode (change gate, resize/crop/normalise to the model's input)
//     → encode (vision tower + projector; CLIP relevance encode when needed)
//     → gate (once per frame per standing query: kept tokens)
//     → prefill (LLM prefill of the kept tokens, cached prompt prefix)
//     → llm_decode (greedy decode, p_yes)
//     → sink (answer events as JSON Lines)
// encode, prefill and llm_decode share one compute executor so that they never oversubscribe the cores.

/// A standing query and its gate settings.
public struct StandingQuery: Sendable, Equatable {
    public var id: String
    public var text: String
    public var gate: GateConfig
    public init(id: String, text: String, gate: GateConfig) {
        self.id = id
        self.text = text
        self.gate = gate
    }
}

/// Converts a spec gate block to the gate's configuration, filling what it leaves out from
/// ``GateSpec/defaults``.
/// - Throws: ``PipelineError/spec(file:key:message:)`` naming the key that breaks ``GateSpec/issue``.
public func gateConfig(_ g: GateSpec) throws -> GateConfig {
    if let (key, message) = g.issue { throw PipelineError.spec(file: "gate", key: key, message: message) }
    let d = GateSpec.defaults.overridden(by: g)
    let budget: TokenBudget
    if let t = d.tokens { budget = .tokens(t) } else if let m = d.mass { budget = .mass(m) } else { budget = .keep(d.keep!) }
    return GateConfig(method: GateMethod(rawValue: d.method!)!, alpha: d.alpha!, sign: d.sign!,
                      norm: ScoreNormalization(rawValue: d.norm!)!, budget: budget)
}

/// The set of standing queries, changed at run time (HTTP API) and read once per frame.
public final class QueryRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var queries: [StandingQuery] = []
    public init(_ initial: [StandingQuery] = []) { queries = initial }
    public var all: [StandingQuery] { lock.withLock { queries } }
    /// Adds or replaces a query; returns false when the id was new.
    @discardableResult
    public func upsert(_ q: StandingQuery) -> Bool {
        lock.withLock {
            if let i = queries.firstIndex(where: { $0.id == q.id }) { queries[i] = q; return true }
            queries.append(q)
            return false
        }
    }
    /// Removes a query; returns whether it existed.
    @discardableResult
    public func remove(id: String) -> Bool {
        lock.withLock {
            let before = queries.count
            queries.removeAll { $0.id == id }
            return queries.count != before
        }
    }
}

/// Options of a run beyond the spec.
public struct RunOptions: Sendable {
    /// Replaces the first source's URL.
    public var sourceOverride: String?
    /// Replaces the spec's queries (ids q1, q2, …).
    public var queries: [String] = []
    /// Stop after this many seconds.
    public var duration: Double?
    /// Pace file sources at their frame rate.
    public var realtime = false
    /// Most tokens per answer.
    public var maxTokens = 8
    /// Mean absolute difference (0–255, grey 32×32 thumbnail) under which a frame reuses the last answers; 0 disables.
    public var changeThreshold: Double = 1.5
    /// FFmpeg decoder threads.
    public var decoderThreads = 1
    public init() {}
}

/// One answer event (DESIGN.md, answer events).
public struct AnswerEvent: Sendable {
    public var stream: String
    public var query: String
    public var pts: Double
    public var capturedAt: Double
    public var answer: String
    public var pYes: Float?
    public var changed: Bool
    public var reused: Bool
    public var keptCount: Int
    public var visualTokens: Int
    public var stagesMs: [String: Double]
    public var e2eMs: Double
    /// The source has a truth sidecar: the event carries `truth` and `correct` (null when the sidecar
    /// does not answer this query at this frame).
    public var hasTruth = false
    public var truth: String?
    public var correct: Bool?

    /// The event as one JSON object with DESIGN's keys.
    public func jsonLine() -> String {
        func num(_ d: Double) -> String { d.isFinite ? String(format: "%.3f", d) : "null" }
        let stages = ["video_decode", "encode", "relevance_encode", "gate", "prefill", "llm_decode"]
            .compactMap { k in stagesMs[k].map { "\"\(k)\":\(num($0))" } }.joined(separator: ",")
        return "{\"stream\":\(jsonString(stream)),\"query\":\(jsonString(query)),\"pts\":\(num(pts)),"
            + "\"captured_at\":\(String(format: "%.6f", capturedAt)),\"answer\":\(jsonString(answer)),"
            + "\"p_yes\":\(pYes.map { num(Double($0)) } ?? "null"),\"changed\":\(changed),\"reused\":\(reused),"
            + "\"kept_count\":\(keptCount),\"visual_tokens\":\(visualTokens),\"stages_ms\":{\(stages)},\"e2e_ms\":\(num(e2eMs))"
            + (hasTruth ? ",\"truth\":\(truth.map(jsonString) ?? "null"),\"correct\":\(correct.map { "\($0)" } ?? "null")}" : "}")
    }
}

/// JSON string literal.
public func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

/// A JSON line for a source event (`reconnect`, `gap`, `corrupt_packets`).
public func sourceEventLine(_ e: SourceEvent) -> String {
    switch e {
    case .gap(let s, let from, let seconds):
        return "{\"event\":\"gap\",\"stream\":\(jsonString(s)),\"from_pts\":\(String(format: "%.3f", from)),\"seconds\":\(String(format: "%.3f", seconds))}"
    case .reconnect(let s, let attempt, let delay, let ok, let err):
        return "{\"event\":\"reconnect\",\"stream\":\(jsonString(s)),\"attempt\":\(attempt),\"delay_ms\":\(delay),\"ok\":\(ok),\"error\":\(err.map(jsonString) ?? "null")}"
    case .corruptPacket(let s, let count):
        return "{\"event\":\"corrupt_packets\",\"stream\":\(jsonString(s)),\"count\":\(count)}"
    }
}

// Items flowing between stages.
struct RawFrame: Sendable { var frame: VideoFrame }
struct PreparedFrame: Sendable {
    var frame: VideoFrame
    var pixels: [Float]
    var reused: Bool
    var ms: [String: Double]
}
struct EncodedFrame: Sendable {
    var frame: VideoFrame
    var encoded: VLMSession.Encoded?
    var reused: Bool
    var ms: [String: Double]
}
struct QueryJob: Sendable {
    var frame: VideoFrame
    var query: StandingQuery
    var encoded: VLMSession.Encoded?
    var keptTokens: [Int]
    var visualTokens: Int
    var reused: Bool
    var ms: [String: Double]
}
struct PrefilledJob: Sendable {
    var job: QueryJob
    var prefill: LlavaPrefill?
}
/// All queries of one frame travel together through prefill and decode, so that a `latest` queue
/// keeps the newest frame (with every query), not the newest query.
struct FrameJobs: Sendable { var jobs: [QueryJob] }
struct FramePrefills: Sendable { var jobs: [PrefilledJob] }
struct Answered: Sendable {
    var job: QueryJob
    var text: String
    var pYes: Float?
    /// This answer's place among its frame's answers (they reach the sink consecutively).
    var slot = 0, of = 1
}

/// One query's answer on one frame, with the gate decision that produced it (for a reused answer,
/// the decision of the frame whose answer it reuses).
public struct QueryOverlay: Sendable, Equatable {
    public var queryId: String
    public var answer: String
    /// Kept patch indices, ascending.
    public var kept: [Int]
    public var reused: Bool
    public var correct: Bool?
    public init(queryId: String, answer: String, kept: [Int], reused: Bool, correct: Bool?) {
        self.queryId = queryId
        self.answer = answer
        self.kept = kept
        self.reused = reused
        self.correct = correct
    }
}

/// Every answer of one frame, handed to `PipelineRunner.onFrameAnswered` from the sink thread.
public struct FrameAnswers: Sendable {
    public var frame: VideoFrame
    public var answers: [QueryOverlay]
    public init(frame: VideoFrame, answers: [QueryOverlay]) {
        self.frame = frame
        self.answers = answers
    }
}

/// Runs a pipeline spec until its sources end, `stop()` is called, or the duration passes.
public final class PipelineRunner: @unchecked Sendable {
    public let spec: PipelineSpec
    public let options: RunOptions
    public let session: VLMSession
    public let queries: QueryRegistry
    public let profiler = Profiler()
    private let emit: @Sendable (String) -> Void
    private let lock = NSLock()
    private var stopping = false
    private var sources: [any VideoSource] = []
    private var lastThumb: [String: [Float]] = [:]
    private var lastAnswers: [String: [String: (text: String, pYes: Float?, kept: [Int], visual: Int)]] = [:]
    /// Answers of the frame now reaching the sink, per stream (flushed to `onFrameAnswered` when complete).
    private var pendingFrame: [String: [QueryOverlay]] = [:]
    /// Receives each frame once all its answers have been emitted, on the sink thread, in order per
    /// stream. Set before `run()`. It must not block for long: the sink waits for it.
    public var onFrameAnswered: (@Sendable (FrameAnswers) -> Void)?
    private var knob: KKnob?
    /// Truth sidecars by stream id.
    private var truths: [String: TruthTrack] = [:]

    /// Loads the models named by the spec.
    /// - Parameter emit: receives each JSON line (answer and other events), in order, from the sink thread.
    public init(spec: PipelineSpec, options: RunOptions, emit: @escaping @Sendable (String) -> Void) throws {
        self.spec = spec
        self.options = options
        self.emit = emit
        guard let vlm = spec.model?.vlm else {
            throw PipelineError.spec(file: spec.name, key: "model.vlm", message: "required to run")
        }
        session = try VLMSession(vlmFolder: URL(fileURLWithPath: vlm), clipFolder: spec.model?.clip.map { URL(fileURLWithPath: $0) })
        var calibrationNote: [String] = []
        let base = try GateCalibration.resolve(folder: URL(fileURLWithPath: vlm), overrides: spec.gate) { calibrationNote.append($0) }
        baseGate = base
        runNotes = calibrationNote
        var qs: [StandingQuery] = []
        if options.queries.isEmpty {
            for q in spec.queries {
                qs.append(StandingQuery(id: q.id, text: q.text, gate: try gateConfig(base.overridden(by: q.gate))))
            }
        } else {
            for (i, t) in options.queries.enumerated() {
                qs.append(StandingQuery(id: "q\(i + 1)", text: t, gate: try gateConfig(base)))
            }
        }
        guard !qs.isEmpty else { throw PipelineError.spec(file: spec.name, key: "queries", message: "no queries (give queries: in the YAML or --query)") }
        queries = QueryRegistry(qs)
        for q in qs { _ = try session.textEmbedding(q.text) }   // computed once, cached
        for s in spec.sources where options.sourceOverride == nil || s.id != spec.sources.first?.id {
            guard let url = TruthTrack.sidecar(for: s) else { continue }
            do { truths[s.id] = try TruthTrack(url: url) } catch let e as DataFolderError {
                throw PipelineError.spec(file: spec.name, key: "sources.\(s.id).truth", message: e.description)
            }
        }
    }

    /// Notes to print once on stderr.
    public var notes: [String] { session.notes + runNotes }
    private let runNotes: [String]
    /// The gate every query starts from: the model's `gate_config.json` (when it has one) under the
    /// spec's `gate:` block; per-query overrides and queries added over HTTP go on top of it.
    public let baseGate: GateSpec

    /// Ends the run: sources close, queued items drain, the profile is final.
    public func stop() {
        let toClose: [any VideoSource] = lock.withLock {
            stopping = true
            return sources
        }
        for s in toClose { s.close() }
    }

    var isStopping: Bool { lock.withLock { stopping } }

    /// The first source's nominal frame rate, once `run()` has opened it (nil before, or when unknown).
    public var firstSourceFrameRate: Double? {
        lock.withLock {
            switch sources.first {
            case let f as FFmpegSource: return f.frameRate
            case let s as SyntheticSource: return s.fps
            default: return nil
            }
        }
    }

    private func stageOptions(_ name: String, defaultQueue: Int, defaultPolicy: OverflowPolicy,
                              executor: StageExecutor) throws -> StageOptions {
        let s = spec.stages[name]
        var budget: StageBudget? = nil
        if let ms = s?.budgetMs {
            let action: OverrunAction
            switch s?.onOverrun ?? .none {
            case .none: action = .none
            case .skip: action = .skip
            case .shrinkK:
                let n = session.vlm.patchCount
                let k = KKnob(try KController(kMin: 1, kMax: n, initial: n))
                knob = k
                action = .shrinkK(k)
            }
            budget = try StageBudget(ms: ms, onOverrun: action)
        }
        return StageOptions(queue: s?.queue ?? defaultQueue, policy: s?.policy ?? defaultPolicy, budget: budget, executor: executor)
    }

    /// Grey 32×32 thumbnail for the change gate.
    static func thumbnail(_ img: RGBImage) -> [Float] {
        let side = 32
        var t = [Float](repeating: 0, count: side * side)
        for ty in 0..<side {
            let y = min(img.height - 1, ty * img.height / side + img.height / (2 * side))
            for tx in 0..<side {
                let x = min(img.width - 1, tx * img.width / side + img.width / (2 * side))
                let p = (y * img.width + x) * 3
                t[ty * side + tx] = 0.299 * Float(img.pixels[p]) + 0.587 * Float(img.pixels[p + 1]) + 0.114 * Float(img.pixels[p + 2])
            }
        }
        return t
    }

    /// Runs until the sources end or `stop()`; returns the profile.
    public func run() throws -> ProfileReport {
        let compute = ComputeExecutor(label: "atp.compute")
        let session = self.session
        let maxTokens = options.maxTokens
        let threshold = options.changeThreshold
        let hasPrior: @Sendable (String) -> Bool = { [unowned self] s in self.lock.withLock { self.lastAnswers[s] != nil } }

        let decode = ClosureStage<RawFrame, PreparedFrame>(name: "video_decode") { [unowned self] raw in
            let t0 = DispatchTime.now().uptimeNanoseconds
            let f = raw.frame
            let thumb = Self.thumbnail(f.image)
            var reused = false
            if threshold > 0 {
                let prev: [Float]? = self.lock.withLock { self.lastThumb[f.streamId] }
                if let prev, hasPrior(f.streamId) {
                    var diff: Float = 0
                    for i in 0..<thumb.count { diff += abs(thumb[i] - prev[i]) }
                    reused = Double(diff / Float(thumb.count)) < threshold
                }
            }
            var pixels: [Float] = []
            if !reused {
                self.lock.withLock { self.lastThumb[f.streamId] = thumb }
                pixels = try session.preprocess(rgb: f.image.pixels, width: f.image.width, height: f.image.height)
            }
            let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            return [PreparedFrame(frame: f, pixels: pixels, reused: reused, ms: ["video_decode": ms])]
        }
        // Reused frames (change gate) pass every compute stage without a compute turn, a latency
        // sample or a K-controller observation (`passThrough`), straight on to the sink.
        let encode = ClosureStage<PreparedFrame, EncodedFrame>(name: "encode", passThrough: { p in
            p.reused ? [EncodedFrame(frame: p.frame, encoded: nil, reused: true, ms: p.ms)] : nil
        }) { p in
            let e = try session.encode(pixels: p.pixels)
            var ms = p.ms
            ms["encode"] = e.encodeMs
            if let r = e.relevanceEncodeMs { ms["relevance_encode"] = r }
            return [EncodedFrame(frame: p.frame, encoded: e, reused: false, ms: ms)]
        }
        let gate = ClosureStage<EncodedFrame, FrameJobs>(name: "gate", passThrough: { [unowned self] e in
            guard e.encoded == nil else { return nil }
            return [FrameJobs(jobs: self.queries.all.map {
                QueryJob(frame: e.frame, query: $0, encoded: nil, keptTokens: [], visualTokens: 0, reused: true, ms: e.ms)
            })]
        }) { [unowned self] e in
            let active = self.queries.all
            guard let enc = e.encoded else { throw PipelineError.invalidGraph("gate: a frame without an encoding was not passed through") }
            let capK = self.knob?.k
            return [FrameJobs(jobs: try active.map { q in
                var cfg = q.gate
                cfg.maxTokens = capK
                let (_, kept, gateMs) = try session.gate(enc, query: q.text, config: cfg)
                var ms = e.ms
                ms["gate"] = gateMs
                return QueryJob(frame: e.frame, query: q, encoded: enc, keptTokens: kept,
                                visualTokens: enc.encoding.features.rows, reused: false, ms: ms)
            })]
        }
        let prefill = ClosureStage<FrameJobs, FramePrefills>(name: "prefill", passThrough: { frame in
            frame.jobs.allSatisfy(\.reused) ? [FramePrefills(jobs: frame.jobs.map { PrefilledJob(job: $0, prefill: nil) })] : nil
        }) { frame in
            [FramePrefills(jobs: try frame.jobs.map { job in
                guard let enc = job.encoded else { return PrefilledJob(job: job, prefill: nil) }
                let p = try session.prefill(enc, keptTokens: job.keptTokens, query: job.query.text, maxTokens: maxTokens)
                var j = job
                j.ms["prefill"] = p.timings.prefillMs
                return PrefilledJob(job: j, prefill: p)
            })]
        }
        let llm = ClosureStage<FramePrefills, Answered>(name: "llm_decode", passThrough: { frame in
            guard frame.jobs.allSatisfy({ $0.prefill == nil }) else { return nil }
            return frame.jobs.enumerated().map { Answered(job: $1.job, text: "", pYes: nil, slot: $0, of: frame.jobs.count) }
        }) { frame in
            try frame.jobs.enumerated().map { slot, p in
                guard let pre = p.prefill else { return Answered(job: p.job, text: "", pYes: nil, slot: slot, of: frame.jobs.count) }
                let a = try session.decode(pre, maxTokens: maxTokens)
                var j = p.job
                j.ms["llm_decode"] = a.timings.decodeMs
                return Answered(job: j, text: a.text.trimmingCharacters(in: .whitespacesAndNewlines), pYes: a.pYes,
                                slot: slot, of: frame.jobs.count)
            }
        }
        let onFrame = onFrameAnswered
        let emit = self.emit
        let profiler = self.profiler
        let graph = try GraphBuilder(first: decode,
                                     options: try stageOptions("video_decode", defaultQueue: 4, defaultPolicy: .latest, executor: .own),
                                     profiler: profiler,
                                     onEvent: { e in emit(e.jsonLine()) })
            .then(encode, options: try stageOptions("encode", defaultQueue: 2, defaultPolicy: .dropOldest, executor: .shared(compute)))
            .then(gate, options: try stageOptions("gate", defaultQueue: 2, defaultPolicy: .dropOldest, executor: .own))
            .then(prefill, options: try stageOptions("prefill", defaultQueue: 4, defaultPolicy: .dropOldest, executor: .shared(compute)))
            .then(llm, options: try stageOptions("llm_decode", defaultQueue: 4, defaultPolicy: .block, executor: .shared(compute)))
            .sink(name: "sink", queue: 16, policy: .block) { [unowned self] a, info in
                let j = a.job
                var text = a.text, pYes = a.pYes, kept = j.keptTokens, visual = j.visualTokens
                var changed = false
                self.lock.withLock {
                    var perStream = self.lastAnswers[j.frame.streamId] ?? [:]
                    if j.reused, let prev = perStream[j.query.id] {
                        (text, pYes, kept, visual) = (prev.text, prev.pYes, prev.kept, prev.visual)
                    } else if !j.reused {
                        changed = perStream[j.query.id].map { $0.text != text } ?? true
                        perStream[j.query.id] = (text, pYes, kept, visual)
                    }
                    self.lastAnswers[j.frame.streamId] = perStream
                }
                var event = AnswerEvent(stream: j.frame.streamId, query: j.query.id, pts: j.frame.pts,
                                        capturedAt: j.frame.capturedAt, answer: text, pYes: pYes, changed: changed,
                                        reused: j.reused, keptCount: kept.count, visualTokens: visual, stagesMs: j.ms,
                                        e2eMs: info.e2eMs)
                if let track = self.truths[j.frame.streamId] {
                    event.hasTruth = true
                    event.truth = track.frame(at: j.frame.pts).answers[j.query.text]
                    event.correct = event.truth.map { AnswerScoring.isCorrect(text, expected: $0) }
                }
                profiler.recordOutcome(query: j.query.id, fresh: !j.reused, correct: event.correct)
                emit(event.jsonLine())
                if let onFrame {
                    let entry = QueryOverlay(queryId: j.query.id, answer: text, kept: kept, reused: j.reused, correct: event.correct)
                    let done: [QueryOverlay]? = self.lock.withLock {
                        var list = a.slot == 0 ? [] : (self.pendingFrame[j.frame.streamId] ?? [])
                        list.append(entry)
                        if a.slot + 1 == a.of {
                            self.pendingFrame[j.frame.streamId] = nil
                            return list
                        }
                        self.pendingFrame[j.frame.streamId] = list
                        return nil
                    }
                    if let done { onFrame(FrameAnswers(frame: j.frame, answers: done)) }
                }
            }
        try graph.run()

        // Sources: one thread each, decoding and submitting frames.
        var specs = spec.sources
        if let o = options.sourceOverride {
            if specs.isEmpty { specs = [SourceSpec(id: "source", url: o)] } else { specs[0].url = o }
        }
        guard !specs.isEmpty else { throw PipelineError.spec(file: spec.name, key: "sources", message: "no sources (give sources: in the YAML or --source)") }
        let group = DispatchGroup()
        let errors = LockedBox<[String]>([])
        for s in specs {
            var so = SourceOptions()
            so.streamId = s.id
            if let t = s.transport { so.transport = RTSPTransport(rawValue: t) }
            if let r = s.readTimeoutMs { so.readTimeoutMs = r }
            if let r = s.reconnect { so.reconnect.initialMs = r.initialMs; so.reconnect.maxMs = r.maxMs }
            so.loop = s.loop ?? false
            so.realtime = options.realtime || (s.realtime ?? false)
            so.decoderThreads = options.decoderThreads
            so.onEvent = { e in
                if case .corruptPacket = e { profiler.recordDrop(stage: "video_decode", reason: .error) }
                emit(sourceEventLine(e))
            }
            let source = try VideoSources.open(url: s.url, options: so)
            let paced = so.realtime || s.url.hasPrefix("rtsp") || s.url.hasPrefix("v4l2")
            lock.withLock { sources.append(source) }
            DispatchQueue.global().async(group: group) { [unowned self] in
                do {
                    while !self.isStopping, let frame = try source.next() {
                        // Live and paced sources go through the edge's policy; a file read as fast as the
                        // graph accepts waits for room (block) instead of dropping.
                        graph.submit(RawFrame(frame: frame), policy: paced ? nil : .block)
                    }
                } catch {
                    if !self.isStopping { errors.mutate { $0.append("\(error)") } }
                }
                source.close()
            }
        }
        if let d = options.duration {
            DispatchQueue.global().asyncAfter(deadline: .now() + d) { [weak self] in self?.stop() }
        }
        group.wait()
        graph.finish()
        if let e = errors.value.first {
            emit("{\"event\":\"source_error\",\"error\":\(jsonString(e))}")
        }
        return profiler.report()
    }
}

/// A value behind a lock.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var v: T
    init(_ v: T) { self.v = v }
    var value: T { lock.withLock { v } }
    func mutate(_ f: (inout T) -> Void) { lock.withLock { f(&v) } }
}
