import CBeckonSIMD
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The compact form of an idle visitor's state: only the fields that differ from their
/// defaults, as varints, times relative to the visitor's latest event. About a fifth of
/// the inline `VisitorState`; `VisitorTable` keeps idle visitors in it (see `freeze`).
///
/// Optional fields are announced by flag bits, eight to a byte, each flag byte placed in
/// the stream where its first flag is written, so writer and reader meet them at the same
/// point. Intent scores are not kept: they are a function of the rest, recomputed when the
/// visitor is thawed (a flag says whether they had been computed at all).
struct ColdWriter {
    /// Owns the bytes, a buffer reused from one encoding to the next (an `Array` checked
    /// uniqueness and capacity on every byte; encoding was half the cost of a freeze).
    /// Not shared: each `VisitorTable` (and each copy of one) has its own writer.
    private final class Buffer {
        var base = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 8)
        deinit { base.deallocate() }
    }

    private let buffer = Buffer()
    /// `buffer.base` and its size, kept here too: each byte written then reads the writer
    /// alone, not the writer and then the object it points to.
    private var base: UnsafeMutableRawPointer
    private var capacity = 512
    private(set) var count = 0
    private var flagAt = 0
    private var flagBit: UInt8 = 8
    /// A write did not fit, and was left out: `write` grows the buffer and starts again.
    /// Writes never grow the buffer themselves, so an encoder that copies the writer into
    /// a local (`VisitorState.encode`) can keep its fields in registers: with a call to
    /// grow on every write's slow path, the compiler kept them in memory, and each flag
    /// loaded and stored three of them (about 16 instructions). Encoders it does not
    /// inline (the features', the windows') still take the writer through memory.
    private(set) var overflowed = false

    init() { base = buffer.base }

    /// The bytes written since the last `reset`, valid until the next write.
    var written: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    var bytes: [UInt8] { Array(written) }

    mutating func reset() {
        count = 0
        flagBit = 8
        flagAt = 0
        overflowed = false
    }

    /// Resets, runs `body`, and when something did not fit, grows the buffer and runs it again.
    @inline(__always) mutating func write(_ body: (inout ColdWriter) -> Void) {
        reset()
        body(&self)
        while overflowed {
            grow()
            reset()
            body(&self)
        }
    }

    /// Whether `n` more bytes fit; if not, marks the writer overflowed.
    @inline(__always) private mutating func room(_ n: Int) -> Bool {
        if count &+ n <= capacity { return true }
        overflowed = true
        return false
    }

    @inline(never) private mutating func grow() {
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 8)
        base.deallocate()
        buffer.base = bigger
        base = bigger
        capacity *= 2
    }

    // Counts stay far below Int.max (a state is hundreds of bytes): no overflow checks.
    // Every write stays inside the buffer, overflowed or not (the flag byte's place too: it
    // is 0 or a place written before), so an overflowed pass is only wasted, never harmful.
    @inline(__always) private mutating func append(_ b: UInt8) {
        base.storeBytes(of: b, toByteOffset: count, as: UInt8.self)
        count &+= 1
    }

    /// Records whether an optional field follows, and returns it.
    @inline(__always) @discardableResult mutating func flag(_ present: Bool) -> Bool {
        if flagBit == 8 {
            if room(1) {
                flagAt = count
                append(0)
            }
            flagBit = 0
        }
        if present { base.storeBytes(of: base.load(fromByteOffset: flagAt, as: UInt8.self) | 1 << flagBit, toByteOffset: flagAt, as: UInt8.self) }
        flagBit &+= 1
        return present
    }

    @inline(__always) mutating func byte(_ b: UInt8) {
        guard room(1) else { return }
        append(b)
    }

    @inline(__always) mutating func unsigned(_ value: UInt64) {
        guard room(10) else { return }
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }

    /// Zigzag: small magnitudes of either sign take few bytes.
    @inline(__always) mutating func signed(_ value: Int64) { unsigned(Self.zigzag(value)) }

    static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }

    /// Raw bytes, as they are (no length).
    @inline(__always) mutating func bytes(_ raw: UnsafeRawBufferPointer) {
        guard room(raw.count) else { return }
        if let source = raw.baseAddress { (base + count).copyMemory(from: source, byteCount: raw.count) }
        count &+= raw.count
    }

    @inline(__always) mutating func fixed32(_ value: UInt32) {
        guard room(4) else { return }
        base.storeBytes(of: value.littleEndian, toByteOffset: count, as: UInt32.self)
        count &+= 4
    }

    /// Its length, then its UTF-8 bytes; a UUID in canonical form (see `PackedUUID`) as
    /// its 16 bytes. The header is the length × 2, or `PackedUUID`'s odd marker. The
    /// copy's closure holds the destination, not the writer, so the writer does not escape
    /// into `withCString`.
    @inline(__always) mutating func string(_ s: String) {
        let n = s.utf8.count
        guard room(n &+ 10) else { return }
        let destination = base + count
        if n == PackedUUID.textCount {
            let marker = s.withBytes { PackedUUID.pack($0, into: destination + 1) }
            if marker != 0 {
                append(marker)
                count &+= PackedUUID.byteCount
                return
            }
        }
        unsigned(UInt64(n) << 1)
        let text = base + count
        s.withBytes { utf8 in if let source = utf8.baseAddress { text.copyMemory(from: source, byteCount: n) } }
        count &+= n
    }

    // Optional fields: a flag, and the value only when it is not the default.

    @inline(__always) mutating func number<T: FixedWidthInteger>(_ value: T, default d: T = 0) {
        if flag(value != d) { signed(Int64(truncatingIfNeeded: value)) }
    }

    @inline(__always) mutating func time(_ t: EventTime, default d: EventTime, base: Int64) {
        if flag(t != d) { signed(t.milliseconds &- base) }
    }

    @inline(__always) mutating func tick(_ t: Tick, default d: Tick, base: Tick) {
        if flag(t != d) { signed(Int64(t.value) - Int64(base.value)) }
    }

    @inline(__always) mutating func hash(_ value: UInt32) {
        if flag(value != 0) { fixed32(value) }
    }

    mutating func float(_ f: Float) {
        if flag(f.bitPattern != 0) { fixed32(f.bitPattern) }
    }
}

