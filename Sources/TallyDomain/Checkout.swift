import Foundation
import TallyLog

// The grocery self-checkout: stores, items with layered prices, members, carts and checkouts.
// Streams: "store-<id>", "item-<store>-<sku>", "member-<id>", "cart-<id>", "list-<id>".

public struct StoreOpened: DomainEvent {
    public static let eventType = "StoreOpened"
    public var storeID: String
    public var name: String
    public var currency: Currency
}

/// An item of a store's catalogue, as the seed's Item table has it.
public struct ItemDetails: Codable, Sendable, Equatable {
    public var description: String
    public var size: String?
    public var posDescription: String?
    public var aisle: String?
    public var shelf: String?
    public var departmentCode: String?
    /// Needs a staff approval at checkout (alcohol).
    public var restricted: Bool
    /// Scanning this item adds that one too (a bottle deposit).
    public var linkedSKU: SKU?
    /// A replacement SKU (new packaging): pricing and reporting use it; the scanned input is kept.
    public var supersededBy: SKU?
    public var taxable: Bool

    public init(description: String, size: String? = nil, posDescription: String? = nil, aisle: String? = nil, shelf: String? = nil,
                departmentCode: String? = nil, restricted: Bool = false, linkedSKU: SKU? = nil, supersededBy: SKU? = nil, taxable: Bool = false) {
        self.description = description
        self.size = size
        self.posDescription = posDescription
        self.aisle = aisle
        self.shelf = shelf
        self.departmentCode = departmentCode
        self.restricted = restricted
        self.linkedSKU = linkedSKU
        self.supersededBy = supersededBy
        self.taxable = taxable
    }
}

public struct ItemCreated: DomainEvent {
    public static let eventType = "ItemCreated"
    public var storeID: String
    public var sku: SKU
    public var details: ItemDetails
}

public struct ItemChanged: DomainEvent {
    public static let eventType = "ItemChanged"
    public var storeID: String
    public var sku: SKU
    public var details: ItemDetails
}

/// A price record scheduled for an item (ItemPrice): it layers over the others by price type.
/// Schema 2: the record gained `label`. Version 1 payloads are upcast as they are read (see `Upcasting`).
public struct PriceScheduled: DomainEvent {
    public static let eventType = "PriceScheduled"
    public static let schemaVersion: UInt16 = 2
    public var storeID: String
    public var price: PriceRecord
}

public struct MemberRegistered: DomainEvent {
    public static let eventType = "MemberRegistered"
    public static let personalFields: Set<String> = ["firstName", "lastName", "email", "phone"]
    public var memberID: String
    public var firstName: String?
    public var lastName: String?
    public var email: String?
    public var phone: String?
}

public struct SocialAccountLinked: DomainEvent {
    public static let eventType = "SocialAccountLinked"
    public static let personalFields: Set<String> = ["accountID"]
    public var memberID: String
    public var provider: String
    public var accountID: String
}

/// The member's app started on a device (the self-checkout seed's regret: a member who reinstalled the
/// app got a new member id, and nothing tied the ids of one person together). `device` is a keyed
/// digest of the device's fingerprint (HMAC under the store's claim secret, `Claims.device`): the
/// fingerprint itself is never stored, and the digest is sealed under the member's key, so forgetting
/// the member cuts their tie to the device and through it to their other ids. `storeID`: the store the
/// app opened in, if any (the seed's other regret: where members were when they opened the app). It
/// came later: an event without it reads as opened outside a store, and one without a store is written
/// as before, so the schema stays 1.
public struct MemberDeviceSeen: DomainEvent {
    public static let eventType = "MemberDeviceSeen"
    public static let personalFields: Set<String> = ["device"]
    public var memberID: String
    public var device: String
    public var storeID: String?
}

/// One line of a member's shopping list: an item, by SKU, and how many of it.
public struct ShoppingListLine: Codable, Sendable, Equatable {
    public var sku: SKU
    public var quantity: Int

