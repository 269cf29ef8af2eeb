// The HF image processor for CLIP-style vision towers, reproduced exactly.
//
// Reference: transformers 5.x `CLIPImageProcessorPil` (models/clip/image_processing_pil_clip.py on
// the `PilBackend` of image_processing_backends.py, with image_transforms.py's resize / center_crop /
// rescale / normalize), whose resize is Pillow's `Image.resize` (src/libImaging/Resample.c).
// `CLIPImageProcessor` in 5.x is the torchvision backend; the PIL one is what this file mirrors.
// ModelIO takes raw RGB24 bytes: decoding files is Media's job.
import Foundation

// MARK: - Config

/// A `size` / `crop_size` entry of an HF image processor config.
public enum ImageSizeSpec: Sendable, Equatable {
    /// `{"shortest_edge": N}`: the short side becomes N, the long side `int(N · long / short)`.
    case shortestEdge(Int)
    /// `{"shortest_edge": N, "longest_edge": M}`: as transformers' `get_size_with_aspect_ratio`.
    case shortestLongest(shortest: Int, longest: Int)
    /// `{"height": H, "width": W}` (or a bare int for `crop_size`, or `[H, W]`).
    case exact(height: Int, width: Int)
}

/// The image processor settings of an HF folder (`preprocessor_config.json` of transformers 4.x,
/// or the `image_processor` section of 5.x's `processor_config.json`).
///
/// Keys mirror the JSON; a missing key takes `CLIPImageProcessor`'s default. A bare-int `size`
/// means `{"shortest_edge": N}` (CLIP's `default_to_square = False`); a bare-int `crop_size`
/// means a square. `image_mean` / `image_std` may be a list of 3 or one number.
public struct ImageProcessorConfig: Codable, Sendable, Equatable {
    public var doResize: Bool
    public var size: ImageSizeSpec
    /// PIL resampling filter number: 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming, 6/7 mks2013/mks2021.
    public var resample: Int
    public var doCenterCrop: Bool
    public var cropSize: ImageSizeSpec
    public var doRescale: Bool
    public var rescaleFactor: Double
    public var doNormalize: Bool
    public var imageMean: [Double]
    public var imageStd: [Double]
    public var doConvertRGB: Bool
    /// `image_processor_type` as saved (informational).
    public var imageProcessorType: String?

    /// OpenAI CLIP's normalisation constants (transformers' `OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`).
    public static let openAIClipMean: [Double] = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIClipStd: [Double] = [0.26862954, 0.26130258, 0.27577711]

    /// A config; every parameter defaults to `CLIPImageProcessor`'s value.
    public init(
        doResize: Bool = true, size: ImageSizeSpec = .shortestEdge(224), resample: Int = 3,
        doCenterCrop: Bool = true, cropSize: ImageSizeSpec = .exact(height: 224, width: 224),
        doRescale: Bool = true, rescaleFactor: Double = 1.0 / 255.0,
        doNormalize: Bool = true, imageMean: [Double] = ImageProcessorConfig.openAIClipMean,
        imageStd: [Double] = ImageProcessorConfig.openAIClipStd, doConvertRGB: Bool = true,
        imageProcessorType: String? = nil
    ) {
        self.doResize = doResize
        self.size = size
        self.resample = resample
        self.doCenterCrop = doCenterCrop
        self.cropSize = cropSize
        self.doRescale = doRescale
        self.rescaleFactor = rescaleFactor
        self.doNormalize = doNormalize
        self.imageMean = imageMean
        self.imageStd = imageStd
        self.doConvertRGB = doConvertRGB
        self.imageProcessorType = imageProcessorType
    }

    enum CodingKeys: String, CodingKey {
        case doResize = "do_resize", size, resample, doCenterCrop = "do_center_crop", cropSize = "crop_size"
        case doRescale = "do_rescale", rescaleFactor = "rescale_factor", doNormalize = "do_normalize"
        case imageMean = "image_mean", imageStd = "image_std", doConvertRGB = "do_convert_rgb"
        case imageProcessorType = "image_processor_type"
    }

