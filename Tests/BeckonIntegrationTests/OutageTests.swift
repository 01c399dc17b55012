import Beckon
import BeckonCore
import BeckonKafka
import BeckonPostgres
import BeckonTestSupport
import Foundation
import Testing

/// Waits until `condition` holds, checking every 50 ms, for at most `timeout` seconds.
func waitUntil(_ what: String, timeout: TimeInterval = 60, _ condition: () throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while try !condition() {
        if Date() > deadline { throw TestServicesError("timed out after \(Int(timeout)) s waiting until \(what)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}

/// The group's committed offset of partition 0 (nil: nothing committed yet).
func committedOffset(_ config: BeckonConfiguration) throws -> Int64? {
    let consumer = try KafkaConsumer.make(configuration: KafkaConfiguration([
        "bootstrap.servers": config.kafka["bootstrap.servers"]!, "group.id": config.kafka["group.id"]!,
    ]), logger: TestKafka.logger)
    defer { consumer.close() }
    return try consumer.committed([TopicPartition(config.eventsTopic, 0)])[TopicPartition(config.eventsTopic, 0)]
}

@Suite("PostgreSQL outage")
struct OutageTests {
    static let t0 = EventTime.parseRFC3339("2026-03-02T10:00:00Z")!

    @Test("while PostgreSQL is down, a decision's offset is not committed; once it is back, it is, and the decision is stored and published once")
    func offsetNotCommittedWhilePostgresIsDown() async throws {
        let services = try TestServices.shared()
        let postgres = try PrivatePostgres.start()
        let database = try postgres.makeDatabase()
        var config = try services.configuration(database: database, partitions: 1)
        config.engine.allowedLateness = .seconds(1)
        // Only events move the watermark here: an idle watermark following the wall clock
        // while PostgreSQL is being stopped could pass alice's event time and make it late.
        config.engine.idleAfter = .minutes(10)
        let rules = try RuleSet.load(files: [("pay.yaml", """
            id: pay
            when:
              dwell:
                page: /checkout/payment
                at_least: 3s
            action: offer_help
            payload:
              message: hi
            """)]).get()
        let pipeline = Pipeline(configuration: config, rules: rules, logger: TestKafka.logger)
        let service = PipelineService(pipeline: pipeline)
        let running = Task { try await service.run() }

        func produce(_ events: [(String, String, Double, String)]) throws {
            try TestKafka.produce(events.map { visitor, id, seconds, path in
                let ts = Self.t0 + Millis(Int64(seconds * 1000))
                return (visitor, eventJSON(id: id, type: "page_view", visitor: visitor, ts: ts, path: path), ts.milliseconds)
            }, topic: config.eventsTopic, bootstrap: services.kafkaBootstrap)
        }

        // Running normally: the first event is committed.
        try produce([("warm", "w1", 0, "/")])
        try await waitUntil("the first event is committed") { try committedOffset(config) == 1 }

        // PostgreSQL goes away. alice lands on the payment page; bob's later event moves the
        // watermark past her 3-second dwell, so a decision is made for offsets 1 and 2.
        try postgres.stopServer()
        try produce([("alice", "a1", 1, "/checkout/payment"), ("bob", "b1", 10, "/")])
        try await waitUntil("the pipeline has read everything, failed to store, and paused") {
            let s = pipeline.summary
            return s.eventsIn == 3 && s.outputRetries >= 2 && s.paused
        }
        #expect(try committedOffset(config) == 1)
        // And it stays so while retries go on.
        let retries = pipeline.summary.outputRetries
        try await waitUntil("another retry") { pipeline.summary.outputRetries > retries }
        #expect(try committedOffset(config) == 1)
        #expect(pipeline.summary.decisions == 0)

        // PostgreSQL is back: the decision is stored, the offsets move past it, consumption resumes.
        try postgres.startServer()
        try await waitUntil("the decision's offsets are committed") { try committedOffset(config) == 3 }
        #expect(pipeline.summary.decisions == 1)
        #expect(!pipeline.summary.paused)
        #expect(pipeline.summary.outages == 1)
        let rows = try PostgresConnection.connect(database).execute("SELECT visitor_id FROM decisions")
        #expect(rows.rows == [["alice"]])
        // Retries wrote to PostgreSQL only: the topic has the decision once.
        let published = try TestKafka.readAll(topic: config.decisionsTopic, bootstrap: services.kafkaBootstrap, atLeast: 1)
        #expect(published.count == 1)

        // Consumption really resumed: a new event is read and committed.
        try produce([("carol", "c1", 11, "/")])
        try await waitUntil("the next event is committed") { try committedOffset(config) == 4 }
        service.requestStop()
        try await running.value
        try postgres.stopServer()
    }
}
