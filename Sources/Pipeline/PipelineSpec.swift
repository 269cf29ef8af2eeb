// Pipelines/*.yaml: the Codable spec of a pipeline, decoded strictly with Yams.
import Foundation
import Tensor
import Yams
import Gate

/// A pipeline spec, the shape of `Pipelines/*.yaml` in DESIGN.md.
///
/// Decoding is strict: an unknown key at any level, a value of the wrong type or an impossible
/// value (queue 0, a budget ≤ 0, an unknown policy, keep > 1, duplicate ids, …) is an error that
/// names the key path. ``load(from:)`` adds the file name and resolves relative model paths (and
/// relative file sources) against the YAML file's folder.
public struct PipelineSpec: Codable, Sendable, Equatable {
    /// Stage names a spec may configure (the graph's stages; `relevance_encode` is timed inside `encode`).
    public static let stageNames = ["video_decode", "encode", "gate", "prefill", "llm_decode"]
    /// Gate methods a spec may name.
    public static let gateMethods = GateMethod.allCases.map(\.rawValue)

    /// The pipeline's name.
    public var name: String
    /// Video sources (may be empty when `atp run --source` supplies one).
    public var sources: [SourceSpec]
    /// Model folders.
    public var model: ModelSpec?
    /// The default gate.
    public var gate: GateSpec?
    /// Standing queries.
    public var queries: [QuerySpec]
    /// Per-stage queue, policy and budget, keyed by stage name.
    public var stages: [String: StageSpec]
    /// Where answers go.
    public var sinks: [SinkSpec]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, sources, model, gate, queries, stages, sinks
    }

    /// Creates a spec in code.
    public init(name: String, sources: [SourceSpec] = [], model: ModelSpec? = nil, gate: GateSpec? = nil,
                queries: [QuerySpec] = [], stages: [String: StageSpec] = [:], sinks: [SinkSpec] = []) {
        self.name = name
        self.sources = sources
        self.model = model
        self.gate = gate
        self.queries = queries
        self.stages = stages
        self.sinks = sinks
    }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        guard !name.isEmpty else { throw SpecIssue(decoder.codingPath + [CodingKeys.name], "must not be empty") }
        sources = try c.decodeIfPresent([SourceSpec].self, forKey: .sources) ?? []
        model = try c.decodeIfPresent(ModelSpec.self, forKey: .model)
        gate = try c.decodeIfPresent(GateSpec.self, forKey: .gate)
        queries = try c.decodeIfPresent([QuerySpec].self, forKey: .queries) ?? []
        stages = try c.decodeIfPresent([String: StageSpec].self, forKey: .stages) ?? [:]
        sinks = try c.decodeIfPresent([SinkSpec].self, forKey: .sinks) ?? []

        try checkUnique(sources.map(\.id), path: decoder.codingPath + [CodingKeys.sources], what: "source id")
        try checkUnique(queries.map(\.id), path: decoder.codingPath + [CodingKeys.queries], what: "query id")
        for stage in stages.keys.sorted() where !Self.stageNames.contains(stage) {
            let why = stage == "relevance_encode"
                ? "relevance_encode runs inside the encode stage and has no queue of its own; configure 'encode'"
                : "unknown stage '\(stage)' (expected one of \(Self.stageNames.joined(separator: ", ")))"
            throw SpecIssue(decoder.codingPath + [CodingKeys.stages, AnyKey(stage)], why)
        }
    }

    /// The gate a query runs with: the spec's gate with the query's overrides on top (a query that
    /// sets one of `tokens`/`keep`/`mass` replaces the default's choice of K).
    public func effectiveGate(for query: QuerySpec) -> GateSpec {
        (gate ?? GateSpec()).overridden(by: query.gate)
    }

    /// Parses a spec from YAML text.
    /// - Parameters:
    ///   - yaml: the YAML text.
    ///   - file: the name used in error messages.
    ///   - baseDirectory: the folder that relative model paths and file sources resolve against
    ///     (nil: leave them as written).
    /// - Throws: ``PipelineError/spec(file:key:message:)`` naming the file and the key.
    public static func parse(yaml: String, file: String = "<yaml>", baseDirectory: URL? = nil) throws -> PipelineSpec {
        var spec: PipelineSpec
        do {
            spec = try YAMLDecoder().decode(PipelineSpec.self, from: yaml)
        } catch let issue as SpecIssue {
            throw PipelineError.spec(file: file, key: keyPath(issue.path), message: issue.message)
        } catch let DecodingError.dataCorrupted(ctx) where ctx.underlyingError is SpecIssue {
            // Yams wraps errors thrown by `init(from:)` in `dataCorrupted`.
            let issue = ctx.underlyingError as! SpecIssue
            throw PipelineError.spec(file: file, key: keyPath(issue.path), message: issue.message)
        } catch let DecodingError.dataCorrupted(ctx) where ctx.underlyingError is DecodingError {
            throw specError(ctx.underlyingError as! DecodingError, file: file)
        } catch let error as DecodingError {
            throw specError(error, file: file)
        } catch let error as YamlError {
            throw PipelineError.spec(file: file, key: "", message: "invalid YAML: " + oneLine("\(error)"))
        } catch {
            throw PipelineError.spec(file: file, key: "", message: oneLine("\(error)"))
        }
        if let base = baseDirectory { spec.resolvePaths(against: base) }
        return spec
    }

    /// Reads and parses a spec file; relative paths resolve against the file's folder.
    /// - Parameter url: the YAML file.
    /// - Throws: ``PipelineError/spec(file:key:message:)`` naming the file (and the key, if any).
    public static func load(from url: URL) throws -> PipelineSpec {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw PipelineError.spec(file: url.path, key: "", message: "cannot read file")
        }
        return try parse(yaml: text, file: url.path, baseDirectory: url.deletingLastPathComponent())
    }

    /// The spec as YAML.
    public func yaml() throws -> String { try YAMLEncoder().encode(self) }

    /// Makes relative model paths and relative file sources absolute, against `base`.
    mutating func resolvePaths(against base: URL) {
        func resolve(_ path: String) -> String {
            if path.hasPrefix("/") || path.isEmpty { return path }
            return base.appendingPathComponent(path).standardizedFileURL.path
        }
        if var m = model {
            m.vlm = m.vlm.map(resolve)
            m.clip = m.clip.map(resolve)
            model = m
        }
        for i in sources.indices {
            if !sources[i].url.contains(":") { sources[i].url = resolve(sources[i].url) }
            sources[i].truth = sources[i].truth.map(resolve)
        }
    }
}

