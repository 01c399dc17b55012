/// Event time in deciseconds since 2026-01-01T00:00Z, in 32 bits (±6.8 years).
///
/// Windowed features keep times at this resolution so a window entry fits in 8 bytes.
/// Every tick is derived from an event's own time, never from arrival, so the same
/// events give the same ticks in any order.
public struct Tick: Comparable, Hashable, Sendable {
    public var value: Int32
    static let epochMilliseconds: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z
    static let never = Tick(value: .min)

    init(value: Int32) { self.value = value }

    @inline(__always) public init(_ time: EventTime) {
        let d = time.milliseconds - Self.epochMilliseconds
        let floor = d >= 0 ? d / 100 : -((-d + 99) / 100)
        value = Int32(clamping: floor)
    }

    public static func < (a: Tick, b: Tick) -> Bool { a.value < b.value }

    /// Seconds from `self` to `later` (0 when `self` is `never` or later).
    func seconds(until later: Tick) -> Double {
        self == .never || later < self ? 0 : Double(Int64(later.value) - Int64(value)) / 10
    }

    func minus(milliseconds: Int64) -> Tick { Tick(value: Int32(clamping: Int64(value) - milliseconds / 100)) }
}

/// The four latest `(tick, tag)` entries of one kind, kept inline: 32 bytes with 32-bit
/// tags (hashes of paths and elements), 20 with 8-bit ones (depths, kinds).
///
/// Keeping the latest four of a multiset does not depend on the order entries arrive in,
/// so counts over windows read from it are order-independent. Counts above four read as
/// four: windows are for "≥ 3 errors in 5 minutes", not for totals (sessions keep those).
struct Recent4<Tag: FixedWidthInteger & UnsignedInteger & Sendable>: Sendable, Equatable {
    /// Ticks with the sign bit flipped (so they order as unsigned), 0 for an empty slot.
    private var ticks: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    private var tags: (Tag, Tag, Tag, Tag) = (0, 0, 0, 0)

    /// Equal when they hold the same multiset of entries, whatever the slots.
    static func == (a: Recent4, b: Recent4) -> Bool { a.sorted == b.sorted }

    var sorted: [UInt64] { (0..<4).map { key($0) }.sorted() }

    @inline(__always) private func tick(_ i: Int) -> UInt32 {
        withUnsafeBytes(of: ticks) { $0.load(fromByteOffset: i * 4, as: UInt32.self) }
    }

    @inline(__always) private func tag(_ i: Int) -> Tag {
        withUnsafeBytes(of: tags) { $0.load(fromByteOffset: i * MemoryLayout<Tag>.size, as: Tag.self) }
    }

    /// The entry as one number that orders by tick, then tag; 0 for an empty slot.
    @inline(__always) private func key(_ i: Int) -> UInt64 { UInt64(tick(i)) << 32 | UInt64(tag(i)) }

    @inline(__always) private static func biased(_ tick: Tick) -> UInt32 { UInt32(bitPattern: tick.value) ^ 0x8000_0000 }

    @inline(__always) private static func unbiased(_ tick: UInt32) -> Tick { Tick(value: Int32(bitPattern: tick ^ 0x8000_0000)) }

    @inline(__always) private mutating func set(_ i: Int, _ tick: UInt32, _ tag: Tag) {
        withUnsafeMutableBytes(of: &ticks) { $0.storeBytes(of: tick, toByteOffset: i * 4, as: UInt32.self) }
        withUnsafeMutableBytes(of: &tags) { $0.storeBytes(of: tag, toByteOffset: i * MemoryLayout<Tag>.size, as: Tag.self) }
    }

    /// Adds an entry; `tag` is cut to `Tag`'s width.
    mutating func insert(_ tick: Tick, tag: UInt32 = 1) {
        let t = Self.biased(tick), g = Tag(truncatingIfNeeded: tag)
        let entry = UInt64(t) << 32 | UInt64(g)
        var lowest = 0
        for i in 0..<4 {
            let k = key(i)
            if k == 0 { set(i, t, g); return }
            if k < key(lowest) { lowest = i }
        }
        if entry > key(lowest) { set(lowest, t, g) }
    }

