// The HTTP side of `atp serve` on Hummingbird:
//   GET /metrics          Prometheus text (MetricsExporter)
//   GET /events           Server-Sent Events, one `data: <JSON line>` per pipeline line (EventHub)
//   GET /queries          the standing queries as JSON
//   POST /queries         add or replace a standing query (QueryAPI.parseQuery)
//   DELETE /queries/{id}  remove one
//   other methods on these paths: 405 with Allow
// The pipeline runs on its own threads; this service runs on Swift concurrency beside it and only
// reads the profiler, writes the query registry and drains the hub.
import Dispatch
import Foundation
import Hummingbird
import Logging
import NIOCore
import Pipeline
import ServiceLifecycle

/// Where and how the service listens.
public struct ServeConfiguration: Sendable {
    /// The address to bind (default 127.0.0.1, loopback only).
    public var host: String
    /// The port; 0 picks a free one.
    public var port: Int
    /// The bearer token that `POST`/`DELETE /queries` must carry (required off loopback).
    public var token: String?
    /// Lines buffered per `/events` client before it is dropped.
    public var eventBuffer: Int
    /// The largest request body accepted, in bytes.
    public var maxBodyBytes: Int
    /// Seconds a connection may sit without a request in progress (before its first request, between
    /// keep-alive requests, or with a request head that never ends) before it is closed. A streaming
    /// `/events` response is a request in progress.
    public var idleTimeout: Double

    /// Creates a configuration.
    public init(host: String = "127.0.0.1", port: Int = 0, token: String? = nil, eventBuffer: Int = 256, maxBodyBytes: Int = 64 * 1024,
                idleTimeout: Double = 60) {
        self.host = host
        self.port = port
        self.token = token
        self.eventBuffer = eventBuffer
        self.maxBodyBytes = maxBodyBytes
        self.idleTimeout = idleTimeout
    }
}

/// What the service reads and changes: the profiler, the standing queries, and how to prepare a new query.
public struct ServeBackend: Sendable {
    /// The pipeline's profiler (read by `/metrics`).
    public var profiler: Profiler
    /// The standing queries (read and changed by `/queries`).
    public var queries: QueryRegistry
    /// The pipeline's `gate:` block, which posted gates override.
    public var baseGate: GateSpec
    /// Called once for each added query before it is registered (computes its CLIP text embedding).
    public var prepare: @Sendable (StandingQuery) throws -> Void
    /// Called with a removed query's text when no remaining query asks the same text (drops cached embeddings).
    public var forget: @Sendable (String) -> Void

    /// Creates a backend from parts (tests use this with a bare profiler and registry).
    public init(profiler: Profiler, queries: QueryRegistry, baseGate: GateSpec = GateSpec(),
                prepare: @escaping @Sendable (StandingQuery) throws -> Void = { _ in },
                forget: @escaping @Sendable (String) -> Void = { _ in }) {
        self.profiler = profiler
        self.queries = queries
        self.baseGate = baseGate
        self.prepare = prepare
        self.forget = forget
    }

    /// The backend of a pipeline runner: its profiler and queries; a new query's text embedding is computed
    /// (and cached) by the runner's session when it is added.
    public init(runner: PipelineRunner) {
        let session = runner.session
        self.init(profiler: runner.profiler, queries: runner.queries, baseGate: runner.baseGate,
                  prepare: { q in _ = try session.textEmbedding(q.text) },
                  forget: { text in session.forget(query: text) })
    }
}

/// A failure to start or run the service.
public struct ServeError: Error, CustomStringConvertible, Sendable {
    /// One line naming the address or option.
    public let description: String
    init(_ d: String) { description = d }
}

/// The request context: Hummingbird's basics plus the connection, so that a dropped `/events` client
/// can be disconnected.
struct ServeContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The HTTP service of `atp serve`. Start it with ``start()``, stop it with ``stop()``; both block the caller
/// (call them from a thread, not from an async task).
public final class HTTPService: @unchecked Sendable {
    /// The configuration it was created with.
    public let configuration: ServeConfiguration
    /// The fan-out of pipeline lines to `/events`; the pipeline's emit callback calls `hub.publish`.
    public let hub: EventHub
    /// The `/metrics` renderer.
    public let metrics = MetricsExporter()
    /// Returns freed memory to the OS when the last `/events` client has left.
    let idleTrim: IdleTrim
    private let backend: ServeBackend
    private let lock = NSLock()
    private var group: ServiceGroup?
    private var finished: DispatchSemaphore?
    private var boundPort: Int?

