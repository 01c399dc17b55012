import CBeckonSIMD
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings of the event-time engine.
public struct EngineConfiguration: Sendable, Equatable {
    /// How late an event may arrive and still count as on time. Default 5 s.
    public var allowedLateness: Millis = .seconds(5)
    /// Silence after which a caught-up partition's watermark follows the wall clock. Default 2 s.
    public var idleAfter: Millis = .seconds(2)
    /// Inactivity that ends a visitor's session (and lets its state go). Default 30 min.
    public var sessionGap: Millis = .minutes(30)
    /// Inactivity (event time, behind the watermark) after which a visitor's state is kept
    /// in compact form until its next event or timer; nil keeps every state inline.
    /// Default 60 s.
    public var compactAfter: Millis? = .seconds(60)

    public init() {}
}

/// Counters of one partition's processing.
public struct ProcessorStatistics: Sendable, Equatable {
    public var events = 0
    /// Events behind the watermark: counted here, and not applied.
    public var lateEvents = 0
    /// Page events older than the visitor's latest page event; ignored for page state.
    public var outOfOrderPageEvents = 0
    public var timersFired = 0
    public var decisions = 0
    public var evictedVisitors = 0
    /// Tracker retries: an `event_id` the visitor sent recently, dropped (not dead-lettered).
    public var duplicateEvents = 0
    /// Firings the policy kept from being shown, by reason.
    public var suppressed: [String: Int] = [:]
    /// Idle visitors moved to compact form, and compact ones brought back by an event or timer.
    public var compacted = 0
    public var restored = 0
    /// Times free heap pages were handed back to the system after many visitors were frozen.
    public var memoryReleases = 0
}

#if os(Linux)
/// glibc's malloc_trim (not in the Glibc module map): returns whole free pages anywhere in
/// the heap to the system, not only at its top.
@_silgen_name("malloc_trim") private func mallocTrim(_ pad: Int) -> Int32
#endif

/// Hands the allocator's free pages back to the system (no effect where there is no way to).
func releaseFreeMemory() {
    #if os(Linux)
    _ = mallocTrim(0)
    #endif
}

/// FNV-1a, 64 bits, never 0. `seed` replaces the standard offset basis.
@inline(__always) func fnv64(_ s: String, seed: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
    s.withBytes { fnv64(UnsafeRawBufferPointer($0), seed: seed) }
}

/// `fnv64` of UTF-8 bytes.
@inline(__always) func fnv64(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
    var h = seed
    for byte in bytes {
        h ^= UInt64(byte)
        h &*= 0x100_0000_01B3
    }
    return h | 1
}

/// The last few event ids of a visitor, as 32-bit hashes, kept inline (no allocation):
/// newest first, so the set ones are a prefix and no insert position need be kept.
struct RecentEventIDs: Sendable, Equatable {
    static let capacity = 8
    private var hashes = (UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0))

    /// Inline: called on an event read where it lies, the call retained and released the
    /// id around it (about 50 instructions per event).
    @inline(__always) static func hash(_ id: String) -> UInt64 { wordHash(id) }

    static func == (a: RecentEventIDs, b: RecentEventIDs) -> Bool {
        withUnsafeBytes(of: a.hashes) { x in withUnsafeBytes(of: b.hashes) { y in x.elementsEqual(y) } }
    }

    @inline(__always) static func short(_ hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash ^ (hash >> 32)) | 1 }

    func contains(_ hash: UInt64) -> Bool {
        let h = Self.short(hash)
        return withUnsafeBytes(of: hashes) { raw in raw.bindMemory(to: UInt32.self).contains(h) }
    }

    /// Puts the hash first; the oldest of eight drops out.
    mutating func insert(_ hash: UInt64) {
        let v = unsafeBitCast(hashes, to: SIMD8<UInt32>.self)
        hashes = unsafeBitCast(SIMD8(Self.short(hash), v[0], v[1], v[2], v[3], v[4], v[5], v[6]), to: type(of: hashes))
    }

    init() {}

    /// How many hashes are set (a prefix), and those hashes.
    func encode(into w: inout ColdWriter) {
        let h = unsafeBitCast(hashes, to: SIMD8<UInt32>.self)
        // Set hashes are never 0 (`short`): count them without a loop, from the comparison's
        // lanes (-1 where a hash is 0). `replacing(with:where:)` compiled to a loop that
        // stored a lane and read the vector back, eight times (a stalled store forwarding
        // each): 1.3 % of the core's time at 1,000,000 visitors.
        let count = 8 + Int(unsafeBitCast(h .== SIMD8<UInt32>(), to: SIMD8<Int32>.self).wrappedSum())
        w.byte(UInt8(count))
        withUnsafeBytes(of: hashes) { raw in
            if UInt32(1).littleEndian == 1 {
                // As they lie (`fixed32` is little-endian).
                w.bytes(UnsafeRawBufferPointer(rebasing: raw[0..<count * 4]))
            } else {
                for i in 0..<count { w.fixed32(h[i]) }
            }
        }
    }

    init(from r: inout ColdReader) {
        let count = Int(r.byte())
        withUnsafeMutableBytes(of: &hashes) { raw in
            let h = raw.bindMemory(to: UInt32.self)
            for i in 0..<count { h[i] = r.fixed32() }
        }
    }
}

/// Intent scores in the model's order, inline (a model has at most `IntentModel.maximumIntents`).
typealias IntentScores = SIMD8<Float>

/// Everything Beckon knows about one visitor, kept small and free of per-event objects.
struct VisitorState: Sendable, Equatable {
    // Swift lays fields out in declaration order: widest alignment first, and small
    // fields where they fill a gap (after `features`, whose size is 6 short of its stride).
    // 448 bytes in all, seven cache lines (`VisitorTable` puts states on line boundaries):
    // a field added here makes every state span eight, and each event reads all of them.
    var features = VisitorFeatures()
    /// The visitor's latest channel (`ChannelTable` id; 0: the name is in the sidecar).
    var channel: UInt16 = 0
    var pendingWakes: UInt16 = 0
    var pageClass: PageClass = .other
    var sessionTimerPending = false
    var scores = IntentScores()
    var visitorID: String
    var lastEventTime: EventTime
    var pageSince: EventTime
    var pageEventID: String
    /// Time of the latest page event applied: page events apply in (time, id hash) order.
    var lastPageTime = noPageTime
    /// Position (Kafka offset) of the first event of the current session; -1 if unknown.
    var sessionPosition: Int64 = -1
    /// The first 64 rules whose condition held at the last evaluation (bit per rule index;
    /// the others' are in the sidecar): a rule fires only when its condition turns true.
    var heldRules: UInt64 = 0
    /// The earliest pending rule wake-up (a time condition may turn true then); `.unset` if none.
    var nextWake = EventTime.unset
    /// The latest wake-up scheduled: the state stays in memory at least until then.
    var latestWake = EventTime.unset
    /// Latest matching times of the rule set's windowed counts (ticks; empty until needed).
    var counters: [Int32] = []
    /// The current page (`PageTable` id, 0 when none); its class and hash are kept inline too.
    var pageID: UInt32 = 0
    var pageHash: UInt32 = 0
    /// The high half of the latest page event's id hash: with `lastPageTime`, the order
    /// the held queue releases page events in (it compares the whole hash, high half first).
    var lastPageID: UInt32 = 0
    /// The visitor's slot in `VisitorTable` (its place in the hot buffer moves; this does not).
    var handle: Int32 = 0
    var recentEventIDs = RecentEventIDs()

    /// `pageSince` before the visitor's first page: "since the page was entered" means
    /// since the beginning.
    static let noPageSince = EventTime(milliseconds: Int64.min / 2)
    static let noPageTime = EventTime(milliseconds: .min)

