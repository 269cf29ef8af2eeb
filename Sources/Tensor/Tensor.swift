// Tensor: dense f32 storage, row-major. Deliberately small: the models hold
// their weights as `Tensor`s and the kernels work on raw buffers.

/// A dense, row-major f32 tensor.
public struct Tensor: Sendable, Equatable {
    /// Dimensions, outermost first.
    public var shape: [Int]
    /// `shape.reduce(1, *)` values, row-major.
    public var data: [Float]

    /// Creates a tensor; `data.count` must equal the product of `shape`.
    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count,
                     "Tensor: shape \(shape) holds \(shape.reduce(1, *)) values but data has \(data.count)")
        self.shape = shape
        self.data = data
    }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// Number of values.
    public var count: Int { data.count }
    /// Size of the first dimension (rows of a matrix).
    public var rows: Int { shape.count >= 2 ? shape[0] : 1 }
    /// Product of all dimensions but the first (columns of a matrix).
    public var cols: Int { shape.count >= 2 ? shape.dropFirst().reduce(1, *) : (shape.first ?? 1) }

    /// Row `i` of a 2-D view as an array.
    public func row(_ i: Int) -> [Float] {
        let c = cols
        return Array(data[(i * c)..<((i + 1) * c)])
    }

    /// Returns the same values with another shape of equal size.
    public func reshaped(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, data: data) }
}
