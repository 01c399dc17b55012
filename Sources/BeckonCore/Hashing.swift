/// Stable 128-bit FNV-1a. Used for ids that must be identical across runs, machines and
/// restarts (`decision_id`, holdout buckets): Swift's `Hasher` is seeded per process.
public struct StableHash: Sendable {
    // Computed, not stored: a stored `static let` is a lazily made global, and each read
    // went through `swift_once` (several per decision id).
    @inline(__always) private static var prime: UInt128 { (1 << 88) + (1 << 8) + 0x3B }
    @inline(__always) private static var offsetBasis: UInt128 { 0x6C62_272E_07BB_0142_62B8_2175_6295_C58D }

    public private(set) var value: UInt128 = StableHash.offsetBasis

    public init() {}

    public mutating func combine(_ text: String) {
        append(text)
        endPart()
    }

    /// Adds the text's bytes without ending the part (`combine` = `append` + `endPart`).
    mutating func append(_ text: String) {
        var v = value
        text.withBytes { bytes in
            for byte in bytes {
                v ^= UInt128(byte)
                v &*= Self.prime
            }
        }
        value = v
    }

    /// Adds the bytes of `String(value)` without making the string.
    mutating func append(decimal value: Int64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: "-" and 19 digits fit
        withUnsafeMutableBytes(of: &digits) { out in
            var n = value.magnitude
            var at = out.count
            repeat {
                at -= 1
                out[at] = UInt8(truncatingIfNeeded: 48 + n % 10)
                n /= 10
            } while n > 0
            if value < 0 { at -= 1; out[at] = UInt8(ascii: "-") }
            var v = self.value
            for byte in out[at...] {
                v ^= UInt128(byte)
                v &*= Self.prime
            }
            self.value = v
        }
    }

    /// A separator so ("ab","c") and ("a","bc") differ.
    mutating func endPart() {
        value ^= 0xFF
        value &*= Self.prime
    }

    /// 32 lowercase hex digits.
    public var hex: String {
        // Eight digits at a time, as bytes of one word: a decision id is made for every
        // decision, and a digit at a time cost about 500 instructions.
        let words = (Self.hexDigits(UInt32(truncatingIfNeeded: value >> 96)), Self.hexDigits(UInt32(truncatingIfNeeded: value >> 64)),
                     Self.hexDigits(UInt32(truncatingIfNeeded: value >> 32)), Self.hexDigits(UInt32(truncatingIfNeeded: value)))
        return String(unsafeUninitializedCapacity: 32) { out in
            withUnsafeBytes(of: words) { out.baseAddress!.initialize(from: $0.baseAddress!.assumingMemoryBound(to: UInt8.self), count: 32) }
            return 32
        }
    }

    /// The eight lowercase hex digits of `x`, most significant first, as the bytes of a
    /// little-endian word.
    @inline(__always) static func hexDigits(_ x: UInt32) -> UInt64 {
        // Each nibble to its own byte, the lowest nibble in the lowest byte ...
        var n = UInt64(x)
        n = (n | n << 16) & 0x0000_FFFF_0000_FFFF
        n = (n | n << 8) & 0x00FF_00FF_00FF_00FF
        n = (n | n << 4) & 0x0F0F_0F0F_0F0F_0F0F
        // ... then each plus "0", and 39 more for 10-15 ("a" is 39 past the byte after
        // "9"), and the most significant first.
        let letters = ((n &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        return (n &+ 0x3030_3030_3030_3030 &+ letters &* 39).byteSwapped.littleEndian
    }

    public static func hex(_ parts: String...) -> String {
        var h = StableHash()
        for part in parts { h.combine(part) }
        return h.hex
    }
}

/// A 64-bit hash of a string's bytes taken eight at a time, never 0: for the in-memory
/// indexes and keys of ids and paths, which every event hashes two or three times. FNV-1a
/// (`fnv64`) costs a multiply per byte, one after the other; this one a multiply per eight.
/// Not for anything kept or compared across processes or versions (holdout buckets use
/// `fnv64`): its values may change with the code, and it reads the bytes as little-endian
/// words.
@inline(__always) func wordHash(_ s: String, seed: UInt64 = 0x243F_6A88_85A3_08D3) -> UInt64 {
    s.withBytes { bytes in
        let n = bytes.count
        var h = seed ^ (UInt64(n) &* 0x9E37_79B9_7F4A_7C15)
        guard let base = bytes.baseAddress, n > 0 else { return wordHashFinish(h) }
        let raw = UnsafeRawPointer(base)
        var i = 0
        while i + 8 <= n {
            h = wordHashStep(h, raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        if i < n { h = wordHashStep(h, wordTail(raw + i, count: n - i)) }
        return wordHashFinish(h)
    }
}

/// The last 1 to 7 bytes of a string as a little-endian word: four, two and one at a time,
/// each load inside the eight-byte word the bytes start at. A small string's bytes are a
/// copy that `withCString` stored on the stack as two words; one load across both (the
/// last eight bytes, shifted) could not take its bytes from those stores and waited for
/// them to reach the cache: a fifth of the event-id hash's time.
@inline(__always) private func wordTail(_ p: UnsafeRawPointer, count: Int) -> UInt64 {
    var w: UInt64 = 0, at = 0, shift: UInt64 = 0
    if count & 4 != 0 {
        w = UInt64(p.loadUnaligned(as: UInt32.self))
        at = 4
        shift = 32
    }
    if count & 2 != 0 {
        w |= UInt64(p.loadUnaligned(fromByteOffset: at, as: UInt16.self)) << shift
        at += 2
        shift += 16
    }
    if count & 1 != 0 { w |= UInt64(p.load(fromByteOffset: at, as: UInt8.self)) << shift }
    return w
}

@inline(__always) private func wordHashStep(_ h: UInt64, _ w: UInt64) -> UInt64 {
    let x = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
    return x ^ (x >> 31)
}

/// Spreads every input bit over the whole result (the tables take their slot and tag
/// from different bits).
@inline(__always) private func wordHashFinish(_ h: UInt64) -> UInt64 {
    var x = h
    x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
    x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
    return (x ^ (x >> 31)) | 1
}

extension String {
    /// Calls `body` with the string's UTF-8 bytes, without copying the string. `withUTF8` is
    /// mutating, so calling it on a copy retained and released the string, two runtime calls
    /// even for a small string that holds no reference, and `utf8.withContiguousStorageIfAvailable`
    /// still retained it once. `withCString` reads a native string in place (a small one
    /// from a stack copy); the length is the string's, so bytes after a zero byte count.
    @inline(__always) func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let count = utf8.count
        return withCString { body(UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), count: count)) }
    }
}
