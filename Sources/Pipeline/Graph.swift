// The Dispatch stage-graph runner: stages joined by bounded queues, typed end to end.
import Dispatch
import Foundation

/// Per-item bookkeeping that travels with every item through the graph.
///
/// Time accounting: an item is *captured* (``enteredAtNanos``: submission minus the work its
/// producer already did on it, e.g. the source's decode), then alternates between waiting (in a
/// queue, then for its stage's executor) and work (the stage's `process`). ``stagesMs`` holds the
/// work per stage, ``queueMs`` the sum of the waits, and at the sink
/// `e2eMs = Σ stagesMs + queueMs` up to the few microseconds the graph itself spends between them.
public struct ItemInfo: Sendable, Equatable {
    /// The index of the source item this one derives from (0, 1, 2, … in submission order).
    public var sequence: UInt64
    /// The graph clock's reading when the source item was captured, in nanoseconds: its submission
    /// less the producer's work on it (``StageGraph/submit(_:policy:upstreamWorkMs:)``).
    public var enteredAtNanos: UInt64
    /// The work each stage did on this item's path, in milliseconds, keyed by stage name (the first
    /// stage's entry includes the producer's work).
    public var stagesMs: [String: Double]
    /// Capture to sink, in milliseconds (set when the item reaches the sink).
    public var e2eMs: Double
    /// Total time the item waited in queues and for executors on its path, in milliseconds (the sink's
    /// queue included once it reaches the sink).
    public var queueMs: Double = 0
    /// When the item was last offered to a queue (its wait started), on the graph clock.
    public var readyAtNanos: UInt64 = 0
    /// The item's lane (its stream): every queue of the graph is fair across lanes, see ``BoundedQueue``.
    public var lane: String = ""
}

/// An item and its bookkeeping, as carried by the queues.
public struct Envelope<Value: Sendable>: Sendable {
    public var value: Value
    public var info: ItemInfo
}

/// State shared by every node of one graph.
final class GraphContext: @unchecked Sendable {
    let clock: any Clock
    let profiler: Profiler
    let onEvent: (@Sendable (PipelineEvent) -> Void)?
    private let lock = NSLock()
    private var inFlightCount = 0
    private var nextSequence: UInt64 = 0

    init(clock: any Clock, profiler: Profiler, onEvent: (@Sendable (PipelineEvent) -> Void)?) {
        self.clock = clock
        self.profiler = profiler
        self.onEvent = onEvent
    }

    var inFlight: Int { lock.withLock { inFlightCount } }
    func adjustInFlight(_ delta: Int) { lock.withLock { inFlightCount += delta } }
    func takeSequence() -> UInt64 {
        lock.withLock {
            defer { nextSequence += 1 }
            return nextSequence
        }
    }

    /// Closes a node's input queue and accounts for what it still held (`closed` drops).
    func discard<T>(_ queue: BoundedQueue<T>, consumer: String) {
        let rest = queue.closeAndDiscard()
        if !rest.isEmpty {
            adjustInFlight(-rest.count)
            profiler.recordDrop(stage: consumer, reason: .closed, count: rest.count)
        }
    }

    /// Accounts for the outcome of a push into the queue consumed by `consumer`.
    func account<T>(_ outcome: PushOutcome<T>, consumer: String) {
        if !outcome.dropped.isEmpty {
            adjustInFlight(-outcome.dropped.count)
            profiler.recordDrop(stage: consumer, reason: outcome.dropReason ?? .closed, count: outcome.dropped.count)
        }
        if outcome.closed {
            adjustInFlight(-1)
            profiler.recordDrop(stage: consumer, reason: .closed)
        }
    }
}

/// A node of the graph once its types are erased: it can start its loop and be cancelled.
protocol GraphNode: Sendable {
    var name: String { get }
    var queueStats: QueueStats { get }
    func start(group: DispatchGroup)
    /// Closes the node's input queue and discards what it holds.
    func discardInput(context: GraphContext)
}

