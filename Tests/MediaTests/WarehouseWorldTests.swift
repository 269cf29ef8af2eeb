import XCTest
import SplitMix
@testable import Media

final class WarehouseWorldTests: XCTestCase {
    /// Answers recomputed from the object list alone (kinds and pixel boxes), as a reader of the truth would.
    private func answersFromObjects(_ objects: [WarehouseObject], side: Double) -> [String: String] {
        var a: [String: String] = [:]
        let scale = side / WarehouseWorld.side
        a["presence"] = objects.contains { $0.kind == .person } ? "yes" : "no"
        let pallets = objects.filter { $0.kind == .pallet }
        a["count"] = WarehouseWorld.numberWords[pallets.count]
        let strip = (WarehouseWorld.centerStrip.lowerBound * scale, WarehouseWorld.centerStrip.upperBound * scale)
        a["blocked"] = pallets.contains { Double($0.bbox[0]) < strip.1 && Double($0.bbox[0] + $0.bbox[2]) > strip.0 } ? "yes" : "no"
        if let f = objects.first(where: { $0.kind == .forklift }) {
            let cx = Double(f.bbox[0]) + Double(f.bbox[2]) / 2
            a["side"] = cx < WarehouseWorld.centerX * scale ? "left" : "right"
            // The box next to the forklift: the box whose box touches the forklift's box.
            let touching = objects.filter { o in
                o.kind == .box && o.bbox[0] < f.bbox[0] + f.bbox[2] && f.bbox[0] < o.bbox[0] + o.bbox[2]
                    && o.bbox[1] < f.bbox[1] + f.bbox[3] && f.bbox[1] < o.bbox[1] + o.bbox[3]
            }
            XCTAssertEqual(touching.count, 1, "exactly one box touches the forklift")
            a["color"] = touching.first?.color
        }
        return a
    }

    func testAnswersFollowFromTheObjectsDrawn() throws {
        var rng = SplitMix64(seed: 42)
        for i in 0..<300 {
            let layout = WarehouseWorld.sampleLayout(&rng)
            let objects = WarehouseWorld.objects(for: layout, width: 224, height: 224)
            let expected = answersFromObjects(objects, side: 224)
            let asked = Dictionary(uniqueKeysWithValues: WarehouseWorld.questions(for: layout).map { ($0.type, $0.answer) })
            XCTAssertEqual(asked, expected, "scene \(i)")
            // Objects never overlap one another (apart from the forklift and the box on its forks).
            let solid = objects.filter { o in o.kind != .box || !objects.contains { f in f.kind == .forklift && overlaps(f.bbox, o.bbox) } }
            for (a, x) in solid.enumerated() {
                for y in solid[(a + 1)...] where !(x.kind == .forklift && y.kind == .box) {
                    XCTAssertFalse(overlaps(x.bbox, y.bbox), "scene \(i): \(x.kind) and \(y.kind) overlap")
                }
            }
        }
    }

