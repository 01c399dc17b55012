/// A URL-path glob: `*` matches within one path segment, `**` across segments,
/// `?` one character. `/checkout/*` matches `/checkout/payment`, not `/checkout/a/b`.
public struct PathGlob: Sendable, Equatable, CustomStringConvertible {
    public let pattern: String
    private let bytes: [UInt8]

    public init(_ pattern: String) {
        self.pattern = pattern
        self.bytes = Array(pattern.utf8)
    }

    public var description: String { pattern }

    public func matches(_ path: String) -> Bool {
        path.withBytes { Self.match(bytes[...], $0[...]) }
    }

    private static func match(_ p: ArraySlice<UInt8>, _ s: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        var p = p
        var s = s
        while let c = p.first {
            if c == UInt8(ascii: "*") {
                let doubleStar = p.dropFirst().first == UInt8(ascii: "*")
                let rest = p.dropFirst(doubleStar ? 2 : 1)
                if rest.isEmpty { return doubleStar || !s.contains(UInt8(ascii: "/")) }
                var candidate = s
                while true {
                    if match(rest, candidate) { return true }
                    guard let first = candidate.first else { return false }
                    if !doubleStar && first == UInt8(ascii: "/") { return false }
                    candidate = candidate.dropFirst()
                }
            }
            guard let sc = s.first else { return false }
            if c != UInt8(ascii: "?") && c != sc { return false }
            if c == UInt8(ascii: "?") && sc == UInt8(ascii: "/") { return false }
            p = p.dropFirst()
            s = s.dropFirst()
        }
        return s.isEmpty
    }
}
