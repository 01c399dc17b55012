/// Stable 128-bit FNV-1a. Used for ids that must be identical across runs, machines and
/// restarts (`decision_id`, holdout buckets): Swift's `Hasher` is seeded per process.
public struct StableHash: Sendable {
    private static let prime: UInt128 = (1 << 88) + (1 << 8) + 0x3B
    private static let offsetBasis: UInt128 = 0x6C62_272E_07BB_0142_62B8_2175_6295_C58D

    public private(set) var value: UInt128 = StableHash.offsetBasis

    public init() {}

    public mutating func combine(_ text: String) {
        append(text)
        endPart()
    }

    /// Adds the text's bytes without ending the part (`combine` = `append` + `endPart`).
    mutating func append(_ text: String) {
        var text = text
        var v = value
        text.withUTF8 { bytes in
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
        let v = value
        // Written in place: decision ids are made for every decision.
        return String(unsafeUninitializedCapacity: 32) { out in
            var v = v
            for i in stride(from: 31, through: 0, by: -1) {
                let d = UInt8(truncatingIfNeeded: v & 0xF)
                out[i] = d < 10 ? 48 + d : 87 + d
                v >>= 4
            }
            return 32
        }
    }

    public static func hex(_ parts: String...) -> String {
        var h = StableHash()
        for part in parts { h.combine(part) }
        return h.hex
    }
}
