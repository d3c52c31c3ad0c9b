import Foundation
import Testing
import TallyLog
@testable import TallyDomain

let usd = Currency.usd
func cents(_ minor: Int64) -> Money { Money(minor: minor, currency: usd) }
func at(_ seconds: Int64) -> Timestamp { Timestamp(microsecondsSinceEpoch: seconds * 1_000_000) }

@Suite struct MoneyTests {
    @Test func decimalStringsParseExactly() {
        #expect(Money(decimal: "12.50", currency: usd) == cents(1250))
        #expect(Money(decimal: "0.1", currency: usd) == cents(10))
        #expect(Money(decimal: "-3.05", currency: usd) == cents(-305))
        #expect(Money(decimal: "1.005", currency: usd) == nil)  // More digits than cents: refused, not rounded.
        #expect(Money(decimal: "abc", currency: usd) == nil)
        #expect(Money(decimal: "500", currency: Currency(code: "JPY")!) == Money(minor: 500, currency: Currency(code: "JPY")!))
        #expect(cents(1250).description == "12.50 USD")
        #expect(cents(-5).description == "-0.05 USD")
    }

    @Test func arithmeticRefusesMixedCurrenciesAndOverflow() {
        #expect(cents(100).adding(cents(25)) == cents(125))
        #expect(cents(100).adding(Money(minor: 1, currency: .kes)) == nil)
        #expect(Money(minor: .max, currency: usd).adding(cents(1)) == nil)
        #expect(cents(34).times(3) == cents(102))
    }

