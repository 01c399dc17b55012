import CBeckonSIMD
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The decoder's hot path: one pass over the payload bytes that checks the JSON syntax of
/// the whole document and records where the envelope's fields are, without building a tree.
///
/// Values are kept as `Slot`s (a kind and a byte range); a `String` is made only for the
/// few fields an `Event` keeps. `EventDecoder.referenceDecode` (the tree-based decoder)
/// gives the same verdicts and is the oracle the differential tests and the fuzzer use.
struct Slot {
    enum Kind: UInt8 { case absent, null, bool, number, string, array, object }
    var number = 0.0
    // 32-bit offsets keep a slot at 24 bytes (payloads are far below 2 GB): the decoder
    // moves a dozen of them per message.
    private var start32: Int32 = 0
    private var end32: Int32 = 0
    var kind: Kind = .absent
    /// A string that contains escapes must be unescaped before use.
    var escaped = false
    /// Content range: between the quotes of a string, the braces of an object.
    var start: Int {
        @inline(__always) get { Int(start32) }
        @inline(__always) set { start32 = Int32(truncatingIfNeeded: newValue) }
    }
    var end: Int {
        @inline(__always) get { Int(end32) }
        @inline(__always) set { end32 = Int32(truncatingIfNeeded: newValue) }
    }

    var typeName: String {
        switch kind {
        case .absent, .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

struct JSONScanner {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(_ bytes: UnsafeRawBufferPointer, at index: Int = 0) {
        self.bytes = bytes
        self.index = index
    }

    func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(offset: index, message: message) }

    @inline(__always) mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    /// `value(depth:)` with strings, most values of an event, scanned inline.
    @inline(__always) mutating func stringOrValue(depth: Int) throws(JSONSyntaxError) -> Slot {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return try value(depth: depth) }
        var slot = Slot()
        slot.kind = .string
        slot.start = index + 1
        slot.escaped = try string()
        slot.end = index - 1
        return slot
    }

    /// Scans one value and returns where it is; nested values are checked and skipped.
    mutating func value(depth: Int) throws(JSONSyntaxError) -> Slot {
        guard index < bytes.count else {
            throw error(index == 0 ? "empty input" : "unexpected end of input (truncated?)")
        }
        var slot = Slot()
        switch bytes[index] {
        case UInt8(ascii: "\""):
            slot.kind = .string
            slot.start = index + 1
            slot.escaped = try string()
            slot.end = index - 1
        case UInt8(ascii: "{"):
            slot.kind = .object
            slot.start = index
            try object(depth: depth + 1)
            slot.end = index
        case UInt8(ascii: "["):
            slot.kind = .array
            try array(depth: depth + 1)
        case UInt8(ascii: "t"): try literal("true"); slot.kind = .bool
        case UInt8(ascii: "f"): try literal("false"); slot.kind = .bool
        case UInt8(ascii: "n"): try literal("null"); slot.kind = .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            slot.kind = .number
            slot.number = try number()
        default:
            let byte = bytes[index]
            throw error("unexpected character '\((0x20..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16))'")
        }
        return slot
    }

    /// Walks the members of the object at `index` (its `{`), calling `member` with each
    /// key's slot and the scanner positioned at the value, which `member` must consume.
    mutating func members(depth: Int, _ member: (Slot, inout JSONScanner) throws(JSONSyntaxError) -> Void) throws(JSONSyntaxError) {
        guard depth <= JSONParser.maximumDepth else { throw error("nesting deeper than \(JSONParser.maximumDepth)") }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input (truncated?)") }
            guard bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
            var key = Slot()
            key.kind = .string
            key.start = index + 1
            key.escaped = try string()
            key.end = index - 1
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input (truncated?)") }
            guard bytes[index] == UInt8(ascii: ":") else { throw error("expected ':' after member name") }
            index += 1
            skipWhitespace()
            try member(key, &self)
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input (truncated?)") }
            switch bytes[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"): index += 1; return
            default: throw error("expected ',' or '}' in object")
            }
        }
    }

    private mutating func object(depth: Int) throws(JSONSyntaxError) {
        try members(depth: depth) { (_, scanner) throws(JSONSyntaxError) in _ = try scanner.value(depth: depth) }
    }

