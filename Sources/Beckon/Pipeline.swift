import BeckonCore
import BeckonKafka
import BeckonPostgres
import CoreMetrics
import Foundation
import Logging
import Synchronization

/// A flag that asks a running pipeline to stop; safe to set from any thread.
public final class StopSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { flag.load(ordering: .acquiring) }
    public func set() { flag.store(true, ordering: .releasing) }
    /// Reads and clears the flag (for requests that recur, such as a rules reload on SIGHUP).
    public func take() -> Bool { flag.exchange(false, ordering: .acquiringAndReleasing) }
}

/// Totals of one run, for the closing summary and for tests.
public struct RunSummary: Sendable, Equatable {
    public var eventsIn = 0
    public var deadLetters = 0
    public var lateEvents = 0
    /// Tracker retries (an event id the visitor sent recently), dropped.
    public var duplicateEvents = 0
    public var decisions = 0
    /// Of `decisions`, those in a rule's holdout group (stored, not published).
    public var holdoutDecisions = 0
    /// Firings the policy suppressed, by reason.
    public var suppressedByReason: [String: Int] = [:]
    /// Rule sets taken by hot reload, and changes refused because a file was invalid.
    public var ruleReloads = 0
    public var refusedRuleReloads = 0
    /// Times the rules folder was looked at for changes.
    public var ruleFolderChecks = 0
    /// Decisions by "action rule_id".
    public var decisionsByActionAndRule: [String: Int] = [:]
    public var deadLettersByReason: [String: Int] = [:]
    public var commits = 0
    public var outputRetries = 0
    /// Times consumption was paused because outputs could not be made durable.
    public var outages = 0
    /// True while paused by an outage.
    public var paused = false
    /// Events re-read to rebuild state after an assignment (their decisions were made before).
    public var replayedEvents = 0
    /// Per decision: Kafka's acknowledgment (wall clock) minus the decision's event time,
    /// in milliseconds. Meaningful for live streams, whose event times are wall-clock
    /// times. Kept for the first 1,000,000 decisions.
    public var decisionLatenciesMs: [Int64] = []

    /// (p50, p99, max) of `decisionLatenciesMs`, if any.
    public var latencyPercentiles: (p50: Int64, p99: Int64, max: Int64)? {
        guard !decisionLatenciesMs.isEmpty else { return nil }
        let sorted = decisionLatenciesMs.sorted()
        func at(_ q: Double) -> Int64 { sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))] }
        return (at(0.5), at(0.99), sorted.last!)
    }
}

/// What a flush writes: decisions and dead letters, made durable before offsets move.
struct PendingOutputs {
    var decisions: [(Decision, TopicPartitionRef)] = []
    var deadLetters: [(DeadLetter, payload: [UInt8], key: [UInt8]?)] = []
    var suppressions: [(SuppressedFiring, TopicPartitionRef)] = []
    /// Next offset to commit per partition once the outputs above are durable.
    var offsets: [TopicPartition: Int64] = [:]
    /// How many of the decisions and dead letters above (a prefix: new ones are appended)
    /// Kafka has acknowledged; a retry after a PostgreSQL failure does not send them again,
    /// so an outage adds no duplicates to the topics.
    var sentDecisions = 0
    var sentDeadLetters = 0
    var isEmpty: Bool { decisions.isEmpty && deadLetters.isEmpty && suppressions.isEmpty && offsets.isEmpty }

    /// Drops what was derived from `partitions` (revoked: their next owner re-derives it).
    mutating func drop(_ partitions: [TopicPartition]) {
        let numbers = Set(partitions.map(\.partition))
        sentDecisions = decisions.prefix(sentDecisions).filter { !numbers.contains($0.1.partition) }.count
        decisions.removeAll { numbers.contains($0.1.partition) }
        sentDeadLetters = deadLetters.prefix(sentDeadLetters).filter { !numbers.contains($0.0.partition) }.count
        deadLetters.removeAll { numbers.contains($0.0.partition) }
        suppressions.removeAll { numbers.contains($0.1.partition) }
        offsets = offsets.filter { !partitions.contains($0.key) }
    }
}

