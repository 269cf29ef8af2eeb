import Foundation
import Tensor

// Codable mirrors of transformers' CLIPConfig / CLIPVisionConfig / CLIPTextConfig (configuration_clip.py).
// Defaults are transformers' own, since `save_pretrained` may omit values equal to them.

/// `vision_config` of a CLIP checkpoint, or of a LLaVA's vision tower: CLIP (`clip_vision_model`)
/// or SigLIP (`siglip_vision_model`: no class token, no pre-layernorm, a bias on the patch embedding).
public struct CLIPVisionConfig: Codable, Sendable, Equatable {
    /// `clip_vision_model` (default) or `siglip_vision_model`.
    public var modelType: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numChannels: Int
    public var imageSize: Int
    public var patchSize: Int
    public var hiddenAct: String
    public var layerNormEps: Float
    public var projectionDim: Int

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numChannels = "num_channels", imageSize = "image_size", patchSize = "patch_size"
        case hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps", projectionDim = "projection_dim"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "clip_vision_model"
        let siglip = modelType == "siglip_vision_model"
        guard siglip || modelType == "clip_vision_model" else {
            throw invalidConfig("vision_config.model_type", "'\(modelType)' is not supported (clip_vision_model, siglip_vision_model)")
        }
        // Defaults are transformers' CLIPVisionConfig / SiglipVisionConfig defaults.
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 768
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 3072
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? 12
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? 12
        numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? 3
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? 224
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? (siglip ? 16 : 32)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? (siglip ? "gelu_pytorch_tanh" : "quick_gelu")
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? (siglip ? 1e-6 : 1e-5)
        projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? 512
        try validate(prefix: "vision_config")
    }

    /// SigLIP tower (no CLS token; saliency falls back to received attention).
    public var isSigLIP: Bool { modelType == "siglip_vision_model" }

    /// Checks the values; throws naming the key.
    public func validate(prefix: String) throws {
        guard Activation(hfName: hiddenAct) != nil else {
            throw invalidConfig("\(prefix).hidden_act", "'\(hiddenAct)' is not supported (supported: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        for (k, v) in [("hidden_size", hiddenSize), ("intermediate_size", intermediateSize), ("num_attention_heads", numAttentionHeads),
                       ("image_size", imageSize), ("patch_size", patchSize), ("num_channels", numChannels)] where v <= 0 {
            throw invalidConfig("\(prefix).\(k)", "must be positive, got \(v)")
        }
        guard numHiddenLayers >= 1 else { throw invalidConfig("\(prefix).num_hidden_layers", "must be ≥ 1, got \(numHiddenLayers)") }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw invalidConfig("\(prefix).num_attention_heads", "\(numAttentionHeads) does not divide hidden_size \(hiddenSize)")
        }
        guard imageSize % patchSize == 0 else {
            throw invalidConfig("\(prefix).patch_size", "\(patchSize) does not divide image_size \(imageSize)")
        }
    }

    /// Patches per side.
    public var gridSide: Int { imageSize / patchSize }
    /// Activation parsed.
    public var activation: Activation { Activation(hfName: hiddenAct)! }
}

/// `text_config` of a CLIP checkpoint.
public struct CLIPTextConfig: Codable, Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var maxPositionEmbeddings: Int
    public var hiddenAct: String
    public var layerNormEps: Float
    public var eosTokenId: Int
    public var bosTokenId: Int
    public var padTokenId: Int

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings", hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
        case eosTokenId = "eos_token_id", bosTokenId = "bos_token_id", padTokenId = "pad_token_id"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? 49408
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 512
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 2048
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? 12
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? 8
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 77
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "quick_gelu"
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-5
        eosTokenId = try c.decodeIfPresent(Int.self, forKey: .eosTokenId) ?? 49407
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId) ?? 49406
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? 1
        guard Activation(hfName: hiddenAct) != nil else {
            throw invalidConfig("text_config.hidden_act", "'\(hiddenAct)' is not supported (supported: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        for (k, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                       ("num_attention_heads", numAttentionHeads), ("num_hidden_layers", numHiddenLayers),
                       ("max_position_embeddings", maxPositionEmbeddings)] where v <= 0 {
            throw invalidConfig("text_config.\(k)", "must be positive, got \(v)")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw invalidConfig("text_config.num_attention_heads", "\(numAttentionHeads) does not divide hidden_size \(hiddenSize)")
        }
    }

    /// Activation parsed.
    public var activation: Activation { Activation(hfName: hiddenAct)! }
}

/// A `CLIPModel` config.json.
public struct CLIPConfig: Codable, Sendable, Equatable {
    public var modelType: String
    public var projectionDim: Int
    public var visionConfig: CLIPVisionConfig
    public var textConfig: CLIPTextConfig

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", projectionDim = "projection_dim"
        case visionConfig = "vision_config", textConfig = "text_config"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "clip"
        projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? 512
        let empty = Data("{}".utf8)
        visionConfig = try c.decodeIfPresent(CLIPVisionConfig.self, forKey: .visionConfig)
            ?? JSONDecoder().decode(CLIPVisionConfig.self, from: empty)
        textConfig = try c.decodeIfPresent(CLIPTextConfig.self, forKey: .textConfig)
            ?? JSONDecoder().decode(CLIPTextConfig.self, from: empty)
        guard projectionDim > 0 else { throw invalidConfig("projection_dim", "must be positive, got \(projectionDim)") }
    }

    /// Reads `folder/config.json`; `model_type` must be `clip`.
    public static func load(folder: URL) throws -> CLIPConfig {
        let url = folder.appendingPathComponent("config.json")
        let cfg = try decodeJSONFile(CLIPConfig.self, at: url)
        guard cfg.modelType == "clip" else {
            throw ModelIOError(.unsupported, path: url.path, "model_type '\(cfg.modelType)' is not a CLIP model (expected 'clip')")
        }
        return cfg
    }
}
