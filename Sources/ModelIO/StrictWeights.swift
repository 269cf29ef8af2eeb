import Foundation
import Tensor

/// Strict weight loading: every tensor a model asks for must exist with the expected shape,
/// and every tensor in the checkpoint must be used unless it matches an ignore rule.
///
/// Keys are checkpoint keys after the model's `sanitize` step (renames happen there, once).
public final class StrictWeights: @unchecked Sendable {
    private let files: WeightFiles
    /// sanitized key → checkpoint key
    private var keyMap: [String: String]
    private var used: Set<String> = []
    public let origin: String

    /// - Parameter sanitize: maps a checkpoint key to the model's key (nil drops nothing: return the key itself).
    public init(files: WeightFiles, sanitize: (String) -> String = { $0 }) {
        self.files = files
        self.origin = files.folder.path
        var map: [String: String] = [:]
        for k in files.names { map[sanitize(k)] = k }
        keyMap = map
    }

    /// All (sanitized) keys.
    public var keys: Set<String> { Set(keyMap.keys) }

    /// Whether a key exists.
    public func has(_ key: String) -> Bool { keyMap[key] != nil }

    /// Loads `key`, checking its shape when `shape` is given.
    public func take(_ key: String, shape: [Int]? = nil) throws -> Tensor {
        guard let original = keyMap[key] else {
            throw ModelIOError(.missingTensor, path: origin, "missing tensor '\(key)'")
        }
        let t = try files.tensor(original)
        if let shape, t.shape != shape {
            // Allow [n] vs [1, n]-style equivalences only when the element order is the same.
            let squeezedT = t.shape.filter { $0 != 1 }, squeezedS = shape.filter { $0 != 1 }
            guard squeezedT == squeezedS else {
                throw ModelIOError(.shapeMismatch, path: origin, "tensor '\(original)' has shape \(t.shape); the config implies \(shape)")
            }
            used.insert(key)
            return t.reshaped(shape)
        }
        used.insert(key)
        return t
    }

    /// The stored bytes of a 2-D `key` of shape `shape` when its dtype is one of `formats` (nil
    /// otherwise: take it as f32 instead); marks it used. The bytes are valid while `owner` lives.
    ///
    /// - Throws: `.missingTensor` naming the key.
    public func takeRaw(_ key: String, shape: [Int], formats: Set<WeightFormat>) throws
        -> (format: WeightFormat, bytes: UnsafeRawBufferPointer, owner: SafetensorsFile)? {
        guard let original = keyMap[key], let file = files.file(holding: original) else {
            throw ModelIOError(.missingTensor, path: origin, "missing tensor '\(key)'")
        }
        let raw = try file.unsafeRawTensor(original)
        guard let format = raw.format, formats.contains(format), raw.shape == shape, shape.count == 2 else { return nil }
        used.insert(key)
        return (format, raw.bytes, file)
    }

    /// Loads `key` if present.
    public func takeOptional(_ key: String, shape: [Int]? = nil) throws -> Tensor? {
        has(key) ? try take(key, shape: shape) : nil
    }

    /// Throws if a tensor was never taken, unless `ignore` accepts its key.
    public func finish(ignore: (String) -> Bool = { _ in false }) throws {
        let unused = keyMap.keys.filter { !used.contains($0) && !ignore($0) }.sorted()
        if let first = unused.first {
            let more = unused.count > 1 ? " (and \(unused.count - 1) more)" : ""
            throw ModelIOError(.unusedTensor, path: origin, "unused tensor '\(keyMap[first] ?? first)'\(more): the checkpoint does not match the config")
        }
    }
}

/// Memory available to this process, from /proc/meminfo (MemAvailable), or nil when unknown.
public func availableMemoryBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
        let parts = line.split(separator: " ")
        if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
    }
    return nil
}

/// Refuses to load `bytes` of f32 weights when they will not fit in available memory.
public func ensureFits(bytes: Int, what: String) throws {
    if let avail = availableMemoryBytes(), bytes > avail {
        throw ModelIOError(.tooLarge, path: what,
            String(format: "needs %.2f GiB as f32 but only %.2f GiB of memory is available", Double(bytes) / 1_073_741_824, Double(avail) / 1_073_741_824))
    }
}

/// Reads and decodes a JSON config file with one-line errors naming the file and key.
public func decodeJSONFile<T: Decodable>(_ type: T.Type, at url: URL) throws -> T {
    let data = try readModelFile(url)
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let e as ModelIOError {
        throw ModelIOError(e.kind, path: url.path, e.message)
    } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
        throw ModelIOError(.malformed, path: url.path, "key '\(codingPathString(ctx.codingPath))': \(ctx.debugDescription)")
    } catch let DecodingError.keyNotFound(key, ctx) {
        throw ModelIOError(.malformed, path: url.path, "missing key '\(codingPathString(ctx.codingPath + [key]))'")
    } catch let DecodingError.dataCorrupted(ctx) {
        let where_ = ctx.codingPath.isEmpty ? "" : "key '\(codingPathString(ctx.codingPath))': "
        throw ModelIOError(.malformed, path: url.path, "\(where_)invalid JSON (\(ctx.debugDescription))")
    } catch {
        throw ModelIOError(.malformed, path: url.path, "\(error)")
    }
}

func codingPathString(_ path: [CodingKey]) -> String {
    path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
}

/// A config value that is invalid: thrown from `init(from:)` and rewritten with the file's path by `decodeJSONFile`.
public func invalidConfig(_ key: String, _ message: String) -> ModelIOError {
    ModelIOError(.unsupported, path: "config.json", "key '\(key)': \(message)")
}
