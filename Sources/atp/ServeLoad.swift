// The client side of `atp bench serve`: plain POSIX sockets to 127.0.0.1 only.
//   LoopbackHTTP  one request per connection (Connection: close) over a blocking socket with timeouts
//   SSELoad       N Server-Sent Events clients on one thread and one poll(2) loop: each connects to
//                 /events, reads for a random short time and drops the connection (FIN, RST, half-close,
//                 or before reading the response), then reconnects; a client's first session, and every
//                 session that ends with a FIN, reads until it has had an event
//   BadRequests   requests that must be refused (no or wrong token, malformed bodies, wrong methods,
//                 broken HTTP) with the status each must get
// The driver is bounded: one fd per SSE client plus one per request in flight, and four threads.
import Dispatch
import Foundation
import SplitMix
#if canImport(Glibc)
import Glibc
#endif

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

extension SplitMix64 {
    /// Uniform in `range` (the load's jitter).
    mutating func uniform(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + nextUnit() * (range.upperBound - range.lowerBound)
    }
}

/// Opens a TCP socket to 127.0.0.1:`port` (non-blocking when asked: the connect may then be in progress).
/// - Returns: the fd, or -errno.
func loopbackSocket(port: Int, nonBlocking: Bool) -> Int32 {
    let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
    let fd = socket(AF_INET, type, 0)
    guard fd >= 0 else { return -errno }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc != 0 && !(nonBlocking && errno == EINPROGRESS) {
        let e = errno
        close(fd)
        return -e
    }
    return fd
}

/// Closes `fd` with a TCP reset instead of a FIN (SO_LINGER 0): the peer sees ECONNRESET mid-stream.
func resetAndClose(_ fd: Int32) {
    var l = linger(l_onoff: 1, l_linger: 0)
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    close(fd)
}

// MARK: - One request per connection

/// An HTTP reply read to the end of its connection.
struct LoopbackReply {
    let status: Int
    /// Header names lower-cased.
    let headers: [String: String]
    let body: String
}