    var page: PageContext {
        // Inlined, so callers read four fields, not a copy of the whole state.
        @inline(__always) get { PageContext(onPage: pageID != 0, pathHash: pageHash, since: Tick(pageSince), pageClass: pageClass) }
    }
}

/// Events held until the watermark passes them, released in event-time order: page
/// events (the page track depends on order) and events that would open a new session.
///
/// A held event names its visitor by id, not by state: a page event is held without
/// reading the visitor's state at all (its duplicate check, channel and user id wait for
/// the release), so each page event touches the state once. The heap orders small keys; a
/// page event stays in the batch it arrived in (kept until its last held event is
/// released), and only other events, which open a session, are copied and kept whole.
struct HeldQueue: Sendable {
    /// The heap's element: the order, and where the rest is (24 bytes, so sifts are cheap).
    struct Key: Sendable, HeapOrdered {
        var time: EventTime
        var idHash: UInt64
        /// The visitor's `VisitorTable` tag.
        var tag: UInt32
        /// Into the slab of held events.
        var index: Int32

        /// By time, then event-id hash, then tag. The tag is seeded at random per table, so
        /// events equal on time and event-id hash (the same event id from two visitors)
        /// would come out in a different order from run to run: `PartitionProcessor` puts
        /// them in order of visitor id when it releases them (`releaseTied`).
        @inline(__always) static func precedes(_ a: Key, _ b: Key) -> Bool {
            if a.time != b.time { return a.time < b.time }
            if a.idHash != b.idHash { return a.idHash < b.idHash }
            return a.tag < b.tag
        }
    }

    /// A held event, as the release needs it.
    struct Held: Sendable {
        var time: EventTime
        var idHash: UInt64
        var position: Int64
        var tag: UInt32
        /// The visitor's slot when it was held, checked at release (-1: unknown; a page event
        /// is held without looking its visitor up).
        var hint: Int32
        /// The page event's interned path (retained while held); 0 for none or another event.
        var pageID: UInt32
        var type: EventType
        /// A page event stays where it arrived: `place` in the batch `batch` (see
        /// `HeldQueue.Batch`). No strings here: copying a page event's ids and channel in
        /// and destroying them on the way out cost about 120 instructions per event.
        var batch: Int32 = -1
        var place: Int32 = -1
        /// Where a session opener (rare) is kept whole, in `events`; -1 for a page event.
        var event: Int32 = -1
    }

    /// A batch that held page events point into, kept until the last of them is released
    /// and the batch is done (`close`). Its arrivals are never changed while kept, so their
    /// storage stays where `base` points.
    struct Batch: @unchecked Sendable {
        let arrivals: [PartitionProcessor.Arrival]
        let base: UnsafePointer<PartitionProcessor.Arrival>
        /// Its events still held.
        var held: Int32 = 0
        var open = true
    }

    /// Events mostly arrive in time order: those go through the run, not the heap.
    private var heap = RunQueue<Key>()
    private var slab = MovingSlab<Held>()
    private var events = MovingSlab<Event>()
    private var batches = MovingSlab<Batch>()

    var count: Int { heap.count }
    var nextTime: EventTime? { heap.first?.time }
    /// The key of the held event `k` pops after the next one, as far as the run knows
    /// (for prefetching).
    @inline(__always) func ahead(_ k: Int) -> Key? { heap.ahead(k) }
    /// Starts loading the held event of `key` into cache.
    @inline(__always) func prefetch(_ key: Key) { slab.prefetch(key.index) }
    /// Starts loading a held page event where it lies in its batch (its entry here was
    /// loaded a step before).
    @inline(__always) func prefetchEvent(_ key: Key) {
        let h = slab[key.index]
        if h.event < 0 { beckon_prefetch(batches[h.batch].base + Int(h.place), 96) }
    }
    /// The slot the held event of `key` is expected in (-1: unknown), checked at release.
    @inline(__always) func hint(_ key: Key) -> Int32 { slab[key.index].hint }
    @inline(__always) mutating func setHint(_ key: Key, _ slot: Int32) { slab.pointer(key.index).pointee.hint = slot }
    /// Held page events with a path (each holds a reference to its `PageTable` id).
    private(set) var pageReferences = 0
    /// The earliest position (Kafka offset) of a held event, if any has one.
    var earliestPosition: Int64? { heap.unordered.lazy.map { self.slab[$0.index].position }.filter { $0 >= 0 }.min() }

    /// Keeps `arrivals` for the page events of it that are held (until `close` and the
    /// last one's release).
    mutating func open(_ arrivals: [PartitionProcessor.Arrival]) -> Int32 {
        // The pointer outlives the closure: the array, kept here and never changed, keeps
        // its storage where it is.
        let base = arrivals.withUnsafeBufferPointer { $0.baseAddress! }
        return batches.insert(Batch(arrivals: arrivals, base: base))
    }

    /// The batch is done: it goes now, or with the release of its last held event.
    mutating func close(_ batch: Int32) {
        if batches[batch].held == 0 { _ = batches.take(batch) } else { batches.pointer(batch).pointee.open = false }
    }

    /// Held page events point into batches kept open (only for tests: `Batch`).
    var batchesKept: Int { batches.count }

    /// A held page event, where it lies in its batch (valid until `released`).
    @inline(__always) func event(_ held: Held) -> UnsafePointer<Event> {
        (batches[held.batch].base + Int(held.place)).pointer(to: \.event)!
    }

    /// A held page event was applied (or dropped): its batch goes when this was the last.
    @inline(__always) mutating func released(_ held: Held) {
        let b = batches.pointer(held.batch)
        b.pointee.held -= 1
        if b.pointee.held == 0 && !b.pointee.open { _ = batches.take(held.batch) }
    }

    /// Holds the page event at `place` in the open batch `batch`.
    mutating func push(page e: UnsafePointer<Event>, batch: Int32, place: Int32, pageID: UInt32, idHash: UInt64, tag: UInt32, hint: Int32, position: Int64) {
        batches.pointer(batch).pointee.held += 1
        let index = slab.insert(Held(time: e.pointee.time, idHash: idHash, position: position, tag: tag, hint: hint, pageID: pageID, type: e.pointee.type, batch: batch, place: place))
        if pageID != 0 { pageReferences += 1 }
        heap.push(Key(time: e.pointee.time, idHash: idHash, tag: tag, index: index))
    }

    mutating func push(_ event: Event, idHash: UInt64, tag: UInt32, hint: Int32, position: Int64) {
        let index = slab.insert(Held(time: event.time, idHash: idHash, position: position, tag: tag, hint: hint, pageID: 0, type: event.type, event: events.insert(event)))
        heap.push(Key(time: event.time, idHash: idHash, tag: tag, index: index))
    }

    /// Whether the next held event has the time and event-id hash of `held`.
    @inline(__always) func nextTies(_ held: Held) -> Bool {
        guard let key = heap.first else { return false }
        return key.time == held.time && key.idHash == held.idHash
    }

    /// The visitor id of a held event, read in place.
    func visitorID(_ held: Held) -> String {
        held.event < 0 ? event(held).pointee.visitorID : events[held.event].visitorID
    }

    /// The earliest held event, moved out.
    mutating func pop() -> Held? {
        guard let key = heap.pop() else { return nil }
        let taken = slab.take(key.index)
        if taken.pageID != 0 { pageReferences -= 1 }
        return taken
    }

    /// A held session opener's event (once: its place is freed).
    mutating func takeEvent(_ held: HeldQueue.Held) -> Event {
        events.take(held.event)
    }
}

