@testable import BeckonCore
import PropertyBased
import Testing

@Suite("Compact idle visitors")
struct CompactVisitorTests {
    let rules: RuleSet
    let policy: Policy
    let model: IntentModel

    init() throws { (rules, policy, model) = try shippedBundle() }

    func processor(compactAfter: Millis?) -> PartitionProcessor {
        var c = configuration(lateness: 5, idleAfter: 2)
        c.compactAfter = compactAfter
        return PartitionProcessor(rules: rules, model: model, policy: policy, configuration: c)
    }

    /// Every field survives the compact form: states from random journeys through the
    /// shipped rules (windowed counts, the policy's memory, user ids) are frozen and thawed
    /// and compare equal, sidecars included. Scores are recomputed on thawing, to the
    /// same values.
    @Test func aFrozenAndThawedStateEqualsTheOriginal() async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...1_000_000)) { seed in
            var p = processor(compactAfter: nil)
            let wall = t0 + .minutes(6000)
            var events = Journey(seed: UInt64(seed), visitors: 6).shuffled(seed: UInt64(seed), lateness: .seconds(5))
            // Every other seed, user ids too long for the writer's first buffer (512 bytes):
            // the encoding overflows, and is written again into a larger one.
            let padding = seed % 2 == 0 ? String(repeating: "x", count: 600) : ""
            for i in events.indices where i % 3 == 0 { events[i].userID = "u-\(events[i].visitorID)" + padding }
            // Every third seed, ids as trackers send them: UUIDs, in lower, upper and mixed
            // case (the compact form packs the first two into 16 bytes, keeps the third as text).
            if seed % 3 == 0 {
                for i in events.indices {
                    events[i].visitorID = uuid(events[i].visitorID, style: events[i].visitorID.utf8.count % 3)
                    events[i].id = uuid(events[i].id, style: i % 3)
                }
            }
            // And one visitor the windowed count of the workflow rule sees.
            let last = events.map(\.time.milliseconds).max()! - t0.milliseconds
            events += (0..<3).map { i in
                event(.formError, "w", "w-\(i)", at: Double(last) / 1000 + Double(i), path: "/settings/workflows/advanced") { $0.field = "cron" }
            }
            var before: [Int32: (VisitorState, VisitorTable.Sidecar?)] = [:]
            var sidecars = 0, counters = 0
            for (n, e) in events.enumerated() {
                _ = p.process(e, arrivedAt: wall)
                guard n % 7 == 6 || n == events.count - 1 else { continue }
                // Freeze every hot visitor and thaw it again, through the processor.
                before = [:]
                p.visitors.forEachResident { v, _ in before[v.pointee.handle] = (v.pointee, p.visitors.sidecar(v.pointee.handle)) }
                for slot in before.keys { p.visitors.freeze(slot) }
                #expect(p.visitors.hotCount == 0 && p.compactVisitorCount == before.count)
                for (slot, (state, sidecar)) in before {
                    let thawed = p.state(slot).pointee
                    #expect(thawed == state, "seed \(seed): \(state.visitorID)")
                    #expect(encoded(p.visitors.sidecar(slot)) == encoded(sidecar))
                    if sidecar != nil { sidecars += 1 }
                    if !state.counters.isEmpty { counters += 1 }
                }
            }
            // The journeys exercise the parts kept outside the inline state.
            #expect(sidecars > 0 && counters > 0)
        }
    }

    /// At its session's end a frozen visitor is read in its compact form and evicted, not
    /// thawed first; what is kept of it (visits, the policy's daily cap) is kept all the
    /// same. A frozen visitor whose session goes on is thawed by its next event.
    @Test func aFrozenVisitorIsEvictedWithoutThawing() throws {
        let set = try BeckonCoreTests.rules([("click", "when: event == click\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n")])
        var c = configuration(lateness: 0)
        c.sessionGap = .minutes(1)
        c.compactAfter = .seconds(5)
        var p = PartitionProcessor(rules: set, policy: Policy(minimumGap: .zero, maxPerSession: 5, maxPerDay: 1), configuration: c)
        // v1 is signed in: its sidecar holds the user id ahead of the prompt memory.
        var first = event(.click, "v1", "a", at: 0, path: "/p") { $0.element = "b" }
        first.userID = "user-1"
        #expect(p.process(first, arrivedAt: t0).map(\.visitorID) == ["v1"])
        _ = p.process(event(.click, "v2", "b", at: 0.5, path: "/p") { $0.element = "b" }, arrivedAt: t0)
        // Other traffic: both are frozen; v2 comes back within its session, v1 does not.
        _ = p.process(event(.scroll, "v3", "s1", at: 30, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        _ = p.process(event(.scroll, "v3", "s3", at: 31, path: "/p") { $0.scrollDepth = 6 }, arrivedAt: t0)
        #expect(p.compactVisitorCount == 2)
        _ = p.process(event(.scroll, "v2", "c", at: 40, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        #expect(p.statistics.restored == 1)
        // A new visitor's event moves the watermark past v1's session end (v2 and v3 are
        // frozen now, and stay so).
        _ = p.process(event(.scroll, "v4", "s2", at: 65, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        #expect(p.statistics.evictedVisitors == 1)
        #expect(p.features(of: "v1") == nil)
        #expect(p.statistics.restored == 1, "the eviction thawed v1")
        // v1 comes back the same day: a second visit, and the daily cap still holds.
        #expect(p.process(event(.click, "v1", "d", at: 70, path: "/p") { $0.element = "b" }, arrivedAt: t0).isEmpty)
        #expect(p.takeSuppressions().map(\.reason) == [.cap])
        #expect(p.features(of: "v1")?[.visits] == 2)
    }

    /// A write that does not fit leaves the writer overflowed, with nothing written past its
    /// buffer; `write` then grows it and writes everything again.
    @Test func aWriteThatDoesNotFitIsWrittenAgainIntoALargerBuffer() {
        var w = ColdWriter()
        let long = String(repeating: "é", count: 400)  // 800 bytes
        var passes = 0
        w.write { w in
            passes += 1
            w.number(UInt16(7))
            w.string(long)
            w.flag(true)
            w.byte(9)
            w.fixed32(0xDEAD_BEEF)
        }
        #expect(passes == 2)
        #expect(!w.overflowed)
        var r = ColdReader(w.written.baseAddress!)
        let number: UInt16 = r.number(), string = r.string(), flag = r.flag(), byte = r.byte(), word = r.fixed32()
        #expect(number == 7 && string == long && flag && byte == 9 && word == 0xDEAD_BEEF)
        #expect(r.offset == w.count)
    }

    /// UUIDs in canonical form take 17 bytes in the compact form, and read back as they
    /// were written, letter case included; anything else is kept as text.
    @Test func aUUIDIsPackedAndReadsBackAsItWasWritten() {
        let packed = ["0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0ff", "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0FF", "01234567-8901-2345-6789-012345678901",
                      "ffffffff-ffff-ffff-ffff-ffffffffffff", "00000000-0000-0000-0000-000000000000"]
        let text = ["0f1e2d3c-4b5a-4978-8695-A4B3C2D1E0FF",  // mixed case
                    "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0fg",  // not a hex digit
                    "0f1e2d3c04b5a-4978-8695-a4b3c2d1e0ff",  // a dash missing
                    "0f1e2d3c-4b5a4-978-8695-a4b3c2d1e0ff",  // a dash moved
                    "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0ff0", "",
                    "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f\u{e9}",  // 36 bytes, not 36 characters
                    "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0FG",
                    // the characters either side of each range of digits
                    "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0/f", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0:f", "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0@F",
                    "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0`f", "\u{80}f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f"]
        for s in packed + text {
            var w = ColdWriter()
            w.write { $0.string(s); $0.byte(0xAB) }
            #expect(w.count == (packed.contains(s) ? 17 : 1 + s.utf8.count) + 1, "\(s)")
            var r = ColdReader(w.written.baseAddress!)
            let read = r.string(), after = r.byte()
            #expect(read == s && after == 0xAB)
            var q = ColdReader(w.written.baseAddress!)
            let equals = q.stringEquals(s)
            #expect(equals && q.offset == w.count - 1)
            for other in packed + text where other != s {
                var o = ColdReader(w.written.baseAddress!)
                let same = o.stringEquals(other)
                #expect(!same, "\(s) read as \(other)")
            }
        }
    }

    /// A sidecar's bytes in the compact form (a stand-in for equality).
    func encoded(_ sidecar: VisitorTable.Sidecar?) -> [UInt8] {
        var w = ColdWriter()
        sidecar?.prompts.encode(into: &w, base: 0)
        sidecar?.heldBeyond64.encode(into: &w)
        w.string(sidecar?.userID ?? "-")
        w.string(sidecar?.channel ?? "-")
        return w.bytes
    }

    /// Compacting idle visitors is invisible: with every visitor compacted as soon as the
    /// watermark passes its latest event, or after 10 s, or never, the same events give
    /// the same decisions, suppressions, features, scores and counts.
    @Test func compactingIdleVisitorsChangesNoOutcome() async {
        await propertyCheck(count: 80, input: Gen.int(in: 0...1_000_000), Gen.int(in: 1...6)) { seed, visitors in
            let events = Journey(seed: UInt64(seed), visitors: visitors).shuffled(seed: UInt64(seed) &+ 3, lateness: .seconds(5))
            let never = outcome(events, compactAfter: nil)
            for after in [Millis(0), .seconds(10)] {
                let compacted = outcome(events, compactAfter: after)
                #expect(compacted.text == never.text, "seed \(seed), compact after \(after.value) ms")
                #expect(compacted.statistics == never.statistics)
                // (Thawing is covered by `aFrozenAndThawedStateEqualsTheOriginal` and
                // `aFrozenVisitorIsEvictedWithoutThawing`: here a journey may end before any
                // frozen visitor comes back, and an eviction does not thaw.)
                if after.value == 0 { #expect(compacted.compacted > 0) }
            }
        }
    }

    struct Outcome {
        var text: [String] = []
        var statistics = ProcessorStatistics()
        var compacted = 0, restored = 0
    }

    func outcome(_ events: [Event], compactAfter: Millis?) -> Outcome {
        var p = processor(compactAfter: compactAfter)
        let wall = t0 + .minutes(6000)
        var o = Outcome()
        func record(_ decisions: [Decision]) {
            o.text += decisions.map { "\($0.id) \($0.ruleID) \($0.eventTime) \($0.triggerEventID) \($0.reason) \($0.experiment)" }
            o.text += p.takeSuppressions().map { "suppressed \($0.id) \($0.ruleID) \($0.reason)" }
        }
        for (n, e) in events.enumerated() {
            record(p.process(e, arrivedAt: wall))
            if n % 5 == 0 {
                let v = e.visitorID
                o.text.append("\(v) \(p.features(of: v).map { $0.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value)" } } ?? [])")
                o.text.append("\(v) \(p.scores(of: v)?.map(\.1) ?? [])")
            }
        }
        record(p.advanceIdle(wallNow: wall + .seconds(6)))
        for v in Set(events.map(\.visitorID)).sorted() {
            o.text.append("\(v) \(p.features(of: v).map { $0.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value)" } } ?? [])")
            o.text.append("\(v) \(p.scores(of: v)?.map(\.1) ?? [])")
        }
        record(p.advanceIdle(wallNow: wall + .minutes(600)))
        o.text.append("resident \(p.visitorCount), held \(p.heldEvents)")
        o.statistics = p.statistics
        o.compacted = p.statistics.compacted
        o.restored = p.statistics.restored
        o.statistics.compacted = 0
        o.statistics.restored = 0
        return o
    }
}

extension CompactVisitorTests {
    /// The compact form must name every field: one added to the state, its features, the
    /// policy's memory or the sidecar must be added to `ColdVisitors.swift` too, and here.
    @Test func theCompactFormKnowsEveryField() {
        func labels(_ value: Any) -> String { Mirror(reflecting: value).children.map { $0.label ?? "?" }.joined(separator: " ") }
        let state = VisitorState(visitorID: "v", lastEventTime: t0, pageSince: t0, pageEventID: "e")
        #expect(labels(state) == """
            features channel pendingWakes pageClass sessionTimerPending scores visitorID lastEventTime \
            pageSince pageEventID lastPageTime sessionPosition heldRules nextWake latestWake counters pageID \
            pageHash lastPageID handle recentEventIDs
            """)
        #expect(labels(VisitorFeatures()) == """
            classViews cartCents recentPages recentCategories formErrors clicks scrolls priceHovers chats \
            sessionStart lastCartChange lastCheckoutProgress checkoutStepSince lastExitIntent lastSentiment \
            lastSentimentAt minSentiment sessionEvents visits pageViews cartItems formErrorsSession \
            priceHoversSession checkoutStep purchased searches zeroResultSearches exitIntents chatMessages \
            negativeMessages offersShown offersAccepted offersDismissed
            """)
        #expect(labels(PromptMemory()) == "lastPrompt session today day dismissed lastByRule recent")
        #expect(labels(VisitorTable.Sidecar()) == "userID channel prompts heldBeyond64")
    }

    /// A UUID-shaped id made from `id`: lower case letters (style 0), upper case (1) or both (2).
    func uuid(_ id: String, style: Int) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in id.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let hex = String(h, radix: 16, uppercase: style == 1).leftPadded(16) + String(h.byteSwapped, radix: 16, uppercase: style != 0).leftPadded(16)
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
