// CLIP (vision and text towers, projections), following transformers' modeling_clip.py
// (CLIPVisionEmbeddings, CLIPTextEmbeddings, CLIPEncoderLayer with pre-LN, CLIPModel.get_*_features).
// Weight keys are the checkpoint's: `vision_model.…`, `text_model.…`, `visual_projection.weight`, `text_projection.weight`.

import Foundation
import Tensor
import ModelIO

/// One pre-LN transformer block of a CLIP tower (`CLIPEncoderLayer`).
struct CLIPEncoderLayer: Sendable {
    let ln1w: Tensor, ln1b: Tensor, ln2w: Tensor, ln2b: Tensor
    let qkvw: Tensor, qkvb: Tensor          // q, k, v projections stacked: [3D, D], [3D]
    let ow: Tensor, ob: Tensor
    let fc1w: Tensor, fc1b: Tensor, fc2w: Tensor, fc2b: Tensor

    init(_ w: StrictWeights, _ p: String, width d: Int, inner: Int) throws {
        ln1w = try w.take("\(p).layer_norm1.weight", shape: [d]); ln1b = try w.take("\(p).layer_norm1.bias", shape: [d])
        ln2w = try w.take("\(p).layer_norm2.weight", shape: [d]); ln2b = try w.take("\(p).layer_norm2.bias", shape: [d])
        // One [3D, D] matmul instead of three: bigger GEMMs run closer to the BLAS peak.
        var ws: [Float] = [], bs: [Float] = []
        for n in ["q", "k", "v"] {
            ws += try w.take("\(p).self_attn.\(n)_proj.weight", shape: [d, d]).data
            bs += try w.take("\(p).self_attn.\(n)_proj.bias", shape: [d]).data
        }
        qkvw = Tensor(shape: [3 * d, d], data: ws); qkvb = Tensor(shape: [3 * d], data: bs)
        ow = try w.take("\(p).self_attn.out_proj.weight", shape: [d, d]); ob = try w.take("\(p).self_attn.out_proj.bias", shape: [d])
        fc1w = try w.take("\(p).mlp.fc1.weight", shape: [inner, d]); fc1b = try w.take("\(p).mlp.fc1.bias", shape: [inner])
        fc2w = try w.take("\(p).mlp.fc2.weight", shape: [d, inner]); fc2b = try w.take("\(p).mlp.fc2.bias", shape: [d])
    }

    func hasSameWeights(as o: CLIPEncoderLayer) -> Bool {
        ln1w == o.ln1w && ln1b == o.ln1b && ln2w == o.ln2w && ln2b == o.ln2b && qkvw == o.qkvw && qkvb == o.qkvb
            && ow == o.ow && ob == o.ob && fc1w == o.fc1w && fc1b == o.fc1b && fc2w == o.fc2w && fc2b == o.fc2b
    }

    /// x[T×D] → x[T×D]; optionally the head-mean attention probabilities [T×T].
    func callAsFunction(_ x: inout Tensor, heads: Int, act: Activation, eps: Float,
                        causal: Bool, wantProbs: Bool) -> Tensor? {
        let d = x.cols
        var h = x
        layerNorm(&h, weight: ln1w, bias: ln1b, eps: eps)
        let qkv = linear(h, weight: qkvw, bias: qkvb)        // [T, 3D]
        let a = attention(qkv: qkv, heads: heads, headDim: d / heads,
                          causalOffset: causal ? 0 : nil, returnMeanProbs: wantProbs)
        addInPlace(&x, linear(a.output, weight: ow, bias: ob))
        h = x
        layerNorm(&h, weight: ln2w, bias: ln2b, eps: eps)
        var m = linear(h, weight: fc1w, bias: fc1b)
        activate(&m, act)
        addInPlace(&x, linear(m, weight: fc2w, bias: fc2b))
        return a.meanProbs
    }

    /// FLOPs of the matmuls for T tokens (multiply-add = 2).
    static func flops(tokens t: Int, width d: Int, inner: Int, heads: Int) -> Double {
        let T = Double(t), D = Double(d), I = Double(inner)
        return 2 * T * (4 * D * D + 2 * D * I) + 2 * 2 * T * T * D
    }
}

/// What the vision tower returns for one image.
public struct CLIPVisionOutput: Sendable {
    /// Final-layer hidden states `[1 + N, D]` (CLS first; `[N, D]` for SigLIP), before the post-layernorm.
    public var lastHidden: Tensor
    /// Hidden states after each requested layer index (0 = embeddings after pre-LN, i = after layer i).
    public var layerHidden: [Int: Tensor]
    /// Head-mean attention probabilities of the final layer `[T, T]` (T = 1 + N, or N for SigLIP).
    public var finalAttention: Tensor
    /// Patch grid (rows, columns).
    public var grid: (Int, Int)

