#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Yams

/// Logistic intent models over catalogue features (`Rules/models/intent.yaml`).
///
/// score = 1 / (1 + e^−(bias + Σ weight × min(feature, cap))), in [0, 1].
public struct IntentModel: Sendable, Equatable {
    public struct Term: Sendable, Equatable {
        public var feature: Feature
        public var weight: Double
        /// Feature values above the cap count as the cap (nil: no cap).
        public var cap: Double?
    }

    public struct Intent: Sendable, Equatable {
        public var name: String
        public var description: String
        public var bias: Double
        public var terms: [Term]

        public func score(_ value: (Feature) -> Double) -> Double {
            var z = bias
            for term in terms {
                let x = value(term.feature)
                z += term.weight * (term.cap.map { min(x, $0) } ?? x)
            }
            return 1 / (1 + exp(-z))
        }
    }

    /// In file order; decisions list scores in this order.
    public var intents: [Intent]
    public var pageClasses: PageClassifier

    public init(intents: [Intent], pageClasses: PageClassifier = .standard) {
        self.intents = intents
        self.pageClasses = pageClasses
    }

    public static let empty = IntentModel(intents: [])

    /// Scores are kept inline per visitor; a model may define at most this many intents.
    public static let maximumIntents = 8

    /// Intents every model must define: the rules and analysts rely on them.
    public static let requiredIntents = ["needs_help", "abandonment_risk", "price_sensitivity", "frustration", "high_value"]

    /// Every feature the model reads, once each.
    public var features: [Feature] {
        var seen = Set<Feature>()
        return intents.flatMap(\.terms).map(\.feature).filter { seen.insert($0).inserted }
    }

    public static func load(file: String, text: String) -> Result<IntentModel, RuleSetErrors> {
        do throws(SourceError) {
            return .success(try parse(file: file, text: text))
        } catch {
            return .failure(RuleSetErrors(errors: [error]))
        }
    }

    static func parse(file: String, text: String) throws(SourceError) -> IntentModel {
        let reader = YAMLReader(file: file)
        let root = try reader.parse(text)
        let top = try reader.mapping(root, what: "the intent model", allowed: ["intents", "page_classes"])
        guard let intentsNode = top["intents"], case .mapping(let mapping) = intentsNode else {
            throw reader.error(top["intents"] ?? root, "the intent model needs 'intents', a mapping from intent name to its model")
        }
        let featureNames = Feature.allCases.map(\.rawValue)
        var intents: [Intent] = []
        for (nameNode, body) in mapping {
            let name = try reader.nonEmptyString(nameNode, what: "an intent name")
            guard name.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" }) else {
                throw reader.error(nameNode, "intent name '\(name)' may contain only lower-case letters, digits and '_'")
            }
            let fields = try reader.mapping(body, what: "intent '\(name)'", allowed: ["description", "bias", "weights"])
            guard let biasNode = fields["bias"] else { throw reader.error(body, "intent '\(name)' needs a 'bias'") }
            let bias = try reader.double(biasNode, what: "bias")
            guard let weightsNode = fields["weights"], case .mapping(let weights) = weightsNode, !weights.isEmpty else {
                throw reader.error(fields["weights"] ?? body, "intent '\(name)' needs 'weights', a mapping from feature to weight")
            }
            var terms: [Term] = []
            for (featureNode, weightNode) in weights {
                let featureName = try reader.string(featureNode, what: "a feature name")
                guard let feature = Feature(rawValue: featureName) else {
                    throw reader.unknown(featureNode, "feature", featureName, among: featureNames, see: "docs/FEATURES.md")
                }
                guard feature.kind != .category else {
                    throw reader.error(featureNode, "feature '\(featureName)' is a category and cannot be weighted; use a per-class count such as checkout_views")
                }
                if case .mapping = weightNode {
                    let term = try reader.mapping(weightNode, what: "the weight of '\(featureName)'", allowed: ["weight", "cap"])
                    guard let w = term["weight"] else { throw reader.error(weightNode, "'\(featureName)' needs a 'weight'") }
                    let cap = try term["cap"].map { (n) throws(SourceError) in try reader.double(n, what: "cap") }
                    terms.append(Term(feature: feature, weight: try reader.double(w, what: "weight"), cap: cap))
                } else {
                    terms.append(Term(feature: feature, weight: try reader.double(weightNode, what: "the weight of '\(featureName)'"), cap: nil))
                }
            }
            let description = try fields["description"].map { (n) throws(SourceError) in try reader.string(n, what: "description") } ?? ""
            intents.append(Intent(name: name, description: description, bias: bias, terms: terms))
        }
        if intents.count > maximumIntents {
            throw reader.error(intentsNode, "the intent model defines \(intents.count) intents; at most \(maximumIntents) are supported")
        }
        for required in requiredIntents where !intents.contains(where: { $0.name == required }) {
            throw reader.error(intentsNode, "the intent model must define '\(required)' (required: \(requiredIntents.joined(separator: ", ")))")
        }
        var classifier = PageClassifier.standard
        if let classesNode = top["page_classes"] {
            guard case .mapping(let classes) = classesNode else {
                throw reader.error(classesNode, "page_classes must map a page class to a list of path globs")
            }
            var patterns: [(PageClass, PathGlob)] = []
            for (classNode, globsNode) in classes {
                let className = try reader.string(classNode, what: "a page class")
                guard let pageClass = PageClass(rawValue: className) else {
                    throw reader.unknown(classNode, "page class", className, among: PageClass.allCases.map(\.rawValue), see: nil)
                }
                guard case .sequence(let globs) = globsNode else { throw reader.error(globsNode, "page class '\(className)' needs a list of path globs") }
                for globNode in globs {
                    let glob = try reader.nonEmptyString(globNode, what: "a path glob")
                    guard glob.hasPrefix("/") else { throw reader.error(globNode, "path glob '\(glob)' must start with '/'") }
                    patterns.append((pageClass, PathGlob(glob)))
                }
            }
            classifier = PageClassifier(patterns: patterns)
        }
        return IntentModel(intents: intents, pageClasses: classifier)
    }
}

extension YAMLReader {
    func double(_ node: Node, what: String) throws(SourceError) -> Double {
        guard case .scalar(let scalar) = node, let value = Double(scalar.string), value.isFinite else {
            throw error(node, "\(what) must be a number")
        }
        return value
    }

    func unknown(_ node: Node, _ kind: String, _ name: String, among names: [String], see: String?) -> SourceError {
        let best = names.map { ($0, editDistance(name, $0)) }.min { $0.1 < $1.1 }
        let hint = best.flatMap { $0.1 <= max(2, name.count / 3) ? "; did you mean '\($0.0)'?" : nil } ?? (see.map { "; see \($0)" } ?? "")
        return error(node, "unknown \(kind) '\(name)'\(hint)")
    }
}
