/// The per-type `properties` of an event that the core uses, already checked.
///
/// Free text is not here: `chat_message` text and search queries are scored by the
/// decoder's caller and dropped, so they never reach state, decisions or storage.
public struct EventProperties: Sendable, Equatable {
    // Compact: an event type has at most one free-text property, two numbers and a few
    // small enumerations, so they share slots (about 48 bytes instead of 270); the public
    // properties below read and write the slots.

    /// Which free-text property `text` holds.
    private enum TextField: UInt8 { case none, element, sku, field, orderID, goal, decisionID }
    /// Which number `first` / `second` hold.
    private enum NumberField: UInt8 { case none, scrollDepth, searchResults, quantity, step, chatSentiment, price, value }

    private var text: String?
    private var first = 0.0
    private var second = 0.0
    private var textField = TextField.none
    private var firstField = NumberField.none
    private var secondField = NumberField.none
    /// hoverTarget, chatSender, chatWith: index + 1 in their lists (0: none).
    private var hover: UInt8 = 0
    private var sender: UInt8 = 0
    private var with: UInt8 = 0
    /// Three capital letters, packed (0: none).
    private var currencyCode: UInt32 = 0

    static let hoverTargets = ["price", "product", "help", "other"]
    static let chatSenders = ["visitor", "agent", "bot"]
    static let chatPartners = ["agent", "bot"]

    public init() {}

    private func text(_ f: TextField) -> String? { textField == f ? text : nil }
    private mutating func setText(_ f: TextField, _ value: String?) {
        if let value { text = value; textField = f } else if textField == f { text = nil; textField = .none }
    }

    /// `price` and `value` use the second slot, the others the first: no type has two of one slot.
    private static func usesSecond(_ f: NumberField) -> Bool { f == .price || f == .value }
    private func number(_ f: NumberField) -> Double? {
        Self.usesSecond(f) ? (secondField == f ? second : nil) : (firstField == f ? first : nil)
    }
    private mutating func setNumber(_ f: NumberField, _ value: Double?) {
        if Self.usesSecond(f) {
            if let value { second = value; secondField = f } else if secondField == f { second = 0; secondField = .none }
        } else {
            if let value { first = value; firstField = f } else if firstField == f { first = 0; firstField = .none }
        }
    }
    private static func code(_ value: String?, in list: [String]) -> UInt8 {
        guard let value, let i = list.firstIndex(of: value) else { return 0 }
        return UInt8(i + 1)
    }
    private static func name(_ code: UInt8, in list: [String]) -> String? { code == 0 ? nil : list[Int(code) - 1] }

    public var element: String? { get { text(.element) } set { setText(.element, newValue) } }
    /// `hover`: price, product, help or other.
    public var hoverTarget: String? {
        get { Self.name(hover, in: Self.hoverTargets) }
        set { hover = Self.code(newValue, in: Self.hoverTargets) }
    }
    /// `scroll`: deepest position, percent.
    public var scrollDepth: Double? { get { number(.scrollDepth) } set { setNumber(.scrollDepth, newValue) } }
    /// `search`: number of results (0 = a zero-result search).
    public var searchResults: Int? { get { number(.searchResults).map { Int($0) } } set { setNumber(.searchResults, newValue.map(Double.init)) } }
    public var sku: String? { get { text(.sku) } set { setText(.sku, newValue) } }
    public var quantity: Int? { get { number(.quantity).map { Int($0) } } set { setNumber(.quantity, newValue.map(Double.init)) } }
    public var price: Double? { get { number(.price) } set { setNumber(.price, newValue) } }
    /// `checkout_step`: step number.
    public var step: Int? { get { number(.step).map { Int($0) } } set { setNumber(.step, newValue.map(Double.init)) } }
    /// `form_error`: the field in error.
    public var field: String? { get { text(.field) } set { setText(.field, newValue) } }
    public var orderID: String? { get { text(.orderID) } set { setText(.orderID, newValue) } }
    /// `purchase` / `conversion` value.
    public var value: Double? { get { number(.value) } set { setNumber(.value, newValue) } }
    public var currency: String? {
        get {
            guard currencyCode != 0 else { return nil }
            return String(decoding: [UInt8(currencyCode >> 16), UInt8(truncatingIfNeeded: currencyCode >> 8), UInt8(truncatingIfNeeded: currencyCode)], as: UTF8.self)
        }
        set {
            guard let newValue, newValue.utf8.count == 3 else { currencyCode = 0; return }
            currencyCode = newValue.utf8.reduce(0) { $0 << 8 | UInt32($1) }
        }
    }
    public var goal: String? { get { text(.goal) } set { setText(.goal, newValue) } }
    /// `offer_*`: the decision the feedback is about.
    public var decisionID: String? { get { text(.decisionID) } set { setText(.decisionID, newValue) } }
    /// `chat_message`: visitor, agent or bot.
    public var chatSender: String? {
        get { Self.name(sender, in: Self.chatSenders) }
        set { sender = Self.code(newValue, in: Self.chatSenders) }
    }
    /// `chat_started`: agent or bot.
    public var chatWith: String? {
        get { Self.name(with, in: Self.chatPartners) }
        set { with = Self.code(newValue, in: Self.chatPartners) }
    }
    /// `chat_message`: sentiment of the text in [-1, 1] (`Sentiment`); the text is dropped.
    public var chatSentiment: Double? { get { number(.chatSentiment) } set { setNumber(.chatSentiment, newValue) } }
}

