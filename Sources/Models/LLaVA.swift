// LLaVA (transformers modeling_llava.py: LlavaForConditionalGeneration, LlavaModel.get_image_features,
// LlavaMultiModalProjector) with a CLIP or SigLIP vision tower and a Llama-family language model.
// The <image> placeholder expands to exactly the kept visual tokens, in ascending spatial order.

import Foundation
import Tensor
import ModelIO

/// `config.json` of a LLaVA folder (`model_type: llava`), transformers 4.x or 5.x.
public struct LlavaConfig: Decodable, Sendable {
    public var imageTokenIndex: Int
    public var projectorHiddenAct: String
    /// `default` drops the CLS row of the selected features, `full` keeps it.
    public var visionFeatureSelectStrategy: String
    /// Hidden-state indices (Python-style, negative from the end) whose features are concatenated.
    public var visionFeatureLayers: [Int]
    public var multimodalProjectorBias: Bool
    public var visionConfig: CLIPVisionConfig
    public var textConfig: LlamaConfig

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", imageTokenIndex = "image_token_index", imageTokenId = "image_token_id"
        case projectorHiddenAct = "projector_hidden_act", visionFeatureSelectStrategy = "vision_feature_select_strategy"
        case visionFeatureLayer = "vision_feature_layer", multimodalProjectorBias = "multimodal_projector_bias"
        case visionConfig = "vision_config", textConfig = "text_config"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imageTokenIndex = try c.decodeIfPresent(Int.self, forKey: .imageTokenIndex)
            ?? c.decodeIfPresent(Int.self, forKey: .imageTokenId) ?? 32000
        projectorHiddenAct = try c.decodeIfPresent(String.self, forKey: .projectorHiddenAct) ?? "gelu"
        guard Activation(hfName: projectorHiddenAct) != nil else {
            throw invalidConfig("projector_hidden_act", "'\(projectorHiddenAct)' is not supported")
        }
        visionFeatureSelectStrategy = try c.decodeIfPresent(String.self, forKey: .visionFeatureSelectStrategy) ?? "default"
        guard ["default", "full"].contains(visionFeatureSelectStrategy) else {
            throw invalidConfig("vision_feature_select_strategy", "'\(visionFeatureSelectStrategy)' is not supported (default, full)")
        }
        if let one = try? c.decodeIfPresent(Int.self, forKey: .visionFeatureLayer) {
            visionFeatureLayers = [one]
        } else {
            visionFeatureLayers = try c.decodeIfPresent([Int].self, forKey: .visionFeatureLayer) ?? [-2]
        }
        multimodalProjectorBias = try c.decodeIfPresent(Bool.self, forKey: .multimodalProjectorBias) ?? true
        visionConfig = try c.decode(CLIPVisionConfig.self, forKey: .visionConfig)
        textConfig = try c.decode(LlamaConfig.self, forKey: .textConfig)
        let layers = visionConfig.numHiddenLayers
        for l in visionFeatureLayers where !(l >= -(layers + 1) && l <= layers) {
            throw invalidConfig("vision_feature_layer", "\(l) is outside the \(layers + 1) hidden states of the vision tower")
        }
    }

    /// Hidden-state index (0 = embeddings, i = after layer i) for a Python-style index.
    public func hiddenStateIndex(_ l: Int) -> Int { l >= 0 ? l : visionConfig.numHiddenLayers + 1 + l }
}

/// What the vision side gives for one image.
public struct LlavaImageEncoding: Sendable {
    /// The vision tower's output (final layer states and head-mean attention, kept layers).
    public var vision: CLIPVisionOutput
    /// Projected features `[V, D_text]`, one row per visual token (V = N, or N + 1 with a CLS row).
    public var features: Tensor
    /// The patch index of each visual token (`nil` for the CLS row of `full` with a CLIP tower).
    public var tokenPatch: [Int?]
    /// Saliency per patch (N): CLS→patch attention (CLIP) or received attention (SigLIP), renormalised.
    public var saliency: [Float]
}

