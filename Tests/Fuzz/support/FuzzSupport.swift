// Shared by every harness (compiled into each harness's module by Tools/fuzz.sh; not part of the package).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A per-process scratch folder for entry points that only take file or folder URLs.
///
/// One folder per process (under `$ATP_FUZZ_TMP`, else /dev/shm, else the temporary folder), reused by
/// every call and removed at exit; each call overwrites the files it needs and removes the others.
enum FuzzScratch {
    static let folder: URL = {
        let env = ProcessInfo.processInfo.environment["ATP_FUZZ_TMP"]
        let base = env ?? (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory())
        let url = URL(fileURLWithPath: base).appendingPathComponent("atp-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: FuzzScratch.folder) }
        return url
    }()

    /// Writes `bytes` to `folder/name` and returns its URL.
    @discardableResult
    static func write(_ bytes: some Collection<UInt8>, _ name: String) -> URL {
        let url = folder.appendingPathComponent(name)
        let data = Data(bytes)
        do { try data.write(to: url) } catch { fatalError("fuzz harness: cannot write \(url.path): \(error)") }
        return url
    }

    /// Removes `folder/name` if present.
    static func remove(_ name: String) {
        unlink(folder.appendingPathComponent(name).path)
    }

    /// Writes `bytes` to `folder/name` when non-nil, else removes the file.
    static func put(_ bytes: ArraySlice<UInt8>?, _ name: String) {
        if let bytes { write(bytes, name) } else { remove(name) }
    }
}

/// The input as a byte array, and split on `separator` into at most `maxParts` parts.
struct FuzzInput {
    let bytes: [UInt8]

    init(_ data: UnsafePointer<UInt8>, _ size: Int) {
        bytes = Array(UnsafeBufferPointer(start: data, count: size))
    }

    func parts(separator: UInt8 = 0, maxParts: Int) -> [ArraySlice<UInt8>] {
        bytes.split(separator: separator, maxSplits: maxParts - 1, omittingEmptySubsequences: false)
    }
}

private let verbose = ProcessInfo.processInfo.environment["ATP_FUZZ_VERBOSE"] != nil

/// Touches an error's description, as the CLI prints it (and prints it when ATP_FUZZ_VERBOSE is set,
/// e.g. to see why a seed is refused: `ATP_FUZZ_VERBOSE=1 .build-fuzz/bin/HARNESS -runs=0 SEED`).
@inline(never)
func consume(_ error: any Error) {
    let text = String(describing: error)
    if text.isEmpty { fatalError("empty error description for \(type(of: error))") }
    if verbose { fputs("harness: \(text)\n", stderr) }
}

@_silgen_name("__lsan_disable") private func lsanDisable()
@_silgen_name("__lsan_enable") private func lsanEnable()

/// Runs `body` with LeakSanitizer ignoring what it allocates: for state built once and kept for the
/// whole run. (Swift stores enum payload pointers with tag bits set, so LeakSanitizer cannot see that
/// a long-lived indirect enum is still referenced and would report it as a leak.)
func withoutLeakChecks<T>(_ body: () throws -> T) rethrows -> T {
    lsanDisable()
    defer { lsanEnable() }
    return try body()
}