/// One video source.
public struct SourceSpec: Codable, Sendable, Equatable {
    /// The stream's id (the `stream` of answer events); unique in the spec.
    public var id: String
    /// A file path, `rtsp://…`, a V4L2 device or `synthetic:…`.
    public var url: String
    /// RTSP transport: `udp` or `tcp`.
    public var transport: String?
    /// Read timeout in milliseconds (> 0).
    public var readTimeoutMs: Int?
    /// Reconnect back-off.
    public var reconnect: ReconnectSpec?
    /// Loop a file source.
    public var loop: Bool?
    /// Pace a file source at its frame rate.
    public var realtime: Bool?
    /// Ground-truth sidecar (`atp synth --video` writes one); a file source `NAME.mp4` finds
    /// `NAME.truth.jsonl` beside it without this key.
    public var truth: String?

    /// RTSP transports a spec may name.
    public static let transports = ["udp", "tcp"]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, url, transport, loop, realtime, reconnect, truth
        case readTimeoutMs = "read_timeout_ms"
    }

    public init(id: String, url: String, transport: String? = nil, readTimeoutMs: Int? = nil,
                reconnect: ReconnectSpec? = nil, loop: Bool? = nil, realtime: Bool? = nil, truth: String? = nil) {
        self.id = id
        self.url = url
        self.transport = transport
        self.readTimeoutMs = readTimeoutMs
        self.reconnect = reconnect
        self.loop = loop
        self.realtime = realtime
        self.truth = truth
    }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let path = decoder.codingPath
        id = try c.decode(String.self, forKey: .id)
        guard !id.isEmpty else { throw SpecIssue(path + [CodingKeys.id], "must not be empty") }
        url = try c.decode(String.self, forKey: .url)
        guard !url.isEmpty else { throw SpecIssue(path + [CodingKeys.url], "must not be empty") }
        transport = try c.decodeIfPresent(String.self, forKey: .transport)
        if let t = transport, !Self.transports.contains(t) {
            throw SpecIssue(path + [CodingKeys.transport], "unknown transport '\(t)' (expected udp or tcp)")
        }
        readTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .readTimeoutMs)
        if let t = readTimeoutMs, t <= 0 { throw SpecIssue(path + [CodingKeys.readTimeoutMs], "must be > 0, got \(t)") }
        reconnect = try c.decodeIfPresent(ReconnectSpec.self, forKey: .reconnect)
        loop = try c.decodeIfPresent(Bool.self, forKey: .loop)
        realtime = try c.decodeIfPresent(Bool.self, forKey: .realtime)
        truth = try c.decodeIfPresent(String.self, forKey: .truth)
        if let t = truth, t.isEmpty { throw SpecIssue(path + [CodingKeys.truth], "must not be empty") }
    }
}

