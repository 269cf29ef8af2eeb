import Foundation
import Tensor

/// A `.safetensors` file, memory-mapped and validated at open.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`),
/// then the data section; offsets are relative to the data section.
/// Every entry is checked at open: offsets inside the file, `begin ≤ end`,
/// and `shape × dtype size == end − begin`.
public final class SafetensorsFile: @unchecked Sendable {
    /// One tensor's header entry.
    public struct Entry: Sendable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        /// Absolute byte range in the file.
        public let byteRange: Range<Int>
    }

    /// Largest header accepted (the format's own readers cap it at 100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// Element sizes of the dtypes the format defines.
    static let dtypeSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U64": 8, "I32": 4, "U32": 4,
        "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    ]

    public let url: URL
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let file: MappedFile

    /// Opens and validates `url`.
    /// - Throws: `ModelIOError` naming the file and, where it applies, the tensor.
    public init(url: URL) throws {
        self.url = url
        file = try MappedFile(url: url)
        let path = url.path
        guard file.size >= 8 else {
            throw ModelIOError(.malformed, path: path, "truncated: \(file.size) bytes, shorter than the 8-byte header length")
        }
        let n64 = file.bytes(0, 8).loadUnaligned(as: UInt64.self).littleEndian
        guard n64 <= UInt64(file.size - 8) else {
            throw ModelIOError(.malformed, path: path, "header length \(n64) exceeds the file size (\(file.size) bytes); the file is truncated or not safetensors")
        }
        guard n64 <= UInt64(Self.maxHeaderBytes) else {
            throw ModelIOError(.malformed, path: path, "header length \(n64) exceeds the \(Self.maxHeaderBytes)-byte limit")
        }
        let n = Int(n64)
        let dataStart = 8 + n
        let dataSize = file.size - dataStart
        let headerBytes = Data(file.bytes(8, n))
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw ModelIOError(.malformed, path: path, "header is not valid JSON")
        }
        guard let dict = json as? [String: Any] else {
            throw ModelIOError(.malformed, path: path, "header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                if let m = value as? [String: Any] {
                    for (k, v) in m { metadata[k] = "\(v)" }
                }
                continue
            }
            guard let e = value as? [String: Any],
                  let dtype = e["dtype"] as? String,
                  let shapeAny = e["shape"] as? [Any],
                  let offs = e["data_offsets"] as? [Any], offs.count == 2 else {
                throw ModelIOError(.malformed, path: path, "tensor '\(name)': entry needs dtype, shape and two data_offsets")
            }
            guard let esize = Self.dtypeSizes[dtype] else {
                throw ModelIOError(.unsupported, path: path, "tensor '\(name)': unknown dtype '\(dtype)'")
            }
            var shape: [Int] = []
            for d in shapeAny {
                guard let v = (d as? NSNumber)?.intValue, v >= 0 else {
                    throw ModelIOError(.malformed, path: path, "tensor '\(name)': bad shape \(shapeAny)")
                }
                shape.append(v)
            }
            guard let b = (offs[0] as? NSNumber)?.intValue, let en = (offs[1] as? NSNumber)?.intValue,
                  b >= 0, en >= b else {
                throw ModelIOError(.malformed, path: path, "tensor '\(name)': bad data_offsets \(offs)")
            }
            guard en <= dataSize else {
                throw ModelIOError(.malformed, path: path,
                    "tensor '\(name)' data [\(b), \(en)) extends past the end of the data section (\(dataSize) bytes); the file is truncated or its header lies")
            }
            var elements = 1
            for d in shape {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw ModelIOError(.malformed, path: path, "tensor '\(name)': shape \(shape) overflows") }
                elements = p
            }
            let (bytes, o) = elements.multipliedReportingOverflow(by: esize)
            guard !o, bytes == en - b else {
                throw ModelIOError(.shapeMismatch, path: path,
                    "tensor '\(name)': shape \(shape) × \(dtype) needs \(bytes) bytes but data_offsets span \(en - b)")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, byteRange: (dataStart + b)..<(dataStart + en))
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// The names of all tensors.
    public var names: [String] { entries.keys.sorted() }

    /// Loads a tensor, converted to f32.
    /// - Throws: `ModelIOError` when the name is absent or the dtype is not F32/F16/BF16.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else {
            throw ModelIOError(.missingTensor, path: url.path, "missing tensor '\(name)'")
        }
        guard let dt = StoredDType(rawValue: e.dtype) else {
            throw ModelIOError(.unsupported, path: url.path, "tensor '\(name)' has dtype \(e.dtype); expected F32, F16 or BF16")
        }
        let count = e.shape.reduce(1, *)
        let raw = file.bytes(e.byteRange.lowerBound, e.byteRange.count)
        return Tensor(shape: e.shape, data: convertToF32(raw, dtype: dt, count: count))
    }
}

