import Foundation
import Tensor

// Codable mirror of transformers' LlamaConfig (configuration_llama.py) and Qwen2Config
// (configuration_qwen2.py), in both the 4.x layout (top-level `rope_theta`, `rope_scaling`,
// `torch_dtype`) and the 5.x layout (`rope_parameters`, `dtype`), plus the same fields read from
// a llama.cpp GGUF file's metadata. Defaults are transformers' own, since `save_pretrained`
// may omit values equal to them.

/// Rotary position embedding parameters (`rope_parameters` in 5.x, `rope_theta` + `rope_scaling` in 4.x).
public struct RoPEConfig: Sendable, Equatable {
    /// How the inverse frequencies are scaled (transformers' `rope_type`).
    public enum Kind: String, Sendable, CaseIterable {
        /// Plain RoPE: `inv_freq[i] = theta^(-2i/d)`.
        case `default`
        /// Position interpolation: every inverse frequency divided by `factor`.
        case linear
        /// Llama 3.1 scaling: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
        case llama3
    }
    /// Base of the inverse frequencies (`rope_theta`; 10000 when absent).
    public var theta: Double
    public var kind: Kind
    /// Scaling factor (`factor`; linear and llama3).
    public var factor: Double
    /// llama3: `low_freq_factor`.
    public var lowFreqFactor: Double
    /// llama3: `high_freq_factor`.
    public var highFreqFactor: Double
    /// llama3: `original_max_position_embeddings`.
    public var originalMaxPositionEmbeddings: Int

    public init(theta: Double = 10000, kind: Kind = .default, factor: Double = 1, lowFreqFactor: Double = 1,
                highFreqFactor: Double = 4, originalMaxPositionEmbeddings: Int = 8192) {
        self.theta = theta
        self.kind = kind
        self.factor = factor
        self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
    }

    /// The `headDim / 2` inverse frequencies, as transformers' `ROPE_INIT_FUNCTIONS[rope_type]` computes them
    /// (float32 results; the llama3 ramp follows `_compute_llama3_parameters`).
    public func inverseFrequencies(headDim: Int) -> [Float] {
        let half = headDim / 2
        var inv = (0..<half).map { i -> Float in
            // torch: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), in float32
            let e = Float(2 * i) / Float(headDim)
            return 1 / Float(Foundation.pow(theta, Double(e)))
        }
        switch kind {
        case .default: break
        case .linear:
            inv = inv.map { $0 / Float(factor) }
        case .llama3:
            let old = Double(originalMaxPositionEmbeddings)
            let lowWavelen = old / lowFreqFactor, highWavelen = old / highFreqFactor
            inv = inv.map { f -> Float in
                let wavelen = 2 * Double.pi / Double(f)
                let scaled: Float = wavelen > lowWavelen ? f / Float(factor) : f
                if wavelen < highWavelen || wavelen > lowWavelen { return scaled }
                let smooth = Float((old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor))
                return (1 - smooth) * scaled / Float(factor) + smooth * scaled
            }
        }
        return inv
    }
}

/// A Llama-family decoder config: `model_type` `llama` (Llama, SmolLM2, TinyLlama, …) or `qwen2`.
public struct LlamaConfig: Codable, Sendable, Equatable {
    /// The `model_type` values this config (and `LlamaModel`) supports.
    public static let supportedModelTypes = ["llama", "qwen2"]

    public var modelType: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    /// Key/value heads for grouped-query attention (`num_key_value_heads`; defaults to the head count).
    public var numKeyValueHeads: Int
    /// Width of one head (`head_dim`; defaults to `hidden_size / num_attention_heads`).
    public var headDim: Int
    public var rmsNormEps: Float
    public var vocabSize: Int
    public var maxPositionEmbeddings: Int
    /// The LM head shares the token-embedding matrix.
    public var tieWordEmbeddings: Bool
    /// q/k/v projections carry a bias (Llama's `attention_bias`; always on for Qwen2).
    public var qkvBias: Bool
    /// The attention output projection carries a bias (Llama's `attention_bias`; never for Qwen2).
    public var outputBias: Bool
    /// The MLP projections carry biases (Llama's `mlp_bias`).
    public var mlpBias: Bool
    public var hiddenAct: String
    public var rope: RoPEConfig
    /// The stored dtype named by `dtype` (5.x) or `torch_dtype` (4.x), if any.
    public var dtype: String?
    public var bosTokenId: Int?
    /// `eos_token_id`, which may be one id or a list.
    public var eosTokenIds: [Int]

