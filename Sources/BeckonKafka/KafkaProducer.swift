import CRdKafka
import Logging
import Synchronization

/// A message to produce.
public struct OutgoingMessage: Sendable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]
    /// Message timestamp in epoch milliseconds; the broker's time when nil.
    public var timestamp: Int64?
    public var headers: [(String, [UInt8])]

    public init(topic: String, key: [UInt8]?, value: [UInt8], timestamp: Int64? = nil, headers: [(String, [UInt8])] = []) {
        self.topic = topic
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers = headers
    }
}

/// Counts outstanding deliveries of one batch; delivery reports decrement it.
final class DeliveryBatch: Sendable {
    struct State {
        var pending = 0
        var firstError: rd_kafka_resp_err_t?
        var failed = 0
    }
    let state = Mutex(State())
}

/// An idempotent Kafka producer whose callers wait for delivery acknowledgments.
///
/// `send(_:)` returns only when the broker acknowledged every message of the batch (or
/// throws), so a caller can treat the messages as durable before committing offsets.
///
/// - Important: blocking: call it from a dedicated thread, not from Swift's cooperative pool.
public final class KafkaProducer: @unchecked Sendable {
    // @unchecked: the rd_kafka_t handle is thread-safe for produce/poll/flush; the class
    // holds no other mutable state.
    let handle: OpaquePointer
    private let logger: Logger

    private init(handle: OpaquePointer, logger: Logger) {
        self.handle = handle
        self.logger = logger
    }

    /// - Parameter configuration: librdkafka properties; `enable.idempotence` defaults to true.
    public static func make(configuration: KafkaConfiguration, logger: Logger) throws(KafkaError) -> KafkaProducer {
        var configuration = configuration
        if configuration["enable.idempotence"] == nil { configuration["enable.idempotence"] = "true" }
        // Dead letters carry the refused bytes untouched, and a refused message may be larger
        // than librdkafka's 1 MB default; the broker's own limit still applies.
        if configuration["message.max.bytes"] == nil { configuration["message.max.bytes"] = "4194304" }
        // The consumer-only properties an operator may share with the consumer section.
        for key in ["group.id", "auto.offset.reset", "enable.auto.commit", "enable.auto.offset.store", "session.timeout.ms",
                    "heartbeat.interval.ms", "partition.assignment.strategy", "enable.partition.eof", "isolation.level",
                    "max.poll.interval.ms", "fetch.min.bytes", "fetch.wait.max.ms", "group.instance.id"] {
            configuration.properties[key] = nil
        }
        let conf = try configuration.makeConf(context: "producer configuration")
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
            guard let message, let opaque = message.pointee._private else { return }
            let batch = Unmanaged<DeliveryBatch>.fromOpaque(opaque).takeUnretainedValue()
            let err = message.pointee.err
            batch.state.withLock { state in
                state.pending -= 1
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    state.failed += 1
                    if state.firstError == nil { state.firstError = err }
                }
            }
        }
        var errstr = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: .configuration, message: errstr.nulTerminatedString, context: "create producer")
        }
        return KafkaProducer(handle: handle, logger: logger)
    }

    deinit {
        rd_kafka_flush(handle, 5000)
        rd_kafka_destroy(handle)
    }

    /// Produces every message and waits until all are acknowledged.
    /// - Throws: `KafkaError` if any message could not be delivered within `timeoutMs`.
    public func send(_ messages: [OutgoingMessage], timeoutMs: Int32 = 30_000) throws(KafkaError) {
        guard !messages.isEmpty else { return }
        let batch = DeliveryBatch()
        let opaque = Unmanaged.passUnretained(batch).toOpaque()
        defer { withExtendedLifetime(batch) {} }
        for message in messages {
            try enqueue(message, opaque: opaque, batch: batch)
        }
        var remainingMs = Int(timeoutMs)
        while batch.state.withLock({ $0.pending }) > 0 && remainingMs > 0 {
            rd_kafka_flush(handle, 100)
            remainingMs -= 100
        }
        let state = batch.state.withLock { $0 }
        if let err = state.firstError {
            throw KafkaError(err, context: "deliver \(state.failed) of \(messages.count) messages to \(messages[0].topic)")
        }
        if state.pending > 0 {
            // Still in flight: librdkafka will keep retrying them; the caller must not treat them
            // as durable, and must wait for them before this batch object may go away.
            while batch.state.withLock({ $0.pending }) > 0 { rd_kafka_flush(handle, 1000) }
            throw KafkaError(code: .timedOut, message: "delivery not acknowledged within \(timeoutMs) ms", context: "deliver to \(messages[0].topic)", isRetriable: true)
        }
    }

    private func enqueue(_ message: OutgoingMessage, opaque: UnsafeMutableRawPointer, batch: DeliveryBatch) throws(KafkaError) {
        while true {
            let error: OpaquePointer? = message.topic.withCString { topic in
                message.value.withUnsafeBytes { value in
                    (message.key ?? []).withUnsafeBytes { key in
                        var vus: [rd_kafka_vu_t] = []
                        var vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_TOPIC
                        vu.u.cstr = topic
                        vus.append(vu)
                        vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_VALUE
                        vu.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                        vu.u.mem.size = value.count
                        vus.append(vu)
                        if message.key != nil {
                            vu = rd_kafka_vu_t()
                            vu.vtype = RD_KAFKA_VTYPE_KEY
                            vu.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                            vu.u.mem.size = key.count
                            vus.append(vu)
                        }
                        vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_MSGFLAGS
                        vu.u.i = RD_KAFKA_MSG_F_COPY
                        vus.append(vu)
                        vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_OPAQUE
                        vu.u.ptr = opaque
                        vus.append(vu)
                        if let timestamp = message.timestamp {
                            vu = rd_kafka_vu_t()
                            vu.vtype = RD_KAFKA_VTYPE_TIMESTAMP
                            vu.u.i64 = timestamp
                            vus.append(vu)
                        }
                        return withHeaders(message.headers, into: &vus) { vus in
                            vus.withUnsafeBufferPointer { rd_kafka_produceva(handle, $0.baseAddress, $0.count) }
                        }
                    }
                }
            }
            guard let error else {
                batch.state.withLock { $0.pending += 1 }
                return
            }
            if rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                rd_kafka_error_destroy(error)
                rd_kafka_poll(handle, 50)  // serve delivery reports to make room
                continue
            }
            throw KafkaError(consuming: error, context: "produce to \(message.topic)")
        }
    }

    /// Adds header entries whose name and value pointers stay valid during `body`.
    private func withHeaders<R>(_ headers: [(String, [UInt8])], into vus: inout [rd_kafka_vu_t], _ body: ([rd_kafka_vu_t]) -> R) -> R {
        guard let (name, value) = headers.first else { return body(vus) }
        return name.withCString { namePointer in
            value.withUnsafeBytes { valuePointer in
                var vu = rd_kafka_vu_t()
                vu.vtype = RD_KAFKA_VTYPE_HEADER
                vu.u.header.name = namePointer
                vu.u.header.val = valuePointer.baseAddress
                vu.u.header.size = valuePointer.count
                var more = vus
                more.append(vu)
                return withHeaders(Array(headers.dropFirst()), into: &more, body)
            }
        }
    }

    /// Waits until every queued message is delivered or `timeoutMs` passes.
    public func flush(timeoutMs: Int32) -> Bool {
        rd_kafka_flush(handle, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR
    }
}

