/// Settings of the event-time engine.
public struct EngineConfiguration: Sendable, Equatable {
    /// How late an event may arrive and still count as on time. Default 5 s.
    public var allowedLateness: Millis = .seconds(5)
    /// Silence after which a caught-up partition's watermark follows the wall clock. Default 2 s.
    public var idleAfter: Millis = .seconds(2)
    /// Inactivity that ends a visitor's session (and lets its state go). Default 30 min.
    public var sessionGap: Millis = .minutes(30)

    public init() {}
}

/// Counters of one partition's processing.
public struct ProcessorStatistics: Sendable, Equatable {
    public var events = 0
    /// Events behind the watermark: processed, and counted here.
    public var lateEvents = 0
    /// Events older than the visitor's current page view; ignored for page state.
    public var outOfOrderPageEvents = 0
    public var timersFired = 0
    public var decisions = 0
    public var evictedVisitors = 0
    /// Tracker retries: an `event_id` the visitor sent recently, dropped (not dead-lettered).
    public var duplicateEvents = 0
}

/// The last few event ids of a visitor, as 64-bit hashes, kept inline (no allocation).
struct RecentEventIDs: Sendable {
    static let capacity = 8
    private var hashes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var next: UInt8 = 0

    static func hash(_ id: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in id.utf8 {
            h ^= UInt64(byte)
            h &*= 0x100_0000_01B3
        }
        return h | 1  // never 0, which marks an empty slot
    }

    func contains(_ hash: UInt64) -> Bool {
        withUnsafeBytes(of: hashes) { raw in raw.bindMemory(to: UInt64.self).contains(hash) }
    }

    mutating func insert(_ hash: UInt64) {
        let slot = Int(next)
        withUnsafeMutableBytes(of: &hashes) { raw in raw.bindMemory(to: UInt64.self)[slot] = hash }
        next = (next + 1) % UInt8(Self.capacity)
    }
}

/// Everything Beckon knows about one visitor, kept small.
struct VisitorState: Sendable {
    var channel: String
    var userID: String?
    var lastEventTime: EventTime
    var pagePath: String?
    var pageSince: EventTime
    var pageEventID: String
    var pageHash: UInt32 = 0
    var pageClass: PageClass = .other
    /// (time, id hash) of the latest page event applied: page events apply in this order.
    var lastPageEvent: (EventTime, UInt64) = (EventTime(milliseconds: .min), 0)
    /// Bumped whenever the visitor leaves a page, so older dwell timers are recognised as stale.
    var pageGeneration: UInt32 = 0
    var pendingDwellTimers: UInt16 = 0
    /// The latest due time of this visitor's dwell timers; the session-end check waits for it.
    var latestDwellDue: EventTime = EventTime(milliseconds: .min)
    /// Rules (bit per rule index < 64) already settled for the current page view, fired or
    /// outranked, so a dwell is decided once whether its timer or the departure comes first.
    var settledRules: UInt64 = 0
    var sessionTimerPending = false
    var recentEventIDs = RecentEventIDs()
    var features = VisitorFeatures()
    /// Intent scores in the model's order, recomputed after every event applied.
    var scores: [Float] = []
    /// Events held until the watermark passes them, applied then in event-time order:
    /// page events (the page track is order-dependent) and events that would open a new
    /// session (a late event may still fill the gap). Usually empty.
    var held: [Event] = []

    /// Settled rules with an index of 64 or more (rare: large rule sets).
    var settledOverflow: [Int] = []

    func settled(_ rule: Int) -> Bool { rule < 64 ? settledRules & (1 << UInt64(rule)) != 0 : settledOverflow.contains(rule) }
    mutating func settle(_ rule: Int) { if rule < 64 { settledRules |= 1 << UInt64(rule) } else { settledOverflow.append(rule) } }

    var page: PageContext { PageContext(path: pagePath, pathHash: pageHash, since: Tick(pageSince), pageClass: pageClass) }
}

/// The event-time engine for one Kafka partition: visitor state, features, intent scores,
/// watermark, timers, rules.
///
/// Pure and deterministic: it reads no clock; the runtime passes the wall-clock time.
/// The same events in the same order yield the same decisions with the same ids; and any
/// arrival order of events within the allowed lateness yields the same features, scores
/// and timer firings (see `held`).
public struct PartitionProcessor: Sendable {
    public let configuration: EngineConfiguration
    public private(set) var rules: RuleSet
    public let model: IntentModel
    public private(set) var watermark: Watermark
    public private(set) var statistics = ProcessorStatistics()
    private var visitors: [String: VisitorState] = [:]
    /// Visits of visitors whose state was evicted, by visitor hash: (visits, day last seen).
    private var returning: [UInt64: UInt32] = [:]
    private var timers = TimerQueue()
    private var pageClasses: [String: PageClass] = [:]
    private let modelFeatures: [Feature]

