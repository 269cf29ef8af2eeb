// The synthetic warehouse world: a top-down view of one aisle between two racks, with pallets,
// coloured boxes, people and a forklift on a cluttered concrete floor, rendered in pure Swift with
// exact ground truth and template questions whose answers follow from that truth.
//
// Geometry lives in a 224 × 224 "world square" (WarehouseWorld.side). An image of W × H pixels shows
// the world square scaled by min(W, H) / 224 and centred; the margins outside it show more floor and
// rack but never an object. So the view after a CLIP-style image processor (shortest-edge resize,
// centre crop) is exactly the world square, and the truth (left/right, counts) is about what the
// model sees.
import Foundation
import SplitMix

/// One object of a warehouse frame, with its pixel bounds in the image.
public struct WarehouseObject: Sendable, Equatable, Codable {
    /// What the object is.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case person, forklift, pallet, box
    }

    public var kind: Kind
    /// A colour name: a box's colour (`WarehouseWorld.boxColors`), "hi-vis" for people, "yellow" for
    /// the forklift, "wood" for pallets.
    public var color: String
    /// `[x, y, width, height]` in image pixels, clipped to the image.
    public var bbox: [Int]

    public init(kind: Kind, color: String, bbox: [Int]) {
        self.kind = kind
        self.color = color
        self.bbox = bbox
    }
}

/// One template question about a frame and its exact answer.
public struct WarehouseQuestion: Sendable, Equatable {
    /// The question type (`presence`, `color`, `count`, `side`, `blocked`).
    public var type: String
    public var question: String
    public var answer: String
}

/// Where everything stands in one frame, in world units (the 224-unit square).
public struct WarehouseLayout: Sendable, Equatable {
    /// An axis-aligned rectangle in world units.
    public struct Rect: Sendable, Equatable {
        public var x: Double, y: Double, w: Double, h: Double
        public init(x: Double, y: Double, w: Double, h: Double) {
            self.x = x
            self.y = y
            self.w = w
            self.h = h
        }
        public var midX: Double { x + w / 2 }
        public var midY: Double { y + h / 2 }
        /// Whether the two rectangles, each grown by `margin`, overlap.
        public func intersects(_ o: Rect, margin: Double = 0) -> Bool {
            x - margin < o.x + o.w && o.x - margin < x + w && y - margin < o.y + o.h && o.y - margin < y + h
        }
    }

    public struct Person: Sendable, Equatable {
        /// Centre of the person, world units.
        public var x: Double, y: Double
        /// Walking direction: true = towards the top of the image.
        public var facingUp: Bool
        /// Stride phase in [0, 1) (legs and arms swing).
        public var stride: Double
        public var rect: Rect { Rect(x: x - WarehouseWorld.personSize.w / 2, y: y - WarehouseWorld.personSize.h / 2,
                                     w: WarehouseWorld.personSize.w, h: WarehouseWorld.personSize.h) }
    }

    public struct Forklift: Sendable, Equatable {
        /// Centre of the whole footprint (body, mast, forks), world units.
        public var x: Double, y: Double
        /// Forks towards the top of the image.
        public var facingUp: Bool
        /// Index into `WarehouseWorld.boxColors` of the box on its forks.
        public var boxColor: Int
        public var rect: Rect { Rect(x: x - WarehouseWorld.forkliftSize.w / 2, y: y - WarehouseWorld.forkliftSize.h / 2,
                                     w: WarehouseWorld.forkliftSize.w, h: WarehouseWorld.forkliftSize.h) }
        /// The box on the forks.
        public var boxRect: Rect {
            let r = rect, s = WarehouseWorld.boxSide
            return Rect(x: r.midX - s / 2, y: facingUp ? r.y + 1 : r.y + r.h - 1 - s, w: s, h: s)
        }
    }

    public var persons: [Person] = []
    public var forklift: Forklift?
    public var pallets: [Rect] = []
    /// Loose boxes on the floor: rectangle and colour index.
    public var boxes: [(rect: Rect, color: Int)] = []
    /// Drives the floor clutter and the rack contents (static per scene).
    public var clutterSeed: UInt64 = 0

    public init() {}

