import XCTest
@testable import Media

final class SyntheticSceneTests: XCTestCase {
    /// FNV-1a 64 of a byte array (a compact golden for rendered pixels).
    private func fnv(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    private func rgb(_ name: String) -> [UInt8] {
        let c = SyntheticScene.palette.first { $0.name == name }!.rgb
        return [c.0, c.1, c.2]
    }

    func testSameSeedRendersIdenticalPixelsAndOtherSeedsDiffer() throws {
        let a = try SyntheticScene(width: 320, height: 240, seed: 3)
        let b = try SyntheticScene(width: 320, height: 240, seed: 3)
        let c = try SyntheticScene(width: 320, height: 240, seed: 4)
        for f in [0, 5, 37, 299] {
            let (ia, oa) = a.render(frame: f)
            let (ib, ob) = b.render(frame: f)
            XCTAssertEqual(ia, ib, "frame \(f)")
            XCTAssertEqual(oa, ob, "frame \(f)")
            XCTAssertNotEqual(ia.pixels, c.render(frame: f).0.pixels, "seed 4 must differ from seed 3 at frame \(f)")
        }
        // Random access equals sequential rendering: frame 37 does not depend on earlier frames.
        XCTAssertEqual(a.render(frame: 37).0, b.render(frame: 37).0)
    }

    /// Pins the renderer's output: the sample video and the benchmark data are made from it, so
    /// any change must be deliberate. Regenerate by printing `fnv(render(frame:).0.pixels)`.
    func testRenderGolden() throws {
        let scene = try SyntheticScene(width: 320, height: 240, seed: 3)
        let (img0, objects0) = scene.render(frame: 0)
        let (img12, _) = scene.render(frame: 12)
        XCTAssertEqual(objects0.map(\.kind), [.person, .box, .forklift, .ball])
        XCTAssertEqual(String(fnv(img0.pixels), radix: 16), Self.golden0)
        XCTAssertEqual(String(fnv(img12.pixels), radix: 16), Self.golden12)
    }
    static let golden0 = "44b6a75efe1ac1ad"
    static let golden12 = "cda9d440d042bbba"

    func testObjectsMoveBetweenFrames() throws {
        for seed: UInt64 in [0, 1, 3, 42] {
            let scene = try SyntheticScene(width: 320, height: 240, seed: seed, objects: 6)
            let f0 = scene.objects(frame: 0), f10 = scene.objects(frame: 10)
            XCTAssertEqual(f0.count, 6)
            for (a, b) in zip(f0, f10) {
                let d = abs(a.bbox.x - b.bbox.x) + abs(a.bbox.y - b.bbox.y)
                XCTAssertGreaterThanOrEqual(d, 3, "seed \(seed): \(a.kind) \(a.color) moved only \(d) px in 10 frames")
                XCTAssertEqual(a.bbox.width, b.bbox.width)
                XCTAssertEqual(a.bbox.height, b.bbox.height)
            }
            XCTAssertNotEqual(scene.render(frame: 0).0, scene.render(frame: 10).0)
        }
    }

    func testEveryKindAndDistinctColours() throws {
        let scene = try SyntheticScene(width: 320, height: 240, seed: 9, objects: 8)
        let objects = scene.objects(frame: 0)
        XCTAssertEqual(Set(objects.map(\.kind)), Set(SyntheticObject.Kind.allCases))
        XCTAssertEqual(Set(objects.map(\.color)).count, 8)
        XCTAssertEqual(try SyntheticScene(width: 64, height: 48, seed: 1, objects: 0).objects(frame: 3), [])
    }

    func testGroundTruthBoxesInsideFrameAndTight() throws {
        for (w, h, seed) in [(320, 240, UInt64(3)), (160, 120, 7), (97, 211, 11)] {
            let scene = try SyntheticScene(width: w, height: h, seed: seed, objects: 5)
            let empty = try SyntheticScene(width: w, height: h, seed: seed, objects: 0).render(frame: 0).0
            for f in stride(from: 0, to: 400, by: 7) {
                let (img, objects) = scene.render(frame: f)
                for o in objects {
                    let b = o.bbox
                    XCTAssertTrue(b.x >= 0 && b.y >= 0 && b.width > 0 && b.height > 0 && b.x + b.width <= w && b.y + b.height <= h,
                                  "\(w)×\(h) seed \(seed) frame \(f): \(o.kind) box \(b) leaves the frame")
                }
                // Every pixel that differs from the empty floor lies inside some box.
                var outside = 0
                for y in 0..<h {
                    for x in 0..<w {
                        let i = (y * w + x) * 3
                        if img.pixels[i..<i + 3] != empty.pixels[i..<i + 3],
                           !objects.contains(where: { x >= $0.bbox.x && x < $0.bbox.x + $0.bbox.width && y >= $0.bbox.y && y < $0.bbox.y + $0.bbox.height }) {
                            outside += 1
                        }
                    }
                }
                XCTAssertEqual(outside, 0, "\(w)×\(h) seed \(seed) frame \(f): painted pixels outside the boxes")
                // Each box is tight: its first and last rows and columns hold painted pixels.
                for o in objects {
                    let b = o.bbox
                    func painted(_ x: Int, _ y: Int) -> Bool {
                        let i = (y * w + x) * 3
                        return img.pixels[i..<i + 3] != empty.pixels[i..<i + 3]
                    }
                    XCTAssertTrue((b.x..<b.x + b.width).contains { painted($0, b.y) }, "\(o.kind) top row empty at frame \(f)")
                    XCTAssertTrue((b.x..<b.x + b.width).contains { painted($0, b.y + b.height - 1) }, "\(o.kind) bottom row empty")
                    XCTAssertTrue((b.y..<b.y + b.height).contains { painted(b.x, $0) }, "\(o.kind) left column empty")
                    XCTAssertTrue((b.y..<b.y + b.height).contains { painted(b.x + b.width - 1, $0) }, "\(o.kind) right column empty")
                }
            }
        }
    }

    func testProbePixelCarriesTheNamedColour() throws {
        var checked = 0
        for seed: UInt64 in 0..<6 {
            let scene = try SyntheticScene(width: 320, height: 240, seed: seed, objects: 4)
            for f in [0, 20, 55] {
                let (img, objects) = scene.render(frame: f)
                for (k, o) in objects.enumerated() {
                    let p = o.probe
                    let covered = objects[(k + 1)...].contains {
                        p.x >= $0.bbox.x && p.x < $0.bbox.x + $0.bbox.width && p.y >= $0.bbox.y && p.y < $0.bbox.y + $0.bbox.height
                    }
                    if covered { continue }
                    let i = (p.y * 320 + p.x) * 3
                    XCTAssertEqual(Array(img.pixels[i..<i + 3]), rgb(o.color), "seed \(seed) frame \(f): \(o.kind) \(o.color) at \(p)")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 50)
    }

    func testBadSceneArgumentsAreErrors() {
        XCTAssertThrowsError(try SyntheticScene(width: 8, height: 240)) { error in
            XCTAssertEqual("\(error)", "synthetic scene: size 8×240 must be within 16…4096")
        }
        XCTAssertThrowsError(try SyntheticScene(width: 64, height: 64, objects: 9)) { error in
            XCTAssertEqual("\(error)", "synthetic scene: objects must be in 0…8, got 9")
        }
    }

    // MARK: - synthetic: source

    func testSyntheticSourceFramesPtsAndGroundTruth() throws {
        let url = "synthetic:shapes?w=160&h=120&fps=10&seed=3&frames=12"
        let source = try VideoSources.open(url: url, options: SourceOptions(streamId: "cam"))
        var frames: [VideoFrame] = []
        while let f = try source.next() { frames.append(f) }
        XCTAssertEqual(frames.count, 12)
        XCTAssertEqual(frames.map(\.index), Array(0..<12))
        for (i, f) in frames.enumerated() {
            XCTAssertEqual(f.pts, Double(i) / 10, accuracy: 1e-9)
            XCTAssertEqual(f.streamId, "cam")
            XCTAssertEqual(f.image.width, 160)
            XCTAssertEqual(f.image.height, 120)
        }
        let scene = try SyntheticScene(width: 160, height: 120, seed: 3)
        XCTAssertEqual(frames[7].image, scene.render(frame: 7).0)
        XCTAssertEqual((source as! SyntheticSource).objects(forIndex: 7), scene.objects(frame: 7))
        XCTAssertNil(try source.next(), "the clip stays ended")
    }

    func testWarehouseSourceRendersTheScriptedWorld() throws {
        let source = try VideoSources.open(url: "synthetic:warehouse?seed=3&fps=10&frames=20") as! SyntheticSource
        var frames: [VideoFrame] = []
        while let f = try source.next() { frames.append(f) }
        XCTAssertEqual(frames.count, 20)
        XCTAssertEqual(frames[0].image.width, 224)
        let video = WarehouseWorld.Video(seed: 3)
        let layout = try XCTUnwrap(source.warehouseLayout(forIndex: 15))
        XCTAssertEqual(layout, video.layout(at: 1.5))
        XCTAssertEqual(frames[15].image, WarehouseWorld.render(layout, noiseSeed: 3 &* 0x9E37_79B9_7F4A_7C15 &+ 15),
                       "the same pixels as `atp synth --video` renders for frame 15")
    }

    func testSyntheticSourceLoopsAndResizes() throws {
        let url = "synthetic:shapes?w=64&h=48&frames=5&fps=5"
        let source = try VideoSources.open(url: url, options: SourceOptions(loop: true, outputSize: FrameSize(width: 32, height: 24)))
        var frames: [VideoFrame] = []
        for _ in 0..<12 { frames.append(try XCTUnwrap(source.next())) }
        XCTAssertEqual(frames.map(\.pts), (0..<12).map { Double($0) / 5 })
        XCTAssertEqual(frames[0].image, frames[5].image, "frame 5 repeats frame 0")
        XCTAssertEqual(frames[0].image.width, 32)
        XCTAssertEqual(frames[0].image.height, 24)
        source.close()
        XCTAssertNil(try source.next())
    }

    func testSyntheticURLErrorsNameTheProblem() {
        func message(_ url: String) -> String {
            do {
                _ = try VideoSources.open(url: url)
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(message("synthetic:shapes?w=64&colour=red&speed=2"),
                       "synthetic:shapes?w=64&colour=red&speed=2: unknown synthetic parameters 'colour', 'speed' (expected w, h, fps, seed, frames, objects)")
        XCTAssertEqual(message("synthetic:shapes?w=abc"), "synthetic:shapes?w=abc: parameter w=abc must be an integer in 16…4096")
        XCTAssertEqual(message("synthetic:blobs"), "synthetic:blobs: unknown synthetic scene 'blobs' (expected warehouse or shapes)")
        XCTAssertEqual(message("synthetic:warehouse?objects=3"), "synthetic:warehouse?objects=3: parameter objects applies to synthetic:shapes only")
        XCTAssertEqual(message("synthetic:shapes?fps=0"), "synthetic:shapes?fps=0: parameter fps=0 must be a number in (0, 240]")
        XCTAssertEqual(message("synthetic:shapes?seed"), "synthetic:shapes?seed: parameter 'seed' has no value (expected key=value)")
    }

    func testSyntheticRealtimePacing() throws {
        let source = try VideoSources.open(url: "synthetic:shapes?w=32&h=32&fps=20&frames=10", options: SourceOptions(realtime: true))
        let t0 = Date()
        var n = 0
        while try source.next() != nil { n += 1 }
        let elapsed = Date().timeIntervalSince(t0)
        XCTAssertEqual(n, 10)
        XCTAssertGreaterThanOrEqual(elapsed, 0.7 * 9 / 20, "10 frames at 20 fps span 0.45 s")
        XCTAssertLessThan(elapsed, 3)
    }
}
