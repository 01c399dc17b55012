import BeckonCore
import Foundation

/// The rules in force for a running instance, and their hot reload.
///
/// `check()` looks at the rules folder (names, sizes and modification times of its YAML
/// files); when something changed, or when forced (SIGHUP), it loads the whole folder
/// again. A valid new set replaces the old one; an invalid one is refused with every
/// error, and the rules in force stay as they were. The intent model is the one the
/// instance started with (a changed model needs a restart: scores are kept per intent).
public final class RuleReloader: @unchecked Sendable {
    // @unchecked: used by the pipeline thread only.
    public let directory: String
    public private(set) var rules: RuleSet
    public private(set) var policy: Policy
    public let model: IntentModel
    private var fingerprint: String
    private let modelText: String?

    public enum Outcome: Sendable, Equatable {
        /// Nothing changed on disk (or the new files define the same rules and policy).
        case unchanged
        /// A new set is in force.
        case replaced(oldVersion: String, newVersion: String)
        /// The folder's files are invalid; the rules in force did not change.
        case refused(RuleSetErrors)
    }

    public init(directory: String, bundle: RuleBundle) {
        self.directory = directory
        self.rules = bundle.rules
        self.policy = bundle.policy
        self.model = bundle.model
        self.fingerprint = RuleFiles.fingerprint(directory: directory)
        self.modelText = try? String(contentsOfFile: (directory as NSString).appendingPathComponent("models/intent.yaml"), encoding: .utf8)
    }

    private var reportedModelText: String?
    /// Whether the last `check()` read the folder (it changed, or the reload was forced).
    public private(set) var lastCheckLoaded = false

    /// True once for each new text of the intent model file that differs from the model in
    /// force (for a one-time warning: a model change needs a restart).
    public func modelChangedSinceLastReport() -> Bool {
        let text = try? String(contentsOfFile: (directory as NSString).appendingPathComponent("models/intent.yaml"), encoding: .utf8)
        guard text != modelText, text != reportedModelText else { return false }
        reportedModelText = text
        return true
    }

    public func check(force: Bool = false) -> Outcome {
        let now = RuleFiles.fingerprint(directory: directory)
        lastCheckLoaded = force || now != fingerprint
        guard lastCheckLoaded else { return .unchanged }
        fingerprint = now
        switch RuleFiles.loadBundle(directory: directory, runningModel: model) {
        case .failure(let errors):
            return .refused(errors)
        case .success(let bundle):
            guard bundle.rules.version != rules.version || bundle.policy != policy else { return .unchanged }
            let old = rules.version
            rules = bundle.rules
            policy = bundle.policy
            return .replaced(oldVersion: old, newVersion: bundle.rules.version)
        }
    }
}
