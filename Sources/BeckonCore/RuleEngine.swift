/// Rule evaluation and the policy: which firings become decisions, and why the others did not.

extension EventTime {
    /// No time (a wake-up not scheduled).
    static let unset = EventTime(milliseconds: .max)
}

/// A set of bits that grows as needed: which of the rules past the 64th held at the last
/// evaluation (bit i for rule 64 + i), in the visitor's sidecar (`heldBeyond64`). The first
/// 64 rules' bits are a word in the state (`VisitorState.heldRules`): an array there cost
/// 8 bytes of every visitor's state for rule sets that few have.
struct RuleBits: Sendable, Equatable {
    private var words: [UInt64] = []

    var isEmpty: Bool { words.allSatisfy { $0 == 0 } }

    func contains(_ i: Int) -> Bool {
        let word = i / 64
        return word < words.count && words[word] & (1 << UInt64(i % 64)) != 0
    }

    mutating func set(_ i: Int, _ value: Bool) {
        let word = i / 64
        while words.count <= word { words.append(0) }
        if value { words[word] |= 1 << UInt64(i % 64) } else { words[word] &= ~(1 << UInt64(i % 64)) }
    }

    init() {}

    func encode(into w: inout ColdWriter) {
        w.unsigned(UInt64(words.count))
        for word in words { w.unsigned(word) }
    }

    init(from r: inout ColdReader) {
        let count = Int(r.unsigned())
        if count > 0 { words = (0..<count).map { _ in r.unsigned() } }
    }
}

/// What the policy remembers of one visitor: prompts per session and day, each rule's
/// latest decision (cooldowns), recent decisions (to know what an `offer_dismissed` was
/// about) and dismissals per action.
struct PromptMemory: Sendable {
    /// Event time of the visitor's latest prompt (for the policy's minimum gap).
    var lastPrompt = EventTime(milliseconds: Int64.min / 2)
    var session: UInt8 = 0
    var today: UInt8 = 0
    var day: Int32 = -1
    /// Tick of the latest dismissal per action (`Action.ordinal`).
    var dismissed: (Int32, Int32, Int32) = (.min, .min, .min)
    /// (rule id hash, event time of its latest decision).
    var lastByRule = RuleDecisionTimes()
    /// (decision id hash, action ordinal) of the latest decisions, at most 8.
    var recent = RecentDecisions()

    mutating func startSession() { session = 0 }

    func capReached(day now: Int32, _ policy: Policy) -> Bool {
        Int(session) >= policy.maxPerSession || (day == now && Int(today) >= policy.maxPerDay)
    }

    func lastDecision(rule: UInt32) -> Int64? { lastByRule.time(of: rule) }

    func dismissedAt(_ action: Action) -> Int32 {
        switch action {
        case .offerHelp: dismissed.0
        case .coupon: dismissed.1
        case .handoff: dismissed.2
        }
    }

    mutating func dismissed(decisionID: String, at tick: Tick) {
        let hash = VisitorFeatures.hash32(decisionID)
        guard let action = recent.action(of: hash) else { return }
        switch action {
        case 0: dismissed.0 = max(dismissed.0, tick.value)
        case 1: dismissed.1 = max(dismissed.1, tick.value)
        default: dismissed.2 = max(dismissed.2, tick.value)
        }
    }

    mutating func record(rule: UInt32, decisionID: String, action: Action, at time: EventTime) {
        let d = Int32(clamping: time.milliseconds / 86_400_000)
        if d != day { day = d; today = 0 }
        today &+= 1
        session &+= 1
        lastByRule.record(rule: rule, at: time.milliseconds)
        recent.append(decision: VisitorFeatures.hash32(decisionID), action: action.ordinal)
    }
}

/// Each rule's latest decision for one visitor: (rule id hash, event time), in the order
/// the rules first fired. The first four inline, the rest (a visitor prompted by more rules
/// than that is rare) in `more`. As arrays, these two lists cost two allocations at a
/// visitor's first decision, two frees and two reads from far away when it was frozen (at
/// 1,000,000 visitors, encoding the prompt memory waited on memory for 2 % of the time).
struct RuleDecisionTimes: Sendable {
    private var rules = InlineArray<4, UInt32>(repeating: 0)
    private var times = InlineArray<4, Int64>(repeating: 0)
    private var inline: UInt8 = 0
    private var more: [(rule: UInt32, time: Int64)] = []

    var count: Int { Int(inline) + more.count }

    subscript(i: Int) -> (rule: UInt32, time: Int64) {
        i < Int(inline) ? (rules[i], times[i]) : more[i - Int(inline)]
    }

    func time(of rule: UInt32) -> Int64? {
        for i in 0..<Int(inline) where rules[i] == rule { return times[i] }
        return more.first { $0.rule == rule }?.time
    }

