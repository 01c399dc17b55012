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
        if let refusal = sizeRefusal(payload) { return .failure(refusal) }
        do throws(DecodeFailure) {
            return .success(try scan(payload, key: key, brokerTime: brokerTime))
        } catch {
            return .failure(error)
        }
    }

    public func decode(_ payload: [UInt8], key: String?, brokerTime: EventTime?) -> Result<Event, DecodeFailure> {
        payload.withUnsafeBytes { decode($0, key: key, brokerTime: brokerTime) }
    }

    /// The same contract through a full `JSONValue` tree: slower, simple, and the oracle
    /// the differential tests and the fuzzer hold `decode` to.
    package func referenceDecode(_ payload: [UInt8], key: String?, brokerTime: EventTime?) -> Result<Event, DecodeFailure> {
        payload.withUnsafeBytes { payload in
            if let refusal = sizeRefusal(payload) { return .failure(refusal) }
            let root: JSONValue
            do throws(JSONSyntaxError) {
                root = try JSONParser.parse(payload)
            } catch {
                return .failure(Self.syntaxFailure(error))
            }
            return decode(root, key: key, brokerTime: brokerTime)
        }
    }

    private func sizeRefusal(_ payload: UnsafeRawBufferPointer) -> DecodeFailure? {
        if payload.isEmpty { return DecodeFailure(code: "empty", path: "$", message: "empty message") }
        if payload.count > maximumPayloadBytes {
            return DecodeFailure(code: "too_large", path: "$", message: "payload of \(payload.count) bytes exceeds the limit of \(maximumPayloadBytes)")
        }
        return nil
    }

    static func syntaxFailure(_ error: JSONSyntaxError) -> DecodeFailure {
        DecodeFailure(code: error.message.contains("UTF-8") ? "invalid_utf8" : "invalid_json", path: "$", message: error.description)
    }

    // MARK: The single-pass decoder

    /// Index of an envelope member: event_id, type, visitor_id, ts, user_id, session_id,
    /// channel, page, properties; nil for others (they are checked for syntax only).
    @inline(__always) private static func envelopeField(_ key: Slot, _ bytes: UnsafeRawBufferPointer) -> Int? {
        switch key.escaped ? -1 : key.end - key.start {
        case 2: return key.equals("ts", in: bytes) ? 3 : nil
        case 4: return key.equals("type", in: bytes) ? 1 : key.equals("page", in: bytes) ? 7 : nil
        case 7: return key.equals("user_id", in: bytes) ? 4 : key.equals("channel", in: bytes) ? 6 : nil
        case 8: return key.equals("event_id", in: bytes) ? 0 : nil
        case 10: return key.equals("visitor_id", in: bytes) ? 2 : key.equals("session_id", in: bytes) ? 5 : key.equals("properties", in: bytes) ? 8 : nil
        case -1:
            let names: [StaticString] = ["event_id", "type", "visitor_id", "ts", "user_id", "session_id", "channel", "page", "properties"]
            return names.firstIndex { key.equals($0, in: bytes) }
        default: return nil
        }
    }

    @inline(__always) private static func pageField(_ key: Slot, _ bytes: UnsafeRawBufferPointer) -> Int? {
        if key.equals("url", in: bytes) { return 0 }
        if key.equals("path", in: bytes) { return 1 }
        if key.equals("title", in: bytes) { return 2 }
        if key.equals("referrer", in: bytes) { return 3 }
        return nil
    }

    /// The common channels without making a String.
    private static func channel(_ slot: Slot, _ bytes: UnsafeRawBufferPointer) -> String {
        if slot.equals("web", in: bytes) { return "web" }
        if slot.equals("app", in: bytes) { return "app" }
        return slot.string(in: bytes)
    }

    @inline(__always) private func scan(_ bytes: UnsafeRawBufferPointer, key: String?, brokerTime: EventTime?) throws(DecodeFailure) -> Event {
        var scanner = JSONScanner(bytes)
        // event_id, type, visitor_id, ts, user_id, session_id, channel, page, properties
        var f = (Slot(), Slot(), Slot(), Slot(), Slot(), Slot(), Slot(), Slot(), Slot())
        var root = Slot()
        // page.url, page.path, page.title, page.referrer: found while `page` is scanned.
        var p = (Slot(), Slot(), Slot(), Slot())
        // The properties a type names, found while `properties` is scanned when the type
        // came before it (the usual order); otherwise they are looked up afterwards.
        var found = (Slot(), Slot(), Slot())
        var foundFor: EventType?
        do throws(JSONSyntaxError) {
            scanner.skipWhitespace()
            if scanner.index < bytes.count, bytes[scanner.index] == UInt8(ascii: "{") {
                root.kind = .object
                try scanner.members(depth: 1) { (key, s) throws(JSONSyntaxError) in
                    let field = Self.envelopeField(key, bytes)
                    if field == 7 || field == 8, s.index < bytes.count, bytes[s.index] == UInt8(ascii: "{") {
                        var object = Slot()
                        object.kind = .object
                        object.start = s.index
                        if field == 7 {
                            p = (Slot(), Slot(), Slot(), Slot())
                            try s.members(depth: 2) { (key, s) throws(JSONSyntaxError) in
                                let value = try s.stringOrValue(depth: 2)
                                switch Self.pageField(key, bytes) {
                                case 0: p.0 = value
                                case 1: p.1 = value
                                case 2: p.2 = value
                                case 3: p.3 = value
                                default: break
                                }
                            }
                            object.end = s.index
                            f.7 = object
                        } else {
                            let type = f.1.kind == .string ? f.1.withUTF8(in: bytes, { EventType(utf8: $0) }) : nil
                            let rules = type.map { Self.rules(for: $0) } ?? []
                            found = (Slot(), Slot(), Slot())
                            try s.members(depth: 2) { (key, s) throws(JSONSyntaxError) in
                                Self.keep(try s.value(depth: 2), ifNamed: key, by: rules, bytes, in: &found)
                            }
                            foundFor = type
                            object.end = s.index
                            f.8 = object
                        }
                        return
                    }
                    let value = try s.stringOrValue(depth: 1)
                    if field == 8 { foundFor = nil }
                    switch field {
                    case 0: f.0 = value
                    case 1: f.1 = value
                    case 2: f.2 = value
                    case 3: f.3 = value
                    case 4: f.4 = value
                    case 5: f.5 = value
                    case 6: f.6 = value
                    case 7: f.7 = value
                    case 8: f.8 = value
                    default: break
                    }
                }
            } else {
                root = try scanner.value(depth: 0)
            }
            scanner.skipWhitespace()
            guard scanner.index == bytes.count else { throw scanner.error("unexpected data after the JSON value") }
        } catch {
            throw Self.syntaxFailure(error)
        }
        guard root.kind == .object else {
            throw DecodeFailure(code: "wrong_type", path: "$", message: "expected an object, found \(root.typeName)")
        }
        let id = try requiredString(f.0, bytes, "event_id", maxLength: 64)
        let typeSlot = f.1
        guard typeSlot.kind != .absent else { throw DecodeFailure(code: "missing_field", path: "$.type", message: "required field is missing") }
        guard typeSlot.kind == .string else {
            throw DecodeFailure(code: "wrong_type", path: "$.type", message: "expected a string, found \(typeSlot.typeName)")
        }
        guard typeSlot.end > typeSlot.start else { throw DecodeFailure(code: "empty_field", path: "$.type", message: "must not be empty") }
        guard let type = typeSlot.withUTF8(in: bytes, { EventType(utf8: $0) }) else {
            let name = typeSlot.string(in: bytes)
            if typeSlot.scalarCount(in: bytes, exceeds: 64) {
                throw DecodeFailure(code: "too_long", path: "$.type", message: "longer than 64 characters")
            }
            throw DecodeFailure(code: "unknown_type", path: "$.type", message: "unknown event type '\(name)'")
        }
        let visitorID = try requiredString(f.2, bytes, "visitor_id", maxLength: 128)
        if let key, key != visitorID {
            throw DecodeFailure(code: "key_mismatch", path: "$.visitor_id", message: "Kafka key '\(key)' differs from visitor_id '\(visitorID)'")
        }
        let (time, clamped) = try clampedTime(try timestamp(f.3, bytes), brokerTime: brokerTime)
        let userID = try optionalString(f.4, bytes, path: "$.user_id", maxLength: 128)
        if type == .identify, userID?.isEmpty ?? true {
            throw DecodeFailure(code: "missing_field", path: "$.user_id", message: "identify requires a non-empty user_id")
        }
        // session_id is checked, not kept: sessions are derived from event time (the gap).
        try checkOptionalString(f.5, bytes, path: "$.session_id", maxLength: 128)
        try checkOptionalString(f.6, bytes, path: "$.channel", maxLength: 32)
        let channel = f.6.kind == .string ? Self.channel(f.6, bytes) : "web"
        if channel.isEmpty { throw DecodeFailure(code: "empty_field", path: "$.channel", message: "must not be empty") }
        var path: String?
        var url = Slot()
        if f.7.kind != .absent {
            guard f.7.kind == .object else {
                throw DecodeFailure(code: "wrong_type", path: "$.page", message: "expected an object, found \(f.7.typeName)")
            }
            try checkOptionalString(p.0, bytes, path: "$.page.url", maxLength: 4096)
            try checkOptionalString(p.1, bytes, path: "$.page.path", maxLength: 2048)
            try checkOptionalString(p.2, bytes, path: "$.page.title", maxLength: 1024)
            try checkOptionalString(p.3, bytes, path: "$.page.referrer", maxLength: 4096)
            url = p.0
            if p.1.kind == .string { path = p.1.string(in: bytes) }
        }
        let hasURL = url.kind == .string && url.end > url.start
        if type == .pageView || type == .pagePing {
            guard path?.utf8.first == UInt8(ascii: "/") || hasURL else {
                throw DecodeFailure(code: "missing_field", path: "$.page", message: "\(type.rawValue) requires page.path (starting with /) or page.url")
            }
        }
        if path == nil, hasURL { path = Self.path(fromURL: url.string(in: bytes)) }
        let properties = try scanProperties(type, f.8, bytes, found: foundFor == type ? found : nil)
        return Event(
            id: id, type: type, visitorID: visitorID, time: time, timeWasClamped: clamped, userID: userID,
            channel: channel, pagePath: path, properties: properties)
    }

    private func requiredString(_ slot: Slot, _ bytes: UnsafeRawBufferPointer, _ key: String, maxLength: Int) throws(DecodeFailure) -> String {
        guard slot.kind != .absent else { throw DecodeFailure(code: "missing_field", path: "$.\(key)", message: "required field is missing") }
        guard slot.kind == .string else {
            throw DecodeFailure(code: "wrong_type", path: "$.\(key)", message: "expected a string, found \(slot.typeName)")
        }
        guard slot.end > slot.start else { throw DecodeFailure(code: "empty_field", path: "$.\(key)", message: "must not be empty") }
        if slot.scalarCount(in: bytes, exceeds: maxLength) {
            throw DecodeFailure(code: "too_long", path: "$.\(key)", message: "longer than \(maxLength) characters")
        }
        return slot.string(in: bytes)
    }

    @inline(__always) private func checkOptionalString(_ slot: Slot, _ bytes: UnsafeRawBufferPointer, path: @autoclosure () -> String, maxLength: Int) throws(DecodeFailure) {
        // The common case first: absent, or a string short enough in bytes.
        if slot.kind == .absent || slot.kind == .null || (slot.kind == .string && slot.end - slot.start <= maxLength) { return }
        try checkOptionalStringSlowly(slot, bytes, path: path(), maxLength: maxLength)
    }

    private func checkOptionalStringSlowly(_ slot: Slot, _ bytes: UnsafeRawBufferPointer, path: String, maxLength: Int) throws(DecodeFailure) {
        guard slot.kind == .string else { throw DecodeFailure(code: "wrong_type", path: path, message: "expected a string, found \(slot.typeName)") }
        if slot.scalarCount(in: bytes, exceeds: maxLength) { throw DecodeFailure(code: "too_long", path: path, message: "longer than \(maxLength) characters") }
    }

    private func optionalString(_ slot: Slot, _ bytes: UnsafeRawBufferPointer, path: String, maxLength: Int) throws(DecodeFailure) -> String? {
        try checkOptionalString(slot, bytes, path: path, maxLength: maxLength)
        return slot.kind == .string ? slot.string(in: bytes) : nil
    }

    private func timestamp(_ slot: Slot, _ bytes: UnsafeRawBufferPointer) throws(DecodeFailure) -> EventTime {
        switch slot.kind {
        case .absent: throw DecodeFailure(code: "missing_field", path: "$.ts", message: "required field is missing")
        case .number: return try Self.epochTime(slot.number)
        case .string:
            let parsed = slot.withUTF8(in: bytes) { EventTime.parseRFC3339($0.assumingMemoryBound(to: UInt8.self)) }
            guard let t = parsed else { throw Self.badTimestamp(slot.string(in: bytes)) }
            return t
        default:
            throw DecodeFailure(code: "wrong_type", path: "$.ts", message: "expected an RFC 3339 string or epoch milliseconds, found \(slot.typeName)")
        }
    }

    static func epochTime(_ n: Double) throws(DecodeFailure) -> EventTime {
        guard n >= 0, n.rounded() == n, n < 253_402_300_800_000 else {
            throw DecodeFailure(code: "invalid_ts", path: "$.ts", message: "epoch milliseconds must be a non-negative integer, found \(n)")
        }
        return EventTime(milliseconds: Int64(n))
    }

    static func badTimestamp(_ s: String) -> DecodeFailure {
        DecodeFailure(code: "invalid_ts", path: "$.ts", message: "'\(s.prefix(40))' is not an RFC 3339 date-time")
    }

    /// Replaces a client time too far from the broker's; refuses one that is absurdly far.
    func clampedTime(_ time: EventTime, brokerTime: EventTime?) throws(DecodeFailure) -> (EventTime, Bool) {
        guard let brokerTime else { return (time, false) }
        let skew = abs((time - brokerTime).value)
        if skew > refusedClockSkew.value {
            throw DecodeFailure(code: "invalid_ts", path: "$.ts", message: "\(time) is \(skew / 86_400_000) days from the broker's timestamp \(brokerTime); more than \(refusedClockSkew.value / 86_400_000) days is refused")
        }
        return skew > maximumClockSkew.value ? (brokerTime, true) : (time, false)
    }

    // MARK: The reference decoder, over a JSONValue tree

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
            let (time, clamped) = try clampedTime(try timestamp(root), brokerTime: brokerTime)
            let userID = try optionalString(root, "user_id", path: "$.user_id", maxLength: 128)
            if type == .identify, userID?.isEmpty ?? true {
                throw DecodeFailure(code: "missing_field", path: "$.user_id", message: "identify requires a non-empty user_id")
            }
            _ = try optionalString(root, "session_id", path: "$.session_id", maxLength: 128)
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
                let hasPath = path?.utf8.first == UInt8(ascii: "/")
                let hasURL = !(url?.isEmpty ?? true)
                guard hasPath || hasURL else {
                    throw DecodeFailure(code: "missing_field", path: "$.page", message: "\(type.rawValue) requires page.path (starting with /) or page.url")
                }
            }
            if path == nil, let url, !url.isEmpty { path = Self.path(fromURL: url) }
            let properties = try checkProperties(type, root)
            return .success(Event(
                id: id, type: type, visitorID: visitorID, time: time, timeWasClamped: clamped, userID: userID,
                channel: channel, pagePath: path, properties: properties))
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
            return try Self.epochTime(n)
        case .string(let s):
            guard let t = EventTime.parseRFC3339(s) else { throw Self.badTimestamp(s) }
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
