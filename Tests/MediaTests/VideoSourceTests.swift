import XCTest
@testable import Media
import SplitMix

/// Collects events from a source's callback (called on the reading thread).
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [SourceEvent] = []
    func append(_ e: SourceEvent) {
        lock.lock()
        items.append(e)
        lock.unlock()
    }
    var events: [SourceEvent] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}

final class VideoSourceTests: XCTestCase {
    static let width = 320, height = 240, fps = 15, clipFrames = 30   // a 2-second clip

    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("atp-video-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    /// Writes the synthetic scene (seed 3) as a 2-second clip; returns its file and the originals.
    private func writeClip(name: String = "clip.mp4", codec: VideoWriter.Codec = .auto) throws -> (URL, [RGBImage], String) {
        let url = folder.appendingPathComponent(name)
        let scene = try SyntheticScene(width: Self.width, height: Self.height, seed: 3)
        let writer = try VideoWriter(url: url, width: Self.width, height: Self.height, fps: Self.fps, codec: codec)
        var originals: [RGBImage] = []
        for f in 0..<Self.clipFrames {
            let img = scene.render(frame: f).0
            originals.append(img)
            try writer.write(img)
        }
        try writer.finish()
        XCTAssertEqual(writer.frameCount, Self.clipFrames)
        return (url, originals, writer.encoderName)
    }

    private func readAll(_ source: any VideoSource, limit: Int = 10_000) throws -> [VideoFrame] {
        var frames: [VideoFrame] = []
        while frames.count < limit, let f = try source.next() { frames.append(f) }
        return frames
    }

    private func meanAbsError(_ a: RGBImage, _ b: RGBImage) -> Double {
        precondition(a.pixels.count == b.pixels.count)
        var sum = 0
        for i in 0..<a.pixels.count { sum += abs(Int(a.pixels[i]) - Int(b.pixels[i])) }
        return Double(sum) / Double(a.pixels.count)
    }

    private func message(_ body: () throws -> Any) -> String {
        do {
            _ = try body()
            return "no error"
        } catch { return "\(error)" }
    }

    // MARK: - write + read back

    /// H.264 (CRF 18, 4:2:0) on the textured scene: mean absolute error per channel below 4.0 of
    /// 255 on every frame (measured ≈ 1.5–2.5).
    static let maxMeanAbsError = 4.0

    func testWriteClipAndReadItBack() throws {
        let (url, originals, encoder) = try writeClip()
        XCTAssertEqual(encoder, "libx264")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        XCTAssertEqual(names, ["clip.mp4"], "no temporary file is left next to the video")

        let log = EventLog()
        let source = try FFmpegSource(url: url.path, options: SourceOptions(streamId: "clip", onEvent: { log.append($0) }))
        XCTAssertFalse(source.isLive)
        XCTAssertEqual(source.nativeSize, FrameSize(width: Self.width, height: Self.height))
        XCTAssertEqual(try XCTUnwrap(source.frameRate), Double(Self.fps), accuracy: 1e-6)
        let frames = try readAll(source)
        XCTAssertEqual(frames.count, Self.clipFrames)
        XCTAssertNil(try source.next(), "end of stream stays ended")
        var worst = 0.0
        for (i, f) in frames.enumerated() {
            XCTAssertEqual(f.index, i)
            XCTAssertEqual(f.streamId, "clip")
            XCTAssertEqual(f.pts, Double(i) / Double(Self.fps), accuracy: 1e-3, "pts of frame \(i)")
            XCTAssertEqual(f.image.width, Self.width)
            XCTAssertEqual(f.image.height, Self.height)
            XCTAssertEqual(f.capturedAt, Date().timeIntervalSince1970, accuracy: 60)
            worst = max(worst, meanAbsError(f.image, originals[i]))
        }
        XCTAssertLessThan(worst, Self.maxMeanAbsError, "worst per-frame mean abs error")
        print("write/read back with \(encoder): worst per-frame mean abs error \(worst)")
        XCTAssertEqual(log.events, [], "a clean file has no events")
        source.close()
        XCTAssertNil(try source.next())
    }

    func testMPEG4FallbackEncoderRoundTrips() throws {
        let (url, originals, encoder) = try writeClip(name: "clip-mpeg4.mkv", codec: .mpeg4)
        XCTAssertEqual(encoder, "mpeg4")
        let frames = try readAll(try VideoSources.open(url: url.path))
        XCTAssertEqual(frames.count, Self.clipFrames)
        // MPEG-4 part 2 at qscale 3 is coarser than x264 CRF 18.
        let worst = zip(frames, originals).map { meanAbsError($0.image, $1) }.max() ?? 0
        XCTAssertLessThan(worst, 8.0)
        print("write/read back with mpeg4: worst per-frame mean abs error \(worst)")
    }

    func testOutputSizeScalesFrames() throws {
        let (url, originals, _) = try writeClip()
        let size = FrameSize(width: 160, height: 120)
        let frames = try readAll(try VideoSources.open(url: "file://" + url.path, options: SourceOptions(outputSize: size)))
        XCTAssertEqual(frames.count, Self.clipFrames)
        let reference = try VideoScaler().resize(originals[4], to: size, name: "ref")
        XCTAssertEqual(frames[4].image.width, 160)
        XCTAssertEqual(frames[4].image.height, 120)
        XCTAssertLessThan(meanAbsError(frames[4].image, reference), Self.maxMeanAbsError)
    }

    func testLoopKeepsPtsIncreasing() throws {
        let (url, _, _) = try writeClip()
        let source = try VideoSources.open(url: url.path, options: SourceOptions(loop: true))
        let frames = try readAll(source, limit: 75)
        XCTAssertEqual(frames.count, 75, "loop yields more frames than the file has")
        for i in 1..<frames.count {
            XCTAssertEqual(frames[i].pts - frames[i - 1].pts, 1.0 / Double(Self.fps), accuracy: 1e-3, "pts step at \(i)")
        }
        XCTAssertEqual(frames[30].image, frames[0].image, "the second pass decodes the same pictures")
        source.close()
    }

    func testRealtimePacesAtTheClipRate() throws {
        let (url, _, _) = try writeClip()
        let source = try VideoSources.open(url: url.path, options: SourceOptions(realtime: true))
        let t0 = Date()
        let frames = try readAll(source)
        let elapsed = Date().timeIntervalSince(t0)
        let span = Double(Self.clipFrames - 1) / Double(Self.fps)   // 1.93 s from first to last pts
        XCTAssertEqual(frames.count, Self.clipFrames)
        XCTAssertGreaterThanOrEqual(elapsed, 0.7 * span)
        XCTAssertLessThan(elapsed, span + 5)
    }

    func testCloseFromAnotherThreadEndsPacedRead() throws {
        let (url, _, _) = try writeClip()
        let source = try VideoSources.open(url: url.path, options: SourceOptions(loop: true, realtime: true))
        XCTAssertNotNil(try source.next())
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { source.close() }
        let t0 = Date()
        var n = 0
        while try source.next() != nil { n += 1 }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.5, "close() interrupts pacing promptly")
        XCTAssertLessThan(n, 15)
    }

