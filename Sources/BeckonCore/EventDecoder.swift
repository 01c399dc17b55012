/// Why a message was refused. Goes to the dead-letter topic and table as the reason.
public struct DecodeFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable machine-readable reason class, used as a metric label.
    public var code: String
    /// JSON path of the offending value (`$` for the whole document).
    public var path: String
    public var message: String

    public init(code: String, path: String, message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// Decodes Kafka payload bytes into `Event`s and refuses what does not fit the contract.
public struct EventDecoder: Sendable {
    /// Largest payload accepted; larger ones are refused before parsing.
    public var maximumPayloadBytes: Int
    /// How far a client `ts` may be from the broker timestamp before it is replaced by it.
    public var maximumClockSkew: Millis
    /// Beyond this distance from the broker timestamp, `ts` is refused rather than clamped:
    /// such a clock is not merely wrong but broken (or the field is garbage).
    public var refusedClockSkew: Millis

    public init(maximumPayloadBytes: Int = 64 * 1024, maximumClockSkew: Millis = .minutes(60), refusedClockSkew: Millis = Millis(30 * 86_400_000)) {
        self.maximumPayloadBytes = maximumPayloadBytes
        self.maximumClockSkew = maximumClockSkew
        self.refusedClockSkew = refusedClockSkew
    }

    /// - Parameters:
    ///   - payload: the message value, untouched.
    ///   - key: the message key; when present it must equal `visitor_id`.
    ///   - brokerTime: the Kafka message timestamp, used to clamp client clocks.
    public func decode(_ payload: UnsafeRawBufferPointer, key: String?, brokerTime: EventTime?) -> Result<Event, DecodeFailure> {
        if payload.isEmpty { return .failure(DecodeFailure(code: "empty", path: "$", message: "empty message")) }
        if payload.count > maximumPayloadBytes {
            return .failure(DecodeFailure(code: "too_large", path: "$", message: "payload of \(payload.count) bytes exceeds the limit of \(maximumPayloadBytes)"))
        }
        let root: JSONValue
        do {
            root = try JSONParser.parse(payload)
        } catch {
            let code = error.message.contains("UTF-8") ? "invalid_utf8" : "invalid_json"
            return .failure(DecodeFailure(code: code, path: "$", message: error.description))
        }
        return decode(root, key: key, brokerTime: brokerTime)
    }

    public func decode(_ payload: [UInt8], key: String?, brokerTime: EventTime?) -> Result<Event, DecodeFailure> {
        payload.withUnsafeBytes { decode($0, key: key, brokerTime: brokerTime) }
    }

    func decode(_ root: JSONValue, key: String?, brokerTime: EventTime?) -> Result<Event, DecodeFailure> {
        guard case .object = root else {
            return .failure(DecodeFailure(code: "wrong_type", path: "$", message: "expected an object, found \(root.typeName)"))
        }
        do throws(DecodeFailure) {
            let id = try requiredString(root, "event_id", maxLength: 64)
            let typeName = try requiredString(root, "type", maxLength: 64)
            guard let type = EventType(rawValue: typeName) else {
                throw DecodeFailure(code: "unknown_type", path: "$.type", message: "unknown event type '\(typeName)'")
            }
            let visitorID = try requiredString(root, "visitor_id", maxLength: 128)
            if let key, key != visitorID {
                throw DecodeFailure(code: "key_mismatch", path: "$.visitor_id", message: "Kafka key '\(key)' differs from visitor_id '\(visitorID)'")
            }
            var time = try timestamp(root)
            var clamped = false
            if let brokerTime {
                let skew = abs((time - brokerTime).value)
                if skew > refusedClockSkew.value {
                    throw DecodeFailure(code: "invalid_ts", path: "$.ts", message: "\(time) is \(skew / 86_400_000) days from the broker's timestamp \(brokerTime); more than \(refusedClockSkew.value / 86_400_000) days is refused")
                }
                if skew > maximumClockSkew.value {
                    time = brokerTime
                    clamped = true
                }
            }
            let userID = try optionalString(root, "user_id", path: "$.user_id", maxLength: 128)
            if type == .identify, userID?.isEmpty ?? true {
                throw DecodeFailure(code: "missing_field", path: "$.user_id", message: "identify requires a non-empty user_id")
            }
            let sessionID = try optionalString(root, "session_id", path: "$.session_id", maxLength: 128)
            let channel = try optionalString(root, "channel", path: "$.channel", maxLength: 32) ?? "web"
            if channel.isEmpty { throw DecodeFailure(code: "empty_field", path: "$.channel", message: "must not be empty") }
            var path: String?
            var url: String?
            if let page = root["page"] {
                guard case .object = page else {
                    throw DecodeFailure(code: "wrong_type", path: "$.page", message: "expected an object, found \(page.typeName)")
                }
                url = try optionalString(page, "url", path: "$.page.url", maxLength: 4096)
                path = try optionalString(page, "path", path: "$.page.path", maxLength: 2048)
                _ = try optionalString(page, "title", path: "$.page.title", maxLength: 1024)
                _ = try optionalString(page, "referrer", path: "$.page.referrer", maxLength: 4096)
            }
            if type == .pageView || type == .pagePing {
                let hasPath = path?.hasPrefix("/") ?? false
                let hasURL = !(url?.isEmpty ?? true)
                guard hasPath || hasURL else {
                    throw DecodeFailure(code: "missing_field", path: "$.page", message: "\(type.rawValue) requires page.path (starting with /) or page.url")
                }
            }
            if path == nil, let url, !url.isEmpty { path = Self.path(fromURL: url) }
            let properties = try checkProperties(type, root)
            return .success(Event(
                id: id, type: type, visitorID: visitorID, time: time, timeWasClamped: clamped, userID: userID,
                sessionID: sessionID, channel: channel, pagePath: path, pageURL: url, properties: properties))
        } catch {
            return .failure(error)
        }
    }

    func requiredString(_ object: JSONValue, _ key: String, maxLength: Int) throws(DecodeFailure) -> String {
        guard let value = object[key] else {
            throw DecodeFailure(code: "missing_field", path: "$.\(key)", message: "required field is missing")
        }
        guard case .string(let s) = value else {
            throw DecodeFailure(code: "wrong_type", path: "$.\(key)", message: "expected a string, found \(value.typeName)")
        }
        guard !s.isEmpty else { throw DecodeFailure(code: "empty_field", path: "$.\(key)", message: "must not be empty") }
        guard s.unicodeScalars.count <= maxLength else {
            throw DecodeFailure(code: "too_long", path: "$.\(key)", message: "longer than \(maxLength) characters")
        }
        return s
    }

    private func optionalString(_ object: JSONValue, _ key: String, path: String, maxLength: Int) throws(DecodeFailure) -> String? {
        guard let value = object[key] else { return nil }
        if case .null = value { return nil }
        guard case .string(let s) = value else {
            throw DecodeFailure(code: "wrong_type", path: path, message: "expected a string, found \(value.typeName)")
        }
        guard s.unicodeScalars.count <= maxLength else { throw DecodeFailure(code: "too_long", path: path, message: "longer than \(maxLength) characters") }
        return s
    }

    private func timestamp(_ object: JSONValue) throws(DecodeFailure) -> EventTime {
        guard let value = object["ts"] else {
            throw DecodeFailure(code: "missing_field", path: "$.ts", message: "required field is missing")
        }
        switch value {
        case .number(let n):
            guard n >= 0, n.rounded() == n, n < 253_402_300_800_000 else {
                throw DecodeFailure(code: "invalid_ts", path: "$.ts", message: "epoch milliseconds must be a non-negative integer, found \(n)")
            }
            return EventTime(milliseconds: Int64(n))
        case .string(let s):
            guard let t = EventTime.parseRFC3339(s) else {
                throw DecodeFailure(code: "invalid_ts", path: "$.ts", message: "'\(s.prefix(40))' is not an RFC 3339 date-time")
            }
            return t
        default:
            throw DecodeFailure(code: "wrong_type", path: "$.ts", message: "expected an RFC 3339 string or epoch milliseconds, found \(value.typeName)")
        }
    }

    /// `https://shop.example/checkout/payment?x=1` → `/checkout/payment`.
    static func path(fromURL url: String) -> String {
        var rest = Substring(url)
        let utf8 = Array(url.utf8)
        if let i = (0..<max(0, utf8.count - 2)).first(where: { utf8[$0] == 0x3A && utf8[$0 + 1] == 0x2F && utf8[$0 + 2] == 0x2F }) {
            rest = Substring(String(decoding: utf8[(i + 3)...], as: UTF8.self))
        }
        guard let slash = rest.firstIndex(of: "/") else { return "/" }
        rest = rest[slash...]
        if let cut = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<cut] }
        return String(rest)
    }
}