    private mutating func array(depth: Int) throws(JSONSyntaxError) {
        guard depth <= JSONParser.maximumDepth else { throw error("nesting deeper than \(JSONParser.maximumDepth)") }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            _ = try value(depth: depth)
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input (truncated?)") }
            switch bytes[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"): index += 1; return
            default: throw error("expected ',' or ']' in array")
            }
        }
    }

    private mutating func literal(_ text: StaticString) throws(JSONSyntaxError) {
        let count = text.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of input (truncated?)") }
        let start = text.utf8Start
        for i in 0..<count where bytes[index + i] != start[i] { throw error("invalid literal") }
        index += count
    }

    private mutating func number() throws(JSONSyntaxError) -> Double {
        let start = index
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        var integer: Int64 = 0
        var overflow = false
        var sawDigit = false
        let leadingZero = index < bytes.count && bytes[index] == UInt8(ascii: "0")
        while index < bytes.count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { break }
            let (m, o1) = integer.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(digit))
            integer = a
            overflow = overflow || o1 || o2
            sawDigit = true
            index += 1
            if leadingZero { break }
        }
        guard sawDigit else { throw error("invalid number") }
        var isInteger = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            let digits = index
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 { index += 1 }
            guard index > digits else { throw error("invalid number: no digits after '.'") }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            let digits = index
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 { index += 1 }
            guard index > digits else { throw error("invalid number: empty exponent") }
        }
        if isInteger && !overflow { return Double(negative ? -integer : integer) }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw error("number out of range") }
        return value
    }

    /// Scans a string from its opening quote to just past its closing quote, checking
    /// escapes and UTF-8. Returns whether it contains escapes.
    ///
    /// Errors come in the reference parser's order: a syntax error anywhere in the string
    /// wins over invalid UTF-8, which is reported at the string's start.
    @inline(__always) private mutating func string() throws(JSONSyntaxError) -> Bool {
        // Most strings (keys, ids, enums, short paths) are plain ASCII and end within 16
        // bytes: one vector compare finds the closing quote.
        let first = index + 1
        if first + 16 <= bytes.count {
            let special = beckon_string_specials16(bytes.baseAddress! + first)
            if special != 0 {
                let at = first + special.trailingZeroBitCount
                if bytes[at] == UInt8(ascii: "\"") {
                    index = at + 1
                    return false
                }
            }
        }
        return try stringSlowly()
    }

    private mutating func stringSlowly() throws(JSONSyntaxError) -> Bool {
        index += 1
        let start = index
        var escaped = false
        var badUTF8 = false
        let count = bytes.count
        while index < count {
            while index + 16 <= count {
                let special = beckon_string_specials16(bytes.baseAddress! + index)
                if special == 0 {
                    index += 16
                } else {
                    index += special.trailingZeroBitCount
                    break
                }
            }
            // Eight bytes at a time while none is a quote, a backslash, a control or a non-ASCII byte.
            while index + 8 <= count {
                let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                let special = Self.specialBytes(word)
                if special == 0 {
                    index += 8
                } else {
                    // The lowest flagged byte is exact: skip straight to it.
                    index += special.trailingZeroBitCount >> 3
                    break
                }
            }
            guard index < count else { break }
            let byte = bytes[index]
            if byte >= 0x20 && byte < 0x80 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                index += 1
                continue
            }
            if byte == UInt8(ascii: "\"") {
                index += 1
                if badUTF8 { throw JSONSyntaxError(offset: start, message: "string is not valid UTF-8") }
                return escaped
            }
            if byte < 0x20 { throw error("control character in string") }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                index += 1
                guard index < count else { throw error("unterminated string (truncated?)") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    continue
                case UInt8(ascii: "u"):
                    let high = try hex4()
                    if (0xD800..<0xDC00).contains(high) {
                        guard index + 6 <= count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate in \\u escape")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate") }
                    } else if (0xDC00..<0xE000).contains(high) {
                        throw error("unpaired surrogate in \\u escape")
                    }
                default:
                    let b = escape
                    throw error("invalid escape '\\\((0x20..<0x7F).contains(b) ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16))'")
                }
                continue
            }
            // A multi-byte UTF-8 sequence (RFC 3629: no overlongs, surrogates or > U+10FFFF).
            let length = Self.sequenceLength(bytes, index)
            if length == 0 {
                badUTF8 = true
                index += 1
            } else {
                index += length
            }
        }
        throw error("unterminated string (truncated?)")
    }

    /// True when none of the eight bytes needs a closer look inside a string.
    @inline(__always) static func isPlain(_ x: UInt64) -> Bool { specialBytes(x) == 0 }

    /// The high bit of each byte that is a quote, a backslash, a control or non-ASCII byte.
    /// Bits above the lowest flagged byte may be false positives; the lowest one is exact.
    @inline(__always) static func specialBytes(_ x: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZero(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & high }
        return hasZero(x ^ (ones &* 0x22)) | hasZero(x ^ (ones &* 0x5C)) | ((x &- ones &* 0x20) & ~x & high) | (x & high)
    }

    /// Length of the valid UTF-8 sequence starting at `i` (a byte ≥ 0x80), or 0.
    @inline(__always) static func sequenceLength(_ b: UnsafeRawBufferPointer, _ i: Int) -> Int {
        let lead = b[i]
        let n = b.count
        @inline(__always) func cont(_ j: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xBF) -> Bool {
            j < n && b[j] >= low && b[j] <= high
        }
        switch lead {
        case 0xC2...0xDF: return cont(i + 1) ? 2 : 0
        case 0xE0: return cont(i + 1, 0xA0) && cont(i + 2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF: return cont(i + 1) && cont(i + 2) ? 3 : 0
        case 0xED: return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : 0
        case 0xF0: return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0
        case 0xF1...0xF3: return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0
        case 0xF4: return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : 0
        default: return 0
        }
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        try readHex4(bytes, &index)
    }
}

