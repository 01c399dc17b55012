@testable import BeckonCore
import CBeckonSIMD
import Foundation
import PropertyBased
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

func shippedModel() throws -> IntentModel {
    let path = repositoryRoot + "/Rules/models/intent.yaml"
    return try IntentModel.load(file: path, text: String(contentsOfFile: path, encoding: .utf8)).get()
}

/// Builds events for one visitor at seconds after t0.
struct Script {
    var visitor = "v"
    var events: [Event] = []
    var next = 0

    mutating func add(_ type: EventType, at seconds: Double, path: String? = nil, _ edit: (inout EventProperties) -> Void = { _ in }) {
        var properties = EventProperties()
        edit(&properties)
        next += 1
        events.append(Event(id: "\(visitor)-\(next)", type: type, visitorID: visitor, time: t0 + Millis(Int64(seconds * 1000)),
                            pagePath: path, properties: properties))
    }

    /// Features after every event is applied (the watermark is moved past all of them).
    func features(model: IntentModel = .empty, rules: RuleSet = .empty) -> [Feature: Double] {
        var p = PartitionProcessor(rules: rules, model: model, configuration: configuration())
        let wall = t0 + .minutes(600)
        for e in events { _ = p.process(e, arrivedAt: wall) }
        _ = p.advanceIdle(wallNow: wall + .seconds(10))
        return p.features(of: visitor) ?? [:]
    }
}

@Suite("Features, by hand")
struct FeatureTests {
    @Test func pagesAndDwell() {
        var s = Script()
        s.add(.pageView, at: 0, path: "/")
        s.add(.pageView, at: 10, path: "/c/shoes")
        s.add(.pageView, at: 20, path: "/p/sku-1")
        s.add(.pageView, at: 30, path: "/c/shoes")
        s.add(.pageView, at: 40, path: "/p/sku-2")
        s.add(.pageView, at: 50, path: "/c/shoes")
        s.add(.pagePing, at: 65, path: "/c/shoes")
        s.add(.scroll, at: 66) { $0.scrollDepth = 40 }
        s.add(.scroll, at: 67) { $0.scrollDepth = 75 }
        s.add(.scroll, at: 68) { $0.scrollDepth = 60 }
        let f = s.features()
        #expect(f[.pageViews] == 6)
        #expect(f[.categoryViews] == 3)
        #expect(f[.productViews] == 2)
        // The latest four views: sku-1 (20 s), shoes (30 s), sku-2 (40 s), shoes (50 s).
        #expect(f[.samePageViews] == 2)
        #expect(f[.pageDwellSeconds] == 18)  // on /c/shoes since 50 s; latest event at 68 s
        #expect(f[.pageClass] == Double(PageClass.allCases.firstIndex(of: .category)!))
        #expect(f[.scrollDepth] == 75)
        #expect(f[.sessionEvents] == 10)
        #expect(f[.sessionSeconds] == 68)
        #expect(f[.pageViews5m] == 4)  // windows read at most 4
    }

    /// A window of 1 or 5 minutes holds an entry exactly that old, and not one a tenth of a
    /// second older.
    @Test func windowsHoldWhatIsExactlyTheirSpanOld() {
        var s = Script()
        s.add(.pageView, at: 10, path: "/p/a")
        s.add(.formError, at: 10, path: "/p/a") { $0.field = "x" }
        s.add(.click, at: 10) { $0.element = "b" }
        s.add(.hover, at: 10) { $0.element = "p"; $0.hoverTarget = "price" }
        s.add(.pagePing, at: 70, path: "/p/a")
        var f = s.features()
        #expect(f[.formErrors1m] == 1)
        #expect(f[.clicks1m] == 1)
        s.add(.pagePing, at: 70.1, path: "/p/a")
        f = s.features()
        #expect(f[.formErrors1m] == 0)
        #expect(f[.clicks1m] == 0)
        #expect(f[.formErrors5m] == 1)
        s.add(.pagePing, at: 310, path: "/p/a")
        f = s.features()
        #expect(f[.pageViews5m] == 1)
        #expect(f[.formErrors5m] == 1)
        #expect(f[.priceHovers5m] == 1)
        s.add(.pagePing, at: 310.1, path: "/p/a")
        f = s.features()
        #expect(f[.pageViews5m] == 0)
        #expect(f[.formErrors5m] == 0)
        #expect(f[.priceHovers5m] == 0)
        #expect(f[.formErrorsPage] == 1)  // per page, not windowed
    }

