import Beckon
import BeckonCore
import BeckonKafka
import BeckonPostgres
import BeckonTestSupport
import Foundation
import Testing

/// End to end through a real Tansu broker and a real PostgreSQL.
@Suite("Walking skeleton, end to end")
struct WalkingSkeletonTests {
    static let t0 = EventTime.parseRFC3339("2026-03-02T10:00:00Z")!
    static let rule = """
        id: payment-dwell
        when:
          dwell:
            page: /checkout/payment
            at_least: 3s
        action: offer_help
        payload:
          message: "Need a hand?"
        priority: 10
        expires_after: 2m
        """

    /// (key, event id, type, visitor, seconds after t0, path); `nil` type = a malformed message.
    static let stream: [(String, String, String?, Double, String?)] = [
        ("alice", "a1", "page_view", 0, "/"),
        ("bob", "b1", "page_view", 2, "/checkout/payment"),
        ("carol", "c1", "page_view", 5, "/checkout/payment"),
        ("dave", "d1", "page_view", 3, "/p/1"),
        ("bob", "b2", "page_view", 4, "/checkout/done"),  // left after 2 s: no decision
        ("carol", "c2", "page_ping", 10, "/checkout/payment"),
        ("eve", "x1", nil, 11, nil),  // not JSON: dead letter
        ("dave", "d2", "page_view", 12, "/checkout/shipping"),
        ("dave", "d3", "page_hidden", 14, "/checkout/shipping"),  // hidden after 2 s: no decision
        ("carol", "c3", "page_ping", 15, "/checkout/payment"),
        ("erin", "e1", "page_view", 20, "/checkout/payment"),
        ("carol", "c4", "page_view", 20, "/thanks"),
        ("erin", "e2", "page_view", 22.5, "/"),  // left after 2.5 s: no decision
        // alice's last event is the newest of the whole stream: her dwell can only fire
        // when the idle partition's watermark follows the wall clock.
        ("alice", "a2", "page_view", 30, "/checkout/payment"),
    ]

    static func messages() -> [(key: String?, value: [UInt8], timestamp: Int64?)] {
        stream.map { key, id, type, seconds, path in
            let ts = t0 + Millis(Int64(seconds * 1000))
            guard let type else { return (key, Array("{\"event_id\": \"x1\", not json".utf8), ts.milliseconds) }
            return (key, eventJSON(id: id, type: type, visitor: key, ts: ts, path: path), ts.milliseconds)
        }
    }

    func makePipeline(_ config: BeckonConfiguration) throws -> Pipeline {
        let rules = try RuleSet.load(files: [("payment-dwell.yaml", Self.rule)]).get()
        var config = config
        config.engine.allowedLateness = .seconds(1)
        config.engine.idleAfter = Millis(300)
        return Pipeline(configuration: config, rules: rules, logger: TestKafka.logger)
    }