/// Reads what `ColdWriter` wrote, in the same order.
struct ColdReader {
    private let base: UnsafeRawPointer
    private(set) var offset = 0
    private var flags: UInt8 = 0
    private var flagBit: UInt8 = 8

    init(_ base: UnsafeRawPointer) { self.base = base }

    @inline(__always) mutating func flag() -> Bool {
        if flagBit == 8 {
            flags = byte()
            flagBit = 0
        }
        defer { flagBit += 1 }
        return flags & (1 << flagBit) != 0
    }

    @inline(__always) mutating func byte() -> UInt8 {
        defer { offset += 1 }
        return base.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inline(__always) mutating func unsigned() -> UInt64 {
        var value: UInt64 = 0, shift: UInt64 = 0
        while true {
            let b = byte()
            value |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return value }
            shift += 7
        }
    }

    @inline(__always) mutating func signed() -> Int64 { Self.unzigzag(unsigned()) }

    static func unzigzag(_ u: UInt64) -> Int64 { Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1))) }

    mutating func fixed32() -> UInt32 {
        var value: UInt32 = 0
        for shift in stride(from: 0, to: 32, by: 8) { value |= UInt32(byte()) << UInt32(shift) }
        return value
    }

    mutating func string() -> String {
        withStringBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the UTF-8 bytes of the string at the reader's position (where they
    /// lie, or unpacked on the stack), and moves past it.
    mutating func withStringBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        let header = unsigned()
        if header & 1 == 0 {
            let count = Int(header >> 1)
            defer { offset += count }
            return body(UnsafeRawBufferPointer(start: base + offset, count: count))
        }
        defer { offset += PackedUUID.byteCount }
        return withUnsafeTemporaryAllocation(byteCount: PackedUUID.textCount, alignment: 1) { text in
            PackedUUID.unpack(base + offset, marker: UInt8(truncatingIfNeeded: header), into: text.baseAddress!)
            return body(UnsafeRawBufferPointer(text))
        }
    }

    /// Moves past the string at the reader's position.
    mutating func skipString() {
        let header = unsigned()
        offset += header & 1 == 0 ? Int(header >> 1) : PackedUUID.byteCount
    }

    /// Whether the string at the reader's position is `s`, byte for byte (and moves past it).
    mutating func stringEquals(_ s: String) -> Bool {
        withStringBytes { stored in
            s.withBytes { utf8 in
                utf8.count == stored.count && (stored.count == 0 || memcmp(utf8.baseAddress!, stored.baseAddress!, stored.count) == 0)
            }
        }
    }

    @inline(__always) mutating func number<T: FixedWidthInteger>(default d: T = 0) -> T {
        flag() ? T(truncatingIfNeeded: signed()) : d
    }

    @inline(__always) mutating func time(default d: EventTime, base: Int64) -> EventTime {
        flag() ? EventTime(milliseconds: base &+ signed()) : d
    }

    @inline(__always) mutating func tick(default d: Tick, base: Tick) -> Tick {
        flag() ? Tick(value: Int32(truncatingIfNeeded: Int64(base.value) + signed())) : d
    }

    mutating func hash() -> UInt32 { flag() ? fixed32() : 0 }

    mutating func float() -> Float { flag() ? Float(bitPattern: fixed32()) : 0 }
}

