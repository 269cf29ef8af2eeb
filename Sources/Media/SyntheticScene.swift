// A synthetic warehouse-like scene rendered in pure Swift: coloured people, boxes, forklifts and
// balls moving over a textured floor, deterministic by seed, with per-frame ground truth.
import Foundation
import SplitMix

/// One object drawn in a synthetic frame, with its exact pixel bounds.
public struct SyntheticObject: Sendable, Equatable, Codable {
    /// What the object depicts.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// A tall rectangle (body) under a circle (head).
        case person
        /// A square-ish rectangle with a darker outline.
        case box
        /// A body, mast, overhead guard, forks and two wheels.
        case forklift
        /// A filled circle.
        case ball
    }

    /// Axis-aligned pixel bounds: columns `x..<x+width`, rows `y..<y+height`.
    public struct Box: Sendable, Equatable, Codable {
        public var x: Int
        public var y: Int
        public var width: Int
        public var height: Int
        public init(x: Int, y: Int, width: Int, height: Int) {
            self.x = x
            self.y = y
            self.width = width
            self.height = height
        }
    }

    public var kind: Kind
    /// The colour's name, one of `SyntheticScene.palette`'s names (e.g. "red").
    public var color: String
    /// The smallest box holding every pixel the object painted (before occlusion by later objects).
    public var bbox: Box
    /// A pixel inside the object that carries exactly its colour (unless a later object covers it).
    public var probe: (x: Int, y: Int) {
        let b = bbox
        switch kind {
        case .person, .box, .ball: return (b.x + b.width / 2, b.y + b.height * 7 / 10)
        case .forklift: return (b.x + b.width * 3 / 10, b.y + b.height * 11 / 20)
        }
    }

    public init(kind: Kind, color: String, bbox: Box) {
        self.kind = kind
        self.color = color
        self.bbox = bbox
    }
}

/// A deterministic moving scene: the same size, seed and object count always render the same
/// pixels for the same frame index, so it serves as test input, benchmark data and sample video.
///
/// Frames are random access (`render(frame:)` needs no previous frame): each object moves at a
/// constant velocity and bounces off the frame edges, so it always lies fully inside the frame.
/// Objects are drawn in order; later ones cover earlier ones where they overlap.
public struct SyntheticScene: Sendable {
    /// The named colours objects are painted with.
    public static let palette: [(name: String, rgb: (UInt8, UInt8, UInt8))] = [
        ("red", (220, 40, 40)), ("green", (40, 180, 60)), ("blue", (40, 80, 220)), ("yellow", (240, 210, 40)),
        ("orange", (245, 140, 30)), ("purple", (150, 60, 190)), ("cyan", (40, 200, 210)), ("white", (245, 245, 245)),
    ]

    public let width: Int
    public let height: Int
    public let seed: UInt64
    /// Objects with their start positions and velocities (pixels per frame).
    private let specs: [Spec]
    /// The static textured background (RGB24).
    private let background: [UInt8]

    private struct Spec: Sendable {
        var kind: SyntheticObject.Kind
        var colorIndex: Int
        var width: Int, height: Int
        var x0: Double, y0: Double, vx: Double, vy: Double
    }

