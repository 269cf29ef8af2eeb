// Data folders (DESIGN.md, "Data sets and evaluation"): images plus `qa.jsonl`, one question a line
// `{"image": <path relative to the folder>, "question", "answer", "type"}`, and an optional
// `dataset.json` `{"name": …}`. Whoever wrote the folder, it reads the same.
import Foundation
import Media
import SplitMix

/// One question of a data folder.
public struct QAItem: Sendable, Equatable, Codable {
    /// Image path relative to the folder.
    public var image: String
    public var question: String
    public var answer: String
    /// Free text that only groups scores.
    public var type: String

    public init(image: String, question: String, answer: String, type: String) {
        self.image = image
        self.question = question
        self.answer = answer
        self.type = type
    }
}

/// An error in a data folder: names the file and, for `qa.jsonl`, the line.
public struct DataFolderError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A data folder on disk.
public struct DataFolder: Sendable {
    public let url: URL
    /// `dataset.json`'s `name`, else the folder's name.
    public let name: String
    public let items: [QAItem]
    /// The 1-based line of `qa.jsonl` each item came from.
    public let lines: [Int]
    /// The folder's `qa.jsonl`.
    public var qaURL: URL { url.appendingPathComponent("qa.jsonl") }

    /// Reads `qa.jsonl` (and `dataset.json` when present). Images are not opened here.
    /// - Throws: `DataFolderError` naming the missing folder, or the file and line of a malformed
    ///   line, a missing or empty field, or an image path that leaves the folder or does not exist.
    public init(url: URL) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
            throw DataFolderError("\(url.path): no such data folder")
        }
        self.url = url
        let qa = url.appendingPathComponent("qa.jsonl")
        guard let data = FileManager.default.contents(atPath: qa.path) else {
            throw DataFolderError("\(qa.path): missing (a data folder holds images and qa.jsonl)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DataFolderError("\(qa.path): not UTF-8 text")
        }
        var items: [QAItem] = []
        var lines: [Int] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            let at = "\(qa.path):\(n + 1)"
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else {
                throw DataFolderError("\(at): not a JSON object")
            }
            func field(_ key: String) throws -> String {
                guard let v = obj[key] else { throw DataFolderError("\(at): missing \"\(key)\"") }
                guard let s = v as? String, !s.isEmpty else { throw DataFolderError("\(at): \"\(key)\" must be a non-empty string") }
                return s
            }
            let item = QAItem(image: try field("image"), question: try field("question"), answer: try field("answer"),
                              type: try field("type"))
            guard !item.image.hasPrefix("/"), !item.image.split(separator: "/").contains("..") else {
                throw DataFolderError("\(at): image \"\(item.image)\" must be a path inside the folder")
            }
            guard FileManager.default.fileExists(atPath: url.appendingPathComponent(item.image).path) else {
                throw DataFolderError("\(at): image \"\(item.image)\" does not exist in \(url.path)")
            }
            items.append(item)
            lines.append(n + 1)
        }
        guard !items.isEmpty else { throw DataFolderError("\(qa.path): no questions") }
        self.items = items
        self.lines = lines
        let meta = url.appendingPathComponent("dataset.json")
        if let d = FileManager.default.contents(atPath: meta.path) {
            guard let obj = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
                throw DataFolderError("\(meta.path): not a JSON object")
            }
            guard let n = obj["name"] as? String, !n.isEmpty else {
                throw DataFolderError("\(meta.path): \"name\" must be a non-empty string")
            }
            name = n
        } else {
            name = url.lastPathComponent
        }
    }

    /// The image of an item, decoded.
    /// - Throws: an error naming the image file when it does not decode.
    public func image(of item: QAItem) throws -> RGBImage {
        try ImageIO.read(url.appendingPathComponent(item.image))
    }
}

/// Answer scoring (DESIGN.md): lower-cased, surrounding whitespace and one final `.`, `!` or `?`
/// removed, then compared for equality with the expected answer lower-cased. Nothing else.
public enum AnswerScoring {
    /// The normalised form of a generated answer.
    public static func normalise(_ text: String) -> String {
        var s = text.lowercased().trimmingCharacters(in: .whitespacesAndNewlines)
        if let last = s.last, ".!?".contains(last) { s.removeLast() }
        return s
    }

    /// Whether `generated` counts as the `expected` answer.
    public static func isCorrect(_ generated: String, expected: String) -> Bool {
        normalise(generated) == expected.lowercased()
    }
}