/// The event-time engine for one Kafka partition: visitor state, features, intent scores,
/// watermark, timers, rules and policy.
///
/// Pure and deterministic: it reads no clock; the runtime passes the wall-clock time.
/// The same events in the same order yield the same decisions with the same ids; and any
/// arrival order of events within the allowed lateness yields the same features, scores
/// and timer firings (see `HeldQueue`).
///
/// Rules are evaluated, at the event's time, after every applied event that can change
/// them, and when a rule wake-up (a time condition such as `page_dwell_seconds >= 45s`
/// turning true) is due. A rule that depends only on the page and on time therefore fires
/// from its timer or a page event, both in event-time order: at the same instant in any
/// arrival order. A rule that also depends on other events (exit intent, cart, chat)
/// fires at the event that makes it true, without waiting for the watermark; its decision
/// may then depend on the arrival order within the allowed lateness, and a replay of the
/// same order gives the same decisions.
public struct PartitionProcessor: Sendable {
    public let configuration: EngineConfiguration
    public internal(set) var rules: RuleSet
    public let model: IntentModel
    public internal(set) var policy: Policy
    public private(set) var watermark: Watermark
    public internal(set) var statistics = ProcessorStatistics()
    var visitors = VisitorTable()
    /// Visits of visitors whose state was evicted, by visitor hash: visits << 16 | the day
    /// (of event time, modulo 65,536) their last session ended. Kept `departedMemoryDays`.
    private var returning = HashMap64()
    /// The prompt memory (daily cap, cooldowns) of evicted visitors that had one, by visitor
    /// hash: a new session of theirs keeps it, just as if their state had stayed.
    private var departedPrompts: [UInt64: PromptMemory] = [:]
    /// The day (of event time) the departed were last cleared of old entries.
    private var departedPrunedDay: Int64 = .min
    /// How long an evicted visitor's visits and prompt memory are kept.
    public static let departedMemoryDays: Int64 = 30
    var timers = TimerQueue()
    private(set) var held = HeldQueue()
    /// Page paths, interned: per path its class and which of the rule set's path tests it
    /// passes, computed once per distinct path.
    var pages = PageTable()
    var channels = ChannelTable()
    /// The model's intents' names, in order (each decision carries them with the scores).
    let intentNames: [String]
    /// The model flattened for `rescore`: intent i's terms are `terms[termStart[i]..<termStart[i + 1]]`.
    let compiledModel: CompiledModel
    /// The feature values of the latest rescore, and whose they are.
    var rescored = RescoredValues()
    /// The features a rescore computes: those the model or a rule condition reads (set
    /// by `layOutRules`). The shipped model reads 28 of the 43.
    var scoredFeatures: UInt64 = 0
    /// Resident visitors' session starts, counted per block of positions: the earliest
    /// block is where a rebuild of this state must start re-reading.
    private var sessionStarts: [Int64: Int32] = [:]
    static let positionBlock: Int64 = 1024
    /// Layout of `VisitorState.counters`: where each counter's slots start, and the total.
    var counterOffsets: [Int] = []
    var counterSlots = 0
    /// Counters by the event type they count (index by `EventType.ordinal`).
    var countersByType: [[Int]] = []
    /// Per rule, what its evaluation reads first (see `RulePlan`).
    var rulePlans: [RulePlan] = []
    /// The union of the rules' `triggers`.
    var anyRuleTriggers: UInt32 = 0
    /// With at most 64 rules, as bits: per event type (by `EventType.ordinal`) the rules it
    /// triggers, the rules that need no page (or a path test past the 64th), and per path
    /// test the rules that need it (see `RulePlan.requiredPath`). `evaluateRules` visits
    /// only the triggered rules that are on their page or held before.
    var rulesByType: [UInt64] = []
    var rulesOnAnyPage: UInt64 = 0
    var rulesByPath: [UInt64] = []
    /// The rules' conditions and the counters' filters, compiled; per counter its filter's
    /// root (-1: none).
    var program = ConditionProgram()
    var filterRoots: [Int32] = []
    /// Per rule, `VisitorFeatures.hash32` of its id (the policy's memory keys rules by it).
    var ruleHashes: [UInt32] = []
    /// Per rule, the channels it is limited to (empty: any).
    var ruleChannels: [[String]] = []
    /// Coupons given per hour of event time (hour index → count), for the policy's budget.
    var couponsByHour: [Int64: Int] = [:]
    /// Firings the policy suppressed since the last `takeSuppressions()`.
    var suppressions: [SuppressedFiring] = []

    public init(rules: RuleSet, model: IntentModel = .empty, policy: Policy = .standard, configuration: EngineConfiguration = EngineConfiguration()) {
        self.rules = rules
        self.model = model
        self.policy = policy
        self.intentNames = model.intents.map(\.name)
        self.compiledModel = CompiledModel(model)
        self.configuration = configuration
        self.watermark = Watermark(allowedLateness: configuration.allowedLateness, idleAfter: configuration.idleAfter)
        layOutRules()
    }

    public var visitorCount: Int { visitors.count }

    /// Visitors in memory in compact form (idle for `compactAfter`), and their bytes.
    public var compactVisitorCount: Int { visitors.coldCount }
    public var compactVisitorBytes: Int { visitors.coldBytes }
    /// The bytes reserved for visitors in full form: a mapping of its own, outside the
    /// allocator's heap (see `beckon_region_allocate`), and touched only as far as used.
    public var hotVisitorBufferBytes: Int { visitors.hotBufferBytes }

    /// The next watermark at which idle visitors are compacted.
    private var nextCompaction = EventTime(milliseconds: .min)
    /// Visitors frozen since free memory was last handed back to the system.
    private var frozenSinceRelease = 0
    /// The next timer whose visitor `fireDueTimers` is loading into cache ahead of it (its
    /// slot, -1 for none), and how far: 1 its slot entry, 2 its state too. Only a hint.
    private var timerPrefetch: (slot: Int32, step: Int8) = (-1, 0)
    /// How many frozen visitors make it worth handing free memory back (see `compactIdleVisitors`).
    static let releaseMemoryAfterFrozen = 65_536

    /// Inline size of one visitor's state (the index adds its key and slack).
    public static var visitorStateStride: Int { MemoryLayout<VisitorState>.stride }

    /// Rule wake-up timers that have not fired yet (stale ones included until they are popped).
    public private(set) var pendingRuleTimers = 0

    /// Events held until the watermark passes them (page events, session openers).
    public var heldEvents: Int { held.count }

    /// The earliest position (Kafka offset, as passed to `process`) that re-reading must
    /// start from to rebuild this state exactly: the first event of the oldest session
    /// still in memory, or the earliest held event if that is earlier, rounded down to a
    /// block of 1,024. Nil when no visitor is in memory and no event is held.
    ///
    /// Replaying the partition from there (decisions discarded) up to the committed
    /// offset gives the same visitor state, timers and watermark, so decisions after a
    /// restart are those of an uninterrupted run. The exception is what is kept of evicted
    /// visitors (their earlier visits, and the prompt memory of those prompted), which only
    /// this instance's memory holds.
    public var rebuildFrom: Int64? {
        let sessions = sessionStarts.keys.min().map { $0 * Self.positionBlock }
        guard let heldFrom = held.earliestPosition.map({ $0 / Self.positionBlock * Self.positionBlock }) else { return sessions }
        return min(sessions ?? heldFrom, heldFrom)
    }

    private mutating func countSession(from old: Int64, to new: Int64) {
        if old >= 0 {
            let block = old / Self.positionBlock
            if let n = sessionStarts[block] { sessionStarts[block] = n > 1 ? n - 1 : nil }
        }
        if new >= 0 { sessionStarts[new / Self.positionBlock, default: 0] += 1 }
    }

    /// A visitor's features at its latest event time (nil if the visitor is not in memory).
    public func features(of visitorID: String) -> [Feature: Double]? {
        guard let slot = visitors.slot(of: visitorID) else { return nil }
        let v = visitors.read(slot).state
        let now = Tick(v.lastEventTime)
        return Dictionary(uniqueKeysWithValues: Feature.allCases.map { ($0, $0.value(v.features, page: v.page, now: now)) })
    }

