import ArgumentParser
import Beckon
import BeckonCore
import BeckonKafka
import BeckonPostgres
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

@main
struct BeckonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "beckon",
        abstract: "Behaviour-event stream processor for proactive customer engagement.",
        discussion: """
            Beckon reads tracker events from Kafka, keeps a small event-time state per visitor, \
            and when a rule fires emits one decision (offer_help, coupon or handoff) to Kafka and PostgreSQL.

            Configuration comes from defaults, then --config FILE (or BECKON_CONFIG), then BECKON_* \
            environment variables, then --set key=value. Any kafka.<property> is passed to librdkafka \
            untouched. `beckon config keys` lists every key.
            """,
        subcommands: [Run.self, Simulate.self, Migrate.self, Topics.self, Rules.self, Features.self, Config.self]
    )
}

/// Options every command that talks to Kafka or PostgreSQL shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "YAML configuration file (default: $BECKON_CONFIG, else built-in defaults).")
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override one key, e.g. --set kafka.bootstrap.servers=host:9092.", valueName: "key=value"))
    var overrides: [String] = []

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level = .info

    func load() throws -> BeckonConfiguration {
        let env = ProcessInfo.processInfo.environment
        do {
            return try BeckonConfiguration.load(file: config ?? env["BECKON_CONFIG"], environment: env, overrides: overrides)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func logger(_ label: String = "beckon") -> Logger {
        LoggingBootstrap.once(level: logLevel)
        return Logger(label: label)
    }
}

enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false
    static func once(level: Logger.Level) {
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Consume events, decide, and publish decisions (stops cleanly on SIGTERM/SIGINT).",
        discussion: """
            Joins the consumer group (kafka.group.id, default beckon) on topics.events. Offsets are \
            committed only after the decisions of the events before them are acknowledged by Kafka \
            and stored in PostgreSQL. Prints each decision as a log line and a summary at the end.
            """
    )

    @OptionGroup var common: CommonOptions

    @Flag(help: "Exit once every partition is read to its end and no rule timer is pending (for demos and replays).")
    var exitWhenDrained = false

    @Flag(help: "Exit once every partition is read to its end and its outputs are durable, without waiting for pending timers (for throughput benchmarks).")
    var exitWhenCaughtUp = false

    @Flag(help: "Print one line per decision to standard output once it is durable.")
    var printDecisions = false

    @Flag(inversion: .prefixedNo, help: "Reload the rules when a file in paths.rules changes (checked every second) and on SIGHUP; an invalid change is refused and the rules in force stay.")
    var watchRules = true

    func run() async throws {
        let config = try common.load()
        let logger = common.logger()
        let bundle: RuleBundle
        switch RuleFiles.loadBundle(directory: config.rulesDirectory) {
        case .success(let loaded): bundle = loaded
        case .failure(let errors): throw ValidationError("the rules in \(config.rulesDirectory) are invalid (fix them, then check with 'beckon rules check'):\n\(errors)")
        }
        if !bundle.hasModel { logger.warning("no intent model at \(config.rulesDirectory)/models/intent.yaml: decisions will carry no intent scores") }
        if !bundle.hasPolicy { logger.notice("no \(config.rulesDirectory)/policy.yaml: the standard policy applies (min_gap 2m, quiet during human chat, 3 prompts per session)") }
        let (rules, model, policy) = (bundle.rules, bundle.model, bundle.policy)
        let printEach = printDecisions
        let registry = PrometheusCollectorRegistry()
        var metricsServer: MetricsServer?
        if !config.metricsListen.isEmpty {
            do {
                metricsServer = try MetricsServer(listen: config.metricsListen, registry: registry)
                logger.info("serving Prometheus metrics at http://\(config.metricsListen.split(separator: ":")[0]):\(metricsServer!.port)/metrics")
            } catch {
                logger.warning("no metrics endpoint: \(error); set metrics.listen to a free host:port, or to \"\" to disable it")
            }
        }
        defer { metricsServer?.close() }
        let reloader = watchRules ? RuleReloader(directory: config.rulesDirectory, bundle: bundle) : nil
        let pipeline = Pipeline(configuration: config, rules: rules, model: model, policy: policy, reloader: reloader, logger: logger, metrics: PrometheusMetricsFactory(registry: registry), onDecision: { decision in
            guard printEach else { return }
            let line = "\(decision.eventTime.rfc3339)  \(decision.action.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0))  "
                + "\(decision.visitorID.padding(toLength: 10, withPad: " ", startingAt: 0))  \(decision.ruleID)  \(decision.channel)  \(decision.reason)\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        })
        // SIGHUP: load the rules folder again now (between two events).
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler { pipeline.requestRulesReload() }
        hangup.resume()
        defer { hangup.cancel() }
        let service = PipelineService(pipeline: pipeline, exit: exitWhenDrained ? .drained : exitWhenCaughtUp ? .caughtUp : .never)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger))
        do {
            try await group.run()
        } catch {
            print(pipeline.summary.report)
            throw error
        }
        print(pipeline.summary.report)
    }
}

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Produce a deterministic simulated clickstream to topics.events (or print it).",
        discussion: """
            Visitors over web and app browse, buy, hesitate, or dwell on /checkout/payment; a small \
            share of messages is deliberately malformed. The same --seed gives the same bytes.
            """
    )

    @OptionGroup var common: CommonOptions
    @Option(help: "Number of visitors.") var visitors = 300
    @Option(help: "Random seed.") var seed: UInt64 = 42
    @Option(help: "Share of malformed messages, 0 to 1.") var badShare = 0.01
    @Option(help: "Spread of session starts in event time, e.g. 10m.") var span = "10m"
    @Flag(help: "Write JSON lines to standard output instead of producing to Kafka.") var stdout = false
    @Flag(help: "End every journey with a page view of /bye 10 minutes later (for comparisons with consumers that have no timers).")
    var farewell = false

    @Flag(help: "Add the journeys of the other shipped scenarios: a SaaS trial stuck in the workflow settings, rage clicks and an unhappy chat, a category visited three times, a returning high-value buyer.")
    var scenarios = false
    @Option(help: "Live: produce events in real time at about this many events per second, their event times the wall clock (journeys compressed in time to reach the rate).")
    var rate: Int?
    @Option(help: "Live: how long to produce, in seconds.") var seconds = 20

    func run() async throws {
        let config = try common.load()
        var sim = Simulator.Configuration()
        sim.visitors = visitors
        sim.seed = seed
        sim.badShare = badShare
        sim.farewell = farewell
        sim.scenarios = scenarios
        guard let spanValue = Millis.parse(span) else { throw ValidationError("--span '\(span)' is not a duration such as 10m") }
        sim.span = spanValue
        if let rate {
            try produceLive(rate: rate, config: config)
            return
        }
        let messages = Simulator(sim).messages()
        if stdout {
            for m in messages { print(String(decoding: m.value, as: UTF8.self)) }
            return
        }
        let logger = common.logger()
        let producer = try KafkaProducer.make(configuration: config.kafka, logger: logger)
        let outgoing = messages.map { OutgoingMessage(topic: config.eventsTopic, key: Array($0.key.utf8), value: $0.value, timestamp: $0.timestamp) }
        for chunk in stride(from: 0, to: outgoing.count, by: 10_000) {
            try producer.send(Array(outgoing[chunk..<min(chunk + 10_000, outgoing.count)]))
        }
        let bad = messages.filter { !$0.isValid }.count
        print("produced \(messages.count) events (\(bad) malformed) for \(visitors) visitors to \(config.eventsTopic)")
    }

    /// A steady live stream: `rate` events/s for `seconds`, event times = wall clock.
    func produceLive(rate: Int, config: BeckonConfiguration) throws {
        guard rate > 0, seconds > 0 else { throw ValidationError("--rate and --seconds must be above 0") }
        var sim = Simulator.Configuration()
        sim.seed = seed
        sim.badShare = 0
        sim.visitors = max(1, rate * seconds / 10)
        // Journeys of a few minutes, started over 10 minutes, compressed so that the whole
        // stream lasts about `seconds`: about `rate` events per second.
        sim.span = .minutes(10)
        sim.timeCompression = (10 * 60 + 5 * 60) / Double(seconds)
        sim.start = wallClockNow() + .seconds(1)
        let messages = Simulator(sim).messages()
        let producer = try KafkaProducer.make(configuration: config.kafka, logger: common.logger())
        var i = 0
        let started = wallClockNow()
        while i < messages.count {
            let now = wallClockNow()
            var batch: [OutgoingMessage] = []
            while i < messages.count, messages[i].timestamp <= now.milliseconds {
                let m = messages[i]
                batch.append(OutgoingMessage(topic: config.eventsTopic, key: Array(m.key.utf8), value: m.value, timestamp: m.timestamp))
                i += 1
            }
            if !batch.isEmpty { try producer.send(batch) }
            if i < messages.count, messages[i].timestamp > wallClockNow().milliseconds {
                Thread.sleep(forTimeInterval: min(0.005, Double(messages[i].timestamp - wallClockNow().milliseconds) / 1000))
            }
        }
        let elapsed = Double((wallClockNow() - started).value) / 1000
        print("produced \(messages.count) events live in \(String(format: "%.1f", elapsed)) s (\(Int(Double(messages.count) / elapsed)) events/s) to \(config.eventsTopic)")
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the SQL migrations in paths.schemas/migrations to postgres.url.")
    @OptionGroup var common: CommonOptions

    func run() async throws {
        let config = try common.load()
        let logger = common.logger()
        let connection = try PostgresConnection.connect(config.postgresURL)
        let applied = try Migrator(directory: config.schemasDirectory + "/migrations", logger: logger).migrate(connection)
        print(applied.isEmpty ? "database is up to date" : "applied \(applied.joined(separator: ", "))")
    }
}

