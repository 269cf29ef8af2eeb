import Foundation

/// A progress line on stderr (rewritten in place on a terminal, a line every 10 % otherwise), with an ETA.
final class Progress {
    let label: String, total: Int
    let start = Date()
    private var lastPrinted = -1
    private var lastTime = 0.0
    private let tty = isatty(2) != 0

    init(label: String, total: Int) {
        self.label = label
        self.total = max(1, total)
    }

    func update(_ done: Int, extra: String = "") {
        let elapsed = Date().timeIntervalSince(start)
        let tenth = done * 10 / total
        if tty {
            guard done == total || elapsed - lastTime >= 0.2 else { return }
        } else {
            guard tenth != lastPrinted || done == total else { return }
        }
        lastPrinted = tenth
        lastTime = elapsed
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let line = String(format: "%@: %d/%d (%.0f%%) %.1fs elapsed, ETA %.1fs%@", label, done, total,
                          100 * Double(done) / Double(total), elapsed, eta, extra.isEmpty ? "" : " " + extra)
        FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + line : line + "\n").utf8))
    }

    func finish() {
        if tty { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