    public init(rules: RuleSet, model: IntentModel = .empty, configuration: EngineConfiguration = EngineConfiguration()) {
        self.rules = rules
        self.model = model
        self.modelFeatures = model.features
        self.configuration = configuration
        self.watermark = Watermark(allowedLateness: configuration.allowedLateness, idleAfter: configuration.idleAfter)
    }

    public var visitorCount: Int { visitors.count }

    /// Rule timers that have not fired yet (stale ones included until they are popped).
    public private(set) var pendingRuleTimers = 0

    /// Events held until the watermark passes them (page events, session openers).
    public private(set) var heldEvents = 0

    /// A visitor's features at its latest event time (nil if the visitor is not in memory).
    public func features(of visitorID: String) -> [Feature: Double]? {
        guard let v = visitors[visitorID] else { return nil }
        let now = Tick(v.lastEventTime)
        return Dictionary(uniqueKeysWithValues: Feature.allCases.map { ($0, $0.value(v.features, page: v.page, now: now)) })
    }

    /// A visitor's intent scores, in the model's order, as of its latest applied event.
    public func scores(of visitorID: String) -> [(String, Double)]? {
        guard let v = visitors[visitorID] else { return nil }
        return zip(model.intents, v.scores).map { ($0.name, Double($1)) }
    }

    /// Applies one event and returns the decisions it (or the watermark it moved) caused.
    ///
    /// An `event_id` among the visitor's last eight (a tracker retry) is dropped and counted
    /// in `statistics.duplicateEvents`. An event behind the watermark (later than the
    /// allowed lateness) is counted in `statistics.lateEvents` and changes no window state.
    public mutating func process(_ event: Event, arrivedAt wallNow: EventTime) -> [Decision] {
        statistics.events += 1
        let idHash = RecentEventIDs.hash(event.id)
        var visitor = visitors[event.visitorID] ?? newVisitor(event)
        if visitor.recentEventIDs.contains(idHash) {
            statistics.duplicateEvents += 1
            return []
        }
        visitor.recentEventIDs.insert(idHash)
        let late = watermark.isLate(event.time)
        watermark.observe(event.time, arrivedAt: wallNow)
        if let userID = event.userID { visitor.userID = userID }
        visitor.channel = event.channel
        var settled: [Decision] = []
        if late {
            statistics.lateEvents += 1
        } else if event.type.isPageEvent || event.time > visitor.lastEventTime + configuration.sessionGap {
            let key = (event.time, idHash)
            let at = visitor.held.firstIndex { ($0.time, RecentEventIDs.hash($0.id)) > key } ?? visitor.held.endIndex
            visitor.held.insert(event, at: at)
            heldEvents += 1
            timers.schedule(VisitorTimer(due: event.time, visitorID: event.visitorID, kind: .release))
        } else {
            settled = apply(event, idHash: idHash, to: &visitor, wallNow: wallNow)
        }
        if !visitor.sessionTimerPending {
            visitor.sessionTimerPending = true
            timers.schedule(VisitorTimer(due: visitor.lastEventTime + configuration.sessionGap, visitorID: event.visitorID, kind: .sessionEnd))
        }
        visitors[event.visitorID] = visitor
        statistics.decisions += settled.count
        return settled + fireDueTimers(wallNow: wallNow)
    }

    private mutating func newVisitor(_ event: Event) -> VisitorState {
        // No page yet: "since the page was entered" means since the beginning.
        var v = VisitorState(channel: event.channel, userID: event.userID, lastEventTime: event.time, pagePath: nil,
                             pageSince: EventTime(milliseconds: Int64.min / 2), pageEventID: event.id)
        if let memory = returning.removeValue(forKey: RecentEventIDs.hash(event.visitorID)) {
            v.features.visits = UInt16(truncatingIfNeeded: memory >> 16) &+ 1
        }
        return v
    }