/// An output outage: PostgreSQL (or Kafka) is not taking writes. Consumption is paused.
struct Outage {
    var since: EventTime
    var nextRetry: EventTime
    var delaySeconds: Double
    var failing: String
    var attempts: Int
}

/// State of one assigned partition.
struct PartitionLane {
    var processor: PartitionProcessor
    /// True once the consumer reached the end of the partition and nothing newer came since.
    var caughtUp = false
    /// Offsets below this were processed and committed before (by this or another
    /// instance): they are re-read only to rebuild state, and their decisions discarded.
    var rebuildUntil: Int64 = -1
    /// The position written as the partition's `rebuild_from`, and when it was worked out.
    private var rebuildFrom: (position: Int64, at: EventTime)?

    init(processor: PartitionProcessor) { self.processor = processor }

    /// How long a worked-out `rebuild_from` is reused. Working it out scans the held events
    /// and the resident sessions' blocks (about as many as the events of the allowed
    /// lateness), and every batch's flush writes it. A position worked out earlier is never
    /// later than the current one (`PartitionProcessor.rebuildFrom` does not move back while
    /// positions grow), so reusing it only means re-reading a little more after a restart.
    static let rebuildFromRefresh = Millis(5_000)

    /// The position from which re-reading the partition rebuilds its state, for a flush
    /// that commits `next`: at most `rebuildFromRefresh` old.
    mutating func rebuildFrom(committing next: Int64, now: EventTime) -> Int64 {
        if let cached = rebuildFrom, now - cached.at < Self.rebuildFromRefresh, cached.position <= next { return cached.position }
        let position = min(processor.rebuildFrom ?? next, next)
        rebuildFrom = (position, now)
        return position
    }
}

/// Consumes events, runs them through the core, and publishes decisions.
///
/// Commit protocol: messages are processed in batches; after each batch the decisions
/// are produced to Kafka (waiting for acknowledgments) and written to PostgreSQL in one
/// transaction, and only then are the batch's offsets committed. A crash anywhere before
/// the commit replays the batch, and the deterministic `decision_id`s make the replay
/// land on the same rows.
///
/// Runs on its own thread (`run(stop:)` blocks): librdkafka and libpq calls block.
public final class Pipeline: @unchecked Sendable {
    // @unchecked: all mutable state is touched only by the thread inside `run`.
    public let configuration: BeckonConfiguration
    private var rules: RuleSet
    private let model: IntentModel
    private var policy: Policy
    /// Hot reload of the rules folder (nil: the rules given at start stay).
    private let reloader: RuleReloader?
    private let reloadRequest = StopSignal()
    private var lastRulesCheck = EventTime(milliseconds: 0)
    private let logger: Logger
    private let now: @Sendable () -> EventTime
    private let decoder = EventDecoder()
    private var lanes: [Int32: PartitionLane] = [:]
    /// The events `collectBatch` took, per partition in order, until `processArrivals` runs
    /// them through their processors.
    private var arrivals: [Int32: [PartitionProcessor.Arrival]] = [:]
    private var pending = PendingOutputs()
    private var consumer: KafkaConsumer?
    private var producer: KafkaProducer?
    private var database: PostgresConnection?
    private var rulesStored = false
    private var outage: Outage?
    /// Rebuild ends for partitions being assigned (set by `rebuildPoints`).
    private var pendingRebuilds: [Int32: Int64] = [:]
    /// Partitions whose state could not be recovered: read nothing, commit nothing.
    private var blockedPartitions: Set<Int32> = []
    private var stopSignal: StopSignal?
    private let metrics: PipelineMetrics
    private let summaryBox = Mutex(RunSummary())
    private let onDecision: (@Sendable (Decision) -> Void)?

