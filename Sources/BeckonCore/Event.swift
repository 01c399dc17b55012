#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The event types Beckon understands (DESIGN.md, "Contracts").
public enum EventType: String, Sendable, CaseIterable, Hashable {
    case pageView = "page_view"
    case pagePing = "page_ping"
    case pageHidden = "page_hidden"
    case click
    case hover
    case scroll
    case search
    case addToCart = "add_to_cart"
    case removeFromCart = "remove_from_cart"
    case checkoutStep = "checkout_step"
    case formError = "form_error"
    case exitIntent = "exit_intent"
    case chatMessage = "chat_message"
    case chatStarted = "chat_started"
    case chatEnded = "chat_ended"
    case identify
    case purchase
    case conversion
    case offerShown = "offer_shown"
    case offerAccepted = "offer_accepted"
    case offerDismissed = "offer_dismissed"

    /// Matches the type name as bytes, without making a String.
    init?(utf8: UnsafeRawBufferPointer) {
        let names = Self.utf8Names
        for i in 0..<names.count where names[i].utf8CodeUnitCount == utf8.count
            && bytesEqual(names[i].utf8Start, utf8.baseAddress!, count: utf8.count) {
            self = Self.cases[i]
            return
        }
        return nil
    }

    private static let cases = allCases

    /// Page events drive the page track (current page, dwell), which depends on order.
    @inline(__always) var isPageEvent: Bool { self == .pageView || self == .pagePing || self == .pageHidden }

    /// Position in `allCases`, for table lookups.
    var ordinal: Int {
        switch self {
        case .pageView: 0
        case .pagePing: 1
        case .pageHidden: 2
        case .click: 3
        case .hover: 4
        case .scroll: 5
        case .search: 6
        case .addToCart: 7
        case .removeFromCart: 8
        case .checkoutStep: 9
        case .formError: 10
        case .exitIntent: 11
        case .chatMessage: 12
        case .chatStarted: 13
        case .chatEnded: 14
        case .identify: 15
        case .purchase: 16
        case .conversion: 17
        case .offerShown: 18
        case .offerAccepted: 19
        case .offerDismissed: 20
        }
    }
    /// In `allCases` order (a test checks).
    static let utf8Names: [StaticString] = [
        "page_view", "page_ping", "page_hidden", "click", "hover", "scroll", "search", "add_to_cart", "remove_from_cart",
        "checkout_step", "form_error", "exit_intent", "chat_message", "chat_started", "chat_ended", "identify", "purchase",
        "conversion", "offer_shown", "offer_accepted", "offer_dismissed",
    ]
}

/// One decoded clickstream event, reduced to what the core uses.
///
/// Free text (chat messages, search terms) is not kept here: the decoder hands it to
/// scorers and drops it, so it never reaches state, decisions or storage.
public struct Event: Sendable, Equatable {
    public var id: String
    public var type: EventType
    public var visitorID: String
    /// Event time after clamping (see `EventDecoder`).
    public var time: EventTime
    /// True when the client's `ts` was too far from the broker's timestamp and was replaced.
    public var timeWasClamped: Bool
    public var userID: String?
    public var channel: String
    /// `page.path`, or the path of `page.url` when only the URL was sent.
    public var pagePath: String?
    public var properties: EventProperties

    public init(
        id: String, type: EventType, visitorID: String, time: EventTime, timeWasClamped: Bool = false,
        userID: String? = nil, channel: String = "web", pagePath: String? = nil,
        properties: EventProperties = EventProperties()
    ) {
        self.id = id
        self.type = type
        self.visitorID = visitorID
        self.time = time
        self.timeWasClamped = timeWasClamped
        self.userID = userID
        self.channel = channel
        self.pagePath = pagePath
        self.properties = properties
    }
}
