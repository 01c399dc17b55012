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
    public var sessionID: String?
    public var channel: String
    public var pagePath: String?
    public var pageURL: String?
    public var properties: EventProperties

    public init(
        id: String, type: EventType, visitorID: String, time: EventTime, timeWasClamped: Bool = false,
        userID: String? = nil, sessionID: String? = nil, channel: String = "web", pagePath: String? = nil,
        pageURL: String? = nil, properties: EventProperties = EventProperties()
    ) {
        self.id = id
        self.type = type
        self.visitorID = visitorID
        self.time = time
        self.timeWasClamped = timeWasClamped
        self.userID = userID
        self.sessionID = sessionID
        self.channel = channel
        self.pagePath = pagePath
        self.pageURL = pageURL
        self.properties = properties
    }
}
