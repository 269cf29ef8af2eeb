// The items that flow between the pipeline's stages (Runner.swift wires them).
import Media
import Models

/// A decoded frame as the source delivered it (native size).
struct RawFrame: Sendable { var frame: VideoFrame }

/// A frame after the change gate: the model's input pixels, or `reused` (nothing to compute).
struct PreparedFrame: Sendable {
    var frame: VideoFrame
    var pixels: [Float]
    var reused: Bool
}

/// A frame after the vision tower (nil `encoded`: reused).
struct EncodedFrame: Sendable {
    var frame: VideoFrame
    var encoded: VLMSession.Encoded?
}

/// One standing query on one frame, with the gate's kept tokens.
struct QueryJob: Sendable {
    var frame: VideoFrame
    var query: StandingQuery
    var encoded: VLMSession.Encoded?
    var keptTokens: [Int]
    var visualTokens: Int
    var reused: Bool
}

/// A query after prefill (nil: reused).
struct PrefilledJob: Sendable {
    var job: QueryJob
    var prefill: LlavaPrefill?
}

/// All queries of one frame travel together through prefill and decode, so that a `latest` queue
/// keeps the newest frame (with every query), not the newest query.
struct FrameJobs: Sendable { var jobs: [QueryJob] }
struct FramePrefills: Sendable { var jobs: [PrefilledJob] }

/// One query's answer (empty text and nil `pYes` for a reused frame: the sink recalls the last one).
struct Answered: Sendable {
    var job: QueryJob
    var text: String
    var pYes: Float?
    /// This answer's place among its frame's answers (they reach the sink consecutively).
    var slot = 0, of = 1
}
