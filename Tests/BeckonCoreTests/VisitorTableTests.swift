@testable import BeckonCore
import CBeckonSIMD
import PropertyBased
import Testing

@Suite("Visitor table")
struct VisitorTableTests {
    static func state(_ id: String) -> VisitorState {
        VisitorState(visitorID: id, lastEventTime: EventTime(milliseconds: 0),
                     pageSince: EventTime(milliseconds: 0), pageEventID: "e")
    }

    /// Inserts, removals, freezes and thaws in random order, against a dictionary: every
    /// id resolves to its own slot with its own state, hot or cold; removed ids are gone;
    /// a slot's epoch moves only when its visitor leaves; every resident is visited once.
    /// A fixed seed and few distinct ids make runs of colliding tags, wrap-around at the
    /// end of the buckets, growth, and backward shifts on removal common.
    @Test func agreesWithADictionaryUnderInsertsRemovalsFreezesAndThaws() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...1_000_000), Gen.int(in: 1...600)) { seed, operations in
            let table = VisitorTable(capacity: 4, seed: UInt64(seed) | 1)
            var expected: [String: (slot: Int32, epoch: UInt32)] = [:]
            var rng = SeededGenerator(seed: UInt64(seed))
            for _ in 0..<operations {
                let n = Int.random(in: 0..<64, using: &rng)
                let id = "v-\(n)"
                if let (slot, epoch) = expected[id] {
                    #expect(table.epoch(slot) == epoch)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0:
                        table.remove(slot)
                        #expect(table.epoch(slot) == epoch &+ 1)
                        expected[id] = nil
                    case 1:
                        if table.isCold(slot) { _ = table.thaw(slot) } else { table.freeze(slot) }
                    default:
                        _ = table.freezeIdle(lastEventAtOrBefore: EventTime(milliseconds: Int64(n)))
                    }
                } else {
                    var state = Self.state(id)
                    state.lastEventTime = EventTime(milliseconds: Int64(n))
                    state.features.pageViews = UInt16(n)
                    let slot = table.insert(state, tag: table.tag(of: id))
                    expected[id] = (slot, table.epoch(slot))
                }
            }
            #expect(table.count == expected.count)
            #expect(table.hotCount + table.coldCount == expected.count)
            for n in 0..<64 {
                let id = "v-\(n)"
                #expect(table.slot(of: id) == expected[id]?.slot)
                if let (slot, epoch) = expected[id] {
                    let state = table.read(slot).state
                    #expect(state.visitorID == id && state.features.pageViews == n && state.handle == slot)
                    #expect(table.epoch(slot) == epoch)
                }
            }
            var seen: [String] = []
            table.forEachResident { v, _ in seen.append(v.pointee.visitorID) }
            #expect(seen.sorted() == expected.keys.sorted())
        }
    }

    /// A hot state is seven whole cache lines, and the hot buffer starts on a line: each
    /// state then spans 7 lines, not 8 (each event reads all of its visitor's). A field
    /// added to the state fails this: make room for it, or take the eighth line knowingly.
    @Test func aHotStateSpansSevenCacheLines() {
        #expect(MemoryLayout<VisitorState>.stride == 7 * 64)
        let table = VisitorTable(capacity: 2, seed: 1)
        for i in 0..<40 {
            let slot = table.insert(Self.state("v-\(i)"), tag: table.tag(of: "v-\(i)"))
            // After growth too.
            #expect(Int(bitPattern: table.pointer(slot)) % 64 == 0)
        }
    }

    /// The hot buffer grows past its minimum (its pages moved, not its states copied) and
    /// shrinks back once most visitors are frozen: every state is still there, whole, hot or
    /// cold, and a visitor inserted after the shrink lands in the smaller buffer.
    @Test func theHotBufferKeepsItsStatesThroughGrowthAndShrinking() {
        let table = VisitorTable(seed: 3)
        let n = VisitorTable.minimumHotCapacity * 5
        var slots: [Int32] = []
        for i in 0..<n {
            var state = Self.state("v-\(i)")
            state.lastEventTime = EventTime(milliseconds: Int64(i))
            state.features.pageViews = UInt16(i % 60_000)
            slots.append(table.insert(state, tag: table.tag(of: "v-\(i)")))
        }
        let grown = table.hotBufferBytes
        #expect(grown >= n * MemoryLayout<VisitorState>.stride)
        // All but the last 100 go cold: a quarter of the buffer is far more than that.
        #expect(table.freezeIdle(lastEventAtOrBefore: EventTime(milliseconds: Int64(n - 101))) == n - 100)
        #expect(table.hotBufferBytes < grown / 4)
        #expect(table.hotCount == 100 && table.coldCount == n - 100)
        let late = table.insert(Self.state("late"), tag: table.tag(of: "late"))
        for (i, slot) in slots.enumerated() {
            #expect(table.isCold(slot) == (i < n - 100))
            let state = table.read(slot).state
            #expect(state.visitorID == "v-\(i)" && state.features.pageViews == i % 60_000 && state.handle == slot)
        }
        #expect(table.read(late).state.visitorID == "late" && !table.isCold(late))
    }

    /// The hot buffer's region, grown by doubling from 448 KB to 56 MB, shrunk, and grown
    /// again: it keeps every byte written, and from 2 MB on starts on a 2 MB boundary
    /// (huge pages back only whole aligned 2 MB ranges).
    @Test func theHotRegionKeepsItsBytesAndItsAlignment() {
        let start = VisitorTable.minimumHotCapacity * MemoryLayout<VisitorState>.stride
        var bytes = start
        var region = beckon_region_allocate(bytes)!
        func fill(_ range: Range<Int>) {
            let p = region.assumingMemoryBound(to: UInt8.self)
            for i in stride(from: (range.lowerBound + 60) / 61 * 61, to: range.upperBound, by: 61) { p[i] = UInt8(truncatingIfNeeded: i &* 7) }
        }
        func intact(_ count: Int) -> Bool {
            let p = region.assumingMemoryBound(to: UInt8.self)
            return stride(from: 0, to: count, by: 61).allSatisfy { p[$0] == UInt8(truncatingIfNeeded: $0 &* 7) }
        }
        fill(0..<bytes)
        for size in [2, 4, 8, 16, 32, 64, 128, 2, 8, 128] {
            let next = start * size
            region = beckon_region_resize(region, bytes, next)!
            #expect(intact(min(bytes, next)), "\(bytes) -> \(next) bytes")
            if next >= 2 << 20 { #expect(UInt(bitPattern: region) % (2 << 20) == 0, "\(next) bytes") }
            if next > bytes { fill(bytes..<next) }
            bytes = next
        }
        #expect(intact(bytes))
        beckon_region_free(region, bytes)
    }
}

