import Yams

/// A rule: when its trigger holds for a visitor, Beckon makes one decision.
///
/// The walking skeleton understands one trigger, page dwell: "a visitor on a page
/// matching PATTERN for at least N seconds". It is fired by an event-time timer, so it
/// fires even when the visitor sends nothing more.
public struct Rule: Sendable, Equatable {
    public var id: String
    public var description: String
    /// Content hash of the file the rule came from.
    public var version: String
    public var dwellPage: PathGlob
    public var dwellAtLeast: Millis
    public var action: Action
    public var payload: [(String, String)]
    /// Higher wins when several rules fire for one visitor at once.
    public var priority: Int
    /// How long a frontend may still show the prompt after `event_time`.
    public var expiresAfter: Millis
    public var file: String
    /// The file's text, kept so PostgreSQL can store each version that made decisions.
    public var sourceText: String

    public static func == (a: Rule, b: Rule) -> Bool {
        a.id == b.id && a.version == b.version && a.dwellPage == b.dwellPage && a.dwellAtLeast == b.dwellAtLeast
            && a.action == b.action && a.priority == b.priority && a.expiresAfter == b.expiresAfter
            && a.payload.elementsEqual(b.payload, by: { $0 == $1 })
    }
}

/// The rules in force, in a fixed order (by id) so evaluation is deterministic.
public struct RuleSet: Sendable, Equatable {
    public private(set) var rules: [Rule]
    /// Hash over every rule's version: changes whenever any file changes.
    public let version: String

    public init(rules: [Rule]) {
        self.rules = rules.sorted { $0.id < $1.id }
        var hash = StableHash()
        for rule in self.rules { hash.combine(rule.version) }
        self.version = String(hash.hex.prefix(12))
    }

    public static let empty = RuleSet(rules: [])

    /// Loads rule files given as (file name, text). Reports every error found, not just the first.
    public static func load(files: [(name: String, text: String)]) -> Result<RuleSet, RuleSetErrors> {
        var rules: [Rule] = []
        var errors: [SourceError] = []
        var seen: [String: String] = [:]
        for (name, text) in files.sorted(by: { $0.name < $1.name }) {
            do {
                let rule = try parseRule(file: name, text: text)
                if let other = seen[rule.id] {
                    errors.append(SourceError(file: name, line: 1, column: 1, message: "duplicate rule id '\(rule.id)' (also in \(other)); rule ids must be unique"))
                } else {
                    seen[rule.id] = name
                    rules.append(rule)
                }
            } catch {
                errors.append(error)
            }
        }
        return errors.isEmpty ? .success(RuleSet(rules: rules)) : .failure(RuleSetErrors(errors: errors))
    }

    static func parseRule(file: String, text: String) throws(SourceError) -> Rule {
        let reader = YAMLReader(file: file)
        let root = try reader.parse(text)
        let top = try reader.mapping(root, what: "a rule", allowed: ["id", "description", "when", "action", "payload", "priority", "expires_after"])
        guard let idNode = top["id"] else { throw reader.error(root, "a rule needs an 'id'") }
        let id = try reader.nonEmptyString(idNode, what: "id")
        guard id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw reader.error(idNode, "id '\(id)' may contain only letters, digits, '-', '_' and '.'")
        }
        guard let whenNode = top["when"] else { throw reader.error(root, "rule '\(id)' needs a 'when' section") }
        let when = try reader.mapping(whenNode, what: "'when'", allowed: ["dwell"])
        guard let dwellNode = when["dwell"] else { throw reader.error(whenNode, "'when' needs a 'dwell' trigger") }
        let dwell = try reader.mapping(dwellNode, what: "'dwell'", allowed: ["page", "at_least"])
        guard let pageNode = dwell["page"] else { throw reader.error(dwellNode, "'dwell' needs 'page' (a path glob such as /checkout/*)") }
        let page = try reader.nonEmptyString(pageNode, what: "page")
        guard page.hasPrefix("/") else { throw reader.error(pageNode, "page '\(page)' must be a path glob starting with '/'") }
        guard let atLeastNode = dwell["at_least"] else { throw reader.error(dwellNode, "'dwell' needs 'at_least' (a duration such as 45s)") }
        let atLeast = try reader.duration(atLeastNode, what: "at_least")
        guard atLeast.value > 0 else { throw reader.error(atLeastNode, "at_least must be longer than 0s") }
        guard let actionNode = top["action"] else { throw reader.error(root, "rule '\(id)' needs an 'action' (offer_help, coupon or handoff)") }
        let actionName = try reader.string(actionNode, what: "action")
        guard let action = Action(rawValue: actionName) else {
            throw reader.error(actionNode, "unknown action '\(actionName)'; use offer_help, coupon or handoff")
        }
        var payload: [(String, String)] = []
        if let payloadNode = top["payload"] {
            guard case .mapping(let mapping) = payloadNode else { throw reader.error(payloadNode, "payload must be a mapping") }
            for (k, v) in mapping {
                guard let key = k.scalar?.string, let value = v.scalar?.string else {
                    throw reader.error(k, "payload entries must be plain 'key: text' pairs")
                }
                payload.append((key, value))
            }
        }
        if payload.isEmpty { throw reader.error(top["payload"] ?? actionNode, "action \(action.rawValue) needs a payload with at least a 'message'") }
        let priority = try top["priority"].map { (n) throws(SourceError) in try reader.int(n, what: "priority") } ?? 0
        let expires = try top["expires_after"].map { (n) throws(SourceError) in try reader.duration(n, what: "expires_after") } ?? .minutes(2)
        let description = try top["description"].map { (n) throws(SourceError) in try reader.string(n, what: "description") } ?? ""
        return Rule(
            id: id, description: description, version: String(StableHash.hex(text).prefix(12)), dwellPage: PathGlob(page),
            dwellAtLeast: atLeast, action: action, payload: payload, priority: priority, expiresAfter: expires, file: file, sourceText: text)
    }
}

/// Every problem found in a rule set; the set is refused as a whole.
public struct RuleSetErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [SourceError]
    public init(errors: [SourceError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