extension VisitorState {
    /// Writes the state and its sidecar; the visitor id comes first (`ColdReader.stringEquals`).
    /// `scored`: whether the scores have been computed (they are not until the first event
    /// is applied).
    func encode(into w: inout ColdWriter, sidecar: VisitorTable.Sidecar?, scored: Bool) {
        withUnsafePointer(to: self) { Self.encode($0, into: &w, sidecar: sidecar, scored: scored) }
    }

    /// `encode`, reading the state where it lies: a method called on a state in the hot
    /// buffer, with the table's writer `inout`, copied the whole state first (and released
    /// the copy after), about 300 instructions a freeze.
    static func encode(_ v: UnsafePointer<VisitorState>, into out: inout ColdWriter, sidecar: VisitorTable.Sidecar?, scored: Bool) {
        // Written through a local copy, whose fields can stay in registers between the
        // calls the compiler does not inline (see `ColdWriter.overflowed`).
        var w = out
        defer { out = w }
        // First what a session's end reads (see `ColdSummary`): the rest need not be decoded
        // to evict a frozen visitor.
        w.string(v.pointee.visitorID)
        w.signed(v.pointee.lastEventTime.milliseconds)
        let base = v.pointee.lastEventTime.milliseconds, tick = Tick(v.pointee.lastEventTime)
        w.number(v.pointee.pendingWakes)
        w.time(v.pointee.latestWake, default: .unset, base: base)
        w.number(v.pointee.sessionPosition, default: -1)
        w.number(v.pointee.pageID)
        w.number(v.pointee.features.visits, default: 1)
        if w.flag(sidecar != nil), let sidecar {
            if w.flag(sidecar.userID != nil) { w.string(sidecar.userID!) }
            if w.flag(sidecar.channel != nil) { w.string(sidecar.channel!) }
            sidecar.prompts.encode(into: &w, base: base)
            if w.flag(!sidecar.heldBeyond64.isEmpty) { sidecar.heldBeyond64.encode(into: &w) }
        }
        v.pointee.features.encode(into: &w, base: tick)
        w.number(v.pointee.channel)
        w.time(v.pointee.pageSince, default: Self.noPageSince, base: base)
        w.string(v.pointee.pageEventID)
        w.time(v.pointee.lastPageTime, default: Self.noPageTime, base: base)
        w.unsigned(v.pointee.heldRules)
        w.time(v.pointee.nextWake, default: .unset, base: base)
        if w.flag(!v.pointee.counters.isEmpty) {
            w.unsigned(UInt64(v.pointee.counters.count))
            // `.min` (an empty place) as 0, a tick as 1 + its zigzag distance from the base.
            for c in v.pointee.counters { w.unsigned(c == .min ? 0 : 1 + ColdWriter.zigzag(Int64(c) - Int64(tick.value))) }
        }
        w.hash(v.pointee.pageHash)
        w.hash(v.pointee.lastPageID)
        v.pointee.recentEventIDs.encode(into: &w)
        w.byte(UInt8(v.pointee.pageClass.ordinal))
        w.flag(v.pointee.sessionTimerPending)
        w.flag(scored)
    }