    public static func == (a: WarehouseLayout, b: WarehouseLayout) -> Bool {
        a.persons == b.persons && a.forklift == b.forklift && a.pallets == b.pallets && a.clutterSeed == b.clutterSeed
            && a.boxes.map(\.rect) == b.boxes.map(\.rect) && a.boxes.map(\.color) == b.boxes.map(\.color)
    }

    /// People whose centre lies inside the world square (partly visible people at an edge count when
    /// their centre is in view).
    public var visiblePersons: [Person] {
        persons.filter { $0.x >= 0 && $0.x < WarehouseWorld.side && $0.y >= 0 && $0.y < WarehouseWorld.side }
    }

    /// A pallet blocks the aisle when it overlaps the centre strip (`WarehouseWorld.centerStrip`).
    public var isBlocked: Bool {
        let s = WarehouseWorld.centerStrip
        return pallets.contains { $0.x < s.upperBound && $0.x + $0.w > s.lowerBound }
    }
}

/// The warehouse world: sampling balanced still scenes, scripted video, rendering and questions.
public enum WarehouseWorld {
    /// Side of the world square in world units (= pixels at the native 224 × 224 size).
    public static let side = 224.0
    /// The aisle floor between the racks, world x.
    public static let aisle = 44.0..<180.0
    /// The aisle's centre line.
    public static let centerX = 112.0
    /// A pallet overlapping this strip of world x blocks the aisle.
    public static let centerStrip = 104.0..<120.0
    public static let personSize = (w: 12.0, h: 14.0)
    public static let forkliftSize = (w: 22.0, h: 46.0)
    public static let palletSize = (w: 26.0, h: 18.0)
    public static let boxSide = 12.0
    /// Colours of boxes (names as answers use them).
    public static let boxColors: [(name: String, rgb: (Double, Double, Double))] = [
        ("red", (205, 40, 35)), ("green", (40, 165, 60)), ("blue", (40, 80, 215)), ("white", (240, 240, 236)),
    ]
    /// Count answers, by number.
    public static let numberWords = ["zero", "one", "two", "three", "four", "five"]

    /// The question texts, by type, in the order `questions(for:)` lists them.
    public static let questionTexts: [(type: String, text: String)] = [
        ("presence", "Is there a person in the aisle?"),
        ("color", "What colour is the box next to the forklift?"),
        ("count", "How many pallets are there?"),
        ("side", "Is the forklift on the left or the right?"),
        ("blocked", "Is the aisle blocked?"),
    ]

    // MARK: - truth

    /// Every template question that applies to the layout, with its answer. The colour and side
    /// questions are asked only when a forklift is in view.
    public static func questions(for layout: WarehouseLayout) -> [WarehouseQuestion] {
        var out: [WarehouseQuestion] = []
        for (type, text) in questionTexts {
            let answer: String?
            switch type {
            case "presence": answer = layout.visiblePersons.isEmpty ? "no" : "yes"
            case "color": answer = layout.forklift.map { boxColors[$0.boxColor].name }
            case "count": answer = numberWords[min(layout.pallets.count, numberWords.count - 1)]
            case "side": answer = layout.forklift.map { $0.x < centerX ? "left" : "right" }
            default: answer = layout.isBlocked ? "yes" : "no"
            }
            if let answer { out.append(WarehouseQuestion(type: type, question: text, answer: answer)) }
        }
        return out
    }

    /// The objects of a layout in an image of `width × height` pixels, bounds clipped to the image;
    /// people out of view are left out. The box on the forklift's forks is listed as a box.
    public static func objects(for layout: WarehouseLayout, width: Int, height: Int) -> [WarehouseObject] {
        let t = Transform(width: width, height: height)
        func box(_ r: WarehouseLayout.Rect) -> [Int]? {
            let x0 = max(0, Int((t.px(r.x)).rounded(.down))), y0 = max(0, Int((t.py(r.y)).rounded(.down)))
            let x1 = min(width, Int((t.px(r.x + r.w)).rounded(.up))), y1 = min(height, Int((t.py(r.y + r.h)).rounded(.up)))
            return x1 > x0 && y1 > y0 ? [x0, y0, x1 - x0, y1 - y0] : nil
        }
        var out: [WarehouseObject] = []
        for p in layout.pallets { if let b = box(p) { out.append(.init(kind: .pallet, color: "wood", bbox: b)) } }
        for b in layout.boxes { if let r = box(b.rect) { out.append(.init(kind: .box, color: boxColors[b.color].name, bbox: r)) } }
        if let f = layout.forklift {
            if let r = box(f.rect) { out.append(.init(kind: .forklift, color: "yellow", bbox: r)) }
            if let r = box(f.boxRect) { out.append(.init(kind: .box, color: boxColors[f.boxColor].name, bbox: r)) }
        }
        for p in layout.visiblePersons { if let r = box(p.rect) { out.append(.init(kind: .person, color: "hi-vis", bbox: r)) } }
        return out
    }

