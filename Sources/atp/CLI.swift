import ArgumentParser
import Foundation
import Tensor

/// `atp`: answers standing questions about video with a small VLM on the CPU, with Adaptive Token Pruning.
struct ATP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atp",
        abstract: "Adaptive Token Pruning for vision-language models on the CPU.",
        subcommands: [SynthCommand.self, EncodeCommand.self, GateCommand.self, GenerateCommand.self, AskCommand.self, EvalCommand.self, CalibrateCommand.self, RunCommand.self, ServeCommand.self, BenchCommand.self])
}

/// Options every compute command shares.
struct ComputeOptions: ParsableArguments {
    @Option(name: .long, help: "Worker threads for BLAS and kernels (default: the core count).")
    var threads: Int?
    @Option(help: ArgumentHelp("Weights' precision: native (as stored: GGUF Q8_0/Q4_0/Q4_1 and F16/BF16 stay resident and run on this CPU's integer and 16-bit kernels; the default), bf16 (bf16 GEMMs on AVX-512 BF16: not implemented yet, runs as f32), or f32 (every weight converted to f32: the reference). A pipeline's model.precision applies when this is not given.", valueName: "native|bf16|f32"))
    var precision: Precision?

    /// The precision to load models with on this CPU (the flag, else `fallback`); prints one line on
    /// stderr when the CPU cannot run the request and it falls back.
    func loadPrecision(default fallback: Precision = .native) -> Precision {
        let r = Precision.resolve(precision ?? fallback)
        if let note = r.note { printErr("atp: note: \(note)") }
        return r.precision
    }

    func apply() throws {
        let n = threads ?? ProcessInfo.processInfo.activeProcessorCount
        guard n >= 1 else { throw CLIError("--threads \(n): must be ≥ 1") }
        BLAS.setThreads(n)
        Parallel.threads = n
    }
}

/// A user-facing error: one line that names the bad input.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Parses and runs the command; prints errors as one line on stderr.
func runCLI(_ root: ATP.Type) -> Never {
    do {
        var command = try root.parseAsRoot()
        try command.run()
        exit(0)
    } catch {
        let code = root.exitCode(for: error)
        if code == .success {
            // --help, --version: the parser's full text is wanted here.
            root.exit(withError: error)
        }
        let message = root.message(for: error)
        let line = message.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? "failed"
        FileHandle.standardError.write(Data("atp: error: \(line)\n".utf8))
        exit(code == .success ? 1 : max(1, code.rawValue))
    }
}

/// Writes `text` and a newline to stderr.
func printErr(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

extension Precision: ExpressibleByArgument {}
