// llm_decode: greedy decode of every query of a frame, and p_yes; one answer item per query.
import Foundation

struct LLMDecodeStage: Stage {
    let name = "llm_decode"
    let session: VLMSession
    let maxTokens: Int

    func passThrough(_ frame: FramePrefills) -> [Answered]? {
        guard frame.jobs.allSatisfy({ $0.prefill == nil }) else { return nil }
        return frame.jobs.enumerated().map { Answered(job: $1.job, text: "", pYes: nil, slot: $0, of: frame.jobs.count) }
    }

    func process(_ frame: FramePrefills) throws -> [Answered] {
        try frame.jobs.enumerated().map { slot, p in
            guard let pre = p.prefill else { return Answered(job: p.job, text: "", pYes: nil, slot: slot, of: frame.jobs.count) }
            let a = try session.decode(pre, maxTokens: maxTokens)
            return Answered(job: p.job, text: a.text.trimmingCharacters(in: .whitespacesAndNewlines), pYes: a.pYes,
                            slot: slot, of: frame.jobs.count)
        }
    }
}
