// The Llama-family decoder (also Qwen2 and SmolLM2), following transformers' modeling_llama.py
// (LlamaRMSNorm, LlamaRotaryEmbedding with rotate_half, LlamaAttention with grouped-query
// attention, LlamaMLP = down(silu(gate(x)) · up(x)), LlamaForCausalLM) and modeling_qwen2.py
// (the same with q/k/v biases). Weights come from an HF folder (`model.…` keys, `lm_head.weight`
// or tied) or from a llama.cpp GGUF file (`token_embd`, `blk.N.…`, `output_norm`, `output`).
//
// Layout in memory: q/k/v projections are fused into one `[q + 2·kv, D]` matrix and gate/up into
// one `[2·I, D]` matrix, so a step runs 4 GEMMs (GEMVs when decoding one token) per layer.

import Foundation
import Tensor
import ModelIO

/// An input a decoder cannot run on (bad token id, wrong embedding width, a cache of another model).
public struct LlamaError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
}

/// One decoder layer's weights (`LlamaDecoderLayer`), fused as described above.
struct LlamaLayer: Sendable {
    let attnNorm: Tensor          // [D]
    let wqkv: WeightMatrix        // [q + 2kv, D]
    let bqkv: Tensor?             // [q + 2kv]
    let wo: WeightMatrix          // [D, q]
    let bo: Tensor?               // [D]
    let mlpNorm: Tensor           // [D]
    let wgu: WeightMatrix         // [2I, D]: gate rows, then up rows
    let bgu: Tensor?              // [2I]
    let wdown: WeightMatrix       // [D, I]
    let bdown: Tensor?            // [D]
}

/// Where the decoder's tensors come from: checkpoint keys for each part, loaded strictly.
private protocol LlamaTensorSource {
    func take(_ key: String, shape: [Int]) throws -> Tensor
    /// The parts `(key, [rows, cols])` stacked row-wise into one weight matrix.
    func matrix(_ parts: [(key: String, shape: [Int])]) throws -> WeightMatrix
    func has(_ key: String) -> Bool
    /// The key of a part of layer `layer` (nil for the embedding, final norm and head).
    func key(_ part: LlamaPart, layer: Int) -> String
}

extension LlamaTensorSource {
    /// Every part as f32.
    func matrix(_ parts: [(key: String, shape: [Int])]) throws -> WeightMatrix {
        WeightMatrix(concatenating: try parts.map { try take($0.key, shape: $0.shape) })
    }
}

private enum LlamaPart {
    case attnNorm, q, k, v, o, mlpNorm, gate, up, down
    case qBias, kBias, vBias, oBias, gateBias, upBias, downBias
}

/// HF keys: `{prefix}layers.N.self_attn.q_proj.weight`, …
private struct HFSource: LlamaTensorSource {
    let weights: StrictWeights
    let prefix: String
    /// Keep F16/BF16 matrices 16-bit (else every weight becomes f32).
    let keep16: Bool
    func take(_ key: String, shape: [Int]) throws -> Tensor { try weights.take(key, shape: shape) }

    func matrix(_ parts: [(key: String, shape: [Int])]) throws -> WeightMatrix {
        var built: [WeightMatrix.Part] = []
        var owners: [AnyObject] = []
        for (key, shape) in parts {
            if keep16, let raw = try weights.takeRaw(key, shape: shape, formats: [.f16, .bf16]) {
                built.append(WeightMatrix.Part(format: raw.format, rows: shape[0], cols: shape[1], bytes: raw.bytes))
                owners.append(raw.owner)
            } else {
                let t = try take(key, shape: shape)
                built.append(.f32(t, cols: shape[shape.count - 1]))
            }
        }
        return withExtendedLifetime(owners) { WeightMatrix(cols: parts[0].shape[parts[0].shape.count - 1], parts: built) }
    }
    func has(_ key: String) -> Bool { weights.has(key) }
    func key(_ part: LlamaPart, layer i: Int) -> String {
        let p = "\(prefix)layers.\(i)."
        switch part {
        case .attnNorm: return p + "input_layernorm.weight"
        case .mlpNorm: return p + "post_attention_layernorm.weight"
        case .q: return p + "self_attn.q_proj.weight"
        case .k: return p + "self_attn.k_proj.weight"
        case .v: return p + "self_attn.v_proj.weight"
        case .o: return p + "self_attn.o_proj.weight"
        case .qBias: return p + "self_attn.q_proj.bias"
        case .kBias: return p + "self_attn.k_proj.bias"
        case .vBias: return p + "self_attn.v_proj.bias"
        case .oBias: return p + "self_attn.o_proj.bias"
        case .gate: return p + "mlp.gate_proj.weight"
        case .up: return p + "mlp.up_proj.weight"
        case .down: return p + "mlp.down_proj.weight"
        case .gateBias: return p + "mlp.gate_proj.bias"
        case .upBias: return p + "mlp.up_proj.bias"
        case .downBias: return p + "mlp.down_proj.bias"
        }
    }
}

