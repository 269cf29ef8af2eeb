// gate: once per frame per standing query, the kept visual tokens (K capped by the shrink-k
// controller of the prefill budget, when there is one).

struct GateStage: Stage {
    let name = "gate"
    let session: VLMSession
    let queries: QueryRegistry
    /// The shrink-k knob, read for every frame (nil: no cap).
    let knob: KKnob?

    /// A reused frame: one reused job per active query.
    func passThrough(_ e: EncodedFrame) -> [FrameJobs]? {
        guard e.encoded == nil else { return nil }
        return [FrameJobs(jobs: queries.all.map {
            QueryJob(frame: e.frame, query: $0, encoded: nil, keptTokens: [], visualTokens: 0, reused: true)
        })]
    }

    func process(_ e: EncodedFrame) throws -> [FrameJobs] {
        guard let enc = e.encoded else { throw PipelineError.invalidGraph("gate: a frame without an encoding was not passed through") }
        let capK = knob?.k
        return [FrameJobs(jobs: try queries.all.map { q in
            var cfg = q.gate
            cfg.maxTokens = capK
            let (_, kept, _) = try session.gate(enc, query: q.text, config: cfg)
            return QueryJob(frame: e.frame, query: q, encoded: enc, keptTokens: kept,
                            visualTokens: enc.encoding.features.rows, reused: false)
        })]
    }
}