    @Test("events in Tansu become exactly the expected decisions on the topic and in PostgreSQL")
    func decisionsEndToEnd() async throws {
        let services = try TestServices.shared()
        let database = try services.makeDatabase()
        let config = try services.configuration(database: database, partitions: 2)
        try TestKafka.produce(Self.messages(), topic: config.eventsTopic, bootstrap: services.kafkaBootstrap)

        let summary = try await runUntilDrained(try makePipeline(config))
        #expect(summary.eventsIn == Self.stream.count)
        #expect(summary.deadLetters == 1)
        #expect(summary.decisions == 2)

        // Expected: carol (stayed 15 s, fired at 5 + 3 s by event time) and alice (fired by the idle watermark).
        let expected: [(visitor: String, trigger: String, eventTime: EventTime)] = [
            ("alice", "a2", Self.t0 + .seconds(33)),
            ("carol", "c1", Self.t0 + .seconds(8)),
        ]
        let newest = Self.t0 + .seconds(30)
        #expect(expected[0].eventTime > newest, "alice's decision is later than every event: only the idle watermark can fire it")

        // On the decisions topic, keyed by visitor.
        let published = try TestKafka.readAll(topic: config.decisionsTopic, bootstrap: services.kafkaBootstrap, atLeast: 2)
        let decoded = try published.map { m -> (key: String, json: JSONValue) in
            (String(decoding: m.key ?? [], as: UTF8.self), try JSONParser.parse(m.value))
        }.sorted { $0.key < $1.key }
        #expect(decoded.count == 2)
        for (got, want) in zip(decoded, expected) {
            #expect(got.key == want.visitor)
            #expect(got.json["visitor_id"] == .string(want.visitor))
            #expect(got.json["decision_id"] == .string(Decision.makeID(visitorID: want.visitor, ruleID: "payment-dwell", trigger: want.trigger, at: want.eventTime)))
            #expect(got.json["trigger_event_id"] == .string(want.trigger))
            #expect(got.json["action"] == .string("offer_help"))
            #expect(got.json["rule_id"] == .string("payment-dwell"))
            #expect(got.json["event_time"] == .string(want.eventTime.rfc3339))
            #expect(got.json["expires_at"] == .string((want.eventTime + .minutes(2)).rfc3339))
            #expect(got.json["experiment"] == .string("treatment"))
            #expect(got.json["payload"]?["message"] == .string("Need a hand?"))
        }

        // In PostgreSQL, the same two.
        let db = try PostgresConnection.connect(database)
        let stored = try db.execute("""
            SELECT visitor_id, decision_id, trigger_event_id, rule_id, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS t
            FROM decisions ORDER BY visitor_id
            """).rows
        #expect(stored.count == 2)
        for (row, want) in zip(stored, expected) {
            #expect(row[0] == want.visitor)
            #expect(row[1] == Decision.makeID(visitorID: want.visitor, ruleID: "payment-dwell", trigger: want.trigger, at: want.eventTime))
            #expect(row[2] == want.trigger)
            #expect(row[3] == "payment-dwell")
            #expect(row[4] == want.eventTime.rfc3339)
        }

        // The malformed message: untouched on the dead-letter topic, with its reason; and in dead_letters.
        let letters = try TestKafka.readAll(topic: config.deadLetterTopic, bootstrap: services.kafkaBootstrap, atLeast: 1)
        #expect(letters.count == 1)
        #expect(letters.first?.value == Array("{\"event_id\": \"x1\", not json".utf8))
        let dead = try db.execute("SELECT reason_code, reason_path, reason FROM dead_letters").rows
        #expect(dead.count == 1)
        #expect(dead.first?[0] == "invalid_json")
        #expect(dead.first?[2]?.contains("invalid JSON at byte") == true)

        // Every input offset is committed, and only after the outputs were durable.
        let offsets = try TestKafka.committedAndEnd(topic: config.eventsTopic, group: config.kafka["group.id"]!, bootstrap: services.kafkaBootstrap, messages: Self.stream.count)
        #expect(offsets.values.reduce(0) { $0 + $1.end } == Int64(Self.stream.count))
        for (partition, o) in offsets {
            #expect(o.committed == o.end, "partition \(partition): committed \(String(describing: o.committed)), end \(o.end)")
        }
    }

    @Test("reprocessing the same events yields the same decision ids and no new PostgreSQL rows")
    func replayIsIdempotent() async throws {
        let services = try TestServices.shared()
        let database = try services.makeDatabase()
        var config = try services.configuration(database: database, partitions: 2)
        try TestKafka.produce(Self.messages(), topic: config.eventsTopic, bootstrap: services.kafkaBootstrap)

        let first = try await runUntilDrained(try makePipeline(config))
        // A second group reads the same partitions from the start, as after losing all offsets.
        config.kafka["group.id"] = config.kafka["group.id"]! + "-replay"
        let second = try await runUntilDrained(try makePipeline(config))
        #expect(first.decisions == 2)
        #expect(second.decisions == 2)

        let db = try PostgresConnection.connect(database)
        let count = try db.execute("SELECT count(*), count(DISTINCT decision_id) FROM decisions").rows[0]
        #expect(count == ["2", "2"])
        // At-least-once on the topic: the replay published the same ids again, and that is measurable.
        let published = try TestKafka.readAll(topic: config.decisionsTopic, bootstrap: services.kafkaBootstrap, atLeast: 4)
        let ids = try published.map { m -> String in
            guard case .string(let id)? = try JSONParser.parse(m.value)["decision_id"] else { return "" }
            return id
        }
        #expect(ids.count == 4)
        #expect(Set(ids).count == 2)
    }
}
