/// The per-type `properties` of an event that the core uses, already checked.
///
/// Free text is not here: `chat_message` text and search queries are scored by the
/// decoder's caller and dropped, so they never reach state, decisions or storage.
public struct EventProperties: Sendable, Equatable {
    public var element: String?
    /// `hover`: price, product, help or other.
    public var hoverTarget: String?
    /// `scroll`: deepest position, percent.
    public var scrollDepth: Double?
    /// `search`: number of results (0 = a zero-result search).
    public var searchResults: Int?
    public var sku: String?
    public var quantity: Int?
    public var price: Double?
    /// `checkout_step`: step number.
    public var step: Int?
    /// `form_error`: the field in error.
    public var field: String?
    public var orderID: String?
    /// `purchase` / `conversion` value.
    public var value: Double?
    public var currency: String?
    public var goal: String?
    /// `offer_*`: the decision the feedback is about.
    public var decisionID: String?
    /// `chat_message`: visitor, agent or bot.
    public var chatSender: String?
    /// `chat_started`: agent or bot.
    public var chatWith: String?

    public init() {}
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
    var name: String
    var kind: Kind
    var required: Bool
    var store: @Sendable (inout EventProperties, JSONValue) -> Void
}

extension EventDecoder {
    /// Per-type property rules; keep in step with `Schemas/events` (the agreement test checks).
    static let propertyRules: [EventType: [PropertyRule]] = {
        func s(_ name: String, _ min: Int, _ max: Int, required: Bool = false, _ keyPath: WritableKeyPath<EventProperties, String?> & Sendable) -> PropertyRule {
            PropertyRule(name: name, kind: .string(min: min, max: max), required: required) { p, v in if case .string(let x) = v { p[keyPath: keyPath] = x } }
        }
        func e(_ name: String, _ values: [String], required: Bool = false, _ keyPath: WritableKeyPath<EventProperties, String?> & Sendable) -> PropertyRule {
            PropertyRule(name: name, kind: .oneOf(values), required: required) { p, v in if case .string(let x) = v { p[keyPath: keyPath] = x } }
        }
        func n(_ name: String, _ min: Double, max: Double? = nil, required: Bool = false, _ keyPath: WritableKeyPath<EventProperties, Double?> & Sendable) -> PropertyRule {
            PropertyRule(name: name, kind: .number(min: min, max: max), required: required) { p, v in if case .number(let x) = v { p[keyPath: keyPath] = x } }
        }
        func i(_ name: String, _ min: Int, _ max: Int, required: Bool = false, _ keyPath: WritableKeyPath<EventProperties, Int?> & Sendable) -> PropertyRule {
            PropertyRule(name: name, kind: .integer(min: min, max: max), required: required) { p, v in if case .number(let x) = v { p[keyPath: keyPath] = Int(x) } }
        }
        let cart = [s("sku", 1, 128, \.sku), i("quantity", 1, 10_000, \.quantity), n("price", 0, \.price)]
        return [
            .click: [s("element", 1, 256, required: true, \.element)],
            .hover: [s("element", 1, 256, required: true, \.element), e("target", ["price", "product", "help", "other"], \.hoverTarget)],
            .scroll: [n("depth", 0, max: 100, required: true, \.scrollDepth)],
            .search: [PropertyRule(name: "query", kind: .string(min: 0, max: 512), required: false) { _, _ in },
                      i("results", 0, Int(Int32.max), required: true, \.searchResults)],
            .addToCart: cart.map { var r = $0; r.required = r.name != "quantity"; return r },
            .removeFromCart: cart.map { var r = $0; r.required = r.name == "sku"; return r },
            .checkoutStep: [i("step", 1, 20, required: true, \.step), PropertyRule(name: "name", kind: .string(min: 0, max: 64), required: false) { _, _ in }],
            .formError: [s("field", 1, 256, required: true, \.field), PropertyRule(name: "form", kind: .string(min: 0, max: 256), required: false) { _, _ in },
                         PropertyRule(name: "code", kind: .string(min: 0, max: 128), required: false) { _, _ in }],
            .chatMessage: [PropertyRule(name: "text", kind: .string(min: 0, max: 4000), required: true) { _, _ in },
                           e("sender", ["visitor", "agent", "bot"], \.chatSender)],
            .chatStarted: [e("with", ["agent", "bot"], required: true, \.chatWith)],
            .identify: [PropertyRule(name: "traits_hash", kind: .string(min: 0, max: 128), required: false) { _, _ in }],
            .purchase: [s("order_id", 1, 128, required: true, \.orderID), n("value", 0, required: true, \.value),
                        PropertyRule(name: "currency", kind: .currency, required: false) { p, v in if case .string(let x) = v { p.currency = x } }],
            .conversion: [s("goal", 1, 128, required: true, \.goal), n("value", 0, \.value)],
            .offerShown: [s("decision_id", 1, 64, required: true, \.decisionID)],
            .offerAccepted: [s("decision_id", 1, 64, required: true, \.decisionID)],
            .offerDismissed: [s("decision_id", 1, 64, required: true, \.decisionID)],
        ]
    }()