    /// Entries at or after `from`, optionally only those with `tag`.
    @inline(__always) func count(since from: Tick, tag: UInt32? = nil) -> Int {
        // An empty slot's 0 is below any bound of 1 or more: one unsigned comparison of all
        // four ticks at once (and of the tags, when they are 32-bit) instead of a loop.
        var hit = unsafeBitCast(ticks, to: SIMD4<UInt32>.self) .>= SIMD4(repeating: max(Self.biased(from), 1))
        if let tag {
            let tags = Tag.bitWidth == 32 ? unsafeBitCast(tags, to: SIMD4<UInt32>.self) : SIMD4(UInt32(self.tag(0)), UInt32(self.tag(1)), UInt32(self.tag(2)), UInt32(self.tag(3)))
            hit = hit .& (tags .== SIMD4(repeating: tag))
        }
        return Int(0 &- unsafeBitCast(hit, to: SIMD4<Int32>.self).wrappedSum())
    }

    @inline(__always) func forEach(_ body: (Tick, UInt32) -> Void) {
        for i in 0..<4 where key(i) != 0 { body(Self.unbiased(tick(i)), UInt32(tag(i))) }
    }

    init() {}

    /// Writes the occupied slots (a flag, then a slot mask and each entry), ticks relative to `base`.
    @inline(__always) func encode(into w: inout ColdWriter, base: Tick) {
        // Inline, with the empty case first: most of a visitor's seven windows are empty
        // when it is frozen, and a call each cost about 60 instructions for nothing.
        let ticks = unsafeBitCast(ticks, to: SIMD4<UInt32>.self)
        guard w.flag(ticks != .zero) else { return }
        writeEntries(ticks, into: &w, base: base)
    }

    private func writeEntries(_ ticks: SIMD4<UInt32>, into w: inout ColdWriter, base: Tick) {
        var mask: UInt8 = 0
        for i in 0..<4 where ticks[i] != 0 { mask |= 1 << UInt8(i) }
        w.byte(mask)
        for i in 0..<4 where ticks[i] != 0 {
            w.signed(Int64(Self.unbiased(ticks[i]).value) - Int64(base.value))
            if Tag.bitWidth == 8 { w.byte(UInt8(truncatingIfNeeded: tag(i))) } else { w.fixed32(UInt32(truncatingIfNeeded: tag(i))) }
        }
    }

    init(from r: inout ColdReader, base: Tick) {
        guard r.flag() else { return }
        let mask = r.byte()
        for i in 0..<4 where mask & (1 << UInt8(i)) != 0 {
            let tick = Tick(value: Int32(truncatingIfNeeded: Int64(base.value) + r.signed()))
            let tag = Tag.bitWidth == 8 ? Tag(truncatingIfNeeded: r.byte()) : Tag(truncatingIfNeeded: r.fixed32())
            set(i, Self.biased(tick), tag)
        }
    }
}

/// Where a page belongs. Per-class view counts feed the intent model.
public enum PageClass: String, CaseIterable, Sendable {
    case home, category, product, search, pricing, cart, checkout, help, settings, account, other

    /// Position in `allCases`.
    var ordinal: Int {
        switch self {
        case .home: 0
        case .category: 1
        case .product: 2
        case .search: 3
        case .pricing: 4
        case .cart: 5
        case .checkout: 6
        case .help: 7
        case .settings: 8
        case .account: 9
        case .other: 10
        }
    }
}

/// Classifies paths by globs (first match wins); `Rules/models/intent.yaml` may replace
/// the defaults under `page_classes`.
public struct PageClassifier: Sendable, Equatable {
    public var patterns: [(PageClass, PathGlob)]

