import BeckonCore
import Testing

@Suite("JSON parser")
struct JSONTests {
    func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    func failure(_ bytes: [UInt8]) -> JSONSyntaxError? {
        do {
            _ = try JSONParser.parse(bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test func parsesNestedDocuments() throws {
        let value = try parse(#" {"a": [1, -2.5, 3e2, true, false, null], "b": {"c": "d"}, "e": ""} "#)
        #expect(value["a"] == .array([.number(1), .number(-2.5), .number(300), .bool(true), .bool(false), .null]))
        #expect(value["b"]?["c"] == .string("d"))
        #expect(value["e"] == .string(""))
        #expect(value["missing"] == nil)
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        #expect(try parse(#""a\"b\\c\/d\n\t\u00e9\u4e2d\ud83d\ude00""#) == .string("a\"b\\c/d\n\té中😀"))
        #expect(try parse("\"中文 ok\"") == .string("中文 ok"))
    }

    @Test func lastDuplicateKeyWins() throws {
        #expect(try parse(#"{"k": 1, "k": 2}"#)["k"] == .number(2))
    }

    @Test(arguments: [
        ("", "empty input", 0),
        ("{\"a\": 1", "unexpected end of input (truncated?)", 7),
        ("{\"a\" 1}", "expected ':' after member name", 5),
        ("[1, 2,]", "unexpected character ']'", 6),
        ("{} x", "unexpected data after the JSON value", 3),
        ("\"abc", "unterminated string (truncated?)", 4),
        ("01", "unexpected data after the JSON value", 1),
        ("1.", "invalid number: no digits after '.'", 2),
        ("tru", "unexpected end of input (truncated?)", 0),
        ("\"\\x\"", "invalid escape '\\x'", 3),
        ("\"\\ud800\"", "unpaired surrogate in \\u escape", 7),
    ])
    func reportsWhereAndWhat(input: String, message: String, offset: Int) {
        let error = failure(Array(input.utf8))
        #expect(error?.message == message)
        #expect(error?.offset == offset)
    }

    @Test func refusesInvalidUTF8() {
        let error = failure([0x22, 0x61, 0xFF, 0xFE, 0x22])
        #expect(error?.message == "string is not valid UTF-8")
    }

    @Test func limitsNesting() {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(failure(Array(deep.utf8))?.message == "nesting deeper than 64")
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(failure(Array(ok.utf8)) == nil)
    }

    @Test func writerEscapesAndRoundTrips() throws {
        var w = JSONWriter()
        let value = JSONValue.object([("s", .string("q\"\\\n\u{1}é")), ("n", .number(12)), ("f", .number(0.5)), ("a", .array([.null, .bool(true)]))])
        w.value(value)
        #expect(String(decoding: w.bytes, as: UTF8.self) == #"{"s":"q\"\\\n\u0001é","n":12,"f":0.5,"a":[null,true]}"#)
        #expect(try JSONParser.parse(w.bytes) == value)
    }
}
