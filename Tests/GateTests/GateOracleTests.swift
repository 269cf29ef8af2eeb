// The gate against a naive oracle written here (Double arithmetic, repeated arg-max selection,
// brute-force mass search, the floating-point uniform formula) over an exhaustive grid of small
// shapes, tie-heavy / constant / negative score vectors, both norms, both signs, three α values,
// and every budget kind including the edges (K = 0, K = N, K > N, r = 1, tiny r, m = 1).

import XCTest
@testable import Gate

/// Naive reference of DESIGN.md's gate definitions. Deliberately simple, not fast.
enum Oracle {
    static func norm(_ x: [Double], _ method: ScoreNormalization) -> [Double] {
        let lo = x.min()!, hi = x.max()!
        if lo == hi { return x.map { _ in 0 } }
        switch method {
        case .minmax:
            return x.map { ($0 - lo) / (hi - lo) }
        case .zscore:
            let mean = x.reduce(0, +) / Double(x.count)
            let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(x.count)  // ÷N
            let std = variance.squareRoot()
            return std == 0 ? x.map { _ in 0 } : x.map { ($0 - mean) / std }
        }
    }

    static func fuse(_ sal: [Float], _ rel: [Float]?, alpha: Double, sign: Int, _ method: ScoreNormalization) -> [Float] {
        let intra = norm(sal.map(Double.init), method)
        guard let rel else { return intra.map(Float.init) }
        let inter = norm(rel.map { Double(sign) * Double($0) }, method)
        return (0..<sal.count).map { Float(alpha * inter[$0] + (1 - alpha) * intra[$0]) }
    }

    static func count(_ budget: TokenBudget, _ s: [Float]) -> Int {
        let n = s.count
        switch budget {
        case .tokens(let k): return k < 1 ? 1 : (k > n ? n : k)
        case .keep(let r): return max(1, Int((r * Double(n) + 0.5).rounded(.down)))
        case .all: return n
        case .mass(let m):
            let lo = Double(s.min()!)
            let shifted = s.map { Double($0) - lo }.sorted(by: >)
            let total = shifted.reduce(0, +)
            if total == 0 { return 1 }
            for k in 1...n where shifted[0..<k].reduce(0, +) >= m * total { return k }
            XCTFail("mass oracle found no K")
            return n
        }
    }

    /// K times: take the not-yet-taken index with the largest score (first such index on ties).
    static func topK(_ s: [Float], _ k: Int) -> [Int] {
        var taken = [Bool](repeating: false, count: s.count)
        for _ in 0..<k {
            var best = -1
            for i in 0..<s.count where !taken[i] && (best < 0 || s[i] > s[best]) { best = i }
            taken[best] = true
        }
        return (0..<s.count).filter { taken[$0] }
    }

    static func uniform(_ n: Int, _ k: Int) -> [Int] {
        (0..<k).map { j in Int(((Double(j) + 0.5) * Double(n) / Double(k)).rounded(.down)) }
    }
}

final class GateOracleTests: XCTestCase {
    /// A tiny LCG for the test inputs only (Knuth MMIX constants), independent of the gate's generator.
    struct LCG {
        var state: UInt64
        mutating func unit() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
    }

    /// Score vectors of length n: ties from {0, 0.5, 1}, constant, negative/mixed, strictly decreasing.
    func vectors(_ n: Int, _ rng: inout LCG) -> [[Float]] {
        let ties = (0..<n).map { _ in Float([0, 0.5, 1][Int(rng.unit() * 3)]) }
        let constant = [Float](repeating: 0.3, count: n)
        let negative = (0..<n).map { _ in Float(-2 + 3 * rng.unit()) }
        let decreasing = (0..<n).map { Float(n - $0) * -0.25 }
        return [ties, constant, negative, decreasing]
    }

