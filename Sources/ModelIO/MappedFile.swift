import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file; unmapped on deinit.
public final class MappedFile: @unchecked Sendable {
    /// The file's path (for error messages).
    public let path: String
    /// Size in bytes.
    public let size: Int
    /// Start of the mapping (nil for an empty file).
    public let base: UnsafeRawPointer?

    /// Maps `url` read-only.
    /// - Throws: `ModelIOError.notFound` / `.unreadable` naming the file.
    public init(url: URL) throws {
        path = url.path
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else {
            let err = errno
            throw ModelIOError(err == ENOENT ? .notFound : .unreadable, path: url.path,
                               err == ENOENT ? "file not found" : "cannot open (\(String(cString: strerror(err))))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ModelIOError(.unreadable, path: url.path, "cannot stat (\(String(cString: strerror(errno))))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ModelIOError(.unreadable, path: url.path, "not a regular file")
        }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw ModelIOError(.unreadable, path: url.path, "cannot map \(size) bytes (\(String(cString: strerror(errno))))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    /// The bytes `offset ..< offset + count`; the caller has bounds-checked them.
    public func bytes(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
        precondition(offset >= 0 && count >= 0 && offset <= size - count, "MappedFile: [\(offset), +\(count)) outside \(size) bytes of \(path)")
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }
}
