// Errors of the ATP gate. Every message is one line that names the bad option or input and its value,
// so the CLI can print it verbatim (DESIGN.md, "CLI contract").

import Foundation

/// An invalid gate option or input.
///
/// `description` is a single line naming the option (as spelled on the CLI) or input and the offending
/// value, e.g. `--keep 1.5: must be in (0, 1]`.
public enum GateError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    /// `--keep r` with r outside (0, 1] (or not a number).
    case invalidKeep(Double)
    /// `--mass m` with m outside (0, 1] (or not a number).
    case invalidMass(Double)
    /// `--alpha a` with a outside [0, 1] (or not a number).
    case invalidAlpha(Double)
    /// `--sign s` with s other than 1 or -1.
    case invalidSign(Int)
    /// The frame has no patch tokens (N = 0).
    case noTokens
    /// Two arrays that must describe the same N patches have different lengths.
    case lengthMismatch(name: String, count: Int, expected: Int)
    /// A flat array does not hold the number of values its stated shape needs.
    case shapeMismatch(name: String, count: Int, shape: [Int])
    /// A score is NaN or infinite.
    case nonFinite(name: String, index: Int, value: Float)
    /// `--method text` was asked for without a relevance signal.
    case textNeedsRelevance
    /// `--method atp-div` was asked for without patch features.
    case diversityNeedsFeatures

    public var description: String {
        switch self {
        case .invalidKeep(let r):
            return "--keep \(r): must be in (0, 1]"
        case .invalidMass(let m):
            return "--mass \(m): must be in (0, 1]"
        case .invalidAlpha(let a):
            return "--alpha \(a): must be in [0, 1]"
        case .invalidSign(let s):
            return "--sign \(s): must be 1 or -1"
        case .noTokens:
            return "gate: the frame has no patch tokens (N = 0)"
        case .lengthMismatch(let name, let count, let expected):
            return "gate: \(name) has \(count) values but there are \(expected) patch tokens"
        case .shapeMismatch(let name, let count, let shape):
            let dims = shape.map(String.init).joined(separator: "×")
            let product = shape.reduce(1, *)
            return "gate: \(name) has \(count) values, expected [\(dims)] = \(product)"
        case .nonFinite(let name, let index, let value):
            return "gate: \(name)[\(index)] is \(value): scores must be finite"
        case .textNeedsRelevance:
            return "method text needs a query and a CLIP text tower"
        case .diversityNeedsFeatures:
            return "method atp-div needs the vision tower's patch features"
        }
    }

    public var errorDescription: String? { description }
}

/// Throws `GateError.nonFinite` naming the first NaN/±inf entry of `values`.
@inline(__always)
func checkFinite(_ values: [Float], name: String) throws {
    if let i = values.firstIndex(where: { !$0.isFinite }) {
        throw GateError.nonFinite(name: name, index: i, value: values[i])
    }
}
