import Foundation
import TallyDomain
import TallyLog
import TallyProjection
import Testing

@Suite struct JSONViewTests {
    func view<T>(_ text: String, _ body: (JSONView) throws -> T) throws -> T {
        var text = text
        return try text.withUTF8 { try body(try JSONView(document: UnsafeRawBufferPointer($0))) }
    }

    @Test func readsTheFieldsItIsAskedFor() throws {
        let text = #"{"a":"x","amount":{"currency":"USD","minor":-1250},"flag":true,"lines":[{"q":2},{"q":3}],"n":null,"s":"say \"hi\"\u00e9","z":12}"#
        try view(text) { json in
            #expect(try json.string("a") == "x")
            #expect(try json.money("amount") == Money(minor: -1250, currency: .usd))
            #expect(try json.bool("flag"))
            var total = 0
            try json.required("lines").forEachElement { total += try $0.int("q") }
            #expect(total == 5)
            #expect(try json.optionalString("n") == nil && json.optionalString("absent") == nil)
            #expect(try json.string("s") == "say \"hi\"é")
            #expect(try json.int("z") == 12)
            #expect(try json.required("lines").rawText == #"[{"q":2},{"q":3}]"#)
        }
    }

    @Test func namesTheFieldThatIsMissingOrOfAnotherType() throws {
        try view(#"{"price":{"minor":"12","currency":"USD"}}"#) { json in
            #expect(throws: JSONViewError.missing(path: "price.sku")) { _ = try json.required("price").string("sku") }
            #expect(throws: JSONViewError.wrongType(path: "price.minor", expected: "a whole number")) { _ = try json.money("price") }
            #expect(throws: JSONViewError.wrongType(path: "price", expected: "a string")) { _ = try json.string("price") }
        }
    }