    // MARK: - sampling still scenes

    /// A random still scene with balanced answers: a person in view half the time (one or two
    /// people); a forklift 3 times in 4 (each side and each box colour equally often); the aisle
    /// blocked half the time (then 1–3 pallets, one across the centre line; else 0–3 pallets beside
    /// the racks); 0–2 loose boxes whose colours differ from the forklift's box. Objects never overlap.
    /// - Parameter rng: the generator (advanced).
    public static func sampleLayout(_ rng: inout SplitMix64) -> WarehouseLayout {
        while true {
            if let layout = trySample(&rng) { return layout }
        }
    }

    private static func uniform(_ rng: inout SplitMix64, _ a: Double, _ b: Double) -> Double { a + (b - a) * rng.nextUnit() }
    private static func pick(_ rng: inout SplitMix64, _ n: Int) -> Int { Int(rng.next(below: UInt64(n))) }

    private static func trySample(_ rng: inout SplitMix64) -> WarehouseLayout? {
        var layout = WarehouseLayout()
        layout.clutterSeed = rng.next()
        var placed: [WarehouseLayout.Rect] = []
        func fits(_ r: WarehouseLayout.Rect) -> Bool { !placed.contains { $0.intersects(r, margin: 4) } }
        func place(tries: Int = 60, _ make: (inout SplitMix64) -> WarehouseLayout.Rect) -> WarehouseLayout.Rect? {
            for _ in 0..<tries {
                let r = make(&rng)
                if fits(r) { placed.append(r); return r }
            }
            return nil
        }
        // Forklift first (largest).
        if pick(&rng, 4) != 0 {
            let left = pick(&rng, 2) == 0
            let facingUp = pick(&rng, 2) == 0, color = pick(&rng, boxColors.count)
            let cx = left ? uniform(&rng, 62, 90) : uniform(&rng, 134, 162)
            let f = WarehouseLayout.Forklift(x: cx, y: uniform(&rng, 4 + forkliftSize.h / 2, side - 4 - forkliftSize.h / 2),
                                             facingUp: facingUp, boxColor: color)
            placed.append(f.rect)
            layout.forklift = f
        }
        let blocked = pick(&rng, 2) == 0
        let count = blocked ? 1 + pick(&rng, 3) : pick(&rng, 4)
        for i in 0..<count {
            let w = palletSize.w, h = palletSize.h
            let r = place { rng in
                let y = uniform(&rng, 4, side - 4 - h)
                if blocked && i == 0 {
                    return .init(x: uniform(&rng, centerX - w / 2 - 4, centerX - w / 2 + 4), y: y, w: w, h: h)
                }
                let x = pick(&rng, 2) == 0 ? uniform(&rng, aisle.lowerBound + 6, centerStrip.lowerBound - 2 - w)
                                           : uniform(&rng, centerStrip.upperBound + 2, aisle.upperBound - 6 - w)
                return .init(x: x, y: y, w: w, h: h)
            }
            guard let r else { return nil }
            layout.pallets.append(r)
        }
        let looseColors = (0..<boxColors.count).filter { $0 != layout.forklift?.boxColor }
        for _ in 0..<pick(&rng, 3) {
            let r = place { rng in
                let s = boxSide
                let x = pick(&rng, 2) == 0 ? uniform(&rng, aisle.lowerBound + 6, centerStrip.lowerBound - 2 - s)
                                           : uniform(&rng, centerStrip.upperBound + 2, aisle.upperBound - 6 - s)
                return .init(x: x, y: uniform(&rng, 4, side - 4 - s), w: s, h: s)
            }
            guard let r else { return nil }
            layout.boxes.append((r, looseColors[pick(&rng, looseColors.count)]))
        }
        if pick(&rng, 2) == 0 {
            for _ in 0..<(pick(&rng, 10) < 7 ? 1 : 2) {
                let r = place { rng in
                    .init(x: uniform(&rng, aisle.lowerBound + 6, aisle.upperBound - 6 - personSize.w),
                          y: uniform(&rng, 4, side - 4 - personSize.h), w: personSize.w, h: personSize.h)
                }
                guard let r else { return nil }
                layout.persons.append(.init(x: r.midX, y: r.midY, facingUp: pick(&rng, 2) == 0, stride: rng.nextUnit()))
            }
        }
        return layout
    }

