/// The condition language of rule files.
///
/// A condition is a YAML string, or `all:` / `any:` (lists) and `not:` around conditions.
/// A string is an expression:
///
///     page.path ~ "/checkout/payment" and page_dwell_seconds >= 45s
///     intent.frustration > 0.7 or negative_messages >= 2
///     count(form_error where page.path ~ "/settings/workflows/**", 5m) >= 3
///     event == exit_intent and channel in [web, app]
///
/// Names come from the feature catalogue (`docs/FEATURES.md`), `intent.<name>` from the
/// intent model, and `page.path`, `page.class`, `channel`, `event` (the type of the event
/// just seen). Everything is checked when the file is loaded: names, types, globs, regexes.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A comparison between a number the engine computes and a constant.
public enum Comparison: String, Sendable, Equatable {
    case lt = "<", le = "<=", gt = ">", ge = ">=", eq = "==", ne = "!="

    @inline(__always) func holds(_ a: Double, _ b: Double) -> Bool {
        switch self {
        case .lt: a < b
        case .le: a <= b
        case .gt: a > b
        case .ge: a >= b
        case .eq: a == b
        case .ne: a != b
        }
    }
}

/// A compiled condition. Paths, regexes and windowed counts are numbered per rule set,
/// so a page's matches are computed once per distinct path.
public indirect enum Condition: Sendable, Equatable {
    case all([Condition])
    case any([Condition])
    case not(Condition)
    case feature(Feature, Comparison, Double)
    /// An intent score (index into the model's intents).
    case intent(Int, Comparison, Double)
    /// A windowed count (index into `RuleSet.counters`).
    case count(Int, Comparison, Double)
    /// The page matches a path test (index into `RuleSet.pathTests`).
    case path(Int)
    /// The page's class is one of these (bit per `PageClass.ordinal`).
    case pageClass(UInt16)
    case channel([String])
    /// The event just seen is one of these types (bit per `EventType.ordinal`); false at timers.
    case event(UInt32)
}

/// A test of a page path: a glob, a regular expression, or the exact path.
public struct PathTest: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case glob(PathGlob)
        case regex(String)
        case exact(String)
    }

    public let kind: Kind
    private let regex: RegexBox?

    init(_ kind: Kind) throws(RegexError) {
        self.kind = kind
        if case .regex(let pattern) = kind { regex = try RegexBox(pattern) } else { regex = nil }
    }

    public static func == (a: PathTest, b: PathTest) -> Bool { a.kind == b.kind }

    public func matches(_ path: String) -> Bool {
        switch kind {
        case .glob(let glob): glob.matches(path)
        case .exact(let exact): path == exact
        case .regex: regex!.matches(path)
        }
    }

    var text: String {
        switch kind {
        case .glob(let glob): "~ \"\(glob.pattern)\""
        case .regex(let pattern): "=~ \"\(pattern)\""
        case .exact(let path): "== \"\(path)\""
        }
    }
}

struct RegexError: Error {
    var message: String
}

/// A POSIX extended regular expression (regcomp), compiled once; matches anywhere in the
/// path unless anchored with ^ and $.
final class RegexBox: @unchecked Sendable {
    // @unchecked: regexec on a compiled pattern is thread-safe; the pattern is never changed.
    private var compiled = regex_t()

    init(_ pattern: String) throws(RegexError) {
        let status = regcomp(&compiled, pattern, REG_EXTENDED | REG_NOSUB)
        guard status == 0 else {
            var buffer = [CChar](repeating: 0, count: 256)
            regerror(status, &compiled, &buffer, buffer.count)
            let message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            regfree(&compiled)
            throw RegexError(message: message)
        }
    }

    deinit { regfree(&compiled) }

    func matches(_ path: String) -> Bool { regexec(&compiled, path, 0, nil, 0) == 0 }
}

