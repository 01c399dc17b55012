import BeckonCore
import BeckonKafka
import Foundation
import Yams

/// Beckon's settings: defaults, then a YAML file, then `BECKON_*` environment variables,
/// then `--set key=value` overrides. Keys are dotted (`engine.allowed_lateness`); every
/// `kafka.*` key is a librdkafka property passed through untouched.
public struct BeckonConfiguration: Sendable, Equatable {
    public var kafka = KafkaConfiguration(["bootstrap.servers": "127.0.0.1:9092"])
    public var postgresURL = "postgresql://beckon@127.0.0.1:5432/beckon"
    public var eventsTopic = "beckon.events"
    public var decisionsTopic = "beckon.decisions"
    public var deadLetterTopic = "beckon.events.dlq"
    /// Partitions for topics that `beckon topics create` makes.
    public var topicPartitions: Int32 = 12
    public var rulesDirectory = "Rules"
    public var schemasDirectory = "Schemas"
    public var engine = EngineConfiguration()
    /// Most messages processed between two output flushes and commits.
    public var batchSize = 5000
    /// Longest wait for the first message of a batch.
    public var pollTimeout = Millis(100)
    /// Kafka transactions: when set, decisions, dead letters and input offsets of a batch are
    /// committed in one Kafka transaction with this `transactional.id` (Apache Kafka; not
    /// verified here: Tansu's transactions do not isolate). Empty: idempotent producer.
    public var transactionalID = ""
    /// Where `beckon run` serves Prometheus metrics (`GET /metrics`); empty: nowhere.
    public var metricsListen = "127.0.0.1:9464"

    public init() {}

    /// Every key Beckon knows besides `kafka.*`, with its meaning (for `--help` and errors).
    public static let keys: [(key: String, meaning: String)] = [
        ("postgres.url", "libpq connection string or URI (default postgresql://beckon@127.0.0.1:5432/beckon)"),
        ("topics.events", "input topic of tracker events (default beckon.events)"),
        ("topics.decisions", "output topic of decisions (default beckon.decisions)"),
        ("topics.dead_letters", "topic for refused events (default beckon.events.dlq)"),
        ("topics.partitions", "partitions of topics created by `beckon topics create` (default 12)"),
        ("paths.rules", "folder of rule files, *.yaml (default Rules)"),
        ("paths.schemas", "folder with migrations/ (default Schemas)"),
        ("engine.allowed_lateness", "how late an event may be and still count as on time (default 5s)"),
        ("engine.idle_after", "silence after which an idle partition's watermark follows the wall clock (default 2s)"),
        ("engine.session_gap", "inactivity that ends a session (default 30m)"),
        ("engine.compact_after", "inactivity after which a visitor's state is kept in compact form until its next event; off keeps every state inline (default 1m)"),
        ("run.batch_size", "most messages between two output flushes and offset commits (default 5000)"),
        ("run.poll_timeout", "longest wait for the first message of a batch (default 100ms)"),
        ("run.transactional_id", "Kafka transactional.id: commit each batch's outputs and input offsets in one Kafka transaction (Apache Kafka only; untested on Tansu, whose transactions do not isolate; default empty = idempotent producer + deterministic ids)"),
        ("metrics.listen", "host:port where `beckon run` serves Prometheus metrics at /metrics; empty to disable (default 127.0.0.1:9464)"),
    ]

