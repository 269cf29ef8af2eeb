// Ground truth of a video source: the `NAME.truth.jsonl` sidecar that `atp synth --video` writes,
// one line per frame `{"frame", "pts", "objects", "answers": {"<question text>": "<answer>"}}`.
import Foundation

/// A video's per-frame truth, looked up by presentation time.
public struct TruthTrack: Sendable {
    public struct Frame: Sendable {
        public var pts: Double
        public var answers: [String: String]
    }

    public let url: URL
    /// Frames in ascending pts.
    public let frames: [Frame]
    /// Duration of one pass of the clip (last pts plus one frame), for looped sources.
    public let period: Double
    /// Every question text any frame answers.
    public let questions: Set<String>

    /// Reads a sidecar.
    /// - Throws: `DataFolderError` naming the file and line of a malformed line or a missing field.
    public init(url: URL) throws {
        self.url = url
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DataFolderError("\(url.path): truth sidecar not found")
        }
        var frames: [Frame] = []
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            let at = "\(url.path):\(n + 1)"
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
                throw DataFolderError("\(at): not a JSON object")
            }
            guard let pts = (obj["pts"] as? NSNumber)?.doubleValue, pts.isFinite else { throw DataFolderError("\(at): missing numeric \"pts\"") }
            guard let answers = obj["answers"] as? [String: String] else {
                throw DataFolderError("\(at): missing \"answers\" (an object of question text to answer)")
            }
            if let last = frames.last, pts <= last.pts { throw DataFolderError("\(at): pts \(pts) is not after the previous line's \(last.pts)") }
            frames.append(Frame(pts: pts, answers: answers))
        }
        guard !frames.isEmpty else { throw DataFolderError("\(url.path): no frames") }
        self.frames = frames
        let step = frames.count > 1 ? (frames.last!.pts - frames.first!.pts) / Double(frames.count - 1) : 1
        period = frames.last!.pts + step
        questions = Set(frames.flatMap { $0.answers.keys })
    }

    /// The truth of the frame shown at `pts` (looped sources wrap around the clip's period): the last
    /// frame whose pts is at or before it, allowing for rounding.
    public func frame(at pts: Double) -> Frame {
        var t = pts.truncatingRemainder(dividingBy: period)
        if t < 0 { t += period }
        var lo = 0, hi = frames.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if frames[mid].pts <= t + 1e-3 { lo = mid } else { hi = mid - 1 }
        }
        return frames[lo]
    }

    /// The sidecar a source uses: its `truth:` path, or `NAME.truth.jsonl` beside a file `NAME.ext`.
    public static func sidecar(for source: SourceSpec) -> URL? {
        if let t = source.truth { return URL(fileURLWithPath: t) }
        guard !source.url.contains(":") else { return nil }
        let beside = DataFolderWriter.truthSidecar(for: URL(fileURLWithPath: source.url))
        return FileManager.default.fileExists(atPath: beside.path) ? beside : nil
    }
}