/// The result of answering one prompt.
public struct LlavaAnswer: Sendable {
    public var ids: [Int]
    public var text: String
    public var promptIds: [Int]
    /// Probability of "yes"-like first tokens (for yes/no questions), from the first decode step.
    public var pYes: Float?
    public var timings: GenerationTimings
}

/// A LLaVA checkpoint: vision tower, projector, language model, tokenizer and image processor.
public final class LlavaModel: @unchecked Sendable {
    public let config: LlavaConfig
    public let vision: CLIPVisionTower
    public let language: LlamaModel
    public let tokenizer: BPETokenizer
    public let processor: ImageProcessor
    let proj1w: Tensor, proj1b: Tensor?, proj2w: Tensor, proj2b: Tensor?
    let projAct: Activation
    private let lock = NSLock()
    private var prefixCache: [[Int]: KVCache] = [:]
    private var promptCache: [String: (prefix: [Int], suffix: [Int])] = [:]

    /// Renames checkpoint keys of either transformers layout to one form:
    /// `vision_tower.…`, `multi_modal_projector.…`, `language_model.…` (the decoder), `lm_head.weight`.
    public static func sanitize(_ key: String) -> String {
        var k = key
        for (old, new) in [("model.language_model.", "language_model."), ("language_model.model.", "language_model."),
                           ("language_model.lm_head.", "lm_head."), ("model.vision_tower.", "vision_tower."),
                           ("model.multi_modal_projector.", "multi_modal_projector."),
                           ("vision_tower.vision_model.", "vision_tower.")] where k.hasPrefix(old) {
            k = new + k.dropFirst(old.count)
        }
        return k
    }

    /// Checkpoint tensors that are not used and are ignored: buffers of older saves and SigLIP's pooling head.
    public static func isIgnored(_ key: String) -> Bool {
        key.hasSuffix("position_ids") || key.hasSuffix("rotary_emb.inv_freq") || key.hasPrefix("vision_tower.head.")
            || key == "logit_scale"
    }

    /// Loads an HF LLaVA folder; `precision` applies to the language model (F16/BF16 matrices stay
    /// 16-bit with `.native`).
    public init(folder: URL, precision: Precision = .f32) throws {
        let cfgURL = folder.appendingPathComponent("config.json")
        config = try decodeJSONFile(LlavaConfig.self, at: cfgURL)
        let files = try WeightFiles(folder: folder)
        try ensureFits(bytes: files.residentFootprint(keep16: precision == .native), what: folder.path)
        let w = StrictWeights(files: files, sanitize: Self.sanitize)
        vision = try CLIPVisionTower(config: config.visionConfig, weights: w, prefix: "vision_tower")
        let dv = config.visionConfig.hiddenSize * config.visionFeatureLayers.count
        let dt = config.textConfig.hiddenSize
        proj1w = try w.take("multi_modal_projector.linear_1.weight", shape: [dt, dv])
        proj1b = config.multimodalProjectorBias ? try w.take("multi_modal_projector.linear_1.bias", shape: [dt]) : nil
        proj2w = try w.take("multi_modal_projector.linear_2.weight", shape: [dt, dt])
        proj2b = config.multimodalProjectorBias ? try w.take("multi_modal_projector.linear_2.bias", shape: [dt]) : nil
        projAct = Activation(hfName: config.projectorHiddenAct)!
        language = try LlamaModel(config: config.textConfig, weights: w, prefix: "language_model.", lmHeadKey: "lm_head.weight",
                                  precision: precision)
        try w.finish(ignore: Self.isIgnored)
        tokenizer = try BPETokenizer(folder: folder)
        processor = ImageProcessor(config: try ImageProcessorConfig.load(folder: folder))
        guard tokenizer.token(for: config.imageTokenIndex) != nil else {
            throw ModelIOError(.malformed, path: cfgURL.path, "image_token_index \(config.imageTokenIndex) is not in the tokenizer's vocabulary")
        }
    }