    /// A configuration problem: which key, from where, and why.
    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var key: String
        public var source: String
        public var message: String
        public var description: String { "configuration key '\(key)' (\(source)): \(message)" }
    }

    /// Loads the file (if any), the environment and the overrides, in that order.
    public static func load(file: String?, environment: [String: String], overrides: [String] = []) throws(Error) -> BeckonConfiguration {
        var config = BeckonConfiguration()
        if let file {
            let text: String
            do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
                throw Error(key: "-", source: file, message: "cannot read the file: \(error.localizedDescription)")
            }
            for (key, value, place) in try flatten(yaml: text, file: file) {
                try config.set(key, value, source: place)
            }
        }
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("BECKON_") && name != "BECKON_CONFIG" {
            let rest = String(name.dropFirst("BECKON_".count))
            if rest.hasPrefix("KAFKA_") {
                let property = rest.dropFirst("KAFKA_".count).lowercased().replacingOccurrences(of: "_", with: ".")
                try config.set("kafka." + property, value, source: "environment \(name)")
            } else if let known = keys.first(where: { $0.key.uppercased().replacingOccurrences(of: ".", with: "_") == rest }) {
                try config.set(known.key, value, source: "environment \(name)")
            } else {
                throw Error(key: name, source: "environment", message: "unknown variable; known: BECKON_KAFKA_<PROPERTY> and " + keys.map { "BECKON_" + $0.key.uppercased().replacingOccurrences(of: ".", with: "_") }.joined(separator: ", "))
            }
        }
        for override in overrides {
            guard let eq = override.firstIndex(of: "=") else {
                throw Error(key: override, source: "--set", message: "expected key=value")
            }
            try config.set(String(override[..<eq]), String(override[override.index(after: eq)...]), source: "--set")
        }
        return config
    }

    /// Sets one dotted key.
    public mutating func set(_ key: String, _ value: String, source: String) throws(Error) {
        func duration() throws(Error) -> Millis {
            guard let d = Millis.parse(value), d.value >= 0 else { throw Error(key: key, source: source, message: "'\(value)' is not a duration such as 5s, 250ms or 2m") }
            return d
        }
        func positive() throws(Error) -> Int {
            guard let n = Int(value), n > 0 else { throw Error(key: key, source: source, message: "'\(value)' is not a whole number above 0") }
            return n
        }
        func nonEmpty() throws(Error) -> String {
            guard !value.isEmpty else { throw Error(key: key, source: source, message: "must not be empty") }
            return value
        }
        if key.hasPrefix("kafka.") {
            let property = String(key.dropFirst("kafka.".count))
            guard !property.isEmpty else { throw Error(key: key, source: source, message: "needs a librdkafka property name after 'kafka.'") }
            kafka[property] = value
            return
        }
        switch key {
        case "postgres.url": postgresURL = try nonEmpty()
        case "topics.events": eventsTopic = try nonEmpty()
        case "topics.decisions": decisionsTopic = try nonEmpty()
        case "topics.dead_letters": deadLetterTopic = try nonEmpty()
        case "topics.partitions": topicPartitions = Int32(clamping: try positive())
        case "paths.rules": rulesDirectory = try nonEmpty()
        case "paths.schemas": schemasDirectory = try nonEmpty()
        case "engine.allowed_lateness": engine.allowedLateness = try duration()
        case "engine.idle_after": engine.idleAfter = try duration()
        case "engine.session_gap": engine.sessionGap = try duration()
        case "engine.compact_after":
            guard value != "off" else { engine.compactAfter = nil; return }
            guard let d = Millis.parse(value), d.value >= 0 else { throw Error(key: key, source: source, message: "'\(value)' is not a duration such as 1m or 30s, or off") }
            engine.compactAfter = d
        case "run.batch_size": batchSize = try positive()
        case "run.poll_timeout": pollTimeout = try duration()
        case "run.transactional_id": transactionalID = value
        case "metrics.listen":
            if !value.isEmpty, value.split(separator: ":", omittingEmptySubsequences: false).count != 2 || UInt16(value.split(separator: ":").last ?? "") == nil {
                throw Error(key: key, source: source, message: "'\(value)' is not host:port such as 127.0.0.1:9464 (empty disables metrics)")
            }
            metricsListen = value
        default:
            let names = Self.keys.map(\.key)
            let hint = names.min { editDistance(key, $0) < editDistance(key, $1) }.flatMap { editDistance(key, $0) <= 3 ? "; did you mean '\($0)'?" : nil }
            throw Error(key: key, source: source, message: "unknown key\(hint ?? "; known keys: kafka.<librdkafka property>, " + names.joined(separator: ", "))")
        }
    }

    /// `kafka: {bootstrap.servers: x}` → `kafka.bootstrap.servers = x`, with each value's place.
    static func flatten(yaml: String, file: String) throws(Error) -> [(String, String, String)] {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else { return [] }
            root = node
        } catch {
            throw Error(key: "-", source: file, message: "not valid YAML: \(error)")
        }
        var out: [(String, String, String)] = []
        func walk(_ node: Node, prefix: String) throws(Error) {
            let place = "\(file):\(node.mark?.line ?? 1):\(node.mark?.column ?? 1)"
            switch node {
            case .mapping(let mapping):
                for (k, v) in mapping {
                    guard let key = k.scalar?.string else { throw Error(key: prefix, source: place, message: "keys must be strings") }
                    // librdkafka property names contain dots: everything under kafka is one level.
                    if prefix == "kafka" {
                        guard let value = v.scalar?.string else { throw Error(key: "kafka.\(key)", source: place, message: "must be a plain value") }
                        out.append(("kafka.\(key)", value, "\(file):\(v.mark?.line ?? 1):\(v.mark?.column ?? 1)"))
                    } else {
                        try walk(v, prefix: prefix.isEmpty ? key : "\(prefix).\(key)")
                    }
                }
            case .scalar(let scalar):
                out.append((prefix, scalar.string, place))
            default:
                throw Error(key: prefix, source: place, message: "lists are not allowed here")
            }
        }
        try walk(root, prefix: "")
        return out
    }
}