    /// A visitor's intent scores, in the model's order, as of its latest applied event.
    public func scores(of visitorID: String) -> [(String, Double)]? {
        guard let slot = visitors.slot(of: visitorID) else { return nil }
        var (v, scored) = visitors.read(slot)
        withUnsafeMutablePointer(to: &v) { restoreScores($0, scored: scored) }
        let scores = v.scores
        return model.intents.indices.map { (model.intents[$0].name, Double(scores[$0])) }
    }

    /// The firings the policy suppressed since the last call, in the order they happened.
    public mutating func takeSuppressions() -> [SuppressedFiring] {
        defer { suppressions.removeAll(keepingCapacity: true) }
        return suppressions
    }

    /// Applies one event and returns the decisions it (or the watermark it moved) caused.
    ///
    /// An `event_id` among the visitor's last eight applied (a tracker retry) is dropped and
    /// counted in `statistics.duplicateEvents`: a page event when the watermark releases it
    /// (retries of one event then come out of the held queue side by side), any other
    /// event on arrival. An event behind the watermark (later than the allowed lateness)
    /// is counted in `statistics.lateEvents` and changes no window state.
    ///
    /// - Parameter position: the event's place in its partition (the Kafka offset), for
    ///   `rebuildFrom`; -1 when there is none.
    public mutating func process(_ event: Event, arrivedAt wallNow: EventTime, position: Int64 = -1) -> [Decision] {
        // A batch of one: a held page event stays where it arrived, in its batch.
        process(batch: [Arrival(event, arrivedAt: wallNow, position: position)])
    }

    /// An event of a batch (`process(batch:)`): the event, when it arrived, and its place
    /// in its partition (-1 when there is none).
    public struct Arrival: Sendable {
        public var event: Event
        public var wallNow: EventTime
        public var position: Int64

        public init(_ event: Event, arrivedAt wallNow: EventTime, position: Int64 = -1) {
            self.event = event
            self.wallNow = wallNow
            self.position = position
        }
    }

    /// `process` for each event of one partition in turn, with their decisions in the same
    /// order: the same outcome, faster where visitors are many. An event that is not a page
    /// event is applied on arrival, and finding its visitor is three reads, each waiting for
    /// the one before (index bucket, slot entry, state); `process` alone cannot start them
    /// before the event is there. Knowing the events that come next, this starts each a step
    /// ahead: the bucket three events before, the entry two, the state one (page events are
    /// held, and loaded ahead as they are released: see `fireDueTimers`).
    public mutating func process(batch: [Arrival]) -> [Decision] {
        var decisions: [Decision] = []
        // Per coming event, by its place modulo 4: its visitor's tag (0 when not worked out
        // ahead) and the slot the index named for it (-1: none).
        var tags = InlineArray<4, UInt32>(repeating: 0)
        var hints = InlineArray<4, Int32>(repeating: -1)
        let n = batch.count
        guard n > 0 else { return decisions }
        // Once per batch, not per event: nothing in between can share the table.
        if !isKnownUniquelyReferenced(&visitors) { visitors = visitors.copy() }
        // Through a buffer pointer, and each event by its address: `batch[i].event` handed
        // to `process` copied the whole arrival (a retain of each of its strings, a release
        // after), 7 % of the time per event at 100,000 visitors (perf: the arrival's
        // outlined copy and destroy around the call). The batch is kept while page events
        // of it are held: their release reads them here too (`HeldQueue.Batch`).
        let batchID = held.open(batch)
        defer { held.close(batchID) }
        batch.withUnsafeBufferPointer { batch in
            let base = batch.baseAddress!
            for i in 0..<n {
                // The arrival itself, eight ahead: a batch is 5,000 × 168 bytes, and the read of
                // `batch[i + 3].event.type` below waited on memory for 61 % of this loop's own
                // time at 100,000 visitors (perf annotate).
                if i + 8 < n { beckon_prefetch(base + i + 8, MemoryLayout<Arrival>.stride) }
                if visitors.count > 16_384 {
                    if i + 3 < n, !base[i + 3].event.type.isPageEvent {
                        let tag = visitors.tag(of: base[i + 3].event.visitorID)
                        tags[(i + 3) & 3] = tag
                        visitors.prefetchBucket(tag: tag)
                    }
                    if i + 2 < n, tags[(i + 2) & 3] != 0 {
                        let slot = visitors.candidate(tag: tags[(i + 2) & 3])
                        hints[(i + 2) & 3] = slot
                        if slot >= 0 { visitors.prefetchEntry(slot) }
                    }
                    if i + 1 < n, hints[(i + 1) & 3] >= 0 { visitors.prefetch(hints[(i + 1) & 3]) }
                }
                let tag = tags[i & 3] != 0 ? tags[i & 3] : visitors.tag(of: base[i].event.visitorID)
                process((base + i).pointer(to: \.event)!, arrivedAt: base[i].wallNow, position: base[i].position, tag: tag, hint: hints[i & 3], batch: batchID, place: Int32(truncatingIfNeeded: i), into: &decisions)
                tags[i & 3] = 0
                hints[i & 3] = -1
            }
        }
        return decisions
    }

    /// `process`, with the visitor's `tag` and the slot it is expected in (`hint`, checked;
    /// -1 for none). The event `e` is read where it lies, for the length of the call. The
    /// caller has made `visitors` unique (a copy of the processor shares it until then).
    private mutating func process(_ e: UnsafePointer<Event>, arrivedAt wallNow: EventTime, position: Int64, tag: UInt32, hint: Int32, batch: Int32, place: Int32, into decisions: inout [Decision]) {
        compactIdleVisitors()
        statistics.events += 1
        let idHash = RecentEventIDs.hash(e.pointee.id)
        let late = watermark.isLate(e.pointee.time)
        if !late && e.pointee.type.isPageEvent {
            // Held for order without reading the visitor's state: the release reads it once
            // (duplicate check, channel, page track), not here and again there.
            watermark.observe(e.pointee.time, arrivedAt: wallNow)
            fireDueTimers(wallNow: wallNow, into: &decisions)
            hold(page: e, batch: batch, place: place, idHash: idHash, tag: tag, position: position)
            fireDueTimers(wallNow: wallNow, into: &decisions)
            return
        }
        // What the new watermark releases comes first: an exit intent at 60 s then sees the
        // page view of 10 s that was held for ordering. The visitor is looked up after that,
        // so a session end in between cannot take the state from under this event.
        // Read where it lies: a copy of the event (its strings retained and released) cost
        // about 300 instructions.
        watermark.observe(e.pointee.time, arrivedAt: wallNow)
        fireDueTimers(wallNow: wallNow, into: &decisions)
        let slot = visitors.slot(of: e.pointee.visitorID, tag: tag, hint: hint) ?? admit(e.pointee.visitorID, tag: tag, at: e.pointee.time, eventID: e.pointee.id, position: position)
        let visitorPointer = state(slot)
        if visitorPointer.pointee.recentEventIDs.contains(idHash) {
            statistics.duplicateEvents += 1
            return
        }
        visitorPointer.pointee.recentEventIDs.insert(idHash)
        let before = decisions.count
        process(e, idHash: idHash, late: late, position: position, tag: tag, slot: slot, visitor: &visitorPointer.pointee, wallNow: wallNow, into: &decisions)
        statistics.decisions += decisions.count - before
        fireDueTimers(wallNow: wallNow, into: &decisions)
    }