    /// Number of patches N.
    public var patchCount: Int { config.visionConfig.gridSide * config.visionConfig.gridSide }

    /// Encodes preprocessed pixels: runs the whole tower (the final layer gives the saliency), selects the
    /// feature layer(s) and strategy as LlavaModel.get_image_features does, and projects.
    /// - Complexity: one vision-tower pass plus two projector matmuls.
    public func encodeImage(pixels: [Float]) throws -> LlavaImageEncoding {
        let layers = Set(config.visionFeatureLayers.map(config.hiddenStateIndex))
        let out = vision.encode(pixels: pixels, keepLayers: layers)
        let hasCLS = !config.visionConfig.isSigLIP
        let n = patchCount
        let tokens = out.lastHidden.rows                     // N (+1 with CLS)
        // Rows kept by the strategy: `default` drops row 0 (the CLS of CLIP; transformers drops row 0 for any tower).
        let first = config.visionFeatureSelectStrategy == "default" ? 1 : 0
        var tokenPatch: [Int?] = []
        for r in first..<tokens { tokenPatch.append(hasCLS ? (r == 0 ? nil : r - 1) : r) }
        let dv = config.visionConfig.hiddenSize
        let l = config.visionFeatureLayers.count
        var selected = Tensor(zeros: [tokens - first, dv * l])   // [V, Dv·layers]
        for (j, li) in config.visionFeatureLayers.enumerated() {
            let h = config.hiddenStateIndex(li) == config.visionConfig.numHiddenLayers
                ? out.lastHidden : out.layerHidden[config.hiddenStateIndex(li)]!
            for r in first..<tokens {
                for c in 0..<dv { selected.data[(r - first) * dv * l + j * dv + c] = h.data[r * dv + c] }
            }
        }
        var x = linear(selected, weight: proj1w, bias: proj1b)
        activate(&x, projAct)
        let features = linear(x, weight: proj2w, bias: proj2b)
        // Saliency over the N patches.
        let sal: [Float]
        if hasCLS {
            sal = Array(out.finalAttention.row(0).dropFirst())
        } else {
            var recv = [Float](repeating: 0, count: n)
            for i in 0..<n { for j in 0..<n { recv[j] += out.finalAttention.data[i * n + j] } }
            sal = recv
        }
        let total = sal.reduce(0, +)
        return LlavaImageEncoding(vision: out, features: features, tokenPatch: tokenPatch,
                                  saliency: total > 0 ? sal.map { $0 / total } : sal.map { _ in 1 / Float(n) })
    }

    /// The LLaVA-1.5 prompt `USER: <image>\n{query} ASSISTANT:` tokenised as LlavaProcessor does
    /// (special tokens split the text), split around the single image placeholder.
    public func promptParts(query: String) throws -> (prefix: [Int], suffix: [Int]) {
        // Standing queries are asked of every frame: tokenise each one once.
        if let cached = lock.withLock({ promptCache[query] }) { return cached }
        let ids = tokenizer.encode("USER: <image>\n\(query) ASSISTANT:", addSpecialTokens: true)
        let image = config.imageTokenIndex
        guard let at = ids.firstIndex(of: image), ids.lastIndex(of: image) == at else {
            throw ModelIOError(.malformed, path: "prompt", "the query must not contain the image placeholder token")
        }
        let parts = (prefix: Array(ids[..<at]), suffix: Array(ids[(at + 1)...]))
        lock.withLock { promptCache[query] = parts }
        return parts
    }

    /// The KV cache of a prompt prefix, computed once per prefix and reused (copied) afterwards.
    func prefixKV(_ prefix: [Int], capacity: Int) throws -> KVCache {
        lock.lock()
        if let c = prefixCache[prefix] { lock.unlock(); return c.copy() }
        lock.unlock()
        var cache = language.makeCache(capacity: capacity)
        if !prefix.isEmpty { _ = try language.forward(ids: prefix, cache: &cache) }
        lock.lock()
        prefixCache[prefix] = cache
        lock.unlock()
        return cache.copy()
    }