/// llama.cpp keys (`blk.N.attn_q.weight`, …), strict like `StrictWeights`; for the `llama`
/// architecture the rows of `attn_q`/`attn_k` are un-permuted back to the rotate_half layout.
private final class GGUFSource: LlamaTensorSource {
    let file: GGUFFile
    let unpermuteHeads: (q: Int, k: Int)?
    /// Types kept resident in their own format (empty: everything becomes f32).
    let keep: Set<GGMLType>
    private(set) var used: Set<String> = []

    init(file: GGUFFile, unpermuteHeads: (q: Int, k: Int)?, keep: Set<GGMLType>) {
        self.file = file
        self.unpermuteHeads = unpermuteHeads
        self.keep = keep
    }

    /// Parts whose type is kept are copied as they are stored (rows un-permuted like `take`'s);
    /// the others are dequantised to f32 rows.
    func matrix(_ parts: [(key: String, shape: [Int])]) throws -> WeightMatrix {
        var built: [WeightMatrix.Part] = []
        for (key, shape) in parts {
            guard let info = file.tensorInfo(named: key), keep.contains(info.type), let format = info.type.weightFormat,
                  shape.count == 2, info.shape == shape, format.rowBytes(cols: shape[1]) != nil else {
                let t = try take(key, shape: shape)
                built.append(.f32(t, cols: shape[shape.count - 1]))
                continue
            }
            let bytes = try file.unsafeTensorBytes(named: key)
            var order: [Int]?
            if let heads = unpermuteHeads {
                if key.contains(".attn_q.") { order = Self.unpermutedOrder(rows: shape[0], heads: heads.q) }
                if key.contains(".attn_k.") { order = Self.unpermutedOrder(rows: shape[0], heads: heads.k) }
            }
            built.append(WeightMatrix.Part(format: format, rows: shape[0], cols: shape[1], bytes: bytes, rowOrder: order))
            used.insert(key)
        }
        return withExtendedLifetime(file) { WeightMatrix(cols: parts[0].shape[1], parts: built) }
    }

    /// `unpermute` as a row order: HF row `h·d + j·d/2 + i` is GGUF row `h·d + 2i + j`.
    static func unpermutedOrder(rows: Int, heads: Int) -> [Int] {
        let d = rows / heads, half = d / 2
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads { for i in 0..<half { for j in 0..<2 { order[h * d + j * half + i] = h * d + 2 * i + j } } }
        return order
    }

    func has(_ key: String) -> Bool { file.tensorInfo(named: key) != nil }

    func take(_ key: String, shape: [Int]) throws -> Tensor {
        guard let info = file.tensorInfo(named: key) else {
            throw ModelIOError(.missingTensor, path: file.url.path, "missing tensor '\(key)'")
        }
        guard info.shape.filter({ $0 != 1 }) == shape.filter({ $0 != 1 }) else {
            throw ModelIOError(.shapeMismatch, path: file.url.path, "tensor '\(key)' has shape \(info.shape); the metadata implies \(shape)")
        }
        var data = try file.tensorData(named: key)
        if let heads = unpermuteHeads {
            if key.contains(".attn_q.") { data = Self.unpermute(data, heads: heads.q, rows: shape[0]) }
            if key.contains(".attn_k.") { data = Self.unpermute(data, heads: heads.k, rows: shape[0]) }
        }
        used.insert(key)
        return Tensor(shape: shape, data: data)
    }

