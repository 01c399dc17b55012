import BeckonCore
import Testing

@Suite("Stable hashing and path globs")
struct HashAndGlobTests {
    /// Reference values computed by an independent FNV-1a 128 implementation (Python,
    /// prime 2^88 + 2^8 + 0x3b, a 0xff separator after each part).
    @Test func decisionIDsAreStableAcrossProcessesAndMachines() {
        #expect(StableHash().hex == "6c62272e07bb014262b821756295c58d")
        #expect(Decision.makeID(visitorID: "v-1", ruleID: "checkout-payment-dwell", trigger: "e-1") == "1fd827010e4a1f8517942c5ebee4eeea")
        #expect(StableHash.hex("ab", "c") != StableHash.hex("a", "bc"))
        // The id of a firing hashes "trigger@milliseconds" as one part, without making it.
        for ms: Int64 in [0, 7, 10, 1_772_445_600_123, -5, .max, .min] {
            #expect(Decision.makeID(visitorID: "v-1", ruleID: "r", trigger: "e-1", at: EventTime(milliseconds: ms))
                == Decision.makeID(visitorID: "v-1", ruleID: "r", trigger: "e-1@\(ms)"))
        }
    }

    @Test(arguments: [
        ("/checkout/*", "/checkout/payment", true),
        ("/checkout/*", "/checkout/a/b", false),
        ("/checkout/**", "/checkout/a/b", true),
        ("/checkout/payment", "/checkout/payment", true),
        ("/checkout/payment", "/checkout/payments", false),
        ("/p/sku-?", "/p/sku-1", true),
        ("/p/sku-?", "/p/sku-12", false),
        ("/settings/workflows*", "/settings/workflows/advanced", false),
        ("/settings/workflows*", "/settings/workflows-advanced", true),
        ("**", "/anything/at/all", true),
    ])
    func matchesGlobs(pattern: String, path: String, expected: Bool) {
        #expect(PathGlob(pattern).matches(path) == expected)
    }
}