/// A windowed count: events of one type that pass a filter, within a span before now
/// (or in the session). Each visitor keeps the latest `capacity` matching times, which is
/// enough to compare the count with the rule's constant (order-independent: the latest
/// N of a multiset do not depend on arrival order).
public struct CounterSpec: Sendable, Equatable {
    public var type: EventType
    /// On the counted event's page path, page class and channel.
    public var filter: Condition?
    /// Nil: the whole session.
    public var window: Millis?
    public var capacity: Int
    /// Canonical text, e.g. `count(form_error where page.path ~ "/settings/**", 5m)`.
    public var text: String
}

/// What a name in a condition refers to, and how it may be compared.
enum Subject {
    case feature(Feature)
    case intent(Int)
    case count(CounterSpec)
    case path
    case pageClass
    case channel
    case event

    var description: String {
        switch self {
        case .feature(let f):
            switch f.kind {
            case .count: return "\(f.rawValue) (a count)"
            case .seconds: return "\(f.rawValue) (seconds)"
            case .boolean: return "\(f.rawValue) (true or false)"
            case .percent: return "\(f.rawValue) (a percentage)"
            case .money: return "\(f.rawValue) (an amount of money)"
            case .score: return "\(f.rawValue) (a score from -1 to 1)"
            case .category: return "\(f.rawValue) (a page class)"
            }
        case .intent: return "an intent score (0 to 1)"
        case .count(let spec): return "\(spec.text) (a count)"
        case .path: return "page.path (a path)"
        case .pageClass: return "page.class (a page class)"
        case .channel: return "channel (a name)"
        case .event: return "event (an event type)"
        }
    }
}

/// One token of a condition string, with its character offset.
struct Token: Equatable {
    enum Kind: Equatable {
        case name(String)
        case number(Double, unit: String)
        case string(String)
        case symbol(String)
        case end
    }

    var kind: Kind
    var offset: Int

    var text: String {
        switch kind {
        case .name(let s): s
        case .number(let v, let unit): (v == v.rounded() ? String(Int64(v)) : String(v)) + unit
        case .string(let s): "\"\(s)\""
        case .symbol(let s): s
        case .end: "the end"
        }
    }
}

/// Compiles condition strings. Collects path tests and counters into shared tables, so
/// one rule set numbers them once.
struct ConditionCompiler {
    var intents: [String]
    var pathTests: [PathTest] = []
    var counters: [CounterSpec] = []
    /// Where the string being compiled starts in its file.
    var file = ""
    var line = 1
    var column = 1

    static let maximumCount = 31

    init(intents: [String]) { self.intents = intents }

    func error(at offset: Int, _ message: String) -> SourceError {
        SourceError(file: file, line: line, column: column + offset, message: message)
    }

    mutating func compile(_ text: String, file: String, line: Int, column: Int) throws(SourceError) -> Condition {
        self.file = file
        self.line = line
        self.column = column
        var parser = Parser(tokens: try tokenize(text), compiler: self)
        let condition = try parser.expression(inFilter: false)
        guard case .end = parser.peek.kind else {
            throw error(at: parser.peek.offset, "unexpected \(parser.peek.text); join conditions with 'and' or 'or'")
        }
        self = parser.compiler
        return condition
    }

