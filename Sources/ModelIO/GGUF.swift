// A safe reader of GGUF files (versions 2 and 3, little-endian), following the GGUF spec in
// ggml-org/ggml `docs/gguf.md`: header (magic, version, tensor_count, kv_count), metadata
// key/values, tensor infos, then the aligned data section. Every count, length and offset is
// checked against the file size with overflow-checked arithmetic before it is used, so a
// corrupt or hostile file produces a thrown `ModelIOError` naming the field, never a trap.

import Foundation

/// A GGUF model file, memory-mapped read-only (through `MappedFile`, which unmaps on deinit).
///
/// Opening parses and validates the header, all metadata and all tensor infos; tensor data is
/// read (and dequantised to f32) on demand from the mapping, which lives as long as the object.
/// The mapping assumes the file is not truncated by another process while open.
public final class GGUFFile: @unchecked Sendable {
    /// The file that was opened.
    public let url: URL
    /// The GGUF version (2 or 3).
    public let version: UInt32
    /// All metadata key/values (`general.architecture`, `tokenizer.ggml.tokens`, …).
    public let metadata: [String: GGUFValue]
    /// The metadata keys in file order.
    public let metadataKeys: [String]
    /// The tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// The data alignment (`general.alignment`, default 32).
    public let alignment: Int
    /// The absolute byte position where the data section starts.
    public let dataOffset: Int
    /// The file size in bytes.
    public let fileSize: Int

    /// The read-only mapping (unmapped when the last reference goes).
    private let file: MappedFile
    private let base: UnsafeRawPointer
    private let tensorIndex: [String: Int]

    /// The tensor names in file order.
    public var tensorNames: [String] { tensors.map(\.name) }

    /// Opens and validates a GGUF file.
    ///
    /// - Parameter url: a `.gguf` file.
    /// - Throws: `ModelIOError` naming the file and the offending field: `.notFound`/`.unreadable`
    ///   when it cannot be opened, `.unsupported` for other versions or big-endian files,
    ///   `.malformed` for anything truncated, out of bounds, misaligned or inconsistent.
    public init(url: URL) throws {
        let file = try MappedFile(url: url)
        guard let base = file.base else {
            throw ModelIOError(.malformed, path: file.path, "file is empty (0 bytes), not a GGUF file")
        }
        var parser = GGUFParser(base: base, size: file.size, path: file.path)
        let parsed = try parser.parse()
        self.url = url
        self.file = file
        self.base = base
        self.fileSize = file.size
        self.version = parsed.version
        self.metadata = parsed.metadata
        self.metadataKeys = parsed.metadataKeys
        self.tensors = parsed.tensors
        self.alignment = parsed.alignment
        self.dataOffset = parsed.dataOffset
        self.tensorIndex = parsed.tensorIndex
    }

