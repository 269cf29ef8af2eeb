import CFFmpeg
import Foundation

/// An error raised while reading or writing media (images, video, streams).
///
/// Its description is one line that names the file or URL, e.g.
/// `photo.png: cannot decode image (Invalid data found when processing input)`, so the CLI
/// can print it as is. FFmpeg failures carry FFmpeg's own text (`av_strerror`).
public struct MediaError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong, coarsely (for callers that branch on it).
    public enum Kind: String, Sendable {
        /// The file does not exist.
        case notFound
        /// The file exists but cannot be read (permissions, a directory, zero bytes).
        case unreadable
        /// FFmpeg could not open, demux or decode it.
        case decode
        /// FFmpeg could not encode it.
        case encode
        /// A value the caller passed is invalid (sizes, byte counts).
        case invalidArgument
        /// The file system refused a write, rename or removal.
        case io
        /// The data uses a feature this code does not handle.
        case unsupported
    }

    public let kind: Kind
    /// The file or URL the problem is about, as the caller named it.
    public let path: String
    /// What is wrong.
    public let message: String

    public init(_ kind: Kind, path: String, _ message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }

    /// FFmpeg's one-line text for an error code (`av_strerror`), e.g.
    /// "Invalid data found when processing input".
    /// - Parameter code: a negative FFmpeg return value.
    /// - Returns: the text, or `"error N"` when FFmpeg has none.
    public static func ffmpegMessage(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let text: String? = buffer.withUnsafeMutableBufferPointer { buf in
            guard av_strerror(code, buf.baseAddress, buf.count) == 0 else { return nil }
            let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            return String(decoding: bytes, as: UTF8.self)
        }
        return text ?? "error \(code)"
    }

    /// A decode/encode error whose message ends with FFmpeg's text for `code`.
    public static func ffmpeg(_ kind: Kind, path: String, _ what: String, code: Int32) -> MediaError {
        MediaError(kind, path: path, "\(what) (\(ffmpegMessage(code)))")
    }
}