    private struct SizeKeys: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private static func decodeSize(
        _ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys, bareIntIsShortestEdge: Bool
    ) throws -> ImageSizeSpec? {
        guard c.contains(key), try !c.decodeNil(forKey: key) else { return nil }
        if let n = try? c.decode(Int.self, forKey: key) {
            return bareIntIsShortestEdge ? .shortestEdge(n) : .exact(height: n, width: n)
        }
        if let hw = try? c.decode([Int].self, forKey: key) {
            guard hw.count == 2 else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: c, debugDescription: "\(key.stringValue) list must be [height, width], got \(hw)")
            }
            return .exact(height: hw[0], width: hw[1])
        }
        let d = try c.nestedContainer(keyedBy: SizeKeys.self, forKey: key)
        func int(_ name: String) throws -> Int? {
            let k = SizeKeys(stringValue: name)
            guard d.contains(k), try !d.decodeNil(forKey: k) else { return nil }
            return try d.decode(Int.self, forKey: k)
        }
        let keys = d.allKeys.map(\.stringValue).sorted()
        if let h = try int("height"), let w = try int("width") { return .exact(height: h, width: w) }
        if let s = try int("shortest_edge") {
            if let l = try int("longest_edge") { return .shortestLongest(shortest: s, longest: l) }
            return .shortestEdge(s)
        }
        throw DecodingError.dataCorruptedError(
            forKey: key, in: c,
            debugDescription: "unsupported \(key.stringValue) keys \(keys) (expected height+width or shortest_edge)")
    }

    private static func decodeFloats(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> [Double]? {
        guard c.contains(key), try !c.decodeNil(forKey: key) else { return nil }
        if let v = try? c.decode(Double.self, forKey: key) { return [v] }
        return try c.decode([Double].self, forKey: key)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ImageProcessorConfig()
        doResize = try c.decodeIfPresent(Bool.self, forKey: .doResize) ?? d.doResize
        size = try Self.decodeSize(c, .size, bareIntIsShortestEdge: true) ?? d.size
        resample = try c.decodeIfPresent(Int.self, forKey: .resample) ?? d.resample
        doCenterCrop = try c.decodeIfPresent(Bool.self, forKey: .doCenterCrop) ?? d.doCenterCrop
        cropSize = try Self.decodeSize(c, .cropSize, bareIntIsShortestEdge: false) ?? d.cropSize
        doRescale = try c.decodeIfPresent(Bool.self, forKey: .doRescale) ?? d.doRescale
        rescaleFactor = try c.decodeIfPresent(Double.self, forKey: .rescaleFactor) ?? d.rescaleFactor
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? d.doNormalize
        imageMean = try Self.decodeFloats(c, .imageMean) ?? d.imageMean
        imageStd = try Self.decodeFloats(c, .imageStd) ?? d.imageStd
        doConvertRGB = try c.decodeIfPresent(Bool.self, forKey: .doConvertRGB) ?? d.doConvertRGB
        imageProcessorType = try c.decodeIfPresent(String.self, forKey: .imageProcessorType)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        func sizeDict(_ s: ImageSizeSpec) -> [String: Int] {
            switch s {
            case .shortestEdge(let n): return ["shortest_edge": n]
            case .shortestLongest(let s, let l): return ["shortest_edge": s, "longest_edge": l]
            case .exact(let h, let w): return ["height": h, "width": w]
            }
        }
        try c.encode(doResize, forKey: .doResize)
        try c.encode(sizeDict(size), forKey: .size)
        try c.encode(resample, forKey: .resample)
        try c.encode(doCenterCrop, forKey: .doCenterCrop)
        try c.encode(sizeDict(cropSize), forKey: .cropSize)
        try c.encode(doRescale, forKey: .doRescale)
        try c.encode(rescaleFactor, forKey: .rescaleFactor)
        try c.encode(doNormalize, forKey: .doNormalize)
        try c.encode(imageMean, forKey: .imageMean)
        try c.encode(imageStd, forKey: .imageStd)
        try c.encode(doConvertRGB, forKey: .doConvertRGB)
        try c.encodeIfPresent(imageProcessorType, forKey: .imageProcessorType)
    }

    /// Checks the values this processor relies on; messages name the key and value.
    /// - Parameter path: the file the config came from (named in the error).
    public func validate(path: String = "image processor config") throws {
        if doResize {
            _ = try PILResample(configValue: resample, path: path)
            switch size {
            case .shortestEdge(let n) where n < 1:
                throw ModelIOError(.malformed, path: path, "size.shortest_edge \(n) must be ≥ 1")
            case .shortestLongest(let s, let l) where s < 1 || l < 1:
                throw ModelIOError(.malformed, path: path, "size shortest_edge \(s) / longest_edge \(l) must be ≥ 1")
            case .exact(let h, let w) where h < 1 || w < 1:
                throw ModelIOError(.malformed, path: path, "size height \(h) × width \(w) must be ≥ 1")
            default: break
            }
        }
        if doCenterCrop {
            guard case .exact(let h, let w) = cropSize else {
                throw ModelIOError(.unsupported, path: path, "crop_size must have height and width, got \(cropSize)")
            }
            if h < 1 || w < 1 {
                throw ModelIOError(.malformed, path: path, "crop_size height \(h) × width \(w) must be ≥ 1")
            }
        }
        if doNormalize {
            for (name, v) in [("image_mean", imageMean), ("image_std", imageStd)] where v.count != 1 && v.count != 3 {
                throw ModelIOError(.malformed, path: path, "\(name) must have 1 or 3 values, got \(v.count)")
            }
            if imageStd.contains(0) {
                throw ModelIOError(.malformed, path: path, "image_std \(imageStd) contains 0")
            }
        }
    }

    /// Reads the image processor config of an HF folder.
    ///
    /// As transformers does, the `image_processor` section of `processor_config.json` wins when
    /// present; otherwise `preprocessor_config.json` is read.
    /// - Parameter folder: the model folder.
    /// - Returns: the validated config.
    /// - Throws: `ModelIOError` naming the file when neither file exists, the JSON is bad, or a
    ///   value is unsupported (e.g. `resample 0`).
    public static func load(folder: URL) throws -> ImageProcessorConfig {
        let fm = FileManager.default
        let processorURL = folder.appendingPathComponent("processor_config.json")
        let preprocessorURL = folder.appendingPathComponent("preprocessor_config.json")
        if fm.fileExists(atPath: processorURL.path) {
            let data = try readModelFile(processorURL)
            let object: Any
            do { object = try JSONSerialization.jsonObject(with: data) } catch {
                throw ModelIOError(.malformed, path: processorURL.path, "invalid JSON (\(error.localizedDescription))")
            }
            if let dict = object as? [String: Any], let section = dict["image_processor"] {
                guard JSONSerialization.isValidJSONObject(section),
                      let sectionData = try? JSONSerialization.data(withJSONObject: section) else {
                    throw ModelIOError(.malformed, path: processorURL.path, "image_processor is not a JSON object")
                }
                return try decode(sectionData, path: processorURL.path)
            }
        }
        guard fm.fileExists(atPath: preprocessorURL.path) else {
            throw ModelIOError(
                .notFound, path: folder.path,
                "no image processor config (neither processor_config.json with an image_processor section nor preprocessor_config.json)")
        }
        return try decode(readModelFile(preprocessorURL), path: preprocessorURL.path)
    }

    private static func decode(_ data: Data, path: String) throws -> ImageProcessorConfig {
        let config: ImageProcessorConfig
        do {
            config = try JSONDecoder().decode(ImageProcessorConfig.self, from: data)
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ModelIOError(.malformed, path: path, describe(ctx))
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ModelIOError(.malformed, path: path, "wrong type: " + describe(ctx))
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw ModelIOError(.malformed, path: path, "missing value: " + describe(ctx))
        } catch {
            throw ModelIOError(.malformed, path: path, "cannot decode (\(error))")
        }
        try config.validate(path: path)
        return config
    }

    private static func describe(_ ctx: DecodingError.Context) -> String {
        let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
        let detail = (ctx.underlyingError as NSError?)?.localizedDescription
        return (key.isEmpty ? "" : "key \(key): ") + ctx.debugDescription + (detail.map { " (\($0))" } ?? "")
    }
}

