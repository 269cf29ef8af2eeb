// The `/queries` API's request parsing, validation and JSON rendering, kept apart from HTTP so that
// every rule is tested without a socket.
import Foundation
import Gate
import Pipeline

/// A request the API refuses: the HTTP status and a one-line message that names the bad field.
public struct APIError: Error, Equatable, CustomStringConvertible, Sendable {
    /// 400, 401, 404, 413, 500 …
    public let status: Int
    /// One line naming the field (or header, or id) and what is wrong.
    public let message: String

    /// Creates an error.
    public init(status: Int, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "\(status): \(message)" }

    /// The body sent to the client: `{"error":"…"}` on one line.
    public var jsonBody: String { JSONLine.encode(["error": message]) }
}

/// A JSON value decoded strictly: a boolean is never a number and a number is never a boolean.
enum JSONValue: Decodable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// The `/queries` rules: parsing a posted query, rendering the list, and who may change it.
public enum QueryAPI {
    /// The keys of a posted query.
    public static let queryKeys = ["id", "text", "gate"]
    /// The keys of a posted query's `gate` object.
    public static let gateKeys = ["method", "alpha", "keep", "tokens", "mass", "sign", "norm"]
    /// The longest query id accepted.
    public static let maxIDLength = 128
    /// The longest query text accepted, in characters.
    public static let maxTextLength = 2000

    /// Whether `id` may name a query: 1…128 characters from `A–Z a–z 0–9 . _ -` (so that it is one path
    /// segment of `DELETE /queries/{id}`).
    public static func isValidID(_ id: String) -> Bool {
        guard !id.isEmpty, id.count <= maxIDLength else { return false }
        return id.unicodeScalars.allSatisfy { u in
            (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || (u >= "0" && u <= "9") || u == "." || u == "_" || u == "-"
        }
    }

    /// Parses the body of `POST /queries`: `{"id", "text", "gate": {"method", "alpha", "keep" | "tokens" | "mass",
    /// "sign", "norm"}}` (`gate` and each of its keys optional).
    ///
    /// The posted gate overrides `baseGate` (the pipeline's `gate:` block) the way a YAML query's `gate:` does.
    /// - Parameters:
    ///   - body: the request body.
    ///   - baseGate: the pipeline's gate settings.
    /// - Returns: the standing query.
    /// - Throws: ``APIError`` 400 naming the field: bad JSON, unknown keys, missing or mistyped fields,
    ///   out-of-range values.
    public static func parseQuery(_ body: Data, baseGate: GateSpec) throws -> StandingQuery {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: body)
        } catch {
            throw APIError(status: 400, "body: not valid JSON")
        }
        guard case .object(let obj) = value else {
            throw APIError(status: 400, "body: expected a JSON object, got \(value.kind)")
        }
        if let unknown = obj.keys.sorted().first(where: { !queryKeys.contains($0) }) {
            throw APIError(status: 400, "\(unknown): unknown key (expected \(queryKeys.joined(separator: ", ")))")
        }
        guard let idValue = obj["id"] else { throw APIError(status: 400, "id: required") }
        guard case .string(let id) = idValue else { throw APIError(status: 400, "id: expected a string, got \(idValue.kind)") }
        guard isValidID(id) else {
            throw APIError(status: 400, "id: must be 1…\(maxIDLength) characters from A-Z a-z 0-9 . _ -, got \(JSONLine.encode(id))")
        }
        guard let textValue = obj["text"] else { throw APIError(status: 400, "text: required") }
        guard case .string(let text) = textValue else { throw APIError(status: 400, "text: expected a string, got \(textValue.kind)") }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw APIError(status: 400, "text: must not be empty") }
        guard text.count <= maxTextLength else {
            throw APIError(status: 400, "text: longer than \(maxTextLength) characters (\(text.count))")
        }
        var gate: GateSpec? = nil
        if let g = obj["gate"] {
            gate = try parseGate(g)
        }
        do {
            return StandingQuery(id: id, text: text, gate: try gateConfig(baseGate.overridden(by: gate)))
        } catch {
            throw APIError(status: 400, "gate: \(error)")
        }
    }

    /// Parses a posted `gate` object with the pipeline YAML's rules.
    static func parseGate(_ value: JSONValue) throws -> GateSpec {
        guard case .object(let g) = value else { throw APIError(status: 400, "gate: expected an object, got \(value.kind)") }
        if let unknown = g.keys.sorted().first(where: { !gateKeys.contains($0) }) {
            throw APIError(status: 400, "gate.\(unknown): unknown key (expected \(gateKeys.joined(separator: ", ")))")
        }
        func number(_ key: String) throws -> Double? {
            guard let v = g[key] else { return nil }
            guard case .number(let d) = v, d.isFinite else { throw APIError(status: 400, "gate.\(key): expected a number, got \(v.kind)") }
            return d
        }
        func integer(_ key: String) throws -> Int? {
            guard let d = try number(key) else { return nil }
            guard d == d.rounded(), abs(d) < 1e9 else { throw APIError(status: 400, "gate.\(key): expected an integer, got \(Self.number(d))") }
            return Int(d)
        }
        func string(_ key: String) throws -> String? {
            guard let v = g[key] else { return nil }
            guard case .string(let s) = v else { throw APIError(status: 400, "gate.\(key): expected a string, got \(v.kind)") }
            return s
        }
        let spec = GateSpec(method: try string("method"), alpha: try number("alpha"), keep: try number("keep"),
                            tokens: try integer("tokens"), mass: try number("mass"), sign: try integer("sign"),
                            norm: try string("norm"))
        if let (key, message) = spec.issue { throw APIError(status: 400, "gate.\(key): \(message)") }
        return spec
    }

    /// One query as `GET /queries` lists it:
    /// `{"id","text","gate":{"method","alpha","sign","norm", and "keep" | "tokens" | "mass"}}`.
    struct QueryBody: Encodable {
        struct Gate: Encodable {
            var method: String, alpha: Double, sign: Int, norm: String
            var keep: Double?, tokens: Int?, mass: Double?

            func encode(to encoder: Encoder) throws {   // the budget key present only when it applies
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(method, forKey: .method)
                try c.encode(alpha, forKey: .alpha)
                try c.encode(sign, forKey: .sign)
                try c.encode(norm, forKey: .norm)
                try c.encodeIfPresent(keep, forKey: .keep)
                try c.encodeIfPresent(tokens, forKey: .tokens)
                try c.encodeIfPresent(mass, forKey: .mass)
            }
            enum CodingKeys: String, CodingKey { case method, alpha, sign, norm, keep, tokens, mass }
        }
        var id: String, text: String, gate: Gate

        init(_ q: StandingQuery) {
            let g = q.gate
            var gate = Gate(method: g.method.rawValue, alpha: g.alpha, sign: g.sign, norm: g.norm.rawValue)
            switch g.budget {
            case .tokens(let k): gate.tokens = k
            case .keep(let r): gate.keep = r
            case .mass(let m): gate.mass = m
            case .all: break
            }
            (id, text, self.gate) = (q.id, q.text, gate)
        }
    }

    /// One query as the JSON object `GET /queries` lists (``QueryBody``).
    public static func json(_ q: StandingQuery) -> String { JSONLine.encode(QueryBody(q)) }

    /// The body of `GET /queries`: a JSON array of ``json(_:)`` objects, in registry order.
    public static func listJSON(_ queries: [StandingQuery]) -> String { JSONLine.encode(queries.map(QueryBody.init)) }

    /// A number as written in error messages (shortest form that reads back exactly).
    static func number(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }
}