    /// Holds a page event (not late) until the watermark passes it.
    private mutating func hold(page event: UnsafePointer<Event>, batch: Int32, place: Int32, idHash: UInt64, tag: UInt32, position: Int64) {
        var pageID: UInt32 = 0
        if event.pointee.type != .pageHidden, event.pointee.pagePath != nil {
            // Read in place: `if let path` bound a copy (a retain and a release per page
            // event). A `String?` that holds a string has the string's layout (Swift's
            // single-payload enum layout: the empty case takes one of the string's spare bit
            // patterns), so the path lies where the optional does; a test checks it.
            pageID = internPage(at: UnsafeRawPointer(event.pointer(to: \.pagePath)!).assumingMemoryBound(to: String.self))
            pages.retain(pageID)
        }
        // No slot hint: reading the index here waits on memory once visitors are many, while
        // on release it is read a few events ahead (see `fireDueTimers`).
        held.push(page: event, batch: batch, place: place, pageID: pageID, idHash: idHash, tag: tag, hint: -1, position: position)
    }

    /// A visitor's state, to mutate in place: a compact one is brought back first, with
    /// its scores recomputed. Valid until another visitor's state is asked for.
    @inline(__always) mutating func state(_ slot: Int32) -> UnsafeMutablePointer<VisitorState> {
        guard visitors.isCold(slot) else { return visitors.pointer(slot) }
        let (v, scored) = visitors.thaw(slot)
        statistics.restored += 1
        restoreScores(v, scored: scored)
        return v
    }

    /// A decoded state's scores (the compact form leaves them out), when they had been computed.
    private func restoreScores(_ v: UnsafeMutablePointer<VisitorState>, scored: Bool) {
        if scored && !compiledModel.isEmpty { Self.rescore(v, model: compiledModel) }
    }

    /// Every so often (half of `compactAfter` of watermark progress), moves the visitors
    /// idle for `compactAfter` to compact form.
    @inline(__always) private mutating func compactIdleVisitors() {
        // Every event asks; a sweep is due once per half `compactAfter`: decide that inline.
        guard let now = watermark.current, now >= nextCompaction, configuration.compactAfter != nil else { return }
        sweepIdleVisitors(now: now)
    }

    private mutating func sweepIdleVisitors(now: EventTime) {
        guard let after = configuration.compactAfter else { return }
        nextCompaction = now + max(Millis(after.value / 2), Millis(1))
        let frozen = visitors.freezeIdle(lastEventAtOrBefore: now - after)
        statistics.compacted += frozen
        timers.trim()
        // The buffers that grew by doubling on the way to this many visitors (indexes,
        // queues, dictionaries) left free chunks in the allocator's heap, and freezing frees
        // more; glibc keeps such pages resident until asked. `make bench`, 1,000,000 visitors:
        // 265 bytes of RSS growth per idle visitor without asking, 201 with (218 of heap in
        // use: some of it lands in pages that were resident before the run).
        frozenSinceRelease += frozen
        if frozenSinceRelease >= Self.releaseMemoryAfterFrozen {
            frozenSinceRelease = 0
            statistics.memoryReleases += 1
            releaseFreeMemory()
        }
    }

    /// A late event, or one that is not a page event: the visitor's state is at hand.
    private mutating func process(_ e: UnsafePointer<Event>, idHash: UInt64, late: Bool, position: Int64, tag: UInt32, slot: Int32, visitor: inout VisitorState, wallNow: EventTime, into decisions: inout [Decision]) {
        updateIdentity(userID: e.pointee.userID, channel: e.pointee.channel, slot: slot, &visitor)
        if late {
            statistics.lateEvents += 1
        } else if e.pointee.time > visitor.lastEventTime + configuration.sessionGap {
            held.push(e.pointee, idHash: idHash, tag: tag, hint: slot, position: position)
        } else {
            apply(e, idHash: idHash, position: position, to: &visitor, slot: slot, wallNow: wallNow, into: &decisions)
        }
        scheduleSessionEnd(slot: slot, &visitor)
    }

    /// Keeps the visitor's latest user id and channel.
    @inline(__always) private mutating func updateIdentity(userID: String?, channel: String, slot: Int32, _ visitor: inout VisitorState) {
        if let userID, userID != visitors.sidecar(slot)?.userID { visitors.updateSidecar(slot) { $0.userID = userID } }
        updateChannel(channel, slot: slot, &visitor)
    }

    /// `updateChannel` for the channel at `channel`, read in place (see `VisitorTable.slot(of:tag:hint:)`).
    /// Two lines twice on purpose: the value version going through this one cost 0.6 % more
    /// instructions per event (callgrind), and this one going through the value version
    /// brings back the retain it saves.
    @inline(__always) private mutating func updateChannel(at channel: UnsafePointer<String>, slot: Int32, _ visitor: inout VisitorState) {
        let same = visitor.channel != 0 ? channels.isName(visitor.channel, of: channel.pointee) : channel.pointee == visitors.sidecar(slot)?.channel ?? ""
        if !same { setChannel(channel.pointee, slot, &visitor) }
    }

    @inline(__always) private mutating func updateChannel(_ channel: String, slot: Int32, _ visitor: inout VisitorState) {
        let same = visitor.channel != 0 ? channels.isName(visitor.channel, of: channel) : channel == visitors.sidecar(slot)?.channel ?? ""
        if !same { setChannel(channel, slot, &visitor) }
    }

    /// Schedules the check for the end of the visitor's session, unless one is pending.
    @inline(__always) private mutating func scheduleSessionEnd(slot: Int32, _ visitor: inout VisitorState) {
        guard !visitor.sessionTimerPending else { return }
        visitor.sessionTimerPending = true
        timers.schedule(VisitorTimer(due: visitor.lastEventTime + configuration.sessionGap, slot: slot, epoch: visitors.epoch(slot), kind: .sessionEnd))
    }

    /// Puts a new visitor in the table: a departed one gets back its visit count and its
    /// prompt memory.
    private mutating func admit(_ visitorID: String, tag: UInt32, at time: EventTime, eventID: String, position: Int64) -> Int32 {
        // No page yet: "since the page was entered" means since the beginning.
        var v = VisitorState(visitorID: visitorID, lastEventTime: time, pageSince: VisitorState.noPageSince, pageEventID: eventID)
        var prompts: PromptMemory?
        if !returning.isEmpty {
            let hash = fnv64(visitorID)
            if let memory = returning.removeValue(forKey: hash) {
                v.features.visits = UInt16(truncatingIfNeeded: memory >> 16) &+ 1
                if !departedPrompts.isEmpty { prompts = departedPrompts.removeValue(forKey: hash) }
            }
        }
        v.sessionPosition = position
        countSession(from: -1, to: position)
        let slot = visitors.insert(consume v, tag: tag)
        if let prompts { visitors.updateSidecar(slot) { $0.prompts = prompts } }
        return slot
    }

    /// Forgets departed visitors last seen more than `departedMemoryDays` ago (once a day).
    private mutating func pruneDeparted(today: Int64) {
        guard today > departedPrunedDay else { return }
        departedPrunedDay = today
        let keep = Self.departedMemoryDays
        returning.removeAll { (today - Int64($0 & 0xFFFF)) & 0xFFFF > keep }
        departedPrompts = departedPrompts.filter { today - $0.value.lastPrompt.milliseconds / 86_400_000 <= keep }
    }

    /// Opens a new session when `time` is past the visitor's session gap.
    @inline(__always) private mutating func startSessionIfDue(at time: EventTime, position: Int64, slot: Int32, _ visitor: inout VisitorState) -> Bool {
        guard time > visitor.lastEventTime + configuration.sessionGap else {
            if time > visitor.lastEventTime { visitor.lastEventTime = time }
            // A held event read before the one that made the state: the session starts here.
            if position >= 0 && position < visitor.sessionPosition {
                countSession(from: visitor.sessionPosition, to: position)
                visitor.sessionPosition = position
            }
            return false
        }
        leavePage(&visitor)
        visitor.features.startSession()
        visitor.heldRules = 0
        if visitors.sidecar(slot) != nil {
            visitors.updateSidecar(slot) {
                $0.prompts.startSession()
                $0.heldBeyond64 = RuleBits()
            }
        }
        if !visitor.counters.isEmpty { visitor.counters.removeAll() }
        countSession(from: visitor.sessionPosition, to: position)
        visitor.sessionPosition = position
        visitor.lastEventTime = time
        return true
    }