/// A node that consumes one input queue from a loop on its own serial queue.
protocol LoopNode: GraphNode {
    associatedtype Item: Sendable
    var input: BoundedQueue<Item> { get }
    var loopQueue: DispatchQueue { get }
    func loop()
}

extension LoopNode {
    var queueStats: QueueStats { input.stats }

    func start(group: DispatchGroup) {
        loopQueue.async(group: group) { self.loop() }
    }

    func discardInput(context: GraphContext) { context.discard(input, consumer: name) }
}

/// Serialised access to a stage: only the node's loop calls into it, one item at a time.
final class StageBox<S: Stage>: @unchecked Sendable {
    let stage: S
    init(_ stage: S) { self.stage = stage }
}

/// A stage node: pops from its input queue, runs the stage on its executor, pushes the outputs.
final class StageNode<S: Stage>: LoopNode, @unchecked Sendable {
    let name: String
    let box: StageBox<S>
    let input: BoundedQueue<Envelope<S.Input>>
    let output: BoundedQueue<Envelope<S.Output>>
    let budget: StageBudget?
    let executor: StageExecutor
    let loopQueue: DispatchQueue
    let context: GraphContext

    init(stage: S, input: BoundedQueue<Envelope<S.Input>>, output: BoundedQueue<Envelope<S.Output>>,
         budget: StageBudget?, executor: StageExecutor, context: GraphContext) {
        name = stage.name
        box = StageBox(stage)
        self.input = input
        self.output = output
        self.budget = budget
        self.executor = executor
        self.context = context
        loopQueue = DispatchQueue(label: "atp.stage.\(stage.name)")
    }


    /// Runs `process` on the stage's executor and checks that it is there; returns the result and
    /// when the work started and ended (the wait for a shared executor's turn comes before `start`).
    private func run(_ value: S.Input) -> (Result<[S.Output], Error>, start: UInt64, end: UInt64) {
        let clock = context.clock
        func timed() -> (Result<[S.Output], Error>, start: UInt64, end: UInt64) {
            let start = clock.nowNanoseconds()
            let result = Result { try box.stage.process(value) }
            return (result, start, clock.nowNanoseconds())
        }
        switch executor {
        case .own:
            dispatchPrecondition(condition: .onQueue(loopQueue))
            return timed()
        case .shared(let compute):
            return compute.queue.sync {
                dispatchPrecondition(condition: .onQueue(compute.queue))
                return timed()
            }
        }
    }

    func loop() {
        dispatchPrecondition(condition: .onQueue(loopQueue))
        var skipNext = false
        while let envelope = input.pop() {
            if skipNext {
                skipNext = false
                context.adjustInFlight(-1)
                context.profiler.recordDrop(stage: name, reason: .skip)
                continue
            }
            if let forwarded = box.stage.passThrough(envelope.value) {
                // No work: no executor turn, no latency sample, no budget or K-controller observation.
                context.adjustInFlight(forwarded.count - 1)
                for value in forwarded {
                    let outcome = output.push(Envelope(value: value, info: envelope.info))
                    context.account(outcome, consumer: output.name)
                }
                continue
            }
            let (result, start, end) = run(envelope.value)
            let ms = Double(end &- start) / 1e6
            let waitMs = Double(start &- min(start, envelope.info.readyAtNanos)) / 1e6
            // Work the producer already did for this stage (the source's decode, for the first one).
            let upstreamMs = envelope.info.stagesMs[name] ?? 0
            context.profiler.record(stage: name, ms: upstreamMs + ms, waitMs: waitMs)

            if let budget {
                if ms > budget.ms {
                    context.profiler.recordOverrun(stage: name)
                    context.onEvent?(.budgetOverrun(stage: name, ms: ms, budgetMs: budget.ms))
                }
                switch budget.onOverrun {
                case .none: break
                case .skip: if ms > budget.ms { skipNext = true }
                case .shrinkK(let knob):
                    let before = knob.k
                    let after = knob.observe(latencyMs: ms, budgetMs: budget.ms)
                    if after != before { context.onEvent?(.kChanged(stage: name, k: after)) }
                }
            }

            switch result {
            case .failure(let error):
                context.adjustInFlight(-1)
                context.profiler.recordDrop(stage: name, reason: .error)
                context.onEvent?(.stageError(stage: name, message: "\(error)"))
            case .success(let outputs):
                // One item in, outputs.count items out (0: filtered).
                context.adjustInFlight(outputs.count - 1)
                var info = envelope.info
                info.stagesMs[name] = upstreamMs + ms
                info.queueMs += waitMs
                info.readyAtNanos = end
                for value in outputs {
                    let outcome = output.push(Envelope(value: value, info: info))
                    context.account(outcome, consumer: output.name)
                }
            }
        }
        output.close()
    }
}