    // MARK: - rendering

    /// Renders a layout.
    /// - Parameters:
    ///   - layout: what stands where.
    ///   - width: image width in pixels (16…4096).
    ///   - height: image height in pixels (16…4096).
    ///   - noiseSeed: drives the camera noise and gain of this frame.
    /// - Returns: the RGB image.
    /// - Complexity: O(width · height).
    public static func render(_ layout: WarehouseLayout, width: Int = 224, height: Int = 224, noiseSeed: UInt64) -> RGBImage {
        let t = Transform(width: width, height: height)
        var c = FloatCanvas(width: width, height: height)
        drawBackground(&c, t, seed: layout.clutterSeed)
        for p in layout.pallets { drawPallet(&c, t, p) }
        for b in layout.boxes { drawBox(&c, t, b.rect, boxColors[b.color].rgb) }
        if let f = layout.forklift { drawForklift(&c, t, f) }
        for p in layout.persons { drawPerson(&c, t, p) }
        // Camera: a global gain and per-pixel noise (about ±3 levels).
        var rng = SplitMix64(seed: noiseSeed ^ 0xCA3E_7A00_0000_0001)
        let gain = 0.95 + 0.10 * rng.nextUnit()
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<px.count {
            // Sum of three uniforms: roughly Gaussian, sd ≈ 2.9.
            let r = rng.next()
            let n = Double(r & 0xFF) + Double((r >> 8) & 0xFF) + Double((r >> 16) & 0xFF) - 382.5
            px[i] = UInt8(clamping: Int((c.px[i] * gain + n * 0.04).rounded()))
        }
        return RGBImage(width: width, height: height, pixels: px)
    }

    /// World → pixel mapping: the world square scaled by min(W, H) / 224 and centred.
    struct Transform {
        let scale: Double, ox: Double, oy: Double
        init(width: Int, height: Int) {
            scale = Double(min(width, height)) / WarehouseWorld.side
            ox = (Double(width) - WarehouseWorld.side * scale) / 2
            oy = (Double(height) - WarehouseWorld.side * scale) / 2
        }
        func px(_ x: Double) -> Double { ox + x * scale }
        func py(_ y: Double) -> Double { oy + y * scale }
        func wx(_ px: Double) -> Double { (px - ox) / scale }
        func wy(_ py: Double) -> Double { (py - oy) / scale }
    }

    private static func hash(_ a: Int, _ b: Int, _ seed: UInt64) -> UInt64 {
        var h = UInt64(bitPattern: Int64(a)) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(bitPattern: Int64(b)) &* 0xC2B2_AE3D_27D4_EB4F ^ seed
        h ^= h >> 29
        h &*= 0xBF58_476D_1CE4_E5B9
        h ^= h >> 32
        return h
    }

    /// Smooth value noise in [0, 1) at world position (x, y), cell size `cell`.
    private static func valueNoise(_ x: Double, _ y: Double, cell: Double, seed: UInt64) -> Double {
        let gx = x / cell, gy = y / cell
        let ix = Int(gx.rounded(.down)), iy = Int(gy.rounded(.down))
        let fx = gx - Double(ix), fy = gy - Double(iy)
        func v(_ a: Int, _ b: Int) -> Double { Double(hash(a, b, seed) >> 11) * 0x1.0p-53 }
        let sx = fx * fx * (3 - 2 * fx), sy = fy * fy * (3 - 2 * fy)
        let top = v(ix, iy) + (v(ix + 1, iy) - v(ix, iy)) * sx
        let bottom = v(ix, iy + 1) + (v(ix + 1, iy + 1) - v(ix, iy + 1)) * sx
        return top + (bottom - top) * sy
    }