    public init(sku: SKU, quantity: Int) {
        self.sku = sku
        self.quantity = quantity
    }
}

/// A revision of a member's shopping list: the whole list as it now stands, numbered from 1 (an empty
/// one cleared it). The self-checkout seed's regret: every revision of the shopping lists, beside the
/// carts, would have shown what members meant to buy, for the marketing models it never got to build.
public struct ShoppingListRevised: DomainEvent {
    public static let eventType = "ShoppingListRevised"
    public var memberID: String
    public var listID: String
    public var revision: Int
    public var lines: [ShoppingListLine]
}

public struct MemberProfileChanged: DomainEvent {
    public static let eventType = "MemberProfileChanged"
    public static let personalFields: Set<String> = ["firstName", "lastName", "phone"]
    public var memberID: String
    public var firstName: String?
    public var lastName: String?
    public var phone: String?
}

public struct MemberDeactivated: DomainEvent {
    public static let eventType = "MemberDeactivated"
    public var memberID: String
}

public struct CartOpened: DomainEvent {
    public static let eventType = "CartOpened"
    public var cartID: String
    public var storeID: String
    public var memberID: String
}

public struct CartItemAdded: DomainEvent {
    public static let eventType = "CartItemAdded"
    public var cartID: String
    /// What the scanner read, unprocessed: a variable-price code keeps its price, a superseded SKU its
    /// old packaging.
    public var scannedInput: String
    /// The SKU the line is priced and reported under.
    public var sku: SKU
    public var quantity: Int
    /// The price a variable-price code carries, if any.
    public var embeddedPrice: Money?
    /// Set when this line was added because another item links to it (a deposit).
    public var linkedFrom: SKU?
}

public struct CartItemRemoved: DomainEvent {
    public static let eventType = "CartItemRemoved"
    public var cartID: String
    public var sku: SKU
    public var quantity: Int
    /// Set when these units went because the item they came with was removed (a deposit with its bottles).
    public var linkedFrom: SKU?
}

public struct RestrictedItemsApproved: DomainEvent {
    public static let eventType = "RestrictedItemsApproved"
    public var cartID: String
    public var staffID: String
}

/// One purchased line, as the seed's Transaction table records it: the historic truth of the sale.
public struct TransactionLine: Codable, Sendable, Equatable {
    public var scannedInput: String
    public var sku: SKU
    public var description: String
    public var size: String?
    public var unitPrice: Money
    public var quantity: Int
    public var appliedDiscounts: Money
    public var preTaxTotal: Money
    public var taxable: Bool
    public var departmentCode: String?
    public var bogo: Bool
}

public struct CartCheckedOut: DomainEvent {
    public static let eventType = "CartCheckedOut"
    public var cartID: String
    public var storeID: String
    public var memberID: String
    public var lines: [TransactionLine]
    public var total: Money
    public var paymentTransactionID: String
}

public enum CheckoutStreams {
    public static func store(_ id: String) -> String { "store-\(id)" }
    public static func item(_ store: String, _ sku: SKU) -> String { "item-\(store)-\(sku.value)" }
    public static func member(_ id: String) -> String { "member-\(id)" }
    public static func cart(_ id: String) -> String { "cart-\(id)" }
    public static func shoppingList(_ id: String) -> String { "list-\(id)" }
}

public struct StoreState: Foldable {
    public init() {}
    public var opened: StoreOpened?
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        if type == StoreOpened.eventType { opened = try DomainCoding.decode(StoreOpened.self, from: payload) }
    }
}

public struct ItemState: Foldable {
    public init() {}
    public var details: ItemDetails?
    public var prices: [PriceRecord] = []
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case ItemCreated.eventType: details = try DomainCoding.decode(ItemCreated.self, from: payload).details
        case ItemChanged.eventType: details = try DomainCoding.decode(ItemChanged.self, from: payload).details
        case PriceScheduled.eventType: prices.append(try DomainCoding.decode(PriceScheduled.self, from: payload).price)
        default: break
        }
    }
}