    /// - Parameters:
    ///   - now: the wall clock; tests pass their own.
    ///   - onDecision: called for each decision once it is durable.
    ///   - reloader: watches the rules folder; changes (and `requestRulesReload()`) swap the rules between events.
    public init(
        configuration: BeckonConfiguration, rules: RuleSet, model: IntentModel = .empty, policy: Policy = .standard,
        reloader: RuleReloader? = nil, logger: Logger,
        metrics: any MetricsFactory = MetricsSystem.factory,
        now: @escaping @Sendable () -> EventTime = wallClockNow, onDecision: (@Sendable (Decision) -> Void)? = nil
    ) {
        self.metrics = PipelineMetrics(factory: metrics)
        self.configuration = configuration
        self.rules = rules
        self.model = model
        self.policy = policy
        self.reloader = reloader
        self.logger = logger
        self.now = now
        self.onDecision = onDecision
    }

    public var summary: RunSummary { summaryBox.withLock { $0 } }

    /// Asks for the rules folder to be loaded again at the next point between events (SIGHUP).
    public func requestRulesReload() { reloadRequest.set() }

    /// The version of the rule set in force (changes on a successful hot reload).
    public var rulesVersion: String { summaryBox.withLock { _ in rulesVersionBox } }
    private var rulesVersionBox = ""

    /// Between two batches: load the rules folder again if it changed (checked once a
    /// second) or a reload was requested; swap a valid new set into every partition, keep
    /// the old one when anything is wrong.
    private func reloadRulesIfChanged(wallNow: EventTime) {
        guard let reloader else { return }
        let forced = reloadRequest.take()
        guard forced || wallNow - lastRulesCheck >= .seconds(1) else { return }
        lastRulesCheck = wallNow
        let outcome = reloader.check(force: forced)
        summaryBox.withLock { $0.ruleFolderChecks += 1 }
        switch outcome {
        case .unchanged:
            if forced { logger.notice("rules reload requested: \(reloader.directory) is unchanged (version \(rules.version))") }

        case .replaced(let old, let new):
            rules = reloader.rules
            policy = reloader.policy
            for partition in lanes.keys.sorted() {
                var lane = lanes.removeValue(forKey: partition)!
                lane.processor.replaceRules(rules, policy: policy)
                lanes[partition] = lane
            }
            rulesStored = false
            summaryBox.withLock { $0.ruleReloads += 1; rulesVersionBox = new }
            logger.notice("rules reloaded: version \(old) → \(new); in force from the next event", metadata: [
                "beckon.rules": "\(rules.rules.map(\.id).joined(separator: ","))",
            ])

        case .refused(let errors):
            summaryBox.withLock { $0.refusedRuleReloads += 1 }
            logger.error("rules change refused; the rules in force (version \(rules.version)) stay. Fix these and save again (check with 'beckon rules check'):\n\(errors)")
        }
        if reloader.lastCheckLoaded && reloader.modelChangedSinceLastReport() {
            logger.warning("the intent model file changed; it takes effect only after a restart (scores are kept per intent)")
        }
    }

    /// When to stop on one's own.
    public enum ExitCondition: Sendable {
        /// Run until stopped.
        case never
        /// Stop once every assigned partition is read to its end and no rule timer is pending.
        case drained
        /// Stop once every assigned partition is read to its end and its outputs are
        /// durable, without waiting for pending timers (benchmarks of throughput).
        case caughtUp
    }