/// Reconnect back-off of a live source: the first wait, doubled up to the maximum.
public struct ReconnectSpec: Codable, Sendable, Equatable {
    /// The first wait in milliseconds (> 0).
    public var initialMs: Int
    /// The longest wait in milliseconds (≥ initialMs).
    public var maxMs: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case initialMs = "initial_ms", maxMs = "max_ms"
    }

    public init(initialMs: Int, maxMs: Int) {
        self.initialMs = initialMs
        self.maxMs = maxMs
    }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        initialMs = try c.decode(Int.self, forKey: .initialMs)
        maxMs = try c.decode(Int.self, forKey: .maxMs)
        guard initialMs > 0 else {
            throw SpecIssue(decoder.codingPath + [CodingKeys.initialMs], "must be > 0, got \(initialMs)")
        }
        guard maxMs >= initialMs else {
            throw SpecIssue(decoder.codingPath + [CodingKeys.maxMs], "must be >= initial_ms (\(initialMs)), got \(maxMs)")
        }
    }
}

/// Model folders (relative paths resolve against the YAML file's folder).
public struct ModelSpec: Codable, Sendable, Equatable {
    /// The VLM folder or GGUF file.
    public var vlm: String?
    /// The CLIP folder used for relevance.
    public var clip: String?
    /// The language model's weight precision (`native` when absent; `--precision` overrides it).
    public var precision: Precision?

    enum CodingKeys: String, CodingKey, CaseIterable { case vlm, clip, precision }

    public init(vlm: String? = nil, clip: String? = nil, precision: Precision? = nil) {
        self.vlm = vlm
        self.clip = clip
        self.precision = precision
    }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vlm = try c.decodeIfPresent(String.self, forKey: .vlm)
        clip = try c.decodeIfPresent(String.self, forKey: .clip)
        if let p = try c.decodeIfPresent(String.self, forKey: .precision) {
            guard let v = Precision(rawValue: p) else {
                throw DecodingError.dataCorruptedError(forKey: .precision, in: c,
                    debugDescription: "'\(p)' is not a precision (expected one of: \(Precision.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            precision = v
        }
    }
}

/// Gate settings (all optional; at most one of `tokens`, `keep`, `mass`).
public struct GateSpec: Codable, Sendable, Equatable {
    /// One of ``PipelineSpec/gateMethods``.
    public var method: String?
    /// Fusion weight of relevance, in [0, 1].
    public var alpha: Double?
    /// Fraction of tokens kept, in (0, 1].
    public var keep: Double?
    /// Number of tokens kept, ≥ 1.
    public var tokens: Int?
    /// Score mass kept, in (0, 1].
    public var mass: Double?
    /// Relevance sign, 1 or -1.
    public var sign: Int?
    /// `minmax` or `zscore`.
    public var norm: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case method, alpha, keep, tokens, mass, sign, norm
    }

