import CRdKafka
import Logging

/// A consumed message, copied out of librdkafka's buffers.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    /// Message timestamp in epoch milliseconds, if the broker gave one.
    public var timestamp: Int64?
    /// Headers in order (names may repeat).
    public var headers: [(String, [UInt8])] = []

    /// The value of the first header with this name, as text.
    public func header(_ name: String) -> String? {
        headers.first { $0.0 == name }.map { String(decoding: $0.1, as: UTF8.self) }
    }

    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }
}

/// What one poll of the consumer brought.
public enum ConsumerEvent: Sendable {
    case message(KafkaMessage)
    /// The consumer has read everything up to `offset` (the partition's end for now).
    case endOfPartition(TopicPartition, offset: Int64)
    case error(KafkaError)
}

/// A change of the partitions this consumer owns, reported while `poll` runs.
public enum RebalanceEvent: Sendable {
    case assigned([TopicPartition])
    /// `lost` is true when the partitions were taken away without a clean handover
    /// (session timeout): offsets must not be committed for them.
    case revoked([TopicPartition], lost: Bool)
}

/// Holds the rebalance handler; librdkafka calls back into it on the polling thread.
final class RebalanceBox: @unchecked Sendable {
    // @unchecked: written before `subscribe` and read only on the polling thread.
    var handler: ((RebalanceEvent) -> Void)?
    /// Asked before newly assigned partitions start: offsets to start them at (others
    /// start at the committed offset).
    var startOffsets: (([TopicPartition]) -> [TopicPartition: Int64])?
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
}

/// A Kafka consumer in a consumer group with manual offset commits.
///
/// Defaults suited to Beckon and to Tansu's measured behaviour (DESIGN.md): no automatic
/// commits or offset stores, `auto.offset.reset=earliest` (Tansu's `latest` is wrong),
/// short session timeouts (group joins take about half of `session.timeout.ms`), and the
/// cooperative-sticky assignor so partitions that do not move keep flowing.
///
/// - Important: not thread-safe: one thread polls, commits and handles rebalances.
public final class KafkaConsumer: @unchecked Sendable {
    // @unchecked: used from one dedicated thread at a time, documented above.
    private let handle: OpaquePointer
    private let box: RebalanceBox
    private let logger: Logger
    private var closed = false

    public static let defaultProperties: [String: String] = [
        "group.id": "beckon",
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "500",
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": "true",
    ]

    private init(handle: OpaquePointer, box: RebalanceBox, logger: Logger) {
        self.handle = handle
        self.box = box
        self.logger = logger
    }

