import Beckon
import BeckonCore
import BeckonTestSupport
import Foundation
import Testing

/// Broken rule files are refused with the file, line, column and what to do; the rules in
/// force stay exactly as they were (through the same reload path `beckon run` uses).
@Suite("Rule validation: every broken file named with file:line:column, the running set unchanged")
struct RuleValidationTests {
    /// A rule whose condition and action vary; everything else is valid.
    static func rule(when: String, action: String = "offer_help", payload: String = "  message: hi", extra: String = "") -> String {
        "id: bad\nwhen: \(when)\naction: \(action)\npayload:\n\(payload)\n\(extra)"
    }

    /// (file name, text, expected error after the folder path)
    static let broken: [(String, String, String)] = [
        ("bad.yaml", "id: x\nwhen: [\n",
         "bad.yaml:3:1: YAML syntax error: did not find expected node content while parsing a flow node"),
        ("bad.yaml", rule(when: "cart_items >= 1", extra: "priorty: 3\n"),
         "bad.yaml:6:1: unknown key 'priorty' in a rule; did you mean 'priority'?"),
        ("bad.yaml", rule(when: "cart_itms >= 1"),
         "bad.yaml:2:7: unknown feature 'cart_itms'; did you mean 'cart_items'?"),
        ("bad.yaml", rule(when: "intent.need_help > 0.5"),
         "bad.yaml:2:7: unknown intent 'need_help'; did you mean 'intent.needs_help'? intents: needs_help, abandonment_risk, price_sensitivity, frustration, high_value"),
        ("bad.yaml", rule(when: "cart_items >= 1", action: "call_me"),
         "bad.yaml:3:9: unknown action 'call_me'; use offer_help, coupon or handoff"),
        ("bad.yaml", rule(when: "event == exit_intnt"),
         "bad.yaml:2:16: unknown event type 'exit_intnt'; did you mean 'exit_intent'? see Schemas/events/"),
        ("bad.yaml", rule(when: "form_errors_5m >= \"three\""),
         "bad.yaml:2:25: cannot compare form_errors_5m (a count) with a string"),
        ("bad.yaml", rule(when: "'count(form_error, 5m) >= \"3\"'"),
         "bad.yaml:2:33: cannot compare count(form_error, 5m) (a count) with a string"),
        ("bad.yaml", rule(when: "'page.path =~ \"/settings/(workflows\"'"),
         "bad.yaml:2:21: invalid regular expression: Unmatched ( or \\("),
        ("bad.yaml", rule(when: "'page.path ~ \"checkout/*\"'"),
         "bad.yaml:2:20: invalid glob \"checkout/*\": a path glob starts with '/', e.g. \"/checkout/*\""),
        ("zz-dup.yaml", "id: good\nwhen: cart_items >= 1\naction: offer_help\npayload:\n  message: hi\n",
         "zz-dup.yaml:1:5: duplicate rule id 'good' (also in {dir}/good.yaml); rule ids must be unique"),
        ("bad.yaml", rule(when: "cart_items >= 1", extra: "cooldown: 10 minutes\n"),
         "bad.yaml:6:11: cooldown must be a duration such as 45s, 2m or 1h"),
        ("bad.yaml", rule(when: "cart_items >= 1", extra: "holdout: 150%\n"),
         "bad.yaml:6:10: holdout 150% is outside 0%–100%"),
        ("bad.yaml", rule(when: "cart_items >= 1", action: "coupon"),
         "bad.yaml:5:3: action coupon needs a payload with 'code' (the coupon code)"),
        ("bad.yaml", rule(when: "cart_items >= 1", payload: "  message: \"Hi {first_name}\""),
         "bad.yaml:5:12: unknown placeholder {first_name}; use a feature ({cart_value}), {intent.<name>}, {page.path} or {channel}"),
        ("bad.yaml", rule(when: "exit_intent > 1"),
         "bad.yaml:2:19: exit_intent is true or false: use == or !=, or just 'exit_intent'"),
        ("bad.yaml", rule(when: "count(click, 1m) >= 100"),
         "bad.yaml:2:27: windowed counts compare with at most 31; use a session feature for totals"),
        ("bad.yaml", rule(when: "cart_items >= 5m"),
         "bad.yaml:2:21: cart_items (a count) is not a duration; compare it with a plain number"),
        ("bad.yaml", rule(when: "page.class == produkt"),
         "bad.yaml:2:21: unknown page class 'produkt'; classes: home, category, product, search, pricing, cart, checkout, help, settings, account, other"),
        ("bad.yaml", rule(when: "intent.frustration > 1.5"),
         "bad.yaml:2:28: intent scores are between 0 and 1 (or 0% and 100%); 1.5 can never be reached"),
        ("bad.yaml", "id: bad\naction: offer_help\npayload:\n  message: hi\n",
         "bad.yaml:1:1: rule 'bad' needs a 'when' condition, e.g. when: page_dwell_seconds >= 45s"),
        ("bad.yaml", "id: bad\nwhen:\n  every:\n    - cart_items >= 1\naction: offer_help\npayload:\n  message: hi\n",
         "bad.yaml:3:3: unknown condition 'every'; did you mean 'any'? (all, any, not, dwell, or an expression string)"),
        ("bad.yaml", rule(when: "cart_items >= 1 and"),
         "bad.yaml:2:26: expected a condition, found the end; e.g. cart_items >= 1"),
        ("policy.yaml", "min_gap: soon\n",
         "policy.yaml:1:10: min_gap must be a duration such as 45s, 2m or 1h"),
    ]

    static let good = """
        id: good
        when: page.path ~ "/checkout/payment" and page_dwell_seconds >= 45s
        action: offer_help
        payload:
          message: hi
        """

    @Test func everyBrokenFileIsNamedExactlyAndTheRunningSetStays() throws {
        #expect(Self.broken.count >= 15)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("beckon-rules-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/models", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try String(contentsOfFile: TestServices.root + "/Rules/models/intent.yaml", encoding: .utf8)
            .write(toFile: dir + "/models/intent.yaml", atomically: true, encoding: .utf8)
        try Self.good.write(toFile: dir + "/good.yaml", atomically: true, encoding: .utf8)
        let reloader = RuleReloader(directory: dir, bundle: try RuleFiles.loadBundle(directory: dir).get())
        let before = (reloader.rules, reloader.policy)
        #expect(before.0.rules.map(\.id) == ["good"])
        for (name, text, expected) in Self.broken {
            try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
            switch reloader.check(force: true) {
            case .refused(let errors):
                #expect(errors.errors.map(\.description) == [dir + "/" + expected.replacing("{dir}", with: dir)], "for \(name): \(text)")
            case let other:
                Issue.record("\(name) was not refused (\(other)): \(text)")
            }
            #expect(reloader.rules == before.0, "the rules in force changed after \(name)")
            #expect(reloader.policy == before.1)
            try FileManager.default.removeItem(atPath: dir + "/" + name)
        }
        // Fixed again: the folder loads, and a changed rule replaces the old one.
        #expect(reloader.check(force: true) == .unchanged)
        try Self.good.replacing("45s", with: "30s").write(toFile: dir + "/good.yaml", atomically: true, encoding: .utf8)
        guard case .replaced(let old, let new) = reloader.check(force: true) else {
            Issue.record("a valid change was not taken")
            return
        }
        #expect(old == before.0.version && new != old && reloader.rules.version == new)
    }
}