    /// Inverts convert_hf_to_gguf.py's `LlamaModel.permute`: GGUF row `h·d + 2i + j` holds HF row `h·d + j·d/2 + i`.
    static func unpermute(_ w: [Float], heads: Int, rows: Int) -> [Float] {
        let cols = w.count / rows, d = rows / heads, half = d / 2
        var out = [Float](repeating: 0, count: w.count)
        for h in 0..<heads { for i in 0..<half { for j in 0..<2 {
            let src = (h * d + 2 * i + j) * cols, dst = (h * d + j * half + i) * cols
            for c in 0..<cols { out[dst + c] = w[src + c] }
        }}}
        return out
    }

    func key(_ part: LlamaPart, layer i: Int) -> String {
        let p = "blk.\(i)."
        switch part {
        case .attnNorm: return p + "attn_norm.weight"
        case .mlpNorm: return p + "ffn_norm.weight"
        case .q: return p + "attn_q.weight"
        case .k: return p + "attn_k.weight"
        case .v: return p + "attn_v.weight"
        case .o: return p + "attn_output.weight"
        case .qBias: return p + "attn_q.bias"
        case .kBias: return p + "attn_k.bias"
        case .vBias: return p + "attn_v.bias"
        case .oBias: return p + "attn_output.bias"
        case .gate: return p + "ffn_gate.weight"
        case .up: return p + "ffn_up.weight"
        case .down: return p + "ffn_down.weight"
        case .gateBias: return p + "ffn_gate.bias"
        case .upBias: return p + "ffn_up.bias"
        case .downBias: return p + "ffn_down.bias"
        }
    }

    func finish() throws {
        let unused = file.tensorNames.filter { !used.contains($0) }
        if let first = unused.first {
            let more = unused.count > 1 ? " (and \(unused.count - 1) more)" : ""
            throw ModelIOError(.unusedTensor, path: file.url.path, "unused tensor '\(first)'\(more): the file does not match its metadata")
        }
    }
}

/// A Llama / Qwen2 / SmolLM2 causal language model (`LlamaForCausalLM`, `Qwen2ForCausalLM`), f32 on the CPU.
public struct LlamaModel: Sendable {
    public let config: LlamaConfig
    let embedTokens: WeightMatrix  // [vocab, D]
    let layers: [LlamaLayer]
    let finalNorm: Tensor        // [D]
    let lmHead: WeightMatrix       // [vocab, D] (the same object as embedTokens when tied)
    /// RoPE inverse frequencies `[headDim/2]`, scaling included.
    let invFreq: [Float]
    /// Decode steps run their projections through `gemv` (true) or `cblas_sgemm` with m = 1.
    public var decodeUsesGEMV = true

    /// Checkpoint tensors of an HF folder that are not weights (old rotary buffers).
    public static func isIgnored(_ key: String) -> Bool { key.hasSuffix("rotary_emb.inv_freq") }

    /// Loads the decoder from keys `{prefix}embed_tokens.weight`, `{prefix}layers.N.…`, `{prefix}norm.weight`
    /// and the head from `lmHeadKey` (or the embeddings when that key is absent and the config ties them).
    /// Leaves `weights.finish` to the caller, so a multimodal model can share one `StrictWeights`.
    ///
    /// - Parameters:
    ///   - prefix: e.g. `model.` (causal LM), `language_model.model.` or `model.language_model.` (LLaVA).
    ///   - lmHeadKey: e.g. `lm_head.weight` or `language_model.lm_head.weight`.
    /// - Throws: `ModelIOError` naming a missing tensor or one of the wrong shape.
    public init(config: LlamaConfig, weights: StrictWeights, prefix: String = "model.",
                lmHeadKey: String = "lm_head.weight", precision: Precision = .f32) throws {
        let src = HFSource(weights: weights, prefix: prefix, keep16: precision == .native)
        try self.init(config: config, source: src, embedKey: "\(prefix)embed_tokens.weight",
                      normKey: "\(prefix)norm.weight", headKey: lmHeadKey, ropeFactors: nil)
    }

    /// Loads an HF folder (`config.json`, `model.safetensors` or shards) saved by transformers 4.x or 5.x.
    ///
    /// - Throws: `ModelIOError` naming the file and key: unknown `model_type`, a missing or unused
    ///   tensor, or weights larger than the available memory as f32.
    public init(folder: URL, precision: Precision = .f32) throws {
        let config = try LlamaConfig.load(folder: folder)
        let files = try WeightFiles(folder: folder)
        try ensureFits(bytes: files.residentFootprint(keep16: precision == .native), what: folder.path)
        let w = StrictWeights(files: files)
        try self.init(config: config, weights: w, precision: precision)
        try w.finish(ignore: Self.isIgnored)
    }