    /// The inline screens in front of the rage-click and human-chat searches never change
    /// their answer: random clicks (few elements, around the 60 s and 2 s edges) and chats.
    @Test func rageAndChatScreensAgreeWithTheSearch() async {
        var bursts = 0
        await propertyCheck(count: 2_000, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SeededGenerator(seed: UInt64(seed))
            let now = Tick(value: 100_000)
            var clicks = Recent4<UInt32>(), chats = Recent4<UInt8>()
            // Bursts that start 58 to 63 s ago and last up to 2.5 s: on both sides of the edges.
            let start = Int64(58_000 + rng.next() % 51 * 100)
            for _ in 0..<Int(rng.next() % 5) {
                clicks.insert(now.minus(milliseconds: start - Int64(rng.next() % 26) * 100), tag: UInt32(rng.next() % 2) + 1)
            }
            for _ in 0..<Int(rng.next() % 3) {
                chats.insert(now.minus(milliseconds: Int64(rng.next() % 100) * 100 - 2_000), tag: UInt32(rng.next() % 2))
            }
            #expect(Feature.rage(clicks, now: now) == Feature.rageBurst(clicks, now: now))
            if Feature.rageBurst(clicks, now: now) { bursts += 1 }
            #expect(Feature.inHumanChat(chats, at: now) == Feature.latestChatIsHuman(chats, at: now))
        }
        #expect(bursts > 100)  // the generator makes rage often enough to test the screen
    }

    @Test func cartAndCheckout() {
        var s = Script()
        s.add(.addToCart, at: 0) { $0.sku = "a"; $0.price = 19.99; $0.quantity = 2 }
        s.add(.addToCart, at: 10) { $0.sku = "b"; $0.price = 5 }
        s.add(.removeFromCart, at: 20) { $0.sku = "b"; $0.price = 5 }
        var f = s.features()
        #expect(f[.cartItems] == 2)
        #expect(f[.cartValue] == 39.98)
        #expect(f[.cartIdleSeconds] == 0)  // the latest event is the cart change itself
        s.add(.click, at: 80) { $0.element = "x" }
        f = s.features()
        #expect(f[.cartIdleSeconds] == 60)
        s.add(.checkoutStep, at: 90) { $0.step = 1 }
        s.add(.checkoutStep, at: 100) { $0.step = 2 }
        s.add(.checkoutStep, at: 130) { $0.step = 2 }
        s.add(.click, at: 160) { $0.element = "y" }
        f = s.features()
        #expect(f[.cartIdleSeconds] == 0)  // checkout progress came after the last cart change
        #expect(f[.checkoutStep] == 2)
        #expect(f[.checkoutStepSeconds] == 60)  // step 2 first reached at 100 s
        #expect(f[.purchased] == 0)
        s.add(.purchase, at: 170) { $0.orderID = "o"; $0.value = 39.98 }
        #expect(s.features()[.purchased] == 1)
    }

    @Test func formErrorsRageClicksHoversSearches() {
        var s = Script()
        s.add(.pageView, at: 0, path: "/settings/workflows/advanced")
        s.add(.formError, at: 2, path: "/settings/workflows/advanced") { $0.field = "cron" }
        s.add(.formError, at: 100, path: "/settings/workflows/advanced") { $0.field = "cron" }
        s.add(.formError, at: 200, path: "/settings/workflows/advanced") { $0.field = "cron" }
        s.add(.formError, at: 290, path: "/settings/other") { $0.field = "name" }
        s.add(.click, at: 300) { $0.element = "save" }
        s.add(.click, at: 300.5) { $0.element = "save" }
        s.add(.click, at: 301.5) { $0.element = "save" }
        s.add(.hover, at: 302) { $0.element = "p"; $0.hoverTarget = "price" }
        s.add(.hover, at: 303) { $0.element = "p"; $0.hoverTarget = "product" }
        s.add(.search, at: 304) { $0.searchResults = 0 }
        s.add(.search, at: 305) { $0.searchResults = 12 }
        let f = s.features()
        #expect(f[.formErrorsSession] == 4)
        #expect(f[.formErrors5m] == 3)  // at 305 s: 2 s is outside the 5 minutes
        #expect(f[.formErrors1m] == 1)
        #expect(f[.formErrorsPage] == 3)
        #expect(f[.rageClick] == 1)
        #expect(f[.clicks1m] == 3)
        #expect(f[.priceHovers] == 1)
        #expect(f[.priceHovers5m] == 1)
        #expect(f[.searches] == 2)
        #expect(f[.zeroResultSearches] == 1)
        #expect(f[.settingsViews] == 1)

        var slow = Script()
        for (i, t) in [0.0, 2.5, 5.0].enumerated() { slow.add(.click, at: t) { $0.element = "save\(i % 1)" } }
        #expect(slow.features()[.rageClick] == 0)  // three clicks, but not within 2 s
    }

