/// Event-time progress of one partition.
///
/// The watermark is the newest event time seen minus the allowed lateness: every event
/// older than it is late. When the partition is idle (caught up, nothing arriving), the
/// watermark moves on with the wall clock, so timers fire on time even when nobody
/// sends anything more.
public struct Watermark: Sendable, Equatable {
    public let allowedLateness: Millis
    /// How long a caught-up partition must be silent before wall time moves the watermark.
    public let idleAfter: Millis
    public private(set) var newestEventTime: EventTime?
    public private(set) var current: EventTime?
    /// Wall-clock time at which the newest event arrived.
    private var lastArrival: EventTime?

    public init(allowedLateness: Millis, idleAfter: Millis) {
        self.allowedLateness = allowedLateness
        self.idleAfter = idleAfter
    }

    /// True when an event with this time is behind the watermark.
    public func isLate(_ time: EventTime) -> Bool {
        guard let current else { return false }
        return time < current
    }

    /// Takes an event's time into account.
    public mutating func observe(_ time: EventTime, arrivedAt wallNow: EventTime) {
        if newestEventTime.map({ time > $0 }) ?? true { newestEventTime = time }
        lastArrival = wallNow
        raise(to: newestEventTime! - allowedLateness)
    }

    /// Moves the watermark with the wall clock if the partition has been idle long enough.
    /// - Returns: whether the watermark moved.
    @discardableResult
    public mutating func advanceIdle(wallNow: EventTime) -> Bool {
        guard let newest = newestEventTime, let lastArrival else { return false }
        let silent = wallNow - lastArrival
        guard silent >= idleAfter else { return false }
        return raise(to: newest - allowedLateness + silent)
    }

    @discardableResult
    private mutating func raise(to candidate: EventTime) -> Bool {
        if let current, candidate <= current { return false }
        current = candidate
        return true
    }
}
