import XCTest
import CKernels
@testable import Tensor

/// The kernels over resident (quantised and 16-bit) weights against double-precision oracles, at
/// the AVX2 level and the scalar one; `WeightMatrix` segments; the precision fallbacks.
final class NativeKernelTests: XCTestCase {
    private struct Rng {
        var s: UInt64
        mutating func next() -> UInt64 { s = s &* 6364136223846793005 &+ 1442695040888963407; return s >> 11 }
        mutating func float() -> Float { Float(Int(next() % 2_000_001) - 1_000_000) / 1_000_000 }
    }

    override func tearDown() { CPUKernels.setLevel(nil) }

    /// Rows of random bytes in `format`, with finite scales/offsets/values of real-file magnitudes.
    private func randomRows(_ format: WeightFormat, rows: Int, cols: Int, seed: UInt64) -> [UInt8] {
        var g = Rng(s: seed)
        let rb = format.rowBytes(cols: cols)!
        var bytes = (0..<(rows * rb)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
        func put16(_ v: UInt16, at i: Int) { bytes[i] = UInt8(v & 0xFF); bytes[i + 1] = UInt8(v >> 8) }
        switch format {
        case .f32:
            for i in stride(from: 0, to: bytes.count, by: 4) {
                let v = g.float().bitPattern
                for k in 0..<4 { bytes[i + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
            }
        case .f16:
            for i in stride(from: 0, to: bytes.count, by: 2) { put16(UInt16(g.next() & 0x8000) | 0x3000 | UInt16(g.next() & 0x7FF), at: i) }
        case .bf16:
            for i in stride(from: 0, to: bytes.count, by: 2) { put16(atp_f32_to_bf16(g.float()), at: i) }
        case .q8_0, .q4_0, .q4_1:
            for b in stride(from: 0, to: bytes.count, by: format.blockBytes) {
                put16(0x2000 | UInt16(g.next() & 0x3FF), at: b)                       // d ≈ 0.008–0.016
                if format == .q4_1 { put16(0xA000 | UInt16(g.next() & 0x3FF), at: b + 2) }   // m ≈ −0.008…
            }
        }
        return bytes
    }

    private func matrix(_ format: WeightFormat, rows: Int, cols: Int, seed: UInt64) -> WeightMatrix {
        let bytes = randomRows(format, rows: rows, cols: cols, seed: seed)
        return bytes.withUnsafeBytes { WeightMatrix(cols: cols, parts: [.init(format: format, rows: rows, cols: cols, bytes: $0)]) }
    }

    /// x as the block formats see it: quantised to 8 bits per 32-element block.
    private func quantised(_ x: [Float]) -> [Double] {
        var blocks = [atp_q8x_block](repeating: atp_q8x_block(), count: x.count / 32)
        atp_quantize_q8x(x, Int32(x.count), &blocks)
        return (0..<x.count).map { i in
            withUnsafeBytes(of: blocks[i / 32].q) { Double(blocks[i / 32].d) * Double($0.load(fromByteOffset: i % 32, as: Int8.self)) }
        }
    }

    func testActivationQuantisationRoundsWithinHalfAStep() {
        var g = Rng(s: 5)
        var x = (0..<96).map { _ in g.float() * 3 }
        x[40] = 0; for i in 64..<96 { x[i] = 0 }   // an all-zero block gets d = 0
        var blocks = [atp_q8x_block](repeating: atp_q8x_block(), count: 3)
        atp_quantize_q8x(x, 96, &blocks)
        let back = quantised(x)
        for b in 0..<3 {
            let amax = x[(b * 32)..<(b * 32 + 32)].map(abs).max()!
            XCTAssertEqual(blocks[b].d, amax / 127, accuracy: 1e-9)
            let qs = withUnsafeBytes(of: blocks[b].q) { Array($0.bindMemory(to: Int8.self)) }
            XCTAssertEqual(blocks[b].s, blocks[b].d * Float(qs.reduce(0) { $0 + Int($1) }), accuracy: 1e-4)
            XCTAssertLessThanOrEqual(qs.map { abs(Int($0)) }.max()!, 127)
            for i in (b * 32)..<(b * 32 + 32) { XCTAssertLessThanOrEqual(abs(back[i] - Double(x[i])), Double(blocks[b].d) / 2 + 1e-6) }
        }
        XCTAssertEqual(blocks[2].d, 0)
    }

    /// GEMV over each format equals Σ dequant(w)·x' in double (x' = x, or x quantised for the block
    /// formats): the integer sums are exact, so only float rounding remains (≤ 1e-5 of Σ|terms|).
    func testGEMVMatchesDoubleOracleEveryFormatAndLevel() {
        let rows = 37, cols = 32 * 29   // rows not a multiple of the split; cols past the unrolled loops
        var g = Rng(s: 9)
        let x = (0..<cols).map { _ in g.float() }
        for format in WeightFormat.allCases {
            let m = matrix(format, rows: rows, cols: cols, seed: UInt64(format.rawValue) + 1)
            let w = m.tensor.data   // dequantised (checked bit-exact against gguf-py in GGUFTests)
            let xr = format.isBlockQuantised ? quantised(x) : x.map(Double.init)
            for level in [CPUKernels.Level.avx2, .scalar] {
                CPUKernels.setLevel(level)
                var y = [Float](repeating: 0.5, count: rows)
                y.withUnsafeMutableBufferPointer { nativeGEMV(m, x: x, into: $0.baseAddress!, beta: 2) }
                for r in 0..<rows {
                    var ref = 0.0, mag = 0.0
                    for c in 0..<cols { ref += Double(w[r * cols + c]) * xr[c]; mag += abs(Double(w[r * cols + c]) * xr[c]) }
                    XCTAssertEqual(Double(y[r]), ref + 1, accuracy: 1e-5 * mag + 1e-6, "\(format) row \(r) at \(CPUKernels.level)")
                }
            }
        }
    }

    /// Several activation rows run as dequantised panels through sgemm: equal to f32 GEMM over the
    /// dequantised matrix, with strides and beta, over a matrix of three formats and more rows than a panel.
    func testPrefillPanelsOverMixedSegments() {
        let cols = 64
        let q4 = randomRows(.q4_0, rows: 20_000, cols: cols, seed: 1), q8 = randomRows(.q8_0, rows: 3, cols: cols, seed: 2)
        let f = randomRows(.f32, rows: 5, cols: cols, seed: 3)
        let m = q4.withUnsafeBytes { a in q8.withUnsafeBytes { b in f.withUnsafeBytes { c in
            WeightMatrix(cols: cols, parts: [.init(format: .q4_0, rows: 20_000, cols: cols, bytes: a),
                                             .init(format: .q8_0, rows: 3, cols: cols, bytes: b),
                                             .init(format: .f32, rows: 5, cols: cols, bytes: c)])
        }}}
        XCTAssertEqual(m.segments.map(\.format), [.q4_0, .q8_0, .f32])
        XCTAssertEqual(m.segments.map(\.firstRow), [0, 20_000, 20_003])
        XCTAssertEqual(m.rows, 20_008)
        XCTAssertGreaterThan(m.rows * cols, nativePanelFloats, "more rows than one panel")
        let t = 5, ldx = cols + 3, ldy = m.rows + 2
        var g = Rng(s: 4)
        let x = (0..<(t * ldx)).map { _ in g.float() }
        let w = m.tensor.data
        var y = [Float](repeating: 1, count: t * ldy)
        y.withUnsafeMutableBufferPointer { linearRows(x, rows: t, ldx: ldx, weight: m, into: $0.baseAddress!, ldy: ldy, beta: 1) }
        for r in 0..<t {
            for o in Array(stride(from: 0, to: m.rows, by: 97)) + [m.rows - 1] {
                var ref = 1.0
                for c in 0..<cols { ref += Double(x[r * ldx + c]) * Double(w[o * cols + c]) }
                XCTAssertEqual(Double(y[r * ldy + o]), ref, accuracy: 1e-4, "row \(r), output \(o)")
            }
            XCTAssertEqual(y[r * ldy + m.rows], 1, "the stride's padding is untouched")
        }
    }

    func testRowOrderSegmentsAndDequantisedRows() {
        let cols = 32
        let a = randomRows(.q8_0, rows: 4, cols: cols, seed: 7), b = randomRows(.q8_0, rows: 2, cols: cols, seed: 8)
        let plain = a.withUnsafeBytes { WeightMatrix(cols: cols, parts: [.init(format: .q8_0, rows: 4, cols: cols, bytes: $0)]) }.tensor.data
        let m = a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in
            WeightMatrix(cols: cols, parts: [.init(format: .q8_0, rows: 4, cols: cols, bytes: pa, rowOrder: [2, 0, 3, 1]),
                                             .init(format: .q8_0, rows: 2, cols: cols, bytes: pb)])
        }}
        XCTAssertEqual(m.segments.count, 1, "consecutive parts of one format share a segment")
        XCTAssertFalse(m.isF32)
        XCTAssertEqual(m.residentBytes, 6 * 34)
        let got = m.tensor.data
        for (i, src) in [2, 0, 3, 1].enumerated() {
            XCTAssertEqual(Array(got[(i * cols)..<((i + 1) * cols)]), Array(plain[(src * cols)..<((src + 1) * cols)]))
        }
        var row = [Float](repeating: 0, count: cols)
        row.withUnsafeMutableBufferPointer { m.dequantize(rows: 4..<5, into: $0.baseAddress!) }
        XCTAssertEqual(row, Array(got[(4 * cols)..<(5 * cols)]))
        let f = WeightMatrix(Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]))
        XCTAssertTrue(f.isF32)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: f.pointer, count: 6)), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(f.residentBytes, 24)
    }

    func testPrecisionFallsBackWithOneNoteWhereTheCPUCannot() {
        XCTAssertEqual(Precision.resolve(.f32).precision, .f32)
        XCTAssertNil(Precision.resolve(.f32).note)
        if CPUKernels.bestLevel >= .avx2 {
            XCTAssertEqual(Precision.resolve(.native).precision, .native)
            XCTAssertNil(Precision.resolve(.native).note)
        }
        CPUKernels.setLevel(.scalar)
        XCTAssertEqual(CPUKernels.level, .scalar)
        let r = Precision.resolve(.native)
        XCTAssertEqual(r.precision, .f32)
        XCTAssertTrue(r.note?.contains("runs as f32") ?? false, r.note ?? "no note")
        CPUKernels.setLevel(nil)
        XCTAssertEqual(CPUKernels.level, CPUKernels.bestLevel)
        let bf = Precision.resolve(.bf16)
        XCTAssertEqual(bf.precision, .f32, "no bf16 GEMMs yet")
        XCTAssertTrue(bf.note?.contains("--precision bf16 runs as f32") ?? false, bf.note ?? "no note")
    }

    /// The "fails loudly" check of issue 10: GEMM speed must follow the CPU's instruction sets, so on
    /// a CPU with AVX2 or AVX-512 OpenBLAS must not run a generic kernel set (Tools/test.sh and
    /// `atp` set OPENBLAS_CORETYPE from cpuid where the library's own table fails).
    func testOpenBLASRunsVectorKernelsOnAVX2AndAVX512() throws {
        let f = CPUKernels.features
        guard let wanted = BLAS.coreType(for: f) else {
            throw XCTSkip("this CPU has no AVX2/FMA (\(f)): nothing to check")
        }
        XCTAssertTrue(BLAS.isVectorCore(BLAS.coreName),
                      "OpenBLAS runs its generic \(BLAS.coreName) kernels on a CPU with \(f); run with OPENBLAS_CORETYPE=\(wanted)")
        XCTAssertNil(BLAS.betterCoreType)
        XCTAssertEqual(BLAS.coreType(for: [.avx2, .fma]), "Haswell")
        XCTAssertEqual(BLAS.coreType(for: [.avx2, .fma, .avx512f, .avx512bw, .avx512vl, .avx512dq]), "SkylakeX")
        XCTAssertEqual(BLAS.coreType(for: [.avx2, .fma, .avx512f, .avx512bw, .avx512vl, .avx512dq, .avx512bf16]), "Cooperlake")
        XCTAssertNil(BLAS.coreType(for: [.f16c]))
        XCTAssertFalse(BLAS.isVectorCore("Prescott"))
    }
}