/// Writes data folders and truth sidecars atomically: into a sibling temporary path that is renamed
/// into place only when complete, so a failure leaves nothing half-written.
public enum DataFolderWriter {
    /// Renders `count` still warehouse scenes with their questions into `url` (and `truth.jsonl`, one
    /// line per image with its objects, as the video sidecar lists them).
    /// - Parameters:
    ///   - url: the folder to create (must not exist, or be empty).
    ///   - count: number of images (≥ 1).
    ///   - seed: image i is drawn from `SplitMix64(seed: seed &* 0x9E3779B97F4A7C15 &+ i)`.
    ///   - width: image width.
    ///   - height: image height.
    ///   - name: `dataset.json`'s name.
    ///   - progress: called after each image with the number done.
    public static func writeWarehouse(to url: URL, count: Int, seed: UInt64, width: Int, height: Int, name: String,
                                      progress: (Int) -> Void = { _ in }) throws {
        guard count >= 1 else { throw DataFolderError("--count \(count): must be ≥ 1") }
        guard (16...4096).contains(width), (16...4096).contains(height) else {
            throw DataFolderError("--size \(width)x\(height): each side must be within 16…4096")
        }
        let fm = FileManager.default
        if fm.fileExists(atPath: url.path) {
            let contents = (try? fm.contentsOfDirectory(atPath: url.path)) ?? ["?"]
            guard contents.isEmpty else { throw DataFolderError("\(url.path): exists and is not empty") }
            try fm.removeItem(at: url)
        }
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: tmp)
        do {
            try fm.createDirectory(at: tmp.appendingPathComponent("images"), withIntermediateDirectories: true)
            var lines = "", truth = ""
            for i in 0..<count {
                let (image, questions, objects) = warehouseSample(seed: seed, index: i, width: width, height: height)
                let rel = String(format: "images/%06d.png", i)
                try ImageIO.writePNG(image, to: tmp.appendingPathComponent(rel))
                truth += objectsLine(["image": rel], objects) + "\n"
                for q in questions {
                    let obj: [String: String] = ["image": rel, "question": q.question, "answer": q.answer, "type": q.type]
                    let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
                    lines += String(decoding: d, as: UTF8.self) + "\n"
                }
                progress(i + 1)
            }
            try Data(lines.utf8).write(to: tmp.appendingPathComponent("qa.jsonl"))
            try Data(truth.utf8).write(to: tmp.appendingPathComponent("truth.jsonl"))
            let meta = try JSONSerialization.data(withJSONObject: ["name": name, "generator": "atp synth", "seed": seed,
                                                                   "count": count, "size": [width, height]] as [String: Any],
                                                  options: [.sortedKeys])
            try meta.write(to: tmp.appendingPathComponent("dataset.json"))
            try fm.moveItem(at: tmp, to: url)
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }

    /// Image `index` of a synthetic split, its questions and its objects.
    public static func warehouseSample(seed: UInt64, index: Int, width: Int, height: Int)
        -> (RGBImage, [WarehouseQuestion], [WarehouseObject]) {
        let s = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index)
        var rng = SplitMix64(seed: s)
        let layout = WarehouseWorld.sampleLayout(&rng)
        let image = WarehouseWorld.render(layout, width: width, height: height, noiseSeed: s)
        return (image, WarehouseWorld.questions(for: layout), WarehouseWorld.objects(for: layout, width: width, height: height))
    }

    /// `fields` plus `"objects": [{"kind", "color", "bbox"}…]` as one JSON line (sorted keys).
    static func objectsLine(_ fields: [String: Any], _ objects: [WarehouseObject]) -> String {
        var obj = fields
        obj["objects"] = objects.map { o -> [String: Any] in ["kind": o.kind.rawValue, "color": o.color, "bbox": o.bbox] }
        let d = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: d, as: UTF8.self)
    }

    /// One line of a video truth sidecar.
    public static func truthLine(frame: Int, pts: Double, layout: WarehouseLayout, width: Int, height: Int) -> String {
        var answers: [String: String] = [:]
        for q in WarehouseWorld.questions(for: layout) { answers[q.question] = q.answer }
        return objectsLine(["frame": frame, "pts": pts, "answers": answers],
                           WarehouseWorld.objects(for: layout, width: width, height: height))
    }

    /// Writes a warehouse video (H.264) and its truth sidecar `NAME.truth.jsonl` beside it.
    /// - Parameters:
    ///   - url: the video file (`.mp4`).
    ///   - seconds: duration (> 0).
    ///   - seed: drives the scripted scene.
    ///   - fps: frames per second (1…60).
    ///   - size: frame side in pixels.
    public static func writeWarehouseVideo(to url: URL, seconds: Double, seed: UInt64, fps: Int, size: Int = 224,
                                           quality: Int = 16, progress: (Int, Int) -> Void = { _, _ in }) throws {
        guard seconds > 0, seconds <= 3600 else { throw DataFolderError("--seconds \(seconds): must be in (0, 3600]") }
        guard (1...60).contains(fps) else { throw DataFolderError("--fps \(fps): must be in 1…60") }
        let fm = FileManager.default
        let truthURL = truthSidecar(for: url)
        let dir = url.deletingLastPathComponent()
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw DataFolderError("\(url.path): its folder \(dir.path) does not exist")
        }
        let tmpVideo = dir.appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid()).\(url.pathExtension)")
        let tmpTruth = dir.appendingPathComponent(".\(truthURL.lastPathComponent).partial-\(getpid())")
        let world = WarehouseWorld.Video(seed: seed)
        let frames = max(1, Int((seconds * Double(fps)).rounded()))
        do {
            let writer = try VideoWriter(url: tmpVideo, width: size, height: size, fps: fps, quality: quality)
            var truth = ""
            for i in 0..<frames {
                let pts = Double(i) / Double(fps)
                let layout = world.layout(at: pts)
                try writer.write(WarehouseWorld.render(layout, width: size, height: size,
                                                       noiseSeed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(i)))
                truth += truthLine(frame: i, pts: pts, layout: layout, width: size, height: size) + "\n"
                progress(i + 1, frames)
            }
            try writer.finish()
            try Data(truth.utf8).write(to: tmpTruth)
            if fm.fileExists(atPath: url.path) { try fm.removeItem(at: url) }
            if fm.fileExists(atPath: truthURL.path) { try fm.removeItem(at: truthURL) }
            try fm.moveItem(at: tmpVideo, to: url)
            try fm.moveItem(at: tmpTruth, to: truthURL)
        } catch {
            try? fm.removeItem(at: tmpVideo)
            try? fm.removeItem(at: tmpTruth)
            throw error
        }
    }

    /// `NAME.truth.jsonl` beside `NAME.mp4`.
    public static func truthSidecar(for video: URL) -> URL {
        video.deletingPathExtension().appendingPathExtension("truth.jsonl")
    }
}