    func tokenize(_ text: String) throws(SourceError) -> [Token] {
        let chars = Array(text)
        var tokens: [Token] = []
        var i = 0
        func isNameStart(_ c: Character) -> Bool { c.isLetter || c == "_" }
        func isName(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == "." || c == "-" }
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace { i += 1; continue }
            let start = i
            if isNameStart(c) {
                while i < chars.count && isName(chars[i]) { i += 1 }
                tokens.append(Token(kind: .name(String(chars[start..<i])), offset: start))
            } else if c.isNumber || (c == "-" && i + 1 < chars.count && chars[i + 1].isNumber) {
                i += 1
                while i < chars.count && (chars[i].isNumber || chars[i] == ".") { i += 1 }
                let digits = String(chars[start..<i])
                var unitEnd = i
                while unitEnd < chars.count && (chars[unitEnd].isLetter || chars[unitEnd] == "%") { unitEnd += 1 }
                let unit = String(chars[i..<unitEnd])
                guard let value = Double(digits) else { throw error(at: start, "'\(digits)' is not a number") }
                guard ["", "ms", "s", "m", "h", "d", "%"].contains(unit) else {
                    throw error(at: i, "unknown unit '\(unit)'; use ms, s, m, h or d for durations, or % for shares")
                }
                i = unitEnd
                tokens.append(Token(kind: .number(value, unit: unit), offset: start))
            } else if c == "\"" || c == "'" {
                i += 1
                var value = ""
                while i < chars.count && chars[i] != c {
                    if chars[i] == "\\" && c == "\"" && i + 1 < chars.count { i += 1 }
                    value.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { throw error(at: start, "this string has no closing \(c)") }
                i += 1
                tokens.append(Token(kind: .string(value), offset: start))
            } else {
                let two = i + 1 < chars.count ? String(chars[i...i + 1]) : ""
                if [">=", "<=", "==", "!=", "=~", "!~", "&&", "||"].contains(two) {
                    tokens.append(Token(kind: .symbol(two), offset: start))
                    i += 2
                } else if "<>~()[],!".contains(c) {
                    tokens.append(Token(kind: .symbol(String(c)), offset: start))
                    i += 1
                } else if c == "=" {
                    throw error(at: start, "'=' is not an operator; compare with '=='")
                } else {
                    throw error(at: start, "unexpected character '\(c)'")
                }
            }
        }
        tokens.append(Token(kind: .end, offset: chars.count))
        return tokens
    }

    /// The subject a name refers to, or an error that suggests the closest name.
    func subject(_ name: String, at offset: Int, inFilter: Bool) throws(SourceError) -> Subject {
        switch name {
        case "page.path": return .path
        case "page.class", "page_class": return .pageClass
        case "channel": return .channel
        case "event", "event.type":
            if inFilter { throw error(at: offset, "a count's filter already names its event type; test page.path, page.class or channel") }
            return .event
        default: break
        }
        if inFilter {
            throw error(at: offset, "a count's filter may test only page.path, page.class and channel of the counted event, not '\(name)'")
        }
        if name.hasPrefix("intent.") {
            let intent = String(name.dropFirst("intent.".count))
            guard let index = intents.firstIndex(of: intent) else {
                if intents.isEmpty { throw error(at: offset, "unknown intent '\(intent)': there is no intent model (Rules/models/intent.yaml)") }
                let hint = closest(intent, in: intents).map { "did you mean 'intent.\($0)'? " } ?? ""
                throw error(at: offset, "unknown intent '\(intent)'; \(hint)intents: \(intents.joined(separator: ", "))")
            }
            return .intent(index)
        }
        if let feature = Feature(rawValue: name) { return .feature(feature) }
        let names = Feature.allCases.map(\.rawValue) + ["page.path", "page.class", "channel", "event"] + intents.map { "intent.\($0)" }
        let hint = closest(name, in: names).map { "; did you mean '\($0)'?" } ?? "; see docs/FEATURES.md for the names"
        throw error(at: offset, "unknown feature '\(name)'\(hint)")
    }

    func closest(_ key: String, in candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(key, $0)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(2, key.count / 3) else { return nil }
        return best
    }

    mutating func pathTest(_ kind: PathTest.Kind, at offset: Int) throws(SourceError) -> Condition {
        let test: PathTest
        do {
            test = try PathTest(kind)
        } catch {
            throw self.error(at: offset, "invalid regular expression: \(error.message)")
        }
        if let index = pathTests.firstIndex(of: test) { return .path(index) }
        pathTests.append(test)
        return .path(pathTests.count - 1)
    }

    mutating func counter(_ spec: CounterSpec) -> Int {
        if let index = counters.firstIndex(where: { $0.text == spec.text }) {
            counters[index].capacity = max(counters[index].capacity, spec.capacity)
            return index
        }
        counters.append(spec)
        return counters.count - 1
    }
}