    /// The final layer's hidden state of each patch, CLS excluded (`[N, D]` row-major): the features
    /// `atp-div` measures redundancy on.
    public var patchFeatures: (values: [Float], dim: Int) {
        let d = lastHidden.cols
        let first = lastHidden.rows > grid.0 * grid.1 ? 1 : 0
        return (Array(lastHidden.data[(first * d)...]), d)
    }
}

/// The CLIP vision transformer (`CLIPVisionTransformer`) without the projection; with a SigLIP
/// config it is `SiglipVisionTransformer` without the pooling head (modeling_siglip.py): no class
/// token, no pre-layernorm, a bias on the patch embedding, the same encoder layers.
public struct CLIPVisionTower: Sendable {
    public let config: CLIPVisionConfig
    let patchW: Tensor            // [D, C·p·p]
    let patchB: Tensor?           // [D] (SigLIP)
    let classEmb: Tensor?         // [D] (CLIP)
    let posEmb: Tensor            // [prefix + N, D]
    let preLNw: Tensor?, preLNb: Tensor?
    let postLNw: Tensor, postLNb: Tensor
    let layers: [CLIPEncoderLayer]

    /// Loads the tower from `prefix` (e.g. `vision_model`), using layers `0..<layerCount` (default all).
    public init(config: CLIPVisionConfig, weights w: StrictWeights, prefix p: String, layerCount: Int? = nil) throws {
        self.config = config
        let d = config.hiddenSize, ps = config.patchSize, c = config.numChannels
        let n = config.gridSide * config.gridSide
        patchW = try w.take("\(p).embeddings.patch_embedding.weight", shape: [d, c, ps, ps]).reshaped([d, c * ps * ps])
        if config.isSigLIP {
            patchB = try w.take("\(p).embeddings.patch_embedding.bias", shape: [d])
            classEmb = nil
            posEmb = try w.take("\(p).embeddings.position_embedding.weight", shape: [n, d])
            preLNw = nil; preLNb = nil
        } else {
            patchB = nil
            classEmb = try w.take("\(p).embeddings.class_embedding", shape: [d])
            posEmb = try w.take("\(p).embeddings.position_embedding.weight", shape: [n + 1, d])
            preLNw = try w.take("\(p).pre_layrnorm.weight", shape: [d]); preLNb = try w.take("\(p).pre_layrnorm.bias", shape: [d])
        }
        postLNw = try w.take("\(p).post_layernorm.weight", shape: [d]); postLNb = try w.take("\(p).post_layernorm.bias", shape: [d])
        let count = layerCount ?? config.numHiddenLayers
        layers = try (0..<count).map { try CLIPEncoderLayer(w, "\(p).encoder.layers.\($0)", width: d, inner: config.intermediateSize) }
    }

    /// Encodes one image.
    /// - Parameters:
    ///   - pixels: `[C, S, S]` float32 (CHW) at `config.imageSize`, already normalised.
    ///   - keepLayers: hidden states to keep (see `CLIPVisionOutput.layerHidden`).
    /// - Complexity: O(layers · (T·D² + T²·D)) with T = 1 + N.
    public func encode(pixels: [Float], keepLayers: Set<Int> = []) -> CLIPVisionOutput {
        let s = config.imageSize, ps = config.patchSize, c = config.numChannels, d = config.hiddenSize
        precondition(pixels.count == c * s * s, "CLIP vision: expected \(c)×\(s)×\(s) pixels, got \(pixels.count)")
        let g = s / ps, n = g * g, kdim = c * ps * ps
        // im2col: patches[N, C·p·p] in (channel, ky, kx) order, patch index row-major over the grid.
        var patches = Tensor(zeros: [n, kdim])
        pixels.withUnsafeBufferPointer { src in
            patches.data.withUnsafeMutableBufferPointer { dst in
                for gy in 0..<g { for gx in 0..<g {
                    let row = dst.baseAddress! + (gy * g + gx) * kdim
                    var o = 0
                    for ch in 0..<c { for ky in 0..<ps {
                        let sp = src.baseAddress! + ch * s * s + (gy * ps + ky) * s + gx * ps
                        (row + o).update(from: sp, count: ps)
                        o += ps
                    }}
                }}
            }
        }
        let emb = linear(patches, weight: patchW, bias: patchB)   // [N, D]
        let pre = classEmb == nil ? 0 : 1                          // class token first (CLIP)
        var x = Tensor(zeros: [pre + n, d])                        // [prefix + N, D]
        x.data.withUnsafeMutableBufferPointer { xp in
            if let classEmb { for j in 0..<d { xp[j] = classEmb.data[j] + posEmb.data[j] } }
            for i in 0..<n { for j in 0..<d {
                xp[(i + pre) * d + j] = emb.data[i * d + j] + posEmb.data[(i + pre) * d + j]
            }}
        }
        if let preLNw { layerNorm(&x, weight: preLNw, bias: preLNb, eps: config.layerNormEps) }
        var kept: [Int: Tensor] = [:]
        if keepLayers.contains(0) { kept[0] = x }
        var probs = Tensor(zeros: [pre + n, pre + n])
        for (i, layer) in layers.enumerated() {
            let last = i == layers.count - 1
            if let p = layer(&x, heads: config.numAttentionHeads, act: config.activation, eps: config.layerNormEps,
                             causal: false, wantProbs: last) {
                probs = p
            }
            if keepLayers.contains(i + 1) { kept[i + 1] = x }
        }
        return CLIPVisionOutput(lastHidden: x, layerHidden: kept, finalAttention: probs, grid: (g, g))
    }

