import TallyLog

/// One layered price of an item, as in the seed's ItemPrice table: a price for `quantity` units
/// ("3 for $1.00" is price 100, quantity 3), active from `start` (inclusive) to `end` (exclusive),
/// either open when nil. Of the records active at a moment the one with the highest `priceType` wins.
/// Since schema 2 of `PriceScheduled` a record carries the `label` receipts and reports show
/// ("3 for 1.00 USD"); records written before it get their label from the upcaster.
public struct PriceRecord: Hashable, Sendable, Codable {
    public var sku: SKU
    public var start: Timestamp?
    public var end: Timestamp?
    public var priceType: Int
    public var price: Money
    public var quantity: Int
    public var taxable: Bool
    public var bogo: Bool
    /// What the price is called on receipts and in reports: "regular", "3 for 1.00 USD", "buy one get one".
    public var label: String

    /// `label` nil gives the standard label for the record's shape.
    public init(sku: SKU, start: Timestamp? = nil, end: Timestamp? = nil, priceType: Int = 0, price: Money, quantity: Int = 1,
                taxable: Bool = false, bogo: Bool = false, label: String? = nil) {
        self.sku = sku
        self.start = start
        self.end = end
        self.priceType = priceType
        self.price = price
        self.quantity = quantity
        self.taxable = taxable
        self.bogo = bogo
        self.label = label ?? Self.standardLabel(priceType: priceType, price: price, quantity: quantity, bogo: bogo)
    }

    /// The label of a record nobody named: what the price does.
    public static func standardLabel(priceType: Int, price: Money, quantity: Int, bogo: Bool) -> String {
        if bogo { return "buy one get one" }
        if quantity > 1 { return "\(quantity) for \(price)" }
        return priceType == 0 ? "regular" : "promotion (type \(priceType))"
    }

    public func isActive(at moment: Timestamp) -> Bool {
        (start.map { $0 <= moment } ?? true) && (end.map { moment < $0 } ?? true)
    }
}

/// What a line of a checkout costs, unit by unit: the historic truth a transaction records.
public struct LineCharge: Hashable, Sendable, Codable {
    /// The single-unit price: a group price divided by its size, rounded up.
    public var unitPrice: Money
    public var quantity: Int
    /// What each unit costs, in scan order.
    public var unitCharges: [Int64]
    /// `unitPrice × quantity − preTaxTotal`.
    public var appliedDiscounts: Money
    public var preTaxTotal: Money
    public var taxable: Bool
    public var bogo: Bool
}

public enum PricingError: Error, Equatable, Sendable, CustomStringConvertible {
    case noActivePrice(SKU, Timestamp)
    case invalidQuantity(Int)
    case invalidPriceRecord(String)
    case overflow

    public var description: String {
        switch self {
        case .noActivePrice(let sku, let moment): "item \(sku) has no active price at \(moment)"
        case .invalidQuantity(let quantity): "quantity \(quantity) is not a positive whole number"
        case .invalidPriceRecord(let reason): "invalid price record: \(reason)"
        case .overflow: "the amount is too large"
        }
    }
}

public enum Pricing {
    /// The record to charge at `moment`: among the active ones, the highest price type; of equal
    /// types, the one that started last; of those, the last given.
    public static func activePrice(_ records: [PriceRecord], at moment: Timestamp) -> PriceRecord? {
        var best: PriceRecord?
        for record in records where record.isActive(at: moment) {
            guard let current = best else { best = record; continue }
            let startRecord = record.start?.microsecondsSinceEpoch ?? .min
            let startCurrent = current.start?.microsecondsSinceEpoch ?? .min
            if record.priceType > current.priceType || (record.priceType == current.priceType && startRecord >= startCurrent) {
                best = record
            }
        }
        return best
    }

