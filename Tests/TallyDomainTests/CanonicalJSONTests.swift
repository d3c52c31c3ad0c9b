import Testing
@testable import TallyDomain

/// `tally append` stored payloads through Foundation, which rounded a 42-digit number to 39 digits,
/// kept one of two keys NFC and NFD "é" (and the last of a key given twice), put U+FFFD for a byte
/// that is not UTF-8, and sorted keys as a locale would ("a", "b", "B"). The canonical form keeps
/// what was sent and refuses what a reader could take two ways.
@Suite struct CanonicalJSONTests {
    static func canonical(_ text: String) throws(CanonicalJSON.Failure) -> String {
        String(decoding: try CanonicalJSON.canonical(Array(text.utf8)), as: UTF8.self)
    }

    static let kept: [(String, String)] = [
        // Numbers digit for digit, as written.
        ("123456789012345678901234567890123456789012", "123456789012345678901234567890123456789012"),
        ("0.1234567890123456789012345678901234567890123", "0.1234567890123456789012345678901234567890123"),
        ("[1.0, 1e2, -0, 1E+400, 9007199254740993]", "[1.0,1e2,-0,1E+400,9007199254740993]"),
        // Keys by their bytes: upper case first, "e" + U+0301 before "é", both kept.
        (#"{"b":1,"a":2,"B":3,"é":4,"z":5}"#, #"{"B":3,"a":2,"b":1,"z":5,"é":4}"#),
        ("{\"\u{E9}\":1,\"e\u{301}\":2}", "{\"e\u{301}\":2,\"\u{E9}\":1}"),
        // Escapes decoded and written again as JSONWriter writes strings.
        (#""\u00e9\/\"\\\n\t\b\f\u0000 \ud83d\ude00""#, "\"\u{E9}/\\\"\\\\\\n\\t\\u0008\\u000c\\u0000 \u{1F600}\""),
        (#"{"k\u0065y" : { "z" : [ ] , "a" : { } } }"#, #"{"key":{"a":{},"z":[]}}"#),
        (" true ", "true"),
        ("null", "null"),
        (#"[{"b":null,"a":false},"x"]"#, #"[{"a":false,"b":null},"x"]"#),
    ]

    @Test(arguments: 0..<kept.count)
    func aValueKeepsWhatWasSent(index: Int) throws {
        let (given, expected) = Self.kept[index]
        // By bytes: Swift's == would take NFC and NFD "é" as one.
        #expect(Array(try Self.canonical(given).utf8) == Array(expected.utf8))
        // Canonical is a fixed point.
        #expect(Array(try Self.canonical(expected).utf8) == Array(expected.utf8))
    }

    static let refused: [(String, Int, String)] = [
        (#"{"a":1, "a":2}"#, 8, #"a second key "a" in one object (the first is at byte 2)"#),
        (#"{"k\u0065y":1,"key":2}"#, 14, #"a second key "key" in one object (the first is at byte 2)"#),
        (#"[{"x":{"y":1,"y":1}}]"#, 13, #"a second key "y" in one object (the first is at byte 8)"#),
        (#""\ud800""#, 1, #"a \u escape of half a surrogate pair (\ud800 without the low half after it)"#),
        (#""\ud83d\u0041""#, 1, #"a \u escape of half a surrogate pair (\ud83d without the low half after it)"#),
        (#"["\udc00"]"#, 2, #"a \u escape of half a surrogate pair (\udc00 without the high half before it)"#),
        (#"{"a":1,}"#, 7, "malformed JSON"),
        ("[1,2", 4, "malformed JSON"),
        ("", 0, "malformed JSON"),
    ]

    @Test(arguments: 0..<refused.count)
    func whatCouldBeReadTwoWaysIsRefusedByItsByte(index: Int) {
        let (given, offset, reason) = Self.refused[index]
        #expect(throws: CanonicalJSON.Failure(offset: offset, reason: reason)) { try Self.canonical(given) }
    }

    @Test func bytesThatAreNotUTF8AreNamed() throws {
        let prefix = Array(#"{"a":"ok é "#.utf8)
        for bad: [UInt8] in [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] {
            #expect(throws: CanonicalJSON.Failure(offset: prefix.count, reason: "a string that is not UTF-8 (byte 0x\(String(bad[0], radix: 16, uppercase: true)))")) {
                try CanonicalJSON.canonical(prefix + bad + Array(#""}"#.utf8))
            }
            #expect(CanonicalJSON.firstInvalidUTF8(prefix + bad) == prefix.count)
        }
        // Outside a string a byte past ASCII is not JSON at all.
        #expect(throws: CanonicalJSON.Failure(offset: 1, reason: "malformed JSON")) { try CanonicalJSON.canonical([UInt8(ascii: "["), 0xC3, 0xA9, UInt8(ascii: "]")]) }
        #expect(CanonicalJSON.firstInvalidUTF8(Array("plain, é, 😀".utf8)) == nil)
    }
}
