import Foundation
import Tensor
import Dispatch
import Media
import Models
import Gate
import ModelIO

// The streaming pipeline of DESIGN.md, wired from the named stages in Stages/:
//   SourcePump (one thread per source: demux + decode + scale, timed as video_decode's work)
//     → VideoDecodeStage "video_decode" (change gate, the model's input pixels)
//     → EncodeStage "encode" (vision tower + projector; CLIP relevance encode when needed)
//     → GateStage "gate" (once per frame per standing query: kept tokens)
//     → PrefillStage "prefill" (LLM prefill of the kept tokens, cached prompt prefix)
//     → LLMDecodeStage "llm_decode" (greedy decode, p_yes)
//     → AnswerSink (answer events as JSON Lines)
// encode, prefill and llm_decode share one compute executor so that they never oversubscribe the cores.

/// Runs a pipeline spec until its sources end, `stop()` is called, or the duration passes.
public final class PipelineRunner: @unchecked Sendable {
    public let spec: PipelineSpec
    public let options: RunOptions
    public let session: VLMSession
    public let queries: QueryRegistry
    public let profiler = Profiler()
    private let emit: @Sendable (String) -> Void
    private let pump = SourcePump()
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
        let precision = Precision.resolve(spec.model?.precision ?? .native)
        session = try VLMSession(vlmFolder: URL(fileURLWithPath: vlm), clipFolder: spec.model?.clip.map { URL(fileURLWithPath: $0) },
                                 precision: precision.precision)
        var calibrationNote: [String] = precision.note.map { [$0] } ?? []
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
    public func stop() { pump.stop() }

    /// The first source's nominal frame rate, once `run()` has opened it (nil before, or when unknown).
    public var firstSourceFrameRate: Double? { pump.firstFrameRate }

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

    /// The processor's resize size for a native frame size (nil: the processor does not resize).
    static func resizeSize(_ processor: ImageProcessor) -> (@Sendable (FrameSize) -> FrameSize)? {
        guard processor.config.doResize else { return nil }
        return { native in
            guard let r = try? processor.resizedSize(height: native.height, width: native.width), r.width > 0, r.height > 0
            else { return native }
            return FrameSize(width: r.width, height: r.height)
        }
    }

    /// Runs until the sources end or `stop()`; returns the profile.
    public func run() throws -> ProfileReport {
        let compute = ComputeExecutor(label: "atp.compute")
        let change = ChangeGate.tracking(queries, threshold: options.changeThreshold)
        let emit = self.emit
        let profiler = self.profiler
        let sink = AnswerSink(change: change, truths: truths, profiler: profiler, emit: emit, onFrame: onFrameAnswered)
        // The prefill budget's shrink-k knob (if any) exists once the options are read; the gate reads it.
        let decodeOptions = try stageOptions("video_decode", defaultQueue: 4, defaultPolicy: .latest, executor: .own)
        let encodeOptions = try stageOptions("encode", defaultQueue: 2, defaultPolicy: .dropOldest, executor: .shared(compute))
        let prefillOptions = try stageOptions("prefill", defaultQueue: 4, defaultPolicy: .dropOldest, executor: .shared(compute))
        let gateOptions = try stageOptions("gate", defaultQueue: 2, defaultPolicy: .dropOldest, executor: .own)
        let decodeLLMOptions = try stageOptions("llm_decode", defaultQueue: 4, defaultPolicy: .block, executor: .shared(compute))
        // Reused frames (change gate) pass every compute stage without a compute turn, a latency
        // sample or a K-controller observation (`Stage.passThrough`), straight on to the sink.
        let graph = try GraphBuilder(first: VideoDecodeStage(session: session, change: change), options: decodeOptions,
                                     profiler: profiler, onEvent: { e in emit(e.jsonLine()) })
            .then(EncodeStage(session: session), options: encodeOptions)
            .then(GateStage(session: session, queries: queries, knob: knob), options: gateOptions)
            .then(PrefillStage(session: session, maxTokens: options.maxTokens), options: prefillOptions)
            .then(LLMDecodeStage(session: session, maxTokens: options.maxTokens), options: decodeLLMOptions)
            .sink(name: "sink", queue: 16, policy: .block) { a, info in sink.receive(a, info) }
        try graph.run()

        var specs = spec.sources
        if let o = options.sourceOverride {
            if specs.isEmpty { specs = [SourceSpec(id: "source", url: o)] } else { specs[0].url = o }
        }
        guard !specs.isEmpty else { throw PipelineError.spec(file: spec.name, key: "sources", message: "no sources (give sources: in the YAML or --source)") }
        // The swscale fast path: frames leave the decoder at the processor's resize size (its resize is
        // then a copy); the crop and normalisation stay the processor's.
        let scaleTo = options.scaler == .swscale ? Self.resizeSize(session.vlm.processor) : nil
        try pump.start(specs, options: options, scaleTo: scaleTo, onEvent: { e in
            if case .corruptPacket = e { profiler.recordDrop(stage: "video_decode", reason: .error) }
            emit(SourceEventRecord(e).jsonLine())
        }, submit: { frame, paced in
            // The source's decode is video_decode's work; a file read as fast as the graph accepts
            // waits for room (block) instead of dropping, live and paced sources meet the edge's policy.
            graph.submit(RawFrame(frame: frame), policy: paced ? nil : .block, upstreamWorkMs: frame.decodeMs,
                         lane: frame.streamId)
        })
        if let d = options.duration {
            DispatchQueue.global().asyncAfter(deadline: .now() + d) { [weak self] in self?.stop() }
        }
        let sourceError = pump.wait()
        graph.finish()
        if let e = sourceError { emit(SourceEventRecord(sourceError: e).jsonLine()) }
        return profiler.report()
    }
}