    /// A decision of `rule` at `time`: the rule's latest time is the later of the two.
    mutating func record(rule: UInt32, at time: Int64) {
        for i in 0..<Int(inline) where rules[i] == rule {
            times[i] = max(times[i], time)
            return
        }
        if let i = more.firstIndex(where: { $0.rule == rule }) {
            more[i].time = max(more[i].time, time)
            return
        }
        append(rule: rule, time: time)
    }

    /// Adds a rule that is not in the list yet (as the compact form reads them back).
    mutating func append(rule: UInt32, time: Int64) {
        if inline < 4 {
            rules[Int(inline)] = rule
            times[Int(inline)] = time
            inline += 1
        } else {
            more.append((rule, time))
        }
    }
}

/// The latest decisions for one visitor, at most eight, oldest first: (decision id hash,
/// action ordinal), inline (see `RuleDecisionTimes`).
struct RecentDecisions: Sendable {
    static let capacity = 8
    private var decisions = InlineArray<8, UInt32>(repeating: 0)
    private var actions = InlineArray<8, UInt8>(repeating: 0)
    private var stored: UInt8 = 0

    var count: Int { Int(stored) }

    subscript(i: Int) -> (decision: UInt32, action: UInt8) { (decisions[i], actions[i]) }

    /// The action of the oldest kept decision with this id hash.
    func action(of decision: UInt32) -> UInt8? {
        for i in 0..<count where decisions[i] == decision { return actions[i] }
        return nil
    }

    /// Adds the newest decision; the oldest goes when eight are kept.
    mutating func append(decision: UInt32, action: UInt8) {
        if count == Self.capacity {
            for i in 1..<Self.capacity {
                decisions[i - 1] = decisions[i]
                actions[i - 1] = actions[i]
            }
            stored -= 1
        }
        decisions[count] = decision
        actions[count] = action
        stored += 1
    }
}

extension Action {
    var ordinal: UInt8 {
        switch self {
        case .offerHelp: 0
        case .coupon: 1
        case .handoff: 2
        }
    }
}

/// A firing the policy kept from becoming a prompt, with the reason; stored for analysts
/// (`suppressions` in PostgreSQL).
public struct SuppressedFiring: Sendable, Equatable {
    /// Deterministic from visitor, rule, trigger, time and reason.
    public var id: String
    public var visitorID: String
    public var ruleID: String
    public var ruleVersion: String
    public var action: Action
    public var reason: Policy.Suppression
    public var eventTime: EventTime
    public var triggerEventID: String
}

/// What made the rules be evaluated.
enum RuleTrigger {
    case event(EventType, id: String)
    case timer

    var eventType: EventType? {
        if case .event(let type, _) = self { return type }
        return nil
    }
}

/// Rule conditions and count filters as one flat array of plain nodes in prefix order: a
/// node's operands follow it, and `end` is where its subtree stops. Evaluating a node
/// retains nothing; walking the `Condition` enum tree retained its arrays at every step.
struct ConditionProgram: Sendable {
    struct Node: Sendable {
        enum Op: UInt8, Sendable { case all, any, not, feature, intent, count, path, pageClass, channel, event }
        var op: Op
        var comparison = Comparison.eq
        var feature = Feature.sessionEvents
        /// The intent, counter, path test or channel list.
        var index: Int32 = 0
        /// Page classes or event types, a bit each.
        var mask: UInt32 = 0
        var value = 0.0
        var end: Int32 = 0
    }

    private(set) var nodes: [Node] = []
    private(set) var channelLists: [[String]] = []

    /// Appends the condition; returns its root node.
    mutating func add(_ c: Condition) -> Int32 {
        let root = Int32(nodes.count)
        append(c)
        return root
    }

    private mutating func append(_ c: Condition) {
        let at = nodes.count
        switch c {
        case .all(let parts):
            nodes.append(Node(op: .all))
            for p in parts { append(p) }
        case .any(let parts):
            nodes.append(Node(op: .any))
            for p in parts { append(p) }
        case .not(let inner):
            nodes.append(Node(op: .not))
            append(inner)
        case .feature(let f, let op, let value): nodes.append(Node(op: .feature, comparison: op, feature: f, value: value))
        case .intent(let i, let op, let value): nodes.append(Node(op: .intent, comparison: op, index: Int32(i), value: value))
        case .count(let i, let op, let value): nodes.append(Node(op: .count, comparison: op, index: Int32(i), value: value))
        case .path(let i): nodes.append(Node(op: .path, index: Int32(i)))
        case .pageClass(let mask): nodes.append(Node(op: .pageClass, mask: UInt32(mask)))
        case .channel(let names):
            nodes.append(Node(op: .channel, index: Int32(channelLists.count)))
            channelLists.append(names)
        case .event(let mask): nodes.append(Node(op: .event, mask: mask))
        }
        nodes[at].end = Int32(nodes.count)
    }
}

