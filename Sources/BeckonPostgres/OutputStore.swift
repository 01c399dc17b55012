import BeckonCore
import Logging

/// Writes Beckon's outputs to PostgreSQL in batches, idempotently: a row that is already
/// there (same `decision_id`, same dead-letter offset) is left alone, so reprocessing a
/// partition after a crash never duplicates anything.
public struct OutputStore: Sendable {
    /// Rows per INSERT statement (libpq allows 65,535 parameters per statement).
    public static let rowsPerStatement = 1000

    public init() {}

    public struct Written: Sendable, Equatable {
        public var decisions = 0
        public var deadLetters = 0
        public var suppressions = 0
    }

    /// Where a partition's state must be rebuilt from, as of a committed offset.
    public struct PartitionState: Sendable, Equatable {
        public var group: String
        public var topic: String
        public var partition: Int32
        public var committedOffset: Int64
        public var rebuildFrom: Int64

        public init(group: String, topic: String, partition: Int32, committedOffset: Int64, rebuildFrom: Int64) {
            self.group = group
            self.topic = topic
            self.partition = partition
            self.committedOffset = committedOffset
            self.rebuildFrom = rebuildFrom
        }
    }

    /// Stores decisions, dead letters and partition rebuild points in one transaction.
    /// - Returns: how many rows were new.
    @discardableResult
    public func write(
        decisions: [(Decision, source: TopicPartitionRef?)], deadLetters: [DeadLetter], suppressions: [(SuppressedFiring, source: TopicPartitionRef?)] = [],
        rules: [Rule] = [], partitions: [PartitionState] = [], on connection: PostgresConnection
    ) throws(PostgresError) -> Written {
        guard !decisions.isEmpty || !deadLetters.isEmpty || !suppressions.isEmpty || !rules.isEmpty || !partitions.isEmpty else { return Written() }
        var written = Written()
        try connection.execute("BEGIN", context: "begin output batch")
        do {
            for chunk in decisions.chunked(Self.rowsPerStatement) {
                written.decisions += try insertDecisions(chunk, on: connection)
            }
            for chunk in deadLetters.chunked(Self.rowsPerStatement) {
                written.deadLetters += try insertDeadLetters(chunk, on: connection)
            }
            for chunk in suppressions.chunked(Self.rowsPerStatement) {
                written.suppressions += try insertSuppressions(chunk, on: connection)
            }
            for rule in rules {
                try connection.execute("""
                    INSERT INTO rule_versions (rule_id, rule_version, file, body) VALUES ($1, $2, $3, $4)
                    ON CONFLICT DO NOTHING
                    """, [rule.id, rule.version, rule.file, rule.sourceText], context: "store rule version")
            }
            for state in partitions {
                try connection.execute("""
                    INSERT INTO beckon_partition_state (group_id, topic, partition, committed_offset, rebuild_from)
                    VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (group_id, topic, partition) DO UPDATE
                    SET committed_offset = EXCLUDED.committed_offset, rebuild_from = EXCLUDED.rebuild_from, updated_at = now()
                    """, [state.group, state.topic, String(state.partition), String(state.committedOffset), String(state.rebuildFrom)],
                    context: "store partition rebuild point")
            }
            try connection.execute("COMMIT", context: "commit output batch")
        } catch {
            _ = try? connection.execute("ROLLBACK")
            throw error
        }
        return written
    }

    /// The stored rebuild point of a partition, if any.
    public func partitionState(group: String, topic: String, partition: Int32, on connection: PostgresConnection) throws(PostgresError) -> PartitionState? {
        let rows = try connection.execute(
            "SELECT committed_offset, rebuild_from FROM beckon_partition_state WHERE group_id = $1 AND topic = $2 AND partition = $3",
            [group, topic, String(partition)], context: "read partition rebuild point").rows
        guard let row = rows.first, let committed = row[0].flatMap({ Int64($0) }), let from = row[1].flatMap({ Int64($0) }) else { return nil }
        return PartitionState(group: group, topic: topic, partition: partition, committedOffset: committed, rebuildFrom: from)
    }

