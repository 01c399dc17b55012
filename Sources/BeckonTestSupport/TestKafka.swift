import Beckon
import BeckonCore
import BeckonKafka
import Foundation
import Logging

/// Kafka helpers for tests: produce events, read a topic back completely.
public enum TestKafka {
    public static let logger = Logger(label: "beckon-test")

    /// Produces messages in order and waits for their acknowledgments.
    public static func produce(
        _ messages: [(key: String?, value: [UInt8], timestamp: Int64?)], topic: String, bootstrap: String, properties: [String: String] = [:]
    ) throws {
        var config = KafkaConfiguration(["bootstrap.servers": bootstrap])
        for (k, v) in properties { config[k] = v }
        let producer = try KafkaProducer.make(configuration: config, logger: logger)
        try producer.send(messages.map { OutgoingMessage(topic: topic, key: $0.key.map { Array($0.utf8) }, value: $0.value, timestamp: $0.timestamp) })
    }

    /// Reads `topic` from the start with a fresh group until at least `count` messages
    /// have arrived and every partition reached its end, or `timeout` passes.
    public static func readAll(topic: String, bootstrap: String, atLeast count: Int, timeout: TimeInterval = 60) throws -> [KafkaMessage] {
        let consumer = try KafkaConsumer.make(configuration: KafkaConfiguration([
            "bootstrap.servers": bootstrap, "group.id": "reader-\(UUID().uuidString.prefix(8))",
        ]), logger: logger)
        defer { consumer.close() }
        var assigned: Set<Int32> = []
        try consumer.subscribe([topic]) { event in
            if case .assigned(let tps) = event { for tp in tps { assigned.insert(tp.partition) } }
        }
        let partitions = try KafkaAdmin.partitionCount(topic: topic, configuration: KafkaConfiguration(["bootstrap.servers": bootstrap])) ?? 1
        var atEnd: Set<Int32> = []
        var messages: [KafkaMessage] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let event = consumer.poll(timeoutMs: 200) else { continue }
            switch event {
            case .message(let m):
                messages.append(m)
                atEnd.remove(m.partition)
            case .endOfPartition(let tp, _):
                atEnd.insert(tp.partition)
            case .error:
                continue
            }
            if messages.count >= count && atEnd.count == Int(partitions) { return messages }
        }
        return messages
    }

    /// The group's committed offsets and each partition's end (last offset + 1), per partition.
    /// The end is found by reading the topic: Tansu's `ListOffsets latest` answer is wrong.
    public static func committedAndEnd(topic: String, group: String, bootstrap: String, messages: Int) throws -> [Int32: (committed: Int64?, end: Int64)] {
        let config = KafkaConfiguration(["bootstrap.servers": bootstrap, "group.id": group])
        let all = try readAll(topic: topic, bootstrap: bootstrap, atLeast: messages)
        var ends: [Int32: Int64] = [:]
        for m in all { ends[m.partition] = max(ends[m.partition] ?? 0, m.offset + 1) }
        let consumer = try KafkaConsumer.make(configuration: config, logger: logger)
        defer { consumer.close() }
        let committed = try consumer.committed(ends.keys.map { TopicPartition(topic, $0) })
        var result: [Int32: (Int64?, Int64)] = [:]
        for (partition, end) in ends { result[partition] = (committed[TopicPartition(topic, partition)], end) }
        return result
    }
}

/// Runs a pipeline on its thread until it has drained its input (or `timeout`), and returns its summary.
public func runUntilDrained(_ pipeline: Pipeline, timeout: TimeInterval = 90) async throws -> RunSummary {
    let service = PipelineService(pipeline: pipeline, exit: .drained)
    try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            try await service.run()
            return true
        }
        group.addTask {
            try await Task.sleep(for: .seconds(timeout))
            return false
        }
        let finished = try await group.next()!
        if !finished {
            service.requestStop()
            _ = try await group.next()
            group.cancelAll()
            throw TestServicesError("the pipeline did not drain within \(Int(timeout)) s; summary: \(pipeline.summary)")
        }
        group.cancelAll()
    }
    return pipeline.summary
}

/// A JSON event as a tracker would send it.
public func eventJSON(
    id: String, type: String, visitor: String, ts: EventTime, path: String? = nil, channel: String = "web", extra: String = ""
) -> [UInt8] {
    var w = JSONWriter()
    w.raw("{\"event_id\":"); w.string(id)
    w.raw(",\"type\":"); w.string(type)
    w.raw(",\"visitor_id\":"); w.string(visitor)
    w.raw(",\"ts\":"); w.string(ts.rfc3339)
    w.raw(",\"channel\":"); w.string(channel)
    if let path {
        w.raw(",\"page\":{\"url\":"); w.string("https://shop.example" + path)
        w.raw(",\"path\":"); w.string(path)
        w.raw("}")
    }
    w.raw(extra)
    w.raw("}")
    return w.bytes
}