    @Test func exitIntentBelongsToThePage() {
        var s = Script()
        s.add(.pageView, at: 0, path: "/checkout/payment")
        s.add(.exitIntent, at: 50)
        var f = s.features()
        #expect(f[.exitIntent] == 1)
        #expect(f[.exitIntents] == 1)
        s.add(.pageView, at: 60, path: "/checkout/review")
        f = s.features()
        #expect(f[.exitIntent] == 0)
        #expect(f[.exitIntents] == 1)
    }

    @Test func chatAndOffers() {
        var s = Script()
        s.add(.chatMessage, at: 1) { $0.chatSender = "visitor"; $0.chatSentiment = Sentiment.score(Array("this is great, thanks".utf8)) }
        s.add(.chatMessage, at: 2) { $0.chatSender = "agent"; $0.chatSentiment = -0.9 }
        s.add(.chatMessage, at: 3) { $0.chatSentiment = Sentiment.score(Array("这个太差了，我很生气".utf8)) }
        var f = s.features()
        #expect(f[.chatMessages] == 2)  // the agent's message is not the visitor's
        #expect(f[.negativeMessages] == 1)
        #expect(f[.chatSentiment]! < -0.5)
        #expect(f[.chatSentimentMin] == f[.chatSentiment])
        #expect(f[.humanChat] == 0)
        s.add(.chatStarted, at: 4) { $0.chatWith = "agent" }
        #expect(s.features()[.humanChat] == 1)
        s.add(.chatEnded, at: 5)
        s.add(.offerShown, at: 6) { $0.decisionID = "d" }
        s.add(.offerDismissed, at: 7) { $0.decisionID = "d" }
        f = s.features()
        #expect(f[.humanChat] == 0)
        #expect(f[.offersShown] == 1)
        #expect(f[.offersDismissed] == 1)
        #expect(f[.offersAccepted] == 0)
    }

    @Test func aReturningVisitorIsCounted() {
        var s = Script()
        s.add(.pageView, at: 0, path: "/")
        s.add(.pageView, at: 3600, path: "/pricing")  // an hour later: a new session
        let f = s.features()
        #expect(f[.visits] == 2)
        #expect(f[.returning] == 1)
        #expect(f[.pageViews] == 1)
        #expect(f[.pricingViews] == 1)
    }

    @Test func theDecoderScoresChatTextAndDropsIt() throws {
        let text = #"{"event_id":"e1","type":"chat_message","visitor_id":"v1","ts":1772445600000,"properties":{"text":"I hate this, it is broken","sender":"visitor"}}"#
        let event = try EventDecoder().decode(Array(text.utf8), key: "v1", brokerTime: nil).get()
        #expect(try #require(event.properties.chatSentiment) < -0.5)
        #expect(!"\(event)".contains("hate"))
    }
}

@Suite("Chat sentiment, English and Chinese")
struct SentimentTests {
    func score(_ text: String) -> Double { Sentiment.score(Array(text.utf8)) }

    /// (text, hand-computed lexicon sum); the score is s / sqrt(s² + 4).
    static let cases: [(String, Double)] = [
        ("great", 1),
        ("this is terrible", -1.5),
        ("not good", -0.75),                        // negated and damped
        ("I don't like it, it is broken", -1.75),   // -0.75 - 1
        ("Thanks, great help", 2),                  // "help" is neutral
        ("no problem at all", 0.75),                // a negated negative is mildly positive
        ("the weather", 0),
        ("很好", 1.5),                               // very good
        ("不错", 1),                                 // "not bad" is a set phrase for good
        ("不满意", -0.75),                            // dissatisfied: negator + satisfied
        ("太差了，我很生气", -3),                        // -1.5 - 1.5
        ("這個產品不錯，謝謝", 2),                        // traditional: not bad + thanks
        ("沒問題", 1),                                // traditional "no problem"
        ("价格太贵了", -1),                             // expensive
        ("不太好", -0.75),                             // not so good
    ]

    @Test(arguments: cases)
    func handComputed(text: String, sum: Double) {
        let expected = sum / (sum * sum + 4).squareRoot()
        #expect(abs(score(text) - expected) < 1e-9, "\(text): \(score(text))")
    }

    @Test func scoresStayInRange() async {
        await propertyCheck(input: Gen.character(in: "\u{20}"..."\u{9FFF}").string(of: 0...80)) { text in
            let s = Sentiment.score(Array(text.utf8))
            #expect(s >= -1 && s <= 1)
        }
    }
}

