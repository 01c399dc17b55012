/// A point in event time: milliseconds since the Unix epoch, UTC.
///
/// The core never reads a clock: every instant it sees comes from an event, a Kafka
/// timestamp, or a wall-clock reading that the runtime passes in.
public struct EventTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public static func < (lhs: EventTime, rhs: EventTime) -> Bool { lhs.milliseconds < rhs.milliseconds }
    public static func + (lhs: EventTime, rhs: Millis) -> EventTime { EventTime(milliseconds: lhs.milliseconds + rhs.value) }
    public static func - (lhs: EventTime, rhs: Millis) -> EventTime { EventTime(milliseconds: lhs.milliseconds - rhs.value) }
    public static func - (lhs: EventTime, rhs: EventTime) -> Millis { Millis(lhs.milliseconds - rhs.milliseconds) }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-03-02T10:00:00.000Z`.
    public var description: String { rfc3339 }

    public var rfc3339: String {
        let ms = milliseconds
        var days = ms / 86_400_000
        var rem = ms % 86_400_000
        if rem < 0 { rem += 86_400_000; days -= 1 }
        let (y, m, d) = civilFromDays(days)
        let h = rem / 3_600_000, mi = rem / 60_000 % 60, s = rem / 1000 % 60, f = rem % 1000
        if (0...9999).contains(y) {
            // The usual case, written as bytes: decisions carry several of these.
            return String(unsafeUninitializedCapacity: 24) { out in
                func put(_ v: Int64, _ at: Int, _ width: Int) {
                    var v = v
                    for i in stride(from: at + width - 1, through: at, by: -1) {
                        out[i] = UInt8(truncatingIfNeeded: 48 + v % 10)
                        v /= 10
                    }
                }
                put(y, 0, 4); out[4] = 45; put(m, 5, 2); out[7] = 45; put(d, 8, 2); out[10] = 84
                put(h, 11, 2); out[13] = 58; put(mi, 14, 2); out[16] = 58; put(s, 17, 2); out[19] = 46
                put(f, 20, 3); out[23] = 90
                return 24
            }
        }
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(f, 3))Z"
    }

    /// Parses RFC 3339 (`2026-03-02T10:00:00Z`, fractions and `±hh:mm` offsets allowed).
    public static func parseRFC3339(_ text: String) -> EventTime? {
        var utf8 = Array(text.utf8)
        return utf8.withUnsafeMutableBufferPointer { parseRFC3339(UnsafeBufferPointer($0)) }
    }

    @inline(__always) static func parseRFC3339(_ b: UnsafeBufferPointer<UInt8>) -> EventTime? {
        parseCommonRFC3339(b) ?? parseAnyRFC3339(b)
    }

    /// Every form RFC 3339 allows (the reference for `parseCommonRFC3339`).
    static func parseAnyRFC3339(_ b: UnsafeBufferPointer<UInt8>) -> EventTime? {
        // YYYY-MM-DDTHH:MM:SS[.fff...](Z|±HH:MM)
        guard b.count >= 20 else { return nil }
        func digits(_ start: Int, _ count: Int) -> Int64? {
            var v: Int64 = 0
            for i in start..<(start + count) {
                let c = b[i]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            return v
        }
        guard let year = digits(0, 4), b[4] == UInt8(ascii: "-"), let month = digits(5, 2), b[7] == UInt8(ascii: "-"),
              let day = digits(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
              let hour = digits(11, 2), b[13] == UInt8(ascii: ":"), let minute = digits(14, 2), b[16] == UInt8(ascii: ":"),
              let second = digits(17, 2)
        else { return nil }
        guard (1...12).contains(month), (1...daysInMonth(year, month)).contains(day), hour < 24, minute < 60, second < 61 else {
            return nil
        }
        var i = 19
        var fractionMs: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            // Milliseconds from the first three digits; finer digits are checked and dropped.
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if i - start < 3 { fractionMs = fractionMs * 10 + Int64(b[i] - 0x30) }
                i += 1
            }
            guard i > start else { return nil }
            switch i - start {
            case 1: fractionMs *= 100
            case 2: fractionMs *= 10
            default: break
            }
        }
        guard i < b.count else { return nil }
        var offsetMinutes: Int64 = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard i + 6 == b.count, let oh = digits(i + 1, 2), b[i + 3] == UInt8(ascii: ":"), let om = digits(i + 4, 2),
                  oh < 24, om < 60
            else { return nil }
            offsetMinutes = (oh * 60 + om) * (b[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        default:
            return nil
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(year, month, day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offsetMinutes * 60
        return EventTime(milliseconds: seconds * 1000 + fractionMs)
    }
}

extension EventTime {
    /// `YYYY-MM-DDTHH:MM:SS.sssZ`, the form trackers send: the fixed-position digits are
    /// checked and converted eight bytes at a time. Nil for anything else, which the
    /// general parser then judges.
    @inline(__always) static func parseCommonRFC3339(_ b: UnsafeBufferPointer<UInt8>) -> EventTime? {
        guard b.count == 24, b[23] | 0x20 == UInt8(ascii: "z"), b[19] == UInt8(ascii: "."), b[16] == UInt8(ascii: ":") else { return nil }
        let raw = UnsafeRawPointer(b.baseAddress!)
        // Bytes 0–7 "YYYY-MM-", 8–15 "DDTHH:MM"; digits masked in, separators compared.
        let dateWord = raw.loadUnaligned(as: UInt64.self)
        let timeWord = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self) | 0x0000_0000_0020_0000  // 'T' → 't'
        let dateDigits: UInt64 = 0x00FF_FF00_FFFF_FFFF, timeDigits: UInt64 = 0xFFFF_00FF_FF00_FFFF
        guard dateWord & ~dateDigits == 0x2D00_002D_0000_0000, timeWord & ~timeDigits == 0x0000_3A00_0074_0000,
              isDigits(dateWord, dateDigits), isDigits(timeWord, timeDigits) else { return nil }
        let tail = (b[17] &- 0x30, b[18] &- 0x30, b[20] &- 0x30, b[21] &- 0x30, b[22] &- 0x30)
        guard tail.0 < 10, tail.1 < 10, tail.2 < 10, tail.3 < 10, tail.4 < 10 else { return nil }
        @inline(__always) func digit(_ word: UInt64, _ i: Int) -> Int64 { Int64((word >> (8 * i)) & 0x0F) }
        let year = digit(dateWord, 0) * 1000 + digit(dateWord, 1) * 100 + digit(dateWord, 2) * 10 + digit(dateWord, 3)
        let month = digit(dateWord, 5) * 10 + digit(dateWord, 6)
        let day = digit(timeWord, 0) * 10 + digit(timeWord, 1)
        let hour = digit(timeWord, 3) * 10 + digit(timeWord, 4)
        let minute = digit(timeWord, 6) * 10 + digit(timeWord, 7)
        let second = Int64(tail.0) * 10 + Int64(tail.1)
        guard month >= 1, month <= 12, day >= 1, day <= daysInMonth(year, month), hour < 24, minute < 60, second < 61 else { return nil }
        let seconds = daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + min(second, 59)
        return EventTime(milliseconds: seconds * 1000 + Int64(tail.2) * 100 + Int64(tail.3) * 10 + Int64(tail.4))
    }

    /// True when every byte selected by `mask` is an ASCII digit.
    @inline(__always) private static func isDigits(_ word: UInt64, _ mask: UInt64) -> Bool {
        let high = 0xF0F0_F0F0_F0F0_F0F0 & mask, three = 0x3030_3030_3030_3030 & mask, six = 0x0606_0606_0606_0606 & mask
        let d = word & mask
        return d & high == three && (d &+ six) & high == three
    }
}

/// A span of time in milliseconds.
public struct Millis: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64
    public init(_ value: Int64) { self.value = value }
    public static func seconds(_ s: Int64) -> Millis { Millis(s * 1000) }
    public static func minutes(_ m: Int64) -> Millis { Millis(m * 60_000) }
    public static func < (lhs: Millis, rhs: Millis) -> Bool { lhs.value < rhs.value }
    public static let zero = Millis(0)

    /// `45s`, `2m`, `1500ms`, `1h30m`.
    public var description: String {
        if value % 3_600_000 == 0, value != 0 { return "\(value / 3_600_000)h" }
        if value % 60_000 == 0, value != 0 { return "\(value / 60_000)m" }
        if value % 1000 == 0 { return "\(value / 1000)s" }
        return "\(value)ms"
    }

    /// Parses durations such as `45s`, `2m`, `1h30m`, `250ms`, `1.5s`.
    public static func parse(_ text: String) -> Millis? {
        var total: Double = 0
        var rest = Substring(text.trimmingSpaces)
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix(while: { $0.isNumber || $0 == "." })
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix(while: { $0.isLetter })
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ms": scale = 1
            case "s": scale = 1000
            case "m": scale = 60_000
            case "h": scale = 3_600_000
            case "d": scale = 86_400_000
            default: return nil
            }
            total += value * scale
        }
        return Millis(Int64(total.rounded()))
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return s
    }
}

// Howard Hinnant's civil-calendar algorithms (public domain arithmetic).
func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
    let y = m <= 2 ? y0 - 1 : y0
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
    let z = z0 + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let y = yoe + era * 400
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (m <= 2 ? y + 1 : y, m, d)
}

func daysInMonth(_ year: Int64, _ month: Int64) -> Int64 {
    switch month {
    case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
}
