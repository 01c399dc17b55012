import CRdKafka

/// An error from Kafka (librdkafka), safe to log: it never contains payloads or credentials.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// librdkafka's error code (`rd_kafka_resp_err_t`), as a value with named constants.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        init(_ err: rd_kafka_resp_err_t) { self.rawValue = err.rawValue }

        public static let configuration = Code(rawValue: -10_000)
        public static let timedOut = Code(RD_KAFKA_RESP_ERR__TIMED_OUT)
        public static let queueFull = Code(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        public static let topicAlreadyExists = Code(RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        public static let transport = Code(RD_KAFKA_RESP_ERR__TRANSPORT)
        public static let allBrokersDown = Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        public static let unknownTopicOrPartition = Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)

        public var description: String {
            rawValue == Code.configuration.rawValue ? "configuration" : String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: rawValue)))
        }
    }

    public var code: Code
    public var message: String
    /// Where it happened, e.g. `produce beckon.decisions` or `commit beckon.events[3]@120`.
    public var context: String
    public var isRetriable: Bool

    public init(code: Code, message: String, context: String, isRetriable: Bool = false) {
        self.code = code
        self.message = message
        self.context = context
        self.isRetriable = isRetriable
    }

    init(_ err: rd_kafka_resp_err_t, context: String) {
        self.init(
            code: Code(err), message: String(cString: rd_kafka_err2str(err)), context: context,
            isRetriable: [RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__QUEUE_FULL,
                          RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                          RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                          RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_NOT_COORDINATOR].contains(err))
    }

    /// Takes ownership of an `rd_kafka_error_t` and destroys it.
    init(consuming error: OpaquePointer, context: String) {
        let code = rd_kafka_error_code(error)
        self.init(code, context: context)
        self.message = String(cString: rd_kafka_error_string(error))
        self.isRetriable = self.isRetriable || rd_kafka_error_is_retriable(error) != 0
        rd_kafka_error_destroy(error)
    }

    public var description: String { "Kafka \(context): \(message) (\(code))" }
}

/// librdkafka properties, passed through untouched (`bootstrap.servers`, `security.protocol`, ...).
public struct KafkaConfiguration: Sendable, Equatable {
    public var properties: [String: String]

    public init(_ properties: [String: String] = [:]) { self.properties = properties }

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// Builds an `rd_kafka_conf_t`; the caller owns it until `rd_kafka_new` takes it.
    func makeConf(context: String) throws(KafkaError) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(code: .configuration, message: "property '\(key)': \(errstr.nulTerminatedString)", context: context)
            }
        }
        return conf
    }
}

/// A topic partition and, where it matters, an offset.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)[\(partition)]" }
}

/// Owns an `rd_kafka_topic_partition_list_t`.
final class PartitionList {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(_ entries: [(TopicPartition, Int64?)]) {
        pointer = rd_kafka_topic_partition_list_new(Int32(max(entries.count, 1)))
        for (tp, offset) in entries {
            let element = rd_kafka_topic_partition_list_add(pointer, tp.topic, tp.partition)!
            if let offset { element.pointee.offset = offset }
        }
    }

    deinit { rd_kafka_topic_partition_list_destroy(pointer) }

    static func entries(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [(TopicPartition, Int64, rd_kafka_resp_err_t)] {
        (0..<Int(list.pointee.cnt)).map { i in
            let e = list.pointee.elems[i]
            return (TopicPartition(String(cString: e.topic), e.partition), e.offset, e.err)
        }
    }
}

/// librdkafka's version string, e.g. `2.8.0`.
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

extension [CChar] {
    /// The text of a NUL-terminated error buffer filled in by librdkafka.
    var nulTerminatedString: String {
        let end = firstIndex(of: 0) ?? count
        return String(decoding: self[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