// MARK: - PIL resampling

/// The resampling filters of Pillow's `Image.resize` that this file reproduces, by PIL number.
public enum PILResample: Int, Sendable, CaseIterable {
    case lanczos = 1, bilinear = 2, bicubic = 3, box = 4, hamming = 5, mks2013 = 6, mks2021 = 7

    /// The filter for a config's `resample` value; 0 (nearest) and unknown values throw.
    public init(configValue: Int, path: String = "image processor config") throws {
        guard let f = PILResample(rawValue: configValue) else {
            throw ModelIOError(
                .unsupported, path: path,
                "resample \(configValue)\(configValue == 0 ? " (nearest)" : "") is not supported "
                    + "(supported: 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming, 6 mks2013, 7 mks2021)")
        }
        self = f
    }

    /// Half-width of the kernel at scale 1 (Resample.c's `support`).
    var support: Double {
        switch self {
        case .box: return 0.5
        case .bilinear, .hamming: return 1.0
        case .bicubic: return 2.0
        case .lanczos: return 3.0
        case .mks2013: return 2.5
        case .mks2021: return 4.5
        }
    }

    /// The kernel, evaluated exactly as Resample.c does (double precision, same operation order).
    func weight(_ x0: Double) -> Double {
        switch self {
        case .box:
            return (x0 > -0.5 && x0 <= 0.5) ? 1.0 : 0.0
        case .bilinear:
            let x = abs(x0)
            return x < 1.0 ? 1.0 - x : 0.0
        case .bicubic:
            let a = -0.5
            let x = abs(x0)
            if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
            if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0.0
        case .hamming:
            var x = abs(x0)
            if x == 0.0 { return 1.0 }
            if x >= 1.0 { return 0.0 }
            x = x * Double.pi
            // The C source uses float literals 0.54f / 0.46f, promoted to double.
            return sin(x) / x * (Double(Float(0.54)) + Double(Float(0.46)) * cos(x))
        case .lanczos:
            guard -3.0 <= x0 && x0 < 3.0 else { return 0.0 }
            return Self.sinc(x0) * Self.sinc(x0 / 3)
        case .mks2013:
            let x = abs(x0)
            if x < 0.5 { return 17.0 / 16.0 - 7.0 / 4.0 * pow(x, 2) }
            if x < 1.5 { return (1.0 - x) * (7.0 / 4.0 - x) }
            if x < 2.5 { return -1.0 / 8.0 * pow(x - 5.0 / 2.0, 2) }
            return 0
        case .mks2021:
            let x = abs(x0)
            if x < 0.5 { return 577.0 / 576.0 - 239.0 / 144.0 * pow(x, 2) }
            if x < 1.5 { return 35.0 / 36.0 * (x - 1.0) * (x - 239.0 / 140.0) }
            if x < 2.5 { return 1.0 / 6.0 * (x - 2.0) * (65.0 / 24.0 - x) }
            if x < 3.5 { return 1.0 / 36.0 * (x - 3.0) * (x - 15.0 / 4.0) }
            if x < 4.5 { return -1.0 / 288.0 * pow(x - 9.0 / 2.0, 2) }
            return 0
        }
    }

