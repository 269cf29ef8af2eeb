// The gate's calibrated defaults (DESIGN.md, "Calibration"): `atp calibrate` measures which relevance
// sign and α answer best on a validation split and writes them as `gate_config.json` in the model
// folder; every command starts from them, and its own flags (or YAML keys) override them.
import Foundation
import Gate

/// The contents of a model folder's `gate_config.json`.
public struct GateCalibration: Codable, Sendable, Equatable {
    /// One configuration tried, with its validation accuracy.
    public struct GridPoint: Codable, Sendable, Equatable {
        public var method: String
        public var alpha: Double
        public var sign: Int
        public var accuracy: Double
        public var count: Int
        public init(method: String, alpha: Double, sign: Int, accuracy: Double, count: Int) {
            self.method = method
            self.alpha = alpha
            self.sign = sign
            self.accuracy = accuracy
            self.count = count
        }
    }

    public var method: String
    public var alpha: Double
    public var sign: Int
    public var norm: String
    public var keep: Double
    /// The data folder the choice was made on (as given to `atp calibrate`), and its data set name.
    public var chosenOn: String
    public var dataset: String?
    public var grid: [GridPoint]

    enum CodingKeys: String, CodingKey {
        case method, alpha, sign, norm, keep, grid, dataset
        case chosenOn = "chosen_on"
    }

    public static let fileName = "gate_config.json"

    public init(method: String, alpha: Double, sign: Int, norm: String, keep: Double, chosenOn: String,
                dataset: String?, grid: [GridPoint]) {
        self.method = method
        self.alpha = alpha
        self.sign = sign
        self.norm = norm
        self.keep = keep
        self.chosenOn = chosenOn
        self.dataset = dataset
        self.grid = grid
    }

    /// The gate block these defaults stand for (flags and YAML keys go on top with `overridden(by:)`).
    public var gateSpec: GateSpec { GateSpec(method: method, alpha: alpha, keep: keep, sign: sign, norm: norm) }

    /// One line for stderr.
    public var summary: String {
        "method \(method), alpha \(alpha), sign \(sign > 0 ? "+1" : "-1"), norm \(norm), keep \(keep) (chosen on \(dataset ?? chosenOn))"
    }

    /// Where a model's calibration lives: `folder/gate_config.json`, or for a VLM's `clip/` subfolder
    /// (what `atp gate` and `atp encode` take) the VLM folder's.
    public static func url(for folder: URL) -> URL? {
        let own = folder.appendingPathComponent(fileName)
        if FileManager.default.fileExists(atPath: own.path) { return own }
        if folder.standardizedFileURL.lastPathComponent == "clip" {
            let parent = folder.standardizedFileURL.deletingLastPathComponent().appendingPathComponent(fileName)
            if FileManager.default.fileExists(atPath: parent.path) { return parent }
        }
        return nil
    }

    /// Reads and validates a `gate_config.json`.
    /// - Throws: `PipelineError.spec` naming the file and the bad key.
    public static func read(_ url: URL) throws -> GateCalibration {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw PipelineError.spec(file: url.path, key: "", message: "cannot read: \(error.localizedDescription)")
        }
        let c: GateCalibration
        do { c = try JSONDecoder().decode(GateCalibration.self, from: data) } catch let DecodingError.keyNotFound(k, _) {
            throw PipelineError.spec(file: url.path, key: k.stringValue, message: "missing")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw PipelineError.spec(file: url.path, key: ctx.codingPath.map(\.stringValue).joined(separator: "."), message: "wrong type")
        } catch {
            throw PipelineError.spec(file: url.path, key: "", message: "not valid JSON")
        }
        if let (key, message) = c.gateSpec.issue { throw PipelineError.spec(file: url.path, key: key, message: message) }
        guard c.method != GateMethod.full.rawValue else {
            throw PipelineError.spec(file: url.path, key: "method", message: "'full' is not a pruning method")
        }
        return c
    }

    /// The calibration of the model in `folder`, or nil when it has none.
    public static func load(folder: URL) throws -> GateCalibration? {
        guard let u = url(for: folder) else { return nil }
        return try read(u)
    }

    /// Writes `folder/gate_config.json` atomically (a temporary sibling renamed into place).
    public func write(folder: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let url = folder.appendingPathComponent(Self.fileName)
        try (enc.encode(self) + Data("\n".utf8)).write(to: url, options: .atomic)
    }

    /// The gate a command runs with: the model's calibration (when it has one) under `overrides`.
    /// - Parameters:
    ///   - folder: the model folder.
    ///   - overrides: what flags or YAML keys set.
    ///   - note: receives the one line saying which defaults were used.
    public static func resolve(folder: URL, overrides: GateSpec?, note: (String) -> Void) throws -> GateSpec {
        guard let u = url(for: folder) else { return overrides ?? GateSpec() }
        let c = try read(u)
        note("gate: defaults from \(u.path): \(c.summary); flags and YAML keys override them")
        return c.gateSpec.overridden(by: overrides)
    }
}

/// Chooses the gate's sign and α on a validation split (`atp calibrate`).
public enum Calibrator {
    /// The α values tried.
    public static let alphas: [Double] = [0, 0.25, 0.5, 0.75, 1]

    /// The configurations tried for `methods` at `keep`: every α × sign, except that α = 0 (no
    /// relevance, so the sign does not matter) is tried once with sign +1.
    public static func grid(methods: [GateMethod], keep: Double, norm: ScoreNormalization = .minmax) -> [GateConfig] {
        var out: [GateConfig] = []
        for m in methods {
            for sign in [1, -1] {
                for a in alphas where !(a == 0 && sign == -1) {
                    out.append(GateConfig(method: m, alpha: a, sign: sign, norm: norm, budget: .keep(keep)))
                }
            }
        }
        return out
    }

    /// The winner of a grid: the highest accuracy; ties go to the earlier configuration of the grid
    /// (methods in the order given, sign +1 before −1, smaller α first).
    public static func choose(_ results: [(config: GateConfig, accuracy: Double)]) -> Int? {
        var best: Int? = nil
        for (i, r) in results.enumerated() where best == nil || r.accuracy > results[best!].accuracy { best = i }
        return best
    }
}
