import Yams

/// A rule test (`Rules/tests/*.yaml`): a timeline of events and the decisions and
/// suppressions it must give, exactly.
///
///     name: hesitation on the payment page gets a coupon
///     visitor: v1                       # default visitor of the events
///     events:
///       - {at: 0s, type: page_view, page: /checkout/payment}
///       - {at: 5s, type: add_to_cart, properties: {sku: A1, price: 80}}
///       - {at: 50s, type: exit_intent, page: /checkout/payment}
///     expect:
///       decisions:
///         - {at: 50s, rule: checkout-payment-coupon, action: coupon, payload: {code: STAY10}}
///       suppressions: []
///
/// Events are written as JSON and go through the real decoder, so a fixture cannot use
/// an event the trackers could not send. They arrive in time order, each at its own
/// time; after the last one the partition goes idle for `until` (default 1h) so every
/// timer fires. A property value `{last_decision}` is replaced by the id of the visitor's
/// latest decision (for `offer_dismissed`).
public struct RuleFixture: Sendable {
    public struct Step: Sendable {
        var at: Millis
        var json: JSONValue
        var visitor: String
        var line: Int
    }

    public struct Expected: Sendable, Equatable {
        var at: Millis
        var rule: String
        /// Action for decisions, reason for suppressions.
        var what: String
        var experiment: String?
        var visitor: String?
        var payload: [(String, String)]

        public static func == (a: Expected, b: Expected) -> Bool {
            a.at == b.at && a.rule == b.rule && a.what == b.what && a.experiment == b.experiment && a.visitor == b.visitor
                && a.payload.elementsEqual(b.payload, by: { $0 == $1 })
        }
    }

    public var file: String
    public var name: String
    public var start: EventTime
    public var only: [String]?
    public var lateness: Millis
    public var until: Millis
    var steps: [Step]
    var decisions: [Expected]
    var suppressions: [Expected]

    static let keys = ["name", "description", "start", "visitor", "channel", "rules", "lateness", "until", "events", "expect"]