    private static func sinc(_ x0: Double) -> Double {
        if x0 == 0.0 { return 1.0 }
        let x = x0 * Double.pi
        return sin(x) / x
    }
}

/// Pillow's `Image.resize` on an RGB uint8 image, bit for bit.
///
/// Separable: a horizontal pass then a vertical pass (vertical first when the height shrinks by
/// more than twice as many pixels as the width, as Pillow 13 does), each skipped when that
/// dimension is unchanged. Each output sample's kernel is centred at `(i + 0.5)·scale`, its support widened by
/// the downscale factor (antialiasing), the weights normalised to sum 1, then turned into 22-bit
/// fixed point (rounded half away from zero); sums start at `1 << 21` and are shifted right by 22
/// and clipped to 0…255 after each pass, so the intermediate image is uint8 like Pillow's.
public enum PILResize {
    /// Precomputed taps of one pass: for output `i`, `count[i]` weights from input `first[i]`.
    struct Taps {
        var ksize: Int
        var first: [Int]
        var count: [Int]
        var weights: [Int32]  // [outSize, ksize], fixed point
    }

    static let precisionBits: Int32 = 22

    /// The taps Resample.c's `precompute_coeffs` + `normalize_coeffs_8bpc` produce for box (0, inSize).
    static func taps(inSize: Int, outSize: Int, filter: PILResample) -> Taps {
        let in0 = Double(Float(0))
        let in1 = Double(Float(inSize))
        let scale = (in1 - in0) / Double(outSize)
        let filterscale = max(scale, 1.0)
        let support = filter.support * filterscale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var first = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * ksize)
        var k = [Double](repeating: 0, count: ksize)
        let ss = 1.0 / filterscale
        let one = Double(1 << precisionBits)
        for xx in 0..<outSize {
            let center = in0 + (Double(xx) + 0.5) * scale
            var xmin = Int(center - support + 0.5)  // C cast: truncation toward zero
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var ww = 0.0
            for x in 0..<max(xmax, 0) {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<max(xmax, 0) {
                let v = ww != 0.0 ? k[x] / ww : k[x]
                weights[xx * ksize + x] = v < 0 ? Int32(-0.5 + v * one) : Int32(0.5 + v * one)
            }
            first[xx] = xmin
            count[xx] = max(xmax, 0)
        }
        return Taps(ksize: ksize, first: first, count: count, weights: weights)
    }

