/// Open addressing over 8-byte buckets `tag << 32 | id` (0: empty), probed linearly from
/// the bucket the tag's low bits pick. Tags are never 0. The caller owns the buckets (a
/// power-of-two count) and says what an id with a matching tag must also satisfy.
///
/// Shared by `VisitorTable` (ids are slots) and `PageTable` (ids are page ids).
enum TagIndex {
    /// The id of the first bucket with `tag` for which `matches(id)` holds, or nil when
    /// the probe reaches an empty bucket first.
    @inline(__always) static func find(_ buckets: UnsafePointer<UInt64>, mask: Int, tag: UInt32, where matches: (UInt32) -> Bool) -> UInt32? {
        var i = Int(tag) & mask
        while true {
            let bucket = buckets[i]
            if bucket == 0 { return nil }
            if UInt32(truncatingIfNeeded: bucket >> 32) == tag {
                let id = UInt32(truncatingIfNeeded: bucket)
                if matches(id) { return id }
            }
            i = (i + 1) & mask
        }
    }

    /// Puts `id` in the first empty bucket from its tag's home (there must be one).
    @inline(__always) static func place(_ buckets: UnsafeMutablePointer<UInt64>, mask: Int, tag: UInt32, id: UInt32) {
        var i = Int(tag) & mask
        while buckets[i] != 0 { i = (i + 1) & mask }
        buckets[i] = UInt64(tag) << 32 | UInt64(id)
    }
}