struct Topics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage Kafka topics.", subcommands: [Create.self, Stats.self])

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a topic to its end and count its messages and distinct decision ids.",
            discussion: """
                For the decisions topic: delivery is at least once, so a restart can publish a decision \
                again; chat frontends drop repeats by decision_id. The difference of the two counts is \
                the number of such repeats. Prints: messages N, distinct decision_id M, repeats N-M.
                """)
        @Argument(help: "Topic to read (default: topics.decisions).") var topic: String?
        @Option(help: "Give up after this many seconds.") var timeout: Double = 60
        @OptionGroup var common: CommonOptions

        func run() async throws {
            let config = try common.load()
            let topic = topic ?? config.decisionsTopic
            var kafka = config.kafka
            kafka["group.id"] = "beckon-stats-\(UInt32.random(in: 0...UInt32.max))"
            let consumer = try KafkaConsumer.make(configuration: kafka, logger: common.logger())
            defer { consumer.close() }
            try consumer.subscribe([topic]) { _ in }
            let partitions = try KafkaAdmin.partitionCount(topic: topic, configuration: config.kafka) ?? 1
            var atEnd: Set<Int32> = []
            var messages = 0
            var ids: Set<String> = []
            let deadline = Date().addingTimeInterval(timeout)
            while atEnd.count < Int(partitions) {
                guard Date() < deadline else { throw ValidationError("\(topic): not every partition reached its end within \(Int(timeout)) s") }
                switch consumer.poll(timeoutMs: 200) {
                case .message(let m)?:
                    messages += 1
                    atEnd.remove(m.partition)
                    if case .string(let id)? = (try? JSONParser.parse(m.value))?["decision_id"] { ids.insert(id) }
                case .endOfPartition(let tp, _)?:
                    atEnd.insert(tp.partition)
                default:
                    continue
                }
            }
            print("messages \(messages), distinct decision_id \(ids.count), repeats \(messages - ids.count)")
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the events, decisions and dead-letter topics if missing.")
        @OptionGroup var common: CommonOptions

        func run() async throws {
            let config = try common.load()
            // retention.ms is set explicitly: Tansu reports only configs given at creation.
            let retention = ["retention.ms": "604800000"]
            let created = try KafkaAdmin.createTopics([
                .init(name: config.eventsTopic, partitions: config.topicPartitions, config: retention),
                .init(name: config.decisionsTopic, partitions: config.topicPartitions, config: retention),
                .init(name: config.deadLetterTopic, partitions: config.topicPartitions, config: retention),
            ], configuration: config.kafka)
            print(created.isEmpty ? "topics exist already" : "created \(created.joined(separator: ", "))")
        }
    }
}

