@testable import BeckonCore
import PropertyBased
import Testing

@Suite("Visitor table")
struct VisitorTableTests {
    static func state(_ id: String) -> VisitorState {
        VisitorState(visitorID: id, lastEventTime: EventTime(milliseconds: 0),
                     pageSince: EventTime(milliseconds: 0), pageEventID: "e")
    }

    /// Inserts and removals in random order, against a dictionary: every id resolves to
    /// its own slot, removed ids are gone, and every resident is visited once. A fixed
    /// seed and few distinct ids make runs of colliding tags, wrap-around at the end of
    /// the buckets, growth, and backward shifts on removal common.
    @Test func agreesWithADictionaryUnderInsertsAndRemovals() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...1_000_000), Gen.int(in: 1...600)) { seed, operations in
            let table = VisitorTable(capacity: 4, seed: UInt64(seed) | 1)
            var expected: [String: Int32] = [:]
            var rng = SeededGenerator(seed: UInt64(seed))
            for _ in 0..<operations {
                let id = "v-\(Int.random(in: 0..<64, using: &rng))"
                if let slot = expected[id], Bool.random(using: &rng) {
                    table.remove(slot)
                    expected[id] = nil
                } else if expected[id] == nil {
                    expected[id] = table.insert(Self.state(id), tag: table.tag(of: id))
                }
            }
            #expect(table.count == expected.count)
            for i in 0..<64 {
                let id = "v-\(i)"
                #expect(table.slot(of: id) == expected[id])
                if let slot = expected[id] { #expect(table[slot].visitorID == id) }
            }
            var seen: [String] = []
            table.forEachResident { seen.append($0.pointee.visitorID) }
            #expect(seen.sorted() == expected.keys.sorted())
        }
    }
}