    @inline(__always)
    static func clip8(_ ss: Int32) -> UInt8 {
        let v = ss >> precisionBits  // arithmetic shift, as C's `>>` on int
        return v < 0 ? 0 : (v > 255 ? 255 : UInt8(truncatingIfNeeded: v))
    }

    /// Resizes an RGB24 image exactly as Pillow's `Image.resize((toWidth, toHeight), filter)`.
    /// - Parameters:
    ///   - rgb: RGB24 pixels, row-major, `width · height · 3` bytes.
    ///   - width: source width (≥ 1).
    ///   - height: source height (≥ 1).
    ///   - toWidth: output width (≥ 1).
    ///   - toHeight: output height (≥ 1).
    ///   - filter: the PIL filter.
    /// - Returns: RGB24 pixels of the output, `toWidth · toHeight · 3` bytes.
    /// - Throws: `ModelIOError` when a size is not positive or `rgb` has the wrong length.
    /// - Complexity: O(toWidth · rows · kh + toWidth · toHeight · kv) with k ≈ 2·support·max(1, scale).
    public static func resize(
        rgb: [UInt8], width: Int, height: Int, toWidth: Int, toHeight: Int, filter: PILResample
    ) throws -> [UInt8] {
        guard width > 0, height > 0, toWidth > 0, toHeight > 0 else {
            throw ModelIOError(.malformed, path: "image",
                               "cannot resize \(width)×\(height) to \(toWidth)×\(toHeight): sizes must be ≥ 1")
        }
        guard rgb.count == width * height * 3 else {
            throw ModelIOError(.malformed, path: "image",
                               "rgb has \(rgb.count) bytes, expected \(width)×\(height)×3 = \(width * height * 3)")
        }
        let needHorizontal = toWidth != width
        let needVertical = toHeight != height
        if !needHorizontal && !needVertical { return rgb }

        // Pillow ≥ 13 runs the vertical pass first when the height shrinks by more than twice
        // as many pixels as the width does (a speed choice that changes the rounding).
        let horizontalFirst = !((height - toHeight) > 0 && (height - toHeight) > (width - toWidth) * 2)
        let vTaps = taps(inSize: height, outSize: toHeight, filter: filter)
        if !horizontalFirst {
            let v = vertical(rgb, width: width, rowOffset: 0, taps: vTaps, toHeight: toHeight)
            guard needHorizontal else { return v }
            return horizontal(v, width: width, rows: (0, toHeight), toWidth: toWidth, filter: filter)
        }
        var src = rgb
        var srcWidth = width
        var rowOffset = 0  // source row of `src`'s row 0, as seen by the vertical taps
        if needHorizontal {
            let yFirst = vTaps.first[0]
            let yLast = vTaps.first[toHeight - 1] + vTaps.count[toHeight - 1]
            // Only the rows the vertical pass reads (Pillow does the same; results are unaffected).
            let rows = needVertical ? (yFirst, yLast) : (0, height)
            src = horizontal(rgb, width: width, rows: rows, toWidth: toWidth, filter: filter)
            srcWidth = toWidth
            rowOffset = rows.0
        }
        guard needVertical else { return src }
        return vertical(src, width: srcWidth, rowOffset: rowOffset, taps: vTaps, toHeight: toHeight)
    }