/// One rule, as its evaluation after each event reads it: one plain element per rule.
struct RulePlan: Sendable {
    /// The condition's root node in `ConditionProgram`.
    var root: Int32
    /// The event types that can change the condition (bit per `EventType.ordinal`).
    var triggers: UInt32
    /// A path test the condition cannot hold without (the condition, or a part of its
    /// top-level `all`), or -1. Most rules name a page: off it they are not evaluated.
    var requiredPath: Int32
    /// The condition reads a time feature (it may need a wake-up).
    var time: Bool
    /// The condition reads the event just seen (`event == …`).
    var momentary: Bool
    /// The rule is not limited to channels.
    var anyChannel: Bool
}

/// What conditions are read against: the visitor, or (for count filters) the counted event.
struct EvaluationContext {
    var now: Tick
    /// Time features (`*_seconds`) are read at this instant (see `PartitionProcessor`).
    var timeNow: EventTime
    /// The page's id in `PartitionProcessor.pages`, and its first 64 path tests' results
    /// (tests past 64 are read from the page table): no array to retain per evaluation.
    var page: UInt32
    var pathBits: UInt64
    var pageClass: PageClass
    /// The channel's id in `PartitionProcessor.channels`, or 0 with the name in `channelName`
    /// (a channel the table had no room for, or a counter's event). Most visitors' channel
    /// is interned: the context then holds no string to retain and release on each rule
    /// evaluation, and the name is looked up only by the few conditions that read it.
    var channelID: UInt16
    var channelName: String? = nil
    var eventType: EventType?
    /// The visitor was rescored at `now` just before, so `PartitionProcessor.rescored`
    /// holds its feature values (an event's evaluation; not a timer's or a count filter's).
    var rescored = false
}

extension Feature {
    /// Features that grow with time alone, so a condition on them may turn true without an event.
    var isTimeFeature: Bool {
        self == .pageDwellSeconds || self == .cartIdleSeconds || self == .checkoutStepSeconds || self == .sessionSeconds
    }
}

extension Feature {
    /// Event types whose arrival can change the feature (time aside): a rule is evaluated on
    /// an event only when the event can change one of its conditions.
    var changedBy: UInt32 {
        func m(_ types: EventType...) -> UInt32 { types.reduce(0) { $0 | 1 << UInt32($1.ordinal) } }
        let page = m(.pageView, .pagePing, .pageHidden)
        switch self {
        case .sessionEvents, .sessionSeconds, .visits, .returning: return .max
        case .pageClass, .pageDwellSeconds, .pageViews, .pageViews5m, .samePageViews, .sameCategoryViews, .productViews,
             .categoryViews, .pricingViews, .helpViews, .settingsViews, .checkoutViews: return page
        case .scrollDepth: return page | m(.scroll)
        case .cartItems, .cartValue: return m(.addToCart, .removeFromCart)
        case .cartIdleSeconds: return m(.addToCart, .removeFromCart, .checkoutStep, .purchase)
        case .checkoutStep, .checkoutStepSeconds: return m(.checkoutStep)
        case .purchased: return m(.purchase)
        case .formErrorsPage: return page | m(.formError)
        case .formErrors1m, .formErrors5m, .formErrorsSession: return m(.formError)
        case .rageClick, .clicks1m: return m(.click)
        case .priceHovers5m, .priceHovers: return m(.hover)
        case .searches, .zeroResultSearches: return m(.search)
        case .exitIntent: return page | m(.exitIntent)
        case .exitIntents: return m(.exitIntent)
        case .chatMessages, .chatSentiment, .chatSentimentMin, .negativeMessages: return m(.chatMessage)
        case .humanChat: return m(.chatStarted, .chatEnded)
        case .offersShown: return m(.offerShown)
        case .offersAccepted: return m(.offerAccepted)
        case .offersDismissed: return m(.offerDismissed)
        }
    }
}

extension Condition {
    /// Event types that can change whether the condition holds (see `Feature.changedBy`).
    var changedBy: UInt32 {
        let page: UInt32 = 1 << UInt32(EventType.pageView.ordinal) | 1 << UInt32(EventType.pagePing.ordinal) | 1 << UInt32(EventType.pageHidden.ordinal)
        switch self {
        case .all(let parts), .any(let parts): return parts.reduce(0) { $0 | $1.changedBy }
        case .not(let inner): return inner.changedBy
        case .feature(let f, _, _): return f.changedBy
        case .intent: return .max
        case .count: return .max  // refined by the rule set (the counted type)
        case .path, .pageClass: return page
        case .channel: return 0
        case .event(let mask): return mask
        }
    }

    var hasTimeFeature: Bool {
        switch self {
        case .all(let parts), .any(let parts): parts.contains { $0.hasTimeFeature }
        case .not(let inner): inner.hasTimeFeature
        case .feature(let f, _, _): f.isTimeFeature
        default: false
        }
    }