    public init(method: String? = nil, alpha: Double? = nil, keep: Double? = nil, tokens: Int? = nil,
                mass: Double? = nil, sign: Int? = nil, norm: String? = nil) {
        self.method = method
        self.alpha = alpha
        self.keep = keep
        self.tokens = tokens
        self.mass = mass
        self.sign = sign
        self.norm = norm
    }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let path = decoder.codingPath
        method = try c.decodeIfPresent(String.self, forKey: .method)
        alpha = try c.decodeIfPresent(Double.self, forKey: .alpha)
        keep = try c.decodeIfPresent(Double.self, forKey: .keep)
        tokens = try c.decodeIfPresent(Int.self, forKey: .tokens)
        mass = try c.decodeIfPresent(Double.self, forKey: .mass)
        sign = try c.decodeIfPresent(Int.self, forKey: .sign)
        norm = try c.decodeIfPresent(String.self, forKey: .norm)
        if let (key, message) = issue { throw SpecIssue(path + [AnyKey(key)], message) }
    }

    /// The first rule this gate breaks, as (key, message), or nil. The one set of gate rules for the
    /// pipeline YAML, `gate_config.json` and `POST /queries`: a known method and norm, α in [0, 1], keep
    /// and mass in (0, 1], tokens ≥ 1, sign ±1, and at most one of tokens, keep, mass.
    public var issue: (key: String, message: String)? {
        func show(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)" }
        if let m = method, !PipelineSpec.gateMethods.contains(m) {
            return ("method", "unknown method '\(m)' (expected one of \(PipelineSpec.gateMethods.joined(separator: ", ")))")
        }
        if let a = alpha, !(a >= 0 && a <= 1) { return ("alpha", "must be in [0, 1], got \(show(a))") }
        if let r = keep, !(r > 0 && r <= 1) { return ("keep", "must be in (0, 1], got \(show(r))") }
        if let k = tokens, k < 1 { return ("tokens", "must be >= 1, got \(k)") }
        if let m = mass, !(m > 0 && m <= 1) { return ("mass", "must be in (0, 1], got \(show(m))") }
        if let s = sign, s != 1 && s != -1 { return ("sign", "must be 1 or -1, got \(s)") }
        if let n = norm, ScoreNormalization(rawValue: n) == nil {
            return ("norm", "unknown norm '\(n)' (expected \(ScoreNormalization.allCases.map(\.rawValue).joined(separator: " or ")))")
        }
        let selectors = [("tokens", tokens != nil), ("keep", keep != nil), ("mass", mass != nil)].filter(\.1)
        if selectors.count > 1 {
            return (selectors[1].0, "only one of tokens, keep, mass may be given (also got \(selectors[0].0))")
        }
        return nil
    }

    /// The gate of a model without `gate_config.json` and a spec that leaves keys out: the paper's
    /// `atp` at α 0.5, sign +1, min-max, keeping a quarter of the tokens. The one place these defaults live.
    public static let defaults = GateSpec(method: GateMethod.atp.rawValue, alpha: 0.5, keep: 0.25, sign: 1,
                                          norm: ScoreNormalization.minmax.rawValue)

    /// This gate with `other`'s fields on top; a K choice in `other` replaces this one's.
    public func overridden(by other: GateSpec?) -> GateSpec {
        guard let o = other else { return self }
        var g = self
        g.method = o.method ?? method
        g.alpha = o.alpha ?? alpha
        g.sign = o.sign ?? sign
        g.norm = o.norm ?? norm
        if o.tokens != nil || o.keep != nil || o.mass != nil {
            g.tokens = o.tokens
            g.keep = o.keep
            g.mass = o.mass
        }
        return g
    }
}