    private static func horizontal(
        _ rgb: [UInt8], width: Int, rows: (Int, Int), toWidth: Int, filter: PILResample
    ) -> [UInt8] {
        let t = taps(inSize: width, outSize: toWidth, filter: filter)
        let nRows = rows.1 - rows.0
        var out = [UInt8](repeating: 0, count: nRows * toWidth * 3)
        let half: Int32 = 1 << (precisionBits - 1)
        rgb.withUnsafeBufferPointer { src in
            t.weights.withUnsafeBufferPointer { kk in
                out.withUnsafeMutableBufferPointer { dst in
                    for r in 0..<nRows {
                        let srow = (r + rows.0) * width * 3
                        let drow = r * toWidth * 3
                        for xx in 0..<toWidth {
                            let xmin = t.first[xx], n = t.count[xx], kbase = xx * t.ksize
                            var s0 = half, s1 = half, s2 = half
                            var p = srow + xmin * 3
                            for x in 0..<n {
                                let k = kk[kbase + x]
                                s0 &+= Int32(src[p]) &* k
                                s1 &+= Int32(src[p + 1]) &* k
                                s2 &+= Int32(src[p + 2]) &* k
                                p += 3
                            }
                            dst[drow + xx * 3] = clip8(s0)
                            dst[drow + xx * 3 + 1] = clip8(s1)
                            dst[drow + xx * 3 + 2] = clip8(s2)
                        }
                    }
                }
            }
        }
        return out
    }

    private static func vertical(
        _ rgb: [UInt8], width: Int, rowOffset: Int, taps t: Taps, toHeight: Int
    ) -> [UInt8] {
        let rowLen = width * 3
        var out = [UInt8](repeating: 0, count: toHeight * rowLen)
        var acc = [Int32](repeating: 0, count: rowLen)
        let half: Int32 = 1 << (precisionBits - 1)
        rgb.withUnsafeBufferPointer { src in
            t.weights.withUnsafeBufferPointer { kk in
                acc.withUnsafeMutableBufferPointer { acc in
                    out.withUnsafeMutableBufferPointer { dst in
                        for yy in 0..<toHeight {
                            let ymin = t.first[yy] - rowOffset, n = t.count[yy], kbase = yy * t.ksize
                            for i in 0..<rowLen { acc[i] = half }
                            // Integer sums: accumulating row by row gives Pillow's per-pixel sums exactly.
                            for y in 0..<n {
                                let k = kk[kbase + y]
                                let srow = (ymin + y) * rowLen
                                for i in 0..<rowLen { acc[i] &+= Int32(src[srow + i]) &* k }
                            }
                            let drow = yy * rowLen
                            for i in 0..<rowLen { dst[drow + i] = clip8(acc[i]) }
                        }
                    }
                }
            }
        }
        return out
    }
}

// MARK: - Processor

/// Turns RGB24 pixels into a vision tower's input exactly as transformers' `CLIPImageProcessorPil`:
/// resize (PIL), center crop (zero padding when the crop is larger), rescale, normalise.
public struct ImageProcessor: Sendable {
    public let config: ImageProcessorConfig

    /// - Parameter config: the processor settings (validated again by `preprocess`).
    public init(config: ImageProcessorConfig) {
        self.config = config
    }

    /// The (height, width) the resize step produces for an image, as transformers computes it.
    /// - Throws: `ModelIOError` for a size spec of zero.
    public func resizedSize(height: Int, width: Int) throws -> (height: Int, width: Int) {
        switch config.size {
        case .exact(let h, let w):
            return (h, w)
        case .shortestEdge(let n):
            // get_resize_output_image_size(default_to_square=False)
            let (short, long) = width <= height ? (width, height) : (height, width)
            let newLong = Int(Double(n * long) / Double(short))
            return width <= height ? (newLong, n) : (n, newLong)
        case .shortestLongest(let s, let maxSize):
            // get_size_with_aspect_ratio
            var size = s
            var rawSize: Double? = nil
            let minO = Double(min(height, width)), maxO = Double(max(height, width))
            if maxO / minO * Double(size) > Double(maxSize) {
                let raw = Double(maxSize) * minO / maxO
                rawSize = raw
                size = Int(raw.rounded(.toNearestOrEven))
            }
            if (height <= width && height == size) || (width <= height && width == size) {
                return (height, width)
            } else if width < height {
                let oh = rawSize.map { Int($0 * Double(height) / Double(width)) }
                    ?? Int(Double(size * height) / Double(width))
                return (oh, size)
            } else {
                let ow = rawSize.map { Int($0 * Double(width) / Double(height)) }
                    ?? Int(Double(size * width) / Double(height))
                return (size, ow)
            }
        }
    }