    @Test func refusesMalformedDocumentsWithoutCrashing() throws {
        for bad in ["", "{", "{\"a\":}", "{\"a\" 1}", "[1,]", "{\"a\":tru}", "{\"a\":1}x", "\"open", "{\"a\":-}", String(repeating: "[", count: 10_000)] {
            #expect(throws: JSONViewError.self, "\(bad.prefix(20))") { try view(bad) { _ in () } }
        }
        // Every truncation and every one-byte change of a real payload is read or refused, never a crash.
        let payload = Data(#"{"price":{"bogo":false,"label":"3 for 1.00 USD","price":{"currency":"USD","minor":100},"priceType":0,"quantity":3,"sku":"0001","taxable":false},"storeID":"s1"}"#.utf8)
        var random = SplitMix64(seed: 9)
        for cut in 0..<payload.count { _ = try? view(String(decoding: payload.prefix(cut), as: UTF8.self)) { try? $0.required("price").money("price") } }
        for _ in 0..<5_000 {
            var bytes = [UInt8](payload)
            bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            _ = try? bytes.withUnsafeBytes { raw in try JSONView(document: raw).required("price").money("price") }
        }
    }

    @Test func numbersAndEscapesAreCheckedAsRFC8259WritesThem() throws {
        for good in ["0", "-0", "12", "-0.5e+10", "1E5", "3.25", #""\"\\\/\b\f\n\r\t\u00e9\uD83D""#, #"{"a":[1,-2.5e-3,{"b":"\u0041"}]}"#] {
            #expect(throws: Never.self, "\(good)") { try view(good) { _ in () } }
        }
        for bad in ["01", "-01", "1.", ".5", "-", "1e", "1e+", "+1", "1.e5", "0x10", "1.5.2", "1e5e5", "--1",
                    #""\x""#, #""\u12""#, #""\u12G4""#, #""\"#, #"{"a":01}"#, #"["\ "]"#] {
            #expect(throws: JSONViewError.self, "\(bad)") { try view(bad) { _ in () } }
        }
        // On ASCII documents it agrees with Foundation about what is JSON, one changed byte at a time.
        let payload = Array(#"{"lines":[{"q":2,"p":-0.25e2}],"s":"a\"b\u00e9","t":true,"n":null,"x":[1,20,300]}"#.utf8)
        let alphabet = Array(#"0123456789.eE+-"\u{}[],:tfnal xq"#.utf8)
        var random = SplitMix64(seed: 77)
        for _ in 0..<5_000 {
            var bytes = payload
            bytes[Int(random.next() % UInt64(bytes.count))] = alphabet[Int(random.next() % UInt64(alphabet.count))]
            let foundation = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
            let ours = bytes.withUnsafeBytes { (try? JSONView(document: $0)) != nil }
            #expect(ours == foundation, "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    /// Strings are skipped eight bytes at a time and then straight to the first special byte: a
    /// quote, backslash or control character at every offset of a word, after plain or multi-byte
    /// text, must end, escape or refuse the string exactly where it is.
    @Test func stringsEndEscapeOrFailAtEveryOffsetOfAWord() throws {
        for length in 0..<24 {
            for filler in ["a", "é", "\u{7f}"] {
                let text = String(repeating: filler, count: length)
                try view(#"{"k":"\#(text)","after":1}"#) { json in
                    let (value, after) = (try json.string("k"), try json.int("after"))
                    #expect(value == text && after == 1, "\(length) × \(filler)")
                }
                try view(#"{"k":"\#(text)\n\#(text)\"x","after":2}"#) { json in
                    let (value, after) = (try json.string("k"), try json.int("after"))
                    #expect(value == text + "\n" + text + "\"x" && after == 2, "\(length) × \(filler)")
                }
                for control in [UInt8(0x01), 0x1f, 0x0a] {
                    var bytes = Array(#"{"k":""#.utf8) + Array(text.utf8)
                    bytes.append(control)
                    bytes += Array(#"x","after":3}"#.utf8)
                    #expect(throws: JSONViewError.self, "\(length) × \(filler), control \(control)") {
                        try bytes.withUnsafeBytes { _ = try JSONView(document: $0) }
                    }
                }
            }
        }
    }

    @Test func theWriterWritesWhatFoundationReadsBack() throws {
        var random = SplitMix64(seed: 12)
        for length in 0..<64 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            var writer = JSONWriter()
            bytes.withUnsafeBytes { writer.base64String($0) }
            #expect(String(decoding: writer.bytes, as: UTF8.self) == "\"" + Data(bytes).base64EncodedString() + "\"")
        }
        let scalars = Array("ab\"\\/\n\r\t\u{1}\u{1f}\u{7f}é€😀 ".unicodeScalars)
        for _ in 0..<500 {
            var text = ""
            for _ in 0..<Int(random.next() % 12) { text.unicodeScalars.append(scalars[Int(random.next() % UInt64(scalars.count))]) }
            var writer = JSONWriter()
            writer.string(text)
            #expect(try JSONSerialization.jsonObject(with: Data(writer.bytes), options: [.fragmentsAllowed]) as? String == text)
        }
        var escaped = JSONWriter()
        escaped.string("a\"b\\c/\n\r\t\u{1}\u{1f}\u{7f}é")
        #expect(String(decoding: escaped.bytes, as: UTF8.self) == #""a\"b\\c/\n\r\t\u0001\u001f\#u{7f}é""#)
        for value: UInt64 in [0, 9, 10, 99, 100, 1_000_000, .max] {
            var writer = JSONWriter()
            writer.number(value)
            #expect(String(decoding: writer.bytes, as: UTF8.self) == String(value))
        }
        let id = UUID()
        var writer = JSONWriter()
        writer.string(id)
        writer.hexString([0x00, 0xab, 0x7f])
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "\"\(id.uuidString.lowercased())\"\"00ab7f\"")
    }

    @Test func namesFieldsInsideArrayElementsAndNestedObjects() throws {
        try view(#"{"lines":[{"q":2},{"q":"3"},{"p":1}],"price":{"price":{"minor":1}}}"#) { json in
            var seen = 0
            #expect(throws: JSONViewError.wrongType(path: "lines[1].q", expected: "a whole number")) {
                try json.required("lines").forEachElement { seen += try $0.int("q") }
            }
            #expect(seen == 2)
            #expect(throws: JSONViewError.missing(path: "lines[2].q")) {
                var index = 0
                try json.required("lines").forEachElement { line in
                    if index == 2 { _ = try line.int("q") }
                    index += 1
                }
            }
            #expect(throws: JSONViewError.missing(path: "price.price.currency")) { _ = try json.required("price").money("price") }
        }
        // Deeper than the steps a location keeps inline: the outer ones are kept as text.
        try view(#"{"a":[{"b":{"c":[[{"d":{"e":{"f":"x"}}}]]}}]}"#) { json in
            func elements(_ array: JSONView) throws -> [JSONView] {
                var all: [JSONView] = []
                try array.forEachElement { all.append($0) }
                return all
            }
            let c = try elements(try json.required("a"))[0].required("b").required("c")
            let d = try elements(try elements(c)[0])[0].required("d")
            #expect(throws: JSONViewError.wrongType(path: "a[0].b.c[0][0].d.e.f", expected: "a whole number")) { _ = try d.required("e").int("f") }
            #expect(throws: JSONViewError.missing(path: "a[0].b.c[0][0].d.e.g")) { _ = try d.required("e").required("g") }
        }
    }

    /// A currency is three capital letters, read in place when written plainly and as a string
    /// otherwise; digits after the point come from the code.
    @Test func readsCurrenciesInPlaceAndRefusesAnythingElse() throws {
        let read = { (code: String) throws -> Currency in
            try self.view(#"{"m":{"currency":\#(code),"minor":5}}"#) { try $0.money("m").currency }
        }
        #expect(try read(#""USD""#) == .usd)
        #expect(try read(#""JPY""#).minorDigits == 0 && read(#""KWD""#).minorDigits == 3 && read(#""CHF""#).minorDigits == 2)
        #expect(try read(#""CHF""#).code == "CHF")
        #expect(try read(#""\u0055SD""#) == .usd)
        for bad in [#""usd""#, #""US""#, #""USDX""#, #""U$D""#, "\"\u{DC}SD\"", "840", "null"] {
            #expect(throws: JSONViewError.self, "\(bad)") { _ = try read(bad) }
        }
        #expect(Currency(code: "JPY")?.minorDigits == 0 && Currency(code: "EUR")?.minorDigits == 2 && Currency(code: "BHD")?.minorDigits == 3)
        #expect(Currency(code: "usd") == nil && Currency(code: "\u{DC}SD") == nil && Currency(code: "USDA") == nil && Currency(code: "") == nil)
    }

    /// Money written as canonical JSON is read without member lookups; every other spelling of the
    /// same value reads the same, and every bad one fails as it did.
    @Test func moneyReadsTheSameHoweverItIsSpelled() throws {
        let read = { (text: String) throws -> Money in try self.view(#"{"m":\#(text)}"#) { try $0.money("m") } }
        let usd = { (minor: Int64) in Money(minor: minor, currency: .usd) }
        #expect(try read(#"{"currency":"USD","minor":-1250}"#) == usd(-1250))
        #expect(try read(#"{"currency":"USD","minor":0}"#) == usd(0) && read(#"{"currency":"USD","minor":-0}"#) == usd(0))
        #expect(try read(#"{"currency":"JPY","minor":9223372036854775807}"#) == Money(minor: .max, currency: Currency(code: "JPY")!))
        #expect(try read(#"{"minor":-1250,"currency":"USD"}"#) == usd(-1250) && read(#"{"minor":0,"currency":"KWD"}"#).currency.minorDigits == 3)
        #expect(try read(#"{"minor":7,"note":"x","currency":"USD"}"#) == usd(7))
        #expect(try read(#"{"minor":7,"currency":"USD","note":"\"}"}"#) == usd(7))
        #expect(try read(#"{ "currency" : "USD" , "minor" : 7 }"#) == usd(7))
        #expect(try read(#"{"currency":"USD","minor":7,"note":"x"}"#) == usd(7))
        #expect(try read(#"{"currency":"\u0055SD","minor":7}"#) == usd(7))
        #expect(throws: JSONViewError.wrongType(path: "m.minor", expected: "a whole number")) { _ = try read(#"{"currency":"USD","minor":1.5}"#) }
        #expect(throws: JSONViewError.wrongType(path: "m.minor", expected: "a whole number")) { _ = try read(#"{"minor":1e3,"currency":"USD"}"#) }
        #expect(throws: JSONViewError.wrongType(path: "m.currency", expected: "a currency code")) { _ = try read(#"{"minor":7,"currency":"US$"}"#) }
        #expect(throws: JSONViewError.wrongType(path: "m.minor", expected: "a whole number that fits 64 bits")) {
            _ = try read(#"{"currency":"USD","minor":9223372036854775808}"#)
        }
        #expect(throws: JSONViewError.wrongType(path: "m.currency", expected: "a currency code")) { _ = try read(#"{"currency":"usd","minor":7}"#) }
        #expect(throws: JSONViewError.wrongType(path: "m.minor", expected: "a whole number")) { _ = try read(#"{"currency":"USD","minor":"7"}"#) }
        #expect(throws: JSONViewError.missing(path: "m.minor")) { _ = try read(#"{"currency":"USD","minr":7}"#) }
    }

    /// The document's and array elements' members are found through an index built while checking
    /// them; nested objects are scanned. Both must agree with Foundation's parser on every member, the
    /// first of duplicate keys, and keys written with escapes (which never match a name).
    @Test func indexedAndScannedLookupsAgreeWithFoundation() throws {
        var random = SplitMix64(seed: 31)
        let alphabet = Array("ab\\\"é ,:{}[]x0".unicodeScalars)
        for round in 0..<300 {
            var object: [String: Any] = [:]
            var names: [String] = []
            for field in 0..<(1 + Int(random.next() % 9)) {
                // Strings of every length around the 8-byte steps, with quotes, backslashes and controls.
                var text = ""
                for _ in 0..<Int(random.next() % 24) { text.unicodeScalars.append(alphabet[Int(random.next() % UInt64(alphabet.count))]) }
                if random.next() % 5 == 0 { text += "\n\u{1}" }
                let name = "k\(field)\(random.next() % 3 == 0 ? "é" : "")"
                names.append(name)
                object[name] = field % 2 == 0 ? text : ["inner": text, "n": field] as [String: Any]
            }
            let data = try JSONSerialization.data(withJSONObject: ["doc": object, "list": [object, object]], options: [.sortedKeys])
            try data.withUnsafeBytes { raw in
                let json = try JSONView(document: raw)
                let nested = try json.required("doc")
                let nestedIndexed = try nested.indexed()
                var elements: [JSONView] = []
                try json.required("list").forEachElement { element in
                    for name in names {
                        let value = try #require(try element.member(name), "round \(round): \(name)")
                        let scanned = try #require(try nested.member(name))
                        let indexedLater = try #require(try nestedIndexed.member(name))
                        #expect(value.rawText == scanned.rawText && indexedLater.rawText == scanned.rawText)
                        if let expected = object[name] as? String {
                            #expect(try value.string() == expected)
                        } else {
                            #expect(try value.string("inner") == (object[name] as! [String: Any])["inner"] as! String)
                        }
                    }
                    #expect(try element.member("absent") == nil && nested.member("absent") == nil && nestedIndexed.member("absent") == nil)
                    elements.append(element)
                }
                #expect(elements.count == 2)
            }
        }
        // Duplicate keys: the first wins, indexed or scanned; an escaped key is not its unescaped name.
        try view(#"{"a":1,"a":2,"b\u0061":3,"o":{"a":4,"a":5}}"#) { json throws in
            #expect(try json.int("a") == 1)
            #expect(try json.required("o").int("a") == 4 && json.required("o").indexed().int("a") == 4)
            #expect(try json.required("a").indexed().int() == 1)  // not an object: as it is
            #expect(throws: JSONViewError.missing(path: "o.b")) { _ = try json.required("o").indexed().required("b") }
            #expect(try json.member("ba") == nil)
        }
    }
}
