@testable import BeckonCore
import CBeckonSIMD
import Testing

/// The single-pass decoder is held to the tree-based reference decoder: for every input,
/// the same event or the same refusal (code, path and message).
@Suite("Decoder agrees with the reference decoder")
struct DecoderDifferentialTests {
    let decoder = EventDecoder()
    let broker = EventTime.parseRFC3339("2026-03-02T10:30:00Z")!

    func agree(_ input: [UInt8], key: String?, broker: EventTime?) -> Bool {
        decoder.decode(input, key: key, brokerTime: broker) == decoder.referenceDecode(input, key: key, brokerTime: broker)
    }

    @Test func simulatedMixAndItsMutations() {
        var configuration = Simulator.Configuration()
        configuration.visitors = 200
        configuration.seed = 11
        configuration.badShare = 0.05
        let messages = Simulator(configuration).messages()
        var rng = SeededGenerator(seed: 5)
        var disagreements: [String] = []
        var accepted = 0
        for m in messages {
            if case .success = decoder.decode(m.value, key: m.key, brokerTime: broker) { accepted += 1 }
            if !agree(m.value, key: m.key, broker: broker) { disagreements.append(String(decoding: m.value, as: UTF8.self)) }
            var mutated = m.value
            for _ in 0..<3 {
                let i = Int(rng.next() % UInt64(max(mutated.count, 1)))
                switch rng.next() % 4 {
                case 0 where !mutated.isEmpty: mutated[i] ^= UInt8(1 << (rng.next() % 8))
                case 1 where !mutated.isEmpty: mutated.remove(at: i)
                case 2: mutated.insert(contentsOf: Array(#"\u00e9""#.utf8), at: min(i, mutated.count))
                default: mutated = Array(mutated.prefix(i))
                }
            }
            if !agree(mutated, key: m.key, broker: broker) { disagreements.append(String(decoding: mutated, as: UTF8.self)) }
        }
        #expect(accepted > messages.count / 2)
        #expect(disagreements.isEmpty, "\(disagreements.prefix(3))")
    }

    @Test(arguments: [
        #"{"event_id":"e\u0031","type":"page\u005fview","visitor_id":"v1","ts":1772445600000,"page":{"path":"/a\u00e9"}}"#,
        #"{"event_id":"e1","type":"click","visitor_id":"v1","ts":1,"properties":{"element":"a","element":7}}"#,
        #"{"event_id":"e1","type":"click","visitor_id":"v1","ts":1,"properties":{"elem\u0065nt":"b"}}"#,
        #"{"ts":"2026-03-02T10:00:00.5+01:00","event_id":"e1","visitor_id":"v1","type":"purchase","properties":{"value":1.5e2,"order_id":"o","currency":"EUR"}}"#,
        #"{"event_id":"e1","type":"chat_message","visitor_id":"v1","ts":1,"properties":{"text":"\ud83d\ude00 bad \\ \"x\""}}"#,
        #"{"event_id":"e1","type":"search","visitor_id":"v1","ts":1,"properties":{"results":1.0}}"#,
        #"{"event_id":"e1","type":"search","visitor_id":"v1","ts":1,"properties":{"results":0.5}}"#,
        #"  {"event_id":"e1","type":"hover","visitor_id":"v1","ts":1,"properties":{"element":"p","target":"price"}}  "#,
        #"{"event_id":"e1","type":"page_view","visitor_id":"v1","ts":1,"page":{"url":"https://x/y?z"},"page":{"url":""}}"#,
        #"{"event_id":"e1","type":"page_view","visitor_id":"v1","ts":1,"page":{"url":"https://x/y?z","title":null}} x"#,
        #"{"event_id":"e1","type":"click","visitor_id":"v1","ts":1,"x":[[[{"a":[]}]]],"properties":{"element":"\ud800"}}"#,
        "\"just a string\"",
        "[",
        "{\"a\":\"\u{1}\"}",
    ])
    func edgeCases(text: String) {
        let input = Array(text.utf8)
        #expect(decoder.decode(input, key: "v1", brokerTime: nil) == decoder.referenceDecode(input, key: "v1", brokerTime: nil))
    }

    @Test func invalidUTF8IsReportedLikeTheReference() {
        for bad: [UInt8] in [[0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0xFF]] {
            let input = Array(#"{"event_id":"e1","type":"click","visitor_id":"v1","ts":1,"properties":{"element":""#.utf8) + bad + Array(#""}}"#.utf8)
            let result = decoder.decode(input, key: nil, brokerTime: nil)
            #expect(result == decoder.referenceDecode(input, key: nil, brokerTime: nil))
            guard case .failure(let failure) = result else {
                Issue.record("accepted \(bad)")
                continue
            }
            #expect(failure.code == "invalid_utf8")
        }
    }
}

@Test func typeNamesMatchTheirCases() {
    #expect(EventType.utf8Names.map { $0.description } == EventType.allCases.map(\.rawValue))
    for type in EventType.allCases {
        let bytes = Array(type.rawValue.utf8)
        #expect(bytes.withUnsafeBytes { EventType(utf8: $0) } == type)
    }
}

@Test func plainWordDetection() {
    func word(_ s: String) -> UInt64 { Array(s.utf8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }
    #expect(JSONScanner.isPlain(word("abcdefgh")))
    #expect(JSONScanner.isPlain(word("~ !#$%[]")))
    for bad in ["abc\"defg", "abcdefg\\", "\u{1F}bcdefgh", "abcdéfg", "abcdef\u{7F}\u{1}"] {
        let bytes = Array(bad.utf8).prefix(8)
        #expect(!JSONScanner.isPlain(Array(bytes).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }), "\(bad)")
    }
}

/// The vector helper flags exactly the bytes a string scan must stop at, each at its position.
@Test func vectorStringScanFlagsExactlyTheSpecialBytes() {
    var rng = SeededGenerator(seed: 3)
    let interesting: [UInt8] = [0x00, 0x1F, 0x20, 0x21, 0x22, 0x5B, 0x5C, 0x5D, 0x7E, 0x7F, 0x80, 0xC3, 0xFF]
    for round in 0..<20_000 {
        let bytes = (0..<16).map { _ in round % 2 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : interesting[Int(rng.next() % UInt64(interesting.count))] }
        var expected: UInt32 = 0
        for (i, b) in bytes.enumerated() where b == 0x22 || b == 0x5C || b < 0x20 || b >= 0x80 { expected |= 1 << UInt32(i) }
        let mask = bytes.withUnsafeBytes { beckon_string_specials16($0.baseAddress!) }
        #expect(mask == expected, "\(bytes)")
    }
}

@Test func ordinalsArePositions() {
    for (i, type) in EventType.allCases.enumerated() { #expect(type.ordinal == i) }
}