    /// Builds a scene.
    /// - Parameters:
    ///   - width: frame width in pixels (16…4096).
    ///   - height: frame height in pixels (16…4096).
    ///   - seed: drives object kinds, colours, sizes, positions, velocities and the floor noise.
    ///   - objects: how many objects (0…8); every kind appears once before any repeats, and all
    ///     colours are distinct.
    /// - Throws: `MediaError.Kind.invalidArgument` naming the bad value.
    public init(width: Int, height: Int, seed: UInt64 = 0, objects: Int = 4) throws {
        let name = "synthetic scene"
        guard (16...4096).contains(width), (16...4096).contains(height) else {
            throw MediaError(.invalidArgument, path: name, "size \(width)×\(height) must be within 16…4096")
        }
        guard (0...Self.palette.count).contains(objects) else {
            throw MediaError(.invalidArgument, path: name, "objects must be in 0…\(Self.palette.count), got \(objects)")
        }
        self.width = width
        self.height = height
        self.seed = seed
        var rng = SplitMix64(seed: seed ^ 0x5EED_5CE0_E000_0001)
        let kinds = SyntheticObject.Kind.allCases
        let kindOffset = Int(rng.next(below: UInt64(kinds.count)))
        var colours = Array(0..<Self.palette.count)
        for i in stride(from: colours.count - 1, to: 0, by: -1) { colours.swapAt(i, Int(rng.next(below: UInt64(i + 1)))) }
        let s = Double(min(width, height))
        func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * rng.nextUnit() }
        var specs: [Spec] = []
        for i in 0..<objects {
            let kind = kinds[(i + kindOffset) % kinds.count]
            var w: Double, h: Double
            switch kind {
            case .person:
                w = uniform(0.08, 0.11) * s
                h = w * 0.9 + uniform(0.22, 0.30) * s   // head diameter (0.9 w) + body
            case .box:
                w = uniform(0.12, 0.20) * s
                h = w * uniform(0.8, 1.1)
            case .forklift:
                w = uniform(0.25, 0.32) * s
                h = uniform(0.18, 0.24) * s
            case .ball:
                w = uniform(0.10, 0.16) * s
                h = w
            }
            let bw = max(6, min(width - 1, Int(w.rounded()))), bh = max(6, min(height - 1, Int(h.rounded())))
            let speed = uniform(1.0, 3.0) * s / 240, angle = uniform(0, 2 * Double.pi)
            specs.append(Spec(kind: kind, colorIndex: colours[i], width: bw, height: bh,
                              x0: uniform(0, Double(width - bw)), y0: uniform(0, Double(height - bh)),
                              vx: speed * cos(angle), vy: speed * sin(angle)))
        }
        self.specs = specs
        self.background = Self.floor(width: width, height: height, seed: seed)
    }

    /// Ground truth for a frame without rendering it.
    /// - Parameter frame: the frame index (≥ 0; negative indices are treated as 0).
    /// - Returns: the objects in drawing order.
    public func objects(frame: Int) -> [SyntheticObject] {
        let f = Double(max(0, frame))
        return specs.map { spec in
            let x = Self.bounce(spec.x0 + spec.vx * f, range: Double(width - spec.width))
            let y = Self.bounce(spec.y0 + spec.vy * f, range: Double(height - spec.height))
            return SyntheticObject(kind: spec.kind, color: Self.palette[spec.colorIndex].name,
                                   bbox: .init(x: x, y: y, width: spec.width, height: spec.height))
        }
    }

    /// Renders a frame and its ground truth.
    /// - Parameter frame: the frame index (≥ 0).
    /// - Returns: the RGB image and the objects in drawing order.
    /// - Complexity: O(width · height) per frame.
    public func render(frame: Int) -> (RGBImage, [SyntheticObject]) {
        var canvas = Canvas(width: width, height: height, pixels: background)
        let objects = objects(frame: frame)
        for (object, spec) in zip(objects, specs) {
            draw(object, colour: Self.palette[spec.colorIndex].rgb, on: &canvas)
        }
        return (RGBImage(width: width, height: height, pixels: canvas.pixels), objects)
    }

    // MARK: - drawing

    private func draw(_ o: SyntheticObject, colour c: (UInt8, UInt8, UInt8), on canvas: inout Canvas) {
        let b = o.bbox
        let (x, y, w, h) = (b.x, b.y, b.width, b.height)
        let dark = (UInt8(Int(c.0) * 3 / 5), UInt8(Int(c.1) * 3 / 5), UInt8(Int(c.2) * 3 / 5))
        switch o.kind {
        case .person:
            let r = Double(w) * 0.45, headH = Int((2 * r).rounded(.up))
            canvas.fillCircle(cx: Double(x) + Double(w) / 2, cy: Double(y) + r, r: r, c)
            canvas.fillRect(x: x, y: y + headH, w: w, h: h - headH, c)
            // Arms: darker stripes down the sides of the body.
            let arm = max(1, w / 6)
            canvas.fillRect(x: x, y: y + headH + 2, w: arm, h: (h - headH) / 2, dark)
            canvas.fillRect(x: x + w - arm, y: y + headH + 2, w: arm, h: (h - headH) / 2, dark)
        case .box:
            canvas.fillRect(x: x, y: y, w: w, h: h, dark)
            let edge = max(1, min(w, h) / 10)
            canvas.fillRect(x: x + edge, y: y + edge, w: w - 2 * edge, h: h - 2 * edge, c)
        case .forklift:
            let wf = Double(w), hf = Double(h)
            func X(_ f: Double) -> Int { x + Int((wf * f).rounded()) }
            func Y(_ f: Double) -> Int { y + Int((hf * f).rounded()) }
            canvas.fillRect(x: x, y: Y(0.35), w: X(0.65) - x, h: Y(0.85) - Y(0.35), c)            // body
            canvas.fillRect(x: X(0.30), y: Y(0.05), w: X(0.65) - X(0.30), h: max(1, Y(0.11) - Y(0.05)), dark) // guard
            canvas.fillRect(x: X(0.30), y: Y(0.05), w: max(1, X(0.34) - X(0.30)), h: Y(0.35) - Y(0.05), dark) // pillar
            canvas.fillRect(x: X(0.65), y: y, w: max(1, X(0.72) - X(0.65)), h: Y(0.85) - y, dark)  // mast
            canvas.fillRect(x: X(0.72), y: Y(0.76), w: x + w - X(0.72), h: max(1, Y(0.83) - Y(0.76)), dark) // forks
            let r = hf * 0.15
            canvas.fillCircle(cx: Double(x) + wf * 0.15, cy: Double(y + h) - r, r: r, (30, 30, 30))
            canvas.fillCircle(cx: Double(x) + wf * 0.50, cy: Double(y + h) - r, r: r, (30, 30, 30))
        case .ball:
            let r = Double(w) / 2
            canvas.fillCircle(cx: Double(x) + r, cy: Double(y) + r, r: r, c)
        }
    }

    /// Position along a segment of length `range`, reflecting at both ends (a triangle wave).
    static func bounce(_ p: Double, range: Double) -> Int {
        guard range > 0 else { return 0 }
        var m = p.truncatingRemainder(dividingBy: 2 * range)
        if m < 0 { m += 2 * range }
        let v = m <= range ? m : 2 * range - m
        return min(Int(range), max(0, Int(v.rounded())))
    }

    /// A grey tiled floor with shelving along the top and fixed per-pixel grain.
    private static func floor(width: Int, height: Int, seed: UInt64) -> [UInt8] {
        var px = [UInt8](repeating: 0, count: width * height * 3)
        let tile = max(8, min(width, height) / 8)
        let shelf = height / 6
        for yy in 0..<height {
            for xx in 0..<width {
                var h = UInt64(truncatingIfNeeded: xx) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: yy) &* 0xC2B2_AE3D_27D4_EB4F ^ seed
                h ^= h >> 29
                h &*= 0xBF58_476D_1CE4_E5B9
                h ^= h >> 32
                let grain = Int(h % 13) - 6   // −6…6
                var rgb: (Int, Int, Int)
                if yy < shelf {
                    // Shelving: brown boards with darker gaps.
                    let board = (yy % max(4, shelf / 3)) < 2
                    rgb = board ? (70, 52, 36) : (125, 95, 62)
                } else {
                    let line = (xx % tile == 0) || ((yy - shelf) % tile == 0)
                    let shade = ((xx / tile + (yy - shelf) / tile) % 2 == 0) ? 112 : 100
                    rgb = line ? (78, 78, 82) : (shade, shade, shade + 4)
                }
                let i = (yy * width + xx) * 3
                px[i] = UInt8(clamping: rgb.0 + grain)
                px[i + 1] = UInt8(clamping: rgb.1 + grain)
                px[i + 2] = UInt8(clamping: rgb.2 + grain)
            }
        }
        return px
    }
}

