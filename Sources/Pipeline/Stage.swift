// The stage protocol and the executors stages run on.
import Dispatch

/// One step of the streaming pipeline: a function from an input item to zero or more outputs.
///
/// The graph calls `process` from one thread at a time (the stage's executor, see
/// ``StageExecutor``), so a stage may keep mutable state (caches, a KV cache) without locks.
/// Returning no outputs filters the item; returning several fans it out. A thrown error drops the
/// item (counted as an `error` drop and reported) and the stage goes on with the next one.
public protocol Stage<Input, Output>: SendableMetatype {
    /// What the stage consumes.
    associatedtype Input: Sendable
    /// What the stage produces.
    associatedtype Output: Sendable

    /// The stage's name, as used in `stages_ms`, the profile and the pipeline spec.
    var name: String { get }

    /// The stage's default latency budget per item in milliseconds (nil: no budget). A budget given
    /// in ``StageOptions`` takes precedence.
    var budgetMs: Double? { get }

    /// Processes one item.
    /// - Parameter input: the item.
    /// - Returns: zero or more outputs, in order.
    func process(_ input: Input) throws -> [Output]

    /// An item that needs no work from this stage (e.g. a frame whose answers are reused): its outputs,
    /// forwarded on the stage's own queue without a turn on the executor, without a latency sample
    /// or budget check, and without any overrun action (nil: the item is processed).
    func passThrough(_ input: Input) -> [Output]?
}

extension Stage {
    public var budgetMs: Double? { nil }
    public func passThrough(_ input: Input) -> [Output]? { nil }
}

/// A stage made of a closure: for adapters and tests.
public struct ClosureStage<Input: Sendable, Output: Sendable>: Stage {
    public let name: String
    public let budgetMs: Double?
    private let body: @Sendable (Input) throws -> [Output]
    private let bypass: @Sendable (Input) -> [Output]?

    /// Creates a stage from a closure.
    /// - Parameters:
    ///   - name: the stage's name.
    ///   - budgetMs: its default budget in milliseconds, if any.
    ///   - passThrough: the output of an item that needs no work (see ``Stage/passThrough(_:)``).
    ///   - body: the processing function (0 or more outputs per input).
    public init(name: String, budgetMs: Double? = nil, passThrough: @escaping @Sendable (Input) -> [Output]? = { _ in nil },
                _ body: @escaping @Sendable (Input) throws -> [Output]) {
        self.name = name
        self.budgetMs = budgetMs
        self.body = body
        self.bypass = passThrough
    }

    public func process(_ input: Input) throws -> [Output] { try body(input) }
    public func passThrough(_ input: Input) -> [Output]? { bypass(input) }
}

/// A serial queue that heavy stages share so that they do not oversubscribe the cores
/// (e.g. the ViT encode and the LLM prefill on a 2-core machine).
public final class ComputeExecutor: Sendable {
    /// The queue's label.
    public let label: String
    /// The serial queue that runs the stages' `process` calls.
    public let queue: DispatchQueue

    /// Creates an executor with its own serial queue.
    /// - Parameter label: the queue's label.
    public init(label: String = "atp.compute") {
        self.label = label
        self.queue = DispatchQueue(label: label, qos: .userInitiated)
    }
}

/// Where a stage's `process` runs.
public enum StageExecutor: Sendable {
    /// On the stage's own serial queue (`atp.stage.<name>`), concurrently with other stages.
    case own
    /// On a shared ``ComputeExecutor``: stages that share it never run at the same time.
    case shared(ComputeExecutor)
}

/// How one stage is wired into the graph: its input edge, its budget and its executor.
public struct StageOptions: Sendable {
    /// Capacity of the stage's input queue (≥ 1).
    public var queueCapacity: Int
    /// Back-pressure policy of the stage's input queue.
    public var policy: OverflowPolicy
    /// The stage's budget (nil: the stage's own `budgetMs`, with no overrun action).
    public var budget: StageBudget?
    /// Where the stage's `process` runs.
    public var executor: StageExecutor

    /// Creates stage options.
    /// - Parameters:
    ///   - queue: capacity of the input queue (checked when the graph is built).
    ///   - policy: back-pressure policy of the input queue.
    ///   - budget: the latency budget and its overrun action.
    ///   - executor: where `process` runs.
    public init(queue: Int = 1, policy: OverflowPolicy = .block, budget: StageBudget? = nil,
                executor: StageExecutor = .own) {
        self.queueCapacity = queue
        self.policy = policy
        self.budget = budget
        self.executor = executor
    }
}