    private static func drawBackground(_ c: inout FloatCanvas, _ t: Transform, seed: UInt64) {
        let rackColor = (x: 60.0, y: 70.0, z: 96.0)      // blue steel uprights
        for py in 0..<c.height {
            for pxi in 0..<c.width {
                let x = t.wx(Double(pxi) + 0.5), y = t.wy(Double(py) + 0.5)
                var rgb: (Double, Double, Double)
                if x < aisle.lowerBound || x >= aisle.upperBound {
                    // Rack seen from above: shelf boards with dark gaps, uprights every 56 units.
                    let local = x < aisle.lowerBound ? aisle.lowerBound - x : x - aisle.upperBound
                    let cellY = (y / 56).rounded(.down), inCell = y - cellY * 56
                    if inCell < 3 || local < 2 {
                        rgb = (rackColor.x, rackColor.y, rackColor.z)
                    } else {
                        // Goods on the shelf: cardboard and grey totes, one per 14-unit slot.
                        let slot = Int((inCell / 14).rounded(.down)) + Int(cellY) * 4
                        let side = x < aisle.lowerBound ? 0 : 1
                        let h = hash(slot, side, seed)
                        let depth = 8 + Double(h % 26)
                        if local < depth + 2 && Int(inCell) % 14 > 1 {
                            let shade = Double((h >> 8) % 30)
                            rgb = (h >> 16) % 3 == 0 ? (120 + shade, 120 + shade, 124 + shade)   // grey tote
                                                     : (150 + shade, 112 + shade * 0.8, 72 + shade * 0.5)  // cardboard
                        } else {
                            rgb = (92, 76, 58)   // shelf board
                        }
                    }
                } else {
                    // Concrete: large blotches plus fine grain.
                    let n = valueNoise(x, y, cell: 28, seed: seed) * 0.6 + valueNoise(x, y, cell: 7, seed: seed &+ 1) * 0.4
                    let g = 118 + 26 * n
                    rgb = (g, g - 2, g - 6)
                    // Yellow edge lines and a dashed white centre line.
                    if abs(x - (aisle.lowerBound + 5)) < 1.5 || abs(x - (aisle.upperBound - 5)) < 1.5 {
                        rgb = (200, 170, 40)
                    } else if abs(x - centerX) < 1.0 && Int(y / 12) % 2 == 0 {
                        rgb = (205, 205, 200)
                    }
                }
                c.set(pxi, py, rgb)
            }
        }
        // Floor clutter: stains, cracks, debris, tape. Static per scene.
        var rng = SplitMix64(seed: seed ^ 0xC1A7_7E55_0000_0002)
        let items = 5 + pick(&rng, 6)
        for _ in 0..<items {
            let x = uniform(&rng, aisle.lowerBound, aisle.upperBound), y = uniform(&rng, 0, side)
            switch pick(&rng, 4) {
            case 0:   // oil stain
                c.blendEllipse(t, cx: x, cy: y, rx: uniform(&rng, 5, 14), ry: uniform(&rng, 3, 9), (45, 42, 40), alpha: 0.35)
            case 1:   // crack
                var cx = x, cy = y
                for _ in 0..<(6 + pick(&rng, 8)) {
                    let nx = cx + uniform(&rng, -4, 4), ny = cy + uniform(&rng, 1, 4)
                    c.line(t, cx, cy, nx, ny, (80, 78, 74))
                    cx = nx
                    cy = ny
                }
            case 2:   // debris specks
                for _ in 0..<(3 + pick(&rng, 5)) {
                    c.fillRect(t, .init(x: x + uniform(&rng, -6, 6), y: y + uniform(&rng, -6, 6), w: 1.5, h: 1.5),
                               (uniform(&rng, 60, 200), uniform(&rng, 60, 180), uniform(&rng, 50, 160)))
                }
            default:  // tape or shrink-wrap scrap
                c.blendEllipse(t, cx: x, cy: y, rx: uniform(&rng, 3, 7), ry: uniform(&rng, 2, 4), (225, 225, 230), alpha: 0.5)
            }
        }
    }

