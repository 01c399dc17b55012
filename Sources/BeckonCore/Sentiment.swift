/// A lexicon-based sentiment scorer for chat text in English and Chinese (simplified and
/// traditional), with negation.
///
/// The decoder calls it on a `chat_message`'s text and keeps only the score: the text
/// itself never reaches visitor state, decisions or storage.
///
/// How a score is made:
/// - English: words (letters and apostrophes, lower-cased) are looked up in the lexicon.
///   A negator ("not", "never", "don't", …) flips the polarity of the next sentiment word
///   within three words, and damps it (×0.75): "not good" is mildly negative.
/// - Chinese: at each position the longest lexicon entry wins, so set phrases that contain
///   a negator ("不错" not-bad = good, "没问题" no problem) keep their own meaning. A
///   negator character (不 没 沒 别 別 未 无 無 非) flips the next sentiment word within two
///   characters ("不满意" dissatisfied, "不太好" not so good).
/// - The sum `s` is squashed into [-1, 1] by `s / sqrt(s² + 4)`, so one strong word gives
///   about ±0.45 to ±0.7 and several agreeing words approach ±1.
public enum Sentiment {
    /// Score of UTF-8 text in [-1, 1]; 0 when nothing in the lexicon is found.
    public static func score(_ utf8: some Collection<UInt8>) -> Double {
        var sum = 0.0
        var word: [UInt8] = []
        var englishNegation = 0  // words left in which a negator applies
        var chineseNegation = 0  // characters left in which a negator applies
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(utf8.count)

        func endWord() {
            guard !word.isEmpty else { return }
            defer { word.removeAll(keepingCapacity: true) }
            let key = String(decoding: word, as: UTF8.self)
            if englishNegators.contains(key) {
                englishNegation = 3
                return
            }
            if let weight = english[key] {
                sum += englishNegation > 0 ? -weight * 0.75 : weight
                englishNegation = 0
            } else if englishNegation > 0 {
                englishNegation -= 1
            }
        }

        var decoder = UTF8()
        var iterator = utf8.makeIterator()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): scalars.append(scalar)
            case .emptyInput: break loop
            case .error: scalars.append(" ")
            }
        }
        var i = 0
        while i < scalars.count {
            let scalar = scalars[i]
            if scalar.isASCII {
                let byte = UInt8(scalar.value)
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): word.append(byte | 0x20)
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "'"): word.append(byte)
                default: endWord()
                }
                i += 1
                continue
            }
            endWord()
            if scalar == "\u{2019}" {  // typographic apostrophe inside "don’t"
                i += 1
                continue
            }
            // Longest Chinese lexicon entry starting here.
            var matched = 0
            var weight = 0.0
            for length in stride(from: min(maxChineseLength, scalars.count - i), through: 1, by: -1) {
                var key = ""
                key.unicodeScalars.append(contentsOf: scalars[i..<(i + length)])
                if let w = chinese[key] {
                    matched = length
                    weight = w
                    break
                }
            }
            if matched > 0 {
                sum += chineseNegation > 0 ? -weight * 0.75 : weight
                chineseNegation = 0
                i += matched
                continue
            }
            if chineseNegators.contains(scalar) {
                chineseNegation = 3  // this character and the next two
            }
            if chineseNegation > 0 { chineseNegation -= 1 }
            i += 1
        }
        endWord()
        return sum / (sum * sum + 4).squareRoot()
    }

    static let englishNegators: Set<String> = [
        "not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "hardly", "barely", "without", "cannot",
        "don't", "dont", "doesn't", "doesnt", "didn't", "didnt", "isn't", "isnt", "aren't", "arent", "wasn't", "wasnt",
        "won't", "wont", "can't", "cant", "couldn't", "couldnt", "shouldn't", "wouldn't", "haven't", "hasn't", "ain't",
    ]

    /// Weights: ±1 ordinary, ±1.5 strong, ±2 very strong.
    static let english: [String: Double] = {
        var table: [String: Double] = [:]
        for word in ["good", "great", "nice", "thanks", "thank", "helpful", "easy", "like", "works", "working", "happy",
                     "perfect", "clear", "glad", "cool", "fine", "fast", "quick", "solved", "fixed", "useful", "recommend"] {
            table[word] = 1
        }
        for word in ["love", "excellent", "awesome", "amazing", "fantastic", "wonderful", "brilliant"] { table[word] = 1.5 }
        for word in ["bad", "slow", "wrong", "problem", "issue", "error", "broken", "confusing", "confused", "difficult",
                     "hard", "annoying", "annoyed", "expensive", "unhappy", "disappointed", "disappointing", "stuck", "fail",
                     "failed", "fails", "failing", "poor", "crash", "crashed", "bug", "lost", "frustrating", "frustrated",
                     "waste", "refund", "cancel", "complaint", "unacceptable", "sucks", "ridiculous", "rip", "scam"] {
            table[word] = -1
        }
        for word in ["hate", "terrible", "awful", "horrible", "useless", "worst", "furious", "angry", "garbage", "rubbish"] {
            table[word] = -1.5
        }
        return table
    }()

    static let chineseNegators: Set<Unicode.Scalar> = ["不", "没", "沒", "别", "別", "未", "无", "無", "非"]

    /// Simplified and traditional forms side by side.
    static let chinese: [String: Double] = {
        var table: [String: Double] = [:]
        let positive = ["好", "满意", "滿意", "喜欢", "喜歡", "谢谢", "謝謝", "感谢", "感謝", "方便", "清楚", "快", "有用",
                        "不错", "不錯", "没问题", "沒問題", "解决了", "解決了", "推荐", "推薦", "开心", "開心", "简单", "簡單"]
        let strongPositive = ["很好", "非常好", "太好了", "完美", "优秀", "優秀", "棒", "赞", "讚"]
        let negative = ["差", "慢", "问题", "問題", "错误", "錯誤", "麻烦", "麻煩", "难", "難", "贵", "貴", "失望", "困惑",
                        "复杂", "複雜", "失败", "失敗", "坏", "壞", "退款", "取消", "投诉", "投訴", "卡住", "不行", "不能用"]
        let strongNegative = ["太差", "很差", "垃圾", "讨厌", "討厭", "生气", "生氣", "糟糕", "骗子", "騙子", "气死", "氣死", "烂", "爛"]
        for w in positive { table[w] = 1 }
        for w in strongPositive { table[w] = 1.5 }
        for w in negative { table[w] = -1 }
        for w in strongNegative { table[w] = -1.5 }
        return table
    }()

    static let maxChineseLength = chinese.keys.map(\.unicodeScalars.count).max() ?? 1
}