    public static func == (a: PageClassifier, b: PageClassifier) -> Bool {
        a.patterns.elementsEqual(b.patterns) { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    public static let standard = PageClassifier(patterns: ([
        (.home, "/"), (.category, "/c/**"), (.category, "/category/**"), (.category, "/collections/**"),
        (.product, "/p/**"), (.product, "/product/**"), (.product, "/products/**"), (.search, "/search**"),
        (.pricing, "/pricing**"), (.pricing, "/plans**"), (.cart, "/cart**"), (.cart, "/basket**"),
        (.checkout, "/checkout**"), (.help, "/help**"), (.help, "/support**"), (.help, "/docs**"), (.help, "/faq**"),
        (.settings, "/settings**"), (.settings, "/app/settings**"), (.account, "/account**"), (.account, "/login**"),
        (.account, "/signup**"),
    ] as [(PageClass, String)]).map { ($0.0, PathGlob($0.1)) })

    public init(patterns: [(PageClass, PathGlob)]) { self.patterns = patterns }

    public func classify(_ path: String) -> PageClass {
        patterns.first { $0.1.matches(path) }?.0 ?? .other
    }
}

/// A visitor's session features, updated per event. Every update is commutative (counts,
/// maxima, latest-by-time, the latest four of a kind), so any arrival order of the same
/// events gives the same value. 272 bytes, no heap.
struct VisitorFeatures: Sendable, Equatable {
    // Widest first: Swift lays fields out in this order, so this leaves no padding.
    var classViews = SIMD16<UInt8>()
    var cartCents: Int64 = 0
    /// (tick, path hash) of the latest page views.
    var recentPages = Recent4<UInt32>()
    /// (tick, path hash) of the latest category page views.
    var recentCategories = Recent4<UInt32>()
    /// (tick, page hash) of the latest form errors.
    var formErrors = Recent4<UInt32>()
    /// (tick, element hash) of the latest clicks.
    var clicks = Recent4<UInt32>()
    /// (tick, depth %) of the latest scroll events.
    var scrolls = Recent4<UInt8>()
    var priceHovers = Recent4<UInt8>()
    /// (tick, 1 = a chat with an agent started, 2 = a chat ended) of the latest chat events.
    var chats = Recent4<UInt8>()
    var sessionStart = Tick(value: .max)
    var lastCartChange = Tick.never
    var lastCheckoutProgress = Tick.never
    var checkoutStepSince = Tick.never
    var lastExitIntent = Tick.never
    var lastSentiment: Float = 0
    var lastSentimentAt = Tick.never
    var minSentiment: Float = 0
    var sessionEvents: UInt16 = 0
    var visits: UInt16 = 1
    var pageViews: UInt16 = 0
    var cartItems: Int16 = 0
    var formErrorsSession: UInt16 = 0
    var priceHoversSession: UInt16 = 0
    var checkoutStep: UInt8 = 0
    var purchased = false
    var searches: UInt8 = 0
    var zeroResultSearches: UInt8 = 0
    var exitIntents: UInt8 = 0
    var chatMessages: UInt8 = 0
    var negativeMessages: UInt8 = 0
    var offersShown: UInt8 = 0
    var offersAccepted: UInt8 = 0
    var offersDismissed: UInt8 = 0

    static func hash32(_ s: String) -> UInt32 {
        var h: UInt32 = 0x811C_9DC5
        // Over the contiguous bytes: iterating `utf8` cost about 30 instructions a byte.
        s.withBytes { bytes in
            for byte in bytes {
                h ^= UInt32(byte)
                h &*= 0x0100_0193
            }
        }
        return h | 1
    }

    /// Applies one event of `type` at `tick` that is not a page event (those go through
    /// `applyPage`). `pathHash` is `hash32` of the event's page path, when it has one (form
    /// errors read it). `properties` are read where they lie: a copy retained and released
    /// the text they may hold.
    mutating func apply(_ type: EventType, tick: Tick, properties p: UnsafePointer<EventProperties>, pathHash: UInt32?) {
        if type.isPageEvent { return applyPage(type, tick: tick, pageClass: nil, pathHash: pathHash) }
        sessionStart = min(sessionStart, tick)
        sessionEvents &+= 1
        switch type {
        case .scroll:
            recentPagesScroll(tick, depth: p.pointee.scrollDepth ?? 0)
        case .click:
            clicks.insert(tick, tag: Self.hash32(p.pointee.element ?? ""))
        case .hover where p.pointee.hoverTarget == "price":
            priceHovers.insert(tick)
            priceHoversSession &+= 1
        case .search:
            searches &+= 1
            if p.pointee.searchResults == 0 { zeroResultSearches &+= 1 }
        case .addToCart, .removeFromCart:
            let sign: Int64 = type == .addToCart ? 1 : -1
            let quantity = Int64(p.pointee.quantity ?? 1)
            cartItems &+= Int16(clamping: sign * quantity)
            cartCents &+= sign * quantity * Int64(((p.pointee.price ?? 0) * 100).rounded())
            lastCartChange = max(lastCartChange, tick)
        case .checkoutStep:
            let step = UInt8(clamping: p.pointee.step ?? 0)
            if step > checkoutStep || (step == checkoutStep && tick < checkoutStepSince) {
                checkoutStep = step
                checkoutStepSince = tick
            }
            lastCheckoutProgress = max(lastCheckoutProgress, tick)
        case .formError:
            formErrors.insert(tick, tag: pathHash ?? 0)
            formErrorsSession &+= 1
        case .exitIntent:
            lastExitIntent = max(lastExitIntent, tick)
            exitIntents &+= 1
        case .chatMessage where (p.pointee.chatSender ?? "visitor") == "visitor":
            chatMessages &+= 1
            let score = Float(p.pointee.chatSentiment ?? 0)
            if score <= -0.25 { negativeMessages &+= 1 }
            minSentiment = min(minSentiment, score)
            if tick > lastSentimentAt || (tick == lastSentimentAt && score < lastSentiment) {
                lastSentimentAt = tick
                lastSentiment = score
            }
        case .chatStarted where p.pointee.chatWith == "agent":
            chats.insert(tick, tag: 1)
        case .chatEnded:
            chats.insert(tick, tag: 2)
        case .purchase:
            purchased = true
            lastCheckoutProgress = max(lastCheckoutProgress, tick)
        case .offerShown: offersShown &+= 1
        case .offerAccepted: offersAccepted &+= 1
        case .offerDismissed: offersDismissed &+= 1
        default: break
        }
    }

    /// `apply` for a page event (a view, ping or hidden page), which has no properties.
    /// Inline, and without the optional properties `apply` takes: passed through memory,
    /// the caller's narrow stores of a nil `EventProperties?` were read back by the
    /// callee's wide loads, which do not forward (more than half of `apply`'s time).
    @inline(__always) mutating func applyPage(_ type: EventType, tick: Tick, pageClass: PageClass?, pathHash: UInt32?) {
        sessionStart = min(sessionStart, tick)
        sessionEvents &+= 1
        guard type == .pageView else { return }
        pageViews &+= 1
        if let hash = pathHash {
            recentPages.insert(tick, tag: hash)
            if pageClass == .category { recentCategories.insert(tick, tag: hash) }
        }
        if let pageClass {
            // The byte in place: a lane of the vector set by a variable index went through
            // a copy on the stack, read back whole after the byte was stored (no forwarding).
            withUnsafeMutableBytes(of: &classViews) { views in
                let i = pageClass.ordinal
                if views[i] != .max { views[i] += 1 }
            }
        }
    }

    private mutating func recentPagesScroll(_ tick: Tick, depth: Double) {
        scrolls.insert(tick, tag: UInt32(max(0, min(100, depth.rounded()))))
    }

    /// A new session: session features start over; the visit count goes up.
    mutating func startSession() {
        let visits = self.visits
        self = VisitorFeatures()
        self.visits = visits &+ 1
    }
}

/// Where the visitor is, from the engine's page tracking.
struct PageContext: Sendable {
    /// False when no page is current (none seen, or hidden).
    var onPage: Bool
    var pathHash: UInt32
    var since: Tick
    var pageClass: PageClass
}

/// The feature catalogue: every feature rules and the intent model may name.
///
/// `docs/FEATURES.md` is generated from this (`beckon features --markdown`), and a test
/// fails when the two drift apart.
public enum Feature: String, CaseIterable, Sendable {
    case sessionEvents = "session_events"
    case sessionSeconds = "session_seconds"
    case visits
    case returning
    case pageClass = "page_class"
    case pageDwellSeconds = "page_dwell_seconds"
    case pageViews = "page_views"
    case pageViews5m = "page_views_5m"
    case samePageViews = "same_page_views"
    case sameCategoryViews = "same_category_views"
    case productViews = "product_views"
    case categoryViews = "category_views"
    case pricingViews = "pricing_views"
    case helpViews = "help_views"
    case settingsViews = "settings_views"
    case checkoutViews = "checkout_views"
    case scrollDepth = "scroll_depth"
    case cartItems = "cart_items"
    case cartValue = "cart_value"
    case cartIdleSeconds = "cart_idle_seconds"
    case checkoutStep = "checkout_step"
    case checkoutStepSeconds = "checkout_step_seconds"
    case purchased
    case formErrorsPage = "form_errors_page"
    case formErrors1m = "form_errors_1m"
    case formErrors5m = "form_errors_5m"
    case formErrorsSession = "form_errors_session"
    case rageClick = "rage_click"
    case clicks1m = "clicks_1m"
    case priceHovers5m = "price_hovers_5m"
    case priceHovers = "price_hovers"
    case searches
    case zeroResultSearches = "zero_result_searches"
    case exitIntent = "exit_intent"
    case exitIntents = "exit_intents"
    case chatMessages = "chat_messages"
    case chatSentiment = "chat_sentiment"
    case chatSentimentMin = "chat_sentiment_min"
    case negativeMessages = "negative_messages"
    case humanChat = "human_chat"
    case offersShown = "offers_shown"
    case offersAccepted = "offers_accepted"
    case offersDismissed = "offers_dismissed"

    public enum Kind: String, Sendable {
        case count, seconds, boolean, percent, money, score, category
    }

    public var kind: Kind {
        switch self {
        case .returning, .purchased, .rageClick, .exitIntent, .humanChat: return .boolean
        case .sessionSeconds, .pageDwellSeconds, .cartIdleSeconds, .checkoutStepSeconds: return .seconds
        case .scrollDepth: return .percent
        case .cartValue: return .money
        case .chatSentiment, .chatSentimentMin: return .score
        case .pageClass: return .category
        default: return .count
        }
    }

    public var unit: String {
        switch kind {
        case .count: return self == .checkoutStep ? "step number" : "count"
        case .seconds: return "seconds"
        case .boolean: return "0 or 1"
        case .percent: return "percent (0–100)"
        case .money: return "currency units"
        case .score: return "−1 (negative) … 1 (positive)"
        case .category: return "one of " + PageClass.allCases.map(\.rawValue).joined(separator: ", ")
        }
    }

    public var meaning: String {
        switch self {
        case .sessionEvents: return "Events in the current session."
        case .sessionSeconds: return "Time since the session's first event."
        case .visits: return "Sessions of this visitor seen by this instance, the current one included."
        case .returning: return "1 when `visits` > 1."
        case .pageClass: return "Class of the current page (path globs, `page_classes` in the intent model)."
        case .pageDwellSeconds: return "Time on the current page since it was entered (0 when the page is hidden)."
        case .pageViews: return "Page views in the session."
        case .pageViews5m: return "Page views in the last 5 minutes (reads at most 4)."
        case .samePageViews: return "Of the latest 4 page views, those of the current path (3 = third visit to this page)."
        case .sameCategoryViews: return "On a category page: of the latest 4 category page views, those of this category (3 = third visit to it); 0 elsewhere."
        case .productViews: return "Product page views in the session."
        case .categoryViews: return "Category page views in the session."
        case .pricingViews: return "Pricing page views in the session."
        case .helpViews: return "Help, support, docs and FAQ page views in the session."
        case .settingsViews: return "Settings page views in the session."
        case .checkoutViews: return "Checkout page views in the session."
        case .scrollDepth: return "Deepest scroll on the current page."
        case .cartItems: return "Items in the cart (adds minus removes)."
        case .cartValue: return "Value of the cart (quantity × price)."
        case .cartIdleSeconds: return "Time since the last cart change, while no checkout step or purchase came after it; 0 otherwise."
        case .checkoutStep: return "Highest checkout step reached in the session (0 = none)."
        case .checkoutStepSeconds: return "Time since the highest checkout step was first reached (0 = none)."
        case .purchased: return "1 after a purchase in the session."
        case .formErrorsPage: return "Of the latest 4 form errors, those on the current page."
        case .formErrors1m: return "Form errors in the last minute (reads at most 4)."
        case .formErrors5m: return "Form errors in the last 5 minutes (reads at most 4)."
        case .formErrorsSession: return "Form errors in the session."
        case .rageClick: return "1 when 3 of the latest 4 clicks hit one element within 2 seconds, the last of them in the last minute."
        case .clicks1m: return "Clicks in the last minute (reads at most 4)."
        case .priceHovers5m: return "Hovers on a price in the last 5 minutes (reads at most 4)."
        case .priceHovers: return "Hovers on a price in the session."
        case .searches: return "Searches in the session."
        case .zeroResultSearches: return "Searches with no result in the session."
        case .exitIntent: return "1 when exit intent was seen on the current page."
        case .exitIntents: return "Exit intents in the session."
        case .chatMessages: return "Chat messages the visitor sent in the session."
        case .chatSentiment: return "Sentiment of the visitor's latest chat message (the text itself is not kept)."
        case .chatSentimentMin: return "Most negative sentiment of the visitor's chat messages in the session (0 if none)."
        case .negativeMessages: return "Visitor chat messages with sentiment ≤ −0.25 in the session."
        case .humanChat: return "1 while a chat with a human agent is in progress (its start is the latest chat event)."
        case .offersShown: return "Offers shown in the session (offer_shown events)."
        case .offersAccepted: return "Offers accepted in the session."
        case .offersDismissed: return "Offers dismissed in the session."
        }
    }

    /// The feature's value at `now` (the visitor's latest event time, or a timer's due time).
    @_transparent func value(_ f: VisitorFeatures, page: PageContext, now: Tick) -> Double {
        withUnsafePointer(to: f) { value(of: $0, page: page, now: now) }
    }

    /// `value`, reading the features where they lie: each case loads only its own fields.
    /// (With the features passed as a value, a call whose feature is not a constant, as a
    /// rule condition's, loaded every field before the switch, about 120 instructions.)
    @_transparent func value(of f: UnsafePointer<VisitorFeatures>, page: PageContext, now: Tick) -> Double {
        func b(_ x: Bool) -> Double { x ? 1 : 0 }
        func views(_ c: PageClass) -> Double { Double(f.pointee.classViews[c.ordinal]) }
        switch self {
        case .sessionEvents: return Double(f.pointee.sessionEvents)
        case .sessionSeconds: return f.pointee.sessionStart.seconds(until: now)
        case .visits: return Double(f.pointee.visits)
        case .returning: return b(f.pointee.visits > 1)
        case .pageClass: return Double(page.pageClass.ordinal)
        case .pageDwellSeconds: return !page.onPage ? 0 : page.since.seconds(until: now)
        case .pageViews: return Double(f.pointee.pageViews)
        case .pageViews5m: return Double(f.pointee.recentPages.count(since: now.minus(milliseconds: 300_000)))
        case .samePageViews: return !page.onPage ? 0 : Double(f.pointee.recentPages.count(since: .never, tag: page.pathHash))
        case .sameCategoryViews:
            return page.pageClass != .category ? 0 : Double(f.pointee.recentCategories.count(since: .never, tag: page.pathHash))
        case .productViews: return views(.product)
        case .categoryViews: return views(.category)
        case .pricingViews: return views(.pricing)
        case .helpViews: return views(.help)
        case .settingsViews: return views(.settings)
        case .checkoutViews: return views(.checkout)
        case .scrollDepth:
            var deepest: UInt32 = 0
            f.pointee.scrolls.forEach { tick, depth in if tick >= page.since { deepest = max(deepest, depth) } }
            return Double(deepest)
        // Not `max(0, _)`: the generic function was called, not inlined.
        case .cartItems: return f.pointee.cartItems > 0 ? Double(f.pointee.cartItems) : 0
        case .cartValue: return f.pointee.cartCents > 0 ? Double(f.pointee.cartCents) / 100 : 0
        case .cartIdleSeconds:
            return f.pointee.cartItems > 0 && f.pointee.lastCartChange > f.pointee.lastCheckoutProgress ? f.pointee.lastCartChange.seconds(until: now) : 0
        case .checkoutStep: return Double(f.pointee.checkoutStep)
        case .checkoutStepSeconds: return f.pointee.checkoutStep == 0 ? 0 : f.pointee.checkoutStepSince.seconds(until: now)
        case .purchased: return b(f.pointee.purchased)
        case .formErrorsPage: return !page.onPage ? 0 : Double(f.pointee.formErrors.count(since: .never, tag: page.pathHash))
        case .formErrors1m: return Double(f.pointee.formErrors.count(since: now.minus(milliseconds: 60_000)))
        case .formErrors5m: return Double(f.pointee.formErrors.count(since: now.minus(milliseconds: 300_000)))
        case .formErrorsSession: return Double(f.pointee.formErrorsSession)
        case .rageClick: return b(Self.rage(f.pointee.clicks, now: now))
        case .clicks1m: return Double(f.pointee.clicks.count(since: now.minus(milliseconds: 60_000)))
        case .priceHovers5m: return Double(f.pointee.priceHovers.count(since: now.minus(milliseconds: 300_000)))
        case .priceHovers: return Double(f.pointee.priceHoversSession)
        case .searches: return Double(f.pointee.searches)
        case .zeroResultSearches: return Double(f.pointee.zeroResultSearches)
        case .exitIntent:
            // As of `now`: a timer due before the latest exit intent does not see it.
            return b(page.onPage && f.pointee.lastExitIntent != .never && f.pointee.lastExitIntent >= page.since && f.pointee.lastExitIntent <= now)
        case .exitIntents: return Double(f.pointee.exitIntents)
        case .chatMessages: return Double(f.pointee.chatMessages)
        case .chatSentiment: return Double(f.pointee.lastSentiment)
        case .chatSentimentMin: return Double(f.pointee.minSentiment)
        case .negativeMessages: return Double(f.pointee.negativeMessages)
        case .humanChat: return b(Self.inHumanChat(f.pointee.chats, at: now))
        case .offersShown: return Double(f.pointee.offersShown)
        case .offersAccepted: return Double(f.pointee.offersAccepted)
        case .offersDismissed: return Double(f.pointee.offersDismissed)
        }
    }

    /// How many features there are (`allCases.count`, which builds an array; a test checks the two agree).
    static let count = 43

    /// The feature's place in the catalogue (`allCases` order), and in `values(of:page:now:into:)`.
    @inline(__always) var ordinal: Int { Int(unsafeBitCast(self, to: UInt8.self)) }

    /// `value`, stored at the feature's `ordinal`. (A method: a nested function doing the
    /// same was not inlined, and kept the switch.)
    @_transparent private func put(_ f: UnsafePointer<VisitorFeatures>, _ page: PageContext, _ now: Tick, _ out: UnsafeMutablePointer<Double>, _ only: UInt64) {
        if only & bit != 0 { out[ordinal] = value(of: f, page: page, now: now) }
    }

    /// The feature's bit in a set of features (`ordinal`; the catalogue has fewer than 64).
    @inline(__always) var bit: UInt64 { 1 << UInt64(ordinal) }

    /// Every feature, as a set of bits.
    static var all: UInt64 { (1 << UInt64(count)) - 1 }

    /// Every feature's value at `now`, stored at its `ordinal` (`out` holds `count` places):
    /// at least those in `only`. A feature that takes a search or a window count is left
    /// out when not in `only`; one that is a field read is computed all the same (a test
    /// of its bit would cost as much). Each line is `value` with a
    /// constant feature, so the switch folds away: straight-line code, no dispatch per
    /// feature (a loop over the model's features with `value` cost about 22 instructions a
    /// feature, most of it the jump table and the loop). A test checks each place against
    /// `value`, and that no place is left out.
    @inline(never)
    static func values(of f: UnsafePointer<VisitorFeatures>, page: PageContext, now: Tick, into out: UnsafeMutablePointer<Double>, only: UInt64 = Feature.all) {
        Feature.sessionEvents.put(f, page, now, out, ~0)
        Feature.sessionSeconds.put(f, page, now, out, only)
        Feature.visits.put(f, page, now, out, ~0)
        Feature.returning.put(f, page, now, out, ~0)
        Feature.pageClass.put(f, page, now, out, ~0)
        Feature.pageDwellSeconds.put(f, page, now, out, only)
        Feature.pageViews.put(f, page, now, out, ~0)
        Feature.pageViews5m.put(f, page, now, out, only)
        Feature.samePageViews.put(f, page, now, out, only)
        Feature.sameCategoryViews.put(f, page, now, out, only)
        Feature.productViews.put(f, page, now, out, ~0)
        Feature.categoryViews.put(f, page, now, out, ~0)
        Feature.pricingViews.put(f, page, now, out, ~0)
        Feature.helpViews.put(f, page, now, out, ~0)
        Feature.settingsViews.put(f, page, now, out, ~0)
        Feature.checkoutViews.put(f, page, now, out, ~0)
        Feature.scrollDepth.put(f, page, now, out, only)
        Feature.cartItems.put(f, page, now, out, ~0)
        Feature.cartValue.put(f, page, now, out, ~0)
        Feature.cartIdleSeconds.put(f, page, now, out, only)
        Feature.checkoutStep.put(f, page, now, out, ~0)
        Feature.checkoutStepSeconds.put(f, page, now, out, only)
        Feature.purchased.put(f, page, now, out, ~0)
        Feature.formErrorsPage.put(f, page, now, out, only)
        Feature.formErrors1m.put(f, page, now, out, only)
        Feature.formErrors5m.put(f, page, now, out, only)
        Feature.formErrorsSession.put(f, page, now, out, ~0)
        Feature.rageClick.put(f, page, now, out, only)
        Feature.clicks1m.put(f, page, now, out, only)
        Feature.priceHovers5m.put(f, page, now, out, only)
        Feature.priceHovers.put(f, page, now, out, ~0)
        Feature.searches.put(f, page, now, out, ~0)
        Feature.zeroResultSearches.put(f, page, now, out, ~0)
        Feature.exitIntent.put(f, page, now, out, only)
        Feature.exitIntents.put(f, page, now, out, ~0)
        Feature.chatMessages.put(f, page, now, out, ~0)
        Feature.chatSentiment.put(f, page, now, out, ~0)
        Feature.chatSentimentMin.put(f, page, now, out, ~0)
        Feature.negativeMessages.put(f, page, now, out, ~0)
        Feature.humanChat.put(f, page, now, out, only)
        Feature.offersShown.put(f, page, now, out, ~0)
        Feature.offersAccepted.put(f, page, now, out, ~0)
        Feature.offersDismissed.put(f, page, now, out, ~0)
    }

    /// In a human chat at `now`: the latest chat event at or before `now` is an agent chat's
    /// start (an end at the same instant wins). Later events, which may already be applied
    /// when a timer due at `now` fires, do not count.
    @inline(__always) static func inHumanChat(_ chats: Recent4<UInt8>, at now: Tick) -> Bool {
        // Most visitors never chat: one vector test, inline, to see that (a call cost ~35
        // instructions per rescore), not the search.
        chats.count(since: .never) > 0 && latestChatIsHuman(chats, at: now)
    }

    static func latestChatIsHuman(_ chats: Recent4<UInt8>, at now: Tick) -> Bool {
        var latest: (Tick, UInt32)?
        chats.forEach { tick, tag in
            if tick <= now, latest.map({ (tick, tag) > $0 }) ?? true { latest = (tick, tag) }
        }
        return latest?.1 == 1
    }

    /// Three clicks on one element within 2 s among the latest four, the last within a minute.
    @inline(__always) static func rage(_ clicks: Recent4<UInt32>, now: Tick) -> Bool {
        // A burst's three clicks all lie within the last 62 s: when fewer do (most visitors,
        // most of the time), one vector count, inline, says no without the search.
        clicks.count(since: now.minus(milliseconds: 62_000)) >= 3 && rageBurst(clicks, now: now)
    }

    static func rageBurst(_ clicks: Recent4<UInt32>, now: Tick) -> Bool {
        // No allocation: this runs for every event the frustration score is recomputed on.
        var rage = false
        let recent = now.minus(milliseconds: 60_000)
        clicks.forEach { tick, tag in
            guard !rage, tick >= recent else { return }
            var burst = 0
            let from = tick.minus(milliseconds: 2_000)
            clicks.forEach { t, g in if g == tag && t <= tick && t >= from { burst += 1 } }
            if burst >= 3 { rage = true }
        }
        return rage
    }

    /// The catalogue as Markdown (`docs/FEATURES.md`).
    public static func catalogue(intents: [(name: String, description: String)]) -> String {
        var out = """
            # Feature catalogue

            Generated by `beckon features --markdown` from `Sources/BeckonCore/Features.swift`;
            `FeatureCatalogueTests` fails when this file and the code disagree. Rules and the
            intent model (`Rules/models/intent.yaml`) name features and intents exactly as below.

            Time-dependent features are read at the visitor's latest event time, or at a timer's
            due time. Windowed counts keep the latest four entries of their kind, so they read at
            most 4; session counts keep totals. A session ends after 30 minutes without events
            (`engine.session_gap`).

            ## Features

            | name | type | unit | meaning |
            | --- | --- | --- | --- |

            """
        for feature in allCases {
            out += "| `\(feature.rawValue)` | \(feature.kind.rawValue) | \(feature.unit) | \(feature.meaning) |\n"
        }
        out += """

            ## Intents

            Logistic models over the features above: score = 1 / (1 + e^−(bias + Σ weight × min(feature, cap))),
            in [0, 1]. Weights and the reason for each are in `Rules/models/intent.yaml`.

            | name | type | unit | meaning |
            | --- | --- | --- | --- |

            """
        for intent in intents {
            out += "| `\(intent.name)` | score | probability (0–1) | \(intent.description) |\n"
        }
        return out
    }
}
