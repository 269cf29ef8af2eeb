import XCTest
@testable import Media

/// Broken video (issue 12): a clean clip and a copy with bit-flipped or truncated packets mid-file,
/// decoded the same way. Every frame the broken copy delivers is bit-identical to the clean clip's
/// frame at the same pts; the frames missing are exactly those from the first damaged packet to the
/// next keyframe (in decode order); each is counted as a `corruptPacket` event; later GOPs arrive whole.
final class BrokenVideoTests: XCTestCase {
    /// Four one-second GOPs (VideoWriter puts a keyframe every `fps` frames); x264 adds B-frames.
    static let width = 320, height = 240, fps = 15, clipFrames = 60

    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("atp-broken-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    private func writeClean() throws -> URL {
        let url = folder.appendingPathComponent("clean.mp4")
        let scene = try SyntheticScene(width: Self.width, height: Self.height, seed: 3)
        let writer = try VideoWriter(url: url, width: Self.width, height: Self.height, fps: Self.fps, codec: .h264)
        for f in 0..<Self.clipFrames { try writer.write(scene.render(frame: f).0) }
        try writer.finish()
        return url
    }

    /// Every frame of `url` and the corrupt-packet events' counts. (The source decodes on one thread:
    /// a threaded decoder misses damage, e.g. the late truncation in `testDamageInTwoGOPsOfOneClip`.)
    private func decode(_ url: URL) throws -> (frames: [VideoFrame], corrupt: [Int]) {
        let log = EventLog()
        let source = try FFmpegSource(url: url.path, options: SourceOptions(onEvent: { log.append($0) }))
        var frames: [VideoFrame] = []
        while let f = try source.next() { frames.append(f) }
        let corrupt = log.events.compactMap { e -> Int? in if case .corruptPacket(_, let n) = e { return n } else { return nil } }
        return (frames, corrupt)
    }

    /// pts in whole milliseconds (both clips stamp frames from the same packet pts).
    private static func ms(_ seconds: Double) -> Int { Int((seconds * 1000).rounded()) }

    /// The damaged windows: each damaged packet and every packet after it in decode order up to the
    /// next keyframe packet, as pts in ms.
    static func damagedWindow(_ packets: [CopiedPacket]) -> Set<Int> {
        var out = Set<Int>(), open = false
        for p in packets {
            if p.damage != nil { open = true } else if p.key { open = false }
            if open, let pts = p.pts { out.insert(ms(pts)) }
        }
        return out
    }

    struct Figures: CustomStringConvertible {
        var frames = 0, damagedPackets = 0, window = 0, skipped = 0, delivered = 0, events = 0
        var description: String {
            "\(frames) frames, \(damagedPackets) damaged packets, window \(window) frames, \(skipped) skipped, \(delivered) delivered, \(events) corrupt_packets events"
        }
    }

    /// Copies the clean clip with `damage`, decodes both and checks the broken copy frame by frame.
    @discardableResult
    private func checkBrokenCopy(_ damage: [Int: PacketDamage], name: String) throws -> Figures {
        let cleanURL = try writeClean()
        let brokenURL = folder.appendingPathComponent(name)
        let packets = try VideoDamage.copy(cleanURL, to: brokenURL, damage: damage)
        XCTAssertEqual(packets.count, Self.clipFrames)
        XCTAssertEqual(packets.filter(\.key).map(\.index), [0, 15, 30, 45], "a keyframe every second")
        for p in packets where p.damage != nil { XCTAssertFalse(p.key, "the damage is mid-GOP") }

        let clean = try decode(cleanURL)
        XCTAssertEqual(clean.frames.count, Self.clipFrames)
        XCTAssertEqual(clean.corrupt, [], "the clean clip has no corrupt packets")
        let cleanByPts = Dictionary(uniqueKeysWithValues: clean.frames.map { (Self.ms($0.pts), $0.image) })
        XCTAssertEqual(Set(cleanByPts.keys), Set(packets.compactMap { $0.pts.map(Self.ms) }), "frames carry their packets' pts")

        let broken = try decode(brokenURL)
        let window = Self.damagedWindow(packets)
        let delivered = broken.frames.map { Self.ms($0.pts) }
        // Nothing lost but the damaged windows, and nothing in them delivered.
        XCTAssertEqual(Set(delivered), Set(cleanByPts.keys).subtracting(window),
                       "missing \(Set(cleanByPts.keys).subtracting(delivered).sorted()), window \(window.sorted())")
        XCTAssertEqual(delivered, delivered.sorted(), "in pts order")
        XCTAssertEqual(Set(delivered).count, delivered.count, "no frame twice")
        // No frame half-decoded: each is the clean clip's frame, bit for bit.
        for f in broken.frames {
            XCTAssertTrue(f.image == cleanByPts[Self.ms(f.pts)], "frame at \(f.pts) s differs from the clean clip's")
        }
        // Every skipped frame counted once, as a running total.
        XCTAssertEqual(broken.corrupt, Array(1...max(1, window.count)))
        // The GOPs after the damage arrive whole.
        let lastDamaged = packets.filter { $0.damage != nil }.map(\.index).max()!
        let nextKey = packets.first { $0.key && $0.index > lastDamaged }!.index
        for p in packets[nextKey...] { XCTAssertTrue(delivered.contains(Self.ms(p.pts!)), "packet \(p.index) after the damage") }

        let figures = Figures(frames: packets.count, damagedPackets: damage.count, window: window.count,
                              skipped: packets.count - broken.frames.count, delivered: broken.frames.count,
                              events: broken.corrupt.count)
        print("broken video (\(name)): \(figures)")
        return figures
    }

