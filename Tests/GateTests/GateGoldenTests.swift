// The gate against goldens from the Python reference (Tools/gate_oracle.py →
// Tests/Fixtures/gate/gate_golden.json): SplitMix64 outputs, the random and uniform baselines,
// saliency (CLS and received-attention), cosine relevance, and 240 full gate runs over all methods,
// norms, signs, α values and budget kinds; atp-div's greedy DPP against brute-force determinants. Regenerate with `python3 Tools/gate_oracle.py`.

import Foundation
import XCTest
import SplitMix
@testable import Gate

final class GateGoldenTests: XCTestCase {
    struct Golden: Decodable {
        struct Generator: Decodable { let seed: String; let outputs: [String] }
        struct Random: Decodable { let n: Int; let k: Int; let seed: String; let kept: [Int] }
        struct Uniform: Decodable { let n: Int; let k: Int; let kept: [Int] }
        struct Saliency: Decodable { let cls_attention: [Float]; let expected: [Float] }
        struct Received: Decodable { let heads: Int; let n: Int; let attention: [Float]; let expected: [Float] }
        struct Cosine: Decodable { let n: Int; let p: Int; let patches: [Float]; let text: [Float]; let expected: [Float] }
        struct Input: Decodable { let saliency: [Float]; let relevance: [Float] }
        struct Budget: Decodable {
            let tokens: Int?, keep: Double?, mass: Double?, all: Bool?
            var value: TokenBudget {
                if let tokens { return .tokens(tokens) }
                if let keep { return .keep(keep) }
                if let mass { return .mass(mass) }
                return .all
            }
        }
        struct Case: Decodable {
            let input: Int, relevance: Bool, method: String, alpha: Double, sign: Int, norm: String
            let budget: Budget, seed: Int, kept: [Int], scores: [Float]
        }
        let splitmix64: [Generator]
        let random: [Random]
        let uniform: [Uniform]
        let saliency: [Saliency]
        let received: [Received]
        let cosine: [Cosine]
        struct Diversity: Decodable {
            let n: Int, dim: Int, k: Int, beta: Double, scores: [Float], features: [Float], kept: [Int]
        }
        let inputs: [Input]
        let cases: [Case]
        let diversity: [Diversity]
    }

    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/gate/gate_golden.json")

    var golden: Golden {
        get throws { try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.url)) }
    }

    func assertClose(_ a: [Float], _ b: [Float], tol: Float, _ message: String = "",
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > tol {
            XCTFail("[\(i)] \(x) vs golden \(y) \(message)", file: file, line: line)
            return
        }
    }

    func testSplitMix64() throws {
        for g in try golden.splitmix64 {
            var gen = SplitMix64(seed: UInt64(g.seed)!)
            XCTAssertEqual(g.outputs.map { _ in gen.next() }, g.outputs.map { UInt64($0)! }, "seed \(g.seed)")
        }
    }

    func testBaselines() throws {
        for r in try golden.random {
            XCTAssertEqual(randomIndices(n: r.n, k: r.k, seed: UInt64(r.seed)!), r.kept, "n=\(r.n) k=\(r.k) seed=\(r.seed)")
        }
        for u in try golden.uniform {
            XCTAssertEqual(uniformIndices(n: u.n, k: u.k), u.kept, "n=\(u.n) k=\(u.k)")
        }
    }

    /// `atp-div`'s greedy DPP (incremental Cholesky) against the oracle's brute-force determinants,
    /// including a rank-2 case where the rest of the budget goes by score.
    func testDiversityAgainstOracle() throws {
        let cases = try golden.diversity
        XCTAssertGreaterThan(cases.count, 40)
        for c in cases {
            let kept = try selectDiverse(scores: c.scores, features: c.features, dim: c.dim, k: c.k, beta: c.beta)
            XCTAssertEqual(kept, c.kept, "n=\(c.n) dim=\(c.dim) k=\(c.k) beta=\(c.beta)")
        }
    }

    func testSignals() throws {
        for s in try golden.saliency {
            assertClose(saliency(clsAttention: s.cls_attention), s.expected, tol: 1e-7)
        }
        for r in try golden.received {
            assertClose(try saliencyFromAttention(r.attention, heads: r.heads, tokens: r.n), r.expected, tol: 1e-7)
        }
        for c in try golden.cosine {
            assertClose(try cosineRelevance(patchEmbeddings: c.patches, count: c.n, dim: c.p, text: c.text), c.expected, tol: 1e-6)
        }
    }

    func testGateRuns() throws {
        let golden = try golden
        XCTAssertEqual(golden.cases.count, 240)
        for c in golden.cases {
            let input = golden.inputs[c.input]
            let config = GateConfig(method: GateMethod(rawValue: c.method)!, alpha: c.alpha, sign: c.sign,
                                    norm: ScoreNormalization(rawValue: c.norm)!, budget: c.budget.value,
                                    seed: UInt64(c.seed))
            let d = try runGate(saliency: input.saliency, relevance: c.relevance ? input.relevance : nil, config: config)
            let label = "input \(c.input) rel=\(c.relevance) \(config)"
            XCTAssertEqual(d.kept, c.kept, label)
            assertClose(d.scores, c.scores, tol: 1e-6, label)
        }
    }
}
