/// A map from 64-bit hashes (never 0) to 32-bit values: open addressing, linear probing,
/// removal by shifting the run back (no tombstones). The departed visitors' visits are
/// kept in one: every new visitor looks itself up there and every evicted one is added,
/// and a `[UInt64: UInt32]` hashed each key again with SipHash (about 600 instructions an
/// insertion). The keys are hashes already, so one multiplication spreads them.
struct HashMap64: Sendable {
    /// 0: an empty place.
    private var keys: [UInt64]
    private var values: [UInt32]
    private(set) var count = 0
    private var shift: UInt64

    init() {
        keys = [UInt64](repeating: 0, count: 16)
        values = [UInt32](repeating: 0, count: 16)
        shift = 64 - 4
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always) private func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// Where `key` is, or the empty place that ends its run.
    @inline(__always) private func place(of key: UInt64) -> Int {
        let mask = keys.count - 1
        var i = home(key)
        while true {
            let k = keys[i]
            if k == key || k == 0 { return i }
            i = (i + 1) & mask
        }
    }

    subscript(key: UInt64) -> UInt32? {
        precondition(key != 0, "HashMap64 keys are never 0")
        let i = place(of: key)
        return keys[i] == 0 ? nil : values[i]
    }

    /// Sets the value of `key` (adding it if absent).
    mutating func set(_ key: UInt64, _ value: UInt32) {
        precondition(key != 0, "HashMap64 keys are never 0")
        var i = place(of: key)
        if keys[i] == 0 {
            // At most three quarters full, so every run ends in an empty place.
            if (count + 1) * 4 > keys.count * 3 {
                resize(to: keys.count * 2)
                i = place(of: key)
            }
            keys[i] = key
            count += 1
        }
        values[i] = value
    }

    /// Removes `key`, returning its value (nil if absent).
    mutating func removeValue(forKey key: UInt64) -> UInt32? {
        precondition(key != 0, "HashMap64 keys are never 0")
        var hole = place(of: key)
        guard keys[hole] != 0 else { return nil }
        let removed = values[hole]
        // Shift back the rest of the run: each key that may not stay past the hole moves into it.
        let mask = keys.count - 1
        var i = hole
        while true {
            i = (i + 1) & mask
            let k = keys[i]
            if k == 0 { break }
            let h = home(k)
            // `k` may move to the hole unless its home lies cyclically in (hole, i].
            let staysPut = hole <= i ? (hole < h && h <= i) : (hole < h || h <= i)
            if !staysPut {
                keys[hole] = k
                values[hole] = values[i]
                hole = i
            }
        }
        keys[hole] = 0
        count -= 1
        return removed
    }

    /// Removes the entries whose value `remove` says so of (the buffers shrink to fit the rest).
    mutating func removeAll(where remove: (UInt32) -> Bool) {
        let kept = entries.filter { !remove($0.value) }
        var capacity = 16
        while kept.count * 2 > capacity { capacity *= 2 }
        self = HashMap64(capacity: capacity)
        for entry in kept { set(entry.key, entry.value) }
    }

    private init(capacity: Int) {
        keys = [UInt64](repeating: 0, count: capacity)
        values = [UInt32](repeating: 0, count: capacity)
        shift = UInt64(64 - capacity.trailingZeroBitCount)
    }

    private mutating func resize(to capacity: Int) {
        let old = (keys, values)
        self = HashMap64(capacity: capacity)
        for i in old.0.indices where old.0[i] != 0 { set(old.0[i], old.1[i]) }
    }

    /// Every entry, in no particular order.
    var entries: [(key: UInt64, value: UInt32)] {
        keys.indices.filter { keys[$0] != 0 }.map { (keys[$0], values[$0]) }
    }
}
