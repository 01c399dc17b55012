/// What the engine knows of one page path: its class, the first 64 of the rule set's path
/// tests it passes (a bit each; the rest, rare, stay in the table: `PageTable.passes`), the
/// rules whose page this is, and its 32-bit hash (`VisitorFeatures.hash32`). Holds no
/// reference, so reading one from the table (a few times per event) retains and releases
/// nothing.
struct PageInfo: Sendable {
    var pageClass: PageClass
    var pathBits: UInt64
    var hash: UInt32
    /// The rules (of the first 64) that need a path test this page passes, a bit each: the
    /// union of `rulesByPath` over `pathBits` (see `PartitionProcessor.rulesByPath`), so that
    /// screening the rules for an event reads one word, not a word per passed test.
    var rules: UInt64 = 0

    static let none = PageInfo(pageClass: .other, pathBits: 0, hash: 0)

    /// The info of `path`, and its results of the path tests past the 64th (nil if none).
    /// `rulesByPath[i]`: the rules that need path test i (any count; tests past it name none).
    static func of(_ path: String, classes: PageClassifier, tests: [PathTest], rulesByPath: [UInt64]) -> (PageInfo, morePathTests: [Bool]?) {
        var bits: UInt64 = 0
        for (i, test) in tests.prefix(64).enumerated() where test.matches(path) { bits |= 1 << UInt64(i) }
        let more = tests.count > 64 ? tests.dropFirst(64).map { $0.matches(path) } : nil
        var rules: UInt64 = 0
        var rest = bits
        while rest != 0 {
            let i = rest.trailingZeroBitCount
            if i < rulesByPath.count { rules |= rulesByPath[i] }
            rest &= rest &- 1
        }
        return (PageInfo(pageClass: classes.classify(path), pathBits: bits, hash: VisitorFeatures.hash32(path), rules: rules), more)
    }
}

/// The page paths of one partition, interned: a visitor's current page and a held page
/// event keep a 4-byte id instead of a `String`, and a path is classified and tested
/// against the rules once, not per visitor.
///
/// Id 0 is "no page". An id stays valid while something holds a reference to it
/// (`retain` / `release`); unreferenced paths stay cached until the table reaches
/// `limit`, and are then reclaimed, so a stream of distinct paths (search URLs,
/// product ids) does not grow it without bound.
struct PageTable: Sendable {
    struct Entry: Sendable {
        var path: String
        var info: PageInfo
        var morePathTests: [Bool]?
        var refs: Int32
    }

    /// Open addressing over the ids: per bucket the path's 32-bit tag and its id (0: empty).
    /// Cheaper than a `[String: UInt32]`, which hashes each path with SipHash.
    private var buckets = [UInt64](repeating: 0, count: 64)
    /// Place 0, "no page", is taken first and never released.
    private var entries: Slab<Entry> = {
        var slab = Slab<Entry>()
        _ = slab.insert(Entry(path: "", info: .none, morePathTests: nil, refs: 1))
        return slab
    }()
    let limit: Int

    init(limit: Int = 50_000) { self.limit = limit }

    /// Paths known (referenced or cached).
    private(set) var count = 0

    @inline(__always) private static func tag(_ path: String) -> UInt32 {
        let h = wordHash(path)
        // Kept from 0 by the top bit, not the low one, which picks the home bucket
        // (see `VisitorTable.tag(of:)`).
        return UInt32(truncatingIfNeeded: h ^ (h >> 32)) | 1 << 31
    }

    /// The id of `path`, making an entry with `info(path)` (its info, and its results of
    /// the path tests past the 64th) if it has none. The id is not retained: retain it
    /// before the next `intern`, which may reclaim unreferenced ids.
    @inline(__always) mutating func intern(_ path: String, info: (String) -> (PageInfo, morePathTests: [Bool]?)) -> UInt32 {
        withUnsafePointer(to: path) { intern(at: $0, info: info) }
    }

    /// `intern` for the path at `path`, read in place (a page event's, where it lies in its
    /// batch: passed as a value, it was retained and released around the call).
    @inline(__always) mutating func intern(at path: UnsafePointer<String>, info: (String) -> (PageInfo, morePathTests: [Bool]?)) -> UInt32 {
        let tag = Self.tag(path.pointee)
        let found = buckets.withUnsafeBufferPointer { b in
            TagIndex.find(b.baseAddress!, mask: b.count - 1, tag: tag) { entries[Int32($0)].path == path.pointee }
        }
        if let found { return found }
        return add(path.pointee, info(path.pointee), tag: tag)
    }

