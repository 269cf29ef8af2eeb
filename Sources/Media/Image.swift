import Foundation

/// A decoded still image: 8-bit RGB, row-major, 3 bytes per pixel, no row padding.
///
/// A plain `Sendable` value (owned bytes), safe to pass across queues.
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// `width · height · 3` bytes: R, G, B of pixel (0, 0), then (1, 0), … row by row.
    public var pixels: [UInt8]

    /// Wraps pixels; `validate()` checks that sizes and byte count agree.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A `width × height` image filled with one colour.
    public init(width: Int, height: Int, fill: (r: UInt8, g: UInt8, b: UInt8) = (0, 0, 0)) {
        self.width = width
        self.height = height
        var px = [UInt8](repeating: 0, count: max(0, width) * max(0, height) * 3)
        for i in stride(from: 0, to: px.count, by: 3) {
            px[i] = fill.r
            px[i + 1] = fill.g
            px[i + 2] = fill.b
        }
        self.pixels = px
    }

    /// Checks that the sizes are positive and `pixels` holds exactly `width · height · 3` bytes.
    /// - Parameter path: the file named in the error.
    /// - Throws: `MediaError.Kind.invalidArgument` naming the sizes and the byte count.
    public func validate(path: String) throws {
        guard width > 0, height > 0 else {
            throw MediaError(.invalidArgument, path: path, "image size \(width)×\(height) must be at least 1×1")
        }
        let (expected, overflow) = width.multipliedReportingOverflow(by: height * 3)
        guard !overflow, pixels.count == expected else {
            throw MediaError(.invalidArgument, path: path,
                             "image is \(width)×\(height) but has \(pixels.count) bytes (expected \(width)×\(height)×3)")
        }
    }
}