/// The sink node: hands every item to a closure on its own serial queue and records the answer.
final class SinkNode<Value: Sendable>: LoopNode, @unchecked Sendable {
    let name: String
    let input: BoundedQueue<Envelope<Value>>
    let body: @Sendable (Value, ItemInfo) -> Void
    let loopQueue: DispatchQueue
    let context: GraphContext

    init(name: String, input: BoundedQueue<Envelope<Value>>, context: GraphContext,
         body: @escaping @Sendable (Value, ItemInfo) -> Void) {
        self.name = name
        self.input = input
        self.body = body
        self.context = context
        loopQueue = DispatchQueue(label: "atp.sink.\(name)")
    }


    func loop() {
        dispatchPrecondition(condition: .onQueue(loopQueue))
        while let envelope = input.pop() {
            var info = envelope.info
            let now = context.clock.nowNanoseconds()
            info.e2eMs = Double(now &- min(now, info.enteredAtNanos)) / 1e6
            info.queueMs += Double(now &- min(now, info.readyAtNanos)) / 1e6
            context.profiler.recordAnswer(e2eMs: info.e2eMs)
            body(envelope.value, info)
            context.adjustInFlight(-1)
        }
    }
}

/// A graph under construction whose source accepts `Input` and whose last stage emits `Tail`.
///
/// Each `then` checks at compile time that the new stage consumes `Tail`, so a mis-wired pipeline
/// does not compile:
/// ```swift
/// let graph = try GraphBuilder(first: decode, options: .init(queue: 4, policy: .latest))
///     .then(encode, options: .init(queue: 2, policy: .dropOldest, executor: .shared(compute)))
///     .then(prefill, options: .init(queue: 1, policy: .latest, budget: try StageBudget(ms: 150)))
///     .sink { answer, info in print(answer, info.e2eMs) }
/// ```
public struct GraphBuilder<Input: Sendable, Tail: Sendable> {
    let context: GraphContext
    let inputQueue: BoundedQueue<Envelope<Input>>
    let nodes: [any GraphNode]
    let names: Set<String>
    /// Builds the last stage's node once its output queue exists.
    let pending: (BoundedQueue<Envelope<Tail>>) -> any GraphNode

    /// Starts a graph with its first stage, whose input queue is the graph's input edge.
    /// - Parameters:
    ///   - stage: the first stage.
    ///   - options: its input queue, budget and executor.
    ///   - clock: the clock that times stages and end-to-end latency.
    ///   - profiler: where timings go.
    ///   - onEvent: receives overrun, k-change and error events (called from stage threads).
    /// - Throws: ``PipelineError`` for a capacity < 1 or an invalid budget.
    public init<S: Stage>(
        first stage: S, options: StageOptions, clock: any Clock = SystemClock(), profiler: Profiler = Profiler(),
        onEvent: (@Sendable (PipelineEvent) -> Void)? = nil
    ) throws where S.Input == Input, S.Output == Tail {
        let context = GraphContext(clock: clock, profiler: profiler, onEvent: onEvent)
        let queue = try BoundedQueue<Envelope<Input>>(capacity: options.queueCapacity, policy: options.policy, name: stage.name,
                                                   lane: { $0.info.lane })
        let budget = try effectiveBudget(stage, options)
        profiler.register(stage: stage.name, budgetMs: budget?.ms, queue: { queue.stats })
        self.init(context: context, inputQueue: queue, nodes: [], names: [stage.name],
                  pending: { output in
                      StageNode(stage: stage, input: queue, output: output, budget: budget,
                                executor: options.executor, context: context)
                  })
    }