/// Checks a glob for what `PathGlob` cannot mean.
func globProblem(_ pattern: String) -> String? {
    if !pattern.hasPrefix("/") { return "a path glob starts with '/', e.g. \"/checkout/*\"" }
    if pattern.contains("***") { return "'***' means nothing; use '*' (one segment) or '**' (any depth)" }
    if pattern.contains(where: { $0 == "[" || $0 == "]" || $0 == "{" || $0 == "}" }) {
        return "globs have no [ ] or { }; use a regular expression (page.path =~ \"...\") for those"
    }
    if pattern.contains(where: \.isWhitespace) { return "a path glob has no spaces" }
    return nil
}

struct Parser {
    var tokens: [Token]
    var position = 0
    var compiler: ConditionCompiler

    var peek: Token { tokens[position] }

    mutating func next() -> Token {
        let t = tokens[position]
        if position < tokens.count - 1 { position += 1 }
        return t
    }

    func isWord(_ word: String) -> Bool {
        if case .name(let n) = peek.kind { return n == word }
        return false
    }

    func isSymbol(_ symbol: String) -> Bool {
        if case .symbol(let s) = peek.kind { return s == symbol }
        return false
    }

    mutating func expect(_ symbol: String, _ what: String) throws(SourceError) {
        guard isSymbol(symbol) else { throw compiler.error(at: peek.offset, "expected '\(symbol)' \(what), found \(peek.text)") }
        _ = next()
    }

    mutating func expression(inFilter: Bool) throws(SourceError) -> Condition {
        var parts = [try conjunction(inFilter: inFilter)]
        while isWord("or") || isSymbol("||") {
            _ = next()
            parts.append(try conjunction(inFilter: inFilter))
        }
        return parts.count == 1 ? parts[0] : .any(parts)
    }

    mutating func conjunction(inFilter: Bool) throws(SourceError) -> Condition {
        var parts = [try unary(inFilter: inFilter)]
        while isWord("and") || isSymbol("&&") {
            _ = next()
            parts.append(try unary(inFilter: inFilter))
        }
        return parts.count == 1 ? parts[0] : .all(parts)
    }

    mutating func unary(inFilter: Bool) throws(SourceError) -> Condition {
        if isWord("not") || isSymbol("!") {
            _ = next()
            return .not(try unary(inFilter: inFilter))
        }
        if isSymbol("(") {
            _ = next()
            let inner = try expression(inFilter: inFilter)
            try expect(")", "to close '('")
            return inner
        }
        return try comparison(inFilter: inFilter)
    }

    mutating func comparison(inFilter: Bool) throws(SourceError) -> Condition {
        let start = peek
        let subject: Subject
        switch start.kind {
        case .name("count"):
            if inFilter { throw compiler.error(at: start.offset, "a count's filter cannot contain another count") }
            _ = next()
            subject = .count(try countSpec())
        case .name(let name):
            _ = next()
            subject = try compiler.subject(name, at: start.offset, inFilter: inFilter)
        case .end:
            throw compiler.error(at: start.offset, "expected a condition, found the end; e.g. cart_items >= 1")
        default:
            throw compiler.error(at: start.offset, "expected a feature name, found \(start.text)")
        }
        let opToken = peek
        var op: String?
        if case .symbol(let s) = opToken.kind, ["<", "<=", ">", ">=", "==", "!=", "~", "!~", "=~"].contains(s) { op = s }
        if isWord("in") { op = "in" }
        guard let op else {
            // A bare name: a true/false feature.
            if case .feature(let f) = subject, f.kind == .boolean { return .feature(f, .ge, 1) }
            throw compiler.error(at: start.offset, "\(subject.description) needs a comparison, e.g. \(example(subject))")
        }
        _ = next()
        return try compare(subject, op: op, opOffset: opToken.offset, subjectOffset: start.offset)
    }

    func example(_ subject: Subject) -> String {
        switch subject {
        case .feature(let f) where f.kind == .seconds: "\(f.rawValue) >= 45s"
        case .feature(let f) where f.kind == .category: "\(f.rawValue) == checkout"
        case .feature(let f): "\(f.rawValue) >= 1"
        case .intent: "intent.needs_help > 0.7"
        case .count(let spec): "\(spec.text) >= 3"
        case .path: "page.path ~ \"/checkout/*\""
        case .pageClass: "page.class == checkout"
        case .channel: "channel == web"
        case .event: "event == exit_intent"
        }
    }

