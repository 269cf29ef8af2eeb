// `atp eval`: a VLM's accuracy on a data folder through the gate (any method and budget), by
// question type, with the time per answer. Each image is encoded once for all of its questions.
import Foundation
import Gate
import Media

/// The outcome of evaluating a model on a data folder.
public struct EvalResult: Sendable {
    public var dataset: String
    /// Questions scored.
    public var count: Int
    public var correct: Int
    /// Per question type: (correct, count).
    public var byType: [String: (correct: Int, count: Int)]
    /// Mean number of kept patches per answer.
    public var meanKept: Double
    /// Visual tokens per frame before the gate (N).
    public var visualTokens: Int
    /// Wall time of encode + gate + prefill + decode over all answers, in milliseconds.
    public var totalMs: Double
    /// Each question's generated answer, in data-folder order.
    public var answers: [String]

    public var accuracy: Double { count > 0 ? Double(correct) / Double(count) : 0 }
    public var msPerAnswer: Double { count > 0 ? totalMs / Double(count) : 0 }
}

/// Runs a VLM over a data folder.
public enum Evaluator {
    /// Scores `session` on the first `limit` questions of `data` (all when nil).
    /// - Parameters:
    ///   - session: the VLM (and its CLIP for relevance).
    ///   - data: the data folder.
    ///   - config: the gate configuration used for every question.
    ///   - limit: most questions to score.
    ///   - maxTokens: most tokens generated per answer.
    ///   - progress: called after each answer with (done, total, correct so far).
    /// - Throws: `DataFolderError` naming `qa.jsonl`'s line and the image when an image does not decode;
    ///   model errors as they come.
    /// - Complexity: one encode per distinct image, one gate + prefill + decode per question.
    public static func run(session: VLMSession, data: DataFolder, config: GateConfig, limit: Int? = nil, maxTokens: Int = 8,
                           progress: (Int, Int, Int) -> Void = { _, _, _ in }) throws -> EvalResult {
        let items = Array(data.items.prefix(limit ?? data.items.count))
        var result = EvalResult(dataset: data.name, count: 0, correct: 0, byType: [:], meanKept: 0,
                                visualTokens: session.vlm.patchCount, totalMs: 0, answers: [])
        var keptTotal = 0
        var cachedImage: String? = nil
        var encoded: VLMSession.Encoded? = nil
        for (i, item) in items.enumerated() {
            let t0 = DispatchTime.now().uptimeNanoseconds
            if cachedImage != item.image || encoded == nil {
                let img: RGBImage
                do { img = try data.image(of: item) } catch {
                    throw DataFolderError("\(data.qaURL.path):\(data.lines[i]): image \"\(item.image)\" does not decode: \(error)")
                }
                let pixels = try session.preprocess(rgb: img.pixels, width: img.width, height: img.height)
                encoded = try session.encode(pixels: pixels)
                cachedImage = item.image
            }
            let (decision, keptTokens, _) = try session.gate(encoded!, query: item.question, config: config)
            let answer = try session.answer(encoded!, keptTokens: keptTokens, query: item.question, maxTokens: maxTokens)
            result.totalMs += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            let ok = AnswerScoring.isCorrect(answer.text, expected: item.answer)
            result.count += 1
            result.correct += ok ? 1 : 0
            result.byType[item.type, default: (0, 0)].count += 1
            result.byType[item.type, default: (0, 0)].correct += ok ? 1 : 0
            result.answers.append(answer.text)
            keptTotal += decision.kept.count
            progress(i + 1, items.count, result.correct)
        }
        result.meanKept = result.count > 0 ? Double(keptTotal) / Double(result.count) : 0
        return result
    }
}
