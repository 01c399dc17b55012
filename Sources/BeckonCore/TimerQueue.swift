import CBeckonSIMD

/// A pending event-time timer for one visitor (by slot in the visitor table).
public struct VisitorTimer: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Evaluate the visitor's rules: a time condition may have turned true.
        case wake
        /// Check whether the visitor's session has ended and its state can go.
        case sessionEnd
    }

    public var due: EventTime
    /// The visitor's slot, and the slot's epoch when the timer was set (a reused slot
    /// belongs to another visitor: its old timers are then ignored).
    public var slot: Int32
    /// The epoch in the low 31 bits, the kind in the top bit: 16 bytes a timer, and a
    /// million visitors each have one.
    private var epochAndKind: UInt32

    public var epoch: UInt32 { epochAndKind & 0x7FFF_FFFF }
    public var kind: Kind { epochAndKind >> 31 == 0 ? .wake : .sessionEnd }

    public init(due: EventTime, slot: Int32, epoch: UInt32, kind: Kind) {
        self.due = due
        self.slot = slot
        epochAndKind = epoch & 0x7FFF_FFFF | (kind == .wake ? 0 : 0x8000_0000)
    }

    /// Deterministic order: by due time, then slot, then kind.
    static func precedes(_ a: VisitorTimer, _ b: VisitorTimer) -> Bool {
        if a.due != b.due { return a.due < b.due }
        if a.slot != b.slot { return a.slot < b.slot }
        return a.kind.order < b.kind.order
    }
}

extension VisitorTimer.Kind {
    fileprivate var order: Int {
        switch self {
        case .wake: return 0
        case .sessionEnd: return 1
        }
    }
}

/// Something a `MinHeap` orders: `precedes` is a strict total order, so pops are deterministic.
protocol HeapOrdered {
    static func precedes(_ a: Self, _ b: Self) -> Bool
}

extension VisitorTimer: HeapOrdered {}

/// A binary min-heap. Sifts move a hole instead of swapping, through the buffer (no
/// uniqueness or bounds check per step).
struct MinHeap<Element: HeapOrdered> {
    private var heap: ContiguousArray<Element> = []

    var count: Int { heap.count }
    var first: Element? { heap.first }
    /// Every element, in no particular order.
    var unordered: ContiguousArray<Element> { heap }

    mutating func push(_ element: Element) {
        heap.append(element)
        heap.withUnsafeMutableBufferPointer { h in
            var i = h.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard Element.precedes(element, h[parent]) else { break }
                h[i] = h[parent]
                i = parent
            }
            h[i] = element
        }
    }

    mutating func pop() -> Element? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        return heap.withUnsafeMutableBufferPointer { h in
            let first = h[0]
            let n = h.count
            // Bottom-up: the hole goes down along the smaller children to a leaf, one
            // comparison per level, and `last` then rises from there. `last` came from the
            // bottom and usually belongs near it, so this compares about half as often as
            // stopping on the way down, and the comparisons on the way down are the ones the
            // branch predictor cannot guess.
            var i = 0
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                let r = l + 1
                let child = r < n && Element.precedes(h[r], h[l]) ? r : l
                h[i] = h[child]
                i = child
            }
            while i > 0 {
                let parent = (i - 1) / 2
                guard Element.precedes(last, h[parent]) else { break }
                h[i] = h[parent]
                i = parent
            }
            h[i] = last
            return first
        }
    }
}

extension MinHeap {
    /// Gives back capacity once less than a quarter of it is used (the heap doubled while
    /// timers piled up, and most of them fired): copies into a buffer twice the count. One
    /// copy of the heap at most per call; the processor calls it once per compaction sweep.
    mutating func trim() {
        guard Self.shouldShrink(capacity: heap.capacity, count: heap.count) else { return }
        var smaller = ContiguousArray<Element>()
        smaller.reserveCapacity(heap.count * 2)
        smaller.append(contentsOf: heap)
        heap = smaller
    }

    /// Whether a buffer of `capacity` holding `count` gives back memory: once less than a
    /// quarter is used, and then to twice the count, so that it takes growing back by the
    /// count again (a doubling) or shrinking to half before the next copy. Shrunk to an
    /// eighth above the count, the timers' run grew back by doubling within a sweep or two,
    /// into fresh pages each time: at 1,000,000 visitors, about 6 % of the core's time went
    /// to those copies and their page faults.
    static func shouldShrink(capacity: Int, count: Int) -> Bool { capacity > 4096 && count * 4 < capacity }

    var capacity: Int { heap.capacity }
}

extension MinHeap: Sendable where Element: Sendable {}

/// A min-queue for elements that mostly arrive in order, as a partition's events do: one
/// not before the latest in-order element joins a run (in and out in constant time), and so
/// does one that belongs among the run's last few; any other goes to a heap; a pop takes
/// the lesser of the two fronts. Pops come out in `precedes` order whatever the order of
/// pushes: the run is ordered, and so is the heap.
struct RunQueue<Element: HeapOrdered> {
    /// In order from `head` on; the places before `head` are popped.
    private var run: ContiguousArray<Element> = []
    private var head = 0
    private var heap = MinHeap<Element>()