public struct MemberState: Foldable {
    public init() {}
    public var registered: MemberRegistered?
    public var active = true
    public var socialAccounts: [String: String] = [:]
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case MemberRegistered.eventType: registered = try DomainCoding.decode(MemberRegistered.self, from: payload)
        case MemberDeactivated.eventType: active = false
        case SocialAccountLinked.eventType:
            let linked = try DomainCoding.decode(SocialAccountLinked.self, from: payload)
            socialAccounts[linked.provider] = linked.accountID
        default: break
        }
    }
}

public struct ShoppingListState: Foldable {
    public init() {}
    /// The member the list belongs to (the one who made its first revision), and its last revision.
    public var memberID: String?
    public var revision = 0
    public var lines: [ShoppingListLine] = []
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        guard type == ShoppingListRevised.eventType else { return }
        let revised = try DomainCoding.decode(ShoppingListRevised.self, from: payload)
        if memberID == nil { memberID = revised.memberID }
        revision = revised.revision
        lines = revised.lines
    }
}

public struct CartLine: Sendable, Equatable {
    public var scannedInput: String
    public var sku: SKU
    public var quantity: Int
    public var embeddedPrice: Money?
    /// The item whose scan added this line (a deposit's bottles), or nil for a line scanned itself.
    public var linkedFrom: SKU?
}

public struct CartState: Foldable {
    public init() {}
    public var opened: CartOpened?
    /// Lines in scan order; removals take from the last lines of a SKU: a removal of the item itself
    /// from its own lines first, one that follows its item from the lines that item added.
    public var lines: [CartLine] = []
    public var approved = false
    public var checkedOut = false

    /// The units of `sku` in the cart (checked: a cart written behind the rules' back may not add up).
    public func quantity(of sku: SKU) throws -> Int {
        try lines.filter { $0.sku == sku }.reduce(0) { try Quantities.sum($0, $1.quantity, "the units of \(sku) in the cart") }
    }

    /// The lines its checkout would record: one per item, and one per scan of a variable-price code
    /// (each carries its own price).
    public var checkoutLineCount: Int {
        var items = Set<SKU>()
        var priced = 0
        for line in lines {
            if line.embeddedPrice != nil { priced += 1 } else { items.insert(line.sku) }
        }
        return items.count + priced
    }

    /// The units of `sku` that `linkedFrom`'s scans added (nil: the units scanned themselves).
    public func quantity(of sku: SKU, linkedFrom: SKU?) throws -> Int {
        try lines.filter { $0.sku == sku && $0.linkedFrom == linkedFrom }
            .reduce(0) { try Quantities.sum($0, $1.quantity, "the units of \(sku) in the cart") }
    }

    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case CartOpened.eventType: opened = try DomainCoding.decode(CartOpened.self, from: payload)
        case CartItemAdded.eventType:
            let added = try DomainCoding.decode(CartItemAdded.self, from: payload)
            lines.append(CartLine(scannedInput: added.scannedInput, sku: added.sku, quantity: added.quantity, embeddedPrice: added.embeddedPrice,
                                  linkedFrom: added.linkedFrom))
        case CartItemRemoved.eventType:
            let removed = try DomainCoding.decode(CartItemRemoved.self, from: payload)
            var remaining = removed.quantity
            func take(where matches: (CartLine) -> Bool) {
                for index in lines.indices.reversed() where remaining > 0 && lines[index].sku == removed.sku && matches(lines[index]) {
                    let taken = min(remaining, lines[index].quantity)
                    lines[index].quantity -= taken
                    remaining -= taken
                }
            }
            take { $0.linkedFrom == removed.linkedFrom }
            // Before linked removals were told apart (2026-12-02) a deposit could be removed on its own
            // from the lines its bottles added: such a removal of an older log still takes them.
            if removed.linkedFrom == nil { take { _ in true } }
            lines.removeAll { $0.quantity == 0 }
        case RestrictedItemsApproved.eventType: approved = true
        case CartCheckedOut.eventType: checkedOut = true
        default: break
        }
    }
}
