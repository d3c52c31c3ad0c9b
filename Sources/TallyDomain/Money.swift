/// An ISO 4217 currency code ("USD", "KES") and how many minor units its major unit has.
public struct Currency: Hashable, Sendable, Codable, CustomStringConvertible {
    public let code: String
    /// Digits after the decimal point: 2 for USD and KES, 0 for JPY.
    public let minorDigits: Int

    public static let usd = Currency(code: "USD", minorDigits: 2)
    public static let kes = Currency(code: "KES", minorDigits: 2)

    /// Currencies whose minor units are not hundredths, by their packed code. Everything else has two digits.
    private static let minorDigitsExceptions: [(code: UInt32, digits: Int)] =
        [("JPY", 0), ("KRW", 0), ("ISK", 0), ("BHD", 3), ("KWD", 3), ("JOD", 3), ("OMR", 3), ("TND", 3)].map { (pack($0.0), $0.1) }
    /// Currencies a projector meets on nearly every payload, ready made.
    private static let common: [(code: UInt32, currency: Currency)] = [usd, kes, Currency(code: "EUR", minorDigits: 2)].map { (pack($0.code), $0) }

    /// Three ASCII capitals, or nil.
    public init?(code: String) {
        var utf8 = code
        guard let packed = utf8.withUTF8({ Self.packed(UnsafeRawBufferPointer($0)) }) else { return nil }
        self.init(code: code, minorDigits: Self.minorDigits(packed))
    }

    /// The code as its bytes (a projector reads them from a payload in place): no string is made for a
    /// common currency.
    public init?(codeBytes: UnsafeRawBufferPointer) {
        guard let packed = Self.packed(codeBytes) else { return nil }
        if let known = Self.common.first(where: { $0.code == packed }) {
            self = known.currency
        } else {
            self.init(code: String(decoding: codeBytes, as: UTF8.self), minorDigits: Self.minorDigits(packed))
        }
    }

    /// Three bytes A–Z as one number, or nil.
    private static func packed(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
        guard bytes.count == 3, bytes.allSatisfy({ $0 >= 65 && $0 <= 90 }) else { return nil }
        return UInt32(bytes[0]) << 16 | UInt32(bytes[1]) << 8 | UInt32(bytes[2])
    }

    private static func pack(_ code: String) -> UInt32 { code.utf8.reduce(0) { $0 << 8 | UInt32($1) } }

    private static func minorDigits(_ packed: UInt32) -> Int { minorDigitsExceptions.first { $0.code == packed }?.digits ?? 2 }

    private init(code: String, minorDigits: Int) {
        self.code = code
        self.minorDigits = minorDigits
    }

    public init(from decoder: any Decoder) throws {
        let code = try decoder.singleValueContainer().decode(String.self)
        guard let currency = Currency(code: code) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\"\(code)\" is not a three-letter currency code"))
        }
        self = currency
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(code)
    }

    public var description: String { code }
}

/// An amount of money: a whole number of minor units (cents) of one currency. Never a floating-point
/// number. On the wire: `{"minor": 250, "currency": "USD"}`.
public struct Money: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var minor: Int64
    public var currency: Currency

    public init(minor: Int64, currency: Currency) {
        self.minor = minor
        self.currency = currency
    }

    private enum CodingKeys: String, CodingKey { case minor, currency }

    /// As synthesized, but a `minor` of 5.5 is named as such: Foundation's decoder reports a number
    /// that is not a whole `Int64` as "not valid JSON", without saying which field.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        do {
            minor = try container.decode(Int64.self, forKey: .minor)
        } catch {
            // Foundation's error here is internal (`numberIsNotRepresentableInSwift`); a number it is.
            guard let number = try? container.decode(Double.self, forKey: .minor) else { throw error }
            let reason = number.rounded() == number
                ? "must be a whole number of minor units from \(Int64.min) to \(Int64.max), not \(number)"
                : "must be a whole number of minor units (550 for 5.50), not \(number)"
            throw DecodingError.dataCorruptedError(forKey: .minor, in: container, debugDescription: reason)
        }
        currency = try container.decode(Currency.self, forKey: .currency)
    }

    public static func zero(_ currency: Currency) -> Money { Money(minor: 0, currency: currency) }

    /// Parses a decimal string in major units ("12.50" USD → 1250 minor) exactly, refusing more
    /// fraction digits than the currency has.
    public init?(decimal text: String, currency: Currency) {
        var digits = text
        let negative = digits.hasPrefix("-")
        if negative { digits.removeFirst() }
        let parts = digits.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = Int64(parts[0]), whole >= 0 else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            let text = parts[1]
            guard !text.isEmpty, text.count <= currency.minorDigits, let value = Int64(text) else { return nil }
            fraction = value * Self.power(currency.minorDigits - text.count)
        }
        let (scaled, overflow) = whole.multipliedReportingOverflow(by: Self.power(currency.minorDigits))
        guard !overflow else { return nil }
        self.init(minor: (scaled + fraction) * (negative ? -1 : 1), currency: currency)
    }

    static func power(_ exponent: Int) -> Int64 { (0..<exponent).reduce(1) { result, _ in result * 10 } }

    /// "12.50 USD".
    public var description: String { decimalText + " " + currency.code }

    /// The amount in major units, exactly: "12.50", "-0.05", "1500" (JPY).
    public var decimalText: String {
        let scale = Self.power(currency.minorDigits)
        let magnitude = minor.magnitude
        let whole = magnitude / UInt64(scale)
        var text = (minor < 0 ? "-" : "") + String(whole)
        if currency.minorDigits > 0 {
            let fraction = String(magnitude % UInt64(scale))
            text += "." + String(repeating: "0", count: currency.minorDigits - fraction.count) + fraction
        }
        return text
    }

    public static func < (lhs: Money, rhs: Money) -> Bool {
        precondition(lhs.currency == rhs.currency, "comparing \(lhs.currency) with \(rhs.currency)")
        return lhs.minor < rhs.minor
    }

    /// The sum, or nil if the currencies differ or it overflows.
    public func adding(_ other: Money) -> Money? {
        guard currency == other.currency else { return nil }
        let (sum, overflow) = minor.addingReportingOverflow(other.minor)
        return overflow ? nil : Money(minor: sum, currency: currency)
    }

    public func subtracting(_ other: Money) -> Money? {
        adding(Money(minor: -other.minor, currency: other.currency))
    }

    public func times(_ count: Int64) -> Money? {
        let (product, overflow) = minor.multipliedReportingOverflow(by: count)
        return overflow ? nil : Money(minor: product, currency: currency)
    }
}