    private func insertDecisions(_ rows: ArraySlice<(Decision, source: TopicPartitionRef?)>, on connection: PostgresConnection) throws(PostgresError) -> Int {
        let columns = ["decision_id", "visitor_id", "user_hash", "action", "rule_id", "rule_version", "intent", "reason", "payload",
                       "channel", "event_time", "decided_at", "expires_at", "trigger_event_id", "experiment", "source_topic", "source_partition"]
        var parameters: [String?] = []
        parameters.reserveCapacity(rows.count * columns.count)
        for (d, source) in rows {
            var intent = JSONWriter()
            intent.value(.object(d.intent.map { ($0.0, .number($0.1)) }))
            var payload = JSONWriter()
            payload.value(.object(d.payload.map { ($0.0, .string($0.1)) }))
            parameters += [
                d.id, d.visitorID, d.userID.map { StableHash.hex("user", $0) }, d.action.rawValue, d.ruleID, d.ruleVersion,
                String(decoding: intent.bytes, as: UTF8.self), d.reason, String(decoding: payload.bytes, as: UTF8.self),
                d.channel, d.eventTime.rfc3339, d.decidedAt.rfc3339, d.expiresAt.rfc3339, d.triggerEventID, d.experiment.rawValue,
                source?.topic, source.map { String($0.partition) },
            ]
        }
        let sql = "INSERT INTO decisions (\(columns.joined(separator: ", "))) VALUES \(placeholders(rows: rows.count, columns: columns.count)) ON CONFLICT (decision_id) DO NOTHING"
        return try connection.execute(sql, parameters, context: "insert \(rows.count) decisions").affected
    }

    private func insertSuppressions(_ rows: ArraySlice<(SuppressedFiring, source: TopicPartitionRef?)>, on connection: PostgresConnection) throws(PostgresError) -> Int {
        let columns = ["suppression_id", "visitor_id", "rule_id", "rule_version", "action", "reason", "event_time", "trigger_event_id",
                       "source_topic", "source_partition"]
        var parameters: [String?] = []
        for (s, source) in rows {
            parameters += [
                s.id, s.visitorID, s.ruleID, s.ruleVersion, s.action.rawValue, s.reason.rawValue, s.eventTime.rfc3339, s.triggerEventID,
                source?.topic, source.map { String($0.partition) },
            ]
        }
        let sql = "INSERT INTO suppressions (\(columns.joined(separator: ", "))) VALUES \(placeholders(rows: rows.count, columns: columns.count)) ON CONFLICT (suppression_id) DO NOTHING"
        return try connection.execute(sql, parameters, context: "insert \(rows.count) suppressions").affected
    }

    private func insertDeadLetters(_ rows: ArraySlice<DeadLetter>, on connection: PostgresConnection) throws(PostgresError) -> Int {
        let columns = ["source_topic", "source_partition", "source_offset", "kafka_timestamp", "reason_code", "reason_path", "reason", "payload_bytes"]
        var parameters: [String?] = []
        for l in rows {
            parameters += [
                l.topic, String(l.partition), String(l.offset), l.kafkaTimestamp.map { EventTime(milliseconds: $0).rfc3339 },
                l.failure.code, l.failure.path, l.failure.message, String(l.payloadBytes),
            ]
        }
        let sql = "INSERT INTO dead_letters (\(columns.joined(separator: ", "))) VALUES \(placeholders(rows: rows.count, columns: columns.count)) ON CONFLICT DO NOTHING"
        return try connection.execute(sql, parameters, context: "insert \(rows.count) dead letters").affected
    }

    private func placeholders(rows: Int, columns: Int) -> String {
        (0..<rows).map { r in "(" + (1...columns).map { "$\(r * columns + $0)" }.joined(separator: ", ") + ")" }.joined(separator: ", ")
    }
}

/// Where a decision's triggering input came from.
public struct TopicPartitionRef: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
