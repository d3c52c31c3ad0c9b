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
}
