import Yams

/// A problem in a rules, model or config file, with the place it was found.
public struct SourceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `Rules/checkout.yaml:4:3: unknown key 'priorty'; did you mean 'priority'?`
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Strict reading of YAML nodes: unknown keys and wrong types are errors with a location.
struct YAMLReader {
    let file: String

    func parse(_ text: String) throws(SourceError) -> Node {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw SourceError(file: file, line: 1, column: 1, message: "the file is empty")
            }
            return node
        } catch let error as SourceError {
            throw error
        } catch let error as YamlError {
            throw yamlError(error)
        } catch {
            throw SourceError(file: file, line: 1, column: 1, message: "cannot read YAML: \(error)")
        }
    }

    private func yamlError(_ error: YamlError) -> SourceError {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            let detail = context.map { "\(problem) \($0.text)" } ?? problem
            return SourceError(file: file, line: mark.line, column: mark.column, message: "YAML syntax error: \(detail)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return SourceError(file: file, line: context.mark.line, column: context.mark.column,
                               message: "duplicate key \(duplicates.joined(separator: ", "))")
        default:
            return SourceError(file: file, line: 1, column: 1, message: "YAML error: \(error)")
        }
    }

    func error(_ node: Node?, _ message: String) -> SourceError {
        SourceError(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1, message: message)
    }

    /// The mapping's pairs, refusing keys not in `allowed`.
    func mapping(_ node: Node, what: String, allowed: [String]) throws(SourceError) -> [String: Node] {
        guard case .mapping(let mapping) = node else { throw error(node, "\(what) must be a mapping") }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else { throw error(keyNode, "keys of \(what) must be plain strings") }
            guard allowed.contains(key) else {
                let hint = closest(key, in: allowed).map { "; did you mean '\($0)'?" } ?? "; allowed: \(allowed.joined(separator: ", "))"
                throw error(keyNode, "unknown key '\(key)' in \(what)\(hint)")
            }
            result[key] = value
        }
        return result
    }

    func string(_ node: Node, what: String) throws(SourceError) -> String {
        guard case .scalar(let scalar) = node else { throw error(node, "\(what) must be a string") }
        return scalar.string
    }

    func nonEmptyString(_ node: Node, what: String) throws(SourceError) -> String {
        let s = try string(node, what: what)
        guard !s.trimmingSpaces.isEmpty else { throw error(node, "\(what) must not be empty") }
        return s
    }

    func int(_ node: Node, what: String) throws(SourceError) -> Int {
        guard case .scalar(let scalar) = node, let value = Int(scalar.string) else { throw error(node, "\(what) must be a whole number") }
        return value
    }

    func duration(_ node: Node, what: String) throws(SourceError) -> Millis {
        guard case .scalar(let scalar) = node, let value = Millis.parse(scalar.string) else {
            throw error(node, "\(what) must be a duration such as 45s, 2m or 1h")
        }
        return value
    }

    private func closest(_ key: String, in candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(key, $0)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(2, key.count / 3) else { return nil }
        return best
    }
}

package func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