    /// Applies an event to the visitor's state in event-time order (the caller holds page
    /// events and session-opening events until the watermark passes them).
    private mutating func apply(_ event: Event, idHash: UInt64, to visitor: inout VisitorState, wallNow: EventTime) -> [Decision] {
        var settled: [Decision] = []
        if event.time > visitor.lastEventTime + configuration.sessionGap {
            settled = settleDwell(event.visitorID, &visitor, leavingAt: visitor.lastEventTime + configuration.sessionGap, wallNow: wallNow)
            leavePage(&visitor)
            visitor.features.startSession()
        }
        if event.time > visitor.lastEventTime { visitor.lastEventTime = event.time }
        var pageClass: PageClass?
        switch event.type {
        case .pageView, .pagePing:
            if let path = event.pagePath {
                pageClass = classify(path)
                if (event.time, idHash) < visitor.lastPageEvent {
                    statistics.outOfOrderPageEvents += 1
                } else {
                    visitor.lastPageEvent = (event.time, idHash)
                    if path != visitor.pagePath {
                        settled += settleDwell(event.visitorID, &visitor, leavingAt: event.time, wallNow: wallNow)
                        enterPage(path, class: pageClass!, at: event.time, eventID: event.id, visitorID: event.visitorID, visitor: &visitor)
                    }
                }
            }
        case .pageHidden:
            if (event.time, idHash) < visitor.lastPageEvent {
                statistics.outOfOrderPageEvents += 1
            } else {
                visitor.lastPageEvent = (event.time, idHash)
                settled += settleDwell(event.visitorID, &visitor, leavingAt: event.time, wallNow: wallNow)
                leavePage(&visitor)
            }
        default:
            break
        }
        visitor.features.apply(event, pageClass: pageClass)
        rescore(&visitor)
        return settled
    }

    private mutating func classify(_ path: String) -> PageClass {
        if let known = pageClasses[path] { return known }
        let pageClass = model.pageClasses.classify(path)
        if pageClasses.count >= 50_000 { pageClasses.removeAll(keepingCapacity: true) }
        pageClasses[path] = pageClass
        return pageClass
    }

    private func rescore(_ visitor: inout VisitorState) {
        guard !model.intents.isEmpty else { return }
        let now = Tick(visitor.lastEventTime)
        let page = visitor.page
        let features = visitor.features
        if visitor.scores.count != model.intents.count { visitor.scores = [Float](repeating: 0, count: model.intents.count) }
        for (i, intent) in model.intents.enumerated() {
            visitor.scores[i] = Float(intent.score { $0.value(features, page: page, now: now) })
        }
    }

    private func leavePage(_ visitor: inout VisitorState) {
        visitor.pagePath = nil
        visitor.pageHash = 0
        visitor.pageClass = .other
        visitor.pageGeneration &+= 1
    }

    /// A visitor leaves its page at `time`: dwells completed by then fire now, exactly as
    /// their timers would have (same event time, same id), so a replay that reads the
    /// departure before the watermark reaches the timer decides the same as a live run.
    private mutating func settleDwell(_ visitorID: String, _ visitor: inout VisitorState, leavingAt time: EventTime, wallNow: EventTime) -> [Decision] {
        guard let path = visitor.pagePath else { return [] }
        var decisions: [Decision] = []
        // Completed dwells grouped by the instant they completed: one prompt per instant.
        var byDue: [EventTime: [Int]] = [:]
        for (index, rule) in rules.rules.enumerated()
        where rule.dwellPage.matches(path) && visitor.pageSince + rule.dwellAtLeast <= time && !visitor.settled(index) {
            byDue[visitor.pageSince + rule.dwellAtLeast, default: []].append(index)
        }
        for due in byDue.keys.sorted() {
            let winner = byDue[due]!.max { a, b in Self.ranks(rules.rules[a], below: rules.rules[b]) }!
            for rule in byDue[due]! { visitor.settle(rule) }
            let timer = VisitorTimer(due: due, visitorID: visitorID, kind: .dwell(rule: winner, generation: visitor.pageGeneration))
            if let decision = decide(timer, rule: winner, visitor: visitor, wallNow: wallNow) { decisions.append(decision) }
        }
        return decisions
    }

    /// Priority order of rules: higher priority wins; on a tie, the smaller rule id wins.
    static func ranks(_ a: Rule, below b: Rule) -> Bool {
        a.priority != b.priority ? a.priority < b.priority : a.id > b.id
    }

    /// Lets a caught-up, idle partition's watermark follow the wall clock and fires what is due.
    public mutating func advanceIdle(wallNow: EventTime) -> [Decision] {
        guard watermark.advanceIdle(wallNow: wallNow) else { return [] }
        return fireDueTimers(wallNow: wallNow)
    }

    private mutating func enterPage(_ path: String, class pageClass: PageClass, at time: EventTime, eventID: String, visitorID: String, visitor: inout VisitorState) {
        visitor.pagePath = path
        visitor.pageHash = VisitorFeatures.hash32(path)
        visitor.pageClass = pageClass
        visitor.pageSince = time
        visitor.pageEventID = eventID
        visitor.pageGeneration &+= 1
        visitor.settledRules = 0
        visitor.settledOverflow.removeAll()
        for (index, rule) in rules.rules.enumerated() where rule.dwellPage.matches(path) {
            visitor.pendingDwellTimers += 1
            pendingRuleTimers += 1
            visitor.latestDwellDue = max(visitor.latestDwellDue, time + rule.dwellAtLeast)
            timers.schedule(VisitorTimer(
                due: time + rule.dwellAtLeast, visitorID: visitorID,
                kind: .dwell(rule: index, generation: visitor.pageGeneration)))
        }
    }

