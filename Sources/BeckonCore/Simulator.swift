/// SplitMix64: a small, fast, seedable generator, so simulations are reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One simulated Kafka message.
public struct SimulatedMessage: Sendable {
    public var key: String
    public var value: [UInt8]
    /// Kafka message timestamp (epoch ms); equal to the event's `ts` for good events.
    public var timestamp: Int64
    /// False for the deliberately malformed messages.
    public var isValid: Bool
}

/// A deterministic clickstream: visitors over web and app who browse, buy, hesitate, or
/// dwell on the payment page, plus a small share of malformed messages.
///
/// The same configuration always yields the same bytes in the same order.
public struct Simulator: Sendable {
    public struct Configuration: Sendable {
        public var visitors = 300
        public var seed: UInt64 = 42
        /// Event time of the first session start.
        public var start = EventTime(milliseconds: 1_772_445_600_000)  // 2026-03-02T10:00:00Z
        /// Sessions start spread over this span.
        public var span = Millis.minutes(10)
        /// Share of messages replaced by malformed ones (0...1).
        public var badShare = 0.01
        /// End every journey with a page view of `/bye` 10 minutes later, so a consumer
        /// without event-time timers sees every dwell end (for comparing with peers).
        public var farewell = false
        /// Event time runs this many times faster than the journeys' own timing (a stay of
        /// 60 s becomes 0.6 s at 100): for live streams at a high rate from few visitors.
        public var timeCompression = 1.0
        /// Also the journeys of the other shipped scenarios (a SaaS trial stuck in the
        /// workflow settings, rage clicks and an unhappy chat, a category visited three
        /// times, a returning high-value buyer). Off by default: the benchmarks and the chaos
        /// run keep their stream.
        public var scenarios = false
        public init() {}
    }

    /// The kinds of journey and how often they occur.
    public enum Journey: String, Sendable, CaseIterable {
        case browse, buy, dwellWithPings, dwellSilent, hesitate
        case trial, frustrated, categoryLoop, highValue
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) { self.configuration = configuration }

    /// All messages, ordered by timestamp (ties by visitor and sequence).
    public func messages() -> [SimulatedMessage] {
        var rng = SeededGenerator(seed: configuration.seed)
        var all: [(time: Int64, visitor: Int, seq: Int, message: SimulatedMessage)] = []
        for v in 0..<configuration.visitors {
            let events = visitorEvents(index: v, rng: &rng)
            for (seq, message) in events.enumerated() { all.append((message.timestamp, v, seq, message)) }
        }
        all.sort { ($0.time, $0.visitor, $0.seq) < ($1.time, $1.visitor, $1.seq) }
        var out = all.map(\.message)
        if configuration.badShare > 0 {
            var badRng = SeededGenerator(seed: configuration.seed ^ 0xBAD)
            for i in out.indices where Double(badRng.next() % 1_000_000) / 1_000_000 < configuration.badShare {
                out[i] = malformed(from: out[i], variant: Int(badRng.next() % 4))
            }
        }
        return out
    }

    /// Which journey a visitor takes (exposed so tests can compute expectations).
    public static func journey(roll: UInt64) -> Journey {
        switch roll % 100 {
        case 0..<35: return .browse
        case 35..<60: return .buy
        case 60..<75: return .dwellWithPings
        case 75..<90: return .dwellSilent
        default: return .hesitate
        }
    }

