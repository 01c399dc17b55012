import Beckon
import BeckonCore
import BeckonKafka
import BeckonPostgres
import BeckonTestSupport
import Foundation
import Testing

@Suite("Recovery after a restart")
struct RecoveryTests {
    static let t0 = EventTime.parseRFC3339("2026-03-02T10:00:00Z")!

    static func event(_ visitor: String, _ id: String, _ type: String, at seconds: Double, _ path: String?, extra: String = "") -> (key: String?, value: [UInt8], timestamp: Int64?) {
        let ts = t0 + Millis(Int64(seconds * 1000))
        return (visitor, eventJSON(id: id, type: type, visitor: visitor, ts: ts, path: path, extra: extra), ts.milliseconds)
    }

    /// Before the restart: alice reaches the payment page and fills her cart; her
    /// 10-minute dwell is still pending when the first instance stops.
    static let before = [
        event("alice", "a1", "page_view", at: 0, "/checkout/payment"),
        event("alice", "a2", "add_to_cart", at: 1, "/checkout/payment", extra: #","properties":{"sku":"s1","price":250,"quantity":2}"#),
        event("carol", "c1", "page_view", at: 2, "/pricing"),
        event("alice", "a3", "hover", at: 3, "/checkout/payment", extra: #","properties":{"element":"total","target":"price"}"#),
    ]
    /// After: bob's event moves the watermark past alice's dwell; carol reaches payment.
    static let after = [
        event("bob", "b1", "page_view", at: 660, "/"),
        event("carol", "c2", "page_view", at: 661, "/checkout/payment"),
        event("bob", "b2", "page_view", at: 1300, "/p/1"),
    ]

    func pipeline(_ config: BeckonConfiguration) throws -> Pipeline {
        let rules = try RuleSet.load(files: [("pay.yaml", "id: pay\nwhen:\n  dwell:\n    page: /checkout/payment\n    at_least: 10m\naction: coupon\npayload:\n  code: SAVE10\n  message: 10% off\n")]).get()
        let modelPath = TestServices.root + "/Rules/models/intent.yaml"
        let model = try IntentModel.load(file: modelPath, text: String(contentsOfFile: modelPath, encoding: .utf8)).get()
        var config = config
        config.engine.allowedLateness = .seconds(1)
        config.engine.idleAfter = Millis(300)
        return Pipeline(configuration: config, rules: rules, model: model, logger: TestKafka.logger)
    }

    func decisions(_ database: String) throws -> [[String?]] {
        try PostgresConnection.connect(database)
            .execute("SELECT decision_id, visitor_id, event_time, trigger_event_id, intent::text FROM decisions ORDER BY decision_id").rows
    }

    @Test("after a restart the window state is rebuilt, so decisions are those of an uninterrupted run")
    func restartRebuildsState() async throws {
        let services = try TestServices.shared()
        let database = try services.makeDatabase()
        let config = try services.configuration(database: database, partitions: 1)

        // The first instance reads the first events, commits them, and stops.
        try TestKafka.produce(Self.before, topic: config.eventsTopic, bootstrap: services.kafkaBootstrap)
        let first = PipelineService(pipeline: try pipeline(config))
        let running = Task { try await first.run() }
        try await waitUntil("the first events are committed") { try committedOffset(config) == Int64(Self.before.count) }
        first.requestStop()
        try await running.value

        // A second instance in the same group takes over after more events arrived.
        try TestKafka.produce(Self.after, topic: config.eventsTopic, bootstrap: services.kafkaBootstrap)
        let second = try pipeline(config)
        let summary = try await runUntilDrained(second)
        #expect(summary.replayedEvents == Self.before.count)
        #expect(summary.eventsIn == Self.after.count)

        // The uninterrupted reference: the same topic read in one go by another group.
        var reference = config
        reference.kafka["group.id"] = config.kafka["group.id"]! + "-reference"
        reference.postgresURL = try services.makeDatabase()
        _ = try await runUntilDrained(try pipeline(reference))

        let expected = try decisions(reference.postgresURL)
        #expect(Set(expected.compactMap { $0[1] }) == ["alice", "carol"])
        // Same ids, times, triggers and intent scores (alice's cart shows in them).
        #expect(try decisions(database) == expected)
        let aliceIntent = try #require(expected.first { $0[1] == "alice" }?[4])
        #expect(aliceIntent.contains("high_value"))
    }
}
