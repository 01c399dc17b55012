@testable import BeckonCore
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

    /// The hex form, eight digits to a word, is the value's digits, most significant first,
    /// zero-padded to 32 (every digit 0-f in every place, over many random values).
    @Test func hexIsTheValuesThirtyTwoDigits() {
        var rng = SeededGenerator(seed: 11)
        for _ in 0..<2_000 {
            var h = StableHash()
            h.combine(String(rng.next() % 1_000_000_000))
            let digits = String(h.value, radix: 16)
            #expect(h.hex == String(repeating: "0", count: 32 - digits.count) + digits)
        }
        #expect(StableHash.hexDigits(0) == UInt64(littleEndian: 0x3030_3030_3030_3030))
        #expect(StableHash.hexDigits(0x0123_abcf) == Array("0123abcf".utf8).withUnsafeBytes { $0.load(as: UInt64.self) })
    }

    /// The in-memory hash of ids and paths: every byte counts, at any length (the last
    /// partial word included), and ids of the simulator's shape do not collide.
    @Test func wordHashSeesEveryByte() {
        for length in 0...40 {
            let base = Array("The quick brown fox jumps over the lazy dog".utf8.prefix(length))
            var seen: Set<UInt64> = [wordHash(String(decoding: base, as: UTF8.self))]
            for i in base.indices {
                var changed = base
                changed[i] ^= 0x01
                #expect(seen.insert(wordHash(String(decoding: changed, as: UTF8.self))).inserted, "length \(length), byte \(i)")
            }
            // A trailing zero byte is not the same as no byte.
            #expect(wordHash(String(decoding: base + [0], as: UTF8.self)) != wordHash(String(decoding: base, as: UTF8.self)))
            // Bytes after a zero byte count, small string or not (`withBytes` reads a C
            // string's buffer, but by the string's length).
            let zeroed = base + [0] + base
            var other = zeroed
            if let last = other.indices.last { other[last] ^= 0x01 }
            if !base.isEmpty {
                #expect(wordHash(String(decoding: zeroed, as: UTF8.self)) != wordHash(String(decoding: other, as: UTF8.self)), "length \(length)")
                #expect(fnv64(String(decoding: zeroed, as: UTF8.self)) != fnv64(String(decoding: other, as: UTF8.self)))
                #expect(VisitorFeatures.hash32(String(decoding: zeroed, as: UTF8.self)) != VisitorFeatures.hash32(String(decoding: other, as: UTF8.self)))
            }
        }
        var ids: Set<UInt64> = []
        for v in 0..<20_000 {
            for k in 1...10 { ids.insert(wordHash("e-v-\(100_000 + v)-\(k)")) }
        }
        #expect(ids.count == 200_000)
        #expect(!ids.contains(0))
        #expect(wordHash("v-1", seed: 1) != wordHash("v-1", seed: 2))
    }

    /// The hash word by word, as specified: each whole eight bytes as a little-endian word,
    /// then the rest (1 to 7 bytes) as one more, the length mixed in first. Computed here
    /// from the bytes one at a time, for every length up to 40, small strings and large.
    @Test func wordHashIsTheWordsOfTheBytes() {
        func step(_ h: UInt64, _ w: UInt64) -> UInt64 {
            let x = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
            return x ^ (x >> 31)
        }
        func reference(_ bytes: [UInt8], seed: UInt64) -> UInt64 {
            var h = seed ^ (UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
            var i = 0
            while i < bytes.count {
                var w: UInt64 = 0
                for k in 0..<min(8, bytes.count - i) { w |= UInt64(bytes[i + k]) << UInt64(8 * k) }
                h = step(h, w)
                i += 8
            }
            h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
            h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
            return (h ^ (h >> 31)) | 1
        }
        let text = Array("e-v-100123-7/checkout/payment?step=2 — done".utf8)
        for length in 0...40 {
            // (A cut through the dash's three bytes decodes to U+FFFD: hash the string's own bytes.)
            let string = String(decoding: text.prefix(length), as: UTF8.self)
            for seed: UInt64 in [0x243F_6A88_85A3_08D3, 1, 0xFFFF_FFFF_FFFF_FFFF] {
                #expect(wordHash(string, seed: seed) == reference(Array(string.utf8), seed: seed), "length \(length)")
            }
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