/// The checks of one property, mirroring `Schemas/events/<type>.schema.json`.
struct PropertyRule: Sendable {
    enum Kind: Sendable {
        case string(min: Int, max: Int)
        case number(min: Double, max: Double?)
        case integer(min: Int, max: Int)
        case oneOf([String])
        case currency
    }
    /// Where an accepted value is kept (`none`: checked, then dropped).
    enum Field: Sendable {
        case none, element, hoverTarget, scrollDepth, searchResults, sku, quantity, price, step, field, orderID, value,
             currency, goal, decisionID, chatSender, chatWith, chatText
    }
    var name: String
    var utf8Name: [UInt8]
    var kind: Kind
    var required: Bool
    var field: Field

    init(_ name: String, _ kind: Kind, required: Bool = false, _ field: Field = .none) {
        self.name = name
        self.utf8Name = Array(name.utf8)
        self.kind = kind
        self.required = required
        self.field = field
    }
}

extension EventProperties {
    mutating func store(_ field: PropertyRule.Field, string: String) {
        switch field {
        case .element: element = string
        case .hoverTarget: hoverTarget = string
        case .sku: sku = string
        case .field: self.field = string
        case .orderID: orderID = string
        case .currency: currency = string
        case .goal: goal = string
        case .decisionID: decisionID = string
        case .chatSender: chatSender = string
        case .chatWith: chatWith = string
        case .chatText: chatSentiment = Sentiment.score(string.utf8)
        default: break
        }
    }

    mutating func store(_ field: PropertyRule.Field, number: Double) {
        switch field {
        case .scrollDepth: scrollDepth = number
        case .searchResults: searchResults = Int(number)
        case .quantity: quantity = Int(number)
        case .price: price = number
        case .step: step = Int(number)
        case .value: value = number
        default: break
        }
    }
}

