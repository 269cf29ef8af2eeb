import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 client over a POSIX socket, for loopback tests only (127.0.0.1), with timeouts on
/// every read and write so that no test can hang.
final class TestSocket: @unchecked Sendable {   // used by one thread at a time
    let fd: Int32
    private var pending: [UInt8] = []

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Connects to 127.0.0.1:port. `receiveBuffer` sets SO_RCVBUF before connecting (a small one makes a
    /// client that never reads fill up quickly).
    init(port: Int, timeout: Double = 10, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        if var rb = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, socklen_t(MemoryLayout<Int32>.size))
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw Failure(description: "connect to 127.0.0.1:\(port) failed (errno \(errno))")
        }
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        var bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            guard n > 0 else { throw Failure(description: "write failed (errno \(errno))") }
            off += n
        }
    }

    /// Reads more bytes into the pending buffer; returns false at EOF or on a reset, throws on timeout.
    private func fill() throws -> Bool {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n > 0 { pending.append(contentsOf: buf[0..<n]); return true }
        if n == 0 { return false }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw Failure(description: "read timed out") }
        return false   // ECONNRESET and friends end the stream
    }

    /// Reads raw bytes until EOF (or reset); returns how many. Throws when the deadline passes first.
    func drainToEOF(deadline: Date) throws -> Int {
        var total = pending.count
        pending.removeAll()
        while Date() < deadline {
            if try !fill() { return total }
            total += pending.count
            pending.removeAll()
        }
        throw Failure(description: "no EOF before the deadline")
    }

    /// Reads one line ending in CRLF (without it).
    func readLine() throws -> String {
        while true {
            if let i = pending.firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(pending[..<i])
                pending.removeFirst(i + 1)
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill() else { throw Failure(description: "connection closed mid-line") }
        }
    }

    func readBytes(_ count: Int) throws -> [UInt8] {
        while pending.count < count {
            guard try fill() else { throw Failure(description: "connection closed mid-body") }
        }
        let out = Array(pending[..<count])
        pending.removeFirst(count)
        return out
    }

    /// Reads a status line and headers; returns the status and lower-cased header names.
    func readHead() throws -> (status: Int, headers: [String: String]) {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw Failure(description: "bad status line '\(statusLine)'") }
        var headers: [String: String] = [:]
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            if let c = line.firstIndex(of: ":") {
                headers[line[..<c].lowercased()] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return (status, headers)
    }

    /// Reads the next chunk of a chunked body (nil at the last chunk).
    func readChunk() throws -> [UInt8]? {
        let sizeLine = try readLine()
        guard let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) else {
            throw Failure(description: "bad chunk size '\(sizeLine)'")
        }
        if size == 0 { _ = try? readLine(); return nil }
        let data = try readBytes(size)
        _ = try readLine()
        return data
    }
}

/// One HTTP exchange's result.
struct HTTPReply {
    let status: Int
    let headers: [String: String]
    let body: String
    var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed]) }
}

enum HTTP {
    /// Sends one request with `Connection: close` and reads the whole reply.
    static func request(_ method: String, _ path: String, port: Int, body: String? = nil,
                        headers: [String: String] = [:], timeout: Double = 10) throws -> HTTPReply {
        let s = try TestSocket(port: port, timeout: timeout)
        var req = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { req += "\(k): \(v)\r\n" }
        if let body {
            req += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
        }
        req += "\r\n" + (body ?? "")
        try s.send(req)
        let (status, hdrs) = try s.readHead()
        var bytes: [UInt8] = []
        if hdrs["transfer-encoding"]?.lowercased() == "chunked" {
            while let c = try s.readChunk() { bytes += c }
        } else if let n = hdrs["content-length"].flatMap({ Int($0) }) {
            bytes = try s.readBytes(n)
        }
        return HTTPReply(status: status, headers: hdrs, body: String(decoding: bytes, as: UTF8.self))
    }
}

/// A Server-Sent Events reader over a raw socket: decodes the chunked body and yields `data:` payloads.
final class SSEClient: @unchecked Sendable {   // used by one thread at a time
    let socket: TestSocket
    let headers: [String: String]
    let status: Int
    private var text = ""

    init(port: Int, timeout: Double = 10) throws {
        socket = try TestSocket(port: port, timeout: timeout)
        try socket.send("GET /events HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n\r\n")
        (status, headers) = try socket.readHead()
    }

    /// The next SSE message's `data:` payload; comments (`: …`) are skipped. nil when the stream ends.
    func next() throws -> String? {
        while true {
            if let r = text.range(of: "\n\n") {
                let message = String(text[..<r.lowerBound])
                text.removeSubrange(..<r.upperBound)
                let data = message.split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
                if data.isEmpty { continue }
                return data.joined(separator: "\n")
            }
            guard let chunk = try socket.readChunk() else { return nil }
            text += String(decoding: chunk, as: UTF8.self)
        }
    }
}