    @Test func moneyTravelsAsMinorUnitsAndACode() throws {
        let data = try JSONEncoder().encode(cents(1999))
        #expect(String(decoding: data, as: UTF8.self).contains("\"minor\":1999"))
        #expect(try JSONDecoder().decode(Money.self, from: data) == cents(1999))
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Money.self, from: Data(#"{"minor":1,"currency":"dollars"}"#.utf8)) }
    }

    /// A command's times may be written as people read them (RFC 3339 or a date) or as microseconds;
    /// either decodes to the same moment, and is encoded as microseconds.
    @Test func aTimeInACommandIsRFC3339TextOrMicroseconds() throws {
        struct Window: Codable, Equatable { var start: Timestamp }
        func decode(_ json: String) throws -> Window { try JSONDecoder().decode(Window.self, from: Data(json.utf8)) }
        #expect(try decode(#"{"start":"2026-01-01T00:00:00Z"}"#) == decode(#"{"start":1767225600000000}"#))
        #expect(try decode(#"{"start":"2026-01-01"}"#).start.microsecondsSinceEpoch == 1_767_225_600_000_000)
        #expect(String(decoding: try JSONEncoder().encode(decode(#"{"start":"2026-01-01T00:00:00.5Z"}"#)), as: UTF8.self) == #"{"start":1767225600500000}"#)
        func reason(_ json: String) -> String? {
            switch Result(catching: { try decode(json) }) {
            case .success: return nil
            case .failure(let error as DecodingError): return DomainCoding.describe(error)
            case .failure(let error): return "\(error)"
            }
        }
        #expect(reason(#"{"start":"2026-13-01"}"#) == #"field "start": "2026-13-01" is not an RFC 3339 time (2026-11-22T09:00:00Z) or a date (2026-11-22)"#)
        #expect(reason(#"{"start":true}"#) == #"field "start" must be an RFC 3339 time (2026-11-22T09:00:00Z) or whole microseconds since 1970"#)
    }

    /// Money is never a float: an amount of 5.5 minor units is refused by name, where Foundation's
    /// decoder alone would call the whole document "not valid JSON".
    @Test func aFractionalOrHugeAmountIsNamedNotCalledInvalidJSON() throws {
        struct Line: Decodable { var amount: Money }
        func reason(_ json: String) -> String? {
            switch Result(catching: { try JSONDecoder().decode(Line.self, from: Data(json.utf8)) }) {
            case .success: return nil
            case .failure(let error as DecodingError): return DomainCoding.describe(error)
            case .failure(let error): return "\(error)"
            }
        }
        #expect(reason(#"{"amount":{"minor":5.5,"currency":"USD"}}"#) == #"field "amount.minor": must be a whole number of minor units (550 for 5.50), not 5.5"#)
        #expect(reason(#"{"amount":{"minor":1e30,"currency":"USD"}}"#)?.contains("from -9223372036854775808 to 9223372036854775807, not 1e+30") == true)
        #expect(reason(#"{"amount":{"minor":"5","currency":"USD"}}"#) == #"field "amount.minor" must be a whole number"#)
        #expect(reason(#"{"amount":{"minor":1e3,"currency":"USD"}}"#) == nil)
        #expect(reason(#"{"amount":{"minor":550}}"#) == #"missing field "amount.currency""#)
        // An element of a list is named by its index, as it is written: lines[1], not "lines.Index 1".
        func commandReason(_ json: String) -> String? {
            switch Result(catching: { try JSONDecoder().decode(CommandEnvelope.self, from: Data(json.utf8)) }) {
            case .success: return nil
            case .failure(let error as DecodingError): return DomainCoding.describe(error)
            case .failure(let error): return "\(error)"
            }
        }
        let head = #"{"id":"00000000-0000-4000-8000-000000000001","actor":"member:m1","command":"#
        #expect(commandReason(head + #"{"reviseShoppingList":{"listID":"l","memberID":"m1","lines":[{"sku":"1","quantity":1},{"sku":"1-2","quantity":1}]}}}"#)
                == #"field "command.reviseShoppingList.lines[1].sku": "1-2" is not a SKU (1–40 letters and digits)"#)
        #expect(commandReason(head + #"{"placeOrder":{"orderID":"o","userID":"u","lines":[{"productID":"p"}]}}}"#)
                == #"missing field "command.placeOrder.lines[0].quantity""#)
        // Other whole-number fields keep Foundation's error, worded for what it may mean.
        struct Count: Decodable { var quantity: Int }
        do {
            _ = try JSONDecoder().decode(Count.self, from: Data(#"{"quantity":1.5}"#.utf8))
            Issue.record("1.5 decoded as an Int")
        } catch let error as DecodingError {
            #expect(DomainCoding.describe(error) == "not valid JSON, or a number where a whole number is expected is not one (or is out of range)")
        }
    }
}

@Suite struct SKUTests {
    @Test func leadingZerosAreKept() throws {
        let sku = try #require(SKU("000123450001"))
        #expect(sku.value == "000123450001")
        #expect(SKU("0001") != SKU("1"))
        let decoded = try JSONDecoder().decode([SKU].self, from: Data(#"["0042"]"#.utf8))
        #expect(decoded.first?.value == "0042")
        #expect(SKU("") == nil && SKU(String(repeating: "1", count: 41)) == nil && SKU("12 3") == nil)
    }
}

@Suite struct PricingTests {
    let sku = SKU("000111222333")!

    @Test func threeForADollarChargesThirtyFourThirtyFourThirtyTwo() throws {
        let record = PriceRecord(sku: sku, price: cents(100), quantity: 3)
        let three = try Pricing.charge(record, quantity: 3)
        #expect(three.unitCharges == [34, 34, 32])
        #expect(three.preTaxTotal == cents(100))
        #expect(three.unitPrice == cents(34))
        #expect(three.appliedDiscounts == cents(2))
        #expect(try Pricing.charge(record, quantity: 4).unitCharges == [34, 34, 32, 34])
        #expect(try Pricing.charge(record, quantity: 1).preTaxTotal == cents(34))
        #expect(try Pricing.charge(record, quantity: 6).preTaxTotal == cents(200))
        #expect(try Pricing.charge(record, quantity: 7).unitCharges == [34, 34, 32, 34, 34, 32, 34])
    }

    @Test(arguments: [(Int64(100), 7, [Int64](repeating: 15, count: 6) + [10]), (2, 3, [1, 1, 0]), (1, 3, [1, 0, 0]), (500, 2, [250, 250]), (0, 2, [0, 0])])
    func aGroupAlwaysCostsItsPrice(price: Int64, size: Int, expected: [Int64]) throws {
        let charge = try Pricing.charge(PriceRecord(sku: sku, price: cents(price), quantity: size), quantity: size)
        #expect(charge.unitCharges == expected)
        #expect(charge.preTaxTotal == cents(price))
        #expect(charge.unitCharges.allSatisfy { $0 >= 0 })
    }

    @Test func buyOneGetOneMakesEverySecondUnitFree() throws {
        let record = PriceRecord(sku: sku, price: cents(299), taxable: true, bogo: true)
        let charge = try Pricing.charge(record, quantity: 3)
        #expect(charge.unitCharges == [299, 0, 299])
        #expect(charge.preTaxTotal == cents(598))
        #expect(charge.appliedDiscounts == cents(299))
        #expect(charge.bogo && charge.taxable)
    }

    @Test func theHighestActivePriceTypeWins() {
        let base = PriceRecord(sku: sku, priceType: 0, price: cents(199))
        let sale = PriceRecord(sku: sku, start: at(100), end: at(200), priceType: 2, price: cents(149))
        let member = PriceRecord(sku: sku, start: at(150), priceType: 1, price: cents(179))
        let records = [base, sale, member]
        #expect(Pricing.activePrice(records, at: at(50)) == base)
        #expect(Pricing.activePrice(records, at: at(100)) == sale)  // Start is inclusive.
        #expect(Pricing.activePrice(records, at: at(199)) == sale)
        #expect(Pricing.activePrice(records, at: at(200)) == member)  // End is exclusive.
        #expect(Pricing.activePrice([sale], at: at(300)) == nil)
        // Equal types: the one that started last.
        let newer = PriceRecord(sku: sku, start: at(10), priceType: 0, price: cents(189))
        #expect(Pricing.activePrice([base, newer], at: at(20)) == newer)
    }

    @Test func badPriceRecordsAndQuantitiesAreRefused() {
        #expect(throws: PricingError.invalidQuantity(0)) { try Pricing.charge(PriceRecord(sku: sku, price: cents(1)), quantity: 0) }
        #expect(throws: PricingError.self) { try Pricing.charge(PriceRecord(sku: sku, price: cents(1), quantity: 0), quantity: 1) }
        #expect(throws: PricingError.self) { try Pricing.validate(PriceRecord(sku: sku, price: cents(-1))) }
        #expect(throws: PricingError.self) { try Pricing.validate(PriceRecord(sku: sku, start: at(5), end: at(5), price: cents(1))) }
    }

    @Test func variablePriceCodesCarryTheirPrice() throws {
        // 2 01234 00599 C: item 01234, $5.99.
        let code = try #require(VariablePriceCode("201234005995", currency: usd))
        #expect(code.price == cents(599))
        #expect(code.itemSKU.value == "201234000006")
        #expect(code.scanned == "201234005995")
        #expect(VariablePriceCode("201234005990", currency: usd) == nil)  // Wrong check digit.
        #expect(VariablePriceCode("012345678905", currency: usd) == nil)  // Not number system 2.
        #expect(VariablePriceCode("20123400599", currency: usd) == nil)  // Too short.
    }
}
