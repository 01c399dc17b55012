import Beckon
import BeckonCore
import Foundation
import Testing

@Suite("Configuration: file, environment, overrides")
struct ConfigurationTests {
    func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("beckon-config-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func layersDefaultsFileEnvironmentAndOverrides() throws {
        let file = try write("""
            kafka:
              bootstrap.servers: file:9092
              security.protocol: SASL_SSL
            postgres:
              url: postgresql://file/db
            engine:
              allowed_lateness: 10s
            topics: {events: in.events, partitions: 6}
            """)
        let config = try BeckonConfiguration.load(
            file: file,
            environment: ["BECKON_KAFKA_BOOTSTRAP_SERVERS": "env:9092", "BECKON_ENGINE_IDLE_AFTER": "500ms", "PATH": "/bin"],
            overrides: ["engine.allowed_lateness=3s", "kafka.linger.ms=1"])
        #expect(config.kafka["bootstrap.servers"] == "env:9092")
        #expect(config.kafka["security.protocol"] == "SASL_SSL")
        #expect(config.kafka["linger.ms"] == "1")
        #expect(config.postgresURL == "postgresql://file/db")
        #expect(config.eventsTopic == "in.events")
        #expect(config.decisionsTopic == "beckon.decisions")
        #expect(config.topicPartitions == 6)
        #expect(config.engine.allowedLateness == .seconds(3))
        #expect(config.engine.idleAfter == Millis(500))
        #expect(config.engine.compactAfter == .minutes(1))
    }

    /// Compacting idle visitors can be tuned or turned off; anything else names the choices.
    @Test func compactAfterTakesADurationOrOff() throws {
        #expect(try BeckonConfiguration.load(file: nil, environment: [:], overrides: ["engine.compact_after=15s"]).engine.compactAfter == .seconds(15))
        #expect(try BeckonConfiguration.load(file: nil, environment: [:], overrides: ["engine.compact_after=off"]).engine.compactAfter == nil)
        do {
            _ = try BeckonConfiguration.load(file: nil, environment: [:], overrides: ["engine.compact_after=never"])
            Issue.record("accepted")
        } catch {
            #expect(error.description.hasSuffix("'never' is not a duration such as 1m or 30s, or off"))
        }
    }

    @Test func namesTheKeyTheSourceAndTheProblem() throws {
        let file = try write("engine:\n  alowed_lateness: 5s\n")
        #expect(throws: BeckonConfiguration.Error.self) { try BeckonConfiguration.load(file: file, environment: [:]) }
        do {
            _ = try BeckonConfiguration.load(file: file, environment: [:])
        } catch {
            #expect(error.description == "configuration key 'engine.alowed_lateness' (\(file):2:20): unknown key; did you mean 'engine.allowed_lateness'?")
        }
        do {
            _ = try BeckonConfiguration.load(file: nil, environment: ["BECKON_RUN_BATCH_SIZE": "lots"])
            Issue.record("accepted")
        } catch {
            #expect(error.description == "configuration key 'run.batch_size' (environment BECKON_RUN_BATCH_SIZE): 'lots' is not a whole number above 0")
        }
        do {
            _ = try BeckonConfiguration.load(file: nil, environment: ["BECKON_POSTGRES_ULR": "x"])
            Issue.record("accepted")
        } catch {
            #expect(error.key == "BECKON_POSTGRES_ULR")
        }
    }
}