    init(context: GraphContext, inputQueue: BoundedQueue<Envelope<Input>>, nodes: [any GraphNode], names: Set<String>,
         pending: @escaping (BoundedQueue<Envelope<Tail>>) -> any GraphNode) {
        self.context = context
        self.inputQueue = inputQueue
        self.nodes = nodes
        self.names = names
        self.pending = pending
    }

    /// Appends a stage.
    /// - Parameters:
    ///   - stage: a stage that consumes `Tail`.
    ///   - options: its input queue, budget and executor.
    /// - Returns: the builder, now ending in `stage`'s output type.
    /// - Throws: ``PipelineError`` for a capacity < 1 or a duplicate stage name.
    public func then<S: Stage>(_ stage: S, options: StageOptions) throws -> GraphBuilder<Input, S.Output>
    where S.Input == Tail {
        guard !names.contains(stage.name) else {
            throw PipelineError.invalidGraph("duplicate stage name '\(stage.name)'")
        }
        let queue = try BoundedQueue<Envelope<Tail>>(capacity: options.queueCapacity, policy: options.policy, name: stage.name,
                                                   lane: { $0.info.lane })
        let node = pending(queue)
        let context = self.context
        let budget = try effectiveBudget(stage, options)
        context.profiler.register(stage: stage.name, budgetMs: budget?.ms, queue: { queue.stats })
        return GraphBuilder<Input, S.Output>(
            context: context, inputQueue: inputQueue, nodes: nodes + [node], names: names.union([stage.name]),
            pending: { output in
                StageNode(stage: stage, input: queue, output: output, budget: budget,
                          executor: options.executor, context: context)
            })
    }

    /// Ends the graph with a sink.
    /// - Parameters:
    ///   - name: the sink's name (not a stage: it is not in the profile's `stages`).
    ///   - queue: capacity of the sink's input queue.
    ///   - policy: its back-pressure policy.
    ///   - body: called on the sink's own serial queue for every item, in arrival order.
    /// - Returns: the finished graph, not yet running.
    public func sink(name: String = "sink", queue: Int = 8, policy: OverflowPolicy = .block,
                     _ body: @escaping @Sendable (Tail, ItemInfo) -> Void) throws -> StageGraph<Input> {
        guard !names.contains(name) else { throw PipelineError.invalidGraph("duplicate stage name '\(name)'") }
        let q = try BoundedQueue<Envelope<Tail>>(capacity: queue, policy: policy, name: name, lane: { $0.info.lane })
        let last = pending(q)
        let sink = SinkNode(name: name, input: q, context: context, body: body)
        context.profiler.register(sink: name, queue: { q.stats })
        return StageGraph(context: context, input: inputQueue, firstStage: nodes.first?.name ?? last.name,
                          nodes: nodes + [last], sink: sink)
    }
}

/// The budget a stage runs under: the options' budget, else the stage's own `budgetMs`.
func effectiveBudget<S: Stage>(_ stage: S, _ options: StageOptions) throws -> StageBudget? {
    if let b = options.budget { return b }
    if let ms = stage.budgetMs { return try StageBudget(ms: ms) }
    return nil
}