    private static func drawPallet(_ c: inout FloatCanvas, _ t: Transform, _ r: WarehouseLayout.Rect) {
        c.fillRect(t, r, (70, 52, 34))   // shadow between boards
        let boards = 4
        let gap = 2.0, bh = (r.h - gap * Double(boards - 1)) / Double(boards)
        for i in 0..<boards {
            let y = r.y + Double(i) * (bh + gap)
            c.fillRect(t, .init(x: r.x, y: y, w: r.w, h: bh), (176, 134, 84))
        }
        // Stringers showing through at the ends and middle.
        for fx in [0.0, 0.45, 0.9] {
            c.fillRect(t, .init(x: r.x + r.w * fx, y: r.y, w: r.w * 0.1, h: r.h), (150, 110, 66))
        }
    }

    private static func drawBox(_ c: inout FloatCanvas, _ t: Transform, _ r: WarehouseLayout.Rect, _ rgb: (Double, Double, Double)) {
        let dark = (rgb.0 * 0.6, rgb.1 * 0.6, rgb.2 * 0.6)
        c.fillRect(t, r, dark)
        c.fillRect(t, .init(x: r.x + 1.5, y: r.y + 1.5, w: r.w - 3, h: r.h - 3), rgb)
        // Tape across the lid.
        c.fillRect(t, .init(x: r.x + 1.5, y: r.midY - 0.75, w: r.w - 3, h: 1.5), (rgb.0 * 0.8 + 40, rgb.1 * 0.8 + 40, rgb.2 * 0.8 + 40))
    }

    private static func drawForklift(_ c: inout FloatCanvas, _ t: Transform, _ f: WarehouseLayout.Forklift) {
        let r = f.rect
        let forkLen = 14.0, mast = 3.0
        // Footprint from the fork end: forks, mast, body (with cab), counterweight.
        let bodyY = f.facingUp ? r.y + forkLen + mast : r.y
        let bodyH = r.h - forkLen - mast
        let body = WarehouseLayout.Rect(x: r.x, y: bodyY, w: r.w, h: bodyH)
        // Wheels stick out at the corners.
        for (dx, dy) in [(0.0, 0.12), (0.0, 0.70), (1.0, 0.12), (1.0, 0.70)] {
            let wy = body.y + body.h * (f.facingUp ? dy : 1 - dy - 0.18)
            c.fillRect(t, .init(x: body.x + dx * (body.w - 4), y: wy, w: 4, h: body.h * 0.18), (25, 25, 25))
        }
        c.fillRect(t, .init(x: body.x + 2, y: body.y, w: body.w - 4, h: body.h), (238, 178, 24))
        // Counterweight at the rear, cab roof with a seat.
        let rearY = f.facingUp ? body.y + body.h - 7 : body.y
        c.fillRect(t, .init(x: body.x + 2, y: rearY, w: body.w - 4, h: 7), (70, 70, 72))
        c.fillRect(t, .init(x: body.x + 5, y: body.y + body.h * 0.3, w: body.w - 10, h: body.h * 0.4), (40, 40, 44))
        c.fillRect(t, .init(x: body.x + 8, y: body.y + body.h * 0.42, w: body.w - 16, h: body.h * 0.16), (20, 20, 20))
        // Mast and forks.
        let mastY = f.facingUp ? bodyY - mast : bodyY + bodyH
        c.fillRect(t, .init(x: r.x + 1, y: mastY, w: r.w - 2, h: mast), (50, 50, 55))
        let forkY = f.facingUp ? r.y : mastY + mast
        for fx in [0.25, 0.65] {
            c.fillRect(t, .init(x: r.x + r.w * fx, y: forkY, w: 3, h: forkLen), (95, 95, 100))
        }
        drawBox(&c, t, f.boxRect, boxColors[f.boxColor].rgb)
    }

    private static func drawPerson(_ c: inout FloatCanvas, _ t: Transform, _ p: WarehouseLayout.Person) {
        let r = p.rect
        let swing = sin(p.stride * 2 * Double.pi) * 3
        let dir = p.facingUp ? -1.0 : 1.0
        // Legs (seen past the shoulders), shoulders in a hi-vis vest, arms, head with a helmet.
        c.fillEllipse(t, cx: r.midX - 2.5, cy: r.midY + dir * (3 + swing), rx: 1.8, ry: 3, (40, 45, 70))
        c.fillEllipse(t, cx: r.midX + 2.5, cy: r.midY + dir * (3 - swing), rx: 1.8, ry: 3, (40, 45, 70))
        c.fillEllipse(t, cx: r.midX, cy: r.midY, rx: r.w / 2, ry: r.h * 0.28, (185, 235, 45))
        c.fillEllipse(t, cx: r.x + 1, cy: r.midY - dir * swing * 0.6, rx: 1.6, ry: 2.6, (185, 235, 45))
        c.fillEllipse(t, cx: r.x + r.w - 1, cy: r.midY + dir * swing * 0.6, rx: 1.6, ry: 2.6, (185, 235, 45))
        c.fillEllipse(t, cx: r.midX, cy: r.midY + 0.5, rx: 3.2, ry: 3.0, (250, 250, 250))
    }