/// `count` bytes at `a` and `b` are equal. Names of up to 16 bytes (keys, types) are
/// compared as two overlapping word loads instead of a `memcmp` call.
@inline(__always) func bytesEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Bool {
    @inline(__always) func same<T: FixedWidthInteger>(_: T.Type) -> Bool {
        let tail = count - MemoryLayout<T>.size
        return a.loadUnaligned(as: T.self) == b.loadUnaligned(as: T.self)
            && a.loadUnaligned(fromByteOffset: tail, as: T.self) == b.loadUnaligned(fromByteOffset: tail, as: T.self)
    }
    switch count {
    case 0: return true
    case 1: return a.load(as: UInt8.self) == b.load(as: UInt8.self)
    case 2...3: return same(UInt16.self)
    case 4...7: return same(UInt32.self)
    case 8...16: return same(UInt64.self)
    default: return memcmp(a, b, count) == 0
    }
}

extension Slot {
    /// The string's bytes (already checked), unescaped when needed.
    func withUTF8<R>(in bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        guard escaped else { return body(raw) }
        let unescaped = Slot.unescape(raw)
        return unescaped.withUnsafeBytes(body)
    }

    func string(in bytes: UnsafeRawBufferPointer) -> String {
        withUTF8(in: bytes) { String(decoding: $0, as: UTF8.self) }
    }

    /// Number of Unicode scalars, computed only when the byte count could exceed `limit`.
    @inline(__always) func scalarCount(in bytes: UnsafeRawBufferPointer, exceeds limit: Int) -> Bool {
        end - start <= limit ? false : countScalars(in: bytes, exceeds: limit)
    }

    private func countScalars(in bytes: UnsafeRawBufferPointer, exceeds limit: Int) -> Bool {
        withUTF8(in: bytes) { utf8 in
            var scalars = 0
            for byte in utf8 where byte & 0xC0 != 0x80 { scalars += 1 }
            return scalars > limit
        }
    }

    /// Byte-wise equality with a static name (escaped keys are unescaped first).
    @inline(__always) func equals(_ name: StaticString, in bytes: UnsafeRawBufferPointer) -> Bool {
        let count = name.utf8CodeUnitCount
        if !escaped {
            guard end - start == count else { return false }
            return bytesEqual(bytes.baseAddress! + start, name.utf8Start, count: count)
        }
        return withUTF8(in: bytes) { utf8 in utf8.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: count)) }
    }

    /// Byte-wise equality with a name (escaped keys are unescaped first).
    func equals(_ name: [UInt8], in bytes: UnsafeRawBufferPointer) -> Bool {
        if !escaped {
            guard end - start == name.count else { return false }
            for i in 0..<name.count where bytes[start + i] != name[i] { return false }
            return true
        }
        return withUTF8(in: bytes) { utf8 in utf8.elementsEqual(name) }
    }

    static func unescape(_ raw: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        func hex(_ at: Int) -> UInt32 {
            var v: UInt32 = 0
            for j in at..<(at + 4) {
                let c = raw[j]
                v = v << 4 | UInt32(c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10)
            }
            return v
        }
        while i < raw.count {
            let byte = raw[i]
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                i += 1
                continue
            }
            let escape = raw[i + 1]
            i += 2
            switch escape {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex(i)
                i += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (hex(i + 2) - 0xDC00)
                    i += 6
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
            default: out.append(escape)
            }
        }
        return out
    }
}

/// The four hex digits of a `\u` escape at `index`, which ends past them; shared by both
/// parsers so they refuse the same bytes with the same message at the same offset.
func readHex4(_ bytes: UnsafeRawBufferPointer, _ index: inout Int) throws(JSONSyntaxError) -> UInt32 {
    guard index + 4 <= bytes.count else { throw JSONSyntaxError(offset: index, message: "truncated \\u escape") }
    var value: UInt32 = 0
    for _ in 0..<4 {
        let byte = bytes[index]
        let digit: UInt32
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
        default: throw JSONSyntaxError(offset: index, message: "invalid hex digit in \\u escape")
        }
        value = value << 4 | digit
        index += 1
    }
    return value
}