    /// Preprocesses one image.
    /// - Parameters:
    ///   - rgb: RGB24 pixels, row-major, `width · height · 3` bytes (alpha already composited).
    ///   - width: image width (≥ 1).
    ///   - height: image height (≥ 1).
    /// - Returns: channel-first float32 pixels `[3, height, width]` and the output size.
    /// - Throws: `ModelIOError` on a wrong byte count, a zero size or an unsupported config.
    /// - Complexity: the resize's cost plus O(3 · outHeight · outWidth).
    public func preprocess(rgb: [UInt8], width: Int, height: Int) throws -> (pixels: [Float], height: Int, width: Int) {
        try config.validate()
        guard width > 0, height > 0 else {
            throw ModelIOError(.malformed, path: "image", "image size \(width)×\(height) must be ≥ 1")
        }
        guard rgb.count == width * height * 3 else {
            throw ModelIOError(.malformed, path: "image",
                               "rgb has \(rgb.count) bytes, expected \(width)×\(height)×3 = \(width * height * 3)")
        }
        var img = rgb, w = width, h = height
        if config.doResize {
            let (oh, ow) = try resizedSize(height: h, width: w)
            guard oh > 0, ow > 0 else {
                throw ModelIOError(.malformed, path: "image",
                                   "image \(width)×\(height) resizes to \(ow)×\(oh) under size \(config.size)")
            }
            // PIL returns a copy when the size does not change (so does this): a frame that the video
            // source already scaled to the resize size with swscale goes straight to the crop.
            if (oh, ow) != (h, w) {
                img = try PILResize.resize(rgb: img, width: w, height: h, toWidth: ow, toHeight: oh,
                                           filter: PILResample(configValue: config.resample))
                (w, h) = (ow, oh)
            }
        }
        var top = 0, left = 0, outH = h, outW = w
        if config.doCenterCrop, case .exact(let ch, let cw) = config.cropSize {
            // transformers' center_crop: top = (h - ch) // 2 (floor), zero padding outside the image.
            top = floorDiv(h - ch, 2)
            left = floorDiv(w - cw, 2)
            (outH, outW) = (ch, cw)
        }
        var mean = [Float](repeating: 0, count: 3), std = [Float](repeating: 1, count: 3)
        if config.doNormalize {
            for c in 0..<3 {
                mean[c] = Float(config.imageMean.count == 1 ? config.imageMean[0] : config.imageMean[c])
                std[c] = Float(config.imageStd.count == 1 ? config.imageStd[0] : config.imageStd[c])
            }
        }
        // The float value of each uint8 level after rescale + normalise (numpy: float64 product
        // cast to float32, then float32 subtract and divide).
        var lut = [Float](repeating: 0, count: 256 * 3)
        for c in 0..<3 {
            for v in 0..<256 {
                var f = config.doRescale ? Float(Double(v) * config.rescaleFactor) : Float(v)
                if config.doNormalize { f = (f - mean[c]) / std[c] }
                lut[c * 256 + v] = f
            }
        }
        var out = [Float](repeating: 0, count: 3 * outH * outW)
        img.withUnsafeBufferPointer { src in
            lut.withUnsafeBufferPointer { lut in
                out.withUnsafeMutableBufferPointer { dst in
                    for c in 0..<3 {
                        let plane = c * outH * outW
                        for oy in 0..<outH {
                            let sy = oy + top
                            for ox in 0..<outW {
                                let sx = ox + left
                                let v = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? Int(src[(sy * w + sx) * 3 + c]) : 0
                                dst[plane + oy * outW + ox] = lut[c * 256 + v]
                            }
                        }
                    }
                }
            }
        }
        return (out, outH, outW)
    }

    private func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