    var count: Int { run.count - head + heap.count }
    /// Kept, not worked out: the processor asks for it twice per event.
    private(set) var first: Element?
    /// The run's element `k` places after its front: a guess at what comes `k` pops from
    /// now (for prefetching; the heap's elements, rare, are left out).
    @inline(__always) func ahead(_ k: Int) -> Element? { head + k < run.count ? run[head + k] : nil }
    /// Every element, in no particular order.
    var unordered: [Element] { Array(run[head...]) + Array(heap.unordered) }

    /// Whether the first element is the run's.
    @inline(__always) private var runLeads: Bool {
        guard head < run.count else { return false }
        guard let h = heap.first else { return true }
        return !Element.precedes(h, run[head])
    }

    mutating func push(_ element: Element) {
        if head == run.count || !Element.precedes(element, run[run.count - 1]) {
            run.append(element)
        } else if !insertNearEnd(element) {
            heap.push(element)
        }
        if let f = first, !Element.precedes(element, f) { return }
        first = element
    }

    /// How far back from the run's end an element that precedes the end is inserted, rather
    /// than pushed on the heap.
    static var nearEnd: Int { 32 }

    /// Inserts `element`, which precedes the run's last element, in its place among the last
    /// `nearEnd` ones, if it belongs there. Events with the same time arrive in whatever order
    /// (the ids break the tie): at 100,000 visitors a quarter of the held page events went to
    /// the heap, and at 1,000,000 (about eight to a millisecond) its pops took a tenth of the
    /// core's time.
    private mutating func insertNearEnd(_ element: Element) -> Bool {
        let n = run.count
        let limit = max(head, n - Self.nearEnd)
        // Farther back than that (a timer due long before the last one): one comparison.
        if limit > head && Element.precedes(element, run[limit - 1]) { return false }
        var place = n - 1
        while place > limit && Element.precedes(element, run[place - 1]) { place -= 1 }
        run.append(element)
        run.withUnsafeMutableBufferPointer { r in
            var i = n
            while i > place { r[i] = r[i - 1]; i -= 1 }
            r[place] = element
        }
        return true
    }

    mutating func pop() -> Element? {
        guard let element = first else { return nil }
        if runLeads {
            head += 1
            if head == run.count {
                run.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024 && head * 2 >= run.count {
                // The popped half goes: at most as many moves as pops since the last time.
                run.removeFirst(head)
                head = 0
            }
        } else {
            _ = heap.pop()
        }
        first = runLeads ? run[head] : heap.first
        return element
    }

    /// Gives back memory: drops the popped places once they are a quarter of the run, and
    /// shrinks the run's and the heap's buffers once less than a quarter of them is used
    /// (see `MinHeap.trim`).
    mutating func trim() {
        heap.trim()
        let live = run.count - head
        if MinHeap<Element>.shouldShrink(capacity: run.capacity, count: live) {
            var smaller = ContiguousArray<Element>()
            smaller.reserveCapacity(live * 2)
            smaller.append(contentsOf: run[head...])
            run = smaller
            head = 0
        } else if head > 0 && head * 4 >= run.count {
            run.removeFirst(head)
            head = 0
        }
    }
}

extension RunQueue: Sendable where Element: Sendable {}

/// Elements in reusable places: `insert` returns a place that stays the element's until
/// `release`, and fills released places before growing.
struct Slab<Element> {
    private(set) var items: ContiguousArray<Element> = []
    private var free: [Int32] = []

    mutating func insert(_ element: consuming Element) -> Int32 {
        if let place = free.popLast() {
            items[Int(place)] = element
            return place
        }
        items.append(element)
        return Int32(items.count - 1)
    }

    /// Frees the place for the next `insert` (its element stays until then).
    mutating func release(_ place: Int32) { free.append(place) }

    @inline(__always) subscript(place: Int32) -> Element {
        get { items[Int(place)] }
        // In place: `slab[i].count += 1` must not copy the element out and back.
        _modify { yield &items[Int(place)] }
    }
}

extension Slab: Sendable where Element: Sendable {}

/// The timers of a partition, popped in deterministic order.
public struct TimerQueue: Sendable {
    /// Each kind in a run of its own, as each mostly comes in order: a visitor's session end
    /// is due a session gap after its latest event, and a rule's wake-up a dwell after it.
    /// In one run, every wake-up came before the session ends at the run's end and went to
    /// the heap: at 100,000 visitors the heap's pops were 2 % of the core's time.
    private var ends = RunQueue<VisitorTimer>()
    private var wakes = RunQueue<VisitorTimer>()
    /// The lesser of the two fronts. Kept, not worked out: asked for twice per event.
    public private(set) var next: VisitorTimer?

    public init() {}

    public var count: Int { ends.count + wakes.count }

    @inline(__always) private var wakesLead: Bool {
        guard let w = wakes.first else { return false }
        guard let e = ends.first else { return true }
        return VisitorTimer.precedes(w, e)
    }

    /// The timer `k` places after the front of the run that leads (for prefetching: a
    /// guess at what comes `k` pops from now).
    @inline(__always) func ahead(_ k: Int) -> VisitorTimer? { wakesLead ? wakes.ahead(k) : ends.ahead(k) }

