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
        #expect(rule.dwellAtLeast == .seconds(45))
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

    @Test(arguments: [
        ("id: x\nwhen:\n  dwell:\n    page: /a\n    at_least: 5s\naction: offer_help\npayload:\n  message: hi\npriorty: 3\n",
         "r.yaml:9:1: unknown key 'priorty' in a rule; did you mean 'priority'?"),
        ("id: x\nwhen:\n  dwell:\n    page: /a\n    at_least: five\naction: offer_help\npayload:\n  message: hi\n",
         "r.yaml:5:15: at_least must be a duration such as 45s, 2m or 1h"),
        ("id: x\nwhen:\n  dwell:\n    page: /a\n    at_least: 5s\naction: call_me\npayload:\n  message: hi\n",
         "r.yaml:6:9: unknown action 'call_me'; use offer_help, coupon or handoff"),
        ("id: x\nwhen:\n  dwell:\n    page: a\n    at_least: 5s\naction: offer_help\npayload:\n  message: hi\n",
         "r.yaml:4:11: page 'a' must be a path glob starting with '/'"),
        ("id: x\nwhen:\n  dwell:\n    page: /a\n    at_least: 5s\naction: offer_help\n",
         "r.yaml:6:9: action offer_help needs a payload with at least a 'message'"),
        ("id: x\nwhen: [\n", "r.yaml:3:1: YAML syntax error: did not find expected node content while parsing a flow node"),
        ("", "r.yaml:1:1: the file is empty"),
    ])
    func refusesWithFileLineColumn(text: String, expected: String) {
        guard case .failure(let errors) = RuleSet.load(files: [("r.yaml", text)]) else {
            Issue.record("accepted")
            return
        }
        #expect(errors.errors.map(\.description) == [expected])
    }

    @Test func refusesDuplicateIDsAndReportsEveryBadFile() {
        let bad = "id: y\nwhen: {}\n"
        guard case .failure(let errors) = RuleSet.load(files: [("a.yaml", good), ("b.yaml", good), ("c.yaml", bad)]) else {
            Issue.record("accepted")
            return
        }
        #expect(errors.errors.map(\.description) == [
            "b.yaml:1:1: duplicate rule id 'pay' (also in a.yaml); rule ids must be unique",
            "c.yaml:2:7: 'when' needs a 'dwell' trigger",
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

    @Test func goodMessagesDecodeAndBadOnesAreRefused() {
        var c = Simulator.Configuration()
        c.visitors = 200
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
