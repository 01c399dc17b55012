import Yams

/// A rule: when its condition becomes true for a visitor, Beckon makes one decision
/// (subject to the policy). Rules are edge-triggered: a rule fires when its condition
/// turns true, not again on every event while it stays true.
public struct Rule: Sendable, Equatable {
    public var id: String
    public var description: String
    /// Content hash of the file the rule came from.
    public var version: String
    public var condition: Condition
    /// The condition as written (for decision reasons).
    public var conditionText: String
    public var action: Action
    /// Values may hold placeholders such as `{cart_value}` or `{page.path}`.
    public var payload: [(String, String)]
    /// Higher wins when several rules fire for one visitor at once.
    public var priority: Int
    /// No second firing of this rule for one visitor within this span; nil: the policy's default.
    public var cooldown: Millis?
    /// How long a frontend may still show the prompt after `event_time`.
    public var expiresAfter: Millis
    /// Channels the rule speaks on; empty: all.
    public var channels: [String]
    /// Share of visitors (0–1) held out: decisions recorded with `experiment = holdout`, no prompt.
    public var holdout: Double
    public var file: String
    /// The file's text, kept so PostgreSQL can store each version that made decisions.
    public var sourceText: String

    public static func == (a: Rule, b: Rule) -> Bool {
        a.id == b.id && a.version == b.version && a.condition == b.condition && a.action == b.action && a.priority == b.priority
            && a.cooldown == b.cooldown && a.expiresAfter == b.expiresAfter && a.channels == b.channels && a.holdout == b.holdout
            && a.payload.elementsEqual(b.payload, by: { $0 == $1 })
    }
}

/// The rules in force, in a fixed order (by id) so evaluation is deterministic, with the
/// path tests and windowed counts their conditions share.
public struct RuleSet: Sendable, Equatable {
    public private(set) var rules: [Rule]
    /// Hash over every rule's version: changes whenever any file changes.
    public let version: String
    public let pathTests: [PathTest]
    public let counters: [CounterSpec]
    /// The intents the conditions were checked against.
    public let intentNames: [String]

    init(rules: [Rule], pathTests: [PathTest] = [], counters: [CounterSpec] = [], intentNames: [String] = IntentModel.requiredIntents) {
        self.rules = rules.sorted { $0.id < $1.id }
        var hash = StableHash()
        for rule in self.rules { hash.combine(rule.version) }
        self.version = String(hash.hex.prefix(12))
        self.pathTests = pathTests
        self.counters = counters
        self.intentNames = intentNames
    }

    public static let empty = RuleSet(rules: [])

    /// Keys a rule file may have.
    static let keys = ["id", "description", "when", "action", "payload", "priority", "cooldown", "expires_after", "channels", "holdout"]

    /// Loads rule files given as (file name, text). Reports every error found, not just
    /// the first; the set is refused as a whole when any file is wrong.
    ///
    /// - Parameter intents: intent names conditions may use (`intent.<name>`), from the model.
    public static func load(files: [(name: String, text: String)], intents: [String] = IntentModel.requiredIntents) -> Result<RuleSet, RuleSetErrors> {
        var rules: [Rule] = []
        var errors: [SourceError] = []
        var seen: [String: String] = [:]
        var compiler = ConditionCompiler(intents: intents)
        for (name, text) in files.sorted(by: { $0.name < $1.name }) {
            do {
                let (rule, idNode) = try parseRule(file: name, text: text, compiler: &compiler)
                if let other = seen[rule.id] {
                    errors.append(SourceError(file: name, line: idNode.mark?.line ?? 1, column: idNode.mark?.column ?? 1,
                                              message: "duplicate rule id '\(rule.id)' (also in \(other)); rule ids must be unique"))
                } else {
                    seen[rule.id] = name
                    rules.append(rule)
                }
            } catch {
                errors.append(error)
            }
        }
        guard errors.isEmpty else { return .failure(RuleSetErrors(errors: errors)) }
        return .success(RuleSet(rules: rules, pathTests: compiler.pathTests, counters: compiler.counters, intentNames: intents))
    }

