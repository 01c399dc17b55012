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
    public var intent: [(String, Double)]
    public var reason: String
    public var payload: [(String, String)]
    public var channel: String
    public var eventTime: EventTime
    /// Wall-clock time of the decision; the only field a replay may change.
    public var decidedAt: EventTime
    public var expiresAt: EventTime
    public var triggerEventID: String
    public var experiment: Experiment

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
        h.append(String(time.milliseconds))
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