@Suite("Heap")
struct HeapTests {
    struct Item: HeapOrdered, Equatable {
        var key: Int
        static func precedes(_ a: Item, _ b: Item) -> Bool { a.key < b.key }
    }

    /// Pushes and pops in any mix: each pop gives the least element pushed and not yet popped.
    @Test func popsGiveTheLeastInAnyMixOfPushesAndPops() async {
        await propertyCheck(count: 50, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SeededGenerator(seed: UInt64(seed))
            var heap = MinHeap<Item>()
            var pending: [Int] = []
            for _ in 0..<3_000 {
                if rng.next() % 3 != 0 || pending.isEmpty {
                    // Few distinct keys, so equal ones meet.
                    let key = Int(rng.next() % 500)
                    heap.push(Item(key: key))
                    pending.append(key)
                } else {
                    let least = pending.min()!
                    pending.remove(at: pending.firstIndex(of: least)!)
                    #expect(heap.pop()?.key == least, "seed \(seed)")
                }
                #expect(heap.count == pending.count)
            }
            for key in pending.sorted() { #expect(heap.pop()?.key == key) }
            #expect(heap.pop() == nil)
        }
    }

    /// The run queue, fed as a partition feeds it (mostly in order, some late, equal keys),
    /// pops exactly what a sorted reference does, through its run's compactions and trims.
    @Test func runQueuePopsTheLeastWhateverTheArrivalOrder() async {
        await propertyCheck(count: 30, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SeededGenerator(seed: UInt64(seed))
            var queue = RunQueue<Item>()
            var pending: [Int] = []
            var clock = 0
            let lateShare = Int(rng.next() % 50)  // percent of pushes that come late
            for step in 0..<8_000 {
                // Pushes outnumber pops first, so the run grows past its compaction size.
                let pushShare: UInt64 = step < 4_000 ? 70 : 35
                if rng.next() % 100 < pushShare || pending.isEmpty {
                    clock += Int(rng.next() % 3)
                    let late = Int(rng.next() % 100) < lateShare
                    let key = late ? max(0, clock - Int(rng.next() % 40)) : clock
                    queue.push(Item(key: key))
                    pending.append(key)
                } else {
                    let least = pending.min()!
                    #expect(queue.first?.key == least, "seed \(seed)")
                    pending.remove(at: pending.firstIndex(of: least)!)
                    #expect(queue.pop()?.key == least, "seed \(seed)")
                }
                #expect(queue.count == pending.count)
                if rng.next() % 500 == 0 { queue.trim() }
            }
            #expect(queue.unordered.map(\.key).sorted() == pending.sorted())
            for key in pending.sorted() { #expect(queue.pop()?.key == key) }
            #expect(queue.pop() == nil && queue.first == nil)
        }
    }

    /// The timer queue (a run per kind), fed wake-ups a dwell ahead and session ends a
    /// session gap ahead, some late, with ties in time, slot and kind: each pop is the least
    /// pending timer by `precedes`, and `next` names it before.
    @Test func timerQueuePopsInTimerOrderAcrossKinds() async {
        await propertyCheck(count: 30, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SeededGenerator(seed: UInt64(seed))
            var queue = TimerQueue()
            var pending: [VisitorTimer] = []
            var clock: Int64 = 0
            func least() -> VisitorTimer { pending.min { VisitorTimer.precedes($0, $1) }! }
            for step in 0..<6_000 {
                let pushShare: UInt64 = step < 3_000 ? 70 : 40
                if rng.next() % 100 < pushShare || pending.isEmpty {
                    clock += Int64(rng.next() % 3)
                    let wake = rng.next() % 2 == 0
                    let ahead: Int64 = wake ? 45 + Int64(rng.next() % 3) * 15 : 1_800
                    let late = rng.next() % 10 == 0 ? Int64(rng.next() % 60) : 0
                    let timer = VisitorTimer(due: EventTime(milliseconds: max(0, clock + ahead - late)), slot: Int32(rng.next() % 8),
                                             epoch: UInt32(rng.next() % 4), kind: wake ? .wake : .sessionEnd)
                    queue.schedule(timer)
                    pending.append(timer)
                } else {
                    let expected = least()
                    #expect(queue.next == expected, "seed \(seed)")
                    pending.remove(at: pending.firstIndex(of: expected)!)
                    #expect(queue.popDue(atOrBefore: expected.due) == expected, "seed \(seed)")
                }
                #expect(queue.count == pending.count)
                if rng.next() % 500 == 0 { queue.trim() }
            }
            if let first = pending.min(by: { VisitorTimer.precedes($0, $1) }), first.due.milliseconds > 0 {
                #expect(queue.popDue(atOrBefore: EventTime(milliseconds: first.due.milliseconds - 1)) == nil)
            }
            for timer in pending.sorted(by: { VisitorTimer.precedes($0, $1) }) { #expect(queue.popDue(atOrBefore: timer.due) == timer) }
            #expect(queue.next == nil && queue.count == 0)
        }
    }

    /// Trimming gives back capacity once most elements are gone, and keeps the order.
    @Test func trimmingShrinksAndKeepsTheOrder() async {
        await propertyCheck(count: 20, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SeededGenerator(seed: UInt64(seed))
            var heap = MinHeap<Item>()
            var keys = (0..<20_000).map { _ in Int.random(in: 0..<1_000_000, using: &rng) }
            for k in keys { heap.push(Item(key: k)) }
            let full = heap.capacity
            keys.sort()
            for k in keys.prefix(15_000) { #expect(heap.pop()?.key == k) }
            heap.trim()
            #expect(heap.capacity < full / 2 && heap.capacity >= heap.count)
            for k in keys.dropFirst(15_000) { #expect(heap.pop()?.key == k) }
            #expect(heap.pop() == nil)
        }
    }
}

@Suite("Held page events")
struct HeldPageEventTests {
    /// A held page event is read where it arrived, in its batch: the batch is kept while
    /// any of its page events is held, after the caller has let go of it, and goes with the
    /// release of the last one. The ids are longer than a small string, so each lives in
    /// the batch's own storage.
    @Test func aBatchIsKeptWhileItsPageEventsAreHeld() throws {
        var p = PartitionProcessor(rules: try makeRules([("pricing", "/pricing", "10s", 1)]), configuration: configuration(lateness: 5))
        let wall = t0 + .minutes(600)
        let visitors = (0..<3).map { "visitor-with-a-long-id-\($0)" }
        do {
            let batch = visitors.indices.map { i in
                PartitionProcessor.Arrival(view(visitors[i], "page-view-with-a-long-id-\(i)", at: Double(i), "/pricing"), arrivedAt: wall)
            }
            #expect(p.process(batch: batch).isEmpty)
        }
        #expect(p.heldEvents == 3)
        #expect(p.held.batchesKept == 1)
        // Watermark 3 s: the three views are released (applied), and this one is held.
        #expect(p.process(view("other", "o1", at: 8, "/"), arrivedAt: wall).isEmpty)
        #expect(p.heldEvents == 1)
        #expect(p.held.batchesKept == 1)
        // Watermark 15 s: the three dwells of 10 s fire, with the ids read from the batch.
        let decisions = p.process(view("other", "o2", at: 20, "/"), arrivedAt: wall)
        #expect(decisions.map(\.visitorID) == visitors)
        #expect(decisions.map(\.triggerEventID) == visitors.indices.map { "page-view-with-a-long-id-\($0)" })
        #expect(p.held.batchesKept == 1)
        _ = p.advanceIdle(wallNow: wall + .minutes(1))
        #expect(p.heldEvents == 0)
        #expect(p.held.batchesKept == 0)
    }

    /// The hold reads a page event's `String?` path in place as a `String`: an optional
    /// string is laid out as the string itself.
    @Test func anOptionalStringLiesWhereItsString() {
        #expect(MemoryLayout<String?>.size == MemoryLayout<String>.size)
        for text in ["", "/short", "/a/path/longer/than/fifteen/bytes/\u{00e9}"] {
            let optional: String? = text
            withUnsafePointer(to: optional) { p in
                #expect(UnsafeRawPointer(p).assumingMemoryBound(to: String.self).pointee == text)
            }
        }
    }
}
