// Feeds a data folder's files, split on the first NUL byte: `qa.jsonl` [\0 `dataset.json`], through
// `DataFolder(url:)` (per-line JSON, required fields, image paths that must stay inside the folder
// and exist), then answer scoring over the items. The folder is a per-process temporary one holding
// empty images/0.png … images/23.png and images/000000.png … images/000007.png (the names of the
// easyvqa-check and trained/check fixtures); DataFolder does not decode images.
import Foundation
import Pipeline

private let prepared: Bool = {
    let images = FuzzScratch.folder.appendingPathComponent("images")
    try? FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
    for i in 0..<24 { FuzzScratch.write([UInt8](), "images/\(i).png") }
    for i in 0..<8 { FuzzScratch.write([UInt8](), "images/00000\(i).png") }
    return true
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    precondition(prepared)
    let parts = FuzzInput(data, size).parts(maxParts: 2)
    FuzzScratch.put(parts[0], "qa.jsonl")
    FuzzScratch.put(parts.count > 1 ? parts[1] : nil, "dataset.json")
    do {
        let folder = try DataFolder(url: FuzzScratch.folder)
        precondition(folder.items.count == folder.lines.count)
        precondition(!folder.name.isEmpty)
        for item in folder.items {
            precondition(!item.image.hasPrefix("/") && !item.image.split(separator: "/").contains(".."),
                         "accepted an image path outside the folder: \(item.image)")
            _ = AnswerScoring.isCorrect(item.question, expected: item.answer)
            _ = AnswerScoring.normalise(item.answer)
        }
    } catch { consume(error) }
    return 0
}
