// prefill: the LLM prefill of every query of a frame (kept visual tokens, cached prompt prefix).

struct PrefillStage: Stage {
    let name = "prefill"
    let session: VLMSession
    let maxTokens: Int

    func passThrough(_ frame: FrameJobs) -> [FramePrefills]? {
        frame.jobs.allSatisfy(\.reused) ? [FramePrefills(jobs: frame.jobs.map { PrefilledJob(job: $0, prefill: nil) })] : nil
    }

    func process(_ frame: FrameJobs) throws -> [FramePrefills] {
        [FramePrefills(jobs: try frame.jobs.map { job in
            guard let enc = job.encoded else { return PrefilledJob(job: job, prefill: nil) }
            return PrefilledJob(job: job, prefill: try session.prefill(enc, keptTokens: job.keptTokens,
                                                                      query: job.query.text, maxTokens: maxTokens))
        })]
    }
}
