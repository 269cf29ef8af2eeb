// Hand-computed examples of every gate definition (DESIGN.md, "Definitions the gate must follow
// exactly"). Expected values are worked out by hand in the comments, not by running the code.

import XCTest
import SplitMix
@testable import Gate

final class GateExamplesTests: XCTestCase {
    // N = 4. minmax(sal) = [0, 1, 1/3, 2/3]; minmax(rel) = [1, 0, 5/9, 1/9].
    // α = 0.5: S = [0.5, 0.5, 4/9, 7/18] = [0.5, 0.5, 0.4444, 0.3889].
    let sal: [Float] = [0.1, 0.4, 0.2, 0.3]
    let rel: [Float] = [0.9, 0.0, 0.5, 0.1]

    func assertClose(_ a: [Float], _ b: [Double], tol: Double = 1e-6,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) { XCTAssertEqual(Double(x), y, accuracy: tol, "\(a) vs \(b)", file: file, line: line) }
    }

    func decide(_ method: GateMethod, _ budget: TokenBudget, alpha: Double = 0.5, sign: Int = 1,
                norm: ScoreNormalization = .minmax, relevance: [Float]? = nil, seed: UInt64 = 0) throws -> GateDecision {
        try runGate(saliency: sal, relevance: relevance ?? rel,
                    config: GateConfig(method: method, alpha: alpha, sign: sign, norm: norm, budget: budget, seed: seed))
    }

    func testFusedScoresN4() throws {
        let d = try decide(.atp, .tokens(2))
        assertClose(d.scores, [0.5, 0.5, 4.0 / 9, 7.0 / 18])
        XCTAssertEqual(d.kept, [0, 1])            // 0.5 tie: both kept
        XCTAssertEqual(d.method, .atp)
        XCTAssertEqual(try decide(.atp, .tokens(3)).kept, [0, 1, 2])
        XCTAssertEqual(try decide(.atp, .keep(0.25)).kept, [0])   // K = floor(1.5) = 1; tie → lower index
        XCTAssertEqual(try decide(.atp, .keep(0.5)).kept, [0, 1]) // K = floor(2.5) = 2
    }

    func testBaselinesN4() throws {
        // cls: α = 0 → S = minmax(sal) = [0, 1, 1/3, 2/3] → top 2 = {1, 3}.
        let cls = try decide(.cls, .tokens(2), alpha: 0.9)
        assertClose(cls.scores, [0, 1, 1.0 / 3, 2.0 / 3])
        XCTAssertEqual(cls.kept, [1, 3])
        // text: α = 1 → S = minmax(rel) = [1, 0, 5/9, 1/9] → {0, 2}.
        let text = try decide(.text, .tokens(2), alpha: 0.1)
        assertClose(text.scores, [1, 0, 5.0 / 9, 1.0 / 9])
        XCTAssertEqual(text.kept, [0, 2])
        // sign −1: minmax(−rel) = [0, 1, 4/9, 8/9] → {1, 3}: the relevance ranking reversed.
        let neg = try decide(.text, .tokens(2), sign: -1)
        assertClose(neg.scores, [0, 1, 4.0 / 9, 8.0 / 9])
        XCTAssertEqual(neg.kept, [1, 3])
        // uniform N = 4, K = 2: floor(0.5·2) = 1, floor(1.5·2) = 3. Scores are the config-α fusion.
        let uni = try decide(.uniform, .tokens(2))
        XCTAssertEqual(uni.kept, [1, 3])
        assertClose(uni.scores, [0.5, 0.5, 4.0 / 9, 7.0 / 18])
        // full ignores the budget.
        XCTAssertEqual(try decide(.full, .tokens(1)).kept, [0, 1, 2, 3])
        // random: K distinct ascending indices, deterministic.
        let r = try decide(.random, .tokens(2), seed: 5)
        XCTAssertEqual(r.kept.count, 2)
        XCTAssertEqual(r, try decide(.random, .tokens(2), seed: 5))
    }

    func testNoRelevanceForcesAlphaZero() throws {
        let d = try runGate(saliency: sal, relevance: nil, config: GateConfig(method: .atp, alpha: 1, budget: .tokens(2)))
        assertClose(d.scores, [0, 1, 1.0 / 3, 2.0 / 3])
        XCTAssertEqual(d.kept, [1, 3])
        XCTAssertThrowsError(try runGate(saliency: sal, relevance: nil, config: GateConfig(method: .text))) {
            XCTAssertEqual("\($0)", "method text needs a query and a CLIP text tower")
        }
    }

    func testMassN4() throws {
        // S = [0.5, 0.5, 0.4444, 0.3889] → S' = [1/9, 1/9, 1/18, 0], ΣS' = 5/18.
        // m = 0.5 → target 5/36: 1/9 < 5/36 ≤ 2/9 → K = 2. m = 0.9 → target 0.25 → K = 3.
        // m = 1 → the last zero adds nothing → K = 3 < N.
        XCTAssertEqual(try decide(.atp, .mass(0.5)).kept, [0, 1])
        XCTAssertEqual(try decide(.atp, .mass(0.9)).kept, [0, 1, 2])
        XCTAssertEqual(try decide(.atp, .mass(1)).kept, [0, 1, 2])
        // Mass budget drives uniform/random too (K from the fused scores): K = 2 → uniform {1, 3}.
        XCTAssertEqual(try decide(.uniform, .mass(0.5)).kept, [1, 3])
        XCTAssertEqual(try decide(.random, .mass(0.5)).kept.count, 2)
        // Constant scores → ΣS' = 0 → K = 1.
        XCTAssertEqual(try TokenBudget.mass(1).count(n: 5, scores: [Float](repeating: 0.7, count: 5)), 1)
        // S' = [3, 1, 0, 0] (S = [2, 0, -1, -1]): m = 0.75 → exactly 3 of 4 at K = 1.
        XCTAssertEqual(try TokenBudget.mass(0.75).count(n: 4, scores: [2, 0, -1, -1]), 1)
        XCTAssertEqual(try TokenBudget.mass(0.76).count(n: 4, scores: [2, 0, -1, -1]), 2)
        XCTAssertEqual(try TokenBudget.mass(1).count(n: 4, scores: [2, 0, -1, -1]), 2)
    }

    func testTokenCounts() throws {
        XCTAssertEqual(try TokenBudget.tokens(0).count(n: 10, scores: []), 1)
        XCTAssertEqual(try TokenBudget.tokens(-4).count(n: 10, scores: []), 1)
        XCTAssertEqual(try TokenBudget.tokens(13).count(n: 10, scores: []), 10)
        XCTAssertEqual(try TokenBudget.keep(1).count(n: 10, scores: []), 10)
        XCTAssertEqual(try TokenBudget.keep(0.25).count(n: 10, scores: []), 3)   // floor(3.0) = 3
        XCTAssertEqual(try TokenBudget.keep(0.25).count(n: 6, scores: []), 2)    // floor(2.0)
        XCTAssertEqual(try TokenBudget.keep(0.15).count(n: 10, scores: []), 2)   // floor(2.0) (1.5 + .5)
        XCTAssertEqual(try TokenBudget.keep(0.14).count(n: 10, scores: []), 1)   // floor(1.9)
        XCTAssertEqual(try TokenBudget.keep(1e-9).count(n: 576, scores: []), 1)
        XCTAssertEqual(try TokenBudget.keep(0.25).count(n: 576, scores: []), 144)
        XCTAssertEqual(try TokenBudget.all.count(n: 7, scores: []), 7)
        XCTAssertThrowsError(try TokenBudget.all.count(n: 0, scores: []))
    }

    func testErrorMessages() {
        func message(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(message { try TokenBudget.keep(1.5).count(n: 4, scores: []) }, "--keep 1.5: must be in (0, 1]")
        XCTAssertEqual(message { try TokenBudget.keep(0).count(n: 4, scores: []) }, "--keep 0.0: must be in (0, 1]")
        XCTAssertEqual(message { try TokenBudget.keep(-0.5).count(n: 4, scores: []) }, "--keep -0.5: must be in (0, 1]")
        XCTAssertEqual(message { try TokenBudget.keep(.nan).count(n: 4, scores: []) }, "--keep nan: must be in (0, 1]")
        XCTAssertEqual(message { try TokenBudget.mass(0).count(n: 4, scores: [1, 2, 3, 4]) }, "--mass 0.0: must be in (0, 1]")
        XCTAssertEqual(message { try TokenBudget.mass(1.01).count(n: 4, scores: [1, 2, 3, 4]) }, "--mass 1.01: must be in (0, 1]")
        XCTAssertEqual(message { try fuse(saliency: self.sal, relevance: self.rel, alpha: 1.5, sign: 1, norm: .minmax) },
                       "--alpha 1.5: must be in [0, 1]")
        XCTAssertEqual(message { try fuse(saliency: self.sal, relevance: self.rel, alpha: -0.1, sign: 1, norm: .minmax) },
                       "--alpha -0.1: must be in [0, 1]")
        XCTAssertEqual(message { try fuse(saliency: self.sal, relevance: self.rel, alpha: 0.5, sign: 0, norm: .minmax) },
                       "--sign 0: must be 1 or -1")
        XCTAssertEqual(message { try fuse(saliency: self.sal, relevance: [1, 2], alpha: 0.5, sign: 1, norm: .minmax) },
                       "gate: relevance has 2 values but there are 4 patch tokens")
        XCTAssertEqual(message { try fuse(saliency: [1, .nan], relevance: nil, alpha: 0.5, sign: 1, norm: .minmax) },
                       "gate: saliency[1] is nan: scores must be finite")
        XCTAssertEqual(message { try runGate(saliency: [], relevance: nil, config: GateConfig()) },
                       "gate: the frame has no patch tokens (N = 0)")
        // Invalid options are rejected for every method, even those that ignore them.
        XCTAssertEqual(message { try runGate(saliency: self.sal, relevance: nil, config: GateConfig(method: .cls, alpha: 2)) },
                       "--alpha 2.0: must be in [0, 1]")
        XCTAssertEqual(message { try runGate(saliency: self.sal, relevance: nil, config: GateConfig(method: .full, budget: .keep(3))) },
                       "--keep 3.0: must be in (0, 1]")
        XCTAssertEqual(message { try runGate(saliency: self.sal, relevance: nil, config: GateConfig(sign: -2)) },
                       "--sign -2: must be 1 or -1")
        XCTAssertEqual(message { try saliencyFromAttention([1, 2, 3], heads: 1, tokens: 2) },
                       "gate: attention has 3 values, expected [1×2×2] = 4")
        XCTAssertEqual(message { try cosineRelevance(patchEmbeddings: [1, 2, 3], count: 2, dim: 2, text: [1, 0]) },
                       "gate: patch embeddings has 3 values, expected [2×2] = 4")
        XCTAssertEqual(message { try cosineRelevance(patchEmbeddings: [1, 2, 3, 4], count: 2, dim: 2, text: [1]) },
                       "gate: text embedding has 1 values, expected [2] = 2")
    }

    func testNormalizations() {
        // minmax of [2, 4, 3, 6] = [0, 0.5, 0.25, 1].
        assertClose(normalize([2, 4, 3, 6], method: .minmax), [0, 0.5, 0.25, 1])
        // z-score of [1, 2, 3, 4]: mean 2.5, population variance 5/4, std √1.25 = 1.118034
        // → [-1.341641, -0.447214, 0.447214, 1.341641] (the sample std would give ±1.161895).
        assertClose(normalize([1, 2, 3, 4], method: .zscore), [-1.5 / 1.25.squareRoot(), -0.5 / 1.25.squareRoot(),
                                                                0.5 / 1.25.squareRoot(), 1.5 / 1.25.squareRoot()])
        assertClose(normalize([-3, -3, 1, 1], method: .zscore), [-1, -1, 1, 1])
        for method in ScoreNormalization.allCases {
            XCTAssertEqual(normalize([0.1, 0.1, 0.1], method: method), [0, 0, 0])
            XCTAssertEqual(normalize([-7], method: method), [0])
            XCTAssertEqual(normalize([], method: method), [])
        }
        // A constant vector whose Double mean is not exactly the value still maps to zeros.
        XCTAssertEqual(normalize([Float](repeating: 0.1, count: 7), method: .zscore), [Float](repeating: 0, count: 7))
    }

    func testSaliency() throws {
        assertClose(saliency(clsAttention: [1, 3, 0, 4]), [0.125, 0.375, 0, 0.5])
        assertClose(saliency(clsAttention: [0, 0, 0, 0]), [0.25, 0.25, 0.25, 0.25])
        XCTAssertEqual(saliency(clsAttention: []), [])
        // [[0.9, 0.1], [0.3, 0.7]]: column sums [1.2, 0.8] → [0.6, 0.4].
        assertClose(try saliencyFromAttention([0.9, 0.1, 0.3, 0.7], heads: 1, tokens: 2), [0.6, 0.4])
        // + a second head [[0.5, 0.5], [0.5, 0.5]] → [2.2, 1.8] / 4 = [0.55, 0.45].
        assertClose(try saliencyFromAttention([0.9, 0.1, 0.3, 0.7, 0.5, 0.5, 0.5, 0.5], heads: 2, tokens: 2), [0.55, 0.45])
    }

    func testCosineRelevance() throws {
        let patches: [Float] = [1, 0, /**/ 0, 2, /**/ 1, 1, /**/ 0, 0]   // [4, 2]
        assertClose(try cosineRelevance(patchEmbeddings: patches, count: 4, dim: 2, text: [1, 0]), [1, 0, 0.5.squareRoot(), 0])
        assertClose(try cosineRelevance(patchEmbeddings: patches, count: 4, dim: 2, text: [-3, 0]), [-1, 0, -0.5.squareRoot(), 0])
        XCTAssertEqual(try cosineRelevance(patchEmbeddings: patches, count: 4, dim: 2, text: [0, 0]), [0, 0, 0, 0])
        XCTAssertEqual(try cosineRelevance(patchEmbeddings: [], count: 0, dim: 3, text: [1, 2, 3]), [])
    }

    func testSelectTopK() {
        XCTAssertEqual(selectTopK(scores: [3, 1, 4, 1, 5, 9, 2, 6], k: 3), [4, 5, 7])   // 9, 6, 5
        XCTAssertEqual(selectTopK(scores: [1, 1, 1, 1], k: 2), [0, 1])
        XCTAssertEqual(selectTopK(scores: [0, 1, 1, 0, 1], k: 2), [1, 2])
        XCTAssertEqual(selectTopK(scores: [-5, -1, -3], k: 1), [1])
        XCTAssertEqual(selectTopK(scores: [1, 2], k: 0), [])
        XCTAssertEqual(selectTopK(scores: [1, 2], k: 5), [0, 1])
        XCTAssertEqual(selectTopK(scores: [], k: 3), [])
        XCTAssertEqual(selectTopK(scores: [.nan, 0, -1], k: 2), [1, 2])  // NaN ranks lowest
    }

    func testUniform() {
        XCTAssertEqual(uniformIndices(n: 10, k: 3), [1, 5, 8])          // floor(5/3), floor(5), floor(25/3)
        XCTAssertEqual(uniformIndices(n: 576, k: 4), [72, 216, 360, 504])
        XCTAssertEqual(uniformIndices(n: 5, k: 5), [0, 1, 2, 3, 4])
        XCTAssertEqual(uniformIndices(n: 1, k: 1), [0])
        XCTAssertEqual(uniformIndices(n: 7, k: 1), [3])                 // floor(3.5)
        XCTAssertEqual(uniformIndices(n: 7, k: 0), [])
    }

    func testSplitMix64Vectors() {
        // The published SplitMix64 outputs for seed 0.
        var g = SplitMix64(seed: 0)
        XCTAssertEqual((0..<5).map { _ in g.next() },
                       [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F,
                        0xF88B_B8A8_724C_81EC, 0x1B39_896A_51A8_749B])
    }

    func testRandom() {
        XCTAssertEqual(randomIndices(n: 64, k: 8, seed: 0), [8, 11, 30, 31, 35, 37, 47, 53])
        XCTAssertEqual(randomIndices(n: 64, k: 8, seed: 1), [1, 6, 7, 8, 25, 29, 37, 52])
        XCTAssertEqual(randomIndices(n: 10, k: 3, seed: 0), [1, 5, 9])
        XCTAssertEqual(randomIndices(n: 64, k: 8, seed: 0), randomIndices(n: 64, k: 8, seed: 0))
        var distinctSets = Set<[Int]>()
        for seed in UInt64(0)..<20 {
            let r = randomIndices(n: 64, k: 8, seed: seed)
            XCTAssertEqual(r.count, 8)
            XCTAssertEqual(Set(r).count, 8)
            XCTAssertEqual(r, r.sorted())
            XCTAssertTrue(r.allSatisfy { (0..<64).contains($0) })
            distinctSets.insert(r)
        }
        XCTAssertEqual(distinctSets.count, 20)
        // Roughly uniform: 20000 single draws from 5 land 4000 ± 250 times on each index (≈ 4.5σ).
        var hits = [Int](repeating: 0, count: 5)
        for seed in UInt64(0)..<20000 { hits[randomIndices(n: 5, k: 1, seed: seed)[0]] += 1 }
        for h in hits { XCTAssertEqual(Double(h), 4000, accuracy: 250, "\(hits)") }
    }

    func testSpellings() {
        XCTAssertEqual(GateMethod.allCases.map(\.rawValue), ["atp", "atp-div", "cls", "text", "random", "uniform", "full"])
        XCTAssertEqual(ScoreNormalization.allCases.map(\.rawValue), ["minmax", "zscore"])
        let c = GateConfig()
        XCTAssertEqual(c.method, .atp)
        XCTAssertEqual(c.alpha, 0.5)
        XCTAssertEqual(c.sign, 1)
        XCTAssertEqual(c.norm, .minmax)
        XCTAssertEqual(c.budget, .keep(0.25))
        XCTAssertEqual(c.seed, 0)
    }

    /// The shrink-k cap bounds K for every selecting method; `full` keeps all tokens.
    func testMaxTokensCapsTheBudget() throws {
        let sal: [Float] = [0.1, 0.9, 0.3, 0.8, 0.2, 0.7, 0.4, 0.6]
        var cfg = GateConfig(method: .cls, budget: .keep(1.0))
        cfg.maxTokens = 3
        XCTAssertEqual(try runGate(saliency: sal, relevance: nil, config: cfg).kept, [1, 3, 5])
        cfg.method = .uniform
        XCTAssertEqual(try runGate(saliency: sal, relevance: nil, config: cfg).kept, [1, 4, 6])
        cfg.method = .full
        XCTAssertEqual(try runGate(saliency: sal, relevance: nil, config: cfg).kept, Array(0..<8))
        cfg.method = .cls
        cfg.maxTokens = 0
        XCTAssertEqual(try runGate(saliency: sal, relevance: nil, config: cfg).kept, [1], "a cap below 1 still keeps one token")
    }

    /// atp-div on a hand-made case: two patches of a box (same feature) score highest; top-K keeps both,
    /// the DPP keeps one of them and the best patch of another object instead.
    func testDiversitySkipsDuplicates() throws {
        let sal: [Float] = [0.05, 0.30, 0.29, 0.20, 0.16]
        let feats: [Float] = [1, 0, 0,   0, 1, 0,   0, 1, 0,   0, 0, 1,   1, 1, 0]
        var cfg = GateConfig(method: .cls, budget: .tokens(2))
        XCTAssertEqual(try runGate(saliency: sal, relevance: nil, config: cfg).kept, [1, 2])
        cfg.method = .atpDiv
        cfg.alpha = 0
        XCTAssertEqual(try runGate(saliency: sal, relevance: nil, config: cfg, features: feats, featureDim: 3).kept, [1, 3])
        // An exact duplicate never comes back; a near one does once β makes the score dominate (top-K).
        var near = feats
        near[8] = 0.1
        XCTAssertEqual(try runGate(saliency: sal, relevance: nil, config: cfg, features: near, featureDim: 3).kept, [1, 3])
        cfg.diversityBeta = 200
        XCTAssertEqual(try runGate(saliency: sal, relevance: nil, config: cfg, features: near, featureDim: 3).kept, [1, 2])
        XCTAssertEqual(try runGate(saliency: sal, relevance: nil, config: cfg, features: feats, featureDim: 3).kept, [1, 3])
        // Without features atp-div is an error that says what is missing.
        XCTAssertThrowsError(try runGate(saliency: sal, relevance: nil, config: cfg)) { e in
            XCTAssertEqual("\(e)", "method atp-div needs the vision tower's patch features")
        }
        XCTAssertThrowsError(try selectDiverse(scores: sal, features: [1, 2], dim: 3, k: 2)) { e in
            XCTAssertEqual("\(e)", "gate: features has 2 values, expected [5×3] = 15")
        }
    }
}
