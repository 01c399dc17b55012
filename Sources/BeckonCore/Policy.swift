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

    public init(minimumGap: Millis = .minutes(2), quietDuringHumanChat: Bool = true) {
        self.minimumGap = minimumGap
        self.quietDuringHumanChat = quietDuringHumanChat
    }

    public static let standard = Policy()

    /// Why a firing was not shown; stored for analysts (issue 7 adds more reasons).
    public enum Suppression: String, Sendable, CaseIterable {
        case minGap = "min_gap"
        case inChat = "in_chat"
    }

    public static func load(file: String, text: String) -> Result<Policy, RuleSetErrors> {
        do throws(SourceError) {
            let reader = YAMLReader(file: file)
            let top = try reader.mapping(try reader.parse(text), what: "the policy", allowed: ["min_gap", "quiet_during_human_chat"])
            var policy = Policy()
            if let node = top["min_gap"] { policy.minimumGap = try reader.duration(node, what: "min_gap") }
            if let node = top["quiet_during_human_chat"] {
                guard let value = node.bool else { throw reader.error(node, "quiet_during_human_chat must be true or false") }
                policy.quietDuringHumanChat = value
            }
            return .success(policy)
        } catch {
            return .failure(RuleSetErrors(errors: [error]))
        }
    }
}
