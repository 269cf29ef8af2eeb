import Foundation
import Tensor
import ModelIO
import Models
import Gate

/// A VLM ready to answer questions about frames through the ATP gate: the LLaVA checkpoint, the
/// optional CLIP checkpoint whose text tower gives relevance, and the cached query embeddings.
///
/// Relevance follows DESIGN.md: with `--clip`, when that checkpoint's vision weights equal the VLM's
/// tower the VLM's own final hidden states are reused; otherwise the frame is encoded a second time by
/// the CLIP tower (`relevance_encode`). SigLIP towers and VLMs without `--clip` use saliency only.
public final class VLMSession: @unchecked Sendable {
    public let vlm: LlavaModel
    public let clip: CLIPModel?
    /// The CLIP tower equals the VLM's (no second encode).
    public let reusesVLMHidden: Bool
    /// Relevance is available (a CLIP text tower and a CLIP-family VLM tower).
    public var hasRelevance: Bool { clip != nil && !vlm.config.visionConfig.isSigLIP }
    /// One-time notes for stderr (e.g. "saliency only").
    public let notes: [String]
    /// Token ids whose text is a form of "yes" (for p_yes).
    public let yesIds: Set<Int>
    /// The storage of the language model's weight matrices, e.g. `f32` or `bf16+f32` (for reports).
    public var precisionName: String { vlm.language.storageName }
    private let lock = NSLock()
    private var textEmbeddings: [String: [Float]] = [:]

    /// Loads a VLM and its CLIP checkpoint: `clipFolder`, or else the VLM folder's `clip/` subfolder
    /// when it holds a config.json (DESIGN.md).
    /// `precision` applies to the language model (see `LlamaModel.init(gguf:precision:)`): with
    /// `.native`, F16/BF16 safetensors matrices stay 16-bit.
    public init(vlmFolder: URL, clipFolder explicitClip: URL?, precision: Precision = .f32) throws {
        let bundled = vlmFolder.appendingPathComponent("clip")
        let clipFolder = explicitClip
            ?? (FileManager.default.fileExists(atPath: bundled.appendingPathComponent("config.json").path) ? bundled : nil)
        let kind = try ModelRegistry.kind(folder: vlmFolder)
        guard kind == .llava else {
            throw ModelIOError(.unsupported, path: vlmFolder.appendingPathComponent("config.json").path,
                               "model_type '\(kind.rawValue)' is not a vision-language model (expected 'llava')")
        }
        vlm = try LlavaModel(folder: vlmFolder, precision: precision)
        var notes: [String] = []
        if let clipFolder {
            let c = try CLIPModel(folder: clipFolder)
            let mine = vlm.config.visionConfig, theirs = c.vision.config
            guard mine.isSigLIP || (theirs.imageSize == mine.imageSize && theirs.patchSize == mine.patchSize) else {
                throw ModelIOError(.shapeMismatch, path: clipFolder.appendingPathComponent("config.json").path,
                                   "CLIP vision image_size \(theirs.imageSize), patch_size \(theirs.patchSize) differ from the VLM's "
                                   + "\(mine.imageSize), \(mine.patchSize) in \(vlmFolder.appendingPathComponent("config.json").path): "
                                   + "relevance needs one patch grid")
            }
            clip = c
            if vlm.config.visionConfig.isSigLIP {
                reusesVLMHidden = false
                notes.append("the VLM's vision tower is SigLIP: the gate uses saliency only (alpha forced to 0)")
            } else if c.vision.hasSameWeights(as: vlm.vision) {
                reusesVLMHidden = true
            } else {
                reusesVLMHidden = false
                notes.append("\(clipFolder.path): its vision weights differ from the VLM's tower, so each frame is encoded a second time for relevance (timed as relevance_encode)")
            }
        } else {
            clip = nil
            reusesVLMHidden = false
            notes.append("no --clip checkpoint (and no clip/ in the VLM folder): the gate uses saliency only (alpha forced to 0)")
        }
        self.notes = notes
        var yes: Set<Int> = []
        let tok = vlm.tokenizer
        for id in 0..<tok.vocabularySize {
            let t = tok.decode([id], skipSpecialTokens: true).trimmingCharacters(in: .whitespaces).lowercased()
            if t == "yes" { yes.insert(id) }
        }
        yesIds = yes
    }

    /// One frame encoded for every query.
    public struct Encoded: Sendable {
        public var encoding: LlavaImageEncoding
        /// `P_v · LN_post(h_i)` per patch `[N, P]`, when relevance is available.
        public var patchEmbeddings: Tensor?
        public var encodeMs: Double
        public var relevanceEncodeMs: Double?
    }