    /// A released page event: its visitor is found (or made), checked for a retry, and the
    /// event applied.
    private mutating func releasePage(_ key: inout HeldQueue.Held, wallNow: EventTime, into decisions: inout [Decision]) {
        let e = held.event(key)
        let slot = visitors.slot(of: e.pointer(to: \.visitorID)!, tag: key.tag, hint: key.hint)
            ?? admit(e.pointee.visitorID, tag: key.tag, at: key.time, eventID: e.pointee.id, position: key.position)
        let visitor = state(slot)
        if visitor.pointee.recentEventIDs.contains(key.idHash) {
            statistics.duplicateEvents += 1
            return
        }
        visitor.pointee.recentEventIDs.insert(key.idHash)
        // Not through `updateIdentity`: a `String?` passed on, nil on most events, would be
        // copied and released all the same.
        if e.pointee.userID != nil {
            updateIdentity(userID: e.pointee.userID, channel: e.pointee.channel, slot: slot, &visitor.pointee)
        } else {
            updateChannel(at: e.pointer(to: \.channel)!, slot: slot, &visitor.pointee)
        }
        applyPage(&key, e, slot: slot, to: &visitor.pointee, wallNow: wallNow, into: &decisions)
        scheduleSessionEnd(slot: slot, &visitor.pointee)
    }

    /// A released session opener (its duplicate check was done on arrival). If the old
    /// session's state went meanwhile, the event starts a new one.
    private mutating func releaseOpener(_ key: inout HeldQueue.Held, wallNow: EventTime, into decisions: inout [Decision]) {
        let event = held.takeEvent(key)
        let slot = visitors.slot(of: event.visitorID, tag: key.tag, hint: key.hint)
            ?? admit(event.visitorID, tag: key.tag, at: event.time, eventID: event.id, position: key.position)
        let visitor = state(slot)
        withUnsafePointer(to: event) { apply($0, idHash: key.idHash, position: key.position, to: &visitor.pointee, slot: slot, wallNow: wallNow, into: &decisions) }
        scheduleSessionEnd(slot: slot, &visitor.pointee)
    }

    /// Applies a held page event, in event-time order, then evaluates the rules.
    private mutating func applyPage(_ key: inout HeldQueue.Held, _ e: UnsafePointer<Event>, slot: Int32, to visitor: inout VisitorState, wallNow: EventTime, into decisions: inout [Decision]) {
        let opensSession = startSessionIfDue(at: key.time, position: key.position, slot: slot, &visitor)
        var pageClass: PageClass?
        var pathHash: UInt32?
        // A page view or ping without a path moves nothing on the page track.
        if key.type == .pageHidden || key.pageID != 0 {
            let inOrder = (key.time, UInt32(truncatingIfNeeded: key.idHash >> 32)) >= (visitor.lastPageTime, visitor.lastPageID)
            if inOrder {
                visitor.lastPageTime = key.time
                visitor.lastPageID = UInt32(truncatingIfNeeded: key.idHash >> 32)
            } else {
                statistics.outOfOrderPageEvents += 1
            }
            if key.type == .pageHidden {
                if inOrder { leavePage(&visitor) }
            } else {
                let info = key.pageID == visitor.pageID ? nil : pages[key.pageID]
                pageClass = info?.pageClass ?? visitor.pageClass
                pathHash = info?.hash ?? visitor.pageHash
                if inOrder, let info {
                    enterPage(key.pageID, info, at: key.time, eventID: e.pointee.id, visitor: &visitor)
                    // The held event's reference to the page is now the visitor's: not
                    // released with the event (one count up and one down less per page view).
                    key.pageID = 0
                }
            }
        }
        visitor.features.applyPage(key.type, tick: Tick(key.time), pageClass: pageClass, pathHash: pathHash)
        if counterSlots > 0 {
            count(key.type, at: key.time, pageID: key.pageID != 0 ? key.pageID : visitor.pageID, channel: e.pointee.channel, in: &visitor)
        }
        rescore(&visitor)
        let visit = rulesToVisit(key.type, everyRule: opensSession, visitor)
        guard visit != 0 else { return }
        evaluateRules(slot: slot, visitor: &visitor, trigger: .event(key.type, id: e.pointee.id), at: key.time, everyRule: opensSession, visit: visit, wallNow: wallNow, into: &decisions)
    }

    /// Applies any other event (directly, or from the held queue when it opens a session),
    /// then evaluates the rules.
    private mutating func apply(_ e: UnsafePointer<Event>, idHash: UInt64, position: Int64, to visitor: inout VisitorState, slot: Int32, wallNow: EventTime, into decisions: inout [Decision]) {
        // The event is read where it lies (see `process`).
        let type = e.pointee.type, time = e.pointee.time
        let opensSession = startSessionIfDue(at: time, position: position, slot: slot, &visitor)
        if type == .offerDismissed, let id = e.pointee.properties.decisionID {
            if visitors.sidecar(slot) != nil { visitors.updateSidecar(slot) { $0.prompts.dismissed(decisionID: id, at: Tick(time)) } }
        }
        let pathHash = type == .formError ? e.pointee.pagePath.map(VisitorFeatures.hash32) : nil
        visitor.features.apply(type, tick: Tick(time), properties: e.pointer(to: \.properties)!, pathHash: pathHash)
        if counterSlots > 0 {
            let pageID = e.pointee.pagePath.map { internPage($0) } ?? visitor.pageID
            count(type, at: time, pageID: pageID, channel: e.pointee.channel, in: &visitor)
        }
        rescore(&visitor)
        let visit = rulesToVisit(type, everyRule: opensSession, visitor)
        guard visit != 0 else { return }
        evaluateRules(slot: slot, visitor: &visitor, trigger: .event(type, id: e.pointee.id), at: time, everyRule: opensSession, visit: visit, wallNow: wallNow, into: &decisions)
    }

    /// The visitor's channel name.
    @inline(__always) func channelName(_ slot: Int32, _ visitor: borrowing VisitorState) -> String {
        visitor.channel != 0 ? channels[visitor.channel] : visitors.sidecar(slot)?.channel ?? ""
    }

    private mutating func setChannel(_ name: String, _ slot: Int32, _ visitor: inout VisitorState) {
        visitor.channel = channels.id(name)
        if visitor.channel == 0 || visitors.sidecar(slot)?.channel != nil {
            visitors.updateSidecar(slot) { $0.channel = visitor.channel == 0 ? name : nil }
        }
    }

    /// The interned id of a page path (not retained).
    mutating func internPage(_ path: String) -> UInt32 {
        withUnsafePointer(to: path) { internPage(at: $0) }
    }

    /// `internPage` for the path at `path`, read in place.
    @inline(__always) mutating func internPage(at path: UnsafePointer<String>) -> UInt32 {
        let classes = model.pageClasses, tests = rules.pathTests, byPath = rulesByPath
        return pages.intern(at: path) { PageInfo.of($0, classes: classes, tests: tests, rulesByPath: byPath) }
    }

    /// Recomputes the intent scores: every feature once, then the sums. The feature values
    /// stay in `rescored`, for the rule evaluation that follows.
    @inline(__always) private mutating func rescore(_ visitor: inout VisitorState) {
        guard !compiledModel.isEmpty else { return }
        let now = Tick(visitor.lastEventTime)
        rescored.handle = visitor.handle
        rescored.tick = now
        rescored.computed = scoredFeatures
        let only = scoredFeatures
        // Through a pointer: reading the state's fields through an `inout` inside a closure
        // would copy the whole state first.
        withUnsafeMutablePointer(to: &visitor) { v in
            withUnsafeMutableBytes(of: &rescored.values) { Self.rescore(v, at: now, model: compiledModel, only: only, values: $0.baseAddress!.assumingMemoryBound(to: Double.self)) }
        }
    }