@Suite("Intent model")
struct IntentModelTests {
    @Test func theShippedModelLoadsWithEveryRequiredIntent() throws {
        let model = try shippedModel()
        #expect(model.intents.map(\.name) == IntentModel.requiredIntents)
        #expect(model.intents.allSatisfy { $0.terms.count >= 3 })
    }

    @Test func scoresFollowTheLogisticFormula() throws {
        let model = try IntentModel.load(file: "m.yaml", text: """
            intents:
              needs_help: {bias: -2, weights: {form_errors_5m: {weight: 1, cap: 2}, help_views: 0.5}}
              abandonment_risk: {bias: 0, weights: {exit_intent: 1}}
              price_sensitivity: {bias: 0, weights: {price_hovers: 1}}
              frustration: {bias: 0, weights: {rage_click: 1}}
              high_value: {bias: 0, weights: {cart_value: 1}}
            """).get()
        var s = Script()
        s.add(.pageView, at: 0, path: "/help/cron")
        for t in [10.0, 20, 30] { s.add(.formError, at: t) { $0.field = "f" } }
        var p = PartitionProcessor(rules: .empty, model: model, configuration: configuration())
        for e in s.events { _ = p.process(e, arrivedAt: t0 + .minutes(600)) }
        _ = p.advanceIdle(wallNow: t0 + .minutes(601))
        let scores = try #require(p.scores(of: "v"))
        // z = -2 + 1 × min(3, 2) + 0.5 × 1 = 0.5
        #expect(scores[0].0 == "needs_help")
        #expect(abs(scores[0].1 - 1 / (1 + exp(-0.5))) < 1e-6)
        #expect(scores.allSatisfy { $0.1 >= 0 && $0.1 <= 1 })
    }

    /// The vector logistic that turns all intents' sums into scores at once: close to the
    /// exact value over the whole range, never 0 (0 marks a state never scored), and 0 in
    /// the places past the model's intents.
    @Test func theVectorLogisticIsTheLogistic() async {
        await propertyCheck(count: 2_000, input: Gen.int(in: 0...Int(UInt32.max))) { seed in
            var rng = SeededGenerator(seed: UInt64(seed))
            // Mostly where scores live, some far out, and the edges of the clamp.
            let z: [Double] = (0..<8).map { lane in
                switch (seed + lane) % 4 {
                case 0: return Double(rng.next() % 2_000_001) / 100_000 - 10
                case 1: return Double(rng.next() % 400_001) / 1_000 - 200
                case 2: return [87.0, -87.0, 88.5, -88.5, 0][Int(rng.next() % 5)]
                default: return Double(rng.next() % 2_001) / 1_000 - 1
                }
            }
            let count = seed % 9
            var out = [Float](repeating: .nan, count: 8)
            beckon_logistic8(z, count, &out)
            for lane in 0..<8 {
                if lane >= count {
                    #expect(out[lane] == 0, "lane \(lane) past \(count) intents")
                    continue
                }
                let exact = 1 / (1 + exp(-z[lane]))
                #expect(abs(Double(out[lane]) - exact) < 1.2e-7, "z \(z[lane]): \(out[lane]), exactly \(exact)")
                #expect(out[lane] > 0 && out[lane] <= 1, "z \(z[lane]): \(out[lane])")
            }
        }
    }

    /// Whatever happened to a visitor, its scores are the model's formula (in Double) over
    /// its features: recomputed whenever a feature changes, and computed right.
    @Test func scoresAreTheFormulaOverTheCurrentFeatures() async throws {
        let shipped = try shippedModel()
        // And a model with a negative cap, whose term adds weight × cap where its feature is
        // 0 (form errors, mostly 0): a rescore skips the zero features' terms only when no
        // cap is negative.
        var capped = shipped
        capped.intents[0].terms[0].cap = -1
        #expect(capped.intents[0].terms[0].feature == .formErrors5m)
        await propertyCheck(count: 40, input: Gen.int(in: 0...1_000_000), Gen.bool) { seed, negativeCap in
            let model = negativeCap ? capped : shipped
            var p = PartitionProcessor(rules: .empty, model: model, configuration: configuration(lateness: 5, idleAfter: 2))
            let events = Journey(seed: UInt64(seed), visitors: 3).shuffled(seed: UInt64(seed), lateness: .seconds(5))
            var worst = 0.0, compared = 0
            for e in events {
                _ = p.process(e, arrivedAt: e.time)
                for visitor in ["v0", "v1", "v2"] {
                    guard let features = p.features(of: visitor), let scores = p.scores(of: visitor) else { continue }
                    for (intent, score) in zip(model.intents, scores) {
                        worst = max(worst, abs(score.1 - intent.score { features[$0]! }))
                    }
                    compared += 1
                }
            }
            #expect(compared > 0)
            #expect(worst < 1e-5, "seed \(seed): a score is off by \(worst)")
        }
    }