    /// Reads what `encode` wrote. The scores are left at zero: `scored` says whether the
    /// caller must recompute them.
    static func decode(_ r: inout ColdReader, handle: Int32) -> (state: VisitorState, sidecar: VisitorTable.Sidecar?, scored: Bool) {
        let visitorID = r.string()
        let header = ColdSummary.Header(&r)
        let base = header.lastEventTime.milliseconds, tick = Tick(header.lastEventTime)
        let sidecar = r.flag() ? VisitorTable.Sidecar(from: &r, base: base) : nil
        var features = VisitorFeatures(from: &r, base: tick)
        features.visits = header.visits
        let channel: UInt16 = r.number()
        let pageSince = r.time(default: noPageSince, base: base)
        var v = VisitorState(visitorID: visitorID, lastEventTime: header.lastEventTime, pageSince: pageSince, pageEventID: r.string())
        v.features = features
        v.channel = channel
        v.pendingWakes = header.pendingWakes
        v.latestWake = header.latestWake
        v.sessionPosition = header.sessionPosition
        v.pageID = header.pageID
        v.lastPageTime = r.time(default: noPageTime, base: base)
        v.heldRules = r.unsigned()
        v.nextWake = r.time(default: .unset, base: base)
        if r.flag() {
            v.counters = (0..<Int(r.unsigned())).map { _ in
                let u = r.unsigned()
                return u == 0 ? .min : Int32(truncatingIfNeeded: Int64(tick.value) + ColdReader.unzigzag(u - 1))
            }
        }
        v.pageHash = r.hash()
        v.lastPageID = r.hash()
        v.recentEventIDs = RecentEventIDs(from: &r)
        v.pageClass = PageClass.allCases[Int(r.byte())]
        v.sessionTimerPending = r.flag()
        let scored = r.flag()
        v.handle = handle
        return (v, sidecar, scored)
    }
}

extension VisitorTable.Sidecar {
    init(from r: inout ColdReader, base: Int64) {
        self.init()
        if r.flag() { userID = r.string() }
        if r.flag() { channel = r.string() }
        prompts = PromptMemory(from: &r, base: base)
        if r.flag() { heldBeyond64 = RuleBits(from: &r) }
    }
}

/// What a session's end needs of a frozen visitor, read from the head of its compact form
/// without decoding the rest (a full decode cost about 4,000 instructions, and most
/// visitors are frozen by the time their session ends).
struct ColdSummary {
    /// The fields `VisitorState.encode` writes right after the visitor id.
    struct Header {
        var lastEventTime: EventTime
        var pendingWakes: UInt16
        var latestWake: EventTime
        var sessionPosition: Int64
        var pageID: UInt32
        var visits: UInt16

        /// The same fields of a hot state.
        @inline(__always) init(_ v: borrowing VisitorState) {
            lastEventTime = v.lastEventTime
            pendingWakes = v.pendingWakes
            latestWake = v.latestWake
            sessionPosition = v.sessionPosition
            pageID = v.pageID
            visits = v.features.visits
        }

        @inline(__always) init(_ r: inout ColdReader) {
            lastEventTime = EventTime(milliseconds: r.signed())
            pendingWakes = r.number()
            latestWake = r.time(default: .unset, base: lastEventTime.milliseconds)
            sessionPosition = r.number(default: -1)
            pageID = r.number()
            visits = r.number(default: 1)
        }
    }