    func checkProperties(_ type: EventType, _ root: JSONValue) throws(DecodeFailure) -> EventProperties {
        var out = EventProperties()
        let rules = Self.propertyRules[type] ?? []
        guard let properties = root["properties"] else {
            if rules.contains(where: \.required) {
                throw DecodeFailure(code: "missing_field", path: "$.properties", message: "\(type.rawValue) requires properties (\(rules.filter(\.required).map(\.name).joined(separator: ", ")))")
            }
            return out
        }
        guard case .object = properties else {
            throw DecodeFailure(code: "wrong_type", path: "$.properties", message: "expected an object, found \(properties.typeName)")
        }
        for rule in rules {
            let path = "$.properties.\(rule.name)"
            guard let value = properties[rule.name] else {
                if rule.required { throw DecodeFailure(code: "missing_field", path: path, message: "required for \(type.rawValue)") }
                continue
            }
            switch rule.kind {
            case .string(let min, let max):
                guard case .string(let x) = value else { throw DecodeFailure(code: "wrong_type", path: path, message: "expected a string, found \(value.typeName)") }
                let count = x.unicodeScalars.count
                if count < min { throw DecodeFailure(code: "empty_field", path: path, message: "must not be empty") }
                if count > max { throw DecodeFailure(code: "too_long", path: path, message: "longer than \(max) characters") }
            case .number(let min, let max):
                guard case .number(let x) = value else { throw DecodeFailure(code: "wrong_type", path: path, message: "expected a number, found \(value.typeName)") }
                if x < min || (max.map { x > $0 } ?? false) {
                    throw DecodeFailure(code: "out_of_range", path: path, message: "\(x) is outside \(min)...\(max.map { "\($0)" } ?? "")")
                }
            case .integer(let min, let max):
                guard case .number(let x) = value, x.rounded() == x else {
                    throw DecodeFailure(code: "wrong_type", path: path, message: "expected a whole number, found \(value.typeName == "number" ? "a fraction" : value.typeName)")
                }
                if x < Double(min) || x > Double(max) { throw DecodeFailure(code: "out_of_range", path: path, message: "\(Int64(x)) is outside \(min)...\(max)") }
            case .oneOf(let allowed):
                guard case .string(let x) = value, allowed.contains(x) else {
                    throw DecodeFailure(code: "not_allowed", path: path, message: "must be one of \(allowed.joined(separator: ", "))")
                }
            case .currency:
                guard case .string(let x) = value, x.utf8.count == 3, x.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
                    throw DecodeFailure(code: "not_allowed", path: path, message: "must be a three-letter ISO 4217 code in capitals")
                }
            }
            rule.store(&out, value)
        }
        return out
    }
}