    func testGridAgainstOracle() throws {
        var rng = LCG(state: 12345)
        var checked = 0
        for n in [1, 2, 3, 5, 8, 17, 64] {
            let vs = vectors(n, &rng)
            let budgets: [TokenBudget] = [.tokens(0), .tokens(1), .tokens(n / 2), .tokens(n), .tokens(n + 3),
                                          .keep(1), .keep(1e-6), .keep(0.25), .keep(0.5),
                                          .mass(1), .mass(0.5), .mass(1e-9), .all]
            for sal in vs {
                for rel in (vs.map { Optional($0) } + [nil]) {
                    for norm in ScoreNormalization.allCases {
                        for sign in [1, -1] {
                            for alpha in [0.0, 0.3, 1.0] {
                                for method in GateMethod.allCases where method != .atpDiv {   // atp-div: GateGoldenTests
                                    if method == .text && rel == nil { continue }
                                    for budget in budgets {
                                        let config = GateConfig(method: method, alpha: alpha, sign: sign, norm: norm,
                                                                budget: budget, seed: UInt64(n))
                                        let d = try runGate(saliency: sal, relevance: rel, config: config)
                                        try check(d, sal: sal, rel: rel, config: config)
                                        checked += 1
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(checked, 40_000)
    }

    func check(_ d: GateDecision, sal: [Float], rel: [Float]?, config: GateConfig) throws {
        let n = sal.count
        let context = "n=\(n) \(config) sal=\(sal) rel=\(String(describing: rel))"
        let effectiveAlpha = config.method == .cls ? 0 : (config.method == .text ? 1 : config.alpha)
        let scores = Oracle.fuse(sal, rel, alpha: effectiveAlpha, sign: config.sign, config.norm)
        XCTAssertEqual(d.method, config.method)
        XCTAssertEqual(d.scores.count, n)
        for i in 0..<n where abs(Double(d.scores[i]) - Double(scores[i])) > 1e-6 {
            XCTFail("score[\(i)] \(d.scores[i]) vs oracle \(scores[i]): \(context)")
            return
        }
        let k = Oracle.count(config.budget, scores)
        let expected: [Int]
        switch config.method {
        case .atp, .cls, .text: expected = Oracle.topK(scores, k)
        case .uniform: expected = Oracle.uniform(n, k)
        case .full: expected = Array(0..<n)
        case .random: expected = randomIndices(n: n, k: k, seed: config.seed)  // determinism; goldens pin values
        case .atpDiv: XCTFail("atp-div is checked against its own oracle"); return
        }
        XCTAssertEqual(d.kept, expected, context)
        // Invariants of every selection.
        XCTAssertEqual(d.kept, d.kept.sorted(), context)
        XCTAssertEqual(Set(d.kept).count, d.kept.count, context)
        XCTAssertTrue(d.kept.allSatisfy { $0 >= 0 && $0 < n }, context)
        XCTAssertEqual(d.kept.count, config.method == .full ? n : k, context)
    }

    func testSignReversesRelevanceRanking() throws {
        var rng = LCG(state: 99)
        for n in [5, 17, 64] {
            let rel = (0..<n).map { _ in Float(rng.unit() - 0.3) }   // distinct with probability 1
            let sal = [Float](repeating: 1, count: n)
            for norm in ScoreNormalization.allCases {
                for k in [1, n / 2, n - 1] {
                    let up = try runGate(saliency: sal, relevance: rel,
                                         config: GateConfig(method: .text, sign: 1, norm: norm, budget: .tokens(k)))
                    let down = try runGate(saliency: sal, relevance: rel,
                                           config: GateConfig(method: .text, sign: -1, norm: norm, budget: .tokens(n - k)))
                    XCTAssertEqual(Set(up.kept).union(down.kept), Set(0..<n))   // complements: top-k of −x = bottom
                    XCTAssertTrue(Set(up.kept).isDisjoint(with: down.kept))
                    let ranked = (0..<n).sorted { rel[$0] > rel[$1] }
                    XCTAssertEqual(Set(up.kept), Set(ranked.prefix(k)))
                }
            }
        }
    }

    func testZScoreUsesPopulationStd() {
        var rng = LCG(state: 7)
        for n in [2, 3, 8, 17] {
            let x = (0..<n).map { _ in Float(rng.unit() * 10 - 5) }
            let z = normalize(x, method: .zscore).map(Double.init)
            // A population z-score has mean 0 and mean square exactly 1 (the sample std would give (N−1)/N).
            XCTAssertEqual(z.reduce(0, +) / Double(n), 0, accuracy: 1e-6)
            XCTAssertEqual(z.map { $0 * $0 }.reduce(0, +) / Double(n), 1, accuracy: 1e-5)
            let m = normalize(x, method: .minmax)
            XCTAssertEqual(m.min(), 0)
            XCTAssertEqual(m.max(), 1)
        }
    }

    func testSelectTopKMatchesOracleOnLargeTies() {
        var rng = LCG(state: 3)
        for n in [100, 577, 2000] {
            let s = (0..<n).map { _ in Float(Int(rng.unit() * 4)) * 0.25 }
            for k in [1, 7, n / 3, n] {
                XCTAssertEqual(selectTopK(scores: s, k: k), Oracle.topK(s, k))
            }
        }
    }

    func testSaliencyAndCosineAgainstOracle() throws {
        var rng = LCG(state: 11)
        for n in [1, 3, 17] {
            let a = (0..<n).map { _ in Float(rng.unit()) }
            let s = saliency(clsAttention: a)
            let total = a.map(Double.init).reduce(0, +)
            for i in 0..<n { XCTAssertEqual(Double(s[i]), Double(a[i]) / total, accuracy: 1e-7) }
            XCTAssertEqual(s.map(Double.init).reduce(0, +), 1, accuracy: 1e-6)
            for heads in [1, 3] {
                let att = (0..<(heads * n * n)).map { _ in Float(rng.unit()) }
                var col = [Double](repeating: 0, count: n)
                for h in 0..<heads { for q in 0..<n { for k in 0..<n { col[k] += Double(att[(h * n + q) * n + k]) } } }
                let colTotal = col.reduce(0, +)
                let r = try saliencyFromAttention(att, heads: heads, tokens: n)
                for i in 0..<n { XCTAssertEqual(Double(r[i]), col[i] / colTotal, accuracy: 1e-7) }
            }
            let p = 5
            let e = (0..<(n * p)).map { _ in Float(rng.unit() * 2 - 1) }
            let t = (0..<p).map { _ in Float(rng.unit() * 2 - 1) }
            let c = try cosineRelevance(patchEmbeddings: e, count: n, dim: p, text: t)
            for i in 0..<n {
                let row = (0..<p).map { Double(e[i * p + $0]) }
                let dot = zip(row, t).map { $0 * Double($1) }.reduce(0, +)
                let cos = dot / (row.map { $0 * $0 }.reduce(0, +).squareRoot() * t.map { Double($0 * $0) }.reduce(0, +).squareRoot())
                XCTAssertEqual(Double(c[i]), cos, accuracy: 1e-6)
            }
        }
    }
}