    // MARK: - video

    /// A scripted scene for video, repeating every `WarehouseVideo.period` seconds: static pallets and
    /// boxes beside the racks (aisle never blocked), a forklift that switches from the left lane to
    /// the right and back, and people walking down and up the centre of the aisle.
    public struct Video: Sendable {
        public static let period = 20.0
        public let seed: UInt64
        let base: WarehouseLayout
        let leftX: Double, rightX: Double, forkliftY: Double

        /// - Parameter seed: drives the static layout, colours and clutter.
        public init(seed: UInt64) {
            self.seed = seed
            var rng = SplitMix64(seed: seed ^ 0x71DE_0000_0000_0003)
            var base = WarehouseLayout()
            base.clutterSeed = rng.next()
            let facingUp = WarehouseWorld.pick(&rng, 2) == 0
            let boxColor = WarehouseWorld.pick(&rng, WarehouseWorld.boxColors.count)
            leftX = WarehouseWorld.uniform(&rng, 66, 84)
            rightX = WarehouseWorld.uniform(&rng, 140, 158)
            forkliftY = WarehouseWorld.uniform(&rng, 150, 192)
            base.forklift = .init(x: leftX, y: forkliftY, facingUp: facingUp, boxColor: boxColor)
            // Pallets and loose boxes in the top half, beside the racks.
            var placed: [WarehouseLayout.Rect] = []
            let count = 1 + WarehouseWorld.pick(&rng, 3)
            var tries = 0
            while base.pallets.count < count && tries < 500 {
                tries += 1
                let w = WarehouseWorld.palletSize.w, h = WarehouseWorld.palletSize.h
                let x = WarehouseWorld.pick(&rng, 2) == 0 ? WarehouseWorld.uniform(&rng, 50, WarehouseWorld.centerStrip.lowerBound - 2 - w)
                                                         : WarehouseWorld.uniform(&rng, WarehouseWorld.centerStrip.upperBound + 2, 174 - w)
                let r = WarehouseLayout.Rect(x: x, y: WarehouseWorld.uniform(&rng, 6, 118 - h), w: w, h: h)
                if !placed.contains(where: { $0.intersects(r, margin: 4) }) { placed.append(r); base.pallets.append(r) }
            }
            let looseColors = (0..<WarehouseWorld.boxColors.count).filter { $0 != boxColor }
            for _ in 0..<2 {
                let s = WarehouseWorld.boxSide
                let x = WarehouseWorld.pick(&rng, 2) == 0 ? WarehouseWorld.uniform(&rng, 50, 100 - s) : WarehouseWorld.uniform(&rng, 122, 174 - s)
                let r = WarehouseLayout.Rect(x: x, y: WarehouseWorld.uniform(&rng, 6, 130 - s), w: s, h: s)
                if !placed.contains(where: { $0.intersects(r, margin: 4) }) {
                    placed.append(r)
                    base.boxes.append((r, looseColors[WarehouseWorld.pick(&rng, looseColors.count)]))
                }
            }
            self.base = base
        }

