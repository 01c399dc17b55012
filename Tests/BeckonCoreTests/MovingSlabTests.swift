@testable import BeckonCore
import PropertyBased
import Synchronization
import Testing

/// Counts its live instances, so a leak or a double release shows.
private final class Tracked: Sendable {
    static let live = Atomic<Int>(0)
    let value: Int
    init(_ value: Int) {
        self.value = value
        Self.live.add(1, ordering: .relaxed)
    }
    deinit { Self.live.subtract(1, ordering: .relaxed) }
}

@Suite("Moving slab", .serialized)
struct MovingSlabTests {
    /// Random inserts and takes, against a dictionary; now and then a copy that then goes
    /// its own way. Every take gives back what was put there, a copy is not changed by
    /// the original's changes nor the original by the copy's, and when both are gone no
    /// element is left alive.
    @Test func movesInAndOutAndCopiesOnWrite() async {
        await propertyCheck(count: 100, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SeededGenerator(seed: UInt64(seed))
            do {
                var slab = MovingSlab<Tracked>()
                var model: [Int32: Int] = [:]
                var forked: (MovingSlab<Tracked>, [Int32: Int])?
                for step in 0..<400 {
                    if model.isEmpty || rng.next() % 3 != 0 {
                        let place = slab.insert(Tracked(step))
                        #expect(model[place] == nil, "place \(place) handed out twice")
                        model[place] = step
                    } else {
                        let place = Array(model.keys)[Int(rng.next() % UInt64(model.count))]
                        #expect(slab[place].value == model[place])
                        #expect(slab.take(place).value == model.removeValue(forKey: place))
                    }
                    #expect(slab.count == model.count)
                    if step % 97 == 50 { forked = (slab, model) }
                    if var (copy, copyModel) = forked, step % 97 == 80 {
                        // The copy diverges: it takes everything it has, in its own order.
                        for place in copyModel.keys.sorted(by: >) { #expect(copy.take(place).value == copyModel.removeValue(forKey: place)) }
                        _ = copy.insert(Tracked(-1))
                        forked = nil
                    }
                }
                for (place, value) in model { #expect(slab[place].value == value) }
            }
            #expect(Tracked.live.load(ordering: .relaxed) == 0, "elements leaked or released twice")
        }
    }
}