    /// Creates a service (nothing is bound until ``start()``).
    /// - Throws: ``ServeError`` when `host` is not loopback and no token is given, for a port outside 0…65535,
    ///   or an idle timeout outside (0, 1e6) s.
    public init(configuration: ServeConfiguration, backend: ServeBackend, hub: EventHub? = nil) throws {
        try ServeAuth.checkStart(host: configuration.host, token: configuration.token)
        guard (0...65535).contains(configuration.port) else {
            throw ServeError("--port \(configuration.port): must be in 0...65535")
        }
        guard configuration.idleTimeout > 0, configuration.idleTimeout < 1e6 else {
            throw ServeError("idle timeout \(configuration.idleTimeout) s: must be in (0, 1e6)")
        }
        self.configuration = configuration
        self.backend = backend
        let hub = hub ?? EventHub(capacity: configuration.eventBuffer)
        self.hub = hub
        idleTrim = IdleTrim(isIdle: { hub.currentStats.clients == 0 })
    }

    /// The bound port, once started.
    public var port: Int? { lock.withLock { boundPort } }

    /// The base URL, once started (`http://127.0.0.1:PORT`).
    public var url: String? {
        port.map { p in
            let h = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
            return "http://\(h):\(p)"
        }
    }

    /// Binds and starts serving in the background; returns when the socket is listening.
    /// - Parameter timeout: the most seconds to wait for the bind.
    /// - Returns: the bound port (the chosen one when the configured port is 0).
    /// - Throws: ``ServeError`` naming the address when it cannot be bound.
    @discardableResult
    public func start(timeout: Double = 30) throws -> Int {
        var logger = Logger(label: "atp.serve", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .warning
        let ready = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        let app = Application(
            router: makeRouter(),
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(Int64(configuration.idleTimeout * 1e9)))),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port)),
            onServerRunning: { channel in
                outcome.set(.success(channel.localAddress?.port ?? -1))
                ready.signal()
            },
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let address = "\(configuration.host):\(configuration.port)"
        Task.detached {
            do {
                try await group.run()
                outcome.set(.failure(ServeError("http://\(address): the server stopped before it was listening")))
            } catch {
                outcome.set(.failure(ServeError("http://\(address): cannot serve (\(error))")))
            }
            ready.signal()
            done.signal()
        }
        guard ready.wait(timeout: .now() + timeout) == .success else {
            Task { await group.triggerGracefulShutdown() }
            throw ServeError("http://\(address): not listening after \(timeout) s")
        }
        switch outcome.value! {
        case .success(let port):
            lock.withLock {
                self.group = group
                self.finished = done
                self.boundPort = port
            }
            return port
        case .failure(let error):
            throw error
        }
    }

    /// Ends every `/events` stream, stops accepting connections and waits (up to `timeout` seconds) for the
    /// server to finish. Safe to call more than once.
    public func stop(timeout: Double = 10) {
        hub.close()
        let (group, done): (ServiceGroup?, DispatchSemaphore?) = lock.withLock {
            defer { self.group = nil; self.finished = nil }
            return (self.group, self.finished)
        }
        guard let group, let done else { return }
        Task.detached { await group.triggerGracefulShutdown() }
        _ = done.wait(timeout: .now() + timeout)
    }

    // MARK: - Routes

    private func makeRouter() -> Router<ServeContext> {
        let router = Router(context: ServeContext.self)
        let backend = self.backend
        let hub = self.hub
        let idleTrim = self.idleTrim
        let metrics = self.metrics
        let token = configuration.token
        let maxBody = configuration.maxBodyBytes

        router.get("/metrics") { _, _ -> Response in
            let text = metrics.render(profiler: backend.profiler, hub: hub)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }

        router.get("/events") { request, context -> Response in
            let channel = context.channel
            let subscription = hub.subscribe(onDrop: { channel.close(mode: .all, promise: nil) })
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    defer {
                        hub.unsubscribe(subscription.id)
                        if hub.currentStats.clients == 0 { idleTrim.poke() }
                    }
                    try await writer.write(ByteBuffer(string: ": atp events\n\n"))
                    // A client that leaves (FIN, reset or half-close) ends its stream at once: waiting for the
                    // next event to fail its write would keep the subscription, task and socket while no
                    // event flows.
                    try await request.body.consumeWithInboundCloseHandler { _ in
                        for await line in subscription.lines {
                            try await writer.write(ByteBuffer(string: "data: \(line)\n\n"))
                        }
                    } onInboundClosed: {
                        hub.unsubscribe(subscription.id)
                    }
                    try await writer.finish(nil)
                })
        }

        router.get("/queries") { _, _ -> Response in
            Self.json(.ok, QueryAPI.listJSON(backend.queries.all))
        }

        router.post("/queries") { request, _ -> Response in
            do {
                try ServeAuth.authorizeChange(token: token, authorization: request.headers[.authorization])
                let buffer: ByteBuffer
                do {
                    buffer = try await request.body.collect(upTo: maxBody)
                } catch {
                    throw APIError(status: 413, "body: larger than \(maxBody) bytes")
                }
                let query = try QueryAPI.parseQuery(Data(buffer.readableBytesView), baseGate: backend.baseGate)
                do {
                    try await Self.offPool { try backend.prepare(query) }
                } catch {
                    throw APIError(status: 400, "text: cannot compute its text embedding (\(error))")
                }
                let replaced = backend.queries.upsert(query)
                return Self.json(replaced ? .ok : .created, QueryAPI.json(query))
            } catch let e as APIError {
                return Self.error(e)
            }
        }

        router.delete("/queries/:id") { request, context -> Response in
            do {
                try ServeAuth.authorizeChange(token: token, authorization: request.headers[.authorization])
                let id = context.parameters.get("id") ?? ""
                let before = backend.queries.all
                guard let removed = before.first(where: { $0.id == id }), backend.queries.remove(id: id) else {
                    throw APIError(status: 404, "id: no standing query \(JSONLine.encode(id))")
                }
                if !backend.queries.all.contains(where: { $0.text == removed.text }) { backend.forget(removed.text) }
                return Response(status: .noContent)
            } catch let e as APIError {
                return Self.error(e)
            }
        }

        // A known path asked with a method it does not serve: 405 with `Allow` (Hummingbird alone answers 404).
        let served: [(path: RouterPath, shown: String, methods: [HTTPRequest.Method])] = [
            ("/metrics", "/metrics", [.get]), ("/events", "/events", [.get]),
            ("/queries", "/queries", [.get, .post]), ("/queries/:id", "/queries/{id}", [.delete]),
        ]
        for route in served {
            let allow = route.methods.map(\.rawValue).joined(separator: ", ")
            for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] where !route.methods.contains(method) {
                router.on(route.path, method: method) { _, _ -> Response in
                    var r = Self.error(APIError(status: 405, "method: \(method.rawValue) is not allowed on \(route.shown) (allowed: \(allow))"))
                    r.headers[.init("Allow")!] = allow
                    return r
                }
            }
        }
        return router
    }

    private static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: body + "\n")))
    }

    private static func error(_ e: APIError) -> Response {
        var r = json(HTTPResponse.Status(code: e.status), e.jsonBody)
        if e.status == 401 { r.headers[.wwwAuthenticate] = "Bearer" }
        return r
    }

    /// Runs blocking work (a text-encoder forward pass) on a Dispatch thread, not on the concurrency pool.
    private static func offPool(_ work: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                do { try work(); c.resume() } catch { c.resume(throwing: error) }
            }
        }
    }
}

/// The first result of a start attempt.
private final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Int, ServeError>?
    func set(_ r: Result<Int, ServeError>) { lock.withLock { if result == nil { result = r } } }
    var value: Result<Int, ServeError>? { lock.withLock { result } }
}