struct Rules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check and test rule files.", subcommands: [Check.self, Test.self])

    /// The folder's rules, policy and model; or every error printed and exit 1.
    static func loadOrPrintErrors(_ dir: String) throws -> RuleBundle {
        switch RuleFiles.loadBundle(directory: dir) {
        case .success(let bundle): return bundle
        case .failure(let errors):
            for error in errors.errors { print(error) }
            print("\(errors.errors.count) error\(errors.errors.count == 1 ? "" : "s") (a running beckon run refuses such a set and keeps the rules it has)")
            throw ExitCode(1)
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the rules, policy and intent model in DIR; print every error as file:line:column.",
            discussion: "Exits 1 when anything is wrong. A running 'beckon run' refuses such a set the same way and keeps the rules it has.")
        @Argument(help: "Folder of *.yaml rules (default: paths.rules).") var directory: String?
        @OptionGroup var common: CommonOptions

        func run() async throws {
            let dir = try directory ?? common.load().rulesDirectory
            let bundle = try Rules.loadOrPrintErrors(dir)
            print("\(bundle.rules.rules.count) rules OK (version \(bundle.rules.version)): \(bundle.rules.rules.map(\.id).joined(separator: ", "))")
            let p = bundle.policy
            print(bundle.hasPolicy ? "policy OK:" : "no policy.yaml, the standard policy:",
                  "min_gap \(p.minimumGap), \(p.maxPerSession)/session, \(p.maxPerDay)/day, default cooldown \(p.defaultCooldown),",
                  "dismissed backoff \(p.dismissedBackoff), coupons \(p.couponsPerHour.map { "\($0)/hour per partition" } ?? "unlimited"),",
                  "quiet during human chat: \(p.quietDuringHumanChat)")
            print(bundle.hasModel ? "intent model OK: \(bundle.model.intents.map(\.name).joined(separator: ", ")) over \(bundle.model.features.count) features"
                  : "no intent model (models/intent.yaml): decisions will carry no intent scores")
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the rule tests in DIR/tests/*.yaml: timelines of events and the decisions and suppressions they must give.",
            discussion: "Each test's events go through the real decoder and the core with DIR's rules, policy and intent model. Exits 1 when a test fails.")
        @Argument(help: "Folder of *.yaml rules with a tests/ folder (default: paths.rules).") var directory: String?
        @OptionGroup var common: CommonOptions

        func run() async throws {
            let dir = try directory ?? common.load().rulesDirectory
            let bundle = try Rules.loadOrPrintErrors(dir)
            let fixtures = RuleFiles.fixtures(directory: dir)
            guard !fixtures.isEmpty else {
                print("no rule tests in \(dir)/tests")
                throw ExitCode(1)
            }
            var failed = 0
            for (file, text) in fixtures {
                do {
                    let fixture = try RuleFixture.parse(file: file, text: text)
                    let problems = fixture.run(rules: bundle.rules, policy: bundle.policy, model: bundle.model)
                    if problems.isEmpty {
                        print("ok    \(fixture.name)  (\((file as NSString).lastPathComponent))")
                    } else {
                        failed += 1
                        print("FAIL  \(fixture.name)  (\(file))")
                        for problem in problems { print("    " + problem) }
                    }
                } catch {
                    failed += 1
                    print("FAIL  \(error)")
                }
            }
            print("\(fixtures.count - failed) passed, \(failed) failed")
            if failed > 0 { throw ExitCode(1) }
        }
    }
}

struct Features: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the features and intents that rules and the intent model can name.",
        discussion: "With --markdown, prints docs/FEATURES.md (a test checks that file against the code).")
    @Flag(help: "Print the catalogue as Markdown.") var markdown = false
    @OptionGroup var common: CommonOptions

    func run() async throws {
        let dir = try common.load().rulesDirectory
        var intents: [(name: String, description: String)] = []
        if case .success(let model)? = RuleFiles.loadModel(directory: dir) { intents = model.intents.map { ($0.name, $0.description) } }
        if markdown {
            print(Feature.catalogue(intents: intents), terminator: "")
            return
        }
        for feature in Feature.allCases {
            print("\(feature.rawValue.padding(toLength: 24, withPad: " ", startingAt: 0)) \(feature.kind.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(feature.meaning)")
        }
        for intent in intents {
            print("\(intent.name.padding(toLength: 24, withPad: " ", startingAt: 0)) intent    \(intent.description)")
        }
    }
}

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show configuration.", subcommands: [Keys.self])

    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every configuration key and its environment variable.")
        func run() async throws {
            print("kafka.<property>  (BECKON_KAFKA_<PROPERTY>, dots as _)  any librdkafka property, passed through")
            for (key, meaning) in BeckonConfiguration.keys {
                print("\(key)  (BECKON_\(key.uppercased().replacingOccurrences(of: ".", with: "_")))  \(meaning)")
            }
        }
    }
}