    static func parseRule(file: String, text: String, compiler: inout ConditionCompiler) throws(SourceError) -> (Rule, Node) {
        let reader = YAMLReader(file: file)
        let root = try reader.parse(text)
        let top = try reader.mapping(root, what: "a rule", allowed: keys)
        guard let idNode = top["id"] else { throw reader.error(root, "a rule needs an 'id', e.g. id: checkout-coupon") }
        let id = try reader.nonEmptyString(idNode, what: "id")
        guard id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw reader.error(idNode, "id '\(id)' may contain only letters, digits, '-', '_' and '.'")
        }
        guard let whenNode = top["when"] else { throw reader.error(root, "rule '\(id)' needs a 'when' condition, e.g. when: page_dwell_seconds >= 45s") }
        var conditionText = ""
        let condition = try parseCondition(whenNode, reader: reader, compiler: &compiler, text: &conditionText)
        guard let actionNode = top["action"] else { throw reader.error(root, "rule '\(id)' needs an 'action' (offer_help, coupon or handoff)") }
        let actionName = try reader.string(actionNode, what: "action")
        guard let action = Action(rawValue: actionName) else {
            throw reader.error(actionNode, "unknown action '\(actionName)'; use offer_help, coupon or handoff")
        }
        var payload: [(String, String)] = []
        if let payloadNode = top["payload"] {
            guard case .mapping(let mapping) = payloadNode else { throw reader.error(payloadNode, "payload must be a mapping of 'key: text' pairs") }
            for (k, v) in mapping {
                guard let key = k.scalar?.string, let value = v.scalar?.string else {
                    throw reader.error(k, "payload entries must be plain 'key: text' pairs")
                }
                try checkPlaceholders(value, node: v, reader: reader, intents: compiler.intents)
                payload.append((key, value))
            }
        }
        let required = requiredPayload[action]!
        for key in required where !payload.contains(where: { $0.0 == key && !$0.1.trimmingSpaces.isEmpty }) {
            throw reader.error(top["payload"] ?? actionNode, "action \(action.rawValue) needs a payload with '\(key)' (\(payloadHelp[key]!))")
        }
        let priority = try top["priority"].map { (n) throws(SourceError) in try reader.int(n, what: "priority") } ?? 0
        let expires = try top["expires_after"].map { (n) throws(SourceError) in try positiveDuration(n, reader, "expires_after") } ?? .minutes(2)
        let cooldown = try top["cooldown"].map { (n) throws(SourceError) in try reader.duration(n, what: "cooldown") }
        let description = try top["description"].map { (n) throws(SourceError) in try reader.string(n, what: "description") } ?? ""
        var channels: [String] = []
        if let node = top["channels"] {
            switch node {
            case .scalar(let s): channels = [s.string]
            case .sequence(let items):
                for item in items {
                    guard let s = item.scalar?.string, !s.trimmingSpaces.isEmpty else { throw reader.error(item, "channels are names such as web or app") }
                    channels.append(s)
                }
            default: throw reader.error(node, "channels must be a list of names, e.g. [web, app]")
            }
            if channels.isEmpty { throw reader.error(node, "channels must not be empty; leave the key out to speak on every channel") }
        }
        var holdout = 0.0
        if let node = top["holdout"] {
            guard let s = node.scalar?.string else { throw reader.error(node, "holdout is a share such as 10%") }
            let trimmed = s.trimmingSpaces
            let number = trimmed.hasSuffix("%") ? trimmed.dropLast() : trimmed
            guard let value = Double(String(number).trimmingSpaces) else { throw reader.error(node, "holdout must be a share such as 10% (0% to 100%)") }
            guard value >= 0 && value <= 100 else { throw reader.error(node, "holdout \(s) is outside 0%–100%") }
            holdout = value / 100
        }
        let rule = Rule(
            id: id, description: description, version: String(StableHash.hex(text).prefix(12)), condition: condition,
            conditionText: conditionText, action: action, payload: payload, priority: priority, cooldown: cooldown,
            expiresAfter: expires, channels: channels, holdout: holdout, file: file, sourceText: text)
        return (rule, idNode)
    }

    static let requiredPayload: [Action: [String]] = [.offerHelp: ["message"], .coupon: ["message", "code"], .handoff: ["queue"]]
    static let payloadHelp = [
        "message": "the text the visitor sees", "code": "the coupon code", "queue": "the agent queue to hand off to",
    ]

    static func positiveDuration(_ node: Node, _ reader: YAMLReader, _ what: String) throws(SourceError) -> Millis {
        let d = try reader.duration(node, what: what)
        guard d.value > 0 else { throw reader.error(node, "\(what) must be longer than 0s") }
        return d
    }

    /// `{name}` placeholders must name a feature, `intent.<name>`, `page.path` or `channel`.
    static func checkPlaceholders(_ value: String, node: Node, reader: YAMLReader, intents: [String]) throws(SourceError) {
        var rest = Substring(value)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { throw reader.error(node, "'{' without a closing '}' in the payload") }
            let name = String(rest[rest.index(after: open)..<close])
            if !Placeholder.isKnown(name, intents: intents) {
                throw reader.error(node, "unknown placeholder {\(name)}; use a feature ({cart_value}), {intent.<name>}, {page.path} or {channel}")
            }
            rest = rest[rest.index(after: close)...]
        }
    }

    /// `when:` is a string expression, a list (all of them), or a mapping with `all`, `any`,
    /// `not`, or the `dwell: {page, at_least}` shorthand.
    static func parseCondition(_ node: Node, reader: YAMLReader, compiler: inout ConditionCompiler, text: inout String) throws(SourceError) -> Condition {
        switch node {
        case .scalar(let scalar):
            guard !scalar.string.trimmingSpaces.isEmpty else { throw reader.error(node, "the condition is empty") }
            let offset = scalar.style == .singleQuoted || scalar.style == .doubleQuoted ? 1 : 0
            text = scalar.string
            return try compiler.compile(scalar.string, file: reader.file, line: node.mark?.line ?? 1, column: (node.mark?.column ?? 1) + offset)
        case .sequence(let items):
            return try list(Array(items), node: node, join: "and", reader: reader, compiler: &compiler, text: &text, make: Condition.all)
        case .mapping(let mapping):
            guard mapping.count == 1, let (keyNode, value) = mapping.first(where: { _ in true }), let key = keyNode.scalar?.string else {
                throw reader.error(node, "a condition mapping has one key: all, any, not or dwell")
            }
            switch key {
            case "all", "any":
                guard case .sequence(let items) = value else { throw reader.error(value, "'\(key)' takes a list of conditions") }
                return try list(Array(items), node: value, join: key == "all" ? "and" : "or", reader: reader, compiler: &compiler, text: &text,
                                make: key == "all" ? Condition.all : Condition.any)
            case "not":
                var inner = ""
                let condition = try parseCondition(value, reader: reader, compiler: &compiler, text: &inner)
                text = "not (\(inner))"
                return .not(condition)
            case "dwell":
                let dwell = try reader.mapping(value, what: "'dwell'", allowed: ["page", "at_least"])
                guard let pageNode = dwell["page"] else { throw reader.error(value, "'dwell' needs 'page' (a path glob such as /checkout/*)") }
                let page = try reader.nonEmptyString(pageNode, what: "page")
                if let problem = globProblem(page) { throw reader.error(pageNode, "invalid glob \"\(page)\": \(problem)") }
                guard let atLeastNode = dwell["at_least"] else { throw reader.error(value, "'dwell' needs 'at_least' (a duration such as 45s)") }
                let atLeast = try positiveDuration(atLeastNode, reader, "at_least")
                text = "page.path ~ \"\(page)\" and page_dwell_seconds >= \(atLeast)"
                let path = try compiler.pathTest(.glob(PathGlob(page)), at: 0)
                return .all([path, .feature(.pageDwellSeconds, .ge, Double(atLeast.value) / 1000)])
            default:
                let hint = ["all", "any", "not", "dwell"].min { editDistance(key, $0) < editDistance(key, $1) }!
                throw reader.error(keyNode, "unknown condition '\(key)'; did you mean '\(hint)'? (all, any, not, dwell, or an expression string)")
            }
        default:
            throw reader.error(node, "a condition is an expression string, a list, or all/any/not")
        }
    }

    private static func list(
        _ items: [Node], node: Node, join: String, reader: YAMLReader, compiler: inout ConditionCompiler, text: inout String,
        make: ([Condition]) -> Condition
    ) throws(SourceError) -> Condition {
        guard !items.isEmpty else { throw reader.error(node, "an empty list of conditions; give at least one") }
        var parts: [Condition] = []
        var texts: [String] = []
        for item in items {
            var t = ""
            parts.append(try parseCondition(item, reader: reader, compiler: &compiler, text: &t))
            texts.append(items.count > 1 ? "(\(t))" : t)
        }
        text = texts.joined(separator: " \(join) ")
        return parts.count == 1 ? parts[0] : make(parts)
    }
}

/// Placeholders in payload texts, filled in when a decision is made.
enum Placeholder {
    static func isKnown(_ name: String, intents: [String]) -> Bool {
        if name == "page.path" || name == "channel" || Feature(rawValue: name) != nil { return true }
        if name.hasPrefix("intent.") { return intents.contains(String(name.dropFirst(7))) }
        return false
    }
}

/// Every problem found in a rule set; the set is refused as a whole.
public struct RuleSetErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [SourceError]
    public init(errors: [SourceError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