    /// The atoms of the condition, as text with the value seen, for decision reasons.
    func features(into out: inout [Feature]) {
        switch self {
        case .all(let parts), .any(let parts): for p in parts { p.features(into: &out) }
        case .not(let inner): inner.features(into: &out)
        case .feature(let f, _, _): if !out.contains(f) { out.append(f) }
        default: break
        }
    }
}

extension PartitionProcessor {
    /// Derived tables of the rule set: counter layout, counters by type, rules with time conditions.
    mutating func layOutRules() {
        counterOffsets = []
        counterSlots = 0
        countersByType = Array(repeating: [], count: EventType.allCases.count)
        for (i, spec) in rules.counters.enumerated() {
            counterOffsets.append(counterSlots)
            counterSlots += spec.capacity
            countersByType[spec.type.ordinal].append(i)
        }
        let counters = rules.counters
        func mask(_ c: Condition) -> UInt32 {
            switch c {
            case .all(let parts), .any(let parts): return parts.reduce(0) { $0 | mask($1) }
            case .not(let inner): return mask(inner)
            case .count(let i, _, _): return 1 << UInt32(counters[i].type.ordinal)
            default: return c.changedBy
            }
        }
        func readsEvent(_ c: Condition) -> Bool {
            switch c {
            case .all(let parts), .any(let parts): return parts.contains(where: readsEvent)
            case .not(let inner): return readsEvent(inner)
            case .event: return true
            default: return false
            }
        }
        // A path test the whole condition needs: the condition itself, or a part of its `all`.
        func requiredPath(_ c: Condition) -> Int32 {
            switch c {
            case .path(let i): return Int32(i)
            case .all(let parts):
                for part in parts { if case .path(let i) = part { return Int32(i) } }
                return -1
            default: return -1
            }
        }
        program = ConditionProgram()
        rulePlans = rules.rules.map { rule in
            RulePlan(root: program.add(rule.condition), triggers: mask(rule.condition), requiredPath: requiredPath(rule.condition),
                     time: rule.condition.hasTimeFeature, momentary: readsEvent(rule.condition), anyChannel: rule.channels.isEmpty)
        }
        anyRuleTriggers = rulePlans.reduce(0) { $0 | $1.triggers }
        rulesByType = EventType.allCases.map { type in
            rulePlans.prefix(64).enumerated().reduce(0) { $0 | ($1.element.triggers & (1 << UInt32(type.ordinal)) != 0 ? 1 << UInt64($1.offset) : 0) }
        }
        rulesByPath = [UInt64](repeating: 0, count: 64)
        rulesOnAnyPage = 0
        for (i, plan) in rulePlans.prefix(64).enumerated() {
            if (0..<64).contains(plan.requiredPath) { rulesByPath[Int(plan.requiredPath)] |= 1 << UInt64(i) } else { rulesOnAnyPage |= 1 << UInt64(i) }
        }
        filterRoots = rules.counters.map { spec in spec.filter.map { program.add($0) } ?? -1 }
        // What a rescore computes: what the model reads, and what rule conditions can then
        // read from it (`featureValue` computes any other feature itself).
        var read: [Feature] = []
        for rule in rules.rules { rule.condition.features(into: &read) }
        scoredFeatures = read.reduce(compiledModel.features) { $0 | $1.bit }
        ruleHashes = rules.rules.map { VisitorFeatures.hash32($0.id) }
        ruleChannels = rules.rules.map(\.channels)
    }

    /// Replaces the rules and policy between two events (hot reload). What visitors have
    /// done stays: features, scores, cooldowns, caps; rules kept by id keep whether their
    /// condition held (so a reload does not make them fire again); windowed counts with
    /// the same text keep their entries. New time conditions are first checked at the
    /// visitor's next event.
    public mutating func replaceRules(_ new: RuleSet, policy: Policy) {
        if !isKnownUniquelyReferenced(&visitors) { visitors = visitors.copy() }
        let old = rules
        let oldOffsets = counterOffsets
        let ruleMap: [Int?] = old.rules.map { r in new.rules.firstIndex { $0.id == r.id } }
        let counterMap: [Int?] = new.counters.map { c in old.counters.firstIndex { $0.text == c.text } }
        rules = new
        self.policy = policy
        layOutRules()
        let classes = model.pageClasses, tests = new.pathTests, byPath = rulesByPath
        pages.refresh { PageInfo.of($0, classes: classes, tests: tests, rulesByPath: byPath) }
        let offsets = counterOffsets, slots = counterSlots, counters = new.counters, oldCounters = old.counters
        visitors.forEachResident { v, sidecar in
            var first64: UInt64 = 0
            var beyond = RuleBits()
            for (o, n) in ruleMap.enumerated() {
                guard let n, o < 64 ? v.pointee.heldRules & 1 << UInt64(o) != 0 : sidecar?.heldBeyond64.contains(o - 64) == true else { continue }
                if n < 64 { first64 |= 1 << UInt64(n) } else { beyond.set(n - 64, true) }
            }
            v.pointee.heldRules = first64
            if sidecar != nil || !beyond.isEmpty {
                var s = sidecar ?? VisitorTable.Sidecar()
                s.heldBeyond64 = beyond
                sidecar = s
            }
            guard !v.pointee.counters.isEmpty else { return }
            var fresh = slots == 0 ? [] : [Int32](repeating: .min, count: slots)
            for (n, o) in counterMap.enumerated() {
                guard let o else { continue }
                let kept = v.pointee.counters[oldOffsets[o]..<oldOffsets[o] + oldCounters[o].capacity].sorted(by: >).prefix(counters[n].capacity)
                for (k, tick) in kept.enumerated() { fresh[offsets[n] + k] = tick }
            }
            v.pointee.counters = fresh
        }
    }