    func testBitFlippedPacketsMidFileAreSkippedToTheNextKeyframe() throws {
        // Four packets in a row from the 6th packet of the second GOP.
        let f = try checkBrokenCopy([20: .flipBits, 21: .flipBits, 22: .flipBits, 23: .flipBits], name: "flipped.mp4")
        XCTAssertEqual(f.window, 10, "packets 20…29")
    }

    func testTruncatedPacketsMidFileAreSkippedToTheNextKeyframe() throws {
        // Two packets cut to a third, from the 5th packet of the third GOP: a P-frame whose B-frames
        // (decoded after it, shown before it) leave the decoder before it does.
        let f = try checkBrokenCopy([34: .truncate(keep: 1.0 / 3), 35: .truncate(keep: 1.0 / 3)], name: "truncated.mp4")
        XCTAssertEqual(f.window, 11, "packets 34…44")
    }

    func testDamageInTwoGOPsOfOneClip() throws {
        // The flips above, and a P-frame three packets before the fourth keyframe cut to a third: its
        // slice ends early, which only error concealment notices (a slice-threaded decoder missed it).
        let f = try checkBrokenCopy([20: .flipBits, 21: .flipBits, 22: .flipBits, 23: .flipBits, 42: .truncate(keep: 1.0 / 3)],
                                    name: "both.mp4")
        XCTAssertEqual(f.window, 13, "packets 20…29 and 42…44")
    }

    // MARK: - The bookkeeping alone

    func testABFrameWaitsForTheLaterDecodedPictureItIsPredictedFrom() {
        // Decode order I0 P3 B1 B2 (pts), one thread: P3 comes out damaged after B1 and B2.
        var t = DamageTracker()
        for (pts, key) in [(0, true), (3, false), (1, false), (2, false)] { t.sent(pts: Int64(pts), key: key) }
        XCTAssertEqual(t.received(pts: 0, damaged: false), 0)
        XCTAssertEqual(t.release(), true, "I0 has nothing before it")
        XCTAssertEqual(t.received(pts: 1, damaged: false), 0)
        XCTAssertNil(t.release(), "B1 waits for P3, decoded before it")
        XCTAssertEqual(t.received(pts: 2, damaged: false), 0)
        XCTAssertNil(t.release())
        XCTAssertEqual(t.received(pts: 3, damaged: true), 0)
        XCTAssertEqual([t.release(), t.release(), t.release(), t.release()], [false, false, false, nil],
                       "B1, B2 and P3 are skipped")
        // Damage stays open until a keyframe packet.
        t.sent(pts: 6, key: false)
        XCTAssertEqual(t.received(pts: 6, damaged: false), 0)
        XCTAssertEqual(t.release(), false)
        t.sent(pts: 9, key: true)
        XCTAssertEqual(t.received(pts: 9, damaged: false), 0)
        XCTAssertEqual(t.release(), true)
    }

    func testARejectedPacketIsCountedOnceAsLostAndTaintsToTheKeyframe() {
        var t = DamageTracker()
        t.sent(pts: 0, key: true)
        XCTAssertEqual(t.received(pts: 0, damaged: false), 0)
        XCTAssertEqual(t.release(), true)
        t.sent(pts: 1, key: false)
        XCTAssertEqual(t.failed(), 0, "counted when known lost")
        t.sent(pts: 2, key: false)
        XCTAssertEqual(t.received(pts: 2, damaged: false), 0)
        XCTAssertNil(t.release(), "pts 2 waits: pts 1 may still come out")
        t.sent(pts: 3, key: true)
        XCTAssertEqual(t.received(pts: 3, damaged: false), 1, "nothing decoded before a keyframe comes out after it")
        XCTAssertEqual([t.release(), t.release(), t.release()], [false, true, nil])
        // An error with nothing pending is counted at once.
        XCTAssertEqual(t.failed(), 1)
    }

    func testAPacketThatNeverComesOutIsLostAfterAReorderBuffer() {
        var t = DamageTracker()
        t.sent(pts: 0, key: true)
        _ = t.received(pts: 0, damaged: false)
        XCTAssertEqual(t.release(), true)
        t.sent(pts: 1, key: false)   // dropped by the decoder without an error: not damage
        let later = 1 + DamageTracker.lostDistance + 1
        var delivered = 0
        for pts in 2...later {
            t.sent(pts: Int64(pts), key: false)
            XCTAssertEqual(t.received(pts: Int64(pts), damaged: false), 0)
            while let ok = t.release() { XCTAssertTrue(ok); delivered += 1 }
        }
        XCTAssertEqual(delivered, later - 1, "held until pts 1 is known lost, then all delivered")
        XCTAssertEqual(t.heldCount, 0)
    }

    func testDamageWithoutKeyframesEndsAfterItsLimit() {
        var t = DamageTracker()
        t.sent(pts: 0, key: true)
        XCTAssertEqual(t.received(pts: 0, damaged: true), 0)
        XCTAssertEqual(t.release(), false)
        var skipped = 0
        for pts in 1...(DamageTracker.maxTaintedPackets + 10) {
            t.sent(pts: Int64(pts), key: false)
            _ = t.received(pts: Int64(pts), damaged: false)
            if t.release() == false { skipped += 1 }
        }
        XCTAssertEqual(skipped, DamageTracker.maxTaintedPackets)
    }
}
