import XCTest
import Foundation
@testable import Tensor

/// Kernels against naive Double-precision oracles, over shapes that include the SIMD tails.
final class KernelTests: XCTestCase {
    struct LCG { var s: UInt64; mutating func next() -> Float { s = s &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: s >> 11) % 2_000_001) / 1_000_000 - 1 } }

    func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var g = LCG(s: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in g.next() * scale })
    }

    func testExpAndErfAccuracy() {
        var xs: [Float] = []
        var x: Float = -87
        while x < 88 { xs.append(x); x += 0.0137 }
        var buf = xs
        buf.withUnsafeMutableBufferPointer { mapInPlace($0.baseAddress!, count: $0.count) { vexp($0) } }
        for (i, v) in xs.enumerated() {
            let ref = Foundation.exp(Double(v))
            XCTAssertEqual(Double(buf[i]), ref, accuracy: ref * 3e-7, "exp(\(v))")
        }
        var e = xs.map { $0 / 10 }
        let e0 = e
        e.withUnsafeMutableBufferPointer { mapInPlace($0.baseAddress!, count: $0.count) { verf($0) } }
        for (i, v) in e0.enumerated() { XCTAssertEqual(Double(e[i]), Foundation.erf(Double(v)), accuracy: 4e-7, "erf(\(v))") }
    }

    func testActivationsMatchDefinitions() {
        let t = randomTensor([7, 37], seed: 3, scale: 6)
        let defs: [(Activation, (Double) -> Double)] = [
            (.gelu, { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }),
            (.quickGelu, { $0 / (1 + Foundation.exp(-1.702 * $0)) }),
            (.geluTanh, { 0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }),
            (.silu, { $0 / (1 + Foundation.exp(-$0)) }),
            (.relu, { max(0, $0) }),
        ]
        for (act, f) in defs {
            var y = t
            activate(&y, act)
            for i in 0..<t.count {
                XCTAssertEqual(Double(y.data[i]), f(Double(t.data[i])), accuracy: 2e-6, "\(act) at \(t.data[i])")
            }
        }
    }

    func testLinearAgainstNaive() {
        for (t, i, o) in [(1, 1, 1), (3, 5, 7), (17, 33, 19)] {
            let x = randomTensor([t, i], seed: 1), w = randomTensor([o, i], seed: 2), b = randomTensor([o], seed: 3)
            let y = linear(x, weight: w, bias: b)
            XCTAssertEqual(y.shape, [t, o])
            for r in 0..<t { for c in 0..<o {
                var s = Double(b.data[c])
                for k in 0..<i { s += Double(x.data[r * i + k]) * Double(w.data[c * i + k]) }
                XCTAssertEqual(Double(y.data[r * o + c]), s, accuracy: 1e-5)
            }}
        }
    }

    func testLayerNormAndRMSNorm() {
        let x = randomTensor([5, 23], seed: 9, scale: 3), g = randomTensor([23], seed: 10), b = randomTensor([23], seed: 11)
        var y = x
        layerNorm(&y, weight: g, bias: b, eps: 1e-5)
        var z = x
        rmsNorm(&z, weight: g, eps: 1e-6)
        for r in 0..<5 {
            let row = x.row(r).map(Double.init)
            let mean = row.reduce(0, +) / 23
            let v = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 23
            let ms = row.map { $0 * $0 }.reduce(0, +) / 23
            for j in 0..<23 {
                XCTAssertEqual(Double(y.data[r * 23 + j]), (row[j] - mean) / (v + 1e-5).squareRoot() * Double(g.data[j]) + Double(b.data[j]), accuracy: 1e-5)
                XCTAssertEqual(Double(z.data[r * 23 + j]), row[j] / (ms + 1e-6).squareRoot() * Double(g.data[j]), accuracy: 1e-5)
            }
        }
    }

    /// Attention (grouped-query, causal with offset, mean probabilities) against a naive loop.
    func testAttentionAgainstNaive() {
        for (tq, tk, heads, kvHeads, hd, causal) in [(5, 5, 3, 3, 7, false), (4, 9, 4, 2, 5, true), (1, 6, 6, 1, 3, true), (19, 19, 2, 2, 16, false)] {
            let q = randomTensor([tq, heads * hd], seed: 21, scale: 2)
            let k = randomTensor([tk, kvHeads * hd], seed: 22, scale: 2)
            let v = randomTensor([tk, kvHeads * hd], seed: 23)
            let off = tk - tq
            let a = attention(q: q, k: k, v: v, heads: heads, kvHeads: kvHeads, headDim: hd,
                              causalOffset: causal ? off : nil, returnMeanProbs: true)
            var meanRef = [Double](repeating: 0, count: tq * tk)
            for h in 0..<heads {
                let kh = h / (heads / kvHeads)
                for i in 0..<tq {
                    let valid = causal ? off + i + 1 : tk
                    var s = [Double](repeating: -.infinity, count: tk)
                    for j in 0..<valid {
                        var d = 0.0
                        for c in 0..<hd { d += Double(q.data[i * heads * hd + h * hd + c]) * Double(k.data[j * kvHeads * hd + kh * hd + c]) }
                        s[j] = d / Double(hd).squareRoot()
                    }
                    let m = s.max()!
                    let e = s.map { $0 == -.infinity ? 0 : Foundation.exp($0 - m) }
                    let z = e.reduce(0, +)
                    for j in 0..<tk { meanRef[i * tk + j] += e[j] / z / Double(heads) }
                    for c in 0..<hd {
                        var o = 0.0
                        for j in 0..<tk { o += e[j] / z * Double(v.data[j * kvHeads * hd + kh * hd + c]) }
                        XCTAssertEqual(Double(a.output.data[i * heads * hd + h * hd + c]), o, accuracy: 1e-5)
                    }
                }
            }
            for i in 0..<(tq * tk) { XCTAssertEqual(Double(a.meanProbs!.data[i]), meanRef[i], accuracy: 1e-6) }
        }
    }

    /// The decode GEMV against a naive loop, with beta, over sizes around the 64-wide unroll and the tail.
    func testGEMVAgainstNaive() {
        for (rows, cols) in [(1, 1), (3, 17), (70, 64), (129, 200), (5, 897), (1001, 96)] {
            let w = randomTensor([rows, cols], seed: 31), x = randomTensor([cols], seed: 32), y0 = randomTensor([rows], seed: 33)
            for beta: Float in [0, 1] {
                var y = y0.data
                w.data.withUnsafeBufferPointer { wp in x.data.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                    gemv(wp.baseAddress!, rows: rows, cols: cols, x: xp.baseAddress!, into: yp.baseAddress!, beta: beta)
                }}}
                for r in 0..<rows {
                    var s = Double(beta) * Double(y0.data[r])
                    for c in 0..<cols { s += Double(w.data[r * cols + c]) * Double(x.data[c]) }
                    XCTAssertEqual(Double(y[r]), s, accuracy: 1e-4, "\(rows)×\(cols) beta \(beta) row \(r)")
                }
            }
        }
    }

    /// Every part of every loop runs exactly once, whether workers spin or have parked in between.
    func testHotPoolRunsEachPartOnce() {
        let pool = HotPool(spinIterations: 50)   // park after a few microseconds: exercises the wake-up path
        for loop in 0..<3000 {
            let parts = 1 + loop % 9
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: parts)
            counts.initialize(repeating: 0, count: parts)
            let slots = UncheckedSendable(counts)
            let ran = pool.run(parts: parts, helpers: 1 + loop % 3) { p in slots.value[p] += 1 }
            XCTAssertTrue(ran)
            for p in 0..<parts where counts[p] != 1 { XCTFail("loop \(loop): part \(p) ran \(counts[p]) times") }
            counts.deallocate()
            if loop % 500 == 0 { usleep(2000) }   // let the workers park
        }
        XCTAssertEqual(pool.workers, 3)
    }

    /// A loop started from inside a running loop (or while another thread's loop runs) is refused, and
    /// `Parallel.forEachChunk(hot:)` then runs it another way: the sums stay exact under contention.
    func testHotPoolRefusesNestedAndConcurrentLoops() {
        let pool = HotPool()
        var nested: Bool?
        XCTAssertTrue(pool.run(parts: 1, helpers: 1) { _ in nested = pool.run(parts: 2, helpers: 1) { _ in } })
        XCTAssertEqual(nested, false)

        let n = 100_000
        let input = (0..<n).map { Float($0 % 17) }
        let expected = input.reduce(0, +)
        let results = UnsafeMutablePointer<Float>.allocate(capacity: 8)
        results.initialize(repeating: 0, count: 8)
        defer { results.deallocate() }
        let out = UncheckedSendable(results)
        input.withUnsafeBufferPointer { ip in
            let inp = UncheckedSendable(ip)
            DispatchQueue.concurrentPerform(iterations: 8) { t in
                var total: Float = 0
                for _ in 0..<50 {
                    let partial = UnsafeMutablePointer<Float>.allocate(capacity: n)
                    let pp = UncheckedSendable(partial)
                    Parallel.forEachChunk(n, minChunk: 64, hot: true) { range in
                        for i in range { pp.value[i] = inp.value[i] }
                    }
                    total = 0
                    for i in 0..<n { total += partial[i] }
                    partial.deallocate()
                }
                out.value[t] = total
            }
        }
        for t in 0..<8 { XCTAssertEqual(results[t], expected, "thread \(t)") }
    }

    /// Weight matrices copy their parts in order into huge-page-aligned storage.
    func testWeightMatrixConcatenates() {
        let a = randomTensor([3, 5], seed: 41), b = randomTensor([2, 5], seed: 42)
        let m = WeightMatrix(concatenating: [a, b])
        XCTAssertEqual(m.rows, 5)
        XCTAssertEqual(m.cols, 5)
        XCTAssertEqual(Int(bitPattern: m.pointer) % WeightMatrix.alignment, 0)
        XCTAssertEqual(m.tensor.data, a.data + b.data)
        let v = WeightMatrix(Tensor(shape: [4], data: [1, 2, 3, 4]))
        XCTAssertEqual(v.rows, 4)
        XCTAssertEqual(v.cols, 1)
    }
}
