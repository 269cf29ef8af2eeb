// Token generation over `LlamaModel` and `KVCache`: greedy decoding as transformers'
// `generate(do_sample=False)` (argmax, first index on ties), or sampling with temperature, top-k
// and top-p in the order of transformers' logits warpers (temperature → top-k → top-p) from a
// seeded SplitMix64 generator. Generation stops on any stop id (returned as the last id) or after
// `maxTokens` ids.

import Foundation
import SplitMix
import Tensor

/// How to pick each next token and when to stop.
public struct GenerationOptions: Sendable, Equatable {
    /// Most ids to generate (the stop id counts as one).
    public var maxTokens: Int
    /// Ids that end generation (EOS, the chat template's end token); the one that stops is returned.
    public var stopIds: Set<Int>
    /// 0 means greedy; otherwise logits are divided by it before sampling.
    public var temperature: Float
    /// Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches `topP` (1 = off).
    public var topP: Float
    /// Keep only the `topK` most likely tokens (0 = off).
    public var topK: Int
    /// Seed of the sampling generator.
    public var seed: UInt64

    public init(maxTokens: Int, stopIds: Set<Int> = [], temperature: Float = 0, topP: Float = 1, topK: Int = 0, seed: UInt64 = 0) {
        self.maxTokens = maxTokens
        self.stopIds = stopIds
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
    }

    /// Checks the values; throws naming the bad one.
    public func validate() throws {
        guard maxTokens >= 0 else { throw LlamaError("maxTokens \(maxTokens): must be ≥ 0") }
        guard temperature >= 0, temperature.isFinite else { throw LlamaError("temperature \(temperature): must be ≥ 0") }
        guard topP > 0, topP <= 1 else { throw LlamaError("topP \(topP): must be in (0, 1]") }
        guard topK >= 0 else { throw LlamaError("topK \(topK): must be ≥ 0") }
    }
}

/// Wall-clock time of each phase of one generation.
public struct GenerationTimings: Sendable, Equatable {
    /// The prompt's batched forward pass and the first token's selection.
    public var prefillMs: Double = 0
    /// Every later step (one forward over the previous id, then selection).
    public var decodeMs: Double = 0
    public var promptTokens: Int = 0
    /// Ids returned (including a stop id).
    public var generatedTokens: Int = 0
    /// Single-token forward passes run in the decode phase (`generatedTokens − 1` at most).
    public var decodeSteps: Int = 0

    /// Prompt positions per second of prefill.
    public var prefillTokensPerSecond: Double { prefillMs > 0 ? Double(promptTokens) / prefillMs * 1000 : 0 }
    /// Decode steps per second.
    public var decodeTokensPerSecond: Double { decodeMs > 0 ? Double(decodeSteps) / decodeMs * 1000 : 0 }
}

/// What `generate` returns.
public struct GenerationResult: Sendable, Equatable {
    /// Generated ids, including the stop id that ended generation, if one did.
    public var ids: [Int]
    /// Whether a stop id ended generation (else `maxTokens` or the callback did).
    public var stoppedByStopId: Bool
    public var timings: GenerationTimings
}

/// Picks next tokens from logits: greedy, or temperature / top-k / top-p sampling from a seeded generator.
public struct TokenSampler: Sendable {
    public let options: GenerationOptions
    private var rng: SplitMix64

    public init(options: GenerationOptions) {
        self.options = options
        rng = SplitMix64(seed: options.seed)
    }

    /// The index of the largest logit (the first on ties, as `torch.argmax`).
    public static func argmax(_ logits: [Float]) -> Int {
        var best = 0, bestV = -Float.infinity
        for (i, v) in logits.enumerated() where v > bestV { best = i; bestV = v }
        return best
    }

    /// The next token for `logits`.
    public mutating func next(_ logits: [Float]) -> Int {
        if options.temperature == 0 { return Self.argmax(logits) }
        let inv = 1 / options.temperature
        // Candidates sorted by logit, descending (ties: lower index first).
        var order = Array(logits.indices)
        order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if options.topK > 0 && options.topK < order.count { order.removeLast(order.count - options.topK) }
        let m = logits[order[0]] * inv
        var probs = order.map { Foundation.exp(Double(logits[$0] * inv - m)) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        if options.topP < 1 {
            // Smallest prefix whose mass reaches topP (at least one token).
            var acc = 0.0, keep = probs.count
            for (i, p) in probs.enumerated() {
                acc += p
                if acc >= Double(options.topP) { keep = i + 1; break }
            }
            probs.removeLast(probs.count - keep)
            order.removeLast(order.count - keep)
            let s = probs.reduce(0, +)
            for i in probs.indices { probs[i] /= s }
        }
        let u = Double(rng.nextUnitFloat())
        var acc = 0.0
        for (i, p) in probs.enumerated() {
            acc += p
            if u < acc { return order[i] }
        }
        return order[order.count - 1]
    }
}

extension LlamaModel {
    /// Generates after prompt token ids, starting from `cache` (empty, or holding a cached prefix that
    /// the prompt continues). The cache ends holding the prompt and every id fed back.
    ///
    /// - Parameters:
    ///   - onToken: called with each new id; return false to stop early.
    /// - Throws: `LlamaError` for an empty prompt, an id outside the vocabulary, or invalid options.
    public func generate(prompt: [Int], cache: inout KVCache, options: GenerationOptions,
                         onToken: ((Int) -> Bool)? = nil) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw LlamaError("the prompt is empty") }
        return try generate(promptEmbeddings: try embed(prompt), cache: &cache, options: options, onToken: onToken)
    }

    /// Generates after prompt embeddings `[T, D]` (e.g. text and projected image tokens of a VLM).
    ///
    /// - Throws: as `generate(prompt:cache:options:onToken:)`.
    public func generate(promptEmbeddings: Tensor, cache: inout KVCache, options: GenerationOptions,
                         onToken: ((Int) -> Bool)? = nil) throws -> GenerationResult {
        try options.validate()
        var timings = GenerationTimings()
        timings.promptTokens = promptEmbeddings.rows
        var ids: [Int] = []
        guard options.maxTokens > 0 else {
            return GenerationResult(ids: [], stoppedByStopId: false, timings: timings)
        }
        var sampler = TokenSampler(options: options)
        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = try forward(embeddings: promptEmbeddings, cache: &cache)
        var next = sampler.next(logits.data)
        let t1 = DispatchTime.now().uptimeNanoseconds
        timings.prefillMs = Double(t1 - t0) / 1e6
        var stopped = false
        while true {
            ids.append(next)
            let keepGoing = onToken?(next) ?? true
            if options.stopIds.contains(next) { stopped = true; break }
            if ids.count >= options.maxTokens || !keepGoing { break }
            logits = try forward(ids: [next], cache: &cache)
            timings.decodeSteps += 1
            next = sampler.next(logits.data)
        }
        timings.decodeMs = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e6
        timings.generatedTokens = ids.count
        return GenerationResult(ids: ids, stoppedByStopId: stopped, timings: timings)
    }
}