extension EventDecoder {
    /// Per-type property rules; keep in step with `Schemas/events` (the agreement test checks).
    static let propertyRules: [[PropertyRule]] = {
        typealias R = PropertyRule
        let cart = [R("sku", .string(min: 1, max: 128), .sku), R("quantity", .integer(min: 1, max: 10_000), .quantity), R("price", .number(min: 0, max: nil), .price)]
        let table: [EventType: [PropertyRule]] = [
            .click: [R("element", .string(min: 1, max: 256), required: true, .element)],
            .hover: [R("element", .string(min: 1, max: 256), required: true, .element), R("target", .oneOf(["price", "product", "help", "other"]), .hoverTarget)],
            .scroll: [R("depth", .number(min: 0, max: 100), required: true, .scrollDepth)],
            .search: [R("query", .string(min: 0, max: 512)), R("results", .integer(min: 0, max: Int(Int32.max)), required: true, .searchResults)],
            .addToCart: cart.map { var r = $0; r.required = r.name != "quantity"; return r },
            .removeFromCart: cart.map { var r = $0; r.required = r.name == "sku"; return r },
            .checkoutStep: [R("step", .integer(min: 1, max: 20), required: true, .step), R("name", .string(min: 0, max: 64))],
            .formError: [R("field", .string(min: 1, max: 256), required: true, .field), R("form", .string(min: 0, max: 256)), R("code", .string(min: 0, max: 128))],
            .chatMessage: [R("text", .string(min: 0, max: 4000), required: true, .chatText), R("sender", .oneOf(["visitor", "agent", "bot"]), .chatSender)],
            .chatStarted: [R("with", .oneOf(["agent", "bot"]), required: true, .chatWith)],
            .identify: [R("traits_hash", .string(min: 0, max: 128))],
            .purchase: [R("order_id", .string(min: 1, max: 128), required: true, .orderID), R("value", .number(min: 0, max: nil), required: true, .value),
                        R("currency", .currency, .currency)],
            .conversion: [R("goal", .string(min: 1, max: 128), required: true, .goal), R("value", .number(min: 0, max: nil), .value)],
            .offerShown: [R("decision_id", .string(min: 1, max: 64), required: true, .decisionID)],
            .offerAccepted: [R("decision_id", .string(min: 1, max: 64), required: true, .decisionID)],
            .offerDismissed: [R("decision_id", .string(min: 1, max: 64), required: true, .decisionID)],
        ]
        return EventType.allCases.map { table[$0] ?? [] }
    }()

    @inline(__always) static func rules(for type: EventType) -> [PropertyRule] {
        propertyRules[type.ordinal]
    }

    static func missingProperties(_ type: EventType, _ rules: [PropertyRule]) -> DecodeFailure {
        DecodeFailure(code: "missing_field", path: "$.properties", message: "\(type.rawValue) requires properties (\(rules.filter(\.required).map(\.name).joined(separator: ", ")))")
    }

