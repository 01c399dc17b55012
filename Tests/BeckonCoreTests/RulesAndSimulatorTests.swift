import BeckonCore
import Testing

@Suite("Rule files")
struct RuleFileTests {
    let good = """
        id: pay
        description: lingering on payment
        when:
          dwell:
            page: /checkout/payment
            at_least: 45s
        action: coupon
        payload:
          message: "10% off, 15 minutes"
          code: SAVE10
        priority: 7
        expires_after: 15m
        """

    @Test func loadsAGoodRule() throws {
        let set = try RuleSet.load(files: [("pay.yaml", good)]).get()
        let rule = try #require(set.rules.first)
        #expect(rule.id == "pay")
        #expect(rule.action == .coupon)
        #expect(rule.condition == .all([.path(0), .feature(.pageDwellSeconds, .ge, 45)]))
        #expect(rule.expiresAfter == .minutes(15))
        #expect(rule.priority == 7)
        #expect(rule.payload.map(\.0) == ["message", "code"])
        #expect(rule.version.count == 12)
    }

    @Test func theVersionFollowsTheText() throws {
        let a = try RuleSet.load(files: [("pay.yaml", good)]).get()
        let b = try RuleSet.load(files: [("pay.yaml", good.replacing("priority: 7", with: "priority: 8"))]).get()
        #expect(a.rules[0].version != b.rules[0].version)
        #expect(a.version != b.version)
    }

    @Test func parsesConditionsIntoTheirMeaning() throws {
        let text = """
            id: c
            when:
              all:
                - page.path ~ "/settings/**" or page.path =~ "^/app/settings"
                - not: channel in [app, miniprogram]
                - count(form_error where page.class == settings, 5m) >= 3
                - intent.frustration > 60%
            action: handoff
            payload:
              queue: support
            channels: web
            holdout: 12.5%
            """
        let set = try RuleSet.load(files: [("c.yaml", text)]).get()
        let rule = try #require(set.rules.first)
        #expect(rule.condition == .all([
            .any([.path(0), .path(1)]),
            .not(.channel(["app", "miniprogram"])),
            .count(0, .ge, 3),
            .intent(3, .gt, 0.6),
        ]))
        #expect(set.pathTests.map(\.kind) == [.glob(PathGlob("/settings/**")), .regex("^/app/settings")])
        #expect(set.counters.map(\.text) == ["count(form_error where page.class == settings, 5m)"])
        #expect(set.counters.first?.capacity == 4)
        #expect(set.counters.first?.window == .minutes(5))
        #expect(rule.channels == ["web"])
        #expect(rule.holdout == 0.125)
        #expect(rule.cooldown == nil)
    }

    @Test func reportsEveryBadFileNotJustTheFirst() {
        let bad = "id: y\nwhen: {}\n"
        guard case .failure(let errors) = RuleSet.load(files: [("a.yaml", good), ("b.yaml", good), ("c.yaml", bad)]) else {
            Issue.record("accepted")
            return
        }
        #expect(errors.errors.map(\.description) == [
            "b.yaml:1:5: duplicate rule id 'pay' (also in a.yaml); rule ids must be unique",
            "c.yaml:2:7: a condition mapping has one key: all, any, not or dwell",
        ])
    }
}

@Suite("Simulator")
struct SimulatorTests {
    @Test func theSameSeedGivesTheSameBytes() {
        var c = Simulator.Configuration()
        c.visitors = 50
        let a = Simulator(c).messages(), b = Simulator(c).messages()
        #expect(a.map(\.value) == b.map(\.value))
        c.seed = 43
        #expect(Simulator(c).messages().map(\.value) != a.map(\.value))
    }

    @Test(arguments: [false, true])
    func goodMessagesDecodeAndBadOnesAreRefused(scenarios: Bool) {
        var c = Simulator.Configuration()
        c.visitors = 200
        c.scenarios = scenarios
        c.badShare = 0.05
        let decoder = EventDecoder()
        var good = 0, bad = 0
        var previous: Int64 = .min
        for m in Simulator(c).messages() {
            let result = decoder.decode(m.value, key: m.key, brokerTime: EventTime(milliseconds: m.timestamp))
            switch result {
            case .success(let e):
                #expect(m.isValid)
                #expect(e.time.milliseconds == m.timestamp)
                good += 1
            case .failure:
                #expect(!m.isValid)
                bad += 1
            }
            #expect(m.timestamp >= previous)
            previous = m.timestamp
        }
        #expect(good > 1000)
        #expect(bad > 0)
    }
}
