import Foundation
import ModelIO
import Media
import Pipeline

/// Where each patch of the model's input lies in the original image (undoing resize and center crop).
struct PatchGeometry {
    let grid: (Int, Int)
    /// Original-image pixels per resized pixel, x and y.
    let scaleX: Double, scaleY: Double
    /// Top-left of the crop in resized pixels (may be negative when the crop pads).
    let cropLeft: Int, cropTop: Int
    /// Patch size in model pixels.
    let patchW: Int, patchH: Int

    init(processor: ImageProcessor, imageWidth w: Int, imageHeight h: Int, grid: (Int, Int)) throws {
        self.grid = grid
        let resized = processor.config.doResize ? try processor.resizedSize(height: h, width: w) : (height: h, width: w)
        var ch = resized.height, cw = resized.width
        if processor.config.doCenterCrop, case .exact(let hh, let ww) = processor.config.cropSize { ch = hh; cw = ww }
        cropTop = (resized.height - ch) / 2
        cropLeft = (resized.width - cw) / 2
        scaleX = Double(w) / Double(resized.width)
        scaleY = Double(h) / Double(resized.height)
        patchH = ch / grid.0
        patchW = cw / grid.1
    }

    /// The patch's rectangle in original-image pixels: (x0, y0, x1, y1), exclusive ends, clipped by the caller.
    func rect(_ index: Int) -> (Int, Int, Int, Int) {
        let r = index / grid.1, c = index % grid.1
        let x0 = Double(cropLeft + c * patchW) * scaleX, x1 = Double(cropLeft + (c + 1) * patchW) * scaleX
        let y0 = Double(cropTop + r * patchH) * scaleY, y1 = Double(cropTop + (r + 1) * patchH) * scaleY
        return (Int(x0.rounded()), Int(y0.rounded()), Int(x1.rounded()), Int(y1.rounded()))
    }
}

/// The input image with pruned patches (and everything the crop drops) dimmed, kept patches outlined.
/// It draws the gate's recorded decision; nothing is recomputed.
func drawOverlay(_ image: RGBImage, geometry: PatchGeometry, kept: [Int]) -> RGBImage {
    var out = image
    let w = image.width, h = image.height
    // Dim everything to 35 %, then restore the kept patches.
    for i in 0..<out.pixels.count { out.pixels[i] = UInt8(Int(out.pixels[i]) * 35 / 100) }
    let outline: (UInt8, UInt8, UInt8) = (255, 220, 0)
    for idx in kept {
        let (x0, y0, x1, y1) = geometry.rect(idx)
        let xa = max(0, x0), ya = max(0, y0), xb = min(w, x1), yb = min(h, y1)
        guard xa < xb, ya < yb else { continue }
        for y in ya..<yb { for x in xa..<xb {
            let p = (y * w + x) * 3
            let border = x == xa || x == xb - 1 || y == ya || y == yb - 1
            if border {
                out.pixels[p] = outline.0; out.pixels[p + 1] = outline.1; out.pixels[p + 2] = outline.2
            } else {
                out.pixels[p] = image.pixels[p]; out.pixels[p + 1] = image.pixels[p + 1]; out.pixels[p + 2] = image.pixels[p + 2]
            }
        }}
    }
    return out
}

/// Writes a pipeline's answered frames as a video: the frame scaled up, patches kept by no query
/// dimmed, each query's kept patches outlined in its own colour, and a legend below with each query's
/// answer (and, with a truth sidecar, whether it was right). It draws the gate's recorded decision
/// (`FrameAnswers`), never recomputing it. Frames the pipeline dropped repeat the last picture, so the
/// video keeps the source's timing. One stream is drawn (the first source's).
final class OverlayVideo: @unchecked Sendable {
    /// Query outline colours, in query order (then repeating).
    static let palette: [(UInt8, UInt8, UInt8)] = [(255, 220, 0), (0, 220, 255), (255, 80, 200), (120, 255, 80),
                                                   (255, 140, 0), (180, 120, 255)]
    private let url: URL
    private let processor: ImageProcessor
    private let grid: (Int, Int)
    private let fpsChoice: () -> Int
    private var fps = 10
    private let stream: String
    private let queryOrder: [String]
    private let lock = NSLock()
    private var writer: VideoWriter?
    private var geometry: PatchGeometry?
    private var scale = 1
    private var firstPts: Double?
    private var last: RGBImage?
    private var failure: Error?
    /// Frames drawn (not counting repeats).
    private(set) var drawn = 0

    /// - Parameter fps: the video's frame rate, asked when the first frame arrives (the source is open then).
    init(url: URL, processor: ImageProcessor, grid: (Int, Int), fps: @escaping () -> Int, stream: String, queryOrder: [String]) {
        self.url = url
        self.processor = processor
        self.grid = grid
        self.fpsChoice = fps
        self.stream = stream
        self.queryOrder = queryOrder
    }

    /// The colour of a query (by its place among the run's queries; later ones take the next colours).
    private func color(_ id: String) -> (UInt8, UInt8, UInt8) {
        let i = queryOrder.firstIndex(of: id) ?? queryOrder.count
        return Self.palette[i % Self.palette.count]
    }

    /// Draws one answered frame (called from the pipeline's sink thread).
    func add(_ fa: FrameAnswers) {
        guard fa.frame.streamId == stream else { return }
        lock.withLock {
            guard failure == nil else { return }
            do { try draw(fa) } catch { failure = error; writer?.cancel(); writer = nil }
        }
    }