    public static func parse(file: String, text: String) throws(SourceError) -> RuleFixture {
        let reader = YAMLReader(file: file)
        let root = try reader.parse(text)
        let top = try reader.mapping(root, what: "a rule test", allowed: keys)
        let name = try top["name"].map { (n) throws(SourceError) in try reader.nonEmptyString(n, what: "name") } ?? file
        var start = EventTime.parseRFC3339("2026-03-02T10:00:00Z")!
        if let node = top["start"] {
            guard let text = node.scalar?.string, let t = EventTime.parseRFC3339(text) else { throw reader.error(node, "start must be an RFC 3339 time such as 2026-03-02T10:00:00Z") }
            start = t
        }
        let visitor = try top["visitor"].map { (n) throws(SourceError) in try reader.nonEmptyString(n, what: "visitor") } ?? "visitor-1"
        let channel = try top["channel"].map { (n) throws(SourceError) in try reader.nonEmptyString(n, what: "channel") } ?? "web"
        var only: [String]?
        if let node = top["rules"] {
            guard case .sequence(let items) = node else { throw reader.error(node, "rules is a list of rule ids") }
            only = try items.map { (n) throws(SourceError) in try reader.nonEmptyString(n, what: "a rule id") }
        }
        let lateness = try top["lateness"].map { (n) throws(SourceError) in try reader.duration(n, what: "lateness") } ?? .seconds(5)
        let until = try top["until"].map { (n) throws(SourceError) in try reader.duration(n, what: "until") } ?? .minutes(60)
        guard let eventsNode = top["events"], case .sequence(let items) = eventsNode, !items.isEmpty else {
            throw reader.error(top["events"] ?? root, "a rule test needs 'events', a list of {at, type, ...}")
        }
        var steps: [Step] = []
        for (n, item) in items.enumerated() {
            let e = try reader.mapping(item, what: "an event", allowed: ["at", "type", "page", "visitor", "channel", "id", "properties"])
            guard let atNode = e["at"] else { throw reader.error(item, "each event needs 'at' (time since start, e.g. 45s)") }
            let at = try reader.duration(atNode, what: "at")
            guard let typeNode = e["type"] else { throw reader.error(item, "each event needs a 'type'") }
            let type = try reader.string(typeNode, what: "type")
            let who = try e["visitor"].map { (n) throws(SourceError) in try reader.nonEmptyString(n, what: "visitor") } ?? visitor
            var members: [(String, JSONValue)] = [
                ("event_id", .string(try e["id"].map { (n) throws(SourceError) in try reader.string(n, what: "id") } ?? "fixture-\(n + 1)")),
                ("type", .string(type)), ("visitor_id", .string(who)), ("ts", .string((start + at).rfc3339)),
                ("channel", .string(try e["channel"].map { (n) throws(SourceError) in try reader.string(n, what: "channel") } ?? channel)),
            ]
            if let page = e["page"] { members.append(("page", .object([("path", .string(try reader.string(page, what: "page")))]))) }
            if let properties = e["properties"] { members.append(("properties", try json(properties, reader))) }
            steps.append(Step(at: at, json: .object(members), visitor: who, line: item.mark?.line ?? 1))
        }
        var decisions: [Expected] = []
        var suppressions: [Expected] = []
        guard let expectNode = top["expect"] else { throw reader.error(root, "a rule test needs 'expect' with decisions (and suppressions)") }
        let expect = try reader.mapping(expectNode, what: "'expect'", allowed: ["decisions", "suppressions"])
        func list(_ key: String, _ what: String) throws(SourceError) -> [Expected] {
            guard let node = expect[key] else { return [] }
            guard case .sequence(let items) = node else { throw reader.error(node, "\(key) is a list") }
            var out: [Expected] = []
            for item in items {
                let m = try reader.mapping(item, what: "an expected \(key.dropLast())", allowed: ["at", "rule", what, "experiment", "visitor", "payload"])
                guard let at = m["at"], let rule = m["rule"], let w = m[what] else { throw reader.error(item, "each needs at, rule and \(what)") }
                var payload: [(String, String)] = []
                if let p = m["payload"], case .mapping(let pairs) = p {
                    for (k, v) in pairs { payload.append((k.scalar?.string ?? "", v.scalar?.string ?? "")) }
                }
                out.append(Expected(
                    at: try reader.duration(at, what: "at"), rule: try reader.string(rule, what: "rule"), what: try reader.string(w, what: what),
                    experiment: try m["experiment"].map { (n) throws(SourceError) in try reader.string(n, what: "experiment") },
                    visitor: try m["visitor"].map { (n) throws(SourceError) in try reader.string(n, what: "visitor") }, payload: payload))
            }
            return out
        }
        decisions = try list("decisions", "action")
        suppressions = try list("suppressions", "reason")
        return RuleFixture(file: file, name: name, start: start, only: only, lateness: lateness, until: until, steps: steps,
                           decisions: decisions, suppressions: suppressions)
    }

    /// YAML to JSON: plain numbers and true/false keep their type, everything else is a string.
    static func json(_ node: Node, _ reader: YAMLReader) throws(SourceError) -> JSONValue {
        switch node {
        case .scalar(let s):
            if s.style == .plain {
                if s.string == "true" || s.string == "false" { return .bool(s.string == "true") }
                if s.string == "null" { return .null }
                if let d = Double(s.string) { return .number(d) }
            }
            return .string(s.string)
        case .mapping(let m):
            var members: [(String, JSONValue)] = []
            for (k, v) in m { members.append((k.scalar?.string ?? "", try json(v, reader))) }
            return .object(members)
        case .sequence(let items):
            var out: [JSONValue] = []
            for item in items { out.append(try json(item, reader)) }
            return .array(out)
        default:
            throw reader.error(node, "unsupported YAML here")
        }
    }