    let header: Header
    /// Positioned at the visitor id.
    private let id: ColdReader
    /// Positioned after the head, at the sidecar's flag.
    private let rest: ColdReader

    /// Reads the head only: most session-end checks find the session still going (or a
    /// wake-up pending) and need nothing else. Valid while the compact form is (until the
    /// table changes).
    init(_ r: inout ColdReader) {
        id = r
        r.skipString()
        header = Header(&r)
        rest = r
    }

    /// `fnv64` of the visitor id.
    var visitorHash: UInt64 {
        var r = id
        return r.withStringBytes { fnv64($0) }
    }

    /// The prompt memory, if the visitor has a sidecar.
    func prompts() -> PromptMemory? {
        var r = rest
        return r.flag() ? VisitorTable.Sidecar(from: &r, base: header.lastEventTime.milliseconds).prompts : nil
    }
}

/// A UUID in canonical text form (`8-4-4-4-12` hex digits, the letters all lower case or
/// all upper case) as its 16 bytes, and back (`beckon_uuid_pack`, in C: SSE2 steps of 16
/// digits, or a table lookup per digit without SSE2).
/// Trackers mostly name visitors and events by UUIDs; a visitor in compact form keeps two
/// of them (its id and the event id of the page view it is on), 17 bytes each this way
/// instead of 37.
enum PackedUUID {
    static let textCount = 36
    static let byteCount = 16

    /// Packs `text` into `out` (16 bytes) and returns the string header that says so: 1
    /// (lower case letters or none) or 3 (upper case). 0 when `text` is not a UUID in
    /// canonical form; `out` may then hold anything.
    @inline(__always) static func pack(_ text: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableRawPointer) -> UInt8 {
        guard text.count == textCount, let p = text.baseAddress else { return 0 }
        return beckon_uuid_pack(p, out.assumingMemoryBound(to: UInt8.self))
    }

    /// Writes the 36 characters that `pack` read (`marker` is the header it returned).
    @inline(__always) static func unpack(_ bytes: UnsafeRawPointer, marker: UInt8, into text: UnsafeMutableRawPointer) {
        beckon_uuid_unpack(bytes.assumingMemoryBound(to: UInt8.self), marker, text.assumingMemoryBound(to: UInt8.self))
    }
}

extension VisitorFeatures {
    func encode(into w: inout ColdWriter, base: Tick) {
        // Class views: a mask of the non-zero classes, then their counts.
        // The mask from the 16 counts as two words, without a loop (indexing the vector by a
        // variable stored it to the stack and read it back, 16 times).
        let low = classViews.lowHalf, high = classViews.highHalf
        let lowWord = unsafeBitCast(low, to: UInt64.self), highWord = unsafeBitCast(high, to: UInt64.self)
        let mask = Self.nonZeroBytes(lowWord) | Self.nonZeroBytes(highWord) << 8
        w.number(mask)
        var rest = mask
        while rest != 0 {
            let i = rest.trailingZeroBitCount
            w.byte(UInt8(truncatingIfNeeded: (i < 8 ? lowWord : highWord) >> UInt64(8 * (i & 7))))
            rest &= rest &- 1
        }
        w.number(cartCents)
        recentPages.encode(into: &w, base: base)
        recentCategories.encode(into: &w, base: base)
        formErrors.encode(into: &w, base: base)
        clicks.encode(into: &w, base: base)
        scrolls.encode(into: &w, base: base)
        priceHovers.encode(into: &w, base: base)
        chats.encode(into: &w, base: base)
        w.tick(sessionStart, default: Tick(value: .max), base: base)
        w.tick(lastCartChange, default: .never, base: base)
        w.tick(lastCheckoutProgress, default: .never, base: base)
        w.tick(checkoutStepSince, default: .never, base: base)
        w.tick(lastExitIntent, default: .never, base: base)
        w.float(lastSentiment)
        w.tick(lastSentimentAt, default: .never, base: base)
        w.float(minSentiment)
        w.number(sessionEvents)
        // `visits` is written with the state's head (`ColdSummary.Header`).
        w.number(pageViews)
        w.number(cartItems)
        w.number(formErrorsSession)
        w.number(priceHoversSession)
        w.number(checkoutStep)
        w.flag(purchased)
        w.number(searches)
        w.number(zeroResultSearches)
        w.number(exitIntents)
        w.number(chatMessages)
        w.number(negativeMessages)
        w.number(offersShown)
        w.number(offersAccepted)
        w.number(offersDismissed)
    }