    /// Rescoring reads the features at once through `Feature.values(of:page:now:into:only:)`,
    /// a straight-line copy of the catalogue; each place asked for must hold that feature's
    /// `value`, and none may be left out (the buffer starts as NaN, which equals nothing).
    @Test func allFeatureValuesAtOnceAreEachFeaturesValue() async throws {
        #expect(Feature.count == Feature.allCases.count)
        #expect(Feature.allCases.map(\.ordinal) == Array(0..<Feature.allCases.count))
        let model = try shippedModel()
        await propertyCheck(count: 40, input: Gen.int(in: 0...1_000_000)) { seed in
            var p = PartitionProcessor(rules: .empty, model: model, configuration: configuration(lateness: 5, idleAfter: 2))
            let events = Journey(seed: UInt64(seed), visitors: 3).shuffled(seed: UInt64(seed), lateness: .seconds(5))
            var mismatches: Set<Feature> = [], compared = 0
            let out = UnsafeMutablePointer<Double>.allocate(capacity: Feature.count)
            defer { out.deallocate() }
            for e in events {
                _ = p.process(e, arrivedAt: e.time)
                for visitor in ["v0", "v1", "v2"] {
                    guard let slot = p.visitors.slot(of: visitor) else { continue }
                    let v = p.visitors.read(slot).state
                    var features = v.features
                    // At the latest event, and at a later instant (as a timer would read them).
                    // All features, and a random few (a rescore computes those the model and
                    // the rules read): each one asked for is there.
                    let few = (UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(bitPattern: v.lastEventTime.milliseconds)) & Feature.all
                    for now in [Tick(v.lastEventTime), Tick(v.lastEventTime + .seconds(61))] {
                        for only in [Feature.all, few] {
                            out.initialize(repeating: .nan, count: Feature.count)
                            withUnsafePointer(to: &features) { Feature.values(of: $0, page: v.page, now: now, into: out, only: only) }
                            for f in Feature.allCases where only & f.bit != 0 && out[f.ordinal] != f.value(v.features, page: v.page, now: now) {
                                mismatches.insert(f)
                            }
                        }
                        compared += 1
                    }
                }
            }
            #expect(compared > 0)
            #expect(mismatches.isEmpty, "seed \(seed): \(mismatches.map(\.rawValue).sorted())")
        }
    }

    @Test(arguments: [
        ("intents:\n  needs_help: {bias: 1, weights: {form_errors_5mn: 1}}\n", 2, 35, "unknown feature 'form_errors_5mn'; did you mean 'form_errors_5m'?"),
        ("intents:\n  needs_help: {bias: x, weights: {help_views: 1}}\n", 2, 22, "bias must be a number"),
        ("intents:\n  needs_help: {bias: 1, weights: {page_class: 1}}\n", 2, 35, "feature 'page_class' is a category and cannot be weighted; use a per-class count such as checkout_views"),
        ("intents:\n  needs_help: {bias: 1, weights: {help_views: 1}}\n", 2, 3, "the intent model must define 'abandonment_risk' (required: needs_help, abandonment_risk, price_sensitivity, frustration, high_value)"),
        ("intentz: {}\n", 1, 1, "unknown key 'intentz' in the intent model; did you mean 'intents'?"),
    ])
    func badModelsNameFileLineColumn(text: String, line: Int, column: Int, message: String) {
        guard case .failure(let errors) = IntentModel.load(file: "intent.yaml", text: text) else {
            Issue.record("accepted")
            return
        }
        #expect(errors.errors == [SourceError(file: "intent.yaml", line: line, column: column, message: message)])
    }
}

@Suite("Feature catalogue")
struct FeatureCatalogueTests {
    @Test func docsFeaturesMatchesTheCode() throws {
        let model = try shippedModel()
        let expected = Feature.catalogue(intents: model.intents.map { ($0.name, $0.description) })
        let actual = try String(contentsOfFile: repositoryRoot + "/docs/FEATURES.md", encoding: .utf8)
        #expect(actual == expected, "docs/FEATURES.md is out of date: run `.build/debug/beckon features --markdown > docs/FEATURES.md`")
    }
}