    /// Whether `other` has the same config and bit-identical weights (LLaVA-1.5 kept CLIP frozen).
    public func hasSameWeights(as other: CLIPVisionTower) -> Bool {
        guard config.hiddenSize == other.config.hiddenSize, config.imageSize == other.config.imageSize,
              config.patchSize == other.config.patchSize, config.modelType == other.config.modelType,
              layers.count == other.layers.count else { return false }
        guard patchW == other.patchW, patchB == other.patchB, classEmb == other.classEmb, posEmb == other.posEmb,
              preLNw == other.preLNw, preLNb == other.preLNb, postLNw == other.postLNw, postLNb == other.postLNb else { return false }
        for (a, b) in zip(layers, other.layers) where !a.hasSameWeights(as: b) { return false }
        return true
    }

    /// `post_layernorm` applied to rows of `hidden` (a copy).
    public func postLayerNorm(_ hidden: Tensor) -> Tensor {
        var h = hidden
        layerNorm(&h, weight: postLNw, bias: postLNb, eps: config.layerNormEps)
        return h
    }

    /// Matmul FLOPs of one `encode`.
    public var flops: Double {
        let t = config.gridSide * config.gridSide + (config.isSigLIP ? 0 : 1)
        let d = Double(config.hiddenSize), k = Double(config.numChannels * config.patchSize * config.patchSize)
        return 2 * Double(config.gridSide * config.gridSide) * k * d + Double(layers.count) * CLIPEncoderLayer.flops(
            tokens: t, width: config.hiddenSize, inner: config.intermediateSize, heads: config.numAttentionHeads)
    }

    /// The (m, n, k) shapes of the sgemm calls one `encode` makes, with repeat counts, for benchmarks.
    public var gemmShapes: [(m: Int, n: Int, k: Int, count: Int)] {
        let g = config.gridSide, t = g * g + (config.isSigLIP ? 0 : 1), d = config.hiddenSize, i = config.intermediateSize
        let hd = d / config.numAttentionHeads, h = config.numAttentionHeads, l = layers.count
        return [(g * g, d, config.numChannels * config.patchSize * config.patchSize, 1),
                (t, 3 * d, d, l), (t, d, d, l), (t, i, d, l), (t, d, i, l),
                (t, t, hd, h * l), (t, hd, t, h * l)]
    }
}

/// The CLIP text transformer (`CLIPTextTransformer`) without the projection.
public struct CLIPTextTower: Sendable {
    public let config: CLIPTextConfig
    let tokenEmb: Tensor      // [V, D]
    let posEmb: Tensor        // [P, D]
    let finalLNw: Tensor, finalLNb: Tensor
    let layers: [CLIPEncoderLayer]

    public init(config: CLIPTextConfig, weights w: StrictWeights, prefix p: String) throws {
        self.config = config
        let d = config.hiddenSize
        tokenEmb = try w.take("\(p).embeddings.token_embedding.weight", shape: [config.vocabSize, d])
        posEmb = try w.take("\(p).embeddings.position_embedding.weight", shape: [config.maxPositionEmbeddings, d])
        finalLNw = try w.take("\(p).final_layer_norm.weight", shape: [d]); finalLNb = try w.take("\(p).final_layer_norm.bias", shape: [d])
        layers = try (0..<config.numHiddenLayers).map {
            try CLIPEncoderLayer(w, "\(p).encoder.layers.\($0)", width: d, inner: config.intermediateSize)
        }
    }