// MARK: Transactions (Apache Kafka; Tansu's transactions do not isolate)

extension KafkaProducer {
    /// Registers the producer's `transactional.id` with the coordinator (once, at start).
    public func initTransactions(timeoutMs: Int32 = 30_000) throws(KafkaError) {
        if let error = rd_kafka_init_transactions(handle, timeoutMs) { throw KafkaError(consuming: error, context: "init transactions") }
    }

    public func beginTransaction() throws(KafkaError) {
        if let error = rd_kafka_begin_transaction(handle) { throw KafkaError(consuming: error, context: "begin transaction") }
    }

    /// Adds the consumer's next offsets to the open transaction: they commit with it.
    public func sendOffsetsToTransaction(_ offsets: [TopicPartition: Int64], consumer: KafkaConsumer, timeoutMs: Int32 = 30_000) throws(KafkaError) {
        let list = PartitionList(offsets.map { ($0.key, $0.value) })
        let metadata = consumer.groupMetadata()
        defer { rd_kafka_consumer_group_metadata_destroy(metadata) }
        if let error = rd_kafka_send_offsets_to_transaction(handle, list.pointer, metadata, timeoutMs) {
            throw KafkaError(consuming: error, context: "send offsets to transaction")
        }
    }

    public func commitTransaction(timeoutMs: Int32 = 30_000) throws(KafkaError) {
        if let error = rd_kafka_commit_transaction(handle, timeoutMs) { throw KafkaError(consuming: error, context: "commit transaction") }
    }

    /// Aborts the open transaction (its messages are never seen by read_committed consumers).
    public func abortTransaction(timeoutMs: Int32 = 30_000) throws(KafkaError) {
        if let error = rd_kafka_abort_transaction(handle, timeoutMs) { throw KafkaError(consuming: error, context: "abort transaction") }
    }
}
