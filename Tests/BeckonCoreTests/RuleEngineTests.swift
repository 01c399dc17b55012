@testable import BeckonCore
import Foundation
import PropertyBased
import Testing

/// The shipped rules, policy and model, read the way `beckon rules test` reads them.
func shippedBundle() throws -> (RuleSet, Policy, IntentModel) {
    let dir = repositoryRoot + "/Rules"
    let model = try shippedModel()
    let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") && $0 != "policy.yaml" }.sorted()
    let files = try names.map { (name: $0, text: try String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) }
    let rules = try RuleSet.load(files: files, intents: model.intents.map(\.name)).get()
    let policy = try Policy.load(file: "policy.yaml", text: String(contentsOfFile: dir + "/policy.yaml", encoding: .utf8)).get()
    return (rules, policy, model)
}

func fixtureTexts() throws -> [(String, String)] {
    let dir = repositoryRoot + "/Rules/tests"
    return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        .map { ($0, try String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) }
}

func rules(_ texts: [(String, String)]) throws -> RuleSet {
    try RuleSet.load(files: texts.map { (name: $0.0 + ".yaml", text: "id: \($0.0)\n" + $0.1) }).get()
}

func event(_ type: EventType, _ visitor: String, _ id: String, at seconds: Double, path: String? = nil,
           _ fill: (inout EventProperties) -> Void = { _ in }) -> Event {
    var p = EventProperties()
    fill(&p)
    return Event(id: id, type: type, visitorID: visitor, time: t0 + Millis(Int64(seconds * 1000)), pagePath: path, properties: p)
}

@Suite("Rules and policy in the core")
struct RuleEngineTests {
    let wall = EventTime.parseRFC3339("2026-11-21T00:00:00Z")!