/// A mutable RGB24 buffer with clipped fills.
private struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    mutating func fillRect(x: Int, y: Int, w: Int, h: Int, _ c: (UInt8, UInt8, UInt8)) {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        for yy in y0..<y1 {
            var i = (yy * width + x0) * 3
            for _ in x0..<x1 {
                pixels[i] = c.0
                pixels[i + 1] = c.1
                pixels[i + 2] = c.2
                i += 3
            }
        }
    }

    /// Fills the pixels whose centres lie within `r` of (cx, cy).
    mutating func fillCircle(cx: Double, cy: Double, r: Double, _ c: (UInt8, UInt8, UInt8)) {
        let y0 = max(0, Int((cy - r).rounded(.down))), y1 = min(height - 1, Int((cy + r).rounded(.up)))
        guard y0 <= y1 else { return }
        for yy in y0...y1 {
            let dy = Double(yy) + 0.5 - cy
            let span = r * r - dy * dy
            guard span >= 0 else { continue }
            let dx = span.squareRoot()
            let xa = max(0, Int((cx - dx - 0.5).rounded(.up))), xb = min(width - 1, Int((cx + dx - 0.5).rounded(.down)))
            guard xa <= xb else { continue }
            for xx in xa...xb {
                let i = (yy * width + xx) * 3
                pixels[i] = c.0
                pixels[i + 1] = c.1
                pixels[i + 2] = c.2
            }
        }
    }
}
