/// Stable 128-bit FNV-1a. Used for ids that must be identical across runs, machines and
/// restarts (`decision_id`, holdout buckets): Swift's `Hasher` is seeded per process.
public struct StableHash: Sendable {
    private static let prime: UInt128 = (1 << 88) + (1 << 8) + 0x3B
    private static let offsetBasis: UInt128 = 0x6C62_272E_07BB_0142_62B8_2175_6295_C58D

    public private(set) var value: UInt128 = StableHash.offsetBasis

    public init() {}

    public mutating func combine(_ text: String) {
        for byte in text.utf8 {
            value ^= UInt128(byte)
            value &*= Self.prime
        }
        // A separator so ("ab","c") and ("a","bc") differ.
        value ^= 0xFF
        value &*= Self.prime
    }

    /// 32 lowercase hex digits.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 32)
        var v = value
        for i in stride(from: 31, through: 0, by: -1) {
            out[i] = digits[Int(v & 0xF)]
            v >>= 4
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func hex(_ parts: String...) -> String {
        var h = StableHash()
        for part in parts { h.combine(part) }
        return h.hex
    }
}