    /// The info of the tensor called `name`, or nil when the file has none.
    public func tensorInfo(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The tensor called `name`, dequantised to f32 in GGUF element order (`dims[0]` fastest,
    /// i.e. row-major over `shape`), bit-exact to gguf-py's `dequantize`.
    ///
    /// - Throws: `.missingTensor` naming the tensor when absent; `.unsupported` naming the tensor
    ///   and the type when the type cannot be dequantised.
    /// - Complexity: O(elementCount).
    public func tensorData(named name: String) throws -> [Float] {
        let info = try requireTensor(name)
        return try dequantizeRows(info, 0..<info.rowCount)
    }

    /// Rows `rows` of the tensor called `name` (a row is `dims[0]` elements), dequantised to f32;
    /// e.g. one token's embedding without converting the whole table.
    ///
    /// - Throws: as `tensorData(named:)`, and `.shapeMismatch` when `rows` is outside `0..<rowCount`.
    /// - Complexity: O(rows.count × rowLength).
    public func tensorRows(named name: String, _ rows: Range<Int>) throws -> [Float] {
        let info = try requireTensor(name)
        guard rows.lowerBound >= 0, rows.upperBound <= info.rowCount else {
            throw ModelIOError(.shapeMismatch, path: url.path,
                               "tensor '\(name)': rows \(rows.lowerBound)..<\(rows.upperBound) outside 0..<\(info.rowCount)")
        }
        return try dequantizeRows(info, rows)
    }

    /// Calls `body` with the raw (still quantised) bytes of the tensor called `name`.
    ///
    /// The buffer points into the mapping and must not escape `body`.
    /// - Throws: `.missingTensor` naming the tensor when absent, or what `body` throws.
    public func withTensorBytes<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let info = try requireTensor(name)
        return try body(UnsafeRawBufferPointer(start: base + info.fileOffset, count: info.byteCount))
    }

    /// The raw bytes of a tensor, valid as long as this `GGUFFile` lives (the mapping is its own).
    ///
    /// - Throws: `.missingTensor` naming the tensor when absent.
    public func unsafeTensorBytes(named name: String) throws -> UnsafeRawBufferPointer {
        let info = try requireTensor(name)
        return UnsafeRawBufferPointer(start: base + info.fileOffset, count: info.byteCount)
    }

    /// The bytes the tensors take in memory when those of a type in `kept` stay in their own type
    /// (2-D tensors whose rows split into whole blocks) and the rest become f32; saturating.
    public func residentFootprint(keeping kept: Set<GGMLType>) -> Int {
        var total = 0
        for info in tensors {
            let keep = kept.contains(info.type) && info.dims.count == 2 && info.type.keepsRows(of: info.rowLength)
            let (bytes, o1) = keep ? (info.byteCount, false) : info.elementCount.multipliedReportingOverflow(by: 4)
            let (sum, o2) = total.addingReportingOverflow(bytes)
            if o1 || o2 { return Int.max }
            total = sum
        }
        return total
    }

    /// The bytes all tensors would take as f32 (4 × total elements), saturating at `Int.max`.
    public func f32Footprint() -> Int {
        var total = 0
        for info in tensors {
            let (bytes, o1) = info.elementCount.multipliedReportingOverflow(by: 4)
            let (sum, o2) = total.addingReportingOverflow(bytes)
            if o1 || o2 { return Int.max }
            total = sum
        }
        return total
    }

    // MARK: typed metadata

    /// The string at `key`. - Throws: `.malformed` naming the key when absent or not a string.
    public func string(_ key: String) throws -> String {
        try typed(key, "a string") { $0.stringValue }
    }

    /// The integer at `key` (any GGUF integer type). - Throws: `.malformed` naming the key when absent or not an integer.
    public func int(_ key: String) throws -> Int {
        try typed(key, "an integer") { $0.intValue }
    }

    /// The float at `key` (float32 or float64). - Throws: `.malformed` naming the key when absent or not a float.
    public func float(_ key: String) throws -> Float {
        try typed(key, "a float") { $0.floatValue }
    }

    /// The bool at `key`. - Throws: `.malformed` naming the key when absent or not a bool.
    public func bool(_ key: String) throws -> Bool {
        try typed(key, "a bool") { $0.boolValue }
    }

    /// The array of strings at `key`. - Throws: `.malformed` naming the key when absent or of another type.
    public func stringArray(_ key: String) throws -> [String] {
        try typed(key, "an array of strings") { $0.stringArray }
    }

    /// The array of integers at `key`. - Throws: `.malformed` naming the key when absent or of another type.
    public func intArray(_ key: String) throws -> [Int] {
        try typed(key, "an array of integers") { $0.intArray }
    }

    /// The array of floats at `key`. - Throws: `.malformed` naming the key when absent or of another type.
    public func floatArray(_ key: String) throws -> [Float] {
        try typed(key, "an array of floats") { $0.floatArray }
    }

    // MARK: private

    private func typed<T>(_ key: String, _ expected: String, _ get: (GGUFValue) -> T?) throws -> T {
        guard let value = metadata[key] else {
            throw ModelIOError(.malformed, path: url.path, "missing metadata key '\(key)'")
        }
        guard let result = get(value) else {
            throw ModelIOError(.malformed, path: url.path, "metadata '\(key)' is \(value.typeName), expected \(expected)")
        }
        return result
    }

    private func requireTensor(_ name: String) throws -> GGUFTensorInfo {
        guard let info = tensorInfo(named: name) else {
            throw ModelIOError(.missingTensor, path: url.path, "no tensor named '\(name)'")
        }
        return info
    }

    private func dequantizeRows(_ info: GGUFTensorInfo, _ rows: Range<Int>) throws -> [Float] {
        guard info.type.canDequantize else {
            throw ModelIOError(.unsupported, path: url.path,
                               "tensor '\(info.name)' has type \(info.type.name), which cannot be dequantised (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K)")
        }
        // Both products are bounded by the validated tensor size, so they cannot overflow.
        let (blockSize, typeSize) = info.type.blockLayout
        let rowLength = info.rowLength
        let rowBytes = rowLength / blockSize * typeSize
        let count = rows.count * rowLength
        let source = UnsafeRawBufferPointer(start: base + info.fileOffset + rows.lowerBound * rowBytes,
                                            count: rows.count * rowBytes)
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let dst = buffer.baseAddress {
                GGUFDequant.run(info.type, source, count: count, into: dst)
            }
            initialized = count
        }
    }
}