    // MARK: - damaged input

    func testTruncatedFileEndsCleanlyOrWithAClearError() throws {
        let (url, _, _) = try writeClip()
        let data = try Data(contentsOf: url)
        let cut = folder.appendingPathComponent("cut.mp4")
        try data.prefix(data.count / 2).write(to: cut)
        let source = try VideoSources.open(url: cut.path)   // faststart: the index is at the front
        var frames = 0
        do {
            while try source.next() != nil { frames += 1 }
        } catch let error as MediaError {
            XCTAssertTrue("\(error)".hasPrefix(cut.path + ": cannot read video"), "\(error)")
        }
        XCTAssertGreaterThan(frames, 3, "frames before the cut are delivered")
        XCTAssertLessThan(frames, Self.clipFrames)
    }

    func testGarbageInTheMiddleIsSkippedNotFatal() throws {
        let (url, _, _) = try writeClip()
        var data = try Data(contentsOf: url)
        var rng = SplitMix64(seed: 99)
        let start = data.count * 2 / 5, end = data.count * 3 / 5
        for i in start..<end { data[i] = UInt8(truncatingIfNeeded: rng.next()) }
        let bad = folder.appendingPathComponent("garbage.mp4")
        try data.write(to: bad)
        let log = EventLog()
        let source = try VideoSources.open(url: bad.path, options: SourceOptions(onEvent: { log.append($0) }))
        var frames: [VideoFrame] = []
        do {
            while let f = try source.next() { frames.append(f) }
        } catch let error as MediaError {
            XCTAssertTrue("\(error)".hasPrefix(bad.path + ": "), "\(error)")
        }
        XCTAssertGreaterThan(frames.count, 5)
        XCTAssertLessThanOrEqual(frames.count, Self.clipFrames)
        for i in frames.indices.dropFirst() { XCTAssertGreaterThan(frames[i].pts, frames[i - 1].pts) }
        let corrupt = log.events.filter { if case .corruptPacket = $0 { return true } else { return false } }
        XCTAssertEqual(source.drainEvents().count, log.events.count, "queued and called back alike")
        print("garbage test: \(frames.count) frames, \(corrupt.count) corrupt-packet events")
    }