extension SafetensorsFile {
    /// A tensor's stored bytes and their `WeightFormat` (F32, F16, BF16; nil for other dtypes),
    /// valid as long as this file lives (the mapping is its own).
    ///
    /// - Throws: `.missingTensor` when the name is absent.
    public func unsafeRawTensor(_ name: String) throws -> (format: WeightFormat?, shape: [Int], bytes: UnsafeRawBufferPointer) {
        guard let e = entries[name] else {
            throw ModelIOError(.missingTensor, path: url.path, "missing tensor '\(name)'")
        }
        let format: WeightFormat? = e.dtype == "F32" ? .f32 : e.dtype == "F16" ? .f16 : e.dtype == "BF16" ? .bf16 : nil
        return (format, e.shape, file.bytes(e.byteRange.lowerBound, e.byteRange.count))
    }
}

/// All weights of an HF model folder: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`.
public struct WeightFiles: @unchecked Sendable {
    /// Tensor name → the file holding it.
    public let location: [String: SafetensorsFile]
    public let folder: URL

    /// Opens the weights of `folder`.
    /// - Throws: `ModelIOError(.notFound)` naming the expected file when there is none.
    public init(folder: URL, prefix: String = "model") throws {
        self.folder = folder
        let fm = FileManager.default
        let single = folder.appendingPathComponent("\(prefix).safetensors")
        let index = folder.appendingPathComponent("\(prefix).safetensors.index.json")
        var location: [String: SafetensorsFile] = [:]
        if fm.fileExists(atPath: single.path) {
            let f = try SafetensorsFile(url: single)
            for n in f.entries.keys { location[n] = f }
        } else if fm.fileExists(atPath: index.path) {
            let data: Data
            do { data = try Data(contentsOf: index) } catch {
                throw ModelIOError(.unreadable, path: index.path, "cannot read")
            }
            guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = obj["weight_map"] as? [String: String] else {
                throw ModelIOError(.malformed, path: index.path, "expected a JSON object with a 'weight_map'")
            }
            var shards: [String: SafetensorsFile] = [:]
            for (name, shard) in map {
                guard !shard.contains("/") else {
                    throw ModelIOError(.malformed, path: index.path, "weight_map['\(name)'] names '\(shard)' outside the folder")
                }
                let f: SafetensorsFile
                if let s = shards[shard] { f = s } else {
                    f = try SafetensorsFile(url: folder.appendingPathComponent(shard))
                    shards[shard] = f
                }
                guard f.entries[name] != nil else {
                    throw ModelIOError(.missingTensor, path: f.url.path, "missing tensor '\(name)' that \(index.lastPathComponent) places here")
                }
                location[name] = f
            }
        } else {
            throw ModelIOError(.notFound, path: single.path, "file not found (nor \(index.lastPathComponent))")
        }
        self.location = location
    }

    /// All tensor names.
    public var names: Set<String> { Set(location.keys) }

    /// Loads one tensor as f32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let f = location[name] else {
            throw ModelIOError(.missingTensor, path: folder.path, "missing tensor '\(name)'")
        }
        return try f.tensor(name)
    }

    /// The file holding a tensor (nil when absent).
    public func file(holding name: String) -> SafetensorsFile? { location[name] }

    /// Bytes the tensors take in memory when F16/BF16 ones stay 16-bit (`keep16`) and the rest become f32.
    public func residentFootprint(keep16: Bool) -> Int {
        location.reduce(0) { acc, kv in
            guard let e = kv.value.entries[kv.key] else { return acc }
            let n = e.shape.reduce(1, *)
            return acc + (keep16 && (e.dtype == "F16" || e.dtype == "BF16") && e.shape.count == 2 ? 2 * n : 4 * n)
        }
    }

    /// Bytes the tensors would take as f32.
    public var f32Footprint: Int {
        location.reduce(0) { acc, kv in acc + 4 * (kv.value.entries[kv.key]?.shape.reduce(1, *) ?? 0) }
    }
}