/// The bounds-checked parse of a mapped GGUF file.
struct GGUFParser {
    struct Result {
        var version: UInt32
        var metadata: [String: GGUFValue]
        var metadataKeys: [String]
        var tensors: [GGUFTensorInfo]
        var tensorIndex: [String: Int]
        var alignment: Int
        var dataOffset: Int
    }

    /// Arrays nested deeper than this are rejected (a hostile file could otherwise exhaust the stack).
    static let maxArrayDepth = 16
    static let maxDims = 4
    static let defaultAlignment = 32

    let base: UnsafeRawPointer
    let size: Int
    let path: String
    var pos = 0

    init(base: UnsafeRawPointer, size: Int, path: String) {
        self.base = base
        self.size = size
        self.path = path
    }

    private var remaining: Int { size - pos }

    private func malformed(_ message: String) -> ModelIOError {
        ModelIOError(.malformed, path: path, message)
    }

    private func need(_ n: Int, _ what: () -> String) throws {
        if n > remaining {
            throw malformed("truncated: \(what()) needs \(n) bytes at byte \(pos) but the file ends at byte \(size)")
        }
    }

    private mutating func u8(_ what: () -> String) throws -> UInt8 {
        try need(1, what)
        defer { pos += 1 }
        return base.load(fromByteOffset: pos, as: UInt8.self)
    }

