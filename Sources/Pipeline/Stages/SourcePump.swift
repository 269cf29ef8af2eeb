// The sources of a run: one thread each, pulling decoded frames and submitting them to the graph.
import Foundation
import Dispatch
import Media

/// Opens a run's sources and feeds the graph from one thread per source.
final class SourcePump: @unchecked Sendable {
    private let lock = NSLock()
    private var sources: [any VideoSource] = []
    private var stopping = false
    private let group = DispatchGroup()
    private let errors = LockedBox<[String]>([])

    var isStopping: Bool { lock.withLock { stopping } }

    /// The first source's nominal frame rate (nil before it opened, or when unknown).
    var firstFrameRate: Double? {
        lock.withLock {
            switch sources.first {
            case let f as FFmpegSource: return f.frameRate
            case let s as SyntheticSource: return s.fps
            default: return nil
            }
        }
    }

    /// Opens every source (errors name the URL) and starts its thread.
    /// - Parameters:
    ///   - submit: called on the source's thread for every frame, with whether the source is paced
    ///     (live or realtime: the edge's own policy applies) or a file read as fast as the graph takes it.
    ///   - onEvent: source events (reconnect, gap, corrupt packets).
    ///   - scaleTo: the size each frame is scaled to while decoding, from its native size (nil: native).
    func start(_ specs: [SourceSpec], options: RunOptions, scaleTo: (@Sendable (FrameSize) -> FrameSize)?,
               onEvent: @escaping @Sendable (SourceEvent) -> Void,
               submit: @escaping @Sendable (VideoFrame, _ paced: Bool) -> Void) throws {
        for s in specs {
            var so = SourceOptions()
            so.streamId = s.id
            if let t = s.transport { so.transport = RTSPTransport(rawValue: t) }
            if let r = s.readTimeoutMs { so.readTimeoutMs = r }
            if let r = s.reconnect { so.reconnect.initialMs = r.initialMs; so.reconnect.maxMs = r.maxMs }
            so.loop = s.loop ?? false
            so.realtime = options.realtime || (s.realtime ?? false)
            so.onEvent = onEvent
            so.scaleTo = scaleTo
            let source = try VideoSources.open(url: s.url, options: so)
            let paced = so.realtime || s.url.hasPrefix("rtsp") || s.url.hasPrefix("v4l2")
            lock.withLock { sources.append(source) }
            DispatchQueue.global().async(group: group) { [self] in
                do {
                    while !isStopping, let frame = try source.next() { submit(frame, paced) }
                } catch {
                    if !isStopping { errors.mutate { $0.append("\(error)") } }
                }
                source.close()
            }
        }
    }

    /// Closes every source: their threads end promptly.
    func stop() {
        let toClose: [any VideoSource] = lock.withLock {
            stopping = true
            return sources
        }
        for s in toClose { s.close() }
    }

    /// Waits for every source thread to end; returns the first source's final error, if any.
    func wait() -> String? {
        group.wait()
        return errors.value.first
    }
}

/// A value behind a lock.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var v: T
    init(_ v: T) { self.v = v }
    var value: T { lock.withLock { v } }
    func mutate(_ f: (inout T) -> Void) { lock.withLock { f(&v) } }
}
