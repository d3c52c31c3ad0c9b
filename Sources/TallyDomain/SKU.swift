/// A stock-keeping unit: a UPC, PLU or store code. Always a string: leading zeros are significant
/// ("0001234" is not "1234"), so a SKU is never parsed as a number.
public struct SKU: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public let value: String
    /// The seed's Item table holds SKUs of up to 40 characters.
    public static let charactersMax = 40

    /// A SKU of 1 to 40 ASCII letters and digits, kept exactly as given.
    public init?(_ value: String) {
        guard !value.isEmpty, value.utf8.count <= Self.charactersMax,
              value.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) }) else { return nil }
        self.value = value
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let sku = SKU(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\"\(text)\" is not a SKU (1–40 letters and digits)"))
        }
        self = sku
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }

    public static func < (lhs: SKU, rhs: SKU) -> Bool { lhs.value < rhs.value }
    public var description: String { value }
}
