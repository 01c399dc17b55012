import BeckonCore
import BeckonKafka
import BeckonPostgres
import Foundation
import Logging
import Synchronization

/// A flag that asks a running pipeline to stop; safe to set from any thread.
public final class StopSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { flag.load(ordering: .acquiring) }
    public func set() { flag.store(true, ordering: .releasing) }
}

/// Totals of one run, for the closing summary and for tests.
public struct RunSummary: Sendable, Equatable {
    public var eventsIn = 0
    public var deadLetters = 0
    public var lateEvents = 0
    /// Tracker retries (an event id the visitor sent recently), dropped.
    public var duplicateEvents = 0
    public var decisions = 0
    /// Decisions by "action rule_id".
    public var decisionsByActionAndRule: [String: Int] = [:]
    public var deadLettersByReason: [String: Int] = [:]
    public var commits = 0
    public var outputRetries = 0
}

/// What a flush writes: decisions and dead letters, made durable before offsets move.
struct PendingOutputs {
    var decisions: [(Decision, TopicPartitionRef)] = []
    var deadLetters: [(DeadLetter, payload: [UInt8], key: [UInt8]?)] = []
    /// Next offset to commit per partition once the outputs above are durable.
    var offsets: [TopicPartition: Int64] = [:]
    var isEmpty: Bool { decisions.isEmpty && deadLetters.isEmpty && offsets.isEmpty }
}

/// State of one assigned partition.
struct PartitionLane {
    var processor: PartitionProcessor
    /// True once the consumer reached the end of the partition and nothing newer came since.
    var caughtUp = false
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
    private let rules: RuleSet
    private let model: IntentModel
    private let logger: Logger
    private let now: @Sendable () -> EventTime
    private let decoder = EventDecoder()
    private var lanes: [Int32: PartitionLane] = [:]
    private var pending = PendingOutputs()
    private var consumer: KafkaConsumer?
    private var producer: KafkaProducer?
    private var database: PostgresConnection?
    private var rulesStored = false
    private let summaryBox = Mutex(RunSummary())
    private let onDecision: (@Sendable (Decision) -> Void)?