    /// Runs the timeline through a processor with these rules, policy and model; returns
    /// the differences from what was expected (empty: the test passes).
    public func run(rules: RuleSet, policy: Policy, model: IntentModel) -> [String] {
        var set = rules
        if let only {
            let unknown = only.filter { id in !rules.rules.contains { $0.id == id } }
            if !unknown.isEmpty { return ["\(file): unknown rule ids in 'rules': \(unknown.joined(separator: ", "))"] }
            set = rules.restricted(to: only)
        }
        var configuration = EngineConfiguration()
        configuration.allowedLateness = lateness
        var processor = PartitionProcessor(rules: set, model: model, policy: policy, configuration: configuration)
        let decoder = EventDecoder()
        var decisions: [Decision] = []
        var suppressions: [SuppressedFiring] = []
        var problems: [String] = []
        var last = start
        // Events arrive in time order (the listed order among equal times).
        let arrivals = steps.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
        for (position, step) in arrivals.enumerated() {
            var json = step.json
            if case .object(var members) = json, let i = members.firstIndex(where: { $0.0 == "properties" }), case .object(var properties) = members[i].1 {
                for j in properties.indices where properties[j].1 == .string("{last_decision}") {
                    properties[j].1 = .string(decisions.last { $0.visitorID == step.visitor }?.id ?? "none")
                }
                members[i].1 = .object(properties)
                json = .object(members)
            }
            var writer = JSONWriter()
            writer.value(json)
            let time = start + step.at
            switch decoder.decode(writer.bytes, key: step.visitor, brokerTime: time) {
            case .success(let event):
                decisions += processor.process(event, arrivedAt: time, position: Int64(position))
                suppressions += processor.takeSuppressions()
            case .failure(let failure):
                problems.append("\(file):\(step.line): this event would be dead-lettered: \(failure)")
            }
            last = max(last, time)
        }
        decisions += processor.advanceIdle(wallNow: last + configuration.idleAfter + Millis(1))
        decisions += processor.advanceIdle(wallNow: last + until)
        suppressions += processor.takeSuppressions()
        let gotDecisions = decisions.map { d in
            Expected(at: d.eventTime - start, rule: d.ruleID, what: d.action.rawValue, experiment: d.experiment.rawValue, visitor: d.visitorID, payload: d.payload)
        }
        let gotSuppressions = suppressions.map { s in
            Expected(at: s.eventTime - start, rule: s.ruleID, what: s.reason.rawValue, experiment: nil, visitor: s.visitorID, payload: [])
        }
        problems += Self.compare("decision", expected: self.decisions, got: gotDecisions)
        problems += Self.compare("suppression", expected: self.suppressions, got: gotSuppressions)
        return problems
    }

    /// Expected entries match in order; unset fields (experiment, visitor, payload keys
    /// not listed) are not compared.
    static func compare(_ what: String, expected: [Expected], got: [Expected]) -> [String] {
        func matches(_ e: Expected, _ g: Expected) -> Bool {
            e.at == g.at && e.rule == g.rule && e.what == g.what && (e.experiment == nil || e.experiment == g.experiment)
                && (e.visitor == nil || e.visitor == g.visitor)
                && e.payload.allSatisfy { pair in g.payload.contains { $0 == pair } }
        }
        func show(_ x: Expected) -> String {
            var s = "\(x.at) \(x.rule) \(x.what)"
            if let e = x.experiment { s += " (\(e))" }
            if let v = x.visitor { s += " for \(v)" }
            if !x.payload.isEmpty { s += " payload " + x.payload.map { "\($0.0)=\($0.1)" }.joined(separator: ", ") }
            return s
        }
        if expected.count == got.count && zip(expected, got).allSatisfy(matches) { return [] }
        return ["expected \(what)s:\n" + (expected.isEmpty ? "      (none)" : expected.map { "      " + show($0) }.joined(separator: "\n"))
                + "\n    got:\n" + (got.isEmpty ? "      (none)" : got.map { "      " + show($0) }.joined(separator: "\n"))]
    }
}

extension RuleSet {
    /// The same rules, only those with these ids (re-read from their text).
    public func restricted(to ids: [String]) -> RuleSet {
        let files = rules.filter { ids.contains($0.id) }.map { (name: $0.file, text: $0.sourceText) }
        return (try? RuleSet.load(files: files, intents: intentNames).get()) ?? .empty
    }
}