    @Test func everyShippedRuleTestPasses() throws {
        let (rules, policy, model) = try shippedBundle()
        let fixtures = try fixtureTexts()
        #expect(fixtures.count >= 12)
        for (name, text) in fixtures {
            let fixture = try RuleFixture.parse(file: name, text: text)
            #expect(fixture.run(rules: rules, policy: policy, model: model) == [], "\(name)")
        }
        // Every scenario rule has at least one test that expects its decision.
        let all = fixtures.map(\.1).joined()
        for rule in rules.rules { #expect(all.contains("rule: \(rule.id), action:"), "no test expects \(rule.id) to decide") }
    }

    @Test func aRuleTestWithAWrongExpectationFails() throws {
        let (rules, policy, model) = try shippedBundle()
        let text = try String(contentsOfFile: repositoryRoot + "/Rules/tests/checkout-payment-coupon.yaml", encoding: .utf8)
        for (from, to) in [("{at: 1m, rule: checkout-payment-coupon", "{at: 2m, rule: checkout-payment-coupon"),
                           ("code: STAY10", "code: STAY20"), ("experiment: treatment", "experiment: holdout")] {
            #expect(text.contains(from))
            let fixture = try RuleFixture.parse(file: "wrong.yaml", text: text.replacing(from, with: to))
            let problems = fixture.run(rules: rules, policy: policy, model: model)
            #expect(problems.count == 1 && problems[0].hasPrefix("expected decisions:"), "\(to): \(problems)")
        }
        // An event no tracker could send is reported, not silently skipped.
        let bad = try RuleFixture.parse(file: "bad.yaml", text: "events:\n  - {at: 0s, type: click}\nexpect: {}\n")
        #expect(bad.run(rules: rules, policy: policy, model: model).first?.contains("would be dead-lettered") == true)
    }

    /// A rule that names a page is not evaluated off it (`RulePlan.requiredPath`); one whose
    /// page is one of several alternatives still fires on any of them.
    @Test func pageConditionsNeededOrAlternative() throws {
        let set = try rules([
            ("needs", "when: page.path ~ \"/pricing\" and event == click\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n"),
            ("either", "when: page.path ~ \"/help\" or (page.path ~ \"/docs/*\" and event == click)\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n"),
        ])
        var p = PartitionProcessor(rules: set, policy: Policy(minimumGap: .zero), configuration: configuration(lateness: 0))
        var fired: [String] = []
        for (i, (path, click)) in [("/pricing", true), ("/docs/setup", true), ("/cart", true), ("/help", false)].enumerated() {
            let at = Double(i) * 100
            for d in p.process(event(.pageView, "v", "p\(i)", at: at, path: path), arrivedAt: wall) { fired.append("\(d.ruleID)@\(path)") }
            if click {
                for d in p.process(event(.click, "v", "c\(i)", at: at + 1, path: path) { $0.element = "b" }, arrivedAt: wall) {
                    fired.append("\(d.ruleID)@\(path)")
                }
            }
        }
        #expect(fired == ["needs@/pricing", "either@/docs/setup", "either@/help"])
    }

    /// Events off the page a rule needs skip its evaluation (`rulesByPath`), but the first
    /// such event after the rule held still ends it: back on the page, it fires again.
    @Test func leavingTheRulesPageEndsItsCondition() throws {
        let set = try rules([
            ("pricing", "when: page.path ~ \"/pricing\"\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n"),
            ("help", "when: page.path ~ \"/help\" and page_views >= 2\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n"),
        ])
        var p = PartitionProcessor(rules: set, policy: Policy(minimumGap: .zero, maxPerSession: 100, maxPerDay: 100), configuration: configuration(lateness: 0))
        var fired: [String] = []
        for (i, path) in ["/pricing", "/pricing", "/cart", "/cart", "/pricing", "/help", "/pricing"].enumerated() {
            for d in p.process(event(.pageView, "v", "p\(i)", at: Double(i) * 100, path: path), arrivedAt: wall) { fired.append("\(d.ruleID)@\(i)") }
        }
        #expect(fired == ["pricing@0", "pricing@4", "help@5", "pricing@6"])
    }

    /// A condition read right after a rescore takes the rescore's feature values only when
    /// they are for the same instant: an event older than the visitor's latest (within the
    /// allowed lateness) reads time features at its own time.
    @Test func anEarlierEventReadsTimeFeaturesAtItsOwnTime() throws {
        let set = try rules([("early", "when: event == click and session_seconds < 5\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n")])
        // With a model, so the event is rescored before the rules are evaluated.
        var p = PartitionProcessor(rules: set, model: try shippedModel(), policy: Policy(minimumGap: .zero), configuration: configuration(lateness: 5))
        var fired: [String] = []
        for e in [event(.pageView, "v", "p", at: 0, path: "/home"), event(.exitIntent, "v", "x", at: 6, path: "/home"),
                  event(.click, "v", "c", at: 4, path: "/home") { $0.element = "b" }] {
            for d in p.process(e, arrivedAt: wall) { fired.append(d.triggerEventID) }
        }
        #expect(fired == ["c"])  // session_seconds is 4 at the click, though 6 at the rescore
    }

    /// Past 64 path tests, results are kept beside a page's bits: a rule on the 70th path
    /// fires there and nowhere else, just as one on the 1st.
    /// With at most 64 rules, `evaluateRules` visits only the triggered rules that are on
    /// their page or held before (bit sets); past 64 it visits every triggered rule. The
    /// shipped rules decide the same over random journeys both ways: alone, and with 60
    /// rules that never hold added after them.
    @Test func screeningRulesByBitsChangesNoDecision() async throws {
        let dir = repositoryRoot + "/Rules"
        let (_, policy, model) = try shippedBundle()
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") && $0 != "policy.yaml" }.sorted()
        let files = try names.map { (name: $0, text: try String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) }
        let padding = (0..<60).map { i in
            (name: "zz-\(i).yaml", text: "id: zz-\(i)\nwhen: page.path ~ \"/never/\(i)\" and event == click\naction: offer_help\npayload: {message: no}\n")
        }
        let shipped = try RuleSet.load(files: files, intents: model.intents.map(\.name)).get()
        let padded = try RuleSet.load(files: files + padding, intents: model.intents.map(\.name)).get()
        #expect(shipped.rules.count <= 64 && padded.rules.count > 64)
        #expect(Array(padded.rules.prefix(shipped.rules.count)).map(\.id) == shipped.rules.map(\.id))
        await propertyCheck(count: 60, input: Gen.int(in: 0...1_000_000)) { seed in
            let events = Journey(seed: UInt64(seed), visitors: 4).shuffled(seed: UInt64(seed), lateness: .seconds(5))
            func run(_ set: RuleSet) -> [String] {
                var p = PartitionProcessor(rules: set, model: model, policy: policy, configuration: configuration(lateness: 5, idleAfter: 2))
                var out: [String] = []
                for e in events {
                    out += p.process(e, arrivedAt: e.time).map { "\($0.id) \($0.ruleID) \($0.reason)" }
                    out += p.takeSuppressions().map { "suppressed \($0.ruleID) \($0.reason)" }
                }
                out += p.advanceIdle(wallNow: events.map(\.time).max()! + .minutes(90)).map { "\($0.id) \($0.ruleID) \($0.reason)" }
                return out
            }
            let a = run(shipped), b = run(padded)
            #expect(a == b, "seed \(seed)")
        }
    }

    /// Whether a rule past the 64th held is kept in the visitor's sidecar, not in its
    /// state: such a rule fires when its condition turns true and not again while it stays
    /// true, also after the visitor was frozen and thawed, and after reloads that move the
    /// rule below the 64th place and back.
    @Test func aRulePastTheSixtyFourthFiresOnlyWhenItsConditionTurnsTrue() throws {
        func set(padding: Int) throws -> RuleSet {
            try rules((0..<padding).map { i in
                (String(format: "a%02d", i), "when: page.path ~ \"/never/\(i)\"\naction: offer_help\npayload: {message: no}\ncooldown: 0s\n")
            } + [("pricing", "when: page.path ~ \"/pricing\"\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n")])
        }
        let policy = Policy(minimumGap: .zero, maxPerSession: 10, maxPerDay: 10)
        var p = PartitionProcessor(rules: try set(padding: 69), policy: policy, configuration: configuration(lateness: 0))
        #expect(p.rules.rules.firstIndex { $0.id == "pricing" } == 69)
        var fired: [Double] = []
        func send(_ e: Event, at seconds: Double) {
            fired += p.process(e, arrivedAt: wall).map { _ in seconds }
        }
        // A page ping on the same page: the rule's condition is evaluated again, and holds.
        func ping(at seconds: Double) { send(event(.pagePing, "v", "c\(seconds)", at: seconds, path: "/pricing"), at: seconds) }
        send(view("v", "p0", at: 0, "/pricing"), at: 0)
        ping(at: 1)
        p.visitors.freeze(p.visitors.slot(of: "v")!)
        #expect(p.compactVisitorCount == 1)
        ping(at: 2)
        p.replaceRules(try set(padding: 5), policy: policy)
        ping(at: 3)
        p.replaceRules(try set(padding: 69), policy: policy)
        ping(at: 4)
        send(view("v", "p5", at: 5, "/elsewhere"), at: 5)
        send(view("v", "p6", at: 6, "/pricing"), at: 6)
        ping(at: 7)
        #expect(fired == [0, 6])
    }

    @Test func pathTestsPastTheSixtyFourth() throws {
        let set = try rules((0..<70).map { i in
            (String(format: "r%02d", i), "when: page.path ~ \"/p/\(i)\" and event == click\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n")
        })
        #expect(set.pathTests.count == 70)
        var p = PartitionProcessor(rules: set, policy: Policy(minimumGap: .zero), configuration: configuration(lateness: 0))
        var fired: [String] = []
        for (i, page) in [0, 69, 64, 70, 63].enumerated() {
            let at = Double(i) * 100
            // A visitor each: the session cap stays out of it.
            _ = p.process(event(.pageView, "v\(i)", "p\(i)", at: at, path: "/p/\(page)"), arrivedAt: wall)
            for d in p.process(event(.click, "v\(i)", "c\(i)", at: at + 1, path: "/p/\(page)") { $0.element = "b" }, arrivedAt: wall) {
                fired.append("\(d.ruleID)@\(page)")
            }
        }
        #expect(fired == ["r00@0", "r69@69", "r64@64", "r63@63"])
    }

    @Test func theCouponBudgetCountsCouponsPerHourOfEventTime() throws {
        let set = try rules([("leaving", "when: event == exit_intent\naction: coupon\npayload: {message: hi, code: C}\n")])
        var p = PartitionProcessor(rules: set, policy: Policy(couponsPerHour: 2), configuration: configuration(lateness: 0))
        var decisions: [Decision] = []
        for (i, seconds) in [0.0, 60, 120, 3600, 3660].enumerated() {
            decisions += p.process(event(.exitIntent, "v\(i)", "e\(i)", at: seconds, path: "/cart"), arrivedAt: wall)
        }
        #expect(decisions.map(\.visitorID) == ["v0", "v1", "v3", "v4"])
        #expect(p.takeSuppressions().map { "\($0.visitorID) \($0.reason.rawValue)" } == ["v2 budget"])
    }

    @Test func capsPerSessionAndDay() throws {
        let set = try rules([("click", "when: event == click\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n")])
        let policy = Policy(minimumGap: .zero, maxPerSession: 10, maxPerDay: 2)
        var p = PartitionProcessor(rules: set, policy: policy, configuration: configuration(lateness: 0))
        var decisions: [Decision] = []
        // Three clicks in one session: the third is over the daily cap. The next day, prompts resume.
        for (i, seconds) in [0.0, 60, 120, 86_400].enumerated() {
            decisions += p.process(event(.click, "v", "c\(i)", at: seconds, path: "/p") { $0.element = "b\(i)" }, arrivedAt: wall)
            // Another event in between so the condition turns false (edge-triggered).
            decisions += p.process(event(.scroll, "v", "s\(i)", at: seconds + 1, path: "/p") { $0.scrollDepth = 10 }, arrivedAt: wall)
        }
        #expect(decisions.map { Int(($0.eventTime - t0).value / 1000) } == [0, 60, 86_400])
        #expect(p.takeSuppressions().map { "\(Int(($0.eventTime - t0).value / 1000)) \($0.reason.rawValue)" } == ["120 cap"])
    }

    /// The user id and the policy's memory live beside the state (most visitors have
    /// neither): a decision carries the user id; an evicted visitor's slot, taken by the
    /// next new visitor, carries neither its user id nor its caps.
    @Test func decisionsCarryTheUserIDAndAReusedSlotStartsClean() throws {
        let set = try rules([("click", "when: event == click\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n")])
        var c = configuration(lateness: 0)
        c.sessionGap = .minutes(1)
        var p = PartitionProcessor(rules: set, policy: Policy(minimumGap: .zero, maxPerSession: 1, maxPerDay: 1), configuration: c)
        var identified = event(.click, "v1", "a", at: 0, path: "/p") { $0.element = "b" }
        identified.userID = "u1"
        #expect(p.process(identified, arrivedAt: t0).map { $0.userID } == ["u1"])
        // The daily cap holds for v1 in a new session.
        _ = p.process(event(.scroll, "v1", "b", at: 1, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        #expect(p.process(event(.click, "v1", "c", at: 90, path: "/p") { $0.element = "b" }, arrivedAt: t0).isEmpty)
        #expect(p.takeSuppressions().map(\.reason) == [.cap])
        // v1's session ends and it is evicted; v2 takes its slot, anonymous and uncapped.
        _ = p.process(event(.scroll, "v3", "d", at: 1_000, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        #expect(p.features(of: "v1") == nil)
        let fresh = p.process(event(.click, "v2", "e", at: 1_001, path: "/p") { $0.element = "b" }, arrivedAt: t0)
        #expect(fresh.map(\.visitorID) == ["v2"])
        #expect(fresh.first.map { $0.userID == nil } == true)
    }

    /// A visitor evicted between sessions (other traffic moved the watermark past the
    /// session's end) comes back with its prompt memory: the daily cap still holds, the
    /// next day prompts resume; and its visits still count.
    @Test func theDailyCapHoldsAcrossAnEviction() throws {
        let set = try rules([("click", "when: event == click\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n")])
        var c = configuration(lateness: 0)
        c.sessionGap = .minutes(1)
        var p = PartitionProcessor(rules: set, policy: Policy(minimumGap: .zero, maxPerSession: 5, maxPerDay: 1), configuration: c)
        #expect(p.process(event(.click, "v1", "a", at: 0, path: "/p") { $0.element = "b" }, arrivedAt: t0).map(\.visitorID) == ["v1"])
        _ = p.process(event(.scroll, "v2", "s1", at: 600, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        #expect(p.features(of: "v1") == nil)
        #expect(p.statistics.evictedVisitors == 1)
        #expect(p.process(event(.click, "v1", "b", at: 700, path: "/p") { $0.element = "b" }, arrivedAt: t0).isEmpty)
        #expect(p.takeSuppressions().map(\.reason) == [.cap])
        #expect(p.features(of: "v1")?[.visits] == 2)
        // The next day (after another eviction) the cap starts again.
        _ = p.process(event(.scroll, "v2", "s2", at: 86_400, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        #expect(p.features(of: "v1") == nil)
        #expect(p.process(event(.click, "v1", "c", at: 86_500, path: "/p") { $0.element = "b" }, arrivedAt: t0).map(\.visitorID) == ["v1"])
        #expect(p.features(of: "v1")?[.visits] == 3)
    }

    /// What is kept of evicted visitors is bounded: after `departedMemoryDays` a visitor
    /// comes back as new.
    @Test func departedVisitorsAreForgottenAfterThirtyDays() throws {
        var c = configuration(lateness: 0)
        c.sessionGap = .minutes(1)
        var p = PartitionProcessor(rules: .empty, configuration: c)
        let day = 86_400.0
        _ = p.process(event(.scroll, "old", "o1", at: 0, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        _ = p.process(event(.scroll, "recent", "r1", at: 20 * day, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        // Each day another visitor moves the watermark (and the departed are pruned once a day).
        for d in 21...(Int(PartitionProcessor.departedMemoryDays) + 2) {
            _ = p.process(event(.scroll, "other", "x\(d)", at: Double(d) * day, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        }
        let now = Double(PartitionProcessor.departedMemoryDays + 2) * day + 10
        _ = p.process(event(.scroll, "old", "o2", at: now, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        _ = p.process(event(.scroll, "recent", "r2", at: now, path: "/p") { $0.scrollDepth = 5 }, arrivedAt: t0)
        #expect(p.features(of: "old")?[.visits] == 1)
        #expect(p.features(of: "old")?[.returning] == 0)
        #expect(p.features(of: "recent")?[.visits] == 2)
    }

    /// Channels are interned; past the table's limit a channel's name is kept beside the
    /// visitor's state. Either way rules and decisions see the name, and a visitor that
    /// changes channel is seen on the new one.
    @Test func channelConditionsAndDecisionsSeeTheChannelNameEvenPastTheTable() throws {
        let set = try rules([
            ("kiosk", "when: event == click and channel == kiosk\naction: offer_help\npayload: {message: \"on {channel}\"}\n"),
            ("app", "when: event == click and channel in [app]\naction: offer_help\npayload: {message: \"on {channel}\"}\n"),
        ])
        var p = PartitionProcessor(rules: set, policy: Policy(minimumGap: .zero), configuration: configuration(lateness: 0))
        p.channels = ChannelTable(limit: 2)
        func click(_ visitor: String, _ id: String, _ channel: String, at seconds: Double) -> Event {
            var e = event(.click, visitor, id, at: seconds, path: "/p") { $0.element = id }
            e.channel = channel
            return e
        }
        _ = p.process(click("v0", "a", "web", at: 0), arrivedAt: t0)
        let app = p.process(click("v1", "b", "app", at: 1), arrivedAt: t0)
        let kiosk = p.process(click("v2", "c", "kiosk", at: 2), arrivedAt: t0)
        #expect(p.channels.names == ["", "web", "app"])
        #expect(app.map { "\($0.ruleID) \($0.channel) \($0.payload.first?.1 ?? "")" } == ["app app on app"])
        #expect(kiosk.map { "\($0.ruleID) \($0.channel) \($0.payload.first?.1 ?? "")" } == ["kiosk kiosk on kiosk"])
        // v2 moves to the app, v1 to a kiosk.
        #expect(p.process(click("v2", "d", "app", at: 3), arrivedAt: t0).map(\.ruleID) == ["app"])
        #expect(p.process(click("v1", "e", "kiosk", at: 4), arrivedAt: t0).map(\.ruleID) == ["kiosk"])
    }

    /// A page event waits for order with its ids and its channel's id only: its user id,
    /// or a channel name past the table, waits beside it, and the release sees both.
    @Test func aHeldPageEventKeepsItsUserIDAndItsChannelName() throws {
        let set = try rules([("view", "when: event == page_view and channel in [app, kiosk]\naction: offer_help\npayload: {message: \"on {channel}\"}\ncooldown: 0s\n")])
        var p = PartitionProcessor(rules: set, policy: Policy(minimumGap: .zero), configuration: configuration(lateness: 5))
        p.channels = ChannelTable(limit: 2)
        func view(_ visitor: String, _ id: String, _ channel: String, user: String?, at seconds: Double) -> Event {
            var e = event(.pageView, visitor, id, at: seconds, path: "/p")
            e.channel = channel
            e.userID = user
            return e
        }
        var decisions = p.process(view("v0", "a", "web", user: nil, at: 0), arrivedAt: t0)
        decisions += p.process(view("v1", "b", "app", user: "u1", at: 1), arrivedAt: t0)
        decisions += p.process(view("v2", "c", "kiosk", user: nil, at: 2), arrivedAt: t0)
        decisions += p.process(view("v3", "d", "kiosk", user: "u3", at: 3), arrivedAt: t0)
        decisions += p.process(view("v1", "e", "web", user: nil, at: 4), arrivedAt: t0)
        #expect(decisions.isEmpty)
        #expect(p.heldEvents == 5)
        // A later event moves the watermark past them all.
        decisions += p.process(view("v9", "z", "web", user: nil, at: 20), arrivedAt: t0)
        #expect(p.heldEvents == 1)
        #expect(p.channels.names == ["", "web", "app"])
        #expect(decisions.map { "\($0.visitorID) \($0.channel) \($0.userID ?? "-") \($0.payload.first?.1 ?? "")" }
                == ["v1 app u1 on app", "v2 kiosk - on kiosk", "v3 kiosk u3 on kiosk"])
        // v1 moved to the web and kept its user id; v3 keeps its channel's name.
        decisions = p.process(view("v3", "f", "kiosk", user: nil, at: 21), arrivedAt: t0)
        decisions += p.process(view("v1", "g", "app", user: nil, at: 22), arrivedAt: t0)
        decisions += p.process(view("v9", "y", "web", user: nil, at: 40), arrivedAt: t0)
        #expect(decisions.map { "\($0.visitorID) \($0.channel) \($0.userID ?? "-")" } == ["v3 kiosk u3", "v1 app u1"])
    }

    @Test func aReloadKeepsWhatHeldSoNothingFiresAgainButNewRulesStart() throws {
        let a = ("a", "when: cart_items >= 1\naction: offer_help\npayload: {message: one}\n")
        var p = PartitionProcessor(rules: try rules([a]), policy: Policy(minimumGap: .zero), configuration: configuration(lateness: 0))
        let add = { (id: String, s: Double) in event(.addToCart, "v", id, at: s, path: "/p") { $0.sku = "x"; $0.price = 5 } }
        #expect(p.process(add("e1", 0), arrivedAt: wall).map(\.ruleID) == ["a"])
        let b = ("b", "when: cart_items >= 1\naction: offer_help\npayload: {message: two}\n")
        let changed = try rules([(a.0, a.1.replacing("one", with: "uno")), b])
        p.replaceRules(changed, policy: Policy(minimumGap: .zero))
        let after = p.process(add("e2", 10), arrivedAt: wall)
        #expect(after.map(\.ruleID) == ["b"])
        #expect(after.first?.ruleVersion == changed.rules[1].version)
        #expect(p.rules.version == changed.version)
    }

    /// Pages are classified against the rules once, when first seen: a reload classifies
    /// them again, so a new rule on a page seen before fires there.
    @Test func aReloadedRuleFiresOnAPageSeenBeforeTheReload() throws {
        let click = { (id: String, s: Double) in event(.click, "v", id, at: s, path: "/settings/a") { $0.element = "b" } }
        let before = try rules([("other", "when: page.path ~ \"/other\" and event == click\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n")])
        var p = PartitionProcessor(rules: before, policy: Policy(minimumGap: .zero), configuration: configuration(lateness: 0))
        #expect(p.process(view("v", "p1", at: 0, "/settings/a"), arrivedAt: wall).isEmpty)
        #expect(p.process(click("c1", 1), arrivedAt: wall).isEmpty)
        let after = try rules([("settings", "when: page.path ~ \"/settings/**\" and event == click\naction: offer_help\npayload: {message: hi}\ncooldown: 0s\n")])
        p.replaceRules(after, policy: Policy(minimumGap: .zero))
        #expect(p.process(click("c2", 2), arrivedAt: wall).map(\.ruleID) == ["settings"])
    }

    @Test func aWindowedCountReadsOnlyItsWindowAndFilter() throws {
        let set = try rules([("errs", "when: count(form_error where page.path ~ \"/settings/**\", 2m) >= 3\naction: offer_help\npayload: {message: hi}\n")])
        var p = PartitionProcessor(rules: set, policy: Policy(minimumGap: .zero), configuration: configuration(lateness: 0))
        var decisions: [Decision] = []
        let error = { (id: String, s: Double, path: String) in event(.formError, "v", id, at: s, path: path) { $0.field = "f" } }
        decisions += p.process(error("e1", 0, "/settings/a"), arrivedAt: wall)
        decisions += p.process(error("e2", 10, "/checkout"), arrivedAt: wall)   // filtered out
        decisions += p.process(error("e3", 20, "/settings/b"), arrivedAt: wall)
        decisions += p.process(error("e4", 130, "/settings/a"), arrivedAt: wall)  // e1 left the window
        #expect(decisions.isEmpty)
        decisions += p.process(error("e5", 135, "/settings/a"), arrivedAt: wall)  // e3, e4, e5
        #expect(decisions.map(\.triggerEventID) == ["e5"])
    }
}