    private func overlaps(_ a: [Int], _ b: [Int]) -> Bool {
        a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3]
    }

    func testTheDrawnPixelsCarryTheObjects() throws {
        var rng = SplitMix64(seed: 7)
        var checkedBoxes = 0, checkedPeople = 0
        for _ in 0..<60 {
            let layout = WarehouseWorld.sampleLayout(&rng)
            let img = WarehouseWorld.render(layout, noiseSeed: 1)
            func pixel(_ x: Double, _ y: Double) -> (Int, Int, Int) {
                let i = (Int(y) * 224 + Int(x)) * 3
                return (Int(img.pixels[i]), Int(img.pixels[i + 1]), Int(img.pixels[i + 2]))
            }
            if let f = layout.forklift {
                // The lid of the box on the forks, beside its tape stripe, shows the box's colour (gain ±5 %, noise).
                let r = f.boxRect
                let p = pixel(r.midX, r.y + 3)
                let c = WarehouseWorld.boxColors[f.boxColor].rgb
                for (got, want) in [(p.0, c.0), (p.1, c.1), (p.2, c.2)] {
                    XCTAssertEqual(Double(got), want, accuracy: 0.06 * want + 14, "box colour \(WarehouseWorld.boxColors[f.boxColor].name)")
                }
                checkedBoxes += 1
            }
            for person in layout.persons {
                // The helmet at the person's centre is white.
                let p = pixel(person.x, person.y + 0.5)
                XCTAssertGreaterThan(min(p.0, p.1, p.2), 215)
                checkedPeople += 1
            }
        }
        XCTAssertGreaterThan(checkedBoxes, 30)
        XCTAssertGreaterThan(checkedPeople, 20)
    }

    func testAnswersAreBalancedPerType() {
        var rng = SplitMix64(seed: 1)
        var counts: [String: [String: Int]] = [:]
        for _ in 0..<3000 {
            for q in WarehouseWorld.questions(for: WarehouseWorld.sampleLayout(&rng)) { counts[q.type, default: [:]][q.answer, default: 0] += 1 }
        }
        XCTAssertEqual(Set(counts.keys), ["presence", "color", "count", "side", "blocked"])
        for (type, answers) in counts {
            let total = answers.values.reduce(0, +)
            let majority = Double(answers.values.max()!) / Double(total)
            // A constant answer must not score well: binary types near 1/2, the four-way types near 1/3 or below.
            XCTAssertLessThan(majority, answers.count == 2 ? 0.56 : 0.36, "\(type): \(answers)")
        }
        XCTAssertEqual(Set(counts["count"]!.keys), ["zero", "one", "two", "three"])
        XCTAssertEqual(Set(counts["color"]!.keys), Set(WarehouseWorld.boxColors.map(\.name)))
    }

    func testRenderingIsDeterministicAndNoiseChangesPixelsOnly() {
        var a = SplitMix64(seed: 5), b = SplitMix64(seed: 5)
        let la = WarehouseWorld.sampleLayout(&a), lb = WarehouseWorld.sampleLayout(&b)
        XCTAssertEqual(la, lb)
        XCTAssertEqual(WarehouseWorld.render(la, noiseSeed: 3), WarehouseWorld.render(lb, noiseSeed: 3))
        let other = WarehouseWorld.render(la, noiseSeed: 4)
        let base = WarehouseWorld.render(la, noiseSeed: 3)
        XCTAssertNotEqual(other, base)
        var sum = 0
        for i in 0..<base.pixels.count { sum += abs(Int(base.pixels[i]) - Int(other.pixels[i])) }
        XCTAssertLessThan(Double(sum) / Double(base.pixels.count), 12, "camera noise is mild")
    }

    func testWiderImagesKeepTheWorldInTheCentreSquare() {
        var rng = SplitMix64(seed: 9)
        let layout = WarehouseWorld.sampleLayout(&rng)
        let objects = WarehouseWorld.objects(for: layout, width: 448, height: 336)
        // 336 / 224 = 1.5; the square starts at x = (448 − 336) / 2 = 56.
        for o in objects where o.kind != .person || layout.visiblePersons.count == layout.persons.count {
            XCTAssertGreaterThanOrEqual(o.bbox[0], 56)
            XCTAssertLessThanOrEqual(o.bbox[0] + o.bbox[2], 56 + 336)
        }
        let img = WarehouseWorld.render(layout, width: 448, height: 336, noiseSeed: 0)
        XCTAssertEqual(img.width, 448)
        XCTAssertEqual(img.pixels.count, 448 * 336 * 3)
    }

    func testVideoScriptChangesPresenceAndSide() {
        let video = WarehouseWorld.Video(seed: 3)
        var presence = Set<String>(), side = Set<String>(), blocked = Set<String>()
        for f in 0..<160 {
            let qs = WarehouseWorld.questions(for: video.layout(at: Double(f) / 10))
            for q in qs {
                if q.type == "presence" { presence.insert(q.answer) }
                if q.type == "side" { side.insert(q.answer) }
                if q.type == "blocked" { blocked.insert(q.answer) }
            }
            XCTAssertEqual(qs.count, 5, "the forklift stays in view")
        }
        XCTAssertEqual(presence, ["yes", "no"])
        XCTAssertEqual(side, ["left", "right"])
        XCTAssertEqual(blocked, ["no"])
        // The script repeats with its period.
        XCTAssertEqual(video.layout(at: 2.5), video.layout(at: 2.5 + WarehouseWorld.Video.period))
    }
}