    /// Loads a llama.cpp GGUF file (architectures `llama` and `qwen2`; any type `GGUFFile` dequantises).
    ///
    /// - Parameter precision: `.native` keeps F16, BF16, Q8_0, Q4_0 and Q4_1 matrices resident in
    ///   their own type (other types become f32); `.f32` and `.bf16` convert every weight to f32.
    ///   Resolve a request with `Precision.resolve` first: this initialiser does not check the CPU.
    /// - Throws: `ModelIOError` naming the file and the key or tensor at fault.
    public init(gguf url: URL, precision: Precision = .f32) throws {
        let file = try GGUFFile(url: url)
        let keep = precision == .native ? GGMLType.residentTypes : []
        try ensureFits(bytes: file.residentFootprint(keeping: keep), what: url.path)
        let config = try LlamaConfig(gguf: file)
        // llama.cpp permutes q/k rows only for the `llama` architecture (for its interleaved RoPE).
        let src = GGUFSource(file: file, unpermuteHeads: config.modelType == "llama"
                             ? (config.numAttentionHeads, config.numKeyValueHeads) : nil, keep: keep)
        var factors: [Float]?
        if file.tensorInfo(named: "rope_freqs.weight") != nil {
            factors = try src.take("rope_freqs.weight", shape: [config.headDim / 2]).data
        }
        try self.init(config: config, source: src, embedKey: "token_embd.weight", normKey: "output_norm.weight",
                      headKey: "output.weight", ropeFactors: factors)
        try src.finish()
    }

