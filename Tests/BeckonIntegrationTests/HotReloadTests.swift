import Beckon
import BeckonCore
import BeckonKafka
import BeckonPostgres
import BeckonTestSupport
import Foundation
import Testing

@Suite("Hot reload of rules")
struct HotReloadTests {
    static let t0 = EventTime.parseRFC3339("2026-03-02T10:00:00Z")!

    static func rule(message: String, type: String = "exit_intent") -> String {
        "id: leaving\nwhen: event == \(type)\naction: offer_help\npayload:\n  message: \(message)\n"
    }

    @Test("rules changed while events flow: decisions before and after carry the right rule_version; a broken change is refused without a gap")
    func rulesChangeWhileEventsFlow() async throws {
        let services = try TestServices.shared()
        let database = try services.makeDatabase()
        var config = try services.configuration(database: database, partitions: 1)
        config.engine.allowedLateness = .seconds(1)
        // Only events move the watermark: the batches come seconds apart in wall time, and an
        // idle watermark following the wall clock would make the next batch late.
        config.engine.idleAfter = .minutes(10)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("beckon-reload-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/leaving.yaml"
        try Self.rule(message: "first").write(toFile: file, atomically: true, encoding: .utf8)
        let bundle = try RuleFiles.loadBundle(directory: dir).get()
        let v1 = bundle.rules.rules[0].version
        let pipeline = Pipeline(configuration: config, rules: bundle.rules, model: bundle.model, policy: bundle.policy,
                                reloader: RuleReloader(directory: dir, bundle: bundle), logger: TestKafka.logger)
        let service = PipelineService(pipeline: pipeline)
        let running = Task { try await service.run() }
        let db = try PostgresConnection.connect(database)
        func decisions() throws -> [[String?]] {
            try db.execute("SELECT visitor_id, rule_version, payload->>'message' FROM decisions ORDER BY visitor_id").rows
        }
        var produced = 0
        func produce(_ batch: String) throws {
            try TestKafka.produce((0..<5).map { i in
                let ts = Self.t0 + .seconds(Int64(produced + i))
                return ("\(batch)-\(i)", eventJSON(id: "\(batch)-\(i)-e", type: "exit_intent", visitor: "\(batch)-\(i)", ts: ts, path: "/cart"), ts.milliseconds)
            }, topic: config.eventsTopic, bootstrap: services.kafkaBootstrap)
            produced += 5
        }

        try produce("a")
        try await waitUntil("the first five decisions are stored") { try decisions().count == 5 }
        #expect(pipeline.rulesVersion == bundle.rules.version)

        // A changed rule: taken between two events, without a restart.
        try Self.rule(message: "second").write(toFile: file, atomically: true, encoding: .utf8)
        let v2 = try RuleFiles.loadBundle(directory: dir).get().rules.rules[0].version
        try await waitUntil("the change is in force") { pipeline.summary.ruleReloads == 1 }
        try produce("b")
        try await waitUntil("ten decisions are stored") { try decisions().count == 10 }

        // A broken change: refused, the rules in force stay, processing goes on without a gap.
        let versionBefore = pipeline.rulesVersion
        try Self.rule(message: "third", type: "exit_intnt").write(toFile: file, atomically: true, encoding: .utf8)
        try await waitUntil("the broken change is refused") { pipeline.summary.refusedRuleReloads == 1 }
        #expect(pipeline.rulesVersion == versionBefore)
        try produce("c")
        try await waitUntil("fifteen decisions are stored and every offset committed") {
            try decisions().count == 15 && committedOffset(config) == 15
        }
        service.requestStop()
        try await running.value

        let rows = try decisions()
        #expect(rows.filter { $0[0]!.hasPrefix("a-") }.allSatisfy { $0[1] == v1 && $0[2] == "first" })
        #expect(rows.filter { $0[0]!.hasPrefix("b-") }.allSatisfy { $0[1] == v2 && $0[2] == "second" })
        #expect(rows.filter { $0[0]!.hasPrefix("c-") }.allSatisfy { $0[1] == v2 && $0[2] == "second" })
        #expect(v1 != v2)
        // PostgreSQL keeps the text of both versions that made decisions, and not the broken one.
        let versions = try db.execute("SELECT rule_version, body FROM rule_versions WHERE rule_id = 'leaving' ORDER BY first_loaded").rows
        #expect(versions.map { $0[0] } == [v1, v2])
        #expect(versions.last?[1]?.contains("message: second") == true)
        #expect(pipeline.summary.eventsIn == 15 && pipeline.summary.deadLetters == 0)
    }

    @Test("a reload request (what SIGHUP sends) takes a change the folder watch cannot see")
    func reloadOnRequest() async throws {
        let services = try TestServices.shared()
        let database = try services.makeDatabase()
        let config = try services.configuration(database: database, partitions: 1)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("beckon-hup-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/leaving.yaml"
        try Self.rule(message: "aaaa").write(toFile: file, atomically: true, encoding: .utf8)
        let bundle = try RuleFiles.loadBundle(directory: dir).get()
        // The file changes before the reloader first looks at the folder, so its watch has
        // nothing to notice: only a requested reload can take the change.
        try Self.rule(message: "bbbb").write(toFile: file, atomically: true, encoding: .utf8)
        let pipeline = Pipeline(configuration: config, rules: bundle.rules, model: bundle.model, policy: bundle.policy,
                                reloader: RuleReloader(directory: dir, bundle: bundle), logger: TestKafka.logger)
        let service = PipelineService(pipeline: pipeline)
        let running = Task { try await service.run() }
        let checks = pipeline.summary.ruleFolderChecks
        try await waitUntil("the folder was checked twice more") { pipeline.summary.ruleFolderChecks >= checks + 2 }
        #expect(pipeline.summary.ruleReloads == 0)
        #expect(pipeline.rulesVersion == bundle.rules.version)
        pipeline.requestRulesReload()
        try await waitUntil("the requested reload is done") { pipeline.summary.ruleReloads == 1 }
        #expect(pipeline.rulesVersion == (try RuleFiles.loadBundle(directory: dir).get()).rules.version)
        #expect(pipeline.rulesVersion != bundle.rules.version)
        service.requestStop()
        try await running.value
    }
}
