@testable import BeckonCore
import PropertyBased
import Testing

@Suite("Interned page paths")
struct PageTableTests {
    /// Random interns, retains and releases against a small limit: a referenced id keeps
    /// its path and is found again by it; adding a path never leaves the table above its
    /// limit unless that many paths are referenced.
    @Test func referencedPathsSurviveReclaiming() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...1_000_000), Gen.int(in: 1...400)) { seed, operations in
            var table = PageTable(limit: 6)
            var rng = SeededGenerator(seed: UInt64(seed))
            var refs: [UInt32: (path: String, count: Int)] = [:]
            for _ in 0..<operations {
                let path = "/p/\(rng.next() % 20)"
                if let (id, held) = refs.randomElement(using: &rng), rng.next() % 3 == 0 {
                    table.release(id)
                    refs[id] = held.count == 1 ? nil : (held.path, held.count - 1)
                } else {
                    let known = table.count
                    let id = table.intern(path) { (PageInfo(pageClass: .product, pathBits: 0, hash: VisitorFeatures.hash32($0)), nil) }
                    #expect(id != 0)
                    #expect(table.path(id) == path)
                    #expect(table[id].hash == VisitorFeatures.hash32(path))
                    table.retain(id)
                    refs[id, default: (path, 0)].count += 1
                    // A new path reclaims the unreferenced ones first when the table is full.
                    if table.count != known { #expect(table.count <= max(6, refs.count)) }
                }
                for (id, held) in refs {
                    #expect(table.path(id) == held.path)
                    #expect(table.intern(held.path) { _ in (.none, nil) } == id)
                }
                #expect(table.references == refs.values.reduce(0) { $0 + $1.count })
            }
        }
    }

    /// Every reference the processor takes is given back: while events flow, the
    /// references equal the visitors on a page plus the held page events with a path; once
    /// every session has ended and every visitor is evicted, none is left.
    ///
    /// Also a regression test: one sweep of the watermark past every session's end evicts
    /// every visitor. A session check that met a visitor's held event used to put itself
    /// off to a bound past the sweep, and about one random journey in 18 kept a visitor.
    @Test func theProcessorGivesBackEveryPageReference() async {
        let rules = try! makeRules([("pay", "/checkout/payment", "45s", 1)])
        await propertyCheck(count: 150, input: Gen.int(in: 0...1_000_000)) { seed in
            let journey = Journey(seed: UInt64(seed), visitors: 12)
            var p = PartitionProcessor(rules: rules, configuration: configuration(lateness: 5, idleAfter: 2))
            let wall = t0 + .minutes(6000)
            for e in journey.shuffled(seed: UInt64(seed), lateness: .seconds(5)) {
                _ = p.process(e, arrivedAt: wall)
                var onPage = 0
                p.visitors.forEachResident { v, _ in if v.pointee.pageID != 0 { onPage += 1 } }
                #expect(p.pages.references == onPage + p.held.pageReferences)
            }
            _ = p.advanceIdle(wallNow: wall + .minutes(600))
            #expect(p.visitorCount == 0)
            #expect(p.pages.references == 0)
        }
    }
}
