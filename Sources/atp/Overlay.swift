import Foundation
import ModelIO
import Media

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