    /// - Parameters:
    ///   - now: the wall clock; tests pass their own.
    ///   - onDecision: called for each decision once it is durable.
    public init(
        configuration: BeckonConfiguration, rules: RuleSet, model: IntentModel = .empty, logger: Logger,
        now: @escaping @Sendable () -> EventTime = wallClockNow, onDecision: (@Sendable (Decision) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.rules = rules
        self.model = model
        self.logger = logger
        self.now = now
        self.onDecision = onDecision
    }

    public var summary: RunSummary { summaryBox.withLock { $0 } }

    /// When to stop on one's own.
    public enum ExitCondition: Sendable {
        /// Run until stopped.
        case never
        /// Stop once every assigned partition is read to its end and no rule timer is pending.
        case drained
    }

    /// Runs until `stop` becomes true (or the exit condition holds), then flushes, commits and leaves the group.
    public func run(stop: StopSignal, exit: ExitCondition = .never) throws {
        let database = try connectDatabase(stop: stop)
        self.database = database
        let producer = try KafkaProducer.make(configuration: configuration.kafka, logger: logger)
        self.producer = producer
        let consumer = try KafkaConsumer.make(configuration: configuration.kafka, logger: logger)
        self.consumer = consumer
        logger.info("starting", metadata: [
            "beckon.topic": "\(configuration.eventsTopic)", "beckon.rules": "\(rules.rules.map(\.id).joined(separator: ","))",
            "beckon.rules_version": "\(rules.version)", "beckon.librdkafka": "\(librdkafkaVersion)",
        ])
        try consumer.subscribe([configuration.eventsTopic]) { [unowned self] event in
            self.rebalanced(event, stop: stop)
        }
        defer {
            consumer.close()
            self.consumer = nil
        }
        var lastProgressLog = now()
        while !stop.isSet {
            collectBatch(consumer)
            let wallNow = now()
            for (partition, var lane) in lanes where lane.caughtUp {
                let decisions = lane.processor.advanceIdle(wallNow: wallNow)
                lanes[partition] = lane
                append(decisions, partition: partition)
            }
            try flush(stop: stop)
            if wallNow - lastProgressLog >= .seconds(10) {
                lastProgressLog = wallNow
                let s = summary
                logger.info("progress", metadata: ["beckon.events": "\(s.eventsIn)", "beckon.decisions": "\(s.decisions)", "beckon.dead_letters": "\(s.deadLetters)"])
            }
            if case .drained = exit, isDrained { break }
        }
        try flush(stop: nil)
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
        while taken < configuration.batchSize, let event = consumer.poll(timeoutMs: timeout) {
            timeout = 0
            switch event {
            case .message(let message):
                taken += 1
                handle(message)
            case .endOfPartition(let tp, _):
                if tp.topic == configuration.eventsTopic { lanes[tp.partition]?.caughtUp = true }
            case .error(let error):
                logger.warning("consumer error (librdkafka retries on its own)", metadata: ["beckon.error": "\(error)"])
            }
        }
    }

    private func handle(_ message: KafkaMessage) {
        let wallNow = now()
        guard var lane = lanes[message.partition] else {
            // A message for a partition we do not own (should not happen); process nothing, commit nothing.
            logger.warning("message for unassigned partition", metadata: ["beckon.partition": "\(message.partition)"])
            return
        }
        lane.caughtUp = false
        let key = message.key.map { String(decoding: $0, as: UTF8.self) }
        let result = decoder.decode(message.value, key: key, brokerTime: message.timestamp.map { EventTime(milliseconds: $0) })
        summaryBox.withLock { $0.eventsIn += 1 }
        switch result {
        case .success(let event):
            let before = lane.processor.statistics
            append(lane.processor.process(event, arrivedAt: wallNow), partition: message.partition)
            let after = lane.processor.statistics
            if after.lateEvents > before.lateEvents || after.duplicateEvents > before.duplicateEvents {
                summaryBox.withLock {
                    $0.lateEvents += after.lateEvents - before.lateEvents
                    $0.duplicateEvents += after.duplicateEvents - before.duplicateEvents
                }
            }
        case .failure(let failure):
            let letter = DeadLetter(
                topic: message.topic, partition: message.partition, offset: message.offset, kafkaTimestamp: message.timestamp,
                failure: failure, payloadBytes: message.value.count)
            pending.deadLetters.append((letter, message.value, message.key))
            summaryBox.withLock { $0.deadLetters += 1; $0.deadLettersByReason[failure.code, default: 0] += 1 }
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

    /// Makes pending outputs durable (Kafka acknowledged, PostgreSQL committed), then commits offsets.
    /// Retries transient failures until they pass or `stop` is set; nothing is committed before.
    private func flush(stop: StopSignal?) throws {
        guard !pending.isEmpty, let producer, let consumer, let database else { return }
        var delay = 0.25
        while true {
            do {
                try writeOutputs(producer: producer, database: database)
                break
            } catch {
                // Only a transient failure is retried; anything else stops the run uncommitted.
                let failing: String
                switch error {
                case let e as PostgresError where e.isRetriable: failing = "PostgreSQL unavailable"
                case let e as KafkaError where e.isRetriable: failing = "Kafka delivery failed"
                default: throw error
                }
                if stop?.isSet == true { throw error }
                logger.warning("\(failing); holding offsets and retrying in \(delay) s", metadata: ["beckon.error": "\(error)"])
                summaryBox.withLock { $0.outputRetries += 1 }
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 5)
                if error is PostgresError { try? database.reset() }
            }
        }
        try consumer.commit(pending.offsets)
        let decisions = pending.decisions.map(\.0)
        summaryBox.withLock { s in
            s.commits += 1
            s.decisions += decisions.count
            for d in decisions { s.decisionsByActionAndRule["\(d.action.rawValue) \(d.ruleID)", default: 0] += 1 }
        }
        for decision in decisions {
            logger.debug("decision \(decision.action.rawValue) for \(decision.visitorID): \(decision.reason)", metadata: [
                "beckon.rule": "\(decision.ruleID)", "beckon.decision_id": "\(decision.id)", "beckon.channel": "\(decision.channel)",
            ])
            onDecision?(decision)
        }
        pending = PendingOutputs()
    }

    private func writeOutputs(producer: KafkaProducer, database: PostgresConnection) throws {
        var messages: [OutgoingMessage] = []
        for (decision, _) in pending.decisions {
            messages.append(OutgoingMessage(
                topic: configuration.decisionsTopic, key: Array(decision.visitorID.utf8), value: decision.jsonBytes(),
                timestamp: decision.decidedAt.milliseconds))
        }
        for (letter, payload, key) in pending.deadLetters {
            messages.append(OutgoingMessage(
                topic: configuration.deadLetterTopic, key: key, value: payload, timestamp: letter.kafkaTimestamp,
                headers: [
                    ("beckon.reason", Array(letter.failure.description.utf8)),
                    ("beckon.reason_code", Array(letter.failure.code.utf8)),
                    ("beckon.source", Array("\(letter.topic)/\(letter.partition)/\(letter.offset)".utf8)),
                ]))
        }
        try producer.send(messages)
        try OutputStore().write(
            decisions: pending.decisions.map { ($0.0, source: $0.1) }, deadLetters: pending.deadLetters.map(\.0),
            rules: rulesStored ? [] : rules.rules, on: database)
        rulesStored = true
    }

    private func rebalanced(_ event: RebalanceEvent, stop: StopSignal) {
        switch event {
        case .assigned(let partitions):
            for tp in partitions where tp.topic == configuration.eventsTopic {
                lanes[tp.partition] = PartitionLane(processor: PartitionProcessor(rules: rules, model: model, configuration: configuration.engine))
            }
            logger.info("partitions assigned", metadata: ["beckon.partitions": "\(partitions.map(\.partition).sorted())"])
        case .revoked(let partitions, let lost):
            if lost {
                // Someone else owns them now: drop what we have not made durable for them.
                pending.offsets = pending.offsets.filter { !partitions.contains($0.key) }
            } else {
                do { try flush(stop: stop) } catch {
                    logger.error("could not flush before giving up partitions; they will be reprocessed", metadata: ["beckon.error": "\(error)"])
                }
            }
            for tp in partitions { lanes[tp.partition] = nil }
            logger.info("partitions revoked", metadata: ["beckon.partitions": "\(partitions.map(\.partition).sorted())", "beckon.lost": "\(lost)"])
        }
    }
}
