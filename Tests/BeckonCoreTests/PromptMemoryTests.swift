@testable import BeckonCore
import PropertyBased
import Testing

/// The policy's memory keeps its lists inline (`RuleDecisionTimes`, `RecentDecisions`):
/// they must answer as the plain lists they replace, before and after the compact form.
@Suite("Prompt memory")
struct PromptMemoryTests {
    /// The lists as they were: an array of (rule, latest time), one entry per rule in the
    /// order rules first fired; the eight latest (decision, action), oldest first.
    struct Reference {
        var lastByRule: [(rule: UInt32, time: Int64)] = []
        var recent: [(decision: UInt32, action: UInt8)] = []

        mutating func record(rule: UInt32, decision: UInt32, action: UInt8, at time: Int64) {
            if let i = lastByRule.firstIndex(where: { $0.rule == rule }) {
                lastByRule[i].time = max(lastByRule[i].time, time)
            } else {
                lastByRule.append((rule, time))
            }
            if recent.count == 8 { recent.removeFirst() }
            recent.append((decision, action))
        }
    }

    func expectSame(_ memory: PromptMemory, _ reference: Reference, rules: [UInt32], decisions: ClosedRange<UInt32>, _ note: String) {
        #expect(memory.lastByRule.count == reference.lastByRule.count, "\(note)")
        for i in 0..<min(memory.lastByRule.count, reference.lastByRule.count) {
            #expect(memory.lastByRule[i] == reference.lastByRule[i], "\(note): entry \(i)")
        }
        for rule in rules {
            #expect(memory.lastDecision(rule: rule) == reference.lastByRule.first { $0.rule == rule }?.time, "\(note): rule \(rule)")
        }
        #expect(memory.recent.count == reference.recent.count, "\(note)")
        for i in 0..<min(memory.recent.count, reference.recent.count) {
            #expect(memory.recent[i] == reference.recent[i], "\(note): recent \(i)")
        }
        for decision in decisions {
            #expect(memory.recent.action(of: decision) == reference.recent.first { $0.decision == decision }?.action, "\(note): decision \(decision)")
        }
    }

    /// Random decisions of up to nine rules (past the four kept inline), with times in any
    /// order: each rule's latest time, the order rules first fired, the eight latest
    /// decisions and which action each was, as the plain lists say, and the same once
    /// written to the compact form and read back.
    @Test func inlineListsAnswerAsPlainLists() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...1_000_000), Gen.int(in: 0...30)) { seed, count in
            var rng = SeededGenerator(seed: UInt64(seed))
            let ruleCount = UInt32.random(in: 1...9, using: &rng)
            var memory = PromptMemory(), reference = Reference()
            for _ in 0..<count {
                let rule = UInt32.random(in: 1...ruleCount, using: &rng) &* 0x9E37_79B9
                let decision = UInt32.random(in: 1...12, using: &rng)
                let action = UInt8.random(in: 0...2, using: &rng)
                let time = Int64.random(in: 1_772_445_600_000...1_772_449_200_000, using: &rng)
                memory.lastByRule.record(rule: rule, at: time)
                memory.recent.append(decision: decision, action: action)
                reference.record(rule: rule, decision: decision, action: action, at: time)
            }
            // Every rule that may have fired, and two that never do.
            let rules = (UInt32(0)...ruleCount + 1).map { $0 &* 0x9E37_79B9 }
            expectSame(memory, reference, rules: rules, decisions: 0...13, "seed \(seed), \(count) decisions")

            var w = ColdWriter()
            w.write { memory.encode(into: &$0, base: 1_772_447_000_000) }
            var r = ColdReader(w.written.baseAddress!)
            let read = PromptMemory(from: &r, base: 1_772_447_000_000)
            #expect(r.offset == w.count)
            expectSame(read, reference, rules: rules, decisions: 0...13, "seed \(seed), read back")
        }
    }

    /// Hand-computed: the ninth decision pushes out the first; a rule's time only moves later.
    @Test func theNinthDecisionPushesOutTheFirst() {
        var memory = PromptMemory()
        let t = EventTime(milliseconds: 1_772_445_600_000)
        for i in 0..<9 {
            memory.record(rule: i < 5 ? 7 : UInt32(100 + i), decisionID: "d\(i)", action: i % 2 == 0 ? .coupon : .offerHelp, at: t + .seconds(Int64(60 * (9 - i))))
        }
        #expect(memory.recent.count == 8)
        #expect(memory.recent.action(of: VisitorFeatures.hash32("d0")) == nil)
        #expect(memory.recent.action(of: VisitorFeatures.hash32("d1")) == Action.offerHelp.ordinal)
        #expect(memory.recent.action(of: VisitorFeatures.hash32("d8")) == Action.coupon.ordinal)
        // Rule 7 fired first at +540 s, then earlier times: its latest stays +540 s.
        #expect(memory.lastDecision(rule: 7) == (t + .seconds(540)).milliseconds)
        // Rules 105…108 fired once each: 7 and three of them inline, the fifth beyond.
        #expect(memory.lastByRule.count == 5)
        #expect(memory.lastDecision(rule: 108) == (t + .seconds(60)).milliseconds)
        #expect(memory.lastByRule[4].rule == 108)
        #expect(memory.session == 9 && memory.today == 9)
    }
}
