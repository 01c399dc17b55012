@testable import BeckonCore
import PropertyBased
import Testing

/// A random journey of a few visitors: every event type the core reads, times that
/// sometimes tie, and now and then a gap long enough to end a session.
struct Journey {
    var events: [Event] = []

    init(seed: UInt64, visitors: Int) {
        var rng = SeededGenerator(seed: seed)
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        let paths = ["/", "/c/shoes", "/p/sku-1", "/p/sku-2", "/pricing", "/checkout/payment", "/settings/workflows/advanced", "/help/cron"]
        for v in 0..<visitors {
            var time = Int64(pick(20_000))
            var path = paths[pick(paths.count)]
            for n in 0..<(5 + pick(25)) {
                time += [0, 100, 1_000, 4_000, 15_000, 40_000][pick(6)]
                if pick(40) == 0 { time += 31 * 60_000 }  // a new session
                var p = EventProperties()
                var type = EventType.pageView
                switch pick(16) {
                case 0, 1, 2: type = .pageView; path = paths[pick(paths.count)]
                case 3: type = .pagePing
                case 4: type = .pageHidden
                case 5: type = .click; p.element = ["save", "buy"][pick(2)]
                case 6: type = .hover; p.element = "price"; p.hoverTarget = ["price", "product"][pick(2)]
                case 7: type = .scroll; p.scrollDepth = Double(pick(101))
                case 8: type = .search; p.searchResults = pick(3)
                case 9: type = [.addToCart, .removeFromCart][pick(2)]; p.sku = "s"; p.price = Double(pick(5000)) / 100; p.quantity = 1 + pick(2)
                case 10: type = .checkoutStep; p.step = 1 + pick(4)
                case 11: type = .formError; p.field = "f"
                case 12: type = .exitIntent
                case 13: type = .chatMessage; p.chatSender = ["visitor", "agent"][pick(2)]; p.chatSentiment = [-0.8, -0.3, 0, 0.6][pick(4)]
                case 14: type = [.chatStarted, .chatEnded][pick(2)]; p.chatWith = "agent"
                default: type = [.offerShown, .offerDismissed, .offerAccepted, .purchase][pick(4)]; p.decisionID = "d"; p.orderID = "o"; p.value = 10
                }
                let pagePath: String? = type == .pageHidden || type == .chatMessage ? nil : path
                events.append(Event(id: "v\(v)-\(n)", type: type, visitorID: "v\(v)", time: t0 + Millis(time), pagePath: pagePath, properties: p))
            }
        }
        events.sort { ($0.time, $0.id) < ($1.time, $1.id) }
    }

    /// The same events in an arrival order where each may be up to `lateness` behind the
    /// newest one seen before it (never late): sorted by time + a random delay ≤ lateness.
    func shuffled(seed: UInt64, lateness: Millis) -> [Event] {
        var rng = SeededGenerator(seed: seed)
        return events.map { ($0, $0.time.milliseconds + Int64(rng.next() % UInt64(lateness.value))) }
            .sorted { ($0.1, $0.0.id) < ($1.1, $1.0.id) }.map(\.0)
    }
}

struct Outcome: Equatable {
    var features: [String: [Feature: Double]] = [:]
    var scores: [String: [Double]] = [:]
    var firings: [String] = []
    var lateEvents = 0
}

func run(_ events: [Event], rules: RuleSet, model: IntentModel) -> Outcome {
    var p = PartitionProcessor(rules: rules, model: model, configuration: configuration(lateness: 5, idleAfter: 2))
    let wall = t0 + .minutes(6000)
    var decisions: [Decision] = []
    for e in events { decisions += p.process(e, arrivedAt: wall) }
    // Six idle seconds: the watermark passes every event, and no session has to end.
    decisions += p.advanceIdle(wallNow: wall + .seconds(6))
    var outcome = Outcome()
    for v in Set(events.map(\.visitorID)) {
        outcome.features[v] = p.features(of: v)
        outcome.scores[v] = p.scores(of: v)?.map(\.1)
    }
    decisions += p.advanceIdle(wallNow: wall + .minutes(600))
    outcome.firings = decisions.map { "\($0.id) \($0.ruleID) \($0.eventTime) \($0.triggerEventID) \($0.reason)" }.sorted()
    outcome.lateEvents = p.statistics.lateEvents
    return outcome
}

@Suite("Order independence, sessions, eviction")
struct OrderIndependenceTests {
    let rules: RuleSet
    let model: IntentModel

    init() throws {
        rules = try makeRules([("pay", "/checkout/payment", "30s", 5), ("product", "/p/*", "20s", 1), ("any", "/**", "45s", 0)])
        model = try shippedModel()
    }