    /// Records an event in the windowed counts whose type and filter it matches: `pageID`
    /// is the event's page, or the visitor's when the event names none.
    mutating func count(_ type: EventType, at time: EventTime, pageID: UInt32, channel: String, in visitor: inout VisitorState) {
        let specs = countersByType[type.ordinal]
        guard !specs.isEmpty else { return }
        let info = pages[pageID]
        let context = EvaluationContext(
            now: Tick(time), timeNow: time, page: pageID, pathBits: info.pathBits, pageClass: info.pageClass,
            channelID: 0, channelName: channel, eventType: type)
        let tick = Tick(time).value
        for i in specs {
            if filterRoots[i] >= 0, !evaluate(filterRoots[i], &visitor, context) { continue }
            if visitor.counters.isEmpty { visitor.counters = [Int32](repeating: .min, count: counterSlots) }
            let start = counterOffsets[i], end = start + rules.counters[i].capacity
            // Keep the latest `capacity` times: fill a free slot, else replace the oldest if older.
            var oldest = start
            var placed = false
            for k in start..<end {
                if visitor.counters[k] == .min { visitor.counters[k] = tick; placed = true; break }
                if visitor.counters[k] < visitor.counters[oldest] { oldest = k }
            }
            if !placed && tick > visitor.counters[oldest] { visitor.counters[oldest] = tick }
        }
    }

    mutating func countValue(_ i: Int, _ v: inout VisitorState, now: Tick) -> Int {
        guard !v.counters.isEmpty else { return 0 }
        let spec = rules.counters[i]
        let from = spec.window.map { now.minus(milliseconds: $0.value).value } ?? .min
        var n = 0
        for k in counterOffsets[i]..<counterOffsets[i] + spec.capacity {
            let t = v.counters[k]
            if t != .min && t <= now.value && t >= from { n += 1 }
        }
        return n
    }

    /// The context's channel name.
    @inline(__always) func channel(_ x: EvaluationContext) -> String { x.channelName ?? channels[x.channelID] }

    mutating func featureValue(_ f: Feature, _ v: inout VisitorState, _ x: EvaluationContext) -> Double {
        if f == .pageDwellSeconds {
            // Milliseconds, not ticks: "on the page for 45 s" fires exactly 45 s after it was entered.
            return v.pageID == 0 ? 0 : Double(max(0, (x.timeNow - v.pageSince).value)) / 1000
        }
        let now = f.isTimeFeature ? Tick(x.timeNow) : x.now
        // Right after a rescore at the same instant (a rule evaluation on an event), the
        // value is at hand. A timer's evaluation, at its own instant, computes it.
        // (Read in place: a method on the values copied all 344 bytes first.)
        if x.rescored && rescored.handle == v.handle && rescored.tick == now && rescored.computed & f.bit != 0 {
            return withUnsafeBytes(of: &rescored.values) { $0.load(fromByteOffset: f.ordinal * MemoryLayout<Double>.stride, as: Double.self) }
        }
        let page = v.page
        return withUnsafePointer(to: &v.features) { f.value(of: $0, page: page, now: now) }
    }

    /// Whether the condition at node `n` of `program` holds.
    mutating func evaluate(_ n: Int32, _ v: inout VisitorState, _ x: EvaluationContext) -> Bool {
        let node = program.nodes[Int(n)]
        switch node.op {
        case .all:
            var part = n + 1
            while part < node.end {
                if !evaluate(part, &v, x) { return false }
                part = program.nodes[Int(part)].end
            }
            return true
        case .any:
            var part = n + 1
            while part < node.end {
                if evaluate(part, &v, x) { return true }
                part = program.nodes[Int(part)].end
            }
            return false
        case .not: return !evaluate(n + 1, &v, x)
        case .feature: return node.comparison.holds(featureValue(node.feature, &v, x), node.value)
        case .intent:
            let i = Int(node.index)
            return i < model.intents.count && node.comparison.holds(Double(v.scores[i]), node.value)
        case .count: return node.comparison.holds(Double(countValue(Int(node.index), &v, now: x.now)), node.value)
        case .path: return node.index < 64 ? x.pathBits >> UInt64(node.index) & 1 != 0 : pages.passes(x.page, test: Int(node.index))
        case .pageClass: return node.mask & (1 << UInt32(x.pageClass.ordinal)) != 0
        case .channel: return program.channelLists[Int(node.index)].contains(channel(x))
        case .event: return x.eventType.map { node.mask & (1 << UInt32($0.ordinal)) != 0 } ?? false
        }
    }