    /// - Parameter configuration: librdkafka properties; they override `defaultProperties`.
    public static func make(configuration: KafkaConfiguration, logger: Logger) throws(KafkaError) -> KafkaConsumer {
        var merged = KafkaConfiguration(defaultProperties)
        for (key, value) in configuration.properties { merged[key] = value }
        // Producer-only properties an operator may share with the producer section.
        for key in ["enable.idempotence", "acks", "linger.ms", "compression.type", "transactional.id", "batch.size"] {
            merged.properties[key] = nil
        }
        let conf = try merged.makeConf(context: "consumer configuration")
        let box = RebalanceBox(logger: logger)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(box).toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
            guard let rk, let partitions, let opaque else { return }
            let box = Unmanaged<RebalanceBox>.fromOpaque(opaque).takeUnretainedValue()
            let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
            let list = PartitionList.entries(partitions).map(\.0)
            if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                if let startOffsets = box.startOffsets?(list), !startOffsets.isEmpty {
                    for i in 0..<Int(partitions.pointee.cnt) {
                        let e = partitions.pointee.elems[i]
                        if let offset = startOffsets[TopicPartition(String(cString: e.topic), e.partition)] {
                            partitions.pointee.elems[i].offset = offset
                        }
                    }
                }
                if cooperative {
                    if let error = rd_kafka_incremental_assign(rk, partitions) {
                        box.logger.error("incremental assign failed", metadata: ["beckon.error": "\(KafkaError(consuming: error, context: "assign"))"])
                    }
                } else {
                    rd_kafka_assign(rk, partitions)
                }
                box.handler?(.assigned(list))
            } else {
                let lost = rd_kafka_assignment_lost(rk) != 0
                box.handler?(.revoked(list, lost: lost))
                if cooperative {
                    if let error = rd_kafka_incremental_unassign(rk, partitions) {
                        box.logger.error("incremental unassign failed", metadata: ["beckon.error": "\(KafkaError(consuming: error, context: "unassign"))"])
                    }
                } else {
                    rd_kafka_assign(rk, nil)
                }
            }
        }
        var errstr = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: .configuration, message: errstr.nulTerminatedString, context: "create consumer")
        }
        rd_kafka_poll_set_consumer(handle)
        return KafkaConsumer(handle: handle, box: box, logger: logger)
    }

    deinit {
        close()
        rd_kafka_destroy(handle)
    }

    /// Joins the group for these topics. `handler` is called on the polling thread, inside
    /// `poll`, before partitions are taken away (so work can be flushed and committed) and
    /// after new ones are assigned.
    ///
    /// `startOffsets`, if given, is asked before new partitions start, and may name an
    /// offset to start each at instead of the committed one (to re-read for recovery).
    public func subscribe(
        _ topics: [String], startOffsets: (([TopicPartition]) -> [TopicPartition: Int64])? = nil,
        onRebalance handler: @escaping (RebalanceEvent) -> Void
    ) throws(KafkaError) {
        box.handler = handler
        box.startOffsets = startOffsets
        let list = PartitionList(topics.map { (TopicPartition($0, RD_KAFKA_PARTITION_UA), nil) })
        let err = rd_kafka_subscribe(handle, list.pointer)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "subscribe \(topics)") }
    }

    /// Waits up to `timeoutMs` for the next message or event.
    public func poll(timeoutMs: Int32) -> ConsumerEvent? {
        guard let message = rd_kafka_consumer_poll(handle, timeoutMs) else { return nil }
        defer { rd_kafka_message_destroy(message) }
        let m = message.pointee
        let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
            return .endOfPartition(TopicPartition(topic, m.partition), offset: m.offset)
        }
        if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            return .error(KafkaError(m.err, context: "consume \(topic)[\(m.partition)]"))
        }
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(message, &type)
        var headers: [(String, [UInt8])] = []
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var i = 0
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                headers.append((name.map { String(cString: $0) } ?? "", bytes))
                i += 1
            }
        }
        return .message(KafkaMessage(
            topic: topic, partition: m.partition, offset: m.offset, key: key, value: value,
            timestamp: type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : ts, headers: headers))
    }

    /// Commits the given next-offsets (last processed + 1) synchronously.
    /// The group's metadata for `send_offsets_to_transaction`; the caller destroys it.
    func groupMetadata() -> OpaquePointer {
        rd_kafka_consumer_group_metadata(handle)
    }

    public func commit(_ offsets: [TopicPartition: Int64]) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let list = PartitionList(offsets.sorted { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }.map { ($0.key, $0.value) })
        let err = rd_kafka_commit(handle, list.pointer, 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
            throw KafkaError(err, context: "commit \(offsets.count) partitions")
        }
    }

    /// The group's committed next-offsets; partitions with none are absent.
    public func committed(_ partitions: [TopicPartition], timeoutMs: Int32 = 10_000) throws(KafkaError) -> [TopicPartition: Int64] {
        let list = PartitionList(partitions.map { ($0, nil) })
        let err = rd_kafka_committed(handle, list.pointer, timeoutMs)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "read committed offsets") }
        var result: [TopicPartition: Int64] = [:]
        for (tp, offset, _) in PartitionList.entries(list.pointer) where offset >= 0 { result[tp] = offset }
        return result
    }

    /// Stops fetching from these partitions until `resume`; the group membership stays.
    public func pause(_ partitions: [TopicPartition]) throws(KafkaError) {
        let list = PartitionList(partitions.map { ($0, nil) })
        let err = rd_kafka_pause_partitions(handle, list.pointer)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "pause") }
    }

    public func resume(_ partitions: [TopicPartition]) throws(KafkaError) {
        let list = PartitionList(partitions.map { ($0, nil) })
        let err = rd_kafka_resume_partitions(handle, list.pointer)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "resume") }
    }

    /// The partitions currently assigned to this consumer.
    public func assignment() throws(KafkaError) -> [TopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let err = rd_kafka_assignment(handle, &list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "assignment") }
        guard let list else { return [] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return PartitionList.entries(list).map(\.0)
    }

    /// Leaves the group cleanly (revoking partitions through the handler first).
    public func close() {
        guard !closed else { return }
        closed = true
        let err = rd_kafka_consumer_close(handle)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("consumer close: \(String(cString: rd_kafka_err2str(err)))")
        }
    }
}

