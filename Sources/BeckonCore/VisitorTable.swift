import CBeckonSIMD
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Visitors by id. Each visitor has a slot, fixed while it is in memory (timers and held
/// events name it), and its state is in one of two places:
///
/// - **hot**: inline in a dense buffer, mutated in place through a pointer (no copy of
///   the 448-byte state per event). Visitors that are active now. The buffer is a mapping
///   of its own, which grows and shrinks by moving pages, not by copying states.
/// - **cold**: an idle visitor's compact encoding (`ColdWriter`, about a fifth of the
///   size) in an allocation of its own. `freezeIdle` moves visitors there; the processor
///   thaws one (`thaw`) when an event or timer needs its state.
///
/// Per slot an 8-byte entry says which: `index << 33 | epoch << 2` (hot), the encoding's
/// address `| 1` (cold; the epoch is the encoding's first 4 bytes), or `epoch << 2 | 2`
/// (vacant). The epoch is bumped when a visitor leaves its slot, so its timers and held
/// events are recognised as stale (31 bits, as timers keep it).
///
/// The index is open addressing over 8-byte buckets (a 32-bit tag of the id's hash and
/// the slot), probed linearly and compacted by backward shifts on removal; a tag match is
/// confirmed against the id. The hash is seeded per table, so ids crafted to collide in
/// one process do not collide in another.
///
/// A class for the stable buffers; `PartitionProcessor` copies it on write, so the
/// processor keeps value semantics.
final class VisitorTable: @unchecked Sendable {
    // @unchecked: a processor (and so its table) is used by one thread at a time.
    // The fields changed in place (arrays, the dictionary, the writer) skip the runtime's
    // exclusivity checks: only this class's own methods reach them, and none of those
    // calls back into the table while it changes one; checked, each change cost a call to
    // swift_beginAccess and one to swift_endAccess (about 100 instructions).
    private var hot: UnsafeMutablePointer<VisitorState>
    private var hotCapacity: Int
    private(set) var hotCount = 0
    private var entries: UnsafeMutablePointer<UInt64>
    private var entryCapacity: Int
    /// Slots in use or freed (the entries' initialised prefix).
    private var slotCount = 0
    @exclusivity(unchecked) private var freeSlots: [Int32] = []
    /// `tag << 32 | slot`, 0 for an empty bucket.
    private var buckets: UnsafeMutablePointer<UInt64>
    private var bucketMask: Int
    private(set) var count = 0
    private let seed: UInt64
    /// What few visitors have, kept beside their state instead of in every one (a cold
    /// visitor's is inside its encoding).
    @exclusivity(unchecked) private var sidecars: [Int32: Sidecar] = [:]
    /// One bit per slot: whether `sidecars` has an entry for it. Most visitors have none,
    /// and asking the dictionary hashes the slot: about 200 instructions per freeze.
    @exclusivity(unchecked) private var sidecarBits: [UInt64] = []
    /// Visitors in compact form, and the bytes their encodings take (headers included).
    private(set) var coldCount = 0
    private(set) var coldBytes = 0
    @exclusivity(unchecked) private var writer = ColdWriter()
    /// The hot places `freezeIdle` freezes, kept between sweeps for its capacity.
    @exclusivity(unchecked) private var freezeList: [Int32] = []
    static let minimumHotCapacity = 1024

    struct Sidecar: Sendable {
        /// Set once an event names the user (most visitors stay anonymous).
        var userID: String?
        /// The channel's name when the channel table is full (see `ChannelTable`).
        var channel: String?
        /// The policy's memory: caps, cooldowns, dismissals (once prompted).
        var prompts = PromptMemory()
        /// Which rules past the first 64 held at the last evaluation (index - 64).
        var heldBeyond64 = RuleBits()
    }

    init(capacity: Int = minimumHotCapacity, seed: UInt64 = .random(in: 1 ... .max)) {
        hotCapacity = max(capacity, 1)
        hot = Self.allocateHot(hotCapacity)
        entryCapacity = hotCapacity
        entries = Self.allocateWords(entryCapacity)
        let bucketCount = max(16, 1 << (Int.bitWidth - (hotCapacity * 2 - 1).leadingZeroBitCount))
        buckets = Self.allocateWords(bucketCount)
        buckets.initialize(repeating: 0, count: bucketCount)
        bucketMask = bucketCount - 1
        self.seed = seed
    }

    deinit {
        hot.deinitialize(count: hotCount)
        beckon_region_free(hot, Self.hotBytes(hotCapacity))
        for i in 0..<slotCount where entries[i] & 3 == 1 { free(Self.blob(entries[i])) }
        entries.deallocate()
        buckets.deallocate()
    }

    func copy() -> VisitorTable {
        let table = VisitorTable(capacity: hotCapacity, seed: seed)
        table.hot.initialize(from: hot, count: hotCount)
        table.hotCount = hotCount
        table.entries.deallocate()
        table.entries = Self.allocateWords(entryCapacity)
        table.entryCapacity = entryCapacity
        table.entries.initialize(from: entries, count: slotCount)
        for i in 0..<slotCount where entries[i] & 3 == 1 {
            let blob = Self.blob(entries[i]), size = Self.size(blob)
            let copy = malloc(size)!
            copy.copyMemory(from: blob, byteCount: size)
            table.entries[i] = Self.coldEntry(copy)
        }
        table.slotCount = slotCount
        table.freeSlots = freeSlots
        table.buckets.deallocate()
        table.buckets = Self.allocateWords(bucketMask + 1)
        table.buckets.initialize(from: buckets, count: bucketMask + 1)
        table.bucketMask = bucketMask
        table.count = count
        table.sidecars = sidecars
        table.sidecarBits = sidecarBits
        table.coldCount = coldCount
        table.coldBytes = coldBytes
        return table
    }

    // MARK: Entries

    @inline(__always) private static func hotEntry(index: Int, epoch: UInt32) -> UInt64 {
        UInt64(index) << 33 | UInt64(epoch & 0x7FFF_FFFF) << 2
    }

    @inline(__always) private static func coldEntry(_ blob: UnsafeMutableRawPointer) -> UInt64 { UInt64(UInt(bitPattern: blob)) | 1 }

    @inline(__always) private static func vacantEntry(epoch: UInt32) -> UInt64 { UInt64(epoch & 0x7FFF_FFFF) << 2 | 2 }

    @inline(__always) private static func blob(_ entry: UInt64) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt(entry & ~3))!
    }

    /// An encoding's whole size: epoch, payload length, payload.
    @inline(__always) private static func size(_ blob: UnsafeRawPointer) -> Int { 8 + Int(blob.load(fromByteOffset: 4, as: UInt32.self)) }

    /// The slot's epoch (see the type's documentation).
    @inline(__always) func epoch(_ slot: Int32) -> UInt32 {
        let entry = entries[Int(slot)]
        if entry & 3 == 1 { return Self.blob(entry).load(as: UInt32.self) }
        return UInt32(truncatingIfNeeded: entry >> 2) & 0x7FFF_FFFF
    }

    @inline(__always) func isCold(_ slot: Int32) -> Bool { entries[Int(slot)] & 3 == 1 }

    // MARK: Lookup, insertion, removal

    /// The id's 32-bit tag (never 0); its low bits pick the home bucket. Kept from 0 by its
    /// top bit, which no index is large enough to read: set in the low bit, as it was, it
    /// made every home bucket odd, and the runs twice as likely to spill into the next
    /// cache line (12 % of lookups against 6 % at 1,000,000 visitors), a line no prefetch
    /// had asked for.
    @inline(__always) func tag(of visitorID: String) -> UInt32 {
        var h = wordHash(visitorID, seed: seed)
        h = (h ^ (h >> 32)) &* 0x9E37_79B9_7F4A_7C15
        return UInt32(truncatingIfNeeded: h >> 32) | 1 << 31
    }

    func slot(of visitorID: String) -> Int32? { slot(of: visitorID, tag: tag(of: visitorID)) }

    @inline(__always) func slot(of visitorID: String, tag: UInt32) -> Int32? {
        TagIndex.find(buckets, mask: bucketMask, tag: tag) { holds(visitorID, slot: Int32(bitPattern: $0)) }.map { Int32(bitPattern: $0) }
    }

    /// Whether the visitor in `slot` (hot or cold) is `visitorID`.
    @inline(__always) private func holds(_ visitorID: String, slot: Int32) -> Bool {
        let entry = entries[Int(slot)]
        switch entry & 3 {
        case 0: return hot[Int(entry >> 33)].visitorID == visitorID
        case 1:
            var reader = ColdReader(Self.blob(entry) + 8)
            return reader.stringEquals(visitorID)
        default: return false
        }
    }

    /// The slot of the first index entry with this tag, or -1: a guess read from the index
    /// alone (no entry, no state), to prefetch by.
    @inline(__always) func candidate(tag: UInt32) -> Int32 {
        TagIndex.find(buckets, mask: bucketMask, tag: tag) { _ in true }.map { Int32(bitPattern: $0) } ?? -1
    }

    /// `slot(of:tag:)`, trying the slot `hint` first (-1: none): when it still holds this
    /// visitor, the index is not read again.
    @inline(__always) func slot(of visitorID: String, tag: UInt32, hint: Int32) -> Int32? {
        withUnsafePointer(to: visitorID) { slot(of: $0, tag: tag, hint: hint) }
    }

    /// `slot(of:tag:hint:)` for the visitor id at `visitorID`, read in place (passed as a
    /// value from an event that lies elsewhere, it was retained and released around the call).
    @inline(__always) func slot(of visitorID: UnsafePointer<String>, tag: UInt32, hint: Int32) -> Int32? {
        if hint >= 0 && Int(hint) < slotCount && holds(visitorID.pointee, slot: hint) { return hint }
        return TagIndex.find(buckets, mask: bucketMask, tag: tag) { holds(visitorID.pointee, slot: Int32(bitPattern: $0)) }.map { Int32(bitPattern: $0) }
    }

    func insert(_ state: consuming VisitorState, tag: UInt32) -> Int32 {
        let slot: Int32
        var epoch: UInt32 = 0
        if let reused = freeSlots.popLast() {
            slot = reused
            epoch = UInt32(truncatingIfNeeded: entries[Int(slot)] >> 2) & 0x7FFF_FFFF
        } else {
            if slotCount == entryCapacity {
                let bigger = Self.allocateWords(entryCapacity * 2)
                bigger.moveInitialize(from: entries, count: slotCount)
                entries.deallocate()
                entries = bigger
                entryCapacity *= 2
            }
            slot = Int32(slotCount)
            slotCount += 1
        }
        entries[Int(slot)] = Self.hotEntry(index: appendHot(consume state, slot: slot), epoch: epoch)
        if (count + 1) * 4 > (bucketMask + 1) * 3 { growIndex() }
        TagIndex.place(buckets, mask: bucketMask, tag: tag, id: UInt32(bitPattern: slot))
        count += 1
        return slot
    }

    private func appendHot(_ state: consuming VisitorState, slot: Int32) -> Int {
        if hotCount == hotCapacity { resizeHot(to: hotCapacity * 2) }
        (hot + hotCount).initialize(to: consume state)
        hot[hotCount].handle = slot
        hotCount += 1
        return hotCount - 1
    }

    /// Room for `capacity` states, on a cache line boundary: a state's stride is a whole
    /// number of lines (448 bytes, 7), so each state spans no more lines than it must. A
    /// region of its own, which grows without copying (see `beckon_region_resize`).
    private static func allocateHot(_ capacity: Int) -> UnsafeMutablePointer<VisitorState> {
        guard let buffer = beckon_region_allocate(hotBytes(capacity)) else { fatalError("out of memory for \(capacity) visitor states") }
        return buffer.bindMemory(to: VisitorState.self, capacity: capacity)
    }

    private static func hotBytes(_ capacity: Int) -> Int { capacity * MemoryLayout<VisitorState>.stride }
    var hotBufferBytes: Int { Self.hotBytes(hotCapacity) }

    /// Room for `count` words of the slot entries or the index, backed by huge pages where
    /// it spans them (both are read at random, one word per visitor looked up).
    private static func allocateWords(_ count: Int) -> UnsafeMutablePointer<UInt64> {
        let words = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
        beckon_advise_huge_pages(words, count * 8)
        return words
    }

    /// The states move with their pages (a bitwise move, which Swift values allow: the
    /// old place is not deinitialised). Only the first `hotCount` are states.
    private func resizeHot(to capacity: Int) {
        precondition(capacity >= hotCount)
        guard let buffer = beckon_region_resize(hot, Self.hotBytes(hotCapacity), Self.hotBytes(capacity)) else {
            fatalError("out of memory for \(capacity) visitor states")
        }
        hot = buffer.bindMemory(to: VisitorState.self, capacity: capacity)
        hotCapacity = capacity
    }

    /// Destroys the hot state at `index` in place (no copy out: 460 bytes each freeze); the
    /// last hot state moves into its place.
    private func removeHot(at index: Int) {
        (hot + index).deinitialize(count: 1)
        hotCount -= 1
        if index != hotCount {
            (hot + index).moveInitialize(from: hot + hotCount, count: 1)
            let moved = Int(hot[index].handle)
            entries[moved] = entries[moved] & ((1 << 33) - 1) | UInt64(index) << 33
        }
    }

    private func growIndex() {
        let old = buckets, oldCount = bucketMask + 1
        buckets = Self.allocateWords(oldCount * 2)
        buckets.initialize(repeating: 0, count: oldCount * 2)
        bucketMask = oldCount * 2 - 1
        for i in 0..<oldCount where old[i] != 0 {
            TagIndex.place(buckets, mask: bucketMask, tag: UInt32(truncatingIfNeeded: old[i] >> 32), id: UInt32(truncatingIfNeeded: old[i]))
        }
        old.deallocate()
    }

    /// The visitor leaves its slot (hot or cold); the slot's epoch is bumped.
    func remove(_ slot: Int32) {
        let entry = entries[Int(slot)]
        let visitorID = entry & 3 == 0 ? hot[Int(entry >> 33)].visitorID : { var r = ColdReader(Self.blob(entry) + 8); return r.string() }()
        let tag = tag(of: visitorID)
        let bucket = UInt64(tag) << 32 | UInt64(UInt32(bitPattern: slot))
        var hole = Int(tag) & bucketMask
        while buckets[hole] != bucket {
            // A run ends at an empty bucket: past it, the visitor is not in the index (its
            // id read back differently from how it was hashed), and the loop would not end.
            precondition(buckets[hole] != 0, "visitor slot \(slot) is missing from the index")
            hole = (hole + 1) & bucketMask
        }
        // Backward shift: move later buckets of the run into the hole when their home
        // allows, so probes never meet a gap inside a run.
        var i = hole
        while true {
            i = (i + 1) & bucketMask
            let next = buckets[i]
            if next == 0 { break }
            let home = Int(truncatingIfNeeded: next >> 32) & bucketMask
            // `next` may move to `hole` when its home is not cyclically within (hole, i].
            if (i - home) & bucketMask >= (i - hole) & bucketMask {
                buckets[hole] = next
                hole = i
            }
        }
        buckets[hole] = 0
        count -= 1
        let epoch = self.epoch(slot)
        if entry & 3 == 0 {
            removeHot(at: Int(entry >> 33))
        } else {
            dropBlob(entry)
        }
        entries[Int(slot)] = Self.vacantEntry(epoch: epoch &+ 1)
        _ = takeSidecar(slot)
        freeSlots.append(slot)
    }

    private func dropBlob(_ entry: UInt64) {
        let blob = Self.blob(entry)
        coldBytes -= Self.size(blob)
        coldCount -= 1
        free(blob)
    }

    // MARK: Hot and cold

    /// A hot visitor's state, to mutate in place. Valid until the next insertion, removal,
    /// freeze or thaw (each may move hot states).
    @inline(__always) func pointer(_ slot: Int32) -> UnsafeMutablePointer<VisitorState> {
        let entry = entries[Int(slot)]
        precondition(entry & 3 == 0, "visitor slot \(slot) is not hot")
        return hot + Int(entry >> 33)
    }

    /// A copy of the visitor's state, hot or cold. A cold one's scores read zero: when
    /// `rescore`, the caller recomputes them.
    func read(_ slot: Int32) -> (state: VisitorState, rescore: Bool) {
        let entry = entries[Int(slot)]
        if entry & 3 == 0 { return (hot[Int(entry >> 33)], false) }
        let cold = Self.decode(entry, slot: slot)
        return (cold.state, cold.scored)
    }

    /// A cold visitor's state and sidecar, decoded; the visitor stays cold. Scores are zero.
    func decode(_ slot: Int32) -> (state: VisitorState, sidecar: Sidecar?) {
        let entry = entries[Int(slot)]
        precondition(entry & 3 == 1, "visitor slot \(slot) is not cold")
        let cold = Self.decode(entry, slot: slot)
        return (cold.state, cold.sidecar)
    }

    /// What a session's end reads of a cold visitor (the head of its compact form).
    func summary(_ slot: Int32) -> ColdSummary {
        let entry = entries[Int(slot)]
        precondition(entry & 3 == 1, "visitor slot \(slot) is not cold")
        var reader = ColdReader(Self.blob(entry) + 8)
        return ColdSummary(&reader)
    }

    /// The compact form of a cold entry, decoded.
    private static func decode(_ entry: UInt64, slot: Int32) -> (state: VisitorState, sidecar: Sidecar?, scored: Bool) {
        var reader = ColdReader(blob(entry) + 8)
        return VisitorState.decode(&reader, handle: slot)
    }

    /// Starts loading a slot's entry into cache (a hint).
    @inline(__always) func prefetchEntry(_ slot: Int32) { beckon_prefetch(entries + Int(slot), 8) }

    /// Starts loading the index bucket where a visitor with `tag` is looked for first, and
    /// the two after it: a run that starts in a line's last two buckets often goes on into
    /// the next line. (Past the last bucket is past the index: a prefetch there is harmless.)
    @inline(__always) func prefetchBucket(tag: UInt32) { beckon_prefetch(buckets + (Int(tag) & bucketMask), 24) }

    /// Starts loading the state (hot) or the compact form (cold) of the visitor in `slot`
    /// (its entry must be in cache by now, or this waits for it).
    @inline(__always) func prefetch(_ slot: Int32) {
        let entry = entries[Int(slot)]
        switch entry & 3 {
        case 0: beckon_prefetch(hot + Int(entry >> 33), MemoryLayout<VisitorState>.size)
        case 1: beckon_prefetch(Self.blob(entry), 128)
        default: break
        }
    }

    /// Moves a hot visitor to its compact form (its sidecar goes inside).
    func freeze(_ slot: Int32) {
        let entry = entries[Int(slot)]
        precondition(entry & 3 == 0, "visitor slot \(slot) is not hot")
        let index = Int(entry >> 33)
        let sidecar = takeSidecar(slot), scored = hot[index].scores != IntentScores(), state = hot + index
        writer.write { VisitorState.encode(state, into: &$0, sidecar: sidecar, scored: scored) }
        entries[Int(slot)] = Self.coldEntry(store(writer.written, epoch: epoch(slot)))
        removeHot(at: index)
    }

    private func store(_ payload: UnsafeRawBufferPointer, epoch: UInt32) -> UnsafeMutableRawPointer {
        let blob = malloc(8 + payload.count)!
        blob.storeBytes(of: epoch, as: UInt32.self)
        blob.storeBytes(of: UInt32(payload.count), toByteOffset: 4, as: UInt32.self)
        (blob + 8).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        coldBytes += 8 + payload.count
        coldCount += 1
        return blob
    }

    /// Moves a cold visitor back into the hot buffer. Its scores read zero: when `scored`,
    /// the caller recomputes them.
    func thaw(_ slot: Int32) -> (state: UnsafeMutablePointer<VisitorState>, scored: Bool) {
        let entry = entries[Int(slot)]
        precondition(entry & 3 == 1, "visitor slot \(slot) is not cold")
        let epoch = self.epoch(slot)
        let (state, sidecar, scored) = Self.decode(entry, slot: slot)
        dropBlob(entry)
        let index = appendHot(consume state, slot: slot)
        entries[Int(slot)] = Self.hotEntry(index: index, epoch: epoch)
        if let sidecar {
            sidecars[slot] = sidecar
            markSidecar(slot, true)
        }
        return (hot + index, scored)
    }

    /// Freezes every hot visitor whose latest event is at or before `cutoff` (a held event
    /// or a rule wake-up thaws it when due); gives back hot memory
    /// left unused. Returns how many it froze.
    func freezeIdle(lastEventAtOrBefore cutoff: EventTime) -> Int {
        // First which, then the freezes: a freeze reads the whole state, which has been idle
        // long enough to be out of cache, so the states a few freezes ahead are loaded while
        // this one is encoded (at 100,000 visitors the freezes waited on memory for most of
        // their time). Downwards: a freeze moves the last hot state into its place, and the
        // last is never one still to freeze (those are all below).
        // (Only where the states outgrow the cache, as for held events: 16,384 states are 7 MB.)
        let stride = MemoryLayout<VisitorState>.stride, prefetching = hotCount > 16_384
        freezeList.removeAll(keepingCapacity: true)
        var i = hotCount - 1
        while i >= 0 {
            if hot[i].lastEventTime <= cutoff { freezeList.append(Int32(i)) }
            i -= 1
        }
        let frozen = freezeList.count
        for k in 0..<frozen {
            if prefetching {
                if k + 2 < frozen { beckon_prefetch(hot + Int(freezeList[k + 2]), stride) }
                // The next one's slot entry (its state, loaded a freeze ago, names its slot):
                // a freeze starts by reading it, and at 1,000,000 visitors waited there for
                // most of its own time.
                if k + 1 < frozen { prefetchEntry(hot[Int(freezeList[k + 1])].handle) }
                // The state that moves into the next one's place; and the slot entry of the
                // one that moves into this one's (rewritten at the end of this freeze).
                if hotCount >= 2 { beckon_prefetch(hot + (hotCount - 2), stride) }
                prefetchEntry(hot[hotCount - 1].handle)
            }
            freeze(hot[Int(freezeList[k])].handle)
        }
        if hotCapacity > Self.minimumHotCapacity && hotCount * 4 < hotCapacity {
            resizeHot(to: max(Self.minimumHotCapacity, hotCount * 2))
        }
        if sidecars.capacity > 64 && sidecars.count * 4 < sidecars.capacity {
            var smaller = [Int32: Sidecar](minimumCapacity: sidecars.count)
            for (slot, sidecar) in sidecars { smaller[slot] = sidecar }
            sidecars = smaller
        }
        return frozen
    }

    @inline(__always) func sidecar(_ slot: Int32) -> Sidecar? { hasSidecar(slot) ? sidecars[slot] : nil }

    func updateSidecar(_ slot: Int32, _ body: (inout Sidecar) -> Void) {
        markSidecar(slot, true)
        body(&sidecars[slot, default: Sidecar()])
    }

    /// Whether rule `i` (64 or more) held at the visitor's last evaluation. Out of line, with
    /// the setter: a closure inside the rule loop made it allocate a context per rule.
    @inline(never) func held(rule i: Int, slot: Int32) -> Bool {
        sidecar(slot)?.heldBeyond64.contains(i - 64) == true
    }

    @inline(never) func setHeld(rule i: Int, _ value: Bool, slot: Int32) {
        updateSidecar(slot) { $0.heldBeyond64.set(i - 64, value) }
    }

    /// Removes the visitor's sidecar, if it has one, and returns it.
    private func takeSidecar(_ slot: Int32) -> Sidecar? {
        guard hasSidecar(slot) else { return nil }
        markSidecar(slot, false)
        return sidecars.removeValue(forKey: slot)
    }

    @inline(__always) private func hasSidecar(_ slot: Int32) -> Bool {
        let word = Int(slot) >> 6
        return word < sidecarBits.count && sidecarBits[word] & (1 << UInt64(slot & 63)) != 0
    }

    private func markSidecar(_ slot: Int32, _ present: Bool) {
        let word = Int(slot) >> 6
        if word >= sidecarBits.count {
            guard present else { return }
            sidecarBits += repeatElement(0, count: max(word + 1, sidecarBits.count * 2) - sidecarBits.count)
        }
        if present { sidecarBits[word] |= 1 << UInt64(slot & 63) } else { sidecarBits[word] &= ~(1 << UInt64(slot & 63)) }
    }

    /// Every resident visitor's state and sidecar, to mutate in place (a cold one is
    /// decoded, and encoded again afterwards: it stays cold).
    func forEachResident(_ body: (UnsafeMutablePointer<VisitorState>, inout Sidecar?) -> Void) {
        for slot in 0..<Int32(slotCount) {
            let entry = entries[Int(slot)]
            switch entry & 3 {
            case 0:
                var sidecar = self.sidecar(slot)
                body(hot + Int(entry >> 33), &sidecar)
                if let sidecar { updateSidecar(slot) { $0 = sidecar } } else { _ = takeSidecar(slot) }
            case 1:
                var reader = ColdReader(Self.blob(entry) + 8)
                var (state, sidecar, scored) = VisitorState.decode(&reader, handle: slot)
                body(&state, &sidecar)
                let epoch = self.epoch(slot)
                dropBlob(entry)
                writer.write { state.encode(into: &$0, sidecar: sidecar, scored: scored) }
                entries[Int(slot)] = Self.coldEntry(store(writer.written, epoch: epoch))
            default:
                continue
            }
        }
    }
}