    private mutating func u16(_ what: () -> String) throws -> UInt16 {
        try need(2, what)
        defer { pos += 2 }
        return UInt16(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: UInt16.self))
    }

    private mutating func u32(_ what: () -> String) throws -> UInt32 {
        try need(4, what)
        defer { pos += 4 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: UInt32.self))
    }

    private mutating func u64(_ what: () -> String) throws -> UInt64 {
        try need(8, what)
        defer { pos += 8 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: UInt64.self))
    }

    private mutating func string(_ what: () -> String) throws -> String {
        let lengthAt = pos
        let length = try u64 { "\(what()) length" }
        guard length <= UInt64(remaining) else {
            throw malformed("\(what()): string length \(length) (at byte \(lengthAt)) exceeds the \(remaining) bytes left in the file")
        }
        let bytes = UnsafeRawBufferPointer(start: base + pos, count: Int(length))
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.utf8.elementsEqual(bytes) else {
            throw malformed("\(what()): string at byte \(pos) is not valid UTF-8")
        }
        pos += Int(length)
        return text
    }

    mutating func parse() throws -> Result {
        // header
        guard size >= 4 else {
            throw malformed("truncated: the GGUF magic needs 4 bytes but the file is \(size) bytes")
        }
        let magic = [UInt8](UnsafeRawBufferPointer(start: base, count: 4))
        guard magic == Array("GGUF".utf8) else {
            let shown = magic.map { (0x20..<0x7F).contains($0) ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
            throw malformed("bad magic '\(shown)' (expected 'GGUF'): not a GGUF file")
        }
        pos = 4
        let version = try u32 { "the header's version" }
        guard version == 2 || version == 3 else {
            let swapped = version.byteSwapped
            let hint = (swapped == 2 || swapped == 3) ? " (the file is big-endian, which is not supported)" : ""
            throw ModelIOError(.unsupported, path: path,
                               "unsupported GGUF version \(version)\(hint); this reader supports versions 2 and 3")
        }
        let tensorCount = try u64 { "the header's tensor_count" }
        let kvCount = try u64 { "the header's kv_count" }
        // A key/value takes at least 8 (key length) + 4 (type) + 1 bytes, a tensor info at least
        // 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset).
        let minKV: UInt64 = 13, minTensor: UInt64 = 24
        let (kvBytes, kvOverflow) = kvCount.multipliedReportingOverflow(by: minKV)
        guard !kvOverflow, kvBytes <= UInt64(remaining) else {
            throw malformed("header kv_count \(kvCount) is impossible: the file has \(remaining) bytes after the header and each key/value takes at least \(minKV)")
        }
        let (tensorBytes, tensorOverflow) = tensorCount.multipliedReportingOverflow(by: minTensor)
        guard !tensorOverflow, tensorBytes <= UInt64(remaining) else {
            throw malformed("header tensor_count \(tensorCount) is impossible: the file has \(remaining) bytes after the header and each tensor info takes at least \(minTensor)")
        }

        // metadata
        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        metadata.reserveCapacity(Int(kvCount))
        keys.reserveCapacity(Int(kvCount))
        for index in 0..<Int(kvCount) {
            let key = try string { "metadata key #\(index)" }
            guard metadata[key] == nil else {
                throw malformed("duplicate metadata key '\(key)' (key/value #\(index))")
            }
            let rawType = try u32 { "metadata '\(key)' value type" }
            let value = try value(rawType: rawType, depth: 0) { "metadata '\(key)'" }
            metadata[key] = value
            keys.append(key)
        }

        // alignment
        var alignment = Self.defaultAlignment
        if let value = metadata["general.alignment"] {
            guard let a = value.intValue else {
                throw malformed("metadata 'general.alignment' is \(value.typeName), expected an integer (uint32)")
            }
            guard a > 0, a & (a - 1) == 0 else {
                throw malformed("metadata 'general.alignment' = \(a) is not a power of two")
            }
            alignment = a
        }

        // tensor infos
        var tensors: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        tensors.reserveCapacity(Int(tensorCount))
        index.reserveCapacity(Int(tensorCount))
        var pending: [(name: String, dims: [Int], type: GGMLType, offset: UInt64, elements: Int, bytes: Int)] = []
        pending.reserveCapacity(Int(tensorCount))
        for i in 0..<Int(tensorCount) {
            let name = try string { "tensor info #\(i) name" }
            if let first = index[name] {
                throw malformed("duplicate tensor name '\(name)' (tensor infos #\(first) and #\(i))")
            }
            index[name] = i
            let nDims = try u32 { "tensor '\(name)' n_dims" }
            guard nDims <= UInt32(Self.maxDims) else {
                throw malformed("tensor '\(name)': n_dims \(nDims) exceeds the maximum of \(Self.maxDims)")
            }
            var dims: [Int] = []
            dims.reserveCapacity(Int(nDims))
            var elements = 1
            for d in 0..<Int(nDims) {
                let raw = try u64 { "tensor '\(name)' dims[\(d)]" }
                guard let dim = Int(exactly: raw) else {
                    throw malformed("tensor '\(name)': dims[\(d)] = \(raw) is too large")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow else {
                    throw malformed("tensor '\(name)': element count of dims \(dims + [dim]) overflows")
                }
                dims.append(dim)
                elements = product
            }
            let rawType = try u32 { "tensor '\(name)' type" }
            guard let type = GGMLType(rawValue: rawType) else {
                throw malformed("tensor '\(name)': unknown ggml type id \(rawType)")
            }
            let offset = try u64 { "tensor '\(name)' offset" }
            let (blockSize, typeSize) = type.blockLayout
            let rowLength = dims.first ?? 1
            guard rowLength % blockSize == 0 else {
                throw malformed("tensor '\(name)' (\(type.name)): dims[0] = \(rowLength) is not a multiple of the block size \(blockSize)")
            }
            let (bytes, bytesOverflow) = (elements / blockSize).multipliedReportingOverflow(by: typeSize)
            guard !bytesOverflow else {
                throw malformed("tensor '\(name)' (\(type.name)): byte size of dims \(dims) overflows")
            }
            pending.append((name, dims, type, offset, elements, bytes))
        }

        // data section
        let infoEnd = pos
        let (padded, padOverflow) = infoEnd.addingReportingOverflow(alignment - 1)
        guard !padOverflow else {
            throw malformed("metadata 'general.alignment' = \(alignment) overflows the data section start")
        }
        let dataOffset = padded / alignment * alignment
        for t in pending {
            guard t.offset % UInt64(alignment) == 0 else {
                throw malformed("tensor '\(t.name)': data offset \(t.offset) is not a multiple of the alignment \(alignment)")
            }
            let start = Int(exactly: t.offset).flatMap { offset -> Int? in
                let (sum, overflow) = dataOffset.addingReportingOverflow(offset)
                return overflow ? nil : sum
            }
            let end = start.flatMap { s -> Int? in
                let (sum, overflow) = s.addingReportingOverflow(t.bytes)
                return overflow ? nil : sum
            }
            guard let start, let end, end <= size else {
                let shownStart = start.map(String.init) ?? "\(dataOffset) + \(t.offset)"
                throw malformed("tensor '\(t.name)' data [offset \(shownStart), \(t.bytes) bytes] extends past the end of the file (\(size) bytes)")
            }
            tensors.append(GGUFTensorInfo(name: t.name, dims: t.dims, type: t.type, offset: Int(t.offset),
                                          fileOffset: start, elementCount: t.elements, byteCount: t.bytes))
        }
        return Result(version: version, metadata: metadata, metadataKeys: keys, tensors: tensors,
                      tensorIndex: index, alignment: alignment, dataOffset: dataOffset)
    }

    /// Reads one value of wire type `rawType`; `what` names it for messages (`metadata 'k'[3]`).
    private mutating func value(rawType: UInt32, depth: Int, _ what: () -> String) throws -> GGUFValue {
        guard let type = GGUFWireType(rawValue: rawType) else {
            throw malformed("\(what()): unknown value type \(rawType)")
        }
        switch type {
        case .uint8: return .uint8(try u8(what))
        case .int8: return .int8(Int8(bitPattern: try u8(what)))
        case .uint16: return .uint16(try u16(what))
        case .int16: return .int16(Int16(bitPattern: try u16(what)))
        case .uint32: return .uint32(try u32(what))
        case .int32: return .int32(Int32(bitPattern: try u32(what)))
        case .float32: return .float32(Float(bitPattern: try u32(what)))
        case .uint64: return .uint64(try u64(what))
        case .int64: return .int64(Int64(bitPattern: try u64(what)))
        case .float64: return .float64(Double(bitPattern: try u64(what)))
        case .bool:
            let at = pos
            let byte = try u8(what)
            guard byte <= 1 else {
                throw malformed("\(what()): bool byte \(byte) at byte \(at) is neither 0 nor 1")
            }
            return .bool(byte == 1)
        case .string:
            return .string(try string(what))
        case .array:
            guard depth < Self.maxArrayDepth else {
                throw malformed("\(what()): arrays nested deeper than \(Self.maxArrayDepth) levels")
            }
            let rawElementType = try u32 { "\(what()) array element type" }
            guard let elementType = GGUFWireType(rawValue: rawElementType) else {
                throw malformed("\(what()): unknown array element type \(rawElementType)")
            }
            let countAt = pos
            let count = try u64 { "\(what()) array count" }
            let (minBytes, overflow) = count.multipliedReportingOverflow(by: UInt64(elementType.minimumSize))
            guard !overflow, minBytes <= UInt64(remaining) else {
                throw malformed("\(what()): array count \(count) (at byte \(countAt)) of \(elementType) needs at least \(overflow ? "more than \(UInt64.max)" : "\(minBytes)") bytes but \(remaining) are left in the file")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for i in 0..<Int(count) {
                items.append(try value(rawType: rawElementType, depth: depth + 1) { "\(what())[\(i)]" })
            }
            return .array(items)
        }
    }
}