    /// Widths of the fused projections.
    public var qDim: Int { numAttentionHeads * headDim }
    public var kvDim: Int { numKeyValueHeads * headDim }

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", headDim = "head_dim", rmsNormEps = "rms_norm_eps"
        case vocabSize = "vocab_size", maxPositionEmbeddings = "max_position_embeddings"
        case tieWordEmbeddings = "tie_word_embeddings", attentionBias = "attention_bias", mlpBias = "mlp_bias"
        case hiddenAct = "hidden_act", ropeTheta = "rope_theta", ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters", partialRotaryFactor = "partial_rotary_factor"
        case dtype, torchDtype = "torch_dtype", bosTokenId = "bos_token_id", eosTokenId = "eos_token_id"
        case layerTypes = "layer_types", useSlidingWindow = "use_sliding_window"
    }

    /// The keys of a `rope_parameters` / `rope_scaling` object.
    private enum RoPEKeys: String, CodingKey {
        case ropeTheta = "rope_theta", ropeType = "rope_type", type, factor
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case partialRotaryFactor = "partial_rotary_factor"
    }

    /// Builds a config in code (tests, converters); `validate()` checks it.
    public init(modelType: String, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
                numAttentionHeads: Int, numKeyValueHeads: Int? = nil, headDim: Int? = nil,
                rmsNormEps: Float = 1e-6, vocabSize: Int, maxPositionEmbeddings: Int = 2048,
                tieWordEmbeddings: Bool = false, qkvBias: Bool? = nil, outputBias: Bool = false,
                mlpBias: Bool = false, rope: RoPEConfig = RoPEConfig(), dtype: String? = nil,
                bosTokenId: Int? = nil, eosTokenIds: [Int] = []) throws {
        self.modelType = modelType
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.headDim = headDim ?? (numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0)
        self.rmsNormEps = rmsNormEps
        self.vocabSize = vocabSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.qkvBias = qkvBias ?? (modelType == "qwen2")
        self.outputBias = outputBias
        self.mlpBias = mlpBias
        self.hiddenAct = "silu"
        self.rope = rope
        self.dtype = dtype
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
        try validate()
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "llama"
        guard Self.supportedModelTypes.contains(modelType) else {
            throw invalidConfig("model_type", "'\(modelType)' is not supported (supported: \(Self.supportedModelTypes.joined(separator: ", ")))")
        }
        let qwen = modelType == "qwen2"
        // transformers' defaults for each model type
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 4096
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? (qwen ? 22016 : 11008)
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? 32
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? 32
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numAttentionHeads
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
            ?? (numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0)
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? (qwen ? 151936 : 32000)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? (qwen ? 32768 : 2048)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        let attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        qkvBias = qwen ? true : attentionBias
        outputBias = qwen ? false : attentionBias
        mlpBias = qwen ? false : (try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        dtype = try c.decodeIfPresent(String.self, forKey: .dtype) ?? c.decodeIfPresent(String.self, forKey: .torchDtype)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        if let one = try? c.decodeIfPresent(Int.self, forKey: .eosTokenId) {
            eosTokenIds = [one]
        } else {
            eosTokenIds = try c.decodeIfPresent([Int].self, forKey: .eosTokenId) ?? []
        }

        // Attention that is not full over all layers is not implemented: refuse it rather than run it wrong.
        if try c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow) == true {
            throw invalidConfig("use_sliding_window", "sliding-window attention is not supported")
        }
        if let types = try c.decodeIfPresent([String].self, forKey: .layerTypes),
           let other = types.first(where: { $0 != "full_attention" }) {
            throw invalidConfig("layer_types", "'\(other)' is not supported (only full_attention)")
        }
        if let f = try c.decodeIfPresent(Double.self, forKey: .partialRotaryFactor), f != 1 {
            throw invalidConfig("partial_rotary_factor", "\(f) is not supported (only 1)")
        }

        // RoPE: 5.x `rope_parameters` holds everything; 4.x has `rope_theta` on top and an optional `rope_scaling`.
        var rope = RoPEConfig(theta: try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 10000)
        func present(_ k: CodingKeys) -> Bool { c.contains(k) && (try? c.decodeNil(forKey: k)) == false }
        let section: CodingKeys? = present(.ropeParameters) ? .ropeParameters : (present(.ropeScaling) ? .ropeScaling : nil)
        if let section {
            let r = try c.nestedContainer(keyedBy: RoPEKeys.self, forKey: section)
            let name = section.rawValue
            if let theta = try r.decodeIfPresent(Double.self, forKey: .ropeTheta) { rope.theta = theta }
            let typeName = try r.decodeIfPresent(String.self, forKey: .ropeType)
                ?? r.decodeIfPresent(String.self, forKey: .type) ?? "default"
            guard let kind = RoPEConfig.Kind(rawValue: typeName) else {
                throw invalidConfig("\(name).rope_type", "'\(typeName)' is not supported (supported: \(RoPEConfig.Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            rope.kind = kind
            if let f = try r.decodeIfPresent(Double.self, forKey: .partialRotaryFactor), f != 1 {
                throw invalidConfig("\(name).partial_rotary_factor", "\(f) is not supported (only 1)")
            }
            if kind != .default {
                guard let factor = try r.decodeIfPresent(Double.self, forKey: .factor) else {
                    throw invalidConfig("\(name).factor", "missing for rope_type '\(typeName)'")
                }
                rope.factor = factor
            }
            if kind == .llama3 {
                for (key, path) in [(RoPEKeys.lowFreqFactor, \RoPEConfig.lowFreqFactor), (.highFreqFactor, \.highFreqFactor)] {
                    guard let v = try r.decodeIfPresent(Double.self, forKey: key) else {
                        throw invalidConfig("\(name).\(key.rawValue)", "missing for rope_type 'llama3'")
                    }
                    rope[keyPath: path] = v
                }
                guard let old = try r.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings) else {
                    throw invalidConfig("\(name).original_max_position_embeddings", "missing for rope_type 'llama3'")
                }
                rope.originalMaxPositionEmbeddings = old
            }
        }
        self.rope = rope
        try validate()
    }

    /// Writes the 5.x layout (`rope_parameters`, `dtype`).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelType, forKey: .modelType)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        if modelType != "qwen2" {
            try c.encode(qkvBias, forKey: .attentionBias)
            try c.encode(mlpBias, forKey: .mlpBias)
        }
        try c.encode(hiddenAct, forKey: .hiddenAct)
        try c.encodeIfPresent(dtype, forKey: .dtype)
        try c.encodeIfPresent(bosTokenId, forKey: .bosTokenId)
        if eosTokenIds.count == 1 { try c.encode(eosTokenIds[0], forKey: .eosTokenId) } else { try c.encode(eosTokenIds, forKey: .eosTokenId) }
        var r = c.nestedContainer(keyedBy: RoPEKeys.self, forKey: .ropeParameters)
        try r.encode(rope.theta, forKey: .ropeTheta)
        try r.encode(rope.kind.rawValue, forKey: .ropeType)
        if rope.kind != .default { try r.encode(rope.factor, forKey: .factor) }
        if rope.kind == .llama3 {
            try r.encode(rope.lowFreqFactor, forKey: .lowFreqFactor)
            try r.encode(rope.highFreqFactor, forKey: .highFreqFactor)
            try r.encode(rope.originalMaxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
        }
    }

    /// Checks the values; throws naming the key.
    public func validate() throws {
        guard Self.supportedModelTypes.contains(modelType) else {
            throw invalidConfig("model_type", "'\(modelType)' is not supported (supported: \(Self.supportedModelTypes.joined(separator: ", ")))")
        }
        guard Activation(hfName: hiddenAct) == .silu else {
            throw invalidConfig("hidden_act", "'\(hiddenAct)' is not supported (only silu)")
        }
        for (k, v) in [("hidden_size", hiddenSize), ("intermediate_size", intermediateSize), ("num_hidden_layers", numHiddenLayers),
                       ("num_attention_heads", numAttentionHeads), ("num_key_value_heads", numKeyValueHeads),
                       ("head_dim", headDim), ("vocab_size", vocabSize), ("max_position_embeddings", maxPositionEmbeddings)] where v <= 0 {
            throw invalidConfig(k, "must be positive, got \(v)")
        }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw invalidConfig("num_key_value_heads", "\(numKeyValueHeads) does not divide num_attention_heads \(numAttentionHeads)")
        }
        guard headDim % 2 == 0 else { throw invalidConfig("head_dim", "must be even for RoPE, got \(headDim)") }
        guard rmsNormEps > 0, rmsNormEps.isFinite else { throw invalidConfig("rms_norm_eps", "must be positive, got \(rmsNormEps)") }
        guard rope.theta > 0, rope.theta.isFinite else { throw invalidConfig("rope_theta", "must be positive, got \(rope.theta)") }
        if rope.kind != .default, !(rope.factor > 0) { throw invalidConfig("rope_parameters.factor", "must be positive, got \(rope.factor)") }
        if rope.kind == .llama3 {
            guard rope.highFreqFactor > rope.lowFreqFactor, rope.lowFreqFactor > 0, rope.originalMaxPositionEmbeddings > 0 else {
                throw invalidConfig("rope_parameters", "llama3 needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
            }
        }
    }

    /// Reads `config.json` of an HF folder.
    ///
    /// - Throws: `ModelIOError` naming the file and key (unknown `model_type` included).
    public static func load(folder: URL) throws -> LlamaConfig {
        try decodeJSONFile(LlamaConfig.self, at: folder.appendingPathComponent("config.json"))
    }

    /// Maps a llama.cpp GGUF file's metadata (`general.architecture` `llama` or `qwen2`, then
    /// `{arch}.block_count`, `.embedding_length`, `.feed_forward_length`, `.attention.head_count`,
    /// `.attention.head_count_kv`, `.attention.layer_norm_rms_epsilon`, `.rope.freq_base`,
    /// `.context_length`, `.rope.dimension_count`); the vocabulary size is the length of
    /// `tokenizer.ggml.tokens`, and the embeddings are tied when there is no `output.weight`.
    ///
    /// - Throws: `ModelIOError` naming the file and the missing or unsupported key.
    public init(gguf: GGUFFile) throws {
        let arch = try gguf.string("general.architecture")
        guard Self.supportedModelTypes.contains(arch) else {
            throw ModelIOError(.unsupported, path: gguf.url.path,
                               "general.architecture '\(arch)' is not supported (supported: \(Self.supportedModelTypes.joined(separator: ", ")))")
        }
        func optInt(_ key: String) throws -> Int? { gguf.metadata[key] == nil ? nil : try gguf.int(key) }
        let heads = try gguf.int("\(arch).attention.head_count")
        let hidden = try gguf.int("\(arch).embedding_length")
        let headDim = try optInt("\(arch).attention.key_length") ?? (heads > 0 ? hidden / heads : 0)
        if let rot = try optInt("\(arch).rope.dimension_count"), rot != headDim {
            throw ModelIOError(.unsupported, path: gguf.url.path,
                               "\(arch).rope.dimension_count \(rot) differs from the head width \(headDim) (partial RoPE is not supported)")
        }
        let vocab: Int
        if let tokens = gguf.metadata["tokenizer.ggml.tokens"]?.arrayValue {
            vocab = tokens.count
        } else if let v = try optInt("\(arch).vocab_size") {
            vocab = v
        } else {
            vocab = gguf.tensorInfo(named: "token_embd.weight")?.shape.first ?? 0
        }
        var rope = RoPEConfig(theta: gguf.metadata["\(arch).rope.freq_base"] == nil ? 10000 : Double(try gguf.float("\(arch).rope.freq_base")))
        if let type = gguf.metadata["\(arch).rope.scaling.type"]?.stringValue, type != "none" {
            guard type == "linear" else {
                throw ModelIOError(.unsupported, path: gguf.url.path, "\(arch).rope.scaling.type '\(type)' is not supported (supported: none, linear)")
            }
            rope.kind = .linear
            rope.factor = Double(try gguf.float("\(arch).rope.scaling.factor"))
        }
        var eos: [Int] = []
        if let e = try optInt("tokenizer.ggml.eos_token_id") { eos.append(e) }
        if let e = try optInt("tokenizer.ggml.eot_token_id"), !eos.contains(e) { eos.append(e) }
        do {
            try self.init(modelType: arch, hiddenSize: hidden,
                          intermediateSize: try gguf.int("\(arch).feed_forward_length"),
                          numHiddenLayers: try gguf.int("\(arch).block_count"),
                          numAttentionHeads: heads,
                          numKeyValueHeads: try optInt("\(arch).attention.head_count_kv") ?? heads,
                          headDim: headDim,
                          rmsNormEps: try gguf.float("\(arch).attention.layer_norm_rms_epsilon"),
                          vocabSize: vocab,
                          maxPositionEmbeddings: try optInt("\(arch).context_length") ?? 2048,
                          tieWordEmbeddings: gguf.tensorInfo(named: "output.weight") == nil,
                          qkvBias: gguf.tensorInfo(named: "blk.0.attn_q.bias") != nil,
                          outputBias: gguf.tensorInfo(named: "blk.0.attn_output.bias") != nil,
                          mlpBias: gguf.tensorInfo(named: "blk.0.ffn_up.bias") != nil,
                          rope: rope, dtype: nil,
                          bosTokenId: try optInt("tokenizer.ggml.bos_token_id"), eosTokenIds: eos)
        } catch let e as ModelIOError {
            throw ModelIOError(e.kind, path: gguf.url.path, e.message)
        }
    }
}