    /// The pooled output (final-LN hidden state at the EOS position) for token ids.
    ///
    /// The EOS position follows transformers: with the legacy `eos_token_id == 2` the position of the
    /// largest id, else the first position holding `eos_token_id` (the last position if none does).
    public func pooled(ids: [Int]) throws -> [Float] {
        let d = config.hiddenSize, t = ids.count
        guard t >= 1, t <= config.maxPositionEmbeddings else {
            throw ModelIOError(.malformed, path: "text", "\(t) tokens; the text tower takes 1…\(config.maxPositionEmbeddings)")
        }
        var x = Tensor(zeros: [t, d])
        for (i, id) in ids.enumerated() {
            guard id >= 0, id < config.vocabSize else {
                throw ModelIOError(.malformed, path: "text", "token id \(id) outside the vocabulary (\(config.vocabSize))")
            }
            for j in 0..<d { x.data[i * d + j] = tokenEmb.data[id * d + j] + posEmb.data[i * d + j] }
        }
        for layer in layers {
            _ = layer(&x, heads: config.numAttentionHeads, act: config.activation, eps: config.layerNormEps,
                      causal: true, wantProbs: false)
        }
        layerNorm(&x, weight: finalLNw, bias: finalLNb, eps: config.layerNormEps)
        let pos: Int
        if config.eosTokenId == 2 {
            pos = ids.indices.max(by: { ids[$0] < ids[$1] || (ids[$0] == ids[$1] && $0 > $1) }) ?? 0
        } else {
            pos = ids.firstIndex(of: config.eosTokenId) ?? 0
        }
        return x.row(pos)
    }
}

/// A full CLIP checkpoint: both towers, both projections, and its tokenizer.
public final class CLIPModel: Sendable {
    public let config: CLIPConfig
    public let vision: CLIPVisionTower
    public let text: CLIPTextTower
    let visualProjection: Tensor  // [P, Dv]
    let textProjection: Tensor    // [P, Dt]
    public let tokenizer: CLIPTokenizer
    public let processor: ImageProcessor

    /// Checkpoint tensors that are not weights and are ignored (buffers of older saves, the temperature).
    public static func isIgnored(_ key: String) -> Bool {
        key == "logit_scale" || key.hasSuffix("position_ids")
    }

    /// Loads an HF CLIP folder: config.json, model.safetensors (or shards), tokenizer files, image processor config.
    public init(folder: URL) throws {
        config = try CLIPConfig.load(folder: folder)
        let files = try WeightFiles(folder: folder)
        try ensureFits(bytes: files.f32Footprint, what: folder.path)
        let w = StrictWeights(files: files)
        vision = try CLIPVisionTower(config: config.visionConfig, weights: w, prefix: "vision_model")
        text = try CLIPTextTower(config: config.textConfig, weights: w, prefix: "text_model")
        visualProjection = try w.take("visual_projection.weight", shape: [config.projectionDim, config.visionConfig.hiddenSize])
        textProjection = try w.take("text_projection.weight", shape: [config.projectionDim, config.textConfig.hiddenSize])
        try w.finish(ignore: Self.isIgnored)
        tokenizer = try CLIPTokenizer(folder: folder)
        processor = ImageProcessor(config: try ImageProcessorConfig.load(folder: folder))
    }

    /// `get_image_features`: the projected, post-layernormed CLS state (not normalised).
    public func imageEmbedding(_ out: CLIPVisionOutput) -> [Float] {
        let cls = Tensor(shape: [1, out.lastHidden.cols], data: out.lastHidden.row(0))
        return linear(vision.postLayerNorm(cls), weight: visualProjection).data
    }

    /// `P_v · LN_post(h_i)` for every patch (CLS excluded): `[N, P]`.
    public func patchEmbeddings(_ out: CLIPVisionOutput) -> Tensor {
        let d = out.lastHidden.cols, n = out.lastHidden.rows - 1
        let patches = Tensor(shape: [n, d], data: Array(out.lastHidden.data[d...]))
        return linear(vision.postLayerNorm(patches), weight: visualProjection)
    }

    /// `get_text_features` for a query string (tokenised, truncated to the text tower's positions).
    public func textEmbedding(_ query: String) throws -> [Float] {
        let ids = tokenizer.encode(query, maxLength: config.textConfig.maxPositionEmbeddings)
        let pooled = try text.pooled(ids: ids)
        return linear(Tensor(shape: [1, pooled.count], data: pooled), weight: textProjection).data
    }

    /// Head-mean CLS→patch attention of the final layer `[N]` (CLS column excluded, not renormalised).
    public static func clsAttention(_ out: CLIPVisionOutput) -> [Float] {
        Array(out.finalAttention.row(0).dropFirst())
    }
}
