import Beckon
import BeckonCore
import BeckonKafka
import BeckonPostgres
import BeckonTestSupport
import Foundation
import Prometheus
import Testing

/// Bad input never stops Beckon and is never lost: each refused message lands on the
/// dead-letter topic untouched, with its reason, and in `dead_letters`.
@Suite("Dead letters, end to end")
struct DeadLetterTests {
    static let t0 = wallClockNow() - .minutes(5)

    static func good(_ id: String, _ visitor: String, at seconds: Int64, _ path: String) -> (String?, [UInt8], String?) {
        (visitor, eventJSON(id: id, type: "page_view", visitor: visitor, ts: t0 + .seconds(seconds), path: path), nil)
    }

    /// (key, bytes, expected reason code — nil for a good event).
    static func stream() -> [(key: String?, value: [UInt8], code: String?)] {
        let sample = eventJSON(id: "s", type: "page_view", visitor: "vb", ts: t0, path: "/")
        var invalidUTF8 = Array(#"{"event_id":"b3","type":"page_view","visitor_id":"vb","ts":1,"page":{"path":"/"#.utf8)
        invalidUTF8 += [0xFF, 0xFE]
        invalidUTF8 += Array(#""}}"#.utf8)
        let padding = String(repeating: "x", count: 1_048_576)
        let huge = Array(#"{"event_id":"b4","type":"page_view","visitor_id":"vb","ts":1,"pad":"\#(padding)"}"#.utf8)
        let farFuture = eventJSON(id: "b9", type: "page_view", visitor: "vb", ts: EventTime.parseRFC3339("2100-01-01T00:00:00Z")!, path: "/")
        // "ts":1 would be refused for its clock skew before anything else is checked.
        func text(_ s: String) -> [UInt8] { Array(s.replacing("\"ts\":1,", with: "\"ts\":\(t0.milliseconds),").replacing("\"ts\":1}", with: "\"ts\":\(t0.milliseconds)}").utf8) }
        return [
            good("g1", "alice", at: 0, "/"),
            ("vb", Array(sample.prefix(sample.count / 2)), "invalid_json"),  // truncated JSON
            good("g2", "bob", at: 1, "/"),
            ("vb", text("hello, this is not JSON"), "invalid_json"),
            ("vb", invalidUTF8, "invalid_utf8"),
            good("g3", "alice", at: 2, "/checkout/payment"),
            ("vb", huge, "too_large"),  // 1 MB payload
            ("vb", text(#"{"event_id":"b5","type":"page_view","ts":1,"page":{"path":"/"}}"#), "missing_field"),  // no visitor_id
            ("mallory", text(#"{"event_id":"b6","type":"page_view","visitor_id":"vb","ts":1,"page":{"path":"/"}}"#), "key_mismatch"),
            good("g4", "carol", at: 3, "/"),
            ("vb", text(#"{"event_id":"b7","type":"teleport","visitor_id":"vb","ts":1}"#), "unknown_type"),
            ("vb", text(#"{"event_id":"b8","type":"add_to_cart","visitor_id":"vb","ts":1,"properties":{"sku":"s","price":"cheap"}}"#), "wrong_type"),
            ("vb", farFuture, "invalid_ts"),  // ts decades ahead of the broker's clock
            good("g5", "bob", at: 4, "/checkout/payment"),
            ("vb", text(#"{"event_id":"b10","type":"page_view","visitor_id":"vb","ts":-1000,"page":{"path":"/"}}"#), "invalid_ts"),
            ("vb", text(#"{"event_id":"b11","type":"page_view","visitor_id":"vb","ts":1,"page":"/checkout"}"#), "wrong_type"),
            ("vb", [], "empty"),
            ("vb", text("null"), "wrong_type"),
            good("g6", "carol", at: 5, "/p/1"),
        ]
    }

    @Test("every bad message is dead-lettered with its reason, every good one processed, every offset committed")
    func badInputIsNeverLost() async throws {
        let services = try TestServices.shared()
        let database = try services.makeDatabase()
        var config = try services.configuration(database: database, partitions: 2)
        config.engine.idleAfter = Millis(300)
        let stream = Self.stream()
        let huge = try #require(stream.first { $0.code == "too_large" }).value
        #expect(huge.count > 1_048_576)
        let bad = stream.filter { $0.code != nil }
        #expect(bad.count == 13)
        try TestKafka.produce(stream.map { ($0.key, $0.value, nil) }, topic: config.eventsTopic, bootstrap: services.kafkaBootstrap,
                              properties: ["message.max.bytes": "4194304"])

        let rules = try RuleSet.load(files: [("pay.yaml", "id: pay\nwhen:\n  dwell:\n    page: /checkout/payment\n    at_least: 1s\naction: offer_help\npayload:\n  message: hi\n")]).get()
        let registry = PrometheusCollectorRegistry()
        let summary = try await runUntilDrained(Pipeline(
            configuration: config, rules: rules, logger: TestKafka.logger, metrics: PrometheusMetricsFactory(registry: registry)))
        #expect(summary.eventsIn == stream.count)
        #expect(summary.deadLetters == bad.count)
        // The good events around the bad ones were processed: both payment-page dwells decided.
        #expect(summary.decisions == 2)

        // Where each message landed: read the input back and match by bytes.
        let input = try TestKafka.readAll(topic: config.eventsTopic, bootstrap: services.kafkaBootstrap, atLeast: stream.count)
        #expect(input.count == stream.count)

        let letters = try TestKafka.readAll(topic: config.deadLetterTopic, bootstrap: services.kafkaBootstrap, atLeast: bad.count)
        #expect(letters.count == bad.count)
        let db = try PostgresConnection.connect(database)
        for entry in bad {
            let source = try #require(input.first { $0.value == entry.value }, "a bad message is missing from the input topic")
            let letter = letters.first { $0.value == entry.value }
            #expect(letter != nil, "not on the dead-letter topic: \(entry.code!) (\(entry.value.count) bytes)")
            #expect(letter?.key == entry.key.map { Array($0.utf8) })
            #expect(letter?.header("beckon.reason_code") == entry.code)
            #expect(letter?.header("beckon.source") == "\(config.eventsTopic)/\(source.partition)/\(source.offset)")
            #expect(letter?.header("beckon.reason")?.isEmpty == false)
            let rows = try db.execute(
                "SELECT reason_code, reason_path, reason, payload_bytes FROM dead_letters WHERE source_topic = $1 AND source_partition = $2 AND source_offset = $3",
                [config.eventsTopic, String(source.partition), String(source.offset)]).rows
            #expect(rows.count == 1)
            #expect(rows.first?[0] == entry.code)
            #expect(rows.first?[3] == String(entry.value.count))
        }
        // The reasons name the problem.
        let reasons = try db.execute("SELECT reason_path || ': ' || reason FROM dead_letters ORDER BY reason").rows.compactMap { $0[0] }
        #expect(reasons.contains { $0.hasPrefix("$.visitor_id: required field is missing") })
        #expect(reasons.contains { $0.hasPrefix("$.visitor_id: Kafka key 'mallory' differs from visitor_id 'vb'") })
        #expect(reasons.contains { $0.hasPrefix("$.type: unknown event type 'teleport'") })
        #expect(reasons.contains { $0.hasPrefix("$.properties.price: expected a number, found string") })
        #expect(reasons.contains { $0.hasPrefix("$.page: expected an object, found string") })
        #expect(reasons.contains { $0.hasPrefix("$.ts: epoch milliseconds must be a non-negative integer") })
        #expect(reasons.contains { $0.hasPrefix("$.ts: 2100-01-01T00:00:00.000Z is") })
        #expect(reasons.contains { $0.hasPrefix("$: payload of \(huge.count) bytes exceeds the limit of 65536") })
        #expect(reasons.contains { $0 == "$: empty message" })

        // The metric counts dead letters by reason.
        let exposition = registry.emitToString()
        var expected: [String: Int] = [:]
        for entry in bad { expected[entry.code!, default: 0] += 1 }
        for (reason, count) in expected {
            #expect(exposition.contains("beckon_dead_letters_total{reason=\"\(reason)\"} \(count)\n"), "metric for \(reason) in:\n\(exposition)")
        }
        #expect(exposition.contains("beckon_events_total \(stream.count)\n"))
        // The state in memory is exported at each commit: the good events' visitors, applied or held.
        func gauge(_ name: String) -> Double? {
            exposition.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        #expect((gauge("beckon_visitors") ?? 0) + (gauge("beckon_held_events") ?? 0) >= 1, "in:\n\(exposition)")
        #expect(gauge("beckon_compact_visitors") != nil)

        let offsets = try TestKafka.committedAndEnd(topic: config.eventsTopic, group: config.kafka["group.id"]!, bootstrap: services.kafkaBootstrap, messages: stream.count)
        #expect(offsets.values.reduce(0) { $0 + $1.end } == Int64(stream.count))
        for (partition, o) in offsets {
            #expect(o.committed == o.end, "partition \(partition): committed \(String(describing: o.committed)), end \(o.end)")
        }
    }
}