    func testNotAVideoIsAClearError() throws {
        let junk = folder.appendingPathComponent("junk.mp4")
        var rng = SplitMix64(seed: 5)
        try Data((0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }).write(to: junk)
        XCTAssertEqual(message { try VideoSources.open(url: junk.path) },
                       "\(junk.path): cannot open video (Invalid data found when processing input)")
        let empty = folder.appendingPathComponent("empty.mp4")
        try Data().write(to: empty)
        XCTAssertTrue(message { try VideoSources.open(url: empty.path) }.hasPrefix("\(empty.path): cannot open video ("))
    }

    // MARK: - URL errors

    func testMissingFileBadSchemeAndMissingCameraErrors() throws {
        let missing = folder.appendingPathComponent("nope.mp4").path
        XCTAssertEqual(message { try VideoSources.open(url: missing) }, "\(missing): cannot open video (no such file)")
        XCTAssertEqual(message { try VideoSources.open(url: "file://" + missing) }, "file://\(missing): cannot open video (no such file)")
        XCTAssertEqual(message { try VideoSources.open(url: "ftp://example.com/a.mp4") },
                       "ftp://example.com/a.mp4: unsupported video source scheme 'ftp' (expected a file path, file://, rtsp://, rtsps://, rtmp://, http(s)://, udp://, srt://, v4l2:// or synthetic:)")
        XCTAssertEqual(message { try VideoSources.open(url: "") }, "\"\": empty video source URL")
        XCTAssertEqual(message { try VideoSources.open(url: "v4l2:///dev/video0?size=640x480&zoom=2") },
                       "v4l2:///dev/video0?size=640x480&zoom=2: unknown v4l2 parameter 'zoom' (expected size, fps, format)")
        XCTAssertEqual(message { try VideoSources.open(url: "synthetic:shapes", options: SourceOptions(readTimeoutMs: 0)) },
                       "synthetic:shapes: read_timeout_ms must be > 0, got 0")

        for device in ["video0", "video63"] where !FileManager.default.fileExists(atPath: "/dev/" + device) {
            XCTAssertEqual(message { try VideoSources.open(url: "v4l2:///dev/\(device)") },
                           "v4l2:///dev/\(device): cannot open camera (No such file or directory)")
            XCTAssertEqual(message { try VideoSources.open(url: "v4l2://\(device)") },
                           "v4l2://\(device): cannot open camera (No such file or directory)")
        }
    }

    func testURLParsing() throws {
        XCTAssertEqual(try SourceURL.parse("videos/a.mp4"), .file(path: "videos/a.mp4"))
        XCTAssertEqual(try SourceURL.parse("file:///tmp/a%20b.mp4"), .file(path: "/tmp/a b.mp4"))
        XCTAssertEqual(try SourceURL.parse("RTSP://cam/live"), .network)
        XCTAssertEqual(try SourceURL.parse("v4l2://video2?fps=30"), .v4l2(device: "/dev/video2", params: [("fps", "30")]))
        XCTAssertEqual(try SourceURL.parse("V4L2:/dev/video1"), .v4l2(device: "/dev/video1", params: []))
        XCTAssertEqual(try SourceURL.parse("synthetic:shapes?w=64"), .synthetic)
        XCTAssertEqual(try SourceURL.parse("C:odd-name.mp4"), .file(path: "C:odd-name.mp4"), "no // means a path")
    }

    // MARK: - writer

    func testWriterFailureLeavesNothingBehind() throws {
        let out = folder.appendingPathComponent("fail.mp4")
        do {
            let writer = try VideoWriter(url: out, width: 64, height: 48, fps: 10)
            try writer.write(RGBImage(width: 64, height: 48, fill: (10, 20, 30)))
            XCTAssertEqual(message { try writer.write(RGBImage(width: 32, height: 48)) },
                           "\(out.path): frame 1 is 32×48, expected 64×48")
            // Dropped without finish(): the temporary file goes away.
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])

        let cancelled = try VideoWriter(url: out, width: 64, height: 48)
        try cancelled.write(RGBImage(width: 64, height: 48))
        cancelled.cancel()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])

        let empty = try VideoWriter(url: out, width: 64, height: 48)
        XCTAssertEqual(message { try empty.finish() }, "\(out.path): cannot write a video with no frames")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])

        XCTAssertEqual(message { try VideoWriter(url: out, width: 63, height: 48) },
                       "\(out.path): video size 63×48 must be even and within 16…8192")
        let noFolder = folder.appendingPathComponent("missing/dir/x.mp4")
        XCTAssertTrue(message { try VideoWriter(url: noFolder, width: 64, height: 48) }
            .hasPrefix("\(noFolder.path): cannot create video file (No such file or directory)"))
        XCTAssertEqual(message { try VideoWriter(url: folder.appendingPathComponent("x.zzz"), width: 64, height: 48) },
                       "\(folder.appendingPathComponent("x.zzz").path): cannot choose a container for extension '.zzz' (use .mp4, .mkv, .mov or .avi)")
    }
}