    /// Whether the condition at node `n` holds, and if not, the earliest instant at which
    /// time alone could make it hold (a `*_seconds` feature reaching its threshold).
    mutating func evaluateWithWake(_ n: Int32, _ v: inout VisitorState, _ x: EvaluationContext) -> (Bool, EventTime?) {
        let node = program.nodes[Int(n)]
        switch node.op {
        case .all:
            var latest: EventTime?
            var holds = true
            var part = n + 1
            while part < node.end {
                let (h, at) = evaluateWithWake(part, &v, x)
                if !h {
                    // A part that time alone cannot make true: the rest cannot change that.
                    guard let at else { return (false, nil) }
                    holds = false
                    latest = max(latest ?? at, at)
                }
                part = program.nodes[Int(part)].end
            }
            return (holds, holds ? nil : latest)
        case .any:
            var earliest: EventTime?
            var part = n + 1
            while part < node.end {
                let (h, at) = evaluateWithWake(part, &v, x)
                if h { return (true, nil) }
                if let at { earliest = min(earliest ?? at, at) }
                part = program.nodes[Int(part)].end
            }
            return (false, earliest)
        case .feature where node.feature.isTimeFeature:
            if node.comparison.holds(featureValue(node.feature, &v, x), node.value) { return (true, nil) }
            guard let due = dueTime(node.feature, node.comparison, node.value, &v), due > x.timeNow else { return (false, nil) }
            return (false, due)
        default:
            return (evaluate(n, &v, x), nil)
        }
    }

    /// When a time feature reaches `value` (for >= and >), from the instant it counts from.
    mutating func dueTime(_ f: Feature, _ op: Comparison, _ value: Double, _ v: inout VisitorState) -> EventTime? {
        guard op == .ge || op == .gt else { return nil }
        if f == .pageDwellSeconds {
            guard v.pageID != 0 else { return nil }
            let millis = Int64((value * 1000).rounded(.up)) + (op == .gt ? 1 : 0)
            return v.pageSince + Millis(millis)
        }
        let anchor: Tick
        let s = v.features
        switch f {
        case .cartIdleSeconds:
            guard s.cartItems > 0 && s.lastCartChange > s.lastCheckoutProgress else { return nil }
            anchor = s.lastCartChange
        case .checkoutStepSeconds:
            guard s.checkoutStep > 0 else { return nil }
            anchor = s.checkoutStepSince
        case .sessionSeconds:
            guard s.sessionStart.value != .max else { return nil }
            anchor = s.sessionStart
        default:
            return nil
        }
        let ticks = op == .gt ? Int64((value * 10).rounded(.down)) + 1 : Int64((value * 10).rounded(.up))
        return EventTime(milliseconds: Tick.epochMilliseconds + (Int64(anchor.value) + ticks) * 100)
    }

    /// The rules `evaluateRules` visits: with at most 64 rules, those the trigger (an event
    /// of `type`, or with `everyRule` any) can change that are on the visitor's page or held
    /// before (to clear them); any other stays as it was, not holding, and needs no wake-up.
    /// With more than 64, all of them (`.max`), or none when the event triggers none.
    /// Asked inline by the callers, which skip `evaluateRules` when there are none: most
    /// events visit no rule, and the call, with its trigger, cost about 100 instructions to
    /// find that out.
    @inline(__always) func rulesToVisit(_ type: EventType?, everyRule: Bool, _ visitor: borrowing VisitorState) -> UInt64 {
        guard rulePlans.count <= 64 else {
            guard !everyRule, let type else { return .max }
            return anyRuleTriggers & 1 << UInt32(type.ordinal) != 0 ? .max : 0
        }
        let triggered: UInt64
        if !everyRule, let type { triggered = rulesByType[type.ordinal] } else { triggered = rulePlans.count == 64 ? .max : (1 << UInt64(rulePlans.count)) - 1 }
        return triggered & (rulesOnAnyPage | pages[visitor.pageID].rules | visitor.heldRules)
    }