    /// `count(TYPE [where FILTER] [, WINDOW])`; the window defaults to the session.
    mutating func countSpec() throws(SourceError) -> CounterSpec {
        try expect("(", "after count")
        let typeToken = next()
        guard case .name(let typeName) = typeToken.kind else {
            throw compiler.error(at: typeToken.offset, "count( needs an event type first, e.g. count(form_error, 5m)")
        }
        guard let type = EventType(rawValue: typeName) else {
            let hint = compiler.closest(typeName, in: EventType.allCases.map(\.rawValue)).map { "did you mean '\($0)'? " } ?? ""
            throw compiler.error(at: typeToken.offset, "unknown event type '\(typeName)'; \(hint)see Schemas/events/")
        }
        var filter: Condition?
        var filterText = ""
        if isWord("where") {
            _ = next()
            let from = position
            filter = try expression(inFilter: true)
            filterText = " where " + tokens[from..<position].map(\.text).joined(separator: " ")
        }
        var window: Millis?
        if isSymbol(",") {
            _ = next()
            let w = next()
            switch w.kind {
            case .name("session"): window = nil
            case .number(let value, let unit) where !unit.isEmpty && unit != "%":
                guard let millis = Millis.parse("\(value == value.rounded() ? String(Int64(value)) : String(value))\(unit)"), millis.value > 0 else {
                    throw compiler.error(at: w.offset, "the window must be a duration longer than 0, e.g. 5m")
                }
                window = millis
            default:
                throw compiler.error(at: w.offset, "the window of a count is a duration such as 5m, or 'session'; found \(w.text)")
            }
        }
        try expect(")", "to close count(")
        let text = "count(\(typeName)\(filterText)\(window.map { ", \($0)" } ?? ""))"
        return CounterSpec(type: type, filter: filter, window: window, capacity: 1, text: text)
    }