    /// Runs until `stop` becomes true (or the exit condition holds), then flushes, commits and leaves the group.
    public func run(stop: StopSignal, exit: ExitCondition = .never) throws {
        let database = try connectDatabase(stop: stop)
        self.database = database
        self.stopSignal = stop
        var producerConfiguration = configuration.kafka
        if transactional { producerConfiguration["transactional.id"] = configuration.transactionalID }
        let producer = try KafkaProducer.make(configuration: producerConfiguration, logger: logger)
        if transactional {
            try producer.initTransactions()
            logger.notice("Kafka transactions on (transactional.id \(configuration.transactionalID)): outputs and offsets commit together; consumers of the decisions topic should read with isolation.level=read_committed")
        }
        self.producer = producer
        let consumer = try KafkaConsumer.make(configuration: configuration.kafka, logger: logger)
        self.consumer = consumer
        logger.info("starting", metadata: [
            "beckon.topic": "\(configuration.eventsTopic)", "beckon.rules": "\(rules.rules.map(\.id).joined(separator: ","))",
            "beckon.rules_version": "\(rules.version)", "beckon.librdkafka": "\(librdkafkaVersion)",
        ])
        try consumer.subscribe([configuration.eventsTopic], startOffsets: { [unowned self] partitions in
            self.rebuildPoints(partitions)
        }) { [unowned self] event in
            self.rebalanced(event, stop: stop)
        }
        defer {
            consumer.close()
            self.consumer = nil
        }
        var lastProgressLog = now()
        summaryBox.withLock { _ in rulesVersionBox = rules.version }
        while !stop.isSet {
            collectBatch(consumer)
            let wallNow = now()
            reloadRulesIfChanged(wallNow: wallNow)
            for partition in lanes.keys.sorted() where lanes[partition]!.caughtUp {
                var lane = lanes.removeValue(forKey: partition)!  // one owner: mutated in place
                let decisions = lane.processor.advanceIdle(wallNow: wallNow)
                let suppressions = lane.processor.takeSuppressions()
                lanes[partition] = lane
                append(decisions, partition: partition)
                append(suppressions, partition: partition)
            }
            try flushOrPause()
            if wallNow - lastProgressLog >= .seconds(10) {
                lastProgressLog = wallNow
                let s = summary
                logger.info("progress", metadata: ["beckon.events": "\(s.eventsIn)", "beckon.decisions": "\(s.decisions)", "beckon.dead_letters": "\(s.deadLetters)"])
            }
            if case .drained = exit, isDrained { break }
            if case .caughtUp = exit, !lanes.isEmpty, lanes.values.allSatisfy(\.caughtUp), pending.isEmpty { break }
        }
        try finalFlush()
        logger.info("stopped", metadata: ["beckon.events": "\(summary.eventsIn)", "beckon.decisions": "\(summary.decisions)"])
    }

    private var isDrained: Bool {
        !lanes.isEmpty && lanes.values.allSatisfy { $0.caughtUp && $0.processor.pendingRuleTimers == 0 && $0.processor.heldEvents == 0 } && pending.isEmpty
    }

    private func connectDatabase(stop: StopSignal) throws -> PostgresConnection {
        var delay = 0.5
        while true {
            let error: PostgresError
            do {
                return try PostgresConnection.connect(configuration.postgresURL)
            } catch let failure {
                error = failure
            }
            if !error.isRetriable || stop.isSet { throw error }
            logger.warning("PostgreSQL not reachable; retrying in \(delay) s", metadata: ["beckon.error": "\(error)"])
            Thread.sleep(forTimeInterval: delay)
            delay = min(delay * 2, 10)
        }
    }

    /// Polls up to `batchSize` messages: waits for the first, then takes what is already there.
    private func collectBatch(_ consumer: KafkaConsumer) {
        var taken = 0
        var timeout = Int32(configuration.pollTimeout.value)
        var wallNow = now()
        while taken < configuration.batchSize, let event = consumer.poll(timeoutMs: timeout) {
            timeout = 0
            switch event {
            case .message(let message):
                taken += 1
                // The wall clock only matters at millisecond scale (idle watermarks,
                // decided_at): read it every 256 messages, not for each.
                if taken & 255 == 1 { wallNow = now() }
                handle(message, wallNow: wallNow)
            case .endOfPartition(let tp, _):
                if tp.topic == configuration.eventsTopic { lanes[tp.partition]?.caughtUp = true }
            case .error(let error):
                logger.warning("consumer error (librdkafka retries on its own)", metadata: ["beckon.error": "\(error)"])
            }
        }
        processArrivals()
    }