    private static func rescore(_ v: UnsafeMutablePointer<VisitorState>, model m: CompiledModel) {
        withUnsafeTemporaryAllocation(of: Double.self, capacity: Feature.count) { rescore(v, at: Tick(v.pointee.lastEventTime), model: m, only: m.features, values: $0.baseAddress!) }
    }

    /// Rescores at `now` (the state's latest event time), with `values` (`Feature.count`
    /// places) to hold the values of the features in `only` (at least the model's).
    private static func rescore(_ v: UnsafeMutablePointer<VisitorState>, at now: Tick, model m: CompiledModel, only: UInt64, values: UnsafeMutablePointer<Double>) {
        let page = v.pointee.page
        var scores = IntentScores()
        do {
            // The features read by the model or the rules, in one straight line with a test
            // per feature (a loop over them, with a dispatch per feature, cost more). Read
            // where they lie: passed as a value, the features were copied first (266 bytes).
            let features = UnsafeRawPointer(v).advanced(by: MemoryLayout<VisitorState>.offset(of: \.features)!)
            Feature.values(of: features.assumingMemoryBound(to: VisitorFeatures.self), page: page, now: now, into: values, only: only)
            // Term by term, grouped by feature: a model reads few of its intents × features
            // pairs (the shipped one 35 of 140), so sums over dense columns of all intents
            // would mostly add zeros. And only the features whose value is not 0: a term of
            // a zero feature adds w × min(0, cap) = ±0, nothing, unless its cap is negative
            // or its weight infinite (then every feature is visited). Of the shipped model's
            // 28 features, about 5 are not 0 per rescore of the benchmark's mix. Through
            // buffer pointers, the sums too: indexing a SIMD value by a variable stored it to
            // the stack and loaded it back, for every intent.
            m.columns.withUnsafeBufferPointer { columns in
                m.columnStart.withUnsafeBufferPointer { columnStart in
                    m.intents.withUnsafeBufferPointer { intents in
                        withUnsafeTemporaryAllocation(of: Double.self, capacity: IntentScores.scalarCount) { sums in
                            for i in intents.indices { sums[i] = intents[i].bias }
                            var live = m.skipsZeros ? beckon_nonzero_mask(values, Feature.count) & m.features : m.features
                            while live != 0 {
                                let f = live.trailingZeroBitCount
                                live &= live &- 1
                                let x = values[f]
                                var k = Int(columnStart[f])
                                let end = Int(columnStart[f + 1])
                                while k < end {
                                    sums[columns[k].intent] += columns[k].weight * min(x, columns[k].cap)
                                    k += 1
                                }
                            }
                            // All intents' logistic at once, in vector instructions: five calls
                            // to expf cost about 135 instructions per event.
                            withUnsafeMutableBytes(of: &scores) { out in
                                beckon_logistic8(sums.baseAddress!, intents.count, out.baseAddress!.assumingMemoryBound(to: Float.self))
                            }
                        }
                    }
                }
            }
        }
        v.pointee.scores = scores
    }

    /// The feature values the latest rescore computed, and whose they are: a visitor's
    /// handle and the instant. Rule conditions on that visitor at that instant read them
    /// (`featureValue`) instead of computing each feature again.
    struct RescoredValues: Sendable {
        var values = InlineArray<43, Double>(repeating: 0)
        var handle: Int32 = -1
        var tick = Tick.never
        /// The features whose values are there (`scoredFeatures` at the time).
        var computed: UInt64 = 0
    }

    /// The intent model flattened: per intent its bias, and the terms grouped by feature
    /// (columns), each naming the intent whose sum it adds to (no per-intent array to
    /// retain on each event).
    struct CompiledModel: Sendable {
        struct Intent: Sendable {
            var bias: Double
        }
        struct Column: Sendable {
            var weight: Double
            var cap: Double
            var intent: Int
        }
        var intents: [Intent] = []
        /// Feature f's terms are `columns[columnStart[f]..<columnStart[f + 1]]`, in intent order.
        var columns: [Column] = []
        var columnStart: [Int32] = []
        /// The features the terms read.
        var features: UInt64 = 0
        /// Whether a zero feature's terms add nothing: no cap is negative (or NaN), and
        /// every weight is finite (∞ × 0 is NaN).
        var skipsZeros = true
        var isEmpty: Bool { intents.isEmpty }

        init(_ model: IntentModel) {
            precondition(model.intents.count <= IntentScores.scalarCount, "at most \(IntentScores.scalarCount) intents")
            intents = model.intents.map { Intent(bias: $0.bias) }
            for f in 0..<Feature.count {
                columnStart.append(Int32(columns.count))
                for (i, intent) in model.intents.enumerated() {
                    for term in intent.terms where term.feature.ordinal == f {
                        columns.append(Column(weight: term.weight, cap: term.cap ?? .infinity, intent: i))
                        features |= term.feature.bit
                        if let cap = term.cap, !(cap >= 0) { skipsZeros = false }
                        if !term.weight.isFinite { skipsZeros = false }
                    }
                }
            }
            columnStart.append(Int32(columns.count))
        }
    }

    private mutating func leavePage(_ visitor: inout VisitorState) {
        pages.release(visitor.pageID)
        visitor.pageID = 0
        visitor.pageHash = 0
        visitor.pageClass = .other
    }

    /// Lets a caught-up, idle partition's watermark follow the wall clock and fires what is due.
    public mutating func advanceIdle(wallNow: EventTime) -> [Decision] {
        guard watermark.advanceIdle(wallNow: wallNow) else { return [] }
        if !isKnownUniquelyReferenced(&visitors) { visitors = visitors.copy() }
        var decisions: [Decision] = []
        fireDueTimers(wallNow: wallNow, into: &decisions)
        compactIdleVisitors()
        return decisions
    }

    /// Moves the visitor onto page `id`, taking over a reference to it the caller held.
    private mutating func enterPage(_ id: UInt32, _ info: PageInfo, at time: EventTime, eventID: String, visitor: inout VisitorState) {
        pages.release(visitor.pageID)
        visitor.pageID = id
        visitor.pageHash = info.hash
        visitor.pageClass = info.pageClass
        visitor.pageSince = time
        visitor.pageEventID = eventID
    }

    /// Schedules a rule wake-up at `due` unless an earlier one is pending.
    mutating func scheduleWake(_ due: EventTime, slot: Int32, visitor: inout VisitorState, after now: EventTime) {
        if visitor.nextWake != .unset && visitor.nextWake > now && visitor.nextWake <= due { return }
        visitor.nextWake = due
        visitor.latestWake = visitor.latestWake == .unset ? due : max(visitor.latestWake, due)
        visitor.pendingWakes += 1
        pendingRuleTimers += 1
        timers.schedule(VisitorTimer(due: due, slot: slot, epoch: visitors.epoch(slot), kind: .wake))
    }

    /// Releases held events and fires timers that the watermark has passed, in event-time
    /// order (a timer before a held event due at the same instant: a dwell that completes
    /// as the visitor leaves still counts).
    @inline(__always) private mutating func fireDueTimers(wallNow: EventTime, into decisions: inout [Decision]) {
        // Twice per event, and usually nothing is due: decide that inline.
        guard let now = watermark.current,
              (held.nextTime.map { $0 <= now } ?? false) || (timers.next.map { $0.due <= now } ?? false) else { return }
        fireDueTimers(now: now, wallNow: wallNow, into: &decisions)
    }