/// Everything a rules folder defines: the rules, the policy, the intent model.
public struct RuleBundle: Sendable {
    public var rules: RuleSet
    public var policy: Policy
    public var model: IntentModel
    /// False when the folder has no `policy.yaml` (the standard policy applies).
    public var hasPolicy: Bool
    /// False when the folder has no `models/intent.yaml`.
    public var hasModel: Bool
}

/// Reads `*.yaml` rule files from a folder.
public enum RuleFiles {
    /// Rules only. Conditions are checked against the folder's intent model when it has a valid one.
    public static func load(directory: String, intents: [String]? = nil) -> Result<RuleSet, RuleSetErrors> {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && $0 != "policy.yaml" }.sorted()
        } catch {
            return .failure(RuleSetErrors(errors: [SourceError(file: directory, line: 0, column: 0, message: "cannot read the rules folder: \(error.localizedDescription)")]))
        }
        var files: [(name: String, text: String)] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                return .failure(RuleSetErrors(errors: [SourceError(file: path, line: 0, column: 0, message: "cannot read the file (not UTF-8?)")]))
            }
            files.append((path, text))
        }
        var names2 = intents
        if names2 == nil, case .success(let model)? = loadModel(directory: directory) { names2 = model.intents.map(\.name) }
        return RuleSet.load(files: files, intents: names2 ?? IntentModel.requiredIntents)
    }

    /// Rules, policy and model, with every error of every file. With `runningModel`, the
    /// rules are checked against that model (a hot reload keeps the model it started with).
    public static func loadBundle(directory: String, runningModel: IntentModel? = nil) -> Result<RuleBundle, RuleSetErrors> {
        var errors: [SourceError] = []
        var model = IntentModel.empty
        var hasModel = false
        switch loadModel(directory: directory) {
        case .success(let m)?: model = m; hasModel = true
        case .failure(let e)?: errors += e.errors
        case nil: break
        }
        if let runningModel { model = runningModel }
        var policy = Policy.standard
        var hasPolicy = false
        switch loadPolicy(directory: directory) {
        case .success(let p)?: policy = p; hasPolicy = true
        case .failure(let e)?: errors += e.errors
        case nil: break
        }
        let intents = hasModel || runningModel != nil ? model.intents.map(\.name) : IntentModel.requiredIntents
        switch load(directory: directory, intents: intents) {
        case .success(let rules):
            guard errors.isEmpty else { return .failure(RuleSetErrors(errors: errors)) }
            return .success(RuleBundle(rules: rules, policy: policy, model: model, hasPolicy: hasPolicy, hasModel: hasModel))
        case .failure(let e):
            return .failure(RuleSetErrors(errors: e.errors + errors))
        }
    }

    /// Names, sizes and modification times of the folder's YAML files: changes when a file does.
    public static func fingerprint(directory: String) -> String {
        var parts: [String] = []
        for sub in ["", "models"] {
            let dir = sub.isEmpty ? directory : (directory as NSString).appendingPathComponent(sub)
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
            for name in names {
                let path = (dir as NSString).appendingPathComponent(name)
                let attributes = try? FileManager.default.attributesOfItem(atPath: path)
                let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
                let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
                parts.append("\(sub)/\(name):\(size):\(modified)")
            }
        }
        return parts.joined(separator: "|")
    }

    /// Rule tests in `<rules>/tests/*.yaml`, sorted by name.
    public static func fixtures(directory: String) -> [(name: String, text: String)] {
        let dir = (directory as NSString).appendingPathComponent("tests")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        return names.compactMap { name in
            let path = (dir as NSString).appendingPathComponent(name)
            return (try? String(contentsOfFile: path, encoding: .utf8)).map { (path, $0) }
        }
    }

    /// The policy at `<rules>/policy.yaml`; nil when there is none (the standard one applies).
    public static func loadPolicy(directory: String) -> Result<Policy, RuleSetErrors>? {
        loadOptional(directory, "policy.yaml", Policy.load)
    }

    /// The intent model at `<rules>/models/intent.yaml`; nil when there is none.
    public static func loadModel(directory: String) -> Result<IntentModel, RuleSetErrors>? {
        loadOptional(directory, "models/intent.yaml", IntentModel.load)
    }

    private static func loadOptional<T>(
        _ directory: String, _ name: String, _ parse: (String, String) -> Result<T, RuleSetErrors>
    ) -> Result<T, RuleSetErrors>? {
        let path = (directory as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return .failure(RuleSetErrors(errors: [SourceError(file: path, line: 0, column: 0, message: "cannot read the file (not UTF-8?)")]))
        }
        return parse(path, text)
    }
}

/// Wall-clock time as an `EventTime`; the runtime's only clock.
public func wallClockNow() -> EventTime {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return EventTime(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
}