    /// Any arrival order within the allowed lateness gives the same features, intent
    /// scores and timer firings as the events in event-time order.
    @Test func anyArrivalOrderWithinTheLatenessGivesTheSameResult() async {
        await propertyCheck(count: 150, input: Gen.int(in: 0...1_000_000), Gen.int(in: 1...5)) { seed, visitors in
            let journey = Journey(seed: UInt64(seed), visitors: visitors)
            let inOrder = run(journey.events, rules: rules, model: model)
            let shuffled = run(journey.shuffled(seed: UInt64(seed) &+ 1, lateness: .seconds(5)), rules: rules, model: model)
            #expect(shuffled.lateEvents == 0)
            #expect(inOrder.firings == shuffled.firings)
            let differing = inOrder.features.keys.sorted().flatMap { v in
                Feature.allCases.filter { inOrder.features[v]?[$0] != shuffled.features[v]?[$0] }
                    .map { "\(v).\($0.rawValue): \(inOrder.features[v]?[$0] ?? -1) vs \(shuffled.features[v]?[$0] ?? -1)" }
            }
            #expect(differing.isEmpty, "seed \(seed), \(visitors) visitors: \(differing)")
            #expect(inOrder.scores == shuffled.scores)
            #expect(!inOrder.features.isEmpty)
        }
    }

    /// The same recording replayed gives the same outcome, decisions included.
    @Test func replayingTwiceIsIdentical() async {
        await propertyCheck(count: 30, input: Gen.int(in: 0...1_000_000)) { seed in
            let events = Journey(seed: UInt64(seed), visitors: 4).shuffled(seed: UInt64(seed), lateness: .seconds(5))
            #expect(run(events, rules: rules, model: model) == run(events, rules: rules, model: model))
        }
    }

    /// After a gap longer than the session gap, session features are those of the new
    /// session alone; only the visit count remembers the earlier one.
    @Test func aSessionGapResetsSessionFeatures() async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...1_000_000), Gen.int(in: 0...3_600)) { seed, extraGapSeconds in
            let journey = Journey(seed: UInt64(seed), visitors: 1).events
            // First session: the journey up to its first long gap; second: a fresh journey.
            let second = Journey(seed: UInt64(seed) &+ 7, visitors: 1).events
            let firstEnd = journey.last!.time
            let shift = firstEnd + .minutes(30) + .seconds(Int64(extraGapSeconds) + 1) - second.first!.time
            let moved = second.enumerated().map { i, e in
                var e = e
                e.time = e.time + shift
                e.id = "second-\(i)"
                return e
            }
            let both = run(journey + moved, rules: .empty, model: .empty).features["v0"]
            let alone = run(moved, rules: .empty, model: .empty).features["v0"]
            var expected = alone
            let firstVisits = run(journey, rules: .empty, model: .empty).features["v0"]?[.visits] ?? 1
            expected?[.visits] = (alone?[.visits] ?? 1) + firstVisits
            expected?[.returning] = 1
            #expect(both == expected)
        }
    }

    /// A visitor with a pending dwell timer is never evicted, however long the dwell is
    /// compared with the session gap: the timer fires on time, without further events.
    @Test func evictionNeverDropsAVisitorWithAPendingTimer() async {
        await propertyCheck(count: 60, input: Gen.int(in: 1...120), Gen.int(in: 1...60)) { dwellMinutes, gapMinutes in
            let rules = try! makeRules([("long", "/checkout/payment", "\(dwellMinutes)m", 1)])
            var c = configuration()
            c.sessionGap = .minutes(Int64(gapMinutes))
            var p = PartitionProcessor(rules: rules, configuration: c)
            let wall = t0 + .minutes(6000)
            var decisions = p.process(view("silent", "s1", at: 0, "/checkout/payment"), arrivedAt: wall)
            // Another visitor keeps the watermark moving, minute by minute, for two hours.
            for minute in 1...125 {
                decisions += p.process(view("other", "o\(minute)", at: Double(minute * 60), "/"), arrivedAt: wall)
                if minute * 60 - 5 < dwellMinutes * 60 {
                    #expect(p.features(of: "silent") != nil, "evicted with a timer pending at minute \(minute)")
                }
            }
            #expect(decisions.filter { $0.visitorID == "silent" }.map(\.eventTime) == [t0 + .minutes(Int64(dwellMinutes))])
            // Once the timer has fired and the session is over, the state goes.
            #expect(p.features(of: "silent") == nil)
        }
    }
}