/// Topic administration and metadata queries.
public enum KafkaAdmin {
    public struct TopicSpec: Sendable {
        public var name: String
        public var partitions: Int32
        public var config: [String: String]
        public init(name: String, partitions: Int32, config: [String: String] = [:]) {
            self.name = name
            self.partitions = partitions
            self.config = config
        }
    }

    /// Creates the topics that do not exist yet.
    /// - Returns: the names of the topics that were created (existing ones are left as they are).
    @discardableResult
    public static func createTopics(_ topics: [TopicSpec], configuration: KafkaConfiguration, timeoutMs: Int32 = 30_000) throws(KafkaError) -> [String] {
        let handle = try makeHandle(configuration)
        defer { rd_kafka_destroy(handle) }
        var errstr = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for t in newTopics { rd_kafka_NewTopic_destroy(t) } }
        for spec in topics {
            guard let nt = rd_kafka_NewTopic_new(spec.name, spec.partitions, 1, &errstr, errstr.count) else {
                throw KafkaError(code: .configuration, message: errstr.nulTerminatedString, context: "topic \(spec.name)")
            }
            for (key, value) in spec.config.sorted(by: { $0.key < $1.key }) {
                let err = rd_kafka_NewTopic_set_config(nt, key, value)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "topic \(spec.name) config \(key)") }
            }
            newTopics.append(nt)
        }
        let queue = rd_kafka_queue_new(handle)
        defer { rd_kafka_queue_destroy(queue) }
        newTopics.withUnsafeMutableBufferPointer { rd_kafka_CreateTopics(handle, $0.baseAddress, $0.count, nil, queue) }
        guard let event = rd_kafka_queue_poll(queue, timeoutMs) else {
            throw KafkaError(code: .timedOut, message: "no answer within \(timeoutMs) ms", context: "create topics", isRetriable: true)
        }
        defer { rd_kafka_event_destroy(event) }
        if rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(rd_kafka_event_error(event), context: "create topics")
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else { return [] }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return [] }
        var created: [String] = []
        for i in 0..<count {
            let r = results[i]
            let name = String(cString: rd_kafka_topic_result_name(r))
            let err = rd_kafka_topic_result_error(r)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                created.append(name)
            } else if err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                let message = rd_kafka_topic_result_error_string(r).map { String(cString: $0) } ?? ""
                throw KafkaError(code: .init(err), message: message, context: "create topic \(name)")
            }
        }
        return created
    }

    /// The number of partitions of a topic (nil if it does not exist).
    public static func partitionCount(topic: String, configuration: KafkaConfiguration, timeoutMs: Int32 = 10_000) throws(KafkaError) -> Int32? {
        let handle = try makeHandle(configuration)
        defer { rd_kafka_destroy(handle) }
        let rkt = rd_kafka_topic_new(handle, topic, nil)
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, rkt, &metadata, timeoutMs)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "metadata \(topic)") }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard let metadata, metadata.pointee.topic_cnt > 0 else { return nil }
        let t = metadata.pointee.topics[0]
        if t.err != RD_KAFKA_RESP_ERR_NO_ERROR { return nil }
        return t.partition_cnt
    }

    /// Low and high (next) offsets of a partition, asked of the broker.
    public static func watermarks(_ tp: TopicPartition, configuration: KafkaConfiguration, timeoutMs: Int32 = 10_000) throws(KafkaError) -> (low: Int64, high: Int64) {
        let handle = try makeHandle(configuration)
        defer { rd_kafka_destroy(handle) }
        var low: Int64 = 0, high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(handle, tp.topic, tp.partition, &low, &high, timeoutMs)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "watermarks \(tp)") }
        return (low, high)
    }

    private static func makeHandle(_ configuration: KafkaConfiguration) throws(KafkaError) -> OpaquePointer {
        var props = KafkaConfiguration()
        for (key, value) in configuration.properties where !KafkaConsumer.defaultProperties.keys.contains(key) && key != "enable.idempotence" {
            props[key] = value
        }
        let conf = try props.makeConf(context: "admin configuration")
        var errstr = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: .configuration, message: errstr.nulTerminatedString, context: "create admin client")
        }
        return handle
    }
}
