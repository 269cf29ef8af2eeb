import Foundation
import Pipeline

/// A JSON value for the commands' `--json` output, encoded by Foundation's `JSONEncoder`
/// (shortest round-trip number formatting).
enum JSON: Encodable {
    case null
    case bool(Bool)
    case int(Int)
    case float(Float)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    static func floats(_ v: [Float]) -> JSON { .array(v.map { .float($0) }) }
    static func ints(_ v: [Int]) -> JSON { .array(v.map { .int($0) }) }

    /// The value as one line of JSON, written by the pipeline's one encoder (`JSONLine`: sorted
    /// keys); non-finite numbers are `null`.
    var text: String { JSONLine.encode(self) }

    /// Prints the value as one line on stdout.
    func printLine() {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    private struct Key: CodingKey {
        var stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: Encoder) throws {
        switch self {
        case .object(let pairs):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in pairs { try c.encode(v, forKey: Key(stringValue: k)) }
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for v in items { try c.encode(v) }
        default:
            var c = encoder.singleValueContainer()
            switch self {
            case .null: try c.encodeNil()
            case .bool(let b): try c.encode(b)
            case .int(let i): try c.encode(i)
            case .float(let f): if f.isFinite { try c.encode(f) } else { try c.encodeNil() }
            case .double(let d): if d.isFinite { try c.encode(d) } else { try c.encodeNil() }
            case .string(let str): try c.encode(str)
            case .object, .array: break
            }
        }
    }
}