    private mutating func fireDueTimers(wallNow: EventTime) -> [Decision] {
        guard let now = watermark.current else { return [] }
        var decisions: [Decision] = []
        // Firings due at the same instant for one visitor compete: one prompt at a time.
        var batch: [(timer: VisitorTimer, rule: Int)] = []
        func flush(_ batch: inout [(timer: VisitorTimer, rule: Int)], into decisions: inout [Decision], processor: inout PartitionProcessor) {
            guard !batch.isEmpty else { return }
            let winner = batch.max { a, b in Self.ranks(processor.rules.rules[a.rule], below: processor.rules.rules[b.rule]) }!
            if let visitor = processor.visitors[winner.timer.visitorID],
               let decision = processor.decide(winner.timer, rule: winner.rule, visitor: visitor, wallNow: wallNow) {
                decisions.append(decision)
            }
            batch.removeAll(keepingCapacity: true)
        }
        while let timer = timers.popDue(atOrBefore: now) {
            statistics.timersFired += 1
            if let last = batch.last?.timer, last.due != timer.due || last.visitorID != timer.visitorID || timer.kind == .sessionEnd {
                flush(&batch, into: &decisions, processor: &self)
            }
            switch timer.kind {
            case .dwell(let rule, let generation):
                guard var visitor = visitors[timer.visitorID] else { continue }
                visitor.pendingDwellTimers -= 1
                pendingRuleTimers -= 1
                if generation == visitor.pageGeneration && !visitor.settled(rule) {
                    visitor.settle(rule)
                    batch.append((timer, rule))
                }
                visitors[timer.visitorID] = visitor
            case .release:
                guard var visitor = visitors[timer.visitorID] else { continue }
                flush(&batch, into: &decisions, processor: &self)
                while let first = visitor.held.first, first.time <= now {
                    visitor.held.removeFirst()
                    heldEvents -= 1
                    let settled = apply(first, idHash: RecentEventIDs.hash(first.id), to: &visitor, wallNow: wallNow)
                    decisions += settled
                }
                visitors[timer.visitorID] = visitor
            case .sessionEnd:
                guard var visitor = visitors[timer.visitorID] else { continue }
                let end = visitor.lastEventTime + configuration.sessionGap
                if end <= now && visitor.pendingDwellTimers == 0 && visitor.held.isEmpty {
                    visitors[timer.visitorID] = nil
                    returning[RecentEventIDs.hash(timer.visitorID)] = UInt32(visitor.features.visits) << 16
                        | UInt32(truncatingIfNeeded: max(0, end.milliseconds / 86_400_000) & 0xFFFF)
                    statistics.evictedVisitors += 1
                } else {
                    // Check again when the session may have ended and every dwell timer has fired.
                    let next = max(end, visitor.latestDwellDue, visitor.held.first?.time ?? end, timer.due + Millis(1))
                    timers.schedule(VisitorTimer(due: next, visitorID: timer.visitorID, kind: .sessionEnd))
                    visitors[timer.visitorID] = visitor
                }
            }
        }
        flush(&batch, into: &decisions, processor: &self)
        statistics.decisions += decisions.count
        return decisions
    }

    private func decide(_ timer: VisitorTimer, rule index: Int, visitor: VisitorState, wallNow: EventTime) -> Decision? {
        guard let path = visitor.pagePath else { return nil }
        let rule = rules.rules[index]
        return Decision(
            id: Decision.makeID(visitorID: timer.visitorID, ruleID: rule.id, trigger: visitor.pageEventID),
            visitorID: timer.visitorID, userID: visitor.userID, action: rule.action, ruleID: rule.id,
            ruleVersion: rule.version, intent: zip(model.intents, visitor.scores).map { ($0.name, (Double($1) * 1000).rounded() / 1000) },
            reason: "on \(path)\(rule.dwellPage.pattern == path ? "" : " (matches \(rule.dwellPage))") for at least \(rule.dwellAtLeast) since \(visitor.pageSince)",
            payload: rule.payload, channel: visitor.channel, eventTime: timer.due, decidedAt: wallNow,
            expiresAt: timer.due + rule.expiresAfter, triggerEventID: visitor.pageEventID, experiment: .treatment)
    }
}