    /// Evaluates every rule for a visitor; the rules whose condition turned true go to the
    /// policy, and its decision, if any, is appended to `decisions`. Schedules a wake-up for
    /// the earliest instant a time condition may turn true.
    ///
    /// On an event, only rules the event type can affect are evaluated (all of them when the
    /// event opens a session): a rule that depends only on the page and time then fires from
    /// its timer or a page event, both applied in event-time order, so at the same instant
    /// in any arrival order.
    ///
    /// `visit`: what `rulesToVisit` says for the trigger (not 0).
    mutating func evaluateRules(slot: Int32, visitor: inout VisitorState, trigger: RuleTrigger, at now: EventTime, everyRule: Bool, visit: UInt64, wallNow: EventTime, into decisions: inout [Decision]) {
        let typeBit: UInt32 = trigger.eventType.map { 1 << UInt32($0.ordinal) } ?? .max
        let matches = pages[visitor.pageID].pathBits
        let screened = rulePlans.count <= 64
        let context = EvaluationContext(
            now: Tick(now), timeNow: now, page: visitor.pageID, pathBits: matches, pageClass: visitor.pageClass,
            channelID: visitor.channel, channelName: visitor.channel != 0 ? nil : visitors.sidecar(slot)?.channel ?? "",
            eventType: trigger.eventType, rescored: trigger.eventType != nil)
        var risen: [Int] = []
        var wake: EventTime?
        @inline(__always) func consider(_ i: Int, _ p: inout PartitionProcessor) {
            let plan = p.rulePlans[i]
            var holds = false
            // Off the page the rule needs, it does not hold, and time alone cannot change that.
            let onPage = plan.requiredPath < 0 || plan.requiredPath >= 64 || matches >> UInt64(plan.requiredPath) & 1 != 0
            if onPage && (plan.anyChannel || p.ruleChannels[i].contains(p.channel(context))) {
                if plan.time {
                    let (h, at) = p.evaluateWithWake(plan.root, &visitor, context)
                    holds = h
                    if !h, let at { wake = min(wake ?? at, at) }
                } else {
                    holds = p.evaluate(plan.root, &visitor, context)
                }
            }
            let was = i < 64 ? visitor.heldRules & 1 << UInt64(i) != 0 : p.visitors.held(rule: i, slot: slot)
            if holds && !was { risen.append(i) }
            // "The event just seen" holds only at that instant: what stays is the condition
            // without it, so the next such event can fire the rule again.
            var stays = holds
            if holds && plan.momentary && context.eventType != nil {
                var x = context
                x.eventType = nil
                stays = p.evaluate(plan.root, &visitor, x)
            }
            if stays != was {
                if i < 64 { visitor.heldRules ^= 1 << UInt64(i) } else { p.visitors.setHeld(rule: i, stays, slot: slot) }
            }
        }
        if screened {
            // In index order, as the loop over every rule below.
            var visit = visit
            while visit != 0 {
                consider(visit.trailingZeroBitCount, &self)
                visit &= visit &- 1
            }
        } else {
            for i in rulePlans.indices where everyRule || rulePlans[i].triggers & typeBit != 0 { consider(i, &self) }
        }
        if let wake { scheduleWake(wake, slot: slot, visitor: &visitor, after: now) }
        guard !risen.isEmpty else { return }
        decide(risen, slot: slot, visitor: &visitor, trigger: trigger, at: now, context: context, wallNow: wallNow, into: &decisions)
    }

    /// Priority order of rules: higher priority wins; on a tie, the smaller rule id wins.
    static func ranks(_ a: Rule, below b: Rule) -> Bool {
        a.priority != b.priority ? a.priority < b.priority : a.id > b.id
    }