    /// Runs the events taken since the last call through their partitions' processors, one
    /// batch per partition (`PartitionProcessor.process(batch:)`, which loads the visitors
    /// of the events to come ahead), and queues what they decide. Before anything is
    /// flushed: the batch's offsets are already among the pending ones.
    private func processArrivals() {
        for partition in arrivals.keys.sorted() {
            guard let batch = arrivals[partition], !batch.isEmpty, var lane = lanes.removeValue(forKey: partition) else { continue }
            let before = lane.processor.statistics
            let decisions = lane.processor.process(batch: batch)
            let suppressions = lane.processor.takeSuppressions()
            let after = lane.processor.statistics
            lanes[partition] = lane
            append(decisions, partition: partition)
            append(suppressions, partition: partition)
            if after.lateEvents > before.lateEvents || after.duplicateEvents > before.duplicateEvents {
                summaryBox.withLock {
                    $0.lateEvents += after.lateEvents - before.lateEvents
                    $0.duplicateEvents += after.duplicateEvents - before.duplicateEvents
                }
                metrics.lateEvents.increment(by: after.lateEvents - before.lateEvents)
                metrics.duplicateEvents.increment(by: after.duplicateEvents - before.duplicateEvents)
            }
        }
        arrivals.removeAll(keepingCapacity: true)
    }

    private func handle(_ message: KafkaMessage, wallNow: EventTime) {
        if blockedPartitions.contains(message.partition) { return }
        // Taken out of the dictionary, not copied: the processor's visitor table then has one
        // owner and is mutated in place (a second reference would make it copy itself).
        guard var lane = lanes.removeValue(forKey: message.partition) else {
            // A message for a partition we do not own (should not happen); process nothing, commit nothing.
            logger.warning("message for unassigned partition", metadata: ["beckon.partition": "\(message.partition)"])
            return
        }
        lane.caughtUp = false
        let key = message.key.map { String(decoding: $0, as: UTF8.self) }
        let result = decoder.decode(message.value, key: key, brokerTime: message.timestamp.map { EventTime(milliseconds: $0) })
        if message.offset < lane.rebuildUntil {
            // Re-read to rebuild state: its outputs were made durable before.
            if case .success(let event) = result {
                _ = lane.processor.process(event, arrivedAt: wallNow, position: message.offset)
                _ = lane.processor.takeSuppressions()
            }
            lanes[message.partition] = lane
            summaryBox.withLock { $0.replayedEvents += 1 }
            if message.offset + 1 == lane.rebuildUntil {
                logger.info("partition state rebuilt", metadata: ["beckon.partition": "\(message.partition)", "beckon.visitors": "\(lane.processor.visitorCount)"])
            }
            return
        }
        summaryBox.withLock { $0.eventsIn += 1 }
        metrics.events.increment()
        switch result {
        case .success(let event):
            // Processed with the rest of its partition's batch (`processArrivals`).
            arrivals[message.partition, default: []].append(PartitionProcessor.Arrival(event, arrivedAt: wallNow, position: message.offset))
        case .failure(let failure):
            let letter = DeadLetter(
                topic: message.topic, partition: message.partition, offset: message.offset, kafkaTimestamp: message.timestamp,
                failure: failure, payloadBytes: message.value.count)
            pending.deadLetters.append((letter, message.value, message.key))
            summaryBox.withLock { $0.deadLetters += 1; $0.deadLettersByReason[failure.code, default: 0] += 1 }
            metrics.deadLetter(reason: failure.code)
            logger.debug("dead letter", metadata: ["beckon.partition": "\(message.partition)", "beckon.offset": "\(message.offset)", "beckon.reason": "\(failure)"])
        }
        lanes[message.partition] = lane
        pending.offsets[message.topicPartition] = message.offset + 1
    }

    private func append(_ decisions: [Decision], partition: Int32) {
        for decision in decisions {
            pending.decisions.append((decision, TopicPartitionRef(topic: configuration.eventsTopic, partition: partition)))
        }
    }

    private func append(_ suppressions: [SuppressedFiring], partition: Int32) {
        for suppression in suppressions {
            pending.suppressions.append((suppression, TopicPartitionRef(topic: configuration.eventsTopic, partition: partition)))
        }
    }

