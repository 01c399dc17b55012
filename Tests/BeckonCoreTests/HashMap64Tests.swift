@testable import BeckonCore
import PropertyBased
import Testing

@Suite("Hash map of departed visitors")
struct HashMap64Tests {
    /// Sets, removals and filters in random order, against a dictionary: every key reads
    /// its latest value, removed keys are gone, removal returns the value, and the count
    /// and entries agree. The keys come from a pool of 96, so the table (16 to 256 places,
    /// at most three quarters full) has long runs: collisions, wrap-around at the end of
    /// the places, growth and the backward shift on removal all occur.
    @Test func agreesWithADictionary() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...1_000_000), Gen.int(in: 1...800)) { seed, operations in
            var rng = SeededGenerator(seed: UInt64(seed))
            var keys = SeededGenerator(seed: 7)
            let pool: [UInt64] = (0..<96).map { _ in keys.next() | 1 }
            var map = HashMap64()
            var model: [UInt64: UInt32] = [:]
            for _ in 0..<operations {
                let key = pool[Int(rng.next() % UInt64(pool.count))]
                switch rng.next() % 10 {
                case 0..<5:
                    let value = UInt32(truncatingIfNeeded: rng.next())
                    map.set(key, value)
                    model[key] = value
                case 5..<9:
                    #expect(map.removeValue(forKey: key) == model.removeValue(forKey: key))
                default:
                    let bar = UInt32(truncatingIfNeeded: rng.next())
                    map.removeAll { $0 < bar }
                    model = model.filter { $0.value >= bar }
                }
                #expect(map.count == model.count)
                #expect(map[key] == model[key])
            }
            for key in pool { #expect(map[key] == model[key]) }
            #expect(Dictionary(uniqueKeysWithValues: map.entries.map { ($0.key, $0.value) }) == model)
        }
    }
}