    /// Answers `query` from the kept visual tokens (rows of `encoding.features`, ascending).
    ///
    /// - Parameters:
    ///   - keptTokens: indices into `encoding.features` rows, ascending.
    ///   - reusePrefix: start from the cached KV of the prompt part before the image (identical results).
    ///   - yesIds: token ids counted as "yes" for `pYes` (nil: not computed).
    public func answer(encoding: LlavaImageEncoding, keptTokens: [Int], query: String, options: GenerationOptions,
                       reusePrefix: Bool = true, yesIds: Set<Int>? = nil) throws -> LlavaAnswer {
        let p = try prefill(encoding: encoding, keptTokens: keptTokens, query: query,
                            maxNewTokens: options.maxTokens, reusePrefix: reusePrefix)
        return try decode(p, options: options, yesIds: yesIds)
    }

    /// Runs the prefill of the prompt with the kept visual tokens: the cached prefix KV (or a fresh one),
    /// then the image tokens and the rest of the prompt in one batched pass.
    public func prefill(encoding: LlavaImageEncoding, keptTokens: [Int], query: String, maxNewTokens: Int,
                        reusePrefix: Bool = true) throws -> LlavaPrefill {
        let (prefix, suffix) = try promptParts(query: query)
        let d = config.textConfig.hiddenSize
        let k = keptTokens.count
        let t0 = DispatchTime.now().uptimeNanoseconds
        // Embeddings of [image tokens…, suffix…], continuing after the prefix.
        var rest = Tensor(zeros: [k + suffix.count, d])
        for (i, t) in keptTokens.enumerated() {
            guard t >= 0, t < encoding.features.rows else {
                throw ModelIOError(.malformed, path: "kept", "visual token \(t) outside 0..<\(encoding.features.rows)")
            }
            for c in 0..<d { rest.data[i * d + c] = encoding.features.data[t * d + c] }
        }
        if !suffix.isEmpty {
            let se = try language.embed(suffix)
            for i in 0..<suffix.count { for c in 0..<d { rest.data[(k + i) * d + c] = se.data[i * d + c] } }
        }
        let capacity = prefix.count + k + suffix.count + maxNewTokens + 1
        var cache: KVCache
        if reusePrefix {
            cache = try prefixKV(prefix, capacity: capacity)
        } else {
            cache = language.makeCache(capacity: capacity)
            if !prefix.isEmpty { _ = try language.forward(ids: prefix, cache: &cache) }
        }
        let logits = try language.forward(embeddings: rest, cache: &cache,
                                          positions: imagePositions(prefix: prefix.count, kept: keptTokens,
                                                                    visualTokens: encoding.features.rows, suffix: suffix.count))
        var timings = GenerationTimings()
        timings.promptTokens = prefix.count + rest.rows
        timings.prefillMs = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        let promptIds = prefix + [Int](repeating: config.imageTokenIndex, count: k) + suffix
        return LlavaPrefill(cache: cache, logits: logits.data, promptIds: promptIds, timings: timings)
    }

    /// Decodes after a prefill (greedy or sampled, stopping on `options.stopIds`); the first step's
    /// logits also give `pYes`.
    public func decode(_ p: LlavaPrefill, options: GenerationOptions, yesIds: Set<Int>? = nil) throws -> LlavaAnswer {
        try options.validate()
        var cache = p.cache
        var timings = p.timings
        var sampler = TokenSampler(options: options)
        let t1 = DispatchTime.now().uptimeNanoseconds
        let pYes = yesIds.map { yesProbability(p.logits, $0) }
        var next = sampler.next(p.logits)
        var ids: [Int] = []
        while options.maxTokens > 0 {
            ids.append(next)
            if options.stopIds.contains(next) || ids.count >= options.maxTokens { break }
            let logits = try language.forward(ids: [next], cache: &cache)
            timings.decodeSteps += 1
            next = sampler.next(logits.data)
        }
        timings.decodeMs = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e6
        timings.generatedTokens = ids.count
        return LlavaAnswer(ids: ids, text: tokenizer.decode(ids, skipSpecialTokens: true),
                           promptIds: p.promptIds, pYes: pYes, timings: timings)
    }
}