    /// Makes pending outputs durable (Kafka acknowledged, PostgreSQL committed), then
    /// commits offsets. On a transient failure, pauses every assigned partition (state is
    /// kept, nothing more is read, nothing is committed) and retries with backoff from the
    /// main loop, which keeps polling so the group membership stays alive; resumes once
    /// the outputs are durable.
    private func flushOrPause() throws {
        if let outage, now() < outage.nextRetry { return }
        let wasDown = outage
        if try attemptFlush() {
            if let wasDown {
                outage = nil
                let partitions = lanes.keys.sorted().map { TopicPartition(configuration.eventsTopic, $0) }
                try? consumer?.resume(partitions)
                summaryBox.withLock { $0.paused = false }
                metrics.paused.record(0)
                logger.notice("outputs durable again after \(Double((now() - wasDown.since).value) / 1000) s (\(wasDown.failing) before); offsets committed, consumption resumed", metadata: [
                    "beckon.attempts": "\(wasDown.attempts)",
                ])
            }
            return
        }
        let wallNow = now()
        if var current = outage {
            current.attempts += 1
            current.delaySeconds = min(current.delaySeconds * 2, 10)
            current.nextRetry = wallNow + Millis(Int64(current.delaySeconds * 1000))
            outage = current
            logger.warning("\(current.failing) still; retry \(current.attempts) in \(current.delaySeconds) s", metadata: [
                "beckon.down_for_s": "\(Double((wallNow - current.since).value) / 1000)",
            ])
        }
    }

    private var transactional: Bool { !configuration.transactionalID.isEmpty }

    /// One attempt. Returns false (and starts or continues an outage) on a transient failure.
    private func attemptFlush() throws -> Bool {
        guard !pending.isEmpty, let producer, let consumer, let database else { return true }
        do {
            if transactional {
                try writeTransactionally(producer: producer, consumer: consumer, database: database)
            } else {
                try writeOutputs(producer: producer, database: database)
                try consumer.commit(pending.offsets)
            }
        } catch {
            let failing: String
            switch error {
            case let e as PostgresError where e.isRetriable: failing = "PostgreSQL unavailable"
            case let e as KafkaError where e.isRetriable: failing = "Kafka not acknowledging"
            default: throw error
            }
            summaryBox.withLock { $0.outputRetries += 1 }
            if error is PostgresError { try? database.reset() }
            if outage == nil {
                let partitions = lanes.keys.sorted().map { TopicPartition(configuration.eventsTopic, $0) }
                try? consumer.pause(partitions)
                outage = Outage(since: now(), nextRetry: now() + Millis(500), delaySeconds: 0.5, failing: failing, attempts: 1)
                summaryBox.withLock { $0.outages += 1; $0.paused = true }
                metrics.outages.increment()
                metrics.paused.record(1)
                logger.error("\(failing): paused consumption of partitions \(partitions.map(\.partition)); holding \(pending.decisions.count) decisions and \(pending.deadLetters.count) dead letters in memory, committing nothing past what is durable; retrying with backoff", metadata: [
                    "beckon.error": "\(error)",
                ])
            }
            return false
        }
        let decisions = pending.decisions.map(\.0)
        let suppressions = pending.suppressions.map(\.0)
        summaryBox.withLock { s in
            s.commits += 1
            s.decisions += decisions.count
            s.holdoutDecisions += decisions.count { $0.experiment == .holdout }
            for x in suppressions { s.suppressedByReason[x.reason.rawValue, default: 0] += 1 }
            for d in decisions { s.decisionsByActionAndRule["\(d.action.rawValue) \(d.ruleID)", default: 0] += 1 }
        }
        for d in decisions { metrics.decision(action: d.action.rawValue, rule: d.ruleID) }
        for x in suppressions { metrics.suppressed(reason: x.reason.rawValue, rule: x.ruleID) }
        metrics.visitors.record(lanes.values.reduce(0) { $0 + $1.processor.visitorCount })
        metrics.compactVisitors.record(lanes.values.reduce(0) { $0 + $1.processor.compactVisitorCount })
        metrics.heldEvents.record(lanes.values.reduce(0) { $0 + $1.processor.heldEvents })
        for decision in decisions where decision.experiment == .treatment {
            logger.debug("decision \(decision.action.rawValue) for \(decision.visitorID): \(decision.reason)", metadata: [
                "beckon.rule": "\(decision.ruleID)", "beckon.decision_id": "\(decision.id)", "beckon.channel": "\(decision.channel)",
            ])
            onDecision?(decision)
        }
        pending = PendingOutputs()
        return true
    }

