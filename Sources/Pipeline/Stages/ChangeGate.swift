// The one owner of change detection and answer reuse.
import Foundation
import Media

/// What a stream's last fresh answer to a query was, for reuse on unchanged frames.
struct RememberedAnswer: Sendable {
    var text: String
    var pYes: Float?
    var kept: [Int]
    var visualTokens: Int
}

/// Per stream: the thumbnail of the last frame that was computed, and the answers it produced.
///
/// `video_decode` asks ``isUnchanged(_:)``; the sink ``remember(stream:query:_:)``s fresh answers
/// and ``recall(stream:query:)``s them for reused frames. A frame is reused only when the stream
/// already has answers and its grey 32×32 thumbnail differs from the last computed frame's by less
/// than `threshold` (mean absolute difference, 0–255).
final class ChangeGate: @unchecked Sendable {
    let threshold: Double
    private let lock = NSLock()
    private var lastThumb: [String: [Float]] = [:]
    private var lastAnswers: [String: [String: RememberedAnswer]] = [:]

    private let isActive: @Sendable (String) -> Bool

    /// - Parameters:
    ///   - threshold: 0 disables reuse.
    ///   - isActive: whether a query id is still standing; answers to removed queries are not kept.
    ///     With ``forget(query:)`` called after each removal this leaves no entry behind, whatever the
    ///     order: a late answer is either stored before the forget (and removed by it) or refused.
    init(threshold: Double, isActive: @escaping @Sendable (String) -> Bool = { _ in true }) {
        self.threshold = threshold
        self.isActive = isActive
    }

    /// Whether the frame may reuse its stream's last answers; when it may not, its thumbnail becomes
    /// the one later frames are compared with.
    func isUnchanged(_ frame: VideoFrame) -> Bool {
        let thumb = Self.thumbnail(frame.image)
        return lock.withLock {
            if threshold > 0, let prev = lastThumb[frame.streamId], lastAnswers[frame.streamId] != nil {
                var diff: Float = 0
                for i in 0..<thumb.count { diff += abs(thumb[i] - prev[i]) }
                if Double(diff / Float(thumb.count)) < threshold { return true }
            }
            lastThumb[frame.streamId] = thumb
            return false
        }
    }

    /// Stores a fresh answer; returns whether it differs from the last one of that stream and query.
    func remember(stream: String, query: String, _ answer: RememberedAnswer) -> Bool {
        lock.withLock {
            let changed = lastAnswers[stream]?[query].map { $0.text != answer.text } ?? true
            if isActive(query) { lastAnswers[stream, default: [:]][query] = answer }
            return changed
        }
    }

    /// A change gate that keeps answers only for the registry's standing queries and forgets a
    /// query's answers when it is removed.
    static func tracking(_ registry: QueryRegistry, threshold: Double) -> ChangeGate {
        let gate = ChangeGate(threshold: threshold, isActive: { registry.contains(id: $0) })
        registry.onRemove { [weak gate] id in gate?.forget(query: id) }
        return gate
    }

    /// Forgets every stream's last answer to a removed query (a client that keeps adding and removing
    /// queries under new ids must not grow this map).
    func forget(query: String) {
        lock.withLock {
            for stream in lastAnswers.keys { lastAnswers[stream]?[query] = nil }
        }
    }

    /// How many (stream, query) answers are remembered (for tests).
    var rememberedCount: Int { lock.withLock { lastAnswers.values.reduce(0) { $0 + $1.count } } }

    /// The last fresh answer of a stream to a query (nil: none yet, e.g. a query added since).
    func recall(stream: String, query: String) -> RememberedAnswer? {
        lock.withLock { lastAnswers[stream]?[query] }
    }

    /// Grey 32×32 thumbnail (nearest pixel at each cell's centre).
    static func thumbnail(_ img: RGBImage) -> [Float] {
        let side = 32
        var t = [Float](repeating: 0, count: side * side)
        for ty in 0..<side {
            let y = min(img.height - 1, ty * img.height / side + img.height / (2 * side))
            for tx in 0..<side {
                let x = min(img.width - 1, tx * img.width / side + img.width / (2 * side))
                let p = (y * img.width + x) * 3
                t[ty * side + tx] = 0.299 * Float(img.pixels[p]) + 0.587 * Float(img.pixels[p + 1]) + 0.114 * Float(img.pixels[p + 2])
            }
        }
        return t
    }
}
