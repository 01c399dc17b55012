import Yams

/// What keeps Beckon from pestering anyone, whatever the rules say (`Rules/policy.yaml`).
///
/// Enforced in the core, per visitor and in event time, so a replay after a restart
/// enforces it exactly as the uninterrupted run did.
public struct Policy: Sendable, Equatable {
    /// No two prompts to one visitor closer than this, whichever rules fire. Default 2m.
    public var minimumGap: Millis
    /// No prompt while a chat with a human agent is in progress. Default true.
    public var quietDuringHumanChat: Bool
    /// At most this many prompts per visitor and session (holdouts count). Default 3.
    public var maxPerSession: Int
    /// At most this many prompts per visitor and UTC day of event time. Default 5.
    public var maxPerDay: Int
    /// Cooldown of a rule that sets none: no second firing for one visitor within it. Default 30m.
    public var defaultCooldown: Millis
    /// After `offer_dismissed`, no prompt of the dismissed action for this long. Default 1h.
    public var dismissedBackoff: Millis
    /// Coupons per hour of event time, per partition (nil: no budget). Per partition so that
    /// it is deterministic and survives rebalances; topic-wide the most is partitions × this.
    public var couponsPerHour: Int?

    public init(
        minimumGap: Millis = .minutes(2), quietDuringHumanChat: Bool = true, maxPerSession: Int = 3, maxPerDay: Int = 5,
        defaultCooldown: Millis = .minutes(30), dismissedBackoff: Millis = .minutes(60), couponsPerHour: Int? = nil
    ) {
        self.minimumGap = minimumGap
        self.quietDuringHumanChat = quietDuringHumanChat
        self.maxPerSession = maxPerSession
        self.maxPerDay = maxPerDay
        self.defaultCooldown = defaultCooldown
        self.dismissedBackoff = dismissedBackoff
        self.couponsPerHour = couponsPerHour
    }

    public static let standard = Policy()

    /// Why a firing was not shown; every suppression is stored for analysts.
    public enum Suppression: String, Sendable, CaseIterable {
        case cooldown
        case cap
        case minGap = "min_gap"
        case inChat = "in_chat"
        case dismissedBackoff = "dismissed_backoff"
        case budget
        case lowerPriority = "lower_priority"
        case holdout
    }

    static let keys = ["min_gap", "quiet_during_human_chat", "max_per_session", "max_per_day", "default_cooldown", "dismissed_backoff", "coupon_budget"]

    public static func load(file: String, text: String) -> Result<Policy, RuleSetErrors> {
        do throws(SourceError) {
            let reader = YAMLReader(file: file)
            let top = try reader.mapping(try reader.parse(text), what: "the policy", allowed: keys)
            var policy = Policy()
            if let node = top["min_gap"] { policy.minimumGap = try reader.duration(node, what: "min_gap") }
            if let node = top["quiet_during_human_chat"] {
                guard let value = node.bool else { throw reader.error(node, "quiet_during_human_chat must be true or false") }
                policy.quietDuringHumanChat = value
            }
            func positive(_ key: String) throws(SourceError) -> Int? {
                guard let node = top[key] else { return nil }
                let value = try reader.int(node, what: key)
                guard value >= 1 else { throw reader.error(node, "\(key) must be at least 1 (to silence a rule, remove it)") }
                return value
            }
            if let value = try positive("max_per_session") { policy.maxPerSession = value }
            if let value = try positive("max_per_day") { policy.maxPerDay = value }
            if let node = top["default_cooldown"] { policy.defaultCooldown = try reader.duration(node, what: "default_cooldown") }
            if let node = top["dismissed_backoff"] { policy.dismissedBackoff = try reader.duration(node, what: "dismissed_backoff") }
            if let node = top["coupon_budget"] {
                let budget = try reader.mapping(node, what: "coupon_budget", allowed: ["per_hour", "scope"])
                guard let perHour = budget["per_hour"] else { throw reader.error(node, "coupon_budget needs per_hour (coupons per hour of event time)") }
                let value = try reader.int(perHour, what: "per_hour")
                guard value >= 0 else { throw reader.error(perHour, "per_hour must be 0 or more") }
                if let scope = budget["scope"], scope.scalar?.string != "partition" {
                    throw reader.error(scope, "the only scope is 'partition' (each partition counts its own coupons, deterministically)")
                }
                policy.couponsPerHour = value
            }
            return .success(policy)
        } catch {
            return .failure(RuleSetErrors(errors: [error]))
        }
    }
}
