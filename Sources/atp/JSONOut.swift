import Foundation
import Pipeline

/// A minimal JSON value with compact output and shortest round-trip float formatting.
enum JSON {
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

    var text: String {
        var s = ""
        write(to: &s)
        return s
    }

    func write(to s: inout String) {
        switch self {
        case .null: s += "null"
        case .bool(let b): s += b ? "true" : "false"
        case .int(let i): s += String(i)
        case .float(let f): s += f.isFinite ? "\(f)" : "null"
        case .double(let d): s += d.isFinite ? "\(d)" : "null"
        case .string(let str): JSON.escape(str, into: &s)
        case .array(let a):
            s += "["
            for (i, v) in a.enumerated() { if i > 0 { s += "," }; v.write(to: &s) }
            s += "]"
        case .object(let o):
            s += "{"
            for (i, (k, v)) in o.enumerated() {
                if i > 0 { s += "," }
                JSON.escape(k, into: &s); s += ":"; v.write(to: &s)
            }
            s += "}"
        }
    }

    static func escape(_ str: String, into s: inout String) {
        s += JSONLine.encode(str)
    }

    /// Prints the value as one line on stdout.
    func printLine() {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
}