    /// Releases `first` and the held events that tie with it on time and event-id hash: the
    /// same event id from different visitors (or a retry, which the duplicate check then
    /// drops), in order of visitor id, type and page path, so that the order, and which
    /// visitor a budget's last coupon goes to, does not depend on arrival or on the table's
    /// random seed.
    @inline(never) private mutating func releaseTied(_ first: HeldQueue.Held, wallNow: EventTime, into decisions: inout [Decision]) {
        var group = [first]
        while held.nextTies(first) { group.append(held.pop().unsafelyUnwrapped) }
        let order = group.indices.map { i in
            (visitor: held.visitorID(group[i]), type: group[i].type.ordinal, path: pages.path(group[i].pageID) ?? "", index: i)
        }.sorted { ($0.visitor, $0.type, $0.path) < ($1.visitor, $1.type, $1.path) }
        for place in order {
            var h = group[place.index]
            release(&h, wallNow: wallNow, into: &decisions)
            pages.release(h.pageID)
        }
    }

    /// Applies a held event taken out of the queue: a page event (and lets its batch go
    /// when it was the last held there) or a session opener.
    @inline(__always) private mutating func release(_ h: inout HeldQueue.Held, wallNow: EventTime, into decisions: inout [Decision]) {
        if h.event < 0 {
            releasePage(&h, wallNow: wallNow, into: &decisions)
            held.released(h)
        } else {
            releaseOpener(&h, wallNow: wallNow, into: &decisions)
        }
    }

    private mutating func fireDueTimers(now: EventTime, wallNow: EventTime, into decisions: inout [Decision]) {
        let before = decisions.count
        while true {
            let nextHeld = held.nextTime.flatMap { $0 <= now ? $0 : nil }
            let nextTimer = timers.next.flatMap { $0.due <= now ? $0.due : nil }
            if let heldTime = nextHeld, nextTimer.map({ heldTime < $0 }) ?? true {
                var h = held.pop().unsafelyUnwrapped
                if held.nextTies(h) {
                    releaseTied(h, wallNow: wallNow, into: &decisions)
                    continue
                }
                defer { pages.release(h.pageID) }
                // While this event is applied, what the next ones need comes into cache (only
                // worth it once the states outgrow the cache: measured 6% slower at 2,000
                // visitors, 8-20% faster at 300,000 and 1,000,000). Finding a visitor is three
                // dependent reads (index bucket, slot entry, state), so each is started one
                // event before the next needs it: for the fourth event in line its bucket and
                // held entry, for the third its slot entry, for the second its state. The
                // slot the bucket names is kept as the held event's hint, so that neither the
                // next step nor the release probes the index again (the release checks it).
                // A step further than "the next event's state" (session 28): at 1,000,000
                // visitors perf put a quarter of this loop's own time on the state's prefetch
                // instructions and a fifth on the bucket read, and the step gave 5-8 %.
                if visitors.count > 16_384 {
                    if let far = held.ahead(3) { visitors.prefetchBucket(tag: far.tag); held.prefetch(far) }
                    if let near = held.ahead(2) {
                        held.prefetchEvent(near)
                        let slot = visitors.candidate(tag: near.tag)
                        if slot >= 0 {
                            held.setHint(near, slot)
                            visitors.prefetchEntry(slot)
                        }
                    }
                    if let next = held.ahead(1) {
                        let hint = held.hint(next)
                        if hint >= 0 { visitors.prefetch(hint) }
                    }
                    // And the visitor of the next timer, in two steps (its slot entry, then
                    // its state): a timer mostly comes due among held events, and the prefetch
                    // in the timers' branch below only covers a timer that follows a timer.
                    if let timer = timers.next {
                        if timerPrefetch.slot != timer.slot {
                            visitors.prefetchEntry(timer.slot)
                            timerPrefetch = (timer.slot, 1)
                        } else if timerPrefetch.step == 1 {
                            visitors.prefetch(timer.slot)
                            timerPrefetch.step = 2
                        }
                    }
                }
                release(&h, wallNow: wallNow, into: &decisions)
                continue
            }
            guard nextTimer != nil, let timer = timers.popDue(atOrBefore: now) else { break }
            statistics.timersFired += 1
            // As for held events: the visitors of the next timers come into cache while
            // this one fires (a wake-up or a session's end reads the state; dwell rules
            // set one wake-up per page view).
            if visitors.count > 16_384 {
                if let near = timers.ahead(1) { visitors.prefetchEntry(near.slot) }
                if let next = timers.ahead(0) { visitors.prefetch(next.slot) }
            }
            guard visitors.epoch(timer.slot) == timer.epoch else {
                if timer.kind == .wake { pendingRuleTimers -= 1 }
                continue
            }
            switch timer.kind {
            case .wake:
                let visitor = state(timer.slot)
                visitor.pointee.pendingWakes -= 1
                pendingRuleTimers -= 1
                if visitor.pointee.nextWake == timer.due { visitor.pointee.nextWake = .unset }
                let visit = rulesToVisit(nil, everyRule: true, visitor.pointee)
                if visit != 0 {
                    evaluateRules(slot: timer.slot, visitor: &visitor.pointee, trigger: .timer, at: timer.due, everyRule: true, visit: visit, wallNow: wallNow, into: &decisions)
                }
            case .sessionEnd:
                if visitors.isCold(timer.slot) {
                    // Most visitors are frozen by the end of their session: only the head of
                    // the compact form is read (a thaw decoded, rescored and moved the state
                    // into the hot buffer, only for the eviction to take it out again).
                    let cold = visitors.summary(timer.slot)
                    if sessionHasEnded(timer, cold.header, now: now) {
                        evict(timer, cold.header, visitorHash: cold.visitorHash, prompts: cold.prompts())
                    }
                } else {
                    let v = visitors.pointer(timer.slot)
                    let head = ColdSummary.Header(v.pointee)
                    if sessionHasEnded(timer, head, now: now) {
                        evict(timer, head, visitorHash: fnv64(v.pointee.visitorID), prompts: visitors.sidecar(timer.slot)?.prompts)
                    }
                }
            }
        }
        statistics.decisions += decisions.count - before
    }

    /// A session-end check (`v`: what it reads of the visitor's state): true if the session
    /// has ended and no rule wake-up is pending, else false, with the check scheduled again.
    private mutating func sessionHasEnded(_ timer: VisitorTimer, _ v: ColdSummary.Header, now: EventTime) -> Bool {
        let end = v.lastEventTime + configuration.sessionGap
        // Strictly after the end: an event held for exactly `end` still belongs to
        // this session (it is released after this timer, see `fireDueTimers`).
        if end < now && v.pendingWakes == 0 { return true }
        // Check again when the session may have ended and every rule wake-up has fired.
        let wakeBound = v.pendingWakes > 0 && v.latestWake != .unset ? v.latestWake : end
        let next = max(end, wakeBound, timer.due + Millis(1))
        timers.schedule(VisitorTimer(due: next, slot: timer.slot, epoch: timer.epoch, kind: .sessionEnd))
        return false
    }

    /// Evicts a visitor whose session has ended, keeping its visits and (`prompts`, its
    /// sidecar's) prompt memory for its next session.
    private mutating func evict(_ timer: VisitorTimer, _ v: ColdSummary.Header, visitorHash hash: UInt64, prompts: PromptMemory?) {
        let end = v.lastEventTime + configuration.sessionGap
        let day = max(0, end.milliseconds / 86_400_000)
        pruneDeparted(today: day)
        returning.set(hash, UInt32(v.visits) << 16 | UInt32(truncatingIfNeeded: day & 0xFFFF))
        if var prompts, prompts.day >= 0 {
            prompts.startSession()
            departedPrompts[hash] = prompts
        }
        countSession(from: v.sessionPosition, to: -1)
        pages.release(v.pageID)
        visitors.remove(timer.slot)
        statistics.evictedVisitors += 1
    }
}
