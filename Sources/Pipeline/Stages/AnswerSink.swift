// The sink: answer events (fresh, or recalled for reused frames), truth scoring, and the per-frame
// hand-off to `PipelineRunner.onFrameAnswered`.
import Foundation
import Media

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

/// Turns answered items into answer events, in arrival order, on the graph's sink thread.
final class AnswerSink: @unchecked Sendable {
    let change: ChangeGate
    let truths: [String: TruthTrack]
    let profiler: Profiler
    let emit: @Sendable (String) -> Void
    let onFrame: (@Sendable (FrameAnswers) -> Void)?
    /// Answers of the frame now reaching the sink, per stream (only touched on the sink thread).
    private var pendingFrame: [String: [QueryOverlay]] = [:]

    init(change: ChangeGate, truths: [String: TruthTrack], profiler: Profiler,
         emit: @escaping @Sendable (String) -> Void, onFrame: (@Sendable (FrameAnswers) -> Void)?) {
        self.change = change
        self.truths = truths
        self.profiler = profiler
        self.emit = emit
        self.onFrame = onFrame
    }

    func receive(_ a: Answered, _ info: ItemInfo) {
        let j = a.job
        let stream = j.frame.streamId
        var answer = RememberedAnswer(text: a.text, pYes: a.pYes, kept: j.keptTokens, visualTokens: j.visualTokens)
        var changed = false
        if j.reused {
            if let prev = change.recall(stream: stream, query: j.query.id) { answer = prev }
        } else {
            changed = change.remember(stream: stream, query: j.query.id, answer)
        }
        var event = AnswerEvent(stream: stream, query: j.query.id, pts: j.frame.pts, capturedAt: j.frame.capturedAt,
                                answer: answer.text, pYes: answer.pYes, changed: changed, reused: j.reused,
                                keptCount: answer.kept.count, visualTokens: answer.visualTokens,
                                stagesMs: info.stagesMs, queueMs: info.queueMs, e2eMs: info.e2eMs)
        if let track = truths[stream] {
            event.hasTruth = true
            event.truth = track.frame(at: j.frame.pts).answers[j.query.text]
            event.correct = event.truth.map { AnswerScoring.isCorrect(answer.text, expected: $0) }
        }
        profiler.recordOutcome(query: j.query.id, fresh: !j.reused, correct: event.correct)
        emit(event.jsonLine())
        guard let onFrame else { return }
        var list = a.slot == 0 ? [] : (pendingFrame[stream] ?? [])
        list.append(QueryOverlay(queryId: j.query.id, answer: answer.text, kept: answer.kept, reused: j.reused,
                                 correct: event.correct))
        if a.slot + 1 == a.of {
            pendingFrame[stream] = nil
            onFrame(FrameAnswers(frame: j.frame, answers: list))
        } else {
            pendingFrame[stream] = list
        }
    }
}