    /// One prompt at a time: the policy picks at most one of the rules that fired together.
    ///
    /// Visitor-wide limits (in a human chat, minimum gap, caps) suppress every firing.
    /// Otherwise the firings are taken by priority: one held back by its own limits
    /// (cooldown, dismissed backoff, coupon budget) lets the next one try; the first that
    /// passes wins and the rest are `lower_priority`. A winner in its rule's holdout group
    /// is recorded with `experiment = holdout` and counts as a prompt for every limit.
    mutating func decide(_ risen: [Int], slot: Int32, visitor: inout VisitorState, trigger: RuleTrigger, at time: EventTime, context: EvaluationContext, wallNow: EventTime,
                         into decisions: inout [Decision]) {
        let sidecar = visitors.sidecar(slot)
        let prompts = sidecar?.prompts ?? PromptMemory()
        let order = risen.count == 1 ? risen : risen.sorted { Self.ranks(rules.rules[$1], below: rules.rules[$0]) }
        let triggerID: String
        if case .event(_, let id) = trigger { triggerID = id } else { triggerID = visitor.pageEventID }
        let tick = Tick(time)
        let visitorID = visitor.visitorID
        func suppress(_ i: Int, _ reason: Policy.Suppression, _ processor: inout PartitionProcessor) {
            let ruleID = processor.rules.rules[i].id
            processor.statistics.suppressed[reason.rawValue, default: 0] += 1
            processor.suppressions.append(SuppressedFiring(
                id: StableHash.hex("suppression", visitorID, ruleID, "\(triggerID)@\(time.milliseconds)", reason.rawValue), visitorID: visitorID, ruleID: ruleID,
                ruleVersion: processor.rules.rules[i].version, action: processor.rules.rules[i].action, reason: reason, eventTime: time,
                triggerEventID: triggerID))
        }
        let day = Int32(clamping: time.milliseconds / 86_400_000)
        var visitorWide: Policy.Suppression?
        if policy.quietDuringHumanChat && Feature.inHumanChat(visitor.features.chats, at: tick) {
            visitorWide = .inChat
        } else if time < prompts.lastPrompt + policy.minimumGap {
            visitorWide = .minGap
        } else if prompts.capReached(day: day, policy) {
            visitorWide = .cap
        }
        if let visitorWide {
            for i in order { suppress(i, visitorWide, &self) }
            return
        }
        let hour = time.milliseconds / 3_600_000
        var winner: (index: Int, holdout: Bool)?
        for i in order {
            if winner != nil { suppress(i, .lowerPriority, &self); continue }
            // Fields, not a `Rule` copy (a copy retains a dozen strings).
            if let last = prompts.lastDecision(rule: ruleHashes[i]),
               time.milliseconds < last + (rules.rules[i].cooldown ?? policy.defaultCooldown).value {
                suppress(i, .cooldown, &self)
                continue
            }
            let action = rules.rules[i].action
            let dismissed = prompts.dismissedAt(action)
            if dismissed != .min && Int64(tick.value) < Int64(dismissed) + policy.dismissedBackoff.value / 100 {
                suppress(i, .dismissedBackoff, &self)
                continue
            }
            if action == .coupon, let budget = policy.couponsPerHour, couponsByHour[hour, default: 0] >= budget {
                suppress(i, .budget, &self)
                continue
            }
            winner = (i, Self.inHoldout(visitorID: visitorID, ruleID: rules.rules[i].id, share: rules.rules[i].holdout))
        }
        guard let (index, holdout) = winner else { return }
        // Fields, not a `Rule` copy (see above).
        let action = rules.rules[index].action, ruleID = rules.rules[index].id
        if holdout { suppress(index, .holdout, &self) }
        let id = Decision.makeID(visitorID: visitorID, ruleID: ruleID, trigger: triggerID, at: time)
        let ruleHash = ruleHashes[index]
        visitors.updateSidecar(slot) { $0.prompts.lastPrompt = time; $0.prompts.record(rule: ruleHash, decisionID: id, action: action, at: time) }
        if action == .coupon && !holdout, policy.couponsPerHour != nil {
            couponsByHour[hour, default: 0] += 1
            if couponsByHour.count > 4 { couponsByHour = couponsByHour.filter { $0.key >= hour - 2 } }
        }
        let payload = rules.rules[index].payload.map { ($0.0, fill($0.1, &visitor, context)) }
        let cause: EventType?
        if case .event(let type, _) = trigger { cause = type } else { cause = nil }
        // Made where it goes: returned as an optional, it was copied into the list and the
        // original destroyed (an outlined copy and destroy per decision, 0.5 % of the time).
        decisions.append(Decision(
            id: id, visitorID: visitorID, userID: sidecar?.userID, action: action, ruleID: ruleID, ruleVersion: rules.rules[index].version,
            intentNames: intentNames, scores: visitor.scores, condition: rules.rules[index].conditionText, cause: cause, page: pages.path(visitor.pageID),
            payload: payload, channel: channel(context), eventTime: time, decidedAt: wallNow,
            expiresAt: time + rules.rules[index].expiresAfter, triggerEventID: triggerID, experiment: holdout ? .holdout : .treatment))
    }

    /// A deterministic share of visitors per rule: the same visitor is always in or out.
    static func inHoldout(visitorID: String, ruleID: String, share: Double) -> Bool {
        guard share > 0 else { return false }
        let bucket = fnv64("holdout\u{1}\(visitorID)\u{1}\(ruleID)") % 10_000
        return Double(bucket) < share * 10_000
    }

    /// Fills `{placeholders}` of a payload text with the visitor's values.
    mutating func fill(_ text: String, _ v: inout VisitorState, _ x: EvaluationContext) -> String {
        // Over the bytes in place: `utf8.contains` went byte by byte through the generic
        // sequence, about 1,300 instructions per decision for the shipped payloads.
        guard text.withBytes({ $0.contains(UInt8(ascii: "{")) }) else { return text }
        var out = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            out += rest[..<open]
            let name = String(rest[rest.index(after: open)..<close])
            if name == "page.path" {
                out += pages.path(v.pageID) ?? ""
            } else if name == "channel" {
                out += channel(x)
            } else if name.hasPrefix("intent."), let i = model.intents.firstIndex(where: { $0.name == name.dropFirst(7) }) {
                out += Self.format(Double(v.scores[i]))
            } else if let f = Feature(rawValue: name) {
                out += f == .pageClass ? v.pageClass.rawValue : Self.format(featureValue(f, &v, x))
            }
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        let cents = (value * 100).rounded() / 100
        return String(cents)
    }
}