    /// Checks a price record before it is accepted: positive group size, non-negative price, a range
    /// that is not empty.
    public static func validate(_ record: PriceRecord) throws {
        guard record.quantity >= 1 else { throw PricingError.invalidPriceRecord("quantity \(record.quantity) must be at least 1") }
        guard record.price.minor >= 0 else { throw PricingError.invalidPriceRecord("the price \(record.price) is negative") }
        if let start = record.start, let end = record.end, end <= start {
            throw PricingError.invalidPriceRecord("it ends (\(end)) before it starts (\(start))")
        }
    }

    /// The charge for `quantity` units under `record`. A group price that does not divide evenly rounds
    /// the first units of each group up and lets the group's last unit take the remainder, so "3 for
    /// $1.00" charges 0.34, 0.34, 0.32, and a fourth unit 0.34 again; a partial group pays the
    /// rounded-up unit price. With BOGO every second unit is free.
    public static func charge(_ record: PriceRecord, quantity: Int) throws -> LineCharge {
        guard quantity >= 1 else { throw PricingError.invalidQuantity(quantity) }
        try validate(record)
        let groupSize = Int64(record.quantity)
        let groupPrice = record.price.minor
        let unitPrice = (groupPrice + groupSize - 1) / groupSize
        var charges: [Int64] = []
        charges.reserveCapacity(quantity)
        var chargedInGroup: Int64 = 0
        for unit in 0..<quantity {
            let indexInGroup = Int64(unit) % groupSize
            if indexInGroup == 0 { chargedInGroup = 0 }
            let charge: Int64
            if indexInGroup == groupSize - 1 {
                charge = groupPrice - chargedInGroup
            } else {
                charge = min(unitPrice, groupPrice - chargedInGroup)
            }
            chargedInGroup += charge
            charges.append(record.bogo && unit % 2 == 1 ? 0 : charge)
        }
        let (list, overflow) = unitPrice.multipliedReportingOverflow(by: Int64(quantity))
        guard !overflow else { throw PricingError.overflow }
        let total = charges.reduce(0, +)
        let currency = record.price.currency
        return LineCharge(unitPrice: Money(minor: unitPrice, currency: currency), quantity: quantity, unitCharges: charges,
                          appliedDiscounts: Money(minor: list - total, currency: currency), preTaxTotal: Money(minor: total, currency: currency),
                          taxable: record.taxable, bogo: record.bogo)
    }
}

/// A variable-price UPC-A code (number system 2): `2 IIIII PPPPP C`, item code, price in cents, check
/// digit. Scales and deli counters print them; the price is in the code, and the item is looked up
/// under the code with its price digits zeroed.
public struct VariablePriceCode: Hashable, Sendable {
    /// The item's SKU: the code with the price digits zeroed and its check digit recomputed.
    public let itemSKU: SKU
    public let price: Money
    /// The code as scanned, kept for audit.
    public let scanned: String

    /// Nil unless `scanned` is 12 digits starting with 2 with a correct check digit.
    public init?(_ scanned: String, currency: Currency) {
        let digits = scanned.utf8.map { Int($0) - 48 }
        guard digits.count == 12, digits.allSatisfy({ (0...9).contains($0) }), digits[0] == 2,
              Self.checkDigit(digits[0..<11]) == digits[11] else { return nil }
        let priceMinor = digits[6..<11].reduce(0) { $0 * 10 + Int64($1) }
        var item = Array(digits[0..<6]) + [0, 0, 0, 0, 0]
        item.append(Self.checkDigit(item[0..<11]))
        guard let sku = SKU(String(item.map { Character(String($0)) })) else { return nil }
        itemSKU = sku
        price = Money(minor: priceMinor, currency: currency)
        self.scanned = scanned
    }

    /// The UPC-A check digit of the first 11 digits.
    static func checkDigit(_ digits: ArraySlice<Int>) -> Int {
        var sum = 0
        for (offset, digit) in digits.enumerated() { sum += offset % 2 == 0 ? digit * 3 : digit }
        return (10 - sum % 10) % 10
    }
}