    /// One property's verdict, shared by both decoders: the value's JSON kind, its number,
    /// its string (made lazily, only when needed).
    static func check(_ rule: PropertyRule, type: EventType, kind: Slot.Kind, number: Double, scalars: () -> Int, string: () -> String, into out: inout EventProperties) throws(DecodeFailure) {
        let path = "$.properties.\(rule.name)"
        var probe = Slot()
        probe.kind = kind
        switch rule.kind {
        case .string(let min, let max):
            guard kind == .string else { throw DecodeFailure(code: "wrong_type", path: path, message: "expected a string, found \(probe.typeName)") }
            let count = scalars()
            if count < min { throw DecodeFailure(code: "empty_field", path: path, message: "must not be empty") }
            if count > max { throw DecodeFailure(code: "too_long", path: path, message: "longer than \(max) characters") }
            if rule.field != .none { out.store(rule.field, string: string()) }
        case .number(let min, let max):
            guard kind == .number else { throw DecodeFailure(code: "wrong_type", path: path, message: "expected a number, found \(probe.typeName)") }
            if number < min || (max.map { number > $0 } ?? false) {
                throw DecodeFailure(code: "out_of_range", path: path, message: "\(number) is outside \(min)...\(max.map { "\($0)" } ?? "")")
            }
            out.store(rule.field, number: number)
        case .integer(let min, let max):
            guard kind == .number, number.rounded() == number else {
                throw DecodeFailure(code: "wrong_type", path: path, message: "expected a whole number, found \(kind == .number ? "a fraction" : probe.typeName)")
            }
            if number < Double(min) || number > Double(max) { throw DecodeFailure(code: "out_of_range", path: path, message: "\(Int64(number)) is outside \(min)...\(max)") }
            out.store(rule.field, number: number)
        case .oneOf(let allowed):
            guard kind == .string else { throw DecodeFailure(code: "not_allowed", path: path, message: "must be one of \(allowed.joined(separator: ", "))") }
            let s = string()
            guard allowed.contains(s) else { throw DecodeFailure(code: "not_allowed", path: path, message: "must be one of \(allowed.joined(separator: ", "))") }
            out.store(rule.field, string: s)
        case .currency:
            guard kind == .string, case let s = string(), s.utf8.count == 3, s.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
                throw DecodeFailure(code: "not_allowed", path: path, message: "must be a three-letter ISO 4217 code in capitals")
            }
            out.store(rule.field, string: s)
        }
    }

    /// Keeps a properties member's value when its key names one of `rules` (a type has at
    /// most three properties; the last of duplicates wins).
    @inline(__always) static func keep(_ value: Slot, ifNamed key: Slot, by rules: [PropertyRule], _ bytes: UnsafeRawBufferPointer,
                                       in found: inout (Slot, Slot, Slot)) {
        for i in rules.indices where key.equals(rules[i].utf8Name, in: bytes) {
            switch i {
            case 0: found.0 = value
            case 1: found.1 = value
            default: found.2 = value
            }
        }
    }

    /// The single-pass decoder's properties: the object was checked already; find the
    /// members this type names (the last of duplicates wins) and check them.
    ///
    /// - Parameter found: the members, when the envelope scan already found them.
    func scanProperties(_ type: EventType, _ slot: Slot, _ bytes: UnsafeRawBufferPointer, found known: (Slot, Slot, Slot)? = nil) throws(DecodeFailure) -> EventProperties {
        var out = EventProperties()
        let rules = Self.rules(for: type)
        guard slot.kind != .absent else {
            if rules.contains(where: \.required) { throw Self.missingProperties(type, rules) }
            return out
        }
        guard slot.kind == .object else {
            throw DecodeFailure(code: "wrong_type", path: "$.properties", message: "expected an object, found \(slot.typeName)")
        }
        guard !rules.isEmpty else { return out }
        var found = known ?? (Slot(), Slot(), Slot())
        var scanner = JSONScanner(bytes, at: slot.start)
        if known == nil {
            try? scanner.members(depth: 2) { (key, s) throws(JSONSyntaxError) in
                Self.keep(try s.value(depth: 2), ifNamed: key, by: rules, bytes, in: &found)
            }
        }
        for (i, rule) in rules.enumerated() {
            let value = i == 0 ? found.0 : i == 1 ? found.1 : found.2
            guard value.kind != .absent else {
                if rule.required { throw DecodeFailure(code: "missing_field", path: "$.properties.\(rule.name)", message: "required for \(type.rawValue)") }
                continue
            }
            try Self.check(rule, type: type, kind: value.kind, number: value.number,
                           scalars: { value.withUTF8(in: bytes) { $0.reduce(0) { $1 & 0xC0 != 0x80 ? $0 + 1 : $0 } } },
                           string: { value.string(in: bytes) }, into: &out)
        }
        return out
    }

    /// The reference decoder's properties, over the tree.
    func checkProperties(_ type: EventType, _ root: JSONValue) throws(DecodeFailure) -> EventProperties {
        var out = EventProperties()
        let rules = Self.rules(for: type)
        guard let properties = root["properties"] else {
            if rules.contains(where: \.required) { throw Self.missingProperties(type, rules) }
            return out
        }
        guard case .object = properties else {
            throw DecodeFailure(code: "wrong_type", path: "$.properties", message: "expected an object, found \(properties.typeName)")
        }
        for rule in rules {
            guard let value = properties[rule.name] else {
                if rule.required { throw DecodeFailure(code: "missing_field", path: "$.properties.\(rule.name)", message: "required for \(type.rawValue)") }
                continue
            }
            var kind = Slot.Kind.null
            var number = 0.0
            var text = ""
            switch value {
            case .null: kind = .null
            case .bool: kind = .bool
            case .number(let n): kind = .number; number = n
            case .string(let s): kind = .string; text = s
            case .array: kind = .array
            case .object: kind = .object
            }
            try Self.check(rule, type: type, kind: kind, number: number, scalars: { text.unicodeScalars.count }, string: { text }, into: &out)
        }
        return out
    }
}
