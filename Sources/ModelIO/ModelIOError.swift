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

/// Reads a whole model file (config, tokenizer, index); a missing or unreadable file is an error naming it.
func readModelFile(_ url: URL) throws -> Data {
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw ModelIOError(.notFound, path: url.path, "\(url.lastPathComponent) not found")
    }
    do {
        return try Data(contentsOf: url)
    } catch {
        throw ModelIOError(.unreadable, path: url.path, "cannot read \(url.lastPathComponent) (\(error.localizedDescription))")
    }
}

/// Reads `merges.txt`: lines starting with `#version` are skipped, as are empty lines; every other
/// line must be two non-empty symbols separated by one space. Line order is merge priority.
func readMergesFile(_ url: URL) throws -> [(String, String)] {
    let data = try readModelFile(url)
    guard let text = String(data: data, encoding: .utf8) else {
        throw ModelIOError(.malformed, path: url.path, "merges.txt is not UTF-8")
    }
    var pairs: [(String, String)] = []
    var lineNumber = 0
    for var line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        lineNumber += 1
        if line.hasSuffix("\r") { line = line.dropLast() }
        if line.isEmpty || line.hasPrefix("#version") { continue }
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ModelIOError(.malformed, path: url.path,
                               "merges.txt line \(lineNumber) '\(line)' is not two symbols separated by one space")
        }
        pairs.append((String(parts[0]), String(parts[1])))
    }
    return pairs
}