    /// On stop: keep trying for a few seconds, then leave the rest uncommitted (it is
    /// re-derived on the next start: deterministic ids make that exact).
    private func finalFlush() throws {
        let deadline = now() + .seconds(6)
        while !(try attemptFlush()) {
            if now() >= deadline {
                logger.error("stopping with \(pending.decisions.count) decisions not yet durable: their events stay uncommitted and are processed again on the next start")
                return
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    /// Transactional mode: the batch's decisions, dead letters and input offsets commit in
    /// one Kafka transaction, after PostgreSQL has committed its rows (a crash in between
    /// re-derives the same ids, which PostgreSQL keeps once). Any failure aborts the
    /// transaction, so a retry sends everything again inside a new one.
    private func writeTransactionally(producer: KafkaProducer, consumer: KafkaConsumer, database: PostgresConnection) throws {
        try producer.beginTransaction()
        do {
            pending.sentDecisions = 0
            pending.sentDeadLetters = 0
            try writeOutputs(producer: producer, database: database)
            try producer.sendOffsetsToTransaction(pending.offsets, consumer: consumer)
            try producer.commitTransaction()
        } catch {
            try? producer.abortTransaction()
            pending.sentDecisions = 0
            pending.sentDeadLetters = 0
            throw error
        }
    }

    private func writeOutputs(producer: KafkaProducer, database: PostgresConnection) throws {
        var messages: [OutgoingMessage] = []
        // Holdout decisions are stored, not published: no frontend shows them.
        for (decision, _) in pending.decisions.dropFirst(pending.sentDecisions) where decision.experiment == .treatment {
            messages.append(OutgoingMessage(
                topic: configuration.decisionsTopic, key: Array(decision.visitorID.utf8), value: decision.jsonBytes(),
                timestamp: decision.decidedAt.milliseconds))
        }
        for (letter, payload, key) in pending.deadLetters.dropFirst(pending.sentDeadLetters) {
            messages.append(OutgoingMessage(
                topic: configuration.deadLetterTopic, key: key, value: payload, timestamp: letter.kafkaTimestamp,
                headers: [
                    ("beckon.reason", Array(letter.failure.description.utf8)),
                    ("beckon.reason_code", Array(letter.failure.code.utf8)),
                    ("beckon.source", Array("\(letter.topic)/\(letter.partition)/\(letter.offset)".utf8)),
                ]))
        }
        if !messages.isEmpty {
            try producer.send(messages)
            let acknowledged = now()
            let fresh = pending.decisions[pending.sentDecisions...].filter { $0.0.experiment == .treatment }.map { (acknowledged - $0.0.eventTime).value }
            if !fresh.isEmpty {
                summaryBox.withLock { s in
                    if s.decisionLatenciesMs.count < 1_000_000 { s.decisionLatenciesMs += fresh }
                }
            }
            pending.sentDecisions = pending.decisions.count
            pending.sentDeadLetters = pending.deadLetters.count
        }
        let group = configuration.kafka["group.id"] ?? "beckon"
        let wallNow = now()
        let partitionStates = pending.offsets.compactMap { tp, next -> OutputStore.PartitionState? in
            guard tp.topic == configuration.eventsTopic else { return nil }
            let from = lanes[tp.partition]?.rebuildFrom(committing: next, now: wallNow) ?? next
            return OutputStore.PartitionState(group: group, topic: tp.topic, partition: tp.partition, committedOffset: next, rebuildFrom: from)
        }
        try OutputStore().write(
            decisions: pending.decisions.map { ($0.0, source: $0.1) }, deadLetters: pending.deadLetters.map(\.0),
            suppressions: pending.suppressions.map { ($0.0, source: $0.1) },
            rules: rulesStored ? [] : rules.rules, partitions: partitionStates, on: database)
        rulesStored = true
    }

    /// Where newly assigned partitions start: at their stored rebuild point, so the state
    /// of the visitors still in session at the last commit is rebuilt before new events
    /// are decided on (see `PartitionProcessor.rebuildFrom`).
    private func rebuildPoints(_ partitions: [TopicPartition]) -> [TopicPartition: Int64] {
        guard let database else { return [:] }
        let group = configuration.kafka["group.id"] ?? "beckon"
        var starts: [TopicPartition: Int64] = [:]
        for tp in partitions where tp.topic == configuration.eventsTopic {
            // Without its rebuild point a partition cannot be processed correctly (its
            // visitors' windows would start empty), so wait for PostgreSQL: nothing is
            // read meanwhile, and the group allows max.poll.interval.ms for this.
            var delay = 0.5
            while true {
                do {
                    let state = try OutputStore().partitionState(group: group, topic: tp.topic, partition: tp.partition, on: database)
                    if let state, state.rebuildFrom < state.committedOffset {
                        starts[tp] = state.rebuildFrom
                        pendingRebuilds[tp.partition] = state.committedOffset
                        logger.info("rebuilding partition state", metadata: [
                            "beckon.partition": "\(tp.partition)", "beckon.from": "\(state.rebuildFrom)", "beckon.until": "\(state.committedOffset)",
                        ])
                    }
                    break
                } catch {
                    if !error.isRetriable || stopSignal?.isSet == true {
                        logger.error("cannot read the rebuild point of partition \(tp.partition); it is not processed by this instance (nothing is committed for it)", metadata: ["beckon.error": "\(error)"])
                        blockedPartitions.insert(tp.partition)
                        break
                    }
                    logger.warning("PostgreSQL unavailable while taking over partition \(tp.partition); waiting \(delay) s to read its rebuild point", metadata: ["beckon.error": "\(error)"])
                    Thread.sleep(forTimeInterval: delay)
                    delay = min(delay * 2, 5)
                    try? database.reset()
                }
            }
        }
        return starts
    }

    private func rebalanced(_ event: RebalanceEvent, stop: StopSignal) {
        switch event {
        case .assigned(let partitions):
            for tp in partitions where tp.topic == configuration.eventsTopic {
                if blockedPartitions.contains(tp.partition) { continue }
                var lane = PartitionLane(processor: PartitionProcessor(rules: rules, model: model, policy: policy, configuration: configuration.engine))
                lane.rebuildUntil = pendingRebuilds.removeValue(forKey: tp.partition) ?? -1
                lanes[tp.partition] = lane
            }
            if outage != nil { try? consumer?.pause(partitions) }
            let blocked = partitions.filter { blockedPartitions.contains($0.partition) }
            if !blocked.isEmpty { try? consumer?.pause(blocked) }
            logger.info("partitions assigned", metadata: ["beckon.partitions": "\(partitions.map(\.partition).sorted())"])
        case .revoked(let partitions, let lost):
            // The events taken for them in this batch first: their offsets are pending.
            processArrivals()
            if lost {
                // Someone else owns them now: drop what we have not made durable for them.
                pending.drop(partitions)
            } else {
                // Make what is done durable and commit it, once; if outputs are down, the
                // next owner re-derives the rest (same ids), so nothing is lost or doubled.
                let flushed = (try? attemptFlush()) ?? false
                if !flushed {
                    logger.warning("could not flush before giving up partitions; their uncommitted events will be processed again by the next owner")
                    pending.drop(partitions)
                }
            }
            for tp in partitions {
                lanes[tp.partition] = nil
                blockedPartitions.remove(tp.partition)
            }
            logger.info("partitions revoked", metadata: ["beckon.partitions": "\(partitions.map(\.partition).sorted())", "beckon.lost": "\(lost)"])
        }
    }
}