/// The state after a prefill: the KV cache, the last position's logits and the prompt.
public struct LlavaPrefill: Sendable {
    public var cache: KVCache
    public var logits: [Float]
    public var promptIds: [Int]
    public var timings: GenerationTimings
}

extension LlavaModel {
    /// Last-position logits of the prefill (no cached prefix), for parity tests.
    public func prefillLogits(encoding: LlavaImageEncoding, keptTokens: [Int], query: String) throws -> [Float] {
        let (prefix, suffix) = try promptParts(query: query)
        let d = config.textConfig.hiddenSize
        var cache = language.makeCache(capacity: prefix.count + keptTokens.count + suffix.count + 1)
        if !prefix.isEmpty { _ = try language.forward(ids: prefix, cache: &cache) }
        var rest = Tensor(zeros: [keptTokens.count + suffix.count, d])
        for (i, t) in keptTokens.enumerated() { for c in 0..<d { rest.data[i * d + c] = encoding.features.data[t * d + c] } }
        if !suffix.isEmpty {
            let se = try language.embed(suffix)
            for i in 0..<suffix.count { for c in 0..<d { rest.data[(keptTokens.count + i) * d + c] = se.data[i * d + c] } }
        }
        return try language.forward(embeddings: rest, cache: &cache,
                                    positions: imagePositions(prefix: prefix.count, kept: keptTokens,
                                                              visualTokens: encoding.features.rows, suffix: suffix.count)).data
    }

    /// RoPE positions of `[kept visual tokens…, suffix…]` after a prefix of `prefix` tokens: each kept
    /// visual token keeps the position it has with every token (`prefix + row`), and the text after
    /// the image continues at `prefix + visualTokens`, where it is with every token. Pruning then only
    /// removes keys: the distances the LM was trained on (question to patch, answer to question) stay.
    /// With every token kept these are the ordinary positions `prefix..<prefix + V + suffix`.
    public func imagePositions(prefix: Int, kept: [Int], visualTokens: Int, suffix: Int) -> [Int] {
        kept.map { prefix + $0 } + (0..<suffix).map { prefix + visualTokens + $0 }
    }
}

/// Which architecture a folder holds, by `model_type` in its config.json.
public enum ModelRegistry {
    public enum Kind: String, Sendable, CaseIterable { case clip, llava, llama, qwen2 }

    /// Reads `folder/config.json`'s `model_type`.
    /// - Throws: `ModelIOError` naming the file and the type when it is unknown or absent.
    public static func kind(folder: URL) throws -> Kind {
        struct Probe: Decodable { let model_type: String? }
        let url = folder.appendingPathComponent("config.json")
        let p = try decodeJSONFile(Probe.self, at: url)
        guard let t = p.model_type else { throw ModelIOError(.malformed, path: url.path, "missing key 'model_type'") }
        guard let k = Kind(rawValue: t) else {
            throw ModelIOError(.unsupported, path: url.path, "unknown model_type '\(t)' (supported: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return k
    }
}

/// Softmax mass on `ids` of a logits vector.
public func yesProbability(_ logits: [Float], _ ids: Set<Int>) -> Float {
    let m = logits.max() ?? 0
    var z: Double = 0, y: Double = 0
    for (i, l) in logits.enumerated() {
        let e = Foundation.exp(Double(l - m))
        z += e
        if ids.contains(i) { y += e }
    }
    return Float(y / z)
}