    private mutating func add(_ path: String, _ info: (PageInfo, morePathTests: [Bool]?), tag: UInt32) -> UInt32 {
        if count >= limit { reclaim() }
        let id = UInt32(entries.insert(Entry(path: path, info: info.0, morePathTests: info.morePathTests, refs: 0)))
        count += 1
        if count * 2 > buckets.count { rebuildIndex(capacity: buckets.count * 2) } else { place(tag: tag, id: id) }
        return id
    }

    private mutating func place(tag: UInt32, id: UInt32) {
        buckets.withUnsafeMutableBufferPointer { TagIndex.place($0.baseAddress!, mask: $0.count - 1, tag: tag, id: id) }
    }

    private mutating func rebuildIndex(capacity: Int) {
        buckets = [UInt64](repeating: 0, count: capacity)
        for id in Int32(1)..<Int32(entries.items.count) where !entries[id].path.isEmpty {
            place(tag: Self.tag(entries[id].path), id: UInt32(id))
        }
    }

    /// Forgets every path no visitor or held event refers to.
    private mutating func reclaim() {
        for id in Int32(1)..<Int32(entries.items.count) where entries[id].refs == 0 && !entries[id].path.isEmpty {
            entries[id] = Entry(path: "", info: .none, morePathTests: nil, refs: 0)
            entries.release(id)
            count -= 1
        }
        rebuildIndex(capacity: buckets.count)
    }

    @inline(__always) mutating func retain(_ id: UInt32) {
        if id != 0 { entries[Int32(id)].refs += 1 }
    }

    @inline(__always) mutating func release(_ id: UInt32) {
        if id != 0 { entries[Int32(id)].refs -= 1 }
    }

    @inline(__always) subscript(id: UInt32) -> PageInfo { entries[Int32(id)].info }

    /// Whether the path of `id` passes path test `test` (any index; the first 64 are in
    /// its info's `pathBits`).
    func passes(_ id: UInt32, test: Int) -> Bool {
        if test < 64 { return entries[Int32(id)].info.pathBits >> UInt64(test) & 1 != 0 }
        guard let more = entries[Int32(id)].morePathTests, test - 64 < more.count else { return false }
        return more[test - 64]
    }

    /// The path of `id`; nil for 0.
    func path(_ id: UInt32) -> String? { id == 0 ? nil : entries[Int32(id)].path }

    /// Recomputes every entry's info (the rules' path tests changed).
    mutating func refresh(_ info: (String) -> (PageInfo, morePathTests: [Bool]?)) {
        for id in Int32(1)..<Int32(entries.items.count) where !entries[id].path.isEmpty {
            (entries[id].info, entries[id].morePathTests) = info(entries[id].path)
        }
    }

    /// References held, over all ids (for tests: equals the visitors on a page plus the
    /// held page events).
    var references: Int { entries.items.dropFirst().reduce(0) { $0 + Int($1.refs) } }
}

/// The channel names of a partition ("web", "app", …), interned: a visitor keeps a 2-byte
/// id. Channels are few; should a tracker send more than 65,535 distinct ones, the rest
/// get id 0 and their name is kept in the visitor's sidecar.
struct ChannelTable: Sendable {
    private var ids: [String: UInt16] = [:]
    private(set) var names: [String] = [""]
    let limit: Int

    init(limit: Int = Int(UInt16.max)) { self.limit = min(limit, Int(UInt16.max)) }

    /// The id of `name`, 0 when the table is full.
    mutating func id(_ name: String) -> UInt16 {
        // Asked for every new visitor. Most partitions see a handful of channels: comparing
        // with the first few names costs less than hashing the name for the dictionary
        // (about 380 instructions).
        for i in 1..<min(names.count, 5) where names[i] == name { return UInt16(i) }
        if let id = ids[name] { return id }
        guard names.count <= limit else { return 0 }
        let id = UInt16(names.count)
        names.append(name)
        ids[name] = id
        return id
    }

    @inline(__always) subscript(id: UInt16) -> String { names[Int(id)] }

    /// Whether `name` is the name of `id`, compared in place (reading the name out of the
    /// table retained and released it, twice per event).
    @inline(__always) func isName(_ id: UInt16, of name: String) -> Bool {
        names.withUnsafeBufferPointer { $0[Int(id)] == name }
    }
}
