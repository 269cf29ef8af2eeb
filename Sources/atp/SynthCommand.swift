import ArgumentParser
import Foundation
import Pipeline

/// `atp synth`: renders the synthetic warehouse world as a data folder or as a video with truth.
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Render the warehouse world: a data folder (images + qa.jsonl) or a video with its truth sidecar.")

    @Option(help: "Data folder to write (images/, qa.jsonl, dataset.json).")
    var out: String?
    @Option(help: "Number of images of the data folder.")
    var count: Int?
    @Option(help: "Image size WxH of the data folder (objects stay in the centre square).")
    var size: String = "224x224"
    @Option(help: "dataset.json name of the data folder (default: the folder's name).")
    var name: String?
    @Option(help: "Video file to write (H.264 MP4); its truth goes to NAME.truth.jsonl beside it.")
    var video: String?
    @Option(help: "Video duration in seconds.")
    var seconds: Double?
    @Option(help: "Video frames per second.")
    var fps: Int = 10
    @Option(help: "Seed of the scenes.")
    var seed: UInt64

    func validate() throws {
        guard (out == nil) != (video == nil) else { throw ValidationError("give exactly one of --out DIR or --video FILE") }
        if out != nil {
            guard let count else { throw ValidationError("--out needs --count N") }
            guard count >= 1 else { throw ValidationError("--count \(count): must be ≥ 1") }
            _ = try parseSize()
        } else {
            guard let seconds else { throw ValidationError("--video needs --seconds T") }
            guard seconds > 0 else { throw ValidationError("--seconds \(seconds): must be > 0") }
        }
    }

    func parseSize() throws -> (Int, Int) {
        let parts = size.lowercased().split(separator: "x")
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), (16...4096).contains(w), (16...4096).contains(h) else {
            throw ValidationError("--size \(size): expected WxH with each side in 16…4096")
        }
        return (w, h)
    }

    func run() throws {
        do {
            if let out {
                let (w, h) = try parseSize()
                let url = URL(fileURLWithPath: out)
                let total = count!
                let progress = Progress(label: "synth", total: total)
                try DataFolderWriter.writeWarehouse(to: url, count: total, seed: seed, width: w, height: h,
                                                    name: name ?? url.lastPathComponent) { progress.update($0) }
                progress.finish()
                printErr("synth: wrote \(total) images and their questions to \(url.path)")
            } else if let video {
                let url = URL(fileURLWithPath: video)
                var progress: Progress?
                try DataFolderWriter.writeWarehouseVideo(to: url, seconds: seconds!, seed: seed, fps: fps) { done, total in
                    if progress == nil { progress = Progress(label: "synth", total: total) }
                    progress!.update(done)
                }
                progress?.finish()
                printErr("synth: wrote \(url.path) and \(DataFolderWriter.truthSidecar(for: url).path)")
            }
        } catch let e as DataFolderError {
            throw CLIError(e.description)
        }
    }
}
