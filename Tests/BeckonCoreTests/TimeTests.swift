import BeckonCore
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