        /// The layout at `t` seconds.
        public func layout(at t: Double) -> WarehouseLayout {
            var l = base
            let p = (t.truncatingRemainder(dividingBy: Self.period) + Self.period).truncatingRemainder(dividingBy: Self.period)
            // Forklift: left [0, 7), crossing [7, 9), right [9, 17), crossing back [17, 19), left.
            func ramp(_ a: Double, _ b: Double) -> Double { min(1, max(0, (p - a) / (b - a))) }
            let s = ramp(7, 9) - ramp(17, 19)
            let smooth = s * s * (3 - 2 * s)
            l.forklift!.x = leftX + (rightX - leftX) * smooth
            l.forklift!.y = forkliftY + 2 * sin(p * 0.9)
            // People: one walks down the centre during [1, 6.5), one walks up during [10, 15.5).
            let span = WarehouseWorld.side + WarehouseWorld.personSize.h * 2
            if p >= 1 && p < 6.5 {
                let f = (p - 1) / 5.5
                l.persons = [.init(x: WarehouseWorld.centerX + 1, y: -WarehouseWorld.personSize.h + f * span, facingUp: false,
                                   stride: (p * 1.6).truncatingRemainder(dividingBy: 1))]
            } else if p >= 10 && p < 15.5 {
                let f = (p - 10) / 5.5
                l.persons = [.init(x: WarehouseWorld.centerX - 1, y: WarehouseWorld.side + WarehouseWorld.personSize.h - f * span,
                                   facingUp: true, stride: (p * 1.6).truncatingRemainder(dividingBy: 1))]
            }
            return l
        }
    }
}

/// A float RGB canvas with clipped fills in world coordinates.
private struct FloatCanvas {
    let width: Int, height: Int
    var px: [Double]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        px = [Double](repeating: 0, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ c: (Double, Double, Double)) {
        let i = (y * width + x) * 3
        px[i] = c.0
        px[i + 1] = c.1
        px[i + 2] = c.2
    }

    /// Fills the pixels whose centres lie inside the rectangle.
    mutating func fillRect(_ t: WarehouseWorld.Transform, _ r: WarehouseLayout.Rect, _ c: (Double, Double, Double)) {
        let x0 = max(0, Int((t.px(r.x) - 0.5).rounded(.up))), x1 = min(width - 1, Int((t.px(r.x + r.w) - 0.5).rounded(.up)) - 1)
        let y0 = max(0, Int((t.py(r.y) - 0.5).rounded(.up))), y1 = min(height - 1, Int((t.py(r.y + r.h) - 0.5).rounded(.up)) - 1)
        guard x0 <= x1, y0 <= y1 else { return }
        for y in y0...y1 { for x in x0...x1 { set(x, y, c) } }
    }

    mutating func fillEllipse(_ t: WarehouseWorld.Transform, cx: Double, cy: Double, rx: Double, ry: Double,
                              _ c: (Double, Double, Double)) {
        blendEllipse(t, cx: cx, cy: cy, rx: rx, ry: ry, c, alpha: 1)
    }

    mutating func blendEllipse(_ t: WarehouseWorld.Transform, cx: Double, cy: Double, rx: Double, ry: Double,
                               _ c: (Double, Double, Double), alpha: Double) {
        let pcx = t.px(cx), pcy = t.py(cy), prx = rx * t.scale, pry = ry * t.scale
        let x0 = max(0, Int((pcx - prx).rounded(.down))), x1 = min(width - 1, Int((pcx + prx).rounded(.up)))
        let y0 = max(0, Int((pcy - pry).rounded(.down))), y1 = min(height - 1, Int((pcy + pry).rounded(.up)))
        guard x0 <= x1, y0 <= y1, prx > 0, pry > 0 else { return }
        for y in y0...y1 {
            for x in x0...x1 {
                let dx = (Double(x) + 0.5 - pcx) / prx, dy = (Double(y) + 0.5 - pcy) / pry
                guard dx * dx + dy * dy <= 1 else { continue }
                let i = (y * width + x) * 3
                px[i] += (c.0 - px[i]) * alpha
                px[i + 1] += (c.1 - px[i + 1]) * alpha
                px[i + 2] += (c.2 - px[i + 2]) * alpha
            }
        }
    }

    /// A 1-unit-wide line (stamped squares along the segment).
    mutating func line(_ t: WarehouseWorld.Transform, _ ax: Double, _ ay: Double, _ bx: Double, _ by: Double,
                       _ c: (Double, Double, Double)) {
        let steps = max(1, Int((max(abs(bx - ax), abs(by - ay)) * t.scale * 2).rounded(.up)))
        for s in 0...steps {
            let f = Double(s) / Double(steps)
            let x = Int(t.px(ax + (bx - ax) * f)), y = Int(t.py(ay + (by - ay) * f))
            if x >= 0, x < width, y >= 0, y < height { set(x, y, c) }
        }
    }
}
