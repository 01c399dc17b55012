@testable import BeckonCore
import PropertyBased
import Testing

@Suite("Event time and durations")
struct TimeTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2026-03-02T10:00:00Z", Int64(1_772_445_600_000)),
        ("2026-03-02T10:00:00.123Z", Int64(1_772_445_600_123)),
        ("2026-03-02T10:00:00.1Z", Int64(1_772_445_600_100)),
        ("2026-03-02T12:00:00+02:00", Int64(1_772_445_600_000)),
        ("2026-03-02T05:30:00-04:30", Int64(1_772_445_600_000)),
        ("2024-02-29T00:00:00Z", Int64(1_709_164_800_000)),
    ])
    func parsesRFC3339(text: String, milliseconds: Int64) {
        #expect(EventTime.parseRFC3339(text)?.milliseconds == milliseconds)
    }

    @Test(arguments: ["2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-03-02 10:00", "2026-03-02T10:00:00", "2026-03-02T25:00:00Z",
                      "2026-03-02T10:00:00.Z", "2026-03-02T10:00:00+0200", "yesterday", ""])
    func refusesMalformedDates(text: String) {
        #expect(EventTime.parseRFC3339(text) == nil)
    }

    /// The word-wise fast path for `YYYY-MM-DDTHH:MM:SS.sssZ` gives what the general parser
    /// gives, for valid stamps and for stamps with one byte changed.
    @Test func theFastTimestampPathAgreesWithTheGeneralParser() async {
        func both(_ text: String) -> (fast: EventTime?, general: EventTime?) { both(Array(text.utf8)) }
        func both(_ utf8: [UInt8]) -> (fast: EventTime?, general: EventTime?) {
            var utf8 = utf8
            return utf8.withUnsafeMutableBufferPointer { b in
                let b = UnsafeBufferPointer(b)
                return (EventTime.parseCommonRFC3339(b), EventTime.parseAnyRFC3339(b))
            }
        }
        let bytes: [UInt8] = Array("0123456789:-.TtZz+ /\u{7F}\u{80}".utf8)
        await propertyCheck(count: 3000, input: Gen.int(in: 0...4_102_444_800_000), Gen.int(in: 0...23), Gen.int(in: 0...(bytes.count - 1))) { ms, position, byte in
            let text = EventTime(milliseconds: Int64(ms)).rfc3339
            #expect(text.utf8.count == 24)
            let valid = both(text)
            #expect(valid.fast == valid.general && valid.fast?.milliseconds == Int64(ms))
            var mutated = Array(text.utf8)
            mutated[position] = bytes[byte]
            let changed = both(mutated)
            // The fast path may decline (nil) and leave the verdict to the general parser,
            // but what it accepts, the general parser accepts with the same time.
            if let fast = changed.fast { #expect(fast == changed.general) }
        }
        #expect(both("2026-02-29T10:00:00.000Z").fast == nil)
        #expect(both("2024-02-29t10:00:60.999z").fast == both("2024-02-29t10:00:60.999z").general)
    }

    @Test func formatsInUTCWithMilliseconds() {
        #expect(EventTime(milliseconds: 1_772_445_600_123).rfc3339 == "2026-03-02T10:00:00.123Z")
        #expect(EventTime(milliseconds: -1).rfc3339 == "1969-12-31T23:59:59.999Z")
    }

    @Test(arguments: [("45s", Int64(45_000)), ("2m", 120_000), ("1h30m", 5_400_000), ("250ms", 250), ("1.5s", 1500), ("1d", 86_400_000)])
    func parsesDurations(text: String, milliseconds: Int64) {
        #expect(Millis.parse(text)?.value == milliseconds)
    }

    @Test(arguments: ["", "45", "s", "5 sec", "-1s", "1x"])
    func refusesBadDurations(text: String) {
        #expect(Millis.parse(text) == nil)
    }
}