enum LoopbackHTTP {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Sends `raw` bytes on a new connection to 127.0.0.1:`port` and reads the reply until the server closes.
    ///
    /// A server may answer and close before it has read all of a large body; the write then fails and the
    /// reply already sent is still read.
    static func exchange(port: Int, raw: [UInt8], timeout: Double) throws -> LoopbackReply {
        let fd = loopbackSocket(port: port, nonBlocking: false)
        guard fd >= 0 else { throw Failure(description: "connect to 127.0.0.1:\(port): errno \(-fd)") }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var off = 0
        while off < raw.count {
            let n = raw.withUnsafeBytes { send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }   // refused mid-body: read what was answered
            off += n
        }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 { bytes.append(contentsOf: buf[0..<n]); continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                throw Failure(description: "no reply within \(timeout) s (\(bytes.count) bytes read)")
            }
            break   // EOF, or a reset after the reply
        }
        return try parse(bytes)
    }

    /// `METHOD path` with `Connection: close`, optional headers and body.
    static func request(_ method: String, _ path: String, port: Int, headers: [(String, String)] = [],
                        body: [UInt8]? = nil, timeout: Double = 15) throws -> LoopbackReply {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        return try exchange(port: port, raw: Array(head.utf8) + (body ?? []), timeout: timeout)
    }

    /// Parses a whole reply: status line, headers, and a body framed by Content-Length, chunks or EOF.
    static func parse(_ bytes: [UInt8]) throws -> LoopbackReply {
        let crlf2: [UInt8] = [13, 10, 13, 10]
        guard let end = bytes.firstRange(of: crlf2) else {
            throw Failure(description: bytes.isEmpty ? "connection closed with no reply" : "incomplete reply head (\(bytes.count) bytes)")
        }
        let lines = String(decoding: bytes[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw Failure(description: "bad status line '\(lines[0])'")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let c = line.firstIndex(of: ":") else { continue }
            headers[line[..<c].lowercased()] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(bytes[end.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var decoder = ChunkedDecoder()
            var out: [UInt8] = []
            guard decoder.feed(body[...], into: &out) else { throw Failure(description: "bad chunked body") }
            body = out
        } else if let n = headers["content-length"].flatMap({ Int($0) }) {
            guard body.count >= n else { throw Failure(description: "body shorter than its Content-Length (\(body.count) < \(n))") }
            body = Array(body[..<n])
        }
        return LoopbackReply(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
    }
}

/// Decodes an HTTP/1.1 chunked body incrementally.
struct ChunkedDecoder {
    private enum State { case size, extensionToEOL, sizeLF, data(Int), dataCR, dataLF, trailer, done }
    private var state = State.size
    private var size = 0
    private var sizeDigits = 0
    /// The last (zero-size) chunk has been read.
    var finished: Bool { if case .done = state { return true } else { return false } }

    /// Appends the decoded bytes of `input` to `out`; false on a framing error.
    mutating func feed(_ input: ArraySlice<UInt8>, into out: inout [UInt8]) -> Bool {
        var i = input.startIndex
        while i < input.endIndex {
            let b = input[i]
            switch state {
            case .size:
                if let d = hexValue(b) {
                    guard sizeDigits < 8 else { return false }
                    size = size * 16 + d
                    sizeDigits += 1
                } else if b == UInt8(ascii: ";") && sizeDigits > 0 {
                    state = .extensionToEOL
                } else if b == 13 && sizeDigits > 0 {
                    state = .sizeLF
                } else {
                    return false
                }
                i += 1
            case .extensionToEOL:
                if b == 13 { state = .sizeLF }
                i += 1
            case .sizeLF:
                guard b == 10 else { return false }
                state = size == 0 ? .trailer : .data(size)
                (size, sizeDigits) = (0, 0)
                i += 1
            case .data(let remaining):
                let n = min(remaining, input.endIndex - i)
                out.append(contentsOf: input[i..<(i + n)])
                i += n
                state = remaining == n ? .dataCR : .data(remaining - n)
            case .dataCR:
                guard b == 13 else { return false }
                state = .dataLF
                i += 1
            case .dataLF:
                guard b == 10 else { return false }
                state = .size
                i += 1
            case .trailer:
                // Only the empty trailer is expected: CRLF.
                if b == 10 { state = .done }
                i += 1
            case .done:
                return false
            }
        }
        return true
    }

    private func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(b - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(b - UInt8(ascii: "A")) + 10
        default: return nil
        }
    }
}

/// Counts SSE `data:` lines (one per event, as `/events` writes them) in a decoded stream fed in pieces.
struct SSEEventCounter {
    private static let prefix = Array("data:".utf8)
    private var matched = 0   // prefix bytes matched at the start of the current line; -1: not a data line
    private(set) var events = 0

    mutating func feed(_ bytes: [UInt8]) {
        for b in bytes {
            if b == 10 { matched = 0; continue }
            guard matched >= 0, matched < Self.prefix.count else { continue }
            if b == Self.prefix[matched] {
                matched += 1
                if matched == Self.prefix.count { events += 1 }
            } else {
                matched = -1
            }
        }
    }
}

// MARK: - SSE clients

/// N `/events` clients that connect, read for a while and drop, on the calling thread.
final class SSELoad: @unchecked Sendable {   // run() on one thread; totals read under the lock
    /// How a session ends.
    enum Ending: String, CaseIterable {
        /// close(2) after reading at least one event: a FIN.
        case close
        /// SO_LINGER 0 then close(2): a reset in the middle of the stream.
        case reset
        /// shutdown(SHUT_WR), a short read, then close(2).
        case halfClose = "half-close"
        /// close(2) right after sending the request, before reading anything.
        case beforeHead = "before-head"
    }

    struct Totals {
        /// Connections opened.
        var connections = 0
        /// Sessions whose response head was 200 text/event-stream.
        var streams = 0
        /// Sessions that received at least one event.
        var streamsWithData = 0
        /// `data:` events received.
        var events = 0
        /// Decoded body bytes received.
        var bytes = 0
        /// Sessions by how they ended.
        var endings: [String: Int] = [:]
        /// Failures by kind (connect errors, bad status, closed by the server, framing, stalls).
        var errors: [String: Int] = [:]
        /// Clients (slots) that received at least one event over the run.
        var clientsWithData = 0
        /// The longest time from connecting to a session's first event, seconds.
        var longestFirstEvent = 0.0
        /// Most connections open at once.
        var peakOpen = 0
        var errorCount: Int { errors.values.reduce(0, +) }
    }

    private enum Phase { case idle, connecting, head, body, halfClosed(until: Double) }

    private struct Slot {
        var fd: Int32 = -1
        var phase = Phase.idle
        var nextStart = 0.0
        var started = 0.0
        var deadline = 0.0
        var ending = Ending.close
        var head: [UInt8] = []
        var chunks = ChunkedDecoder()
        var counter = SSEEventCounter()
        var countedEvents = 0
        var total = 0
        var sessions = 0
    }

    let port: Int
    let clients: Int
    /// How long a session reads before it drops, seconds.
    let hold: ClosedRange<Double>
    /// The pause before a client reconnects, seconds.
    let gap: ClosedRange<Double>
    /// A response head later than this after connecting is an error (a stalled server).
    let headTimeout: Double
    /// A session that waits for an event and gets none in this many seconds is an error.
    let eventTimeout: Double
    private var random: SplitMix64
    private var slots: [Slot]
    private let lock = NSLock()
    private var totals = Totals()
    private var stopFlag = false

    init(port: Int, clients: Int, hold: ClosedRange<Double> = 0.1...1.5, gap: ClosedRange<Double> = 0...0.1,
         headTimeout: Double = 5, eventTimeout: Double = 10, seed: UInt64 = 1) {
        precondition(clients >= 1, "clients \(clients) must be ≥ 1")
        self.port = port
        self.clients = clients
        self.hold = hold
        self.gap = gap
        self.headTimeout = headTimeout
        self.eventTimeout = eventTimeout
        random = SplitMix64(seed: seed)
        slots = Array(repeating: Slot(), count: clients)
    }

    /// The counters so far.
    var snapshot: Totals { lock.withLock { totals } }

    /// Makes ``run()`` end every session and return.
    func stop() { lock.withLock { stopFlag = true } }

    /// Runs until ``stop()``; then ends every open session (with mixed endings) and returns.
    func run() {
        let start = monotonicSeconds()
        for i in slots.indices { slots[i].nextStart = start + random.uniform(0...0.5) }   // spread the first connects
        var pollfds: [pollfd] = []
        var index: [Int] = []
        pollfds.reserveCapacity(clients)
        index.reserveCapacity(clients)
        var readBuffer = [UInt8](repeating: 0, count: 32 * 1024)
        while true {
            let stopping = lock.withLock { stopFlag }
            let now = monotonicSeconds()
            var open = 0
            for i in slots.indices {
                if case .idle = slots[i].phase {
                    if !stopping && now >= slots[i].nextStart { begin(i, now: now) }
                } else if stopping {
                    end(i, now: now, forced: true)
                } else {
                    checkDeadline(i, now: now)
                }
                if slots[i].fd >= 0 { open += 1 }
            }
            lock.withLock { totals.peakOpen = max(totals.peakOpen, open) }
            if stopping && open == 0 { break }
            pollfds.removeAll(keepingCapacity: true)
            index.removeAll(keepingCapacity: true)
            for i in slots.indices where slots[i].fd >= 0 {
                let events: Int16
                if case .connecting = slots[i].phase { events = Int16(POLLOUT) } else { events = Int16(POLLIN) }
                pollfds.append(pollfd(fd: slots[i].fd, events: events, revents: 0))
                index.append(i)
            }
            if pollfds.isEmpty {
                usleep(10_000)
                continue
            }
            guard poll(&pollfds, nfds_t(pollfds.count), 10) > 0 else { continue }
            let now2 = monotonicSeconds()
            for (k, p) in pollfds.enumerated() where p.revents != 0 {
                let i = index[k]
                guard slots[i].fd == p.fd else { continue }
                if case .connecting = slots[i].phase {
                    connected(i, now: now2)
                } else {
                    receive(i, into: &readBuffer, now: now2)
                }
            }
        }
        lock.withLock { totals.clientsWithData = slots.filter { $0.total > 0 }.count }
    }

    // MARK: Session steps

    private func count(error: String) {
        lock.withLock { totals.errors[error, default: 0] += 1 }
    }

    private func begin(_ i: Int, now: Double) {
        let fd = loopbackSocket(port: port, nonBlocking: true)
        guard fd >= 0 else {
            count(error: "connect: \(String(cString: strerror(-fd)))")
            slots[i].nextStart = now + 0.1
            return
        }
        lock.withLock { totals.connections += 1 }
        // Endings: 40 % FIN, 30 % reset, 15 % half-close, 15 % before the head; a client's first session ends
        // with a FIN, so that every client reads at least one event.
        let r = random.uniform(0...1)
        let ending: Ending = slots[i].sessions == 0 || r < 0.4 ? .close : r < 0.7 ? .reset : r < 0.85 ? .halfClose : .beforeHead
        slots[i].sessions += 1
        slots[i].fd = fd
        slots[i].phase = .connecting
        slots[i].started = now
        slots[i].deadline = now + random.uniform(hold)
        slots[i].ending = ending
        slots[i].head.removeAll(keepingCapacity: true)
        slots[i].chunks = ChunkedDecoder()
        slots[i].counter = SSEEventCounter()
        slots[i].countedEvents = 0
    }

    private func connected(_ i: Int, now: Double) {
        let fd = slots[i].fd
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        guard err == 0 else {
            count(error: "connect: \(String(cString: strerror(err)))")
            finish(i, now: now, ending: nil)
            return
        }
        let request = Array("GET /events HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n\r\n".utf8)
        let n = request.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n == request.count else {
            count(error: "send request: \(n < 0 ? String(cString: strerror(errno)) : "short write")")
            finish(i, now: now, ending: nil)
            return
        }
        if slots[i].ending == .beforeHead {
            finish(i, now: now, ending: .beforeHead)
            return
        }
        slots[i].phase = .head
    }

    private func checkDeadline(_ i: Int, now: Double) {
        switch slots[i].phase {
        case .connecting, .head:
            if now - slots[i].started > headTimeout {
                count(error: "no response head within \(headTimeout) s")
                finish(i, now: now, ending: nil)
            }
        case .body:
            guard now >= slots[i].deadline else { break }
            if slots[i].ending != .close || slots[i].countedEvents > 0 {
                end(i, now: now, forced: false)
            } else if now - slots[i].started > eventTimeout {
                count(error: "no event within \(eventTimeout) s")
                finish(i, now: now, ending: nil)
            }
        case .halfClosed(let until):
            if now >= until { finish(i, now: now, ending: .halfClose) }
        case .idle:
            break
        }
    }

    /// Ends a session the way it was drawn (at stop: whatever its phase).
    private func end(_ i: Int, now: Double, forced: Bool) {
        switch slots[i].phase {
        case .idle:
            return
        case .halfClosed:
            finish(i, now: now, ending: .halfClose)
        case .connecting, .head:
            // At stop, or a deadline before the head: not the server's fault unless headTimeout passed.
            finish(i, now: now, ending: forced ? .reset : .close)
        case .body:
            if slots[i].ending == .halfClose && !forced {
                shutdown(slots[i].fd, Int32(SHUT_WR))
                slots[i].phase = .halfClosed(until: now + 0.2)
            } else {
                finish(i, now: now, ending: slots[i].ending == .halfClose ? .close : slots[i].ending)
            }
        }
    }

    /// Closes the slot's socket (`ending` nil: after an error) and schedules the next connect.
    private func finish(_ i: Int, now: Double, ending: Ending?) {
        let fd = slots[i].fd
        if ending == .reset || ending == nil { resetAndClose(fd) } else { close(fd) }
        let events = slots[i].countedEvents
        lock.withLock {
            if let ending { totals.endings[ending.rawValue, default: 0] += 1 }
            if events > 0 { totals.streamsWithData += 1 }
        }
        slots[i].fd = -1
        slots[i].phase = .idle
        slots[i].nextStart = now + random.uniform(gap)
    }

    private func receive(_ i: Int, into buffer: inout [UInt8], now: Double) {
        let fd = slots[i].fd
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
        if n <= 0 {
            // The server closed (or reset) the connection.
            if case .halfClosed = slots[i].phase {
                finish(i, now: now, ending: .halfClose)   // expected: it saw our FIN
            } else {
                count(error: "closed by the server mid-stream")
                finish(i, now: now, ending: nil)
            }
            return
        }
        var bytes = Array(buffer[0..<n])
        if case .head = slots[i].phase {
            slots[i].head.append(contentsOf: bytes)
            guard let end = slots[i].head.firstRange(of: [13, 10, 13, 10] as [UInt8]) else {
                if slots[i].head.count > 16 * 1024 {
                    count(error: "response head over 16 KiB")
                    finish(i, now: now, ending: nil)
                }
                return
            }
            let headText = String(decoding: slots[i].head[..<end.lowerBound], as: UTF8.self).lowercased()
            guard headText.hasPrefix("http/1.1 200"), headText.contains("content-type: text/event-stream"),
                  headText.contains("transfer-encoding: chunked") else {
                let statusLine = headText.components(separatedBy: "\r\n").first ?? ""
                count(error: "unexpected head '\(statusLine)'")
                finish(i, now: now, ending: nil)
                return
            }
            bytes = Array(slots[i].head[end.upperBound...])
            slots[i].head.removeAll(keepingCapacity: true)
            slots[i].phase = .body
            lock.withLock { totals.streams += 1 }
        }
        var decoded: [UInt8] = []
        guard slots[i].chunks.feed(bytes[...], into: &decoded) else {
            count(error: "bad chunked framing")
            finish(i, now: now, ending: nil)
            return
        }
        slots[i].counter.feed(decoded)
        let fresh = slots[i].counter.events - slots[i].countedEvents
        let first = slots[i].countedEvents == 0 && fresh > 0
        slots[i].countedEvents = slots[i].counter.events
        slots[i].total += fresh
        let started = slots[i].started
        lock.withLock {
            totals.events += fresh
            totals.bytes += decoded.count
            if first { totals.longestFirstEvent = max(totals.longestFirstEvent, now - started) }
        }
        if slots[i].chunks.finished {
            // The server ended the stream (it only does so at shutdown).
            if case .halfClosed = slots[i].phase {
                finish(i, now: now, ending: .halfClose)
            } else {
                count(error: "stream ended by the server")
                finish(i, now: now, ending: nil)
            }
        }
    }
}

// MARK: - Requests that must be refused

/// One request the server must refuse, and the status it must get.
struct BadRequest {
    let name: String
    let expected: Int
    /// The whole request as bytes (a raw request line for broken HTTP).
    let raw: [UInt8]
    /// Whether the reply must be the API's one-line `{"error":"…"}` (not for broken HTTP, which the
    /// HTTP parser refuses before any route runs).
    var jsonError = true
}

enum BadRequests {
    /// The id prefix of every query a bad request tries to add (none may ever be listed).
    static let idPrefix = "bad-"

    /// The battery: unauthenticated changes (401), malformed bodies (400), a body over the limit (413),
    /// unknown ids (404), wrong methods (405) and broken HTTP (400).
    /// - Parameters:
    ///   - token: the server's bearer token.
    ///   - existingID: a standing query that unauthenticated deletes aim at.
    static func battery(port: Int, token: String, existingID: String, maxBodyBytes: Int = 64 * 1024) -> [BadRequest] {
        func req(_ name: String, _ expected: Int, _ method: String, _ path: String,
                 auth: String?, body: [UInt8]? = nil, contentType: String = "application/json") -> BadRequest {
            var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
            if let auth { head += "Authorization: \(auth)\r\n" }
            if let body { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" }
            return BadRequest(name: name, expected: expected, raw: Array((head + "\r\n").utf8) + (body ?? []))
        }
        let good = Array(#"{"id":"\#(idPrefix)unauth","text":"Is there a person?"}"#.utf8)
        let bearer = "Bearer \(token)"
        let huge = Array(#"{"id":"\#(idPrefix)huge","text":""#.utf8) + [UInt8](repeating: UInt8(ascii: "y"), count: maxBodyBytes + 1024)
            + Array(#""}"#.utf8)
        let deep = [UInt8](repeating: UInt8(ascii: "["), count: 20_000) + [UInt8](repeating: UInt8(ascii: "]"), count: 20_000)
        return [
            // Unauthenticated: the token is checked before the body is read.
            req("POST without a token", 401, "POST", "/queries", auth: nil, body: good),
            req("POST with a wrong token", 401, "POST", "/queries", auth: "Bearer wrong-\(token.count)", body: good),
            req("POST with the token plus a byte", 401, "POST", "/queries", auth: bearer + "x", body: good),
            req("POST with a token prefix", 401, "POST", "/queries", auth: String(bearer.dropLast()), body: good),
            req("POST with Basic auth", 401, "POST", "/queries", auth: "Basic YWRtaW46YWRtaW4=", body: good),
            req("POST with an empty bearer", 401, "POST", "/queries", auth: "Bearer ", body: good),
            req("POST huge body without a token", 401, "POST", "/queries", auth: nil, body: huge),
            req("DELETE without a token", 401, "DELETE", "/queries/\(existingID)", auth: nil),
            req("DELETE with a wrong token", 401, "DELETE", "/queries/\(existingID)", auth: "Bearer nope"),
            // Malformed, with the token.
            req("bad JSON", 400, "POST", "/queries", auth: bearer, body: Array(#"{"id":"bad-json","text":"#.utf8)),
            req("empty body", 400, "POST", "/queries", auth: bearer, body: []),
            req("JSON array", 400, "POST", "/queries", auth: bearer, body: Array("[]".utf8)),
            req("unknown field", 400, "POST", "/queries", auth: bearer,
                body: Array(#"{"id":"\#(idPrefix)field","text":"Is it?","colour":"red"}"#.utf8)),
            req("empty text", 400, "POST", "/queries", auth: bearer, body: Array(#"{"id":"\#(idPrefix)empty","text":"  "}"#.utf8)),
            req("text not a string", 400, "POST", "/queries", auth: bearer, body: Array(#"{"id":"\#(idPrefix)num","text":42}"#.utf8)),
            req("missing id", 400, "POST", "/queries", auth: bearer, body: Array(#"{"text":"Is it?"}"#.utf8)),
            req("bad id", 400, "POST", "/queries", auth: bearer, body: Array(#"{"id":"\#(idPrefix)a/b c","text":"Is it?"}"#.utf8)),
            req("gate out of range", 400, "POST", "/queries", auth: bearer,
                body: Array(#"{"id":"\#(idPrefix)gate","text":"Is it?","gate":{"keep":2}}"#.utf8)),
            req("unknown gate key", 400, "POST", "/queries", auth: bearer,
                body: Array(#"{"id":"\#(idPrefix)gk","text":"Is it?","gate":{"speed":1}}"#.utf8)),
            req("invalid UTF-8", 400, "POST", "/queries", auth: bearer,
                body: Array(#"{"id":"\#(idPrefix)utf","text":""#.utf8) + [0xC3, 0x28, 0xFF] + Array(#""}"#.utf8)),
            req("deeply nested JSON", 400, "POST", "/queries", auth: bearer, body: deep),
            req("body over the limit", 413, "POST", "/queries", auth: bearer, body: huge),
            // Ids that name nothing.
            req("DELETE an unknown id", 404, "DELETE", "/queries/\(idPrefix)missing", auth: bearer),
            req("DELETE an encoded path", 404, "DELETE", "/queries/..%2F..%2Fetc", auth: bearer),
            // Wrong methods on known paths.
            req("PUT /queries", 405, "PUT", "/queries", auth: bearer, body: good),
            req("DELETE /queries", 405, "DELETE", "/queries", auth: bearer),
            req("PATCH /queries/{id}", 405, "PATCH", "/queries/\(existingID)", auth: bearer, body: good),
            req("POST /events", 405, "POST", "/events", auth: bearer, body: good),
            req("POST /metrics", 405, "POST", "/metrics", auth: bearer, body: good),
            // Broken HTTP.
            BadRequest(name: "not HTTP", expected: 400, raw: Array("HELLO THERE\r\n\r\n".utf8), jsonError: false),
            BadRequest(name: "bad Content-Length", expected: 400,
                       raw: Array("POST /queries HTTP/1.1\r\nHost: x\r\nAuthorization: \(bearer)\r\nContent-Length: -5\r\n\r\n".utf8),
                       jsonError: false),
        ]
    }
}
