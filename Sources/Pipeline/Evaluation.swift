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
    /// Sum over answers of the LM FLOPs of a prefill of the whole prompt (prefix, kept visual tokens,
    /// question) from an empty cache.
    public var prefillFlops: Double = 0

    public var accuracy: Double { count > 0 ? Double(correct) / Double(count) : 0 }
    public var msPerAnswer: Double { count > 0 ? totalMs / Double(count) : 0 }
    /// Mean prefill GFLOPs per answer.
    public var prefillGFLOPs: Double { count > 0 ? prefillFlops / Double(count) / 1e9 : 0 }
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
                           scaler: FrameScaling = .pil,
                           progress: (Int, Int, Int) -> Void = { _, _, _ in }) throws -> EvalResult {
        try runGrid(session: session, data: data, configs: [config], limit: limit, maxTokens: maxTokens,
                    scaler: scaler) { done, total, correct in
            progress(done, total, correct[0])
        }[0]
    }

    /// Scores several gate configurations in one pass: each image is encoded once, then every
    /// configuration gates, prefills and decodes each of its questions. Each result's time is what
    /// that configuration would have taken alone (the image's encode is counted in every one).
    /// - Parameters:
    ///   - scaler: `pil` (the processor's exact resize) or `swscale` (images resized to the processor's
    ///     resize size with swscale first, as video frames are).
    ///   - progress: called after each question with (done, total, correct so far per configuration).
    /// - Complexity: one encode per distinct image, configs.count gate + prefill + decode per question.
    public static func runGrid(session: VLMSession, data: DataFolder, configs: [GateConfig], limit: Int? = nil,
                               maxTokens: Int = 8, scaler: FrameScaling = .pil,
                               progress: (Int, Int, [Int]) -> Void = { _, _, _ in }) throws -> [EvalResult] {
        let items = Array(data.items.prefix(limit ?? data.items.count))
        var results = configs.map { _ in
            EvalResult(dataset: data.name, count: 0, correct: 0, byType: [:], meanKept: 0,
                       visualTokens: session.vlm.patchCount, totalMs: 0, answers: [])
        }
        var keptTotal = [Int](repeating: 0, count: configs.count)
        var cachedImage: String? = nil
        var encoded: VLMSession.Encoded? = nil
        var encodeMs = 0.0
        for (i, item) in items.enumerated() {
            if cachedImage != item.image || encoded == nil {
                let t0 = DispatchTime.now().uptimeNanoseconds
                var img: RGBImage
                do { img = try data.image(of: item) } catch {
                    throw DataFolderError("\(data.qaURL.path):\(data.lines[i]): image \"\(item.image)\" does not decode: \(error)")
                }
                if scaler == .swscale, session.vlm.processor.config.doResize {
                    let r = try session.vlm.processor.resizedSize(height: img.height, width: img.width)
                    img = try SwscaleResize.resize(img, to: FrameSize(width: r.width, height: r.height))
                }
                let pixels = try session.preprocess(rgb: img.pixels, width: img.width, height: img.height)
                encoded = try session.encode(pixels: pixels)
                cachedImage = item.image
                encodeMs = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            } else {
                encodeMs = 0
            }
            for (c, config) in configs.enumerated() {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let (decision, keptTokens, _) = try session.gate(encoded!, query: item.question, config: config)
                let answer = try session.answer(encoded!, keptTokens: keptTokens, query: item.question, maxTokens: maxTokens)
                results[c].totalMs += encodeMs + Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                results[c].prefillFlops += session.vlm.language.flops(tokens: answer.promptIds.count)
                let ok = AnswerScoring.isCorrect(answer.text, expected: item.answer)
                results[c].count += 1
                results[c].correct += ok ? 1 : 0
                results[c].byType[item.type, default: (0, 0)].count += 1
                results[c].byType[item.type, default: (0, 0)].correct += ok ? 1 : 0
                results[c].answers.append(answer.text)
                keptTotal[c] += decision.kept.count
            }
            progress(i + 1, items.count, results.map(\.correct))
        }
        for c in results.indices {
            results[c].meanKept = results[c].count > 0 ? Double(keptTotal[c]) / Double(results[c].count) : 0
        }
        return results
    }
}
