import Foundation

/// An error raised while reading a model file, a config or a tokenizer.
///
/// Its description is one line that names the bad input (file, key, tensor or value),
/// so the CLI can print it as is.
public struct ModelIOError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        case notFound, unreadable, malformed, unsupported, missingTensor, unusedTensor, shapeMismatch, tooLarge
    }
    public let kind: Kind
    /// The file (or folder) the problem is in.
    public let path: String
    /// What is wrong, naming the key / tensor / value.
    public let message: String

    public init(_ kind: Kind, path: String, _ message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}