/// A standing query.
public struct QuerySpec: Codable, Sendable, Equatable {
    /// The query's id (the `query` of answer events); unique in the spec.
    public var id: String
    /// The question.
    public var text: String
    /// Gate overrides for this query.
    public var gate: GateSpec?

    enum CodingKeys: String, CodingKey, CaseIterable { case id, text, gate }

    public init(id: String, text: String, gate: GateSpec? = nil) {
        self.id = id
        self.text = text
        self.gate = gate
    }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        guard !id.isEmpty else { throw SpecIssue(decoder.codingPath + [CodingKeys.id], "must not be empty") }
        text = try c.decode(String.self, forKey: .text)
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw SpecIssue(decoder.codingPath + [CodingKeys.text], "must not be empty")
        }
        gate = try c.decodeIfPresent(GateSpec.self, forKey: .gate)
    }
}

/// One stage's input queue, back-pressure policy and budget.
public struct StageSpec: Codable, Sendable, Equatable {
    /// Input queue capacity (≥ 1).
    public var queue: Int
    /// Back-pressure policy of the input queue.
    public var policy: OverflowPolicy
    /// Latency budget per item in milliseconds (> 0), if any.
    public var budgetMs: Double?
    /// Degradation on overrun (default `none`).
    public var onOverrun: OverrunActionKind?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case queue, policy
        case budgetMs = "budget_ms", onOverrun = "on_overrun"
    }

    public init(queue: Int, policy: OverflowPolicy, budgetMs: Double? = nil, onOverrun: OverrunActionKind? = nil) {
        self.queue = queue
        self.policy = policy
        self.budgetMs = budgetMs
        self.onOverrun = onOverrun
    }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let path = decoder.codingPath
        queue = try c.decode(Int.self, forKey: .queue)
        guard queue >= 1 else { throw SpecIssue(path + [CodingKeys.queue], "must be >= 1, got \(queue)") }
        let p = try c.decode(String.self, forKey: .policy)
        guard let policy = OverflowPolicy(rawValue: p) else {
            throw SpecIssue(path + [CodingKeys.policy], "unknown policy '\(p)' (expected one of "
                            + OverflowPolicy.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        self.policy = policy
        budgetMs = try c.decodeIfPresent(Double.self, forKey: .budgetMs)
        if let b = budgetMs, !(b > 0 && b.isFinite) {
            throw SpecIssue(path + [CodingKeys.budgetMs], "must be > 0, got \(b)")
        }
        if let o = try c.decodeIfPresent(String.self, forKey: .onOverrun) {
            guard let kind = OverrunActionKind(rawValue: o) else {
                throw SpecIssue(path + [CodingKeys.onOverrun], "unknown action '\(o)' (expected one of "
                                + OverrunActionKind.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            guard budgetMs != nil || kind == .none else {
                throw SpecIssue(path + [CodingKeys.onOverrun], "'\(o)' needs budget_ms")
            }
            onOverrun = kind
        }
    }
}

/// Where answer events go: `{jsonl: stdout}`, `{jsonl: FILE}` or `{http: {host, port}}`.
public enum SinkSpec: Codable, Sendable, Equatable {
    /// JSON Lines to `stdout` or to a file.
    case jsonl(String)
    /// The HTTP server (SSE answers, `/metrics`); port 0 picks a free port.
    case http(host: String, port: Int)

    enum CodingKeys: String, CodingKey, CaseIterable { case jsonl, http }
    enum HTTPKeys: String, CodingKey, CaseIterable { case host, port }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        guard c.allKeys.count == 1 else {
            throw SpecIssue(decoder.codingPath, "a sink has exactly one of jsonl, http")
        }
        if c.contains(.jsonl) {
            let target = try c.decode(String.self, forKey: .jsonl)
            guard !target.isEmpty else { throw SpecIssue(decoder.codingPath + [CodingKeys.jsonl], "must not be empty") }
            self = .jsonl(target)
        } else {
            let http = try c.superDecoder(forKey: .http)
            try rejectUnknownKeys(http, HTTPKeys.self)
            let h = try http.container(keyedBy: HTTPKeys.self)
            let host = try h.decodeIfPresent(String.self, forKey: .host) ?? "127.0.0.1"
            let port = try h.decodeIfPresent(Int.self, forKey: .port) ?? 0
            guard (0...65535).contains(port) else {
                throw SpecIssue(http.codingPath + [HTTPKeys.port], "must be in 0...65535, got \(port)")
            }
            self = .http(host: host, port: port)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .jsonl(let target):
            try c.encode(target, forKey: .jsonl)
        case let .http(host, port):
            var h = c.nestedContainer(keyedBy: HTTPKeys.self, forKey: .http)
            try h.encode(host, forKey: .host)
            try h.encode(port, forKey: .port)
        }
    }
}

// MARK: - Strict decoding helpers

/// A decoding failure at a key path with a message; turned into ``PipelineError/spec``.
struct SpecIssue: Error {
    let path: [CodingKey]
    let message: String
    init(_ path: [CodingKey], _ message: String) {
        self.path = path
        self.message = message
    }
}

/// Any string or integer key.
struct AnyKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(_ string: String) { stringValue = string; intValue = nil }
    init?(stringValue: String) { self.init(stringValue) }
    init?(intValue: Int) { stringValue = "\(intValue)"; self.intValue = intValue }
}