    /// A bit per byte of `x` that is not zero (bit i for byte i, the lowest first).
    static func nonZeroBytes(_ x: UInt64) -> UInt16 {
        var t = x | x >> 4
        t |= t >> 2
        t |= t >> 1
        // The low bit of each byte, gathered into the top byte by one multiplication.
        return UInt16(((t & 0x0101_0101_0101_0101) &* 0x0102_0408_1020_4080) >> 56)
    }

    init(from r: inout ColdReader, base: Tick) {
        self.init()
        let mask: UInt16 = r.number()
        for i in 0..<16 where mask & (1 << UInt16(i)) != 0 { classViews[i] = r.byte() }
        cartCents = r.number()
        recentPages = Recent4(from: &r, base: base)
        recentCategories = Recent4(from: &r, base: base)
        formErrors = Recent4(from: &r, base: base)
        clicks = Recent4(from: &r, base: base)
        scrolls = Recent4(from: &r, base: base)
        priceHovers = Recent4(from: &r, base: base)
        chats = Recent4(from: &r, base: base)
        sessionStart = r.tick(default: Tick(value: .max), base: base)
        lastCartChange = r.tick(default: .never, base: base)
        lastCheckoutProgress = r.tick(default: .never, base: base)
        checkoutStepSince = r.tick(default: .never, base: base)
        lastExitIntent = r.tick(default: .never, base: base)
        lastSentiment = r.float()
        lastSentimentAt = r.tick(default: .never, base: base)
        minSentiment = r.float()
        sessionEvents = r.number()
        pageViews = r.number()
        cartItems = r.number()
        formErrorsSession = r.number()
        priceHoversSession = r.number()
        checkoutStep = r.number()
        purchased = r.flag()
        searches = r.number()
        zeroResultSearches = r.number()
        exitIntents = r.number()
        chatMessages = r.number()
        negativeMessages = r.number()
        offersShown = r.number()
        offersAccepted = r.number()
        offersDismissed = r.number()
    }
}

extension PromptMemory {
    func encode(into w: inout ColdWriter, base: Int64) {
        w.time(lastPrompt, default: PromptMemory().lastPrompt, base: base)
        w.number(session)
        w.number(today)
        w.number(day, default: -1)
        w.number(dismissed.0, default: .min)
        w.number(dismissed.1, default: .min)
        w.number(dismissed.2, default: .min)
        w.unsigned(UInt64(lastByRule.count))
        for i in 0..<lastByRule.count {
            let entry = lastByRule[i]
            w.fixed32(entry.rule)
            w.signed(entry.time &- base)
        }
        w.unsigned(UInt64(recent.count))
        for i in 0..<recent.count {
            let entry = recent[i]
            w.fixed32(entry.decision)
            w.byte(entry.action)
        }
    }

    init(from r: inout ColdReader, base: Int64) {
        self.init()
        lastPrompt = r.time(default: lastPrompt, base: base)
        session = r.number()
        today = r.number()
        day = r.number(default: -1)
        dismissed = (r.number(default: .min), r.number(default: .min), r.number(default: .min))
        for _ in 0..<Int(r.unsigned()) {
            let rule = r.fixed32()
            lastByRule.append(rule: rule, time: base &+ r.signed())
        }
        for _ in 0..<Int(r.unsigned()) {
            let decision = r.fixed32()
            recent.append(decision: decision, action: r.byte())
        }
    }
}
