/// What Beckon asks a chat frontend to do.
public enum Action: String, Sendable, CaseIterable, Hashable {
    case offerHelp = "offer_help"
    case coupon
    case handoff
}

/// Whether the visitor sees the prompt or is held out to measure uplift.
public enum Experiment: String, Sendable, Hashable {
    case treatment
    case holdout
}

/// One decision, as published on `beckon.decisions` and stored in PostgreSQL
/// (`Schemas/decision.schema.json`).
public struct Decision: Sendable, Equatable {
    /// Deterministic from visitor, rule and trigger: a replay yields the same id.
    public var id: String
    public var visitorID: String
    public var userID: String?
    public var action: Action
    public var ruleID: String
    public var ruleVersion: String
    /// The intent scores when the rule fired, rounded to 0.001, by intent name.
    public var intent: [(String, Double)] {
        intentNames.indices.map { (intentNames[$0], (Double(scores[$0]) * 1000).rounded() / 1000) }
    }
    /// Why: the condition, when it became true, and what made it true.
    public var reason: String {
        let page = self.page.map { " on \($0)" } ?? ""
        let after = cause.map { "\($0.rawValue) event\(page)" } ?? "time passing\(page)"
        return "\(condition) — became true at \(eventTime.rfc3339) after \(after)"
    }
    public var payload: [(String, String)]
    public var channel: String
    public var eventTime: EventTime
    /// Wall-clock time of the decision; the only field a replay may change.
    public var decidedAt: EventTime
    public var expiresAt: EventTime
    public var triggerEventID: String
    public var experiment: Experiment

    // What `intent` and `reason` are made from: the processor keeps these as they are, and
    // the text is written only when the decision is (most of a decision's cost was its text).
    let intentNames: [String]
    let scores: SIMD8<Float>
    let condition: String
    /// The event type that made the condition true; nil: time passing.
    let cause: EventType?
    /// The visitor's page path then.
    let page: String?

    init(id: String, visitorID: String, userID: String?, action: Action, ruleID: String, ruleVersion: String,
         intentNames: [String], scores: SIMD8<Float>, condition: String, cause: EventType?, page: String?,
         payload: [(String, String)], channel: String, eventTime: EventTime, decidedAt: EventTime, expiresAt: EventTime,
         triggerEventID: String, experiment: Experiment) {
        self.id = id
        self.visitorID = visitorID
        self.userID = userID
        self.action = action
        self.ruleID = ruleID
        self.ruleVersion = ruleVersion
        self.intentNames = intentNames
        self.scores = scores
        self.condition = condition
        self.cause = cause
        self.page = page
        self.payload = payload
        self.channel = channel
        self.eventTime = eventTime
        self.decidedAt = decidedAt
        self.expiresAt = expiresAt
        self.triggerEventID = triggerEventID
        self.experiment = experiment
    }

    public static func makeID(visitorID: String, ruleID: String, trigger: String) -> String {
        StableHash.hex("decision", visitorID, ruleID, trigger)
    }

    /// The id of a firing: a rule may fire more than once on one trigger (a page view whose
    /// condition turns false and true again), never twice at one instant.
    public static func makeID(visitorID: String, ruleID: String, trigger: String, at time: EventTime) -> String {
        // The same hash as `makeID(trigger: "\(trigger)@\(ms)")`, without building that string.
        var h = StableHash()
        h.combine("decision")
        h.combine(visitorID)
        h.combine(ruleID)
        h.append(trigger)
        h.append("@")
        h.append(decimal: time.milliseconds)
        h.endPart()
        return h.hex
    }

    public static func == (a: Decision, b: Decision) -> Bool {
        a.id == b.id && a.visitorID == b.visitorID && a.userID == b.userID && a.action == b.action && a.ruleID == b.ruleID
            && a.ruleVersion == b.ruleVersion && a.reason == b.reason && a.channel == b.channel && a.eventTime == b.eventTime
            && a.decidedAt == b.decidedAt && a.expiresAt == b.expiresAt && a.triggerEventID == b.triggerEventID
            && a.experiment == b.experiment && a.intent.elementsEqual(b.intent, by: { $0 == $1 })
            && a.payload.elementsEqual(b.payload, by: { $0 == $1 })
    }

    /// The JSON message for `beckon.decisions`, keys in a fixed order.
    public func jsonBytes() -> [UInt8] {
        var w = JSONWriter()
        w.raw("{\"decision_id\":"); w.string(id)
        w.raw(",\"visitor_id\":"); w.string(visitorID)
        w.raw(",\"user_id\":"); if let userID { w.string(userID) } else { w.raw("null") }
        w.raw(",\"action\":"); w.string(action.rawValue)
        w.raw(",\"rule_id\":"); w.string(ruleID)
        w.raw(",\"rule_version\":"); w.string(ruleVersion)
        w.raw(",\"intent\":"); w.value(.object(intent.map { ($0.0, .number($0.1)) }))
        w.raw(",\"reason\":"); w.string(reason)
        w.raw(",\"payload\":"); w.value(.object(payload.map { ($0.0, .string($0.1)) }))
        w.raw(",\"channel\":"); w.string(channel)
        w.raw(",\"event_time\":"); w.string(eventTime.rfc3339)
        w.raw(",\"decided_at\":"); w.string(decidedAt.rfc3339)
        w.raw(",\"expires_at\":"); w.string(expiresAt.rfc3339)
        w.raw(",\"trigger_event_id\":"); w.string(triggerEventID)
        w.raw(",\"experiment\":"); w.string(experiment.rawValue)
        w.raw("}")
        return w.bytes
    }
}