/// A running (or runnable) stage graph: `submit` items, `run`, then `finish` or `cancel`.
///
/// Each stage pops from its bounded input queue on its own serial queue and runs `process` there
/// or on its shared ``ComputeExecutor``; every item's time is measured against its budget. Items
/// are counted in flight from `submit` until they reach the sink or are dropped, so after
/// `finish()` or `cancel()` ``inFlight`` is 0.
public final class StageGraph<Input: Sendable>: @unchecked Sendable {
    let context: GraphContext
    let input: BoundedQueue<Envelope<Input>>
    let firstStage: String
    let nodes: [any GraphNode]
    let sinkNode: any GraphNode
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var started = false

    init<T>(context: GraphContext, input: BoundedQueue<Envelope<Input>>, firstStage: String,
            nodes: [any GraphNode], sink: SinkNode<T>) {
        self.context = context
        self.input = input
        self.firstStage = firstStage
        self.nodes = nodes
        self.sinkNode = sink
    }

    /// The profiler the graph records into.
    public var profiler: Profiler { context.profiler }

    /// Items submitted and not yet delivered to the sink or dropped.
    public var inFlight: Int { context.inFlight }

    /// Stage names in order (the sink excluded).
    public var stageNames: [String] { nodes.map(\.name) }

    /// Counters of every stage's input queue, and of the sink's as the last entry, in graph order.
    public var queueStats: [(name: String, stats: QueueStats)] {
        (nodes + [sinkNode]).map { ($0.name, $0.queueStats) }
    }

    /// Offers one item to the first stage's input queue (which may block, drop or replace per its
    /// policy). Items may be submitted before `run()`.
    /// - Parameters:
    ///   - value: the item.
    ///   - override: a policy for this push only (`block` for a producer that must wait for room).
    ///   - upstreamWorkMs: work already done on the item just before this call (a video source's
    ///     demux, decode and scale): the item counts as captured that long ago, and the time is
    ///     the first stage's work (its histogram and `stagesMs` entry include it).
    ///   - lane: the item's lane (its stream): queues hold each lane's items apart, with their own
    ///     capacity, and stages take lanes round-robin.
    /// - Returns: the push outcome; `closed` after `finish()`/`cancel()`.
    @discardableResult
    public func submit(_ value: Input, policy override: OverflowPolicy? = nil,
                       upstreamWorkMs: Double = 0, lane: String = "") -> PushOutcome<Envelope<Input>> {
        let now = context.clock.nowNanoseconds()
        let upstream = max(0, upstreamWorkMs.isFinite ? upstreamWorkMs : 0)
        let upstreamNanos = min(now, UInt64((upstream * 1e6).rounded()))
        let info = ItemInfo(sequence: context.takeSequence(), enteredAtNanos: now - upstreamNanos,
                            stagesMs: upstream > 0 ? [firstStage: upstream] : [:], e2eMs: 0, queueMs: 0, readyAtNanos: now,
                            lane: lane)
        context.adjustInFlight(1)
        let outcome = input.push(Envelope(value: value, info: info), policy: override)
        if outcome.closed {
            // Refused by a finished graph: neither a frame in nor a drop.
            context.adjustInFlight(-1)
        } else {
            context.profiler.recordFrameIn()
            context.account(outcome, consumer: firstStage)
        }
        return outcome
    }

    /// Starts every stage's loop.
    /// - Throws: ``PipelineError/invalidGraph(_:)`` when the graph was already started.
    public func run() throws {
        try lock.withLock {
            guard !started else { throw PipelineError.invalidGraph("graph already started") }
            started = true
        }
        for node in nodes + [sinkNode] { node.start(group: group) }
    }

    /// Ends the input and waits until every queued item has gone through (or been dropped).
    /// Afterwards ``inFlight`` is 0.
    public func finish() {
        input.close()
        let wasStarted = lock.withLock { started }
        if wasStarted { group.wait() } else { cancel() }
    }

    /// Closes every queue, discards what they hold (counted as `closed` drops) and waits for the
    /// items being processed to finish. Afterwards ``inFlight`` is 0.
    public func cancel() {
        for node in nodes + [sinkNode] { node.discardInput(context: context) }
        group.wait()
    }
}