    private func visitorEvents(index: Int, rng: inout SeededGenerator) -> [SimulatedMessage] {
        let visitorID = "v-" + String(index + 100_000)
        let channel = rng.next() % 10 < 7 ? "web" : "app"
        var journey = Self.journey(roll: rng.next())
        if configuration.scenarios {
            switch rng.next() % 100 {
            case 0..<12: journey = .trial
            case 12..<20: journey = .frustrated
            case 20..<30: journey = .categoryLoop
            case 30..<36: journey = .highValue
            default: break
            }
        }
        var t = configuration.start.milliseconds + Int64(rng.next() % UInt64(max(configuration.span.value, 1)))
        var seq = 0
        var out: [SimulatedMessage] = []
        let host = channel == "web" ? "https://shop.example" : "app://shop"
        func emit(_ type: String, path: String?, extra: String = "") {
            seq += 1
            var w = JSONWriter()
            w.raw("{\"event_id\":"); w.string("e-\(visitorID)-\(seq)")
            w.raw(",\"type\":"); w.string(type)
            w.raw(",\"visitor_id\":"); w.string(visitorID)
            let shown = configuration.start.milliseconds + Int64(Double(t - configuration.start.milliseconds) / configuration.timeCompression)
            w.raw(",\"ts\":"); w.string(EventTime(milliseconds: shown).rfc3339)
            w.raw(",\"session_id\":"); w.string("s-\(visitorID)-1")
            w.raw(",\"channel\":"); w.string(channel)
            if let path {
                w.raw(",\"page\":{\"url\":"); w.string(host + path)
                w.raw(",\"path\":"); w.string(path)
                w.raw(",\"title\":"); w.string(Self.title(path))
                w.raw("}")
            }
            w.raw(extra)
            w.raw("}")
            out.append(SimulatedMessage(key: visitorID, value: w.bytes, timestamp: shown, isValid: true))
        }
        /// A page view, a ping every 15 s while the visitor stays, and time moved past the stay.
        func stay(_ path: String, seconds: ClosedRange<Int64>) {
            emit("page_view", path: path)
            let start = t
            let duration = Int64.random(in: seconds, using: &rng) * 1000
            var ping = start + 15_000
            while ping < start + duration {
                t = ping
                emit("page_ping", path: path)
                ping += 15_000
            }
            t = start + duration
        }
        let category = ["shoes", "bags", "coats", "hats"][Int(rng.next() % 4)]
        switch journey {
        case .trial:
            stay("/app/dashboard", seconds: 5...15)
            emit("page_view", path: "/settings/workflows/advanced")
            for field in ["cron", "webhook", "cron"] {
                t += Int64.random(in: 25...70, using: &rng) * 1000
                emit("form_error", path: "/settings/workflows/advanced", extra: ",\"properties\":{\"field\":\"\(field)\",\"form\":\"workflow\"}")
            }
            t += 10_000
            emit("page_hidden", path: "/settings/workflows/advanced")
            return out
        case .frustrated:
            stay("/account/billing", seconds: 5...20)
            for _ in 0..<3 {
                emit("click", path: "/account/billing", extra: ",\"properties\":{\"element\":\"save\"}")
                t += 400
            }
            t += 20_000
            emit("chat_message", path: "/account/billing", extra: ",\"properties\":{\"text\":\"This is useless, the save button is broken\",\"sender\":\"visitor\"}")
            t += 5000
            emit("page_hidden", path: "/account/billing")
            return out
        case .categoryLoop:
            for i in 0..<3 {
                stay("/c/\(category)", seconds: 5...15)
                stay("/p/sku-\(rng.next() % 500)-\(i)", seconds: 5...20)
            }
            emit("page_hidden", path: "/c/\(category)")
            return out
        case .highValue:
            stay("/pricing", seconds: 10...30)
            emit("page_hidden", path: "/pricing")
            t += 35 * 60_000
            stay("/pricing", seconds: 10...30)
            emit("add_to_cart", path: "/p/pro-bundle", extra: ",\"properties\":{\"sku\":\"PRO\",\"quantity\":2,\"price\":\(300 + rng.next() % 200)}")
            t += 5000
            stay("/pricing", seconds: 10...30)
            emit("page_hidden", path: "/pricing")
            return out
        default:
            break
        }
        stay("/", seconds: 3...10)
        stay("/c/\(category)", seconds: 5...20)
        let sku = "sku-\(rng.next() % 500)"
        stay("/p/\(sku)", seconds: 10...40)
        switch journey {
        case .browse, .trial, .frustrated, .categoryLoop, .highValue:
            emit("page_hidden", path: "/p/\(sku)")
        case .buy, .dwellWithPings, .dwellSilent, .hesitate:
            emit("add_to_cart", path: "/p/\(sku)", extra: ",\"properties\":{\"sku\":\"\(sku)\",\"quantity\":1,\"price\":\(20 + rng.next() % 180)}")
            t += 2000
            stay("/cart", seconds: 5...15)
            stay("/checkout/shipping", seconds: 10...25)
            switch journey {
            case .buy:
                stay("/checkout/payment", seconds: 8...30)
                emit("purchase", path: "/checkout/payment", extra: ",\"properties\":{\"order_id\":\"o-\(visitorID)\",\"value\":\(40 + rng.next() % 300),\"currency\":\"EUR\"}")
                t += 1000
                emit("page_view", path: "/checkout/done")
            case .hesitate:
                stay("/checkout/payment", seconds: 15...35)
                emit("page_view", path: "/cart")
                t += 5000
                emit("page_hidden", path: "/cart")
            case .dwellWithPings:
                stay("/checkout/payment", seconds: 60...120)
                emit("exit_intent", path: "/checkout/payment")
            case .dwellSilent:
                emit("page_view", path: "/checkout/payment")
            default:
                break
            }
        }
        if configuration.farewell {
            t += 600_000
            emit("page_view", path: "/bye")
        }
        return out
    }

    private static func title(_ path: String) -> String {
        switch path {
        case "/": return "Home"
        case "/cart": return "Your cart"
        case "/checkout/shipping": return "Shipping"
        case "/checkout/payment": return "Payment"
        case "/checkout/done": return "Thank you"
        default: return path.hasPrefix("/p/") ? "Product" : "Category"
        }
    }

    private func malformed(from message: SimulatedMessage, variant: Int) -> SimulatedMessage {
        var value = message.value
        switch variant {
        case 0: value = Array(value.prefix(value.count / 2))  // truncated
        case 1: value = Array(String(decoding: value, as: UTF8.self).replacing("\"visitor_id\"", with: "\"visitor\"").utf8)
        case 2: value = Array(String(decoding: value, as: UTF8.self).replacing("\"type\":\"", with: "\"type\":\"x_").utf8)
        default: value = Array("not json at all".utf8)
        }
        return SimulatedMessage(key: message.key, value: value, timestamp: message.timestamp, isValid: false)
    }
}