    mutating func compare(_ subject: Subject, op: String, opOffset: Int, subjectOffset: Int) throws(SourceError) -> Condition {
        let valueToken = peek
        func mismatch(_ found: String) -> SourceError {
            compiler.error(at: valueToken.offset, "cannot compare \(subject.description) with \(found)")
        }
        func numericOp() throws(SourceError) -> Comparison {
            guard let c = Comparison(rawValue: op) else {
                throw compiler.error(at: opOffset, "'\(op)' does not apply to \(subject.description); use <, <=, >, >=, == or !=")
            }
            return c
        }
        func names() throws(SourceError) -> [(String, Int)] {
            if isSymbol("[") {
                _ = next()
                var out: [(String, Int)] = []
                while !isSymbol("]") {
                    let t = next()
                    switch t.kind {
                    case .name(let s), .string(let s): out.append((s, t.offset))
                    default: throw compiler.error(at: t.offset, "expected a name in the list, found \(t.text)")
                    }
                    if isSymbol(",") { _ = next() } else if !isSymbol("]") {
                        throw compiler.error(at: peek.offset, "expected ',' or ']' in the list, found \(peek.text)")
                    }
                }
                _ = next()
                return out
            }
            let t = next()
            switch t.kind {
            case .name(let s), .string(let s): return [(s, t.offset)]
            case .number: throw mismatch("a number")
            default: throw compiler.error(at: t.offset, "expected a name, found \(t.text)")
            }
        }
        func setOp(_ condition: Condition) throws(SourceError) -> Condition {
            switch op {
            case "==", "in": return condition
            case "!=": return .not(condition)
            default: throw compiler.error(at: opOffset, "'\(op)' does not apply to \(subject.description); use ==, != or in [...]")
            }
        }
        switch subject {
        case .feature(let f) where f.kind == .boolean:
            let t = next()
            let value: Double
            switch t.kind {
            case .name("true"): value = 1
            case .name("false"): value = 0
            case .number(let v, "") where v == 0 || v == 1: value = v
            case .string: throw mismatch("a string")
            default: throw mismatch(t.text)
            }
            guard op == "==" || op == "!=" else { throw compiler.error(at: opOffset, "\(f.rawValue) is true or false: use == or !=, or just '\(f.rawValue)'") }
            return .feature(f, op == "==" ? .eq : .ne, value)
        case .feature(.pageClass), .pageClass:
            var mask: UInt16 = 0
            for (name, offset) in try names() {
                guard let c = PageClass(rawValue: name) else {
                    throw compiler.error(at: offset, "unknown page class '\(name)'; classes: \(PageClass.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                mask |= 1 << UInt16(c.ordinal)
            }
            return try setOp(.pageClass(mask))
        case .feature(let f):
            let c = try numericOp()
            return .feature(f, c, try number(for: f.kind, subject: subject))
        case .intent(let index):
            let c = try numericOp()
            let v = try number(for: .score, subject: subject)
            guard v >= 0 && v <= 1 else { throw compiler.error(at: valueToken.offset, "intent scores are between 0 and 1 (or 0% and 100%); \(valueToken.text) can never be reached") }
            return .intent(index, c, v)
        case .count(var spec):
            let c = try numericOp()
            let v = try number(for: .count, subject: subject)
            guard v >= 0, v == v.rounded() else { throw compiler.error(at: valueToken.offset, "a count compares with a whole number ≥ 0") }
            guard v <= Double(ConditionCompiler.maximumCount) else {
                throw compiler.error(at: valueToken.offset, "windowed counts compare with at most \(ConditionCompiler.maximumCount); use a session feature for totals")
            }
            spec.capacity = Int(v) + 1
            return .count(compiler.counter(spec), c, v)
        case .path:
            let t = next()
            guard case .string(let text) = t.kind else {
                if case .name(let n) = t.kind { throw compiler.error(at: t.offset, "quote the path: \"\(n)\"") }
                throw mismatch(t.text)
            }
            switch op {
            case "~", "!~":
                if let problem = globProblem(text) { throw compiler.error(at: t.offset, "invalid glob \"\(text)\": \(problem)") }
                let test = try compiler.pathTest(.glob(PathGlob(text)), at: t.offset)
                return op == "~" ? test : .not(test)
            case "=~":
                return try compiler.pathTest(.regex(text), at: t.offset)
            case "==", "!=":
                let test = try compiler.pathTest(.exact(text), at: t.offset)
                return op == "==" ? test : .not(test)
            default:
                throw compiler.error(at: opOffset, "'\(op)' does not apply to page.path; use ~ (glob), =~ (regex), == or !=")
            }
        case .channel:
            return try setOp(.channel(try names().map(\.0)))
        case .event:
            var mask: UInt32 = 0
            for (name, offset) in try names() {
                guard let type = EventType(rawValue: name) else {
                    let hint = compiler.closest(name, in: EventType.allCases.map(\.rawValue)).map { "did you mean '\($0)'? " } ?? ""
                    throw compiler.error(at: offset, "unknown event type '\(name)'; \(hint)see Schemas/events/")
                }
                mask |= 1 << UInt32(type.ordinal)
            }
            return try setOp(.event(mask))
        }
    }

    /// A constant for a numeric subject: durations only for seconds, % for scores and percentages.
    mutating func number(for kind: Feature.Kind, subject: Subject) throws(SourceError) -> Double {
        let t = next()
        switch t.kind {
        case .number(let v, ""):
            return v
        case .number(let v, "%"):
            switch kind {
            case .score: return v / 100
            case .percent: return v
            default: throw compiler.error(at: t.offset, "\(subject.description) is not a share; drop the %")
            }
        case .number(_, _):
            guard kind == .seconds, let millis = Millis.parse(t.text) else {
                throw compiler.error(at: t.offset, "\(subject.description) is not a duration; compare it with a plain number")
            }
            return Double(millis.value) / 1000
        case .string: throw compiler.error(at: t.offset, "cannot compare \(subject.description) with a string")
        case .name("true"), .name("false"): throw compiler.error(at: t.offset, "cannot compare \(subject.description) with true or false")
        default: throw compiler.error(at: t.offset, "expected a number after the comparison, found \(t.text)")
        }
    }
}