    /// Preprocesses an RGB image with the VLM's image processor.
    public func preprocess(rgb: [UInt8], width: Int, height: Int) throws -> [Float] {
        let pre = try vlm.processor.preprocess(rgb: rgb, width: width, height: height)
        let side = vlm.config.visionConfig.imageSize
        guard pre.width == side, pre.height == side else {
            throw ModelIOError(.malformed, path: "image processor", "yields \(pre.width)×\(pre.height) but the tower takes \(side)×\(side)")
        }
        return pre.pixels
    }

    /// Encodes one frame (and, when needed, encodes it again with the CLIP tower for relevance).
    public func encode(pixels: [Float]) throws -> Encoded {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let enc = try vlm.encodeImage(pixels: pixels)
        let t1 = DispatchTime.now().uptimeNanoseconds
        var patch: Tensor? = nil
        var relMs: Double? = nil
        if hasRelevance, let clip {
            if reusesVLMHidden {
                patch = clip.patchEmbeddings(enc.vision)
            } else {
                let t2 = DispatchTime.now().uptimeNanoseconds
                patch = clip.patchEmbeddings(clip.vision.encode(pixels: pixels))
                relMs = Double(DispatchTime.now().uptimeNanoseconds - t2) / 1e6
            }
        }
        return Encoded(encoding: enc, patchEmbeddings: patch, encodeMs: Double(t1 - t0) / 1e6, relevanceEncodeMs: relMs)
    }

    /// The query's CLIP text embedding, computed once and cached.
    public func textEmbedding(_ query: String) throws -> [Float]? {
        guard hasRelevance, let clip else { return nil }
        lock.lock()
        if let t = textEmbeddings[query] { lock.unlock(); return t }
        lock.unlock()
        let t = try clip.textEmbedding(query)
        lock.lock(); textEmbeddings[query] = t; lock.unlock()
        return t
    }

    /// Forgets a cached query embedding.
    public func forget(query: String) { lock.lock(); textEmbeddings[query] = nil; lock.unlock() }

    /// Runs the gate for a query; returns the decision over patches and the kept visual-token rows.
    public func gate(_ e: Encoded, query: String, config: GateConfig) throws -> (decision: GateDecision, keptTokens: [Int], ms: Double) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        var rel: [Float]? = nil
        var cfg = config
        if let pe = e.patchEmbeddings, let t = try textEmbedding(query) {
            rel = try cosineRelevance(patchEmbeddings: pe.data, count: pe.rows, dim: pe.cols, text: t)
        } else {
            if cfg.method == .atp { cfg.alpha = 0 }
        }
        let feats = cfg.method == .atpDiv ? e.encoding.vision.patchFeatures : nil
        let decision = try runGate(saliency: e.encoding.saliency, relevance: rel, config: cfg,
                                   features: feats?.values, featureDim: feats?.dim ?? 0)
        let keptSet = Set(decision.kept)
        // Visual tokens whose patch is kept, plus any CLS row (`full` strategy), in ascending order.
        let tokens = e.encoding.tokenPatch.enumerated().compactMap { i, p in p.map { keptSet.contains($0) } ?? true ? i : nil }
        return (decision, tokens, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
    }

    /// The prefill half of `answer` (a pipeline stage of its own).
    public func prefill(_ e: Encoded, keptTokens: [Int], query: String, maxTokens: Int) throws -> LlavaPrefill {
        try vlm.prefill(encoding: e.encoding, keptTokens: keptTokens, query: query, maxNewTokens: maxTokens)
    }

    /// The decode half of `answer`.
    public func decode(_ p: LlavaPrefill, maxTokens: Int) throws -> LlavaAnswer {
        try vlm.decode(p, options: GenerationOptions(maxTokens: maxTokens, stopIds: Set(vlm.tokenizer.stopTokenIds)),
                       yesIds: yesIds)
    }

    /// Answers a query from the kept visual tokens.
    public func answer(_ e: Encoded, keptTokens: [Int], query: String, maxTokens: Int) throws -> LlavaAnswer {
        let stops = Set(vlm.tokenizer.stopTokenIds)
        return try vlm.answer(encoding: e.encoding, keptTokens: keptTokens, query: query,
                              options: GenerationOptions(maxTokens: maxTokens, stopIds: stops), yesIds: yesIds)
    }
}
