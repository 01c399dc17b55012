import BeckonCore
import Testing

@Suite("Event decoder")
struct DecoderTests {
    let decoder = EventDecoder()
    let now = EventTime.parseRFC3339("2026-03-02T10:00:00Z")!

    func decode(_ text: String, key: String? = "v1", broker: EventTime? = nil) -> Result<Event, DecodeFailure> {
        decoder.decode(Array(text.utf8), key: key, brokerTime: broker)
    }

    @Test func decodesAGoodEvent() throws {
        let event = try decode(#"{"event_id":"e1","type":"page_view","visitor_id":"v1","ts":"2026-03-02T10:00:01Z","channel":"app","user_id":"u1","page":{"url":"https://x.example/checkout/payment?step=2"}}"#).get()
        #expect(event.id == "e1")
        #expect(event.type == .pageView)
        #expect(event.visitorID == "v1")
        #expect(event.time == now + .seconds(1))
        #expect(event.channel == "app")
        #expect(event.userID == "u1")
        #expect(event.pagePath == "/checkout/payment")
        #expect(!event.timeWasClamped)
    }

    @Test func acceptsEpochMilliseconds() throws {
        let event = try decode(#"{"event_id":"e1","type":"click","visitor_id":"v1","ts":1772445600500,"properties":{"element":"buy-button"}}"#).get()
        #expect(event.time.milliseconds == 1_772_445_600_500)
        #expect(event.channel == "web")
    }

    @Test(arguments: [
        ("", "empty", "$"),
        ("{\"event_id\":", "invalid_json", "$"),
        ("[1]", "wrong_type", "$"),
        (#"{"type":"click","visitor_id":"v1","ts":1}"#, "missing_field", "$.event_id"),
        (#"{"event_id":"e","type":"click","ts":1}"#, "missing_field", "$.visitor_id"),
        (#"{"event_id":"e","type":"teleport","visitor_id":"v1","ts":1}"#, "unknown_type", "$.type"),
        (#"{"event_id":"e","type":"click","visitor_id":7,"ts":1}"#, "wrong_type", "$.visitor_id"),
        (#"{"event_id":"e","type":"click","visitor_id":"v1","ts":-5}"#, "invalid_ts", "$.ts"),
        (#"{"event_id":"e","type":"click","visitor_id":"v1","ts":"soon"}"#, "invalid_ts", "$.ts"),
        (#"{"event_id":"e","type":"click","visitor_id":"v1","ts":true}"#, "wrong_type", "$.ts"),
        (#"{"event_id":"e","type":"click","visitor_id":"v1","ts":1,"page":"/x"}"#, "wrong_type", "$.page"),
        (#"{"event_id":"e","type":"click","visitor_id":"v1","ts":1,"properties":[]}"#, "wrong_type", "$.properties"),
        (#"{"event_id":"","type":"click","visitor_id":"v1","ts":1}"#, "empty_field", "$.event_id"),
    ])
    func refusesWithPathAndCode(text: String, code: String, path: String) {
        guard case .failure(let failure) = decode(text) else {
            Issue.record("accepted \(text)")
            return
        }
        #expect(failure.code == code)
        #expect(failure.path == path)
    }

    @Test func refusesAKeyThatIsNotTheVisitor() {
        guard case .failure(let f) = decode(#"{"event_id":"e","type":"click","visitor_id":"v1","ts":1}"#, key: "v2") else {
            Issue.record("accepted")
            return
        }
        #expect(f.code == "key_mismatch")
        #expect(f.message == "Kafka key 'v2' differs from visitor_id 'v1'")
    }

    @Test func refusesLongIDsAndLargePayloads() {
        let long = String(repeating: "x", count: 65)
        guard case .failure(let f) = decode(#"{"event_id":"\#(long)","type":"click","visitor_id":"v1","ts":1}"#) else {
            Issue.record("accepted")
            return
        }
        #expect(f.code == "too_long")
        let big = [UInt8](repeating: 0x20, count: decoder.maximumPayloadBytes + 1)
        guard case .failure(let g) = decoder.decode(big, key: nil, brokerTime: nil) else {
            Issue.record("accepted")
            return
        }
        #expect(g.code == "too_large")
    }

    @Test func clampsAClientClockFarFromTheBrokerAndRefusesABrokenOne() throws {
        let props = #","properties":{"element":"b"}}"#
        let ahead = try decode(#"{"event_id":"e","type":"click","visitor_id":"v1","ts":"2026-03-02T15:00:00Z""# + props, broker: now).get()
        #expect(ahead.timeWasClamped)
        #expect(ahead.time == now)
        let near = try decode(#"{"event_id":"e","type":"click","visitor_id":"v1","ts":"2026-03-02T10:30:00Z""# + props, broker: now).get()
        #expect(!near.timeWasClamped)
        #expect(near.time == now + .minutes(30))
        guard case .failure(let f) = decode(#"{"event_id":"e","type":"click","visitor_id":"v1","ts":"2027-01-01T00:00:00Z""# + props, broker: now) else {
            Issue.record("accepted a clock 304 days ahead")
            return
        }
        #expect(f.code == "invalid_ts")
        #expect(f.path == "$.ts")
    }

    @Test func checksPerTypePropertiesAndKeepsThem() throws {
        let e = try decode(#"{"event_id":"e","type":"add_to_cart","visitor_id":"v1","ts":1,"properties":{"sku":"s1","quantity":2,"price":9.5}}"#).get()
        #expect(e.properties.sku == "s1")
        #expect(e.properties.quantity == 2)
        #expect(e.properties.price == 9.5)
        guard case .failure(let f) = decode(#"{"event_id":"e","type":"scroll","visitor_id":"v1","ts":1,"properties":{"depth":101}}"#) else {
            Issue.record("accepted")
            return
        }
        #expect(f.code == "out_of_range")
        #expect(f.path == "$.properties.depth")
        guard case .failure(let g) = decode(#"{"event_id":"e","type":"page_view","visitor_id":"v1","ts":1,"page":{"title":"x"}}"#) else {
            Issue.record("accepted")
            return
        }
        #expect(g.path == "$.page")
    }
}