    public mutating func schedule(_ timer: VisitorTimer) {
        if timer.kind == .wake { wakes.push(timer) } else { ends.push(timer) }
        if let n = next, !VisitorTimer.precedes(timer, n) { return }
        next = timer
    }

    /// Gives back memory once most timers have fired (see `RunQueue.trim`).
    mutating func trim() {
        ends.trim()
        wakes.trim()
    }

    /// Removes and returns the earliest timer if it is due at `time` or before.
    public mutating func popDue(atOrBefore time: EventTime) -> VisitorTimer? {
        guard let first = next, first.due <= time else { return nil }
        if wakesLead { _ = wakes.pop() } else { _ = ends.pop() }
        next = wakesLead ? wakes.first : ends.first
        return first
    }
}

/// A slab whose elements are moved in and moved out: no optional to wrap them in, no copy
/// on the way out (each copy of a held page event retained its four strings, and assigning
/// an optional one into an array place was an outlined call of 140 instructions).
///
/// A value type over a buffer it shares until it is changed: the first change after a copy
/// copies the live elements.
struct MovingSlab<Element> {
    private final class Storage {
        // Unchecked: only the slab reaches these, never two accesses overlapping; checked,
        // each access cost a call to swift_beginAccess and one to swift_endAccess.
        @exclusivity(unchecked) var base: UnsafeMutablePointer<Element>
        @exclusivity(unchecked) var capacity: Int
        /// Places handed out so far; those below it not in `free` hold an element.
        @exclusivity(unchecked) var used = 0
        /// The free places, a stack of `freeCount` in a buffer of its own (as an array, each
        /// push and pop checked the array's uniqueness and bounds; there is one per event).
        /// A place is freed at most once while `used` holds it, so `capacity` places suffice.
        @exclusivity(unchecked) var free: UnsafeMutablePointer<Int32>
        @exclusivity(unchecked) var freeCount = 0

        init(capacity: Int) {
            self.capacity = capacity
            base = .allocate(capacity: capacity)
            free = .allocate(capacity: capacity)
        }

        /// The places that hold an element.
        var live: [Int] {
            var isFree = [Bool](repeating: false, count: used)
            for k in 0..<freeCount { isFree[Int(free[k])] = true }
            return (0..<used).filter { !isFree[$0] }
        }

        /// Twice the room (out of line: rare, and kept out of the inlined `insert`).
        @inline(never) func grow() {
            let bigger = UnsafeMutablePointer<Element>.allocate(capacity: capacity * 2)
            bigger.moveInitialize(from: base, count: used)
            base.deallocate()
            base = bigger
            let biggerFree = UnsafeMutablePointer<Int32>.allocate(capacity: capacity * 2)
            biggerFree.moveInitialize(from: free, count: freeCount)
            free.deallocate()
            free = biggerFree
            capacity *= 2
        }

        func copy() -> Storage {
            let other = Storage(capacity: capacity)
            for i in live { (other.base + i).initialize(to: base[i]) }
            other.used = used
            other.free.initialize(from: free, count: freeCount)
            other.freeCount = freeCount
            return other
        }

        deinit {
            for i in live { (base + i).deinitialize(count: 1) }
            base.deallocate()
            free.deallocate()
        }
    }

    private var storage = Storage(capacity: 16)

    /// Elements held.
    var count: Int { storage.used - storage.freeCount }

    /// Starts loading the element at `place` into cache (a hint).
    @inline(__always) func prefetch(_ place: Int32) {
        beckon_prefetch(storage.base + Int(place), MemoryLayout<Element>.stride)
    }

    @inline(__always) private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Inline, so that the caller builds the element in its place: out of line, the element
    /// came by reference to a copy the caller had stored on the stack field by field, and
    /// reading that back in 16-byte pieces stalled (stores do not forward into wider loads):
    /// half of the held queue's insertion time.
    @inline(__always) mutating func insert(_ element: consuming Element) -> Int32 {
        makeUnique()
        let s = storage
        let place: Int
        if s.freeCount > 0 {
            s.freeCount &-= 1
            place = Int(s.free[s.freeCount])
        } else {
            if s.used == s.capacity { s.grow() }
            place = s.used
            s.used += 1
        }
        (s.base + place).initialize(to: element)
        return Int32(place)
    }

    /// Moves the element out; its place is free for the next `insert`.
    mutating func take(_ place: Int32) -> Element {
        makeUnique()
        let s = storage
        s.free[s.freeCount] = place
        s.freeCount &+= 1
        return (s.base + Int(place)).move()
    }

    /// A held element, to read (valid until the next change).
    @inline(__always) subscript(place: Int32) -> Element {
        @inline(__always) _read { yield storage.base[Int(place)] }
    }

    /// A held element, to change in place (valid until the next insert or take).
    @inline(__always) mutating func pointer(_ place: Int32) -> UnsafeMutablePointer<Element> {
        makeUnique()
        return storage.base + Int(place)
    }
}

extension MovingSlab: @unchecked Sendable where Element: Sendable {}