    private func draw(_ fa: FrameAnswers) throws {
        let img = fa.frame.image
        if writer == nil {
            scale = max(1, 448 / max(img.width, img.height))
            geometry = try PatchGeometry(processor: processor, imageWidth: img.width, imageHeight: img.height, grid: grid)
            let w = img.width * scale, h = img.height * scale + legendHeight
            fps = fpsChoice()
            writer = try VideoWriter(url: url, width: w + w % 2, height: h + h % 2, fps: fps)
            firstPts = fa.frame.pts
        }
        guard let writer, let geometry, let firstPts else { return }
        let picture = Self.compose(fa, geometry: geometry, scale: scale, width: writer.width, height: writer.height,
                                   color: color)
        // Frame number from the source's clock: a dropped frame repeats the previous picture.
        let target = Int(((fa.frame.pts - firstPts) * Double(fps)).rounded())
        if let last, target > writer.frameCount {
            for _ in 0..<min(target - writer.frameCount, fps * 10) { try writer.write(last) }
        }
        if target >= writer.frameCount {   // else: two answered frames in one video frame, keep the first
            try writer.write(picture)
            drawn += 1
        }
        last = picture
    }

    private var legendHeight: Int { 8 + queryOrder.count * 20 + 20 }

    /// One picture: the frame scaled by `scale` into a `width`×`height` canvas, patches kept by no query
    /// dimmed to 35 %, query q's kept patches outlined in `color(id)` inset by q pixels, the legend below.
    static func compose(_ fa: FrameAnswers, geometry g: PatchGeometry, scale s: Int, width: Int, height: Int,
                        color: (String) -> (UInt8, UInt8, UInt8)) -> RGBImage {
        let src = fa.frame.image
        var out = RGBImage(width: width, height: height, fill: (16, 16, 16))
        var keptByAny = Set<Int>()
        for a in fa.answers { keptByAny.formUnion(a.kept) }
        // Patch index of every source pixel (-1 outside the crop): pixels kept by no query are dimmed.
        var patchOf = [Int](repeating: -1, count: src.width * src.height)
        for idx in 0..<(g.grid.0 * g.grid.1) {
            let (x0, y0, x1, y1) = g.rect(idx)
            for y in max(0, y0)..<min(src.height, y1) { for x in max(0, x0)..<min(src.width, x1) { patchOf[y * src.width + x] = idx } }
        }
        for y in 0..<src.height { for x in 0..<src.width {
            let p = (y * src.width + x) * 3
            let keep = keptByAny.contains(patchOf[y * src.width + x])
            let f = keep ? 100 : 35
            let r = UInt8(Int(src.pixels[p]) * f / 100), gr = UInt8(Int(src.pixels[p + 1]) * f / 100)
            let b = UInt8(Int(src.pixels[p + 2]) * f / 100)
            BitmapFont.fill(&out, x: x * s, y: y * s, width: s, height: s, color: (r, gr, b))
        }}
        // Outlines: query q's rectangles are inset by q pixels so that overlapping choices stay visible.
        for (q, a) in fa.answers.enumerated() {
            let c = color(a.queryId), inset = q % max(1, s * 4)
            for idx in a.kept {
                let (x0, y0, x1, y1) = g.rect(idx)
                let xa = max(0, x0) * s + inset, ya = max(0, y0) * s + inset
                let xb = min(src.width, x1) * s - 1 - inset, yb = min(src.height, y1) * s - 1 - inset
                guard xa < xb, ya < yb else { continue }
                BitmapFont.fill(&out, x: xa, y: ya, width: xb - xa + 1, height: 1, color: c)
                BitmapFont.fill(&out, x: xa, y: yb, width: xb - xa + 1, height: 1, color: c)
                BitmapFont.fill(&out, x: xa, y: ya, width: 1, height: yb - ya + 1, color: c)
                BitmapFont.fill(&out, x: xb, y: ya, width: 1, height: yb - ya + 1, color: c)
            }
        }
        // Legend: time, then one line per query: "id: answer (K kept)" and the truth mark.
        var y = src.height * s + 6
        BitmapFont.draw(String(format: "t=%.1fs  %@", fa.frame.pts, fa.frame.streamId), into: &out, x: 6, y: y, scale: 2,
                        color: (200, 200, 200))
        y += 20
        let fits = max(8, (width - 12) / ((BitmapFont.glyphWidth + 1) * 2))   // characters per line at scale 2
        for a in fa.answers {
            // "id: answer  K=49  right": the query id is shortened first, then the answer.
            var suffix = a.reused ? "  reused" : "  K=\(a.kept.count)"
            if let ok = a.correct { suffix += ok ? "  right" : "  wrong" }
            let answer = ": " + (a.answer.isEmpty ? "-" : a.answer)
            var id = a.queryId
            if id.count + answer.count + suffix.count > fits { id = String(id.prefix(max(3, fits - answer.count - suffix.count - 1))) + "." }
            var line = id + answer
            if line.count + suffix.count > fits { line = String(line.prefix(max(1, fits - suffix.count - 2))) + ".." }
            BitmapFont.draw(line + suffix, into: &out, x: 6, y: y, scale: 2, color: color(a.queryId))
            y += 20
        }
        return out
    }

    /// Finishes the file; throws the first drawing or writing error of the run, naming the file.
    func finish() throws -> (frames: Int, drawn: Int) {
        try lock.withLock {
            if let failure { throw CLIError("--overlay-video \(url.path): \(failure)") }
            guard let writer else { throw CLIError("--overlay-video \(url.path): no answered frame of stream '\(stream)' to write") }
            try writer.finish()
            return (writer.frameCount, drawn)
        }
    }
}