/// Throws for the first key of the mapping at `decoder` that `Keys` does not list.
func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ decoder: Decoder, _: Keys.Type) throws {
    let c = try decoder.container(keyedBy: AnyKey.self)
    let allowed = Keys.allCases.map(\.stringValue)
    for key in c.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) where !allowed.contains(key.stringValue) {
        throw SpecIssue(decoder.codingPath + [key],
                        "unknown key '\(key.stringValue)' (expected one of \(allowed.joined(separator: ", ")))")
    }
}

/// `stages.encode.queue`, `sources[0].url`.
func keyPath(_ path: [CodingKey]) -> String {
    var out = ""
    for key in path {
        if let i = key.intValue {
            out += "[\(i)]"
        } else {
            out += out.isEmpty ? key.stringValue : "." + key.stringValue
        }
    }
    return out
}

func checkUnique(_ ids: [String], path: [CodingKey], what: String) throws {
    var seen = Set<String>()
    for (i, id) in ids.enumerated() {
        guard seen.insert(id).inserted else {
            throw SpecIssue(path + [AnyKey(intValue: i)!, AnyKey("id")], "duplicate \(what) '\(id)'")
        }
    }
}

func oneLine(_ s: String) -> String {
    s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
}

func specError(_ error: DecodingError, file: String) -> PipelineError {
    switch error {
    case let .keyNotFound(key, ctx):
        return .spec(file: file, key: keyPath(ctx.codingPath + [key]), message: "missing required key")
    case let .typeMismatch(type, ctx):
        return .spec(file: file, key: keyPath(ctx.codingPath), message: "expected \(typeName(type))")
    case let .valueNotFound(type, ctx):
        return .spec(file: file, key: keyPath(ctx.codingPath), message: "expected \(typeName(type)), got null")
    case let .dataCorrupted(ctx):
        return .spec(file: file, key: keyPath(ctx.codingPath), message: oneLine(ctx.debugDescription))
    @unknown default:
        return .spec(file: file, key: "", message: oneLine("\(error)"))
    }
}

private func typeName(_ type: Any.Type) -> String {
    switch type {
    case is Int.Type: return "an integer"
    case is Double.Type: return "a number"
    case is Bool.Type: return "true or false"
    case is String.Type: return "a string"
    default:
        let name = "\(type)"
        if name.hasPrefix("Array") { return "a list" }
        if name.hasPrefix("Dictionary") || name.contains("KeyedDecodingContainer") { return "a mapping" }
        return name
    }
}