/// Who may change standing queries.
public enum ServeAuth {
    /// Whether `host` is a loopback address: `localhost`, `127.0.0.0/8` or `::1`.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { p in UInt8(p) != nil }
    }

    /// Whether a server bound to `host` with `token` may start: off loopback a non-empty token is required.
    /// - Throws: ``ServeError`` naming `--host` when the host is not loopback and there is no token.
    public static func checkStart(host: String, token: String?) throws {
        if !isLoopback(host) && (token ?? "").isEmpty {
            throw ServeError("--host \(host): not a loopback address, so a token is required for POST/DELETE /queries "
                             + "(give --token or set ATP_SERVE_TOKEN)")
        }
    }

    /// Whether a request that changes standing queries is allowed.
    ///
    /// A token is required when one was configured (always so off loopback, see ``checkStart(host:token:)``);
    /// the request must then carry `Authorization: Bearer <token>` (compared in constant time).
    /// - Parameters:
    ///   - token: the configured token (`--token` / `ATP_SERVE_TOKEN`), if any.
    ///   - authorization: the request's `Authorization` header, if any.
    /// - Throws: ``APIError`` 401 naming the `Authorization` header.
    public static func authorizeChange(token: String?, authorization: String?) throws {
        guard let token, !token.isEmpty else { return }
        guard let header = authorization else {
            throw APIError(status: 401, "Authorization: missing (expected 'Bearer <token>')")
        }
        let prefix = "Bearer "
        guard header.count > prefix.count, header.lowercased().hasPrefix(prefix.lowercased()) else {
            throw APIError(status: 401, "Authorization: expected 'Bearer <token>'")
        }
        let given = Array(header.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces).utf8)
        let want = Array(token.utf8)
        var diff = given.count == want.count ? 0 : 1
        for i in 0..<want.count { diff |= Int(want[i] ^ (i < given.count ? given[i] : 0)) }
        guard diff == 0 else { throw APIError(status: 401, "Authorization: wrong bearer token") }
    }
}