    /// Loads a `.gguf` file or an HF folder (`precision` as in `init(gguf:precision:)`).
    public static func load(_ url: URL, precision: Precision = .f32) throws -> LlamaModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw ModelIOError(.notFound, path: url.path, "no such file or folder")
        }
        return isDir.boolValue ? try LlamaModel(folder: url, precision: precision) : try LlamaModel(gguf: url, precision: precision)
    }

    /// The formats of the weight matrices, most bytes first, joined by `+` (e.g. `Q4_1+Q8_0`, `f32`).
    public var storageName: String {
        residentWeightBytes.sorted { $0.value > $1.value }.map { "\($0.key)".lowercased() }.joined(separator: "+")
    }

    /// Bytes of weights one decode step reads: every layer's matrices and the head.
    public var decodeStepWeightBytes: Int {
        layers.reduce(lmHead.residentBytes) { $0 + $1.wqkv.residentBytes + $1.wo.residentBytes + $1.wgu.residentBytes + $1.wdown.residentBytes }
    }

    /// Bytes the weight matrices occupy in memory (norms and biases aside), by storage format.
    public var residentWeightBytes: [WeightFormat: Int] {
        var out: [WeightFormat: Int] = [:]
        var seen = Set<ObjectIdentifier>()
        for m in [embedTokens, lmHead] + layers.flatMap({ [$0.wqkv, $0.wo, $0.wgu, $0.wdown] })
        where seen.insert(ObjectIdentifier(m)).inserted {
            for s in m.segments { out[s.format, default: 0] += s.rows * s.rowBytes }
        }
        return out
    }

    private init(config c: LlamaConfig, source s: LlamaTensorSource, embedKey: String, normKey: String,
                 headKey: String, ropeFactors: [Float]?) throws {
        config = c
        let d = c.hiddenSize, q = c.qDim, kv = c.kvDim, inner = c.intermediateSize
        embedTokens = try s.matrix([(embedKey, [c.vocabSize, d])])
        var layers: [LlamaLayer] = []
        for i in 0..<c.numHiddenLayers {
            func t(_ p: LlamaPart, _ shape: [Int]) throws -> Tensor { try s.take(s.key(p, layer: i), shape: shape) }
            func cat(_ parts: [(LlamaPart, [Int])]) throws -> Tensor {
                var data: [Float] = []
                data.reserveCapacity(parts.reduce(0) { $0 + $1.1.reduce(1, *) })
                for (p, shape) in parts { data += try t(p, shape).data }
                return Tensor(shape: [data.count], data: data)
            }
            func matrix(_ parts: [(LlamaPart, [Int])]) throws -> WeightMatrix {
                try s.matrix(parts.map { (s.key($0.0, layer: i), $0.1) })
            }
            layers.append(LlamaLayer(
                attnNorm: try t(.attnNorm, [d]),
                wqkv: try matrix([(.q, [q, d]), (.k, [kv, d]), (.v, [kv, d])]),
                bqkv: c.qkvBias ? try cat([(.qBias, [q]), (.kBias, [kv]), (.vBias, [kv])]) : nil,
                wo: try matrix([(.o, [d, q])]),
                bo: c.outputBias ? try t(.oBias, [d]) : nil,
                mlpNorm: try t(.mlpNorm, [d]),
                wgu: try matrix([(.gate, [inner, d]), (.up, [inner, d])]),
                bgu: c.mlpBias ? try cat([(.gateBias, [inner]), (.upBias, [inner])]) : nil,
                wdown: try matrix([(.down, [d, inner])]),
                bdown: c.mlpBias ? try t(.downBias, [d]) : nil))
        }
        self.layers = layers
        finalNorm = try s.take(normKey, shape: [d])
        if s.has(headKey) {
            lmHead = try s.matrix([(headKey, [c.vocabSize, d])])
        } else if c.tieWordEmbeddings {
            lmHead = embedTokens
        } else {
            lmHead = try s.matrix([(headKey, [c.vocabSize, d])])  // throws: missing tensor, named
        }
        var inv = c.rope.inverseFrequencies(headDim: c.headDim)
        if let f = ropeFactors {
            // llama.cpp stores llama3-style scaling as per-frequency divisors.
            for i in inv.indices { inv[i] /= f[i] }
        }
        invFreq = inv
    }

    /// Number of decoder layers.
    public var layerCount: Int { config.numHiddenLayers }
    /// Hidden width D.
    public var hiddenSize: Int { config.hiddenSize }
    /// Vocabulary size (rows of the logits).
    public var vocabSize: Int { config.vocabSize }

    /// An empty KV cache for this model with room for `capacity` positions (it grows past that).
    public func makeCache(capacity: Int = 256) -> KVCache {
        KVCache(layers: config.numHiddenLayers, kvDim: config.kvDim, capacity: capacity)
    }

    /// Token embeddings `[T, D]` (`embed_tokens`).
    ///
    /// - Throws: `LlamaError` naming an id outside `0..<vocab`.
    public func embed(_ ids: [Int]) throws -> Tensor {
        let d = config.hiddenSize
        var out = [Float](repeating: 0, count: ids.count * d)
        for (r, id) in ids.enumerated() {
            guard id >= 0 && id < config.vocabSize else {
                throw LlamaError("token id \(id) at position \(r) is outside the vocabulary 0..<\(config.vocabSize)")
            }
            out.withUnsafeMutableBufferPointer { o in
                embedTokens.dequantize(rows: id..<(id + 1), into: o.baseAddress! + r * d)
            }
        }
        return Tensor(shape: [ids.count, d], data: out)
    }

    /// Runs token ids after the cache's current positions; see `forward(embeddings:cache:allLogits:)`.
    public func forward(ids: [Int], cache: inout KVCache, allLogits: Bool = false) throws -> Tensor {
        try forward(embeddings: try embed(ids), cache: &cache, allLogits: allLogits)
    }

    /// Runs T new positions (input embeddings `[T, D]`) after the cache's `count` positions in one
    /// batched pass, appends their keys and values to the cache, and returns the logits of the last
    /// position `[vocab]`, or of every new position `[T, vocab]` when `allLogits`.
    ///
    /// - Throws: `LlamaError` when the embeddings are not `[T ≥ 1, D]` or the cache belongs to another shape of model.
    /// - Complexity: O(T·P + T·(T + past)·D) where P is the parameter count.
    /// `positions` gives the new rows' RoPE positions explicitly (strictly increasing, after the
    /// cache's `nextPosition`); nil continues from `nextPosition`. The causal mask follows the row order.
    public func forward(embeddings: Tensor, cache: inout KVCache, allLogits: Bool = false,
                        positions: [Int]? = nil) throws -> Tensor {
        let c = config
        let d = c.hiddenSize, qd = c.qDim, kvd = c.kvDim, inner = c.intermediateSize
        let hd = c.headDim, heads = c.numAttentionHeads, kvHeads = c.numKeyValueHeads
        let qkvW = qd + 2 * kvd, vocab = c.vocabSize
        guard embeddings.shape.count == 2, embeddings.cols == d, embeddings.rows >= 1 else {
            throw LlamaError("input embeddings have shape \(embeddings.shape); expected [T ≥ 1, \(d)]")
        }
        guard cache.layers == c.numHiddenLayers, cache.kvDim == kvd else {
            throw LlamaError("KV cache has \(cache.layers) layers × \(cache.kvDim) wide; the model needs \(c.numHiddenLayers) × \(kvd)")
        }
        let t = embeddings.rows, past = cache.count, total = past + t
        let start = cache.nextPosition
        if let positions {
            guard positions.count == t else {
                throw LlamaError("\(positions.count) positions for \(t) new rows")
            }
            for (i, p) in positions.enumerated() where p < (i == 0 ? start : positions[i - 1] + 1) {
                throw LlamaError("position \(p) at row \(i) does not follow \(i == 0 ? start - 1 : positions[i - 1]) (positions must increase)")
            }
        }
        cache.reserve(total)
        let gemv = decodeUsesGEMV

        // One workspace for the whole pass: x, h, qkv, attention out, gate/up, act, rope tables, scores.
        let half = hd / 2
        let sizes = [t * d, t * d, t * qkvW, t * qd, t * 2 * inner, t * inner, t * half, t * half,
                     attentionScratchCount(tq: t, tk: total, heads: heads, kvHeads: kvHeads)]
        let ws = UnsafeMutablePointer<Float>.allocate(capacity: sizes.reduce(0, +))
        defer { ws.deallocate() }
        var offsets: [Int] = [], o = 0
        for s in sizes { offsets.append(o); o += s }
        let x = ws + offsets[0], h = ws + offsets[1], qkv = ws + offsets[2], att = ws + offsets[3]
        let gu = ws + offsets[4], act = ws + offsets[5], cosT = ws + offsets[6], sinT = ws + offsets[7]
        let scores = ws + offsets[8]

        embeddings.data.withUnsafeBufferPointer { x.update(from: $0.baseAddress!, count: t * d) }
        if let positions {
            ropeTables(invFreq: invFreq, positions: positions, cos: cosT, sin: sinT)
        } else {
            ropeTables(invFreq: invFreq, positions: start..<(start + t), cos: cosT, sin: sinT)
        }

        for l in 0..<c.numHiddenLayers {
            let layer = layers[l]
            // Attention block: h = norm(x); qkv = h·Wqkvᵀ + b; rope(q, k); append k, v; x += attn·Woᵀ + bo
            layer.attnNorm.data.withUnsafeBufferPointer { rmsNormRows(x, into: h, rows: t, width: d, weight: $0.baseAddress!, eps: c.rmsNormEps) }
            if let b = layer.bqkv { b.data.withUnsafeBufferPointer { broadcastRows($0.baseAddress!, count: qkvW, rows: t, into: qkv, ldy: qkvW) } }
            linearRows(h, rows: t, weight: layer.wqkv, into: qkv,
                       beta: layer.bqkv == nil ? 0 : 1, useGEMV: gemv)
            forRowChunks(t) { r0, n in
                applyRoPE(qkv + r0 * qkvW, rows: n, ld: qkvW, heads: heads, headDim: hd, cos: cosT + r0 * half, sin: sinT + r0 * half)
                applyRoPE(qkv + r0 * qkvW + qd, rows: n, ld: qkvW, heads: kvHeads, headDim: hd, cos: cosT + r0 * half, sin: sinT + r0 * half)
            }
            cache.keys[l].withUnsafeMutableBufferPointer { kb in
                cache.values[l].withUnsafeMutableBufferPointer { vb in
                    let kc = kb.baseAddress!, vc = vb.baseAddress!
                    for r in 0..<t {
                        (kc + (past + r) * kvd).update(from: qkv + r * qkvW + qd, count: kvd)     // [T, kvHeads·hd]
                        (vc + (past + r) * kvd).update(from: qkv + r * qkvW + qd + kvd, count: kvd)
                    }
                    cachedAttention(q: qkv, ldq: qkvW, tq: t, k: kc, v: vc, ldkv: kvd, tk: total,
                                    heads: heads, kvHeads: kvHeads, headDim: hd, out: att, scratch: scores)
                }
            }
            if let b = layer.bo { b.data.withUnsafeBufferPointer { addRows($0.baseAddress!, count: d, rows: t, into: x) } }
            linearRows(att, rows: t, weight: layer.wo, into: x, beta: 1, useGEMV: gemv)
            // MLP block: h = norm(x); gu = h·[Wg; Wu]ᵀ; act = silu(g)·u; x += act·Wdownᵀ
            layer.mlpNorm.data.withUnsafeBufferPointer { rmsNormRows(x, into: h, rows: t, width: d, weight: $0.baseAddress!, eps: c.rmsNormEps) }
            if let b = layer.bgu { b.data.withUnsafeBufferPointer { broadcastRows($0.baseAddress!, count: 2 * inner, rows: t, into: gu, ldy: 2 * inner) } }
            linearRows(h, rows: t, weight: layer.wgu, into: gu,
                       beta: layer.bgu == nil ? 0 : 1, useGEMV: gemv)
            forRowChunks(t) { r0, n in swiGLU(gu + r0 * 2 * inner, rows: n, inner: inner, into: act + r0 * inner) }
            if let b = layer.bdown { b.data.withUnsafeBufferPointer { addRows($0.baseAddress!, count: d, rows: t, into: x) } }
            linearRows(act, rows: t, weight: layer.wdown, into: x, beta: 1, useGEMV: gemv)
        }
        cache.advance(by: t)
        cache.nextPosition = (positions?.last).map { $0 + 1 } ?? start + t

        // Final norm and head, on the last row only unless every position's logits are wanted.
        let outRows = allLogits ? t : 1
        finalNorm.data.withUnsafeBufferPointer {
            rmsNormRows(x + (t - outRows) * d, into: h, rows: outRows, width: d, weight: $0.baseAddress!, eps: c.rmsNormEps)
        }
        var logits = [Float](repeating: 0, count: outRows * vocab)
        logits.withUnsafeMutableBufferPointer { lp in
            linearRows(h, rows: outRows, weight: lmHead, into: lp.baseAddress!, useGEMV: gemv)
        }
        return Tensor(shape: allLogits ? [t, vocab] : [vocab], data: logits)
    }

    /// FLOPs (multiply-add = 2) of a forward over `tokens` new positions after `past` cached ones,
    /// with `logitRows` rows through the head: projections, attention scores and mixing.
    public func flops(tokens t: Int, past: Int = 0, logitRows: Int = 1) -> Double {
        let c = config
        let d = Double(c.hiddenSize), q = Double(c.qDim), kv = Double(c.kvDim), i = Double(c.intermediateSize)
        let T = Double(t)
        let proj = 2 * T * d * (q + 2 * kv) + 2 * T * q * d + 2 * T * d * 2 * i + 2 * T * i * d
        // Σ over new rows of the keys each sees: t·past + t(t+1)/2; QKᵀ and P·V each 2·heads·hd per pair.
        let pairs = T * Double(past) + T * (T + 1) / 2
        let attn = 2 * 2 * pairs * q
        return Double(c.numHiddenLayers) * (proj + attn) + 2 * Double(logitRows) * d * Double(c.vocabSize)
    }

    /// The projection GEMM shapes of a forward over `tokens` rows (m = rows, n = outputs, k = inputs),
    /// each with its count per pass, plus the one-row head: the same matrices a BLAS baseline should time.
    public func gemmShapes(tokens t: Int) -> [(m: Int, n: Int, k: Int, count: Int)] {
        let c = config, L = c.numHiddenLayers
        return [(t, c.qDim + 2 * c.kvDim, c.hiddenSize, L), (t, c.hiddenSize, c.qDim, L),
                (t, 2 * c.intermediateSize, c.hiddenSize, L), (t, c.hiddenSize, c.intermediateSize, L),
                (1, c.vocabSize, c.hiddenSize, 1)]
    }
}

/// Runs `body(firstRow, rowCount)` over `rows` split across `Parallel.threads` (inline for one row).
@inline(__always)
private func forRowChunks(_ rows: Int, _ body: (Int, Int) -> Void) {
    if rows < 8 { body(0, rows); return }
    Parallel.forEachChunk(rows, minChunk: 4) { r in body(r.lowerBound, r.count) }
}

/// `y[r, :] += b` for each of `rows` rows of width `count`.
@inline(__always)
private func addRows(_ b: UnsafePointer<Float>, count: Int, rows: Int, into y: UnsafeMutablePointer<Float>) {
    for r in 0..<rows { for i in 0..<count { y[r * count + i] += b[i] } }
}
