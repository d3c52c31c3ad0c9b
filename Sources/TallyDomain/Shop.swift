import Crypto
import Foundation
import TallyLog
import TallyMerkle

// The web shop: users, categories, products, stock, orders and payments.
// Streams: "user-<id>", "category-<id>", "product-<id>", "stock-<productId>", "order-<id>",
// "payment-<id>", and claim streams that make values unique (see `Claims`).

public struct UserRegistered: DomainEvent {
    public static let eventType = "UserRegistered"
    public static let personalFields: Set<String> = ["username", "email"]
    public var userID: String
    public var username: String
    public var email: String
    public var isAdmin: Bool
}

public struct CategoryCreated: DomainEvent {
    public static let eventType = "CategoryCreated"
    public var categoryID: String
    public var name: String
    public var slug: String
}

public struct CategoryChanged: DomainEvent {
    public static let eventType = "CategoryChanged"
    public var categoryID: String
    public var name: String
    public var slug: String
}

/// A category's name and slug as they stand.
public struct CategoryState: Foldable {
    public var exists = false
    public var name = ""
    public var slug = ""
    public init() {}
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case CategoryCreated.eventType:
            let created = try DomainCoding.decode(CategoryCreated.self, from: payload)
            (exists, name, slug) = (true, created.name, created.slug)
        case CategoryChanged.eventType:
            let changed = try DomainCoding.decode(CategoryChanged.self, from: payload)
            (name, slug) = (changed.name, changed.slug)
        default: break
        }
    }
}

public struct UserEmailChanged: DomainEvent {
    public static let eventType = "UserEmailChanged"
    public static let personalFields: Set<String> = ["email"]
    public var userID: String
    public var email: String
}

public struct UserDeactivated: DomainEvent {
    public static let eventType = "UserDeactivated"
    public var userID: String
}

public struct ProductCreated: DomainEvent {
    public static let eventType = "ProductCreated"
    public var productID: String
    public var name: String
    public var slug: String
    public var description: String
    public var price: Money
    public var categoryID: String
}

public struct ProductPriceChanged: DomainEvent {
    public static let eventType = "ProductPriceChanged"
    public var productID: String
    public var price: Money
}

public struct StockReceived: DomainEvent {
    public static let eventType = "StockReceived"
    public var productID: String
    public var quantity: Int
}

/// A correction after a count: `delta` may be negative, the level never.
public struct StockAdjusted: DomainEvent {
    public static let eventType = "StockAdjusted"
    public var productID: String
    public var delta: Int
    public var reason: String
}

public struct StockReserved: DomainEvent {
    public static let eventType = "StockReserved"
    public var productID: String
    public var orderID: String
    public var quantity: Int
}

public struct StockReleased: DomainEvent {
    public static let eventType = "StockReleased"
    public var productID: String
    public var orderID: String
    public var quantity: Int
}

/// A line as ordered, the historic truth of the sale: what the product was called and cost at purchase
/// time is part of the order, whatever the catalogue says later.
public struct OrderLine: Codable, Sendable, Equatable {
    public var productID: String
    public var name: String
    public var categoryID: String
    public var quantity: Int
    public var unitPrice: Money
    public var appliedDiscounts: Money
    public var preTaxTotal: Money

    public init(productID: String, name: String, categoryID: String, quantity: Int, unitPrice: Money, appliedDiscounts: Money, preTaxTotal: Money) {
        self.productID = productID
        self.name = name
        self.categoryID = categoryID
        self.quantity = quantity
        self.unitPrice = unitPrice
        self.appliedDiscounts = appliedDiscounts
        self.preTaxTotal = preTaxTotal
    }
}

public struct OrderPlaced: DomainEvent {
    public static let eventType = "OrderPlaced"
    public var orderID: String
    public var userID: String
    public var lines: [OrderLine]
    public var total: Money
}

public struct OrderConfirmed: DomainEvent {
    public static let eventType = "OrderConfirmed"
    public var orderID: String
}

public struct OrderPaid: DomainEvent {
    public static let eventType = "OrderPaid"
    public var orderID: String
    public var paymentID: String
    public var transactionID: String
}

public struct OrderShipped: DomainEvent {
    public static let eventType = "OrderShipped"
    public var orderID: String
}

public struct OrderDelivered: DomainEvent {
    public static let eventType = "OrderDelivered"
    public var orderID: String
}

public struct OrderCancelled: DomainEvent {
    public static let eventType = "OrderCancelled"
    public var orderID: String
    public var reason: String
    /// Set when the order was paid: its payment is owed back (since 2026-12-02; a paid order cancelled
    /// before then owed the same, unrecorded).
    public var refundDue: RefundDue?
}

/// The refund a cancelled order owed, paid back: the provider's refund transaction.
public struct RefundPaid: DomainEvent {
    public static let eventType = "RefundPaid"
    public var orderID: String
    public var paymentID: String
    public var refundTransactionID: String
    public var amount: Money
}

/// What a cancelled order owes its customer: the payment that paid it, in full.
public struct RefundDue: Codable, Sendable, Equatable {
    public var paymentID: String
    public var transactionID: String
    public var amount: Money

    public init(paymentID: String, transactionID: String, amount: Money) {
        self.paymentID = paymentID
        self.transactionID = transactionID
        self.amount = amount
    }
}

public enum PaymentMethod: String, Codable, Sendable, CaseIterable { case mpesa, card, paypal }

public struct PaymentInitiated: DomainEvent {
    public static let eventType = "PaymentInitiated"
    public var paymentID: String
    public var orderID: String
    public var userID: String
    public var amount: Money
    public var method: PaymentMethod
}

public struct PaymentSucceeded: DomainEvent {
    public static let eventType = "PaymentSucceeded"
    public var paymentID: String
    public var orderID: String
    /// The provider's reference (M-Pesa receipt, card processor id): accepted once across all orders.
    public var transactionID: String
    public var method: PaymentMethod
    public var amount: Money
}

public struct PaymentFailed: DomainEvent {
    public static let eventType = "PaymentFailed"
    public var paymentID: String
    public var orderID: String
    public var reason: String
}

/// A value taken by one owner: the claim stream of a username, email, social id or provider
/// transaction id, so its owner is unique.
public struct ValueClaimed: DomainEvent {
    public static let eventType = "ValueClaimed"
    public var kind: String
    public var owner: String
}

/// A value given up (an old email address after a change): it can be claimed again.
public struct ValueReleased: DomainEvent {
    public static let eventType = "ValueReleased"
    public var kind: String
    public var owner: String
}

/// Who holds a claimed value, if anyone.
public struct ClaimState: Foldable {
    public var owner: String?
    public init() {}
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case ValueClaimed.eventType: owner = try DomainCoding.decode(ValueClaimed.self, from: payload).owner
        case ValueReleased.eventType: owner = nil
        default: break
        }
    }
}

public enum ShopStreams {
    public static func user(_ id: String) -> String { "user-\(id)" }
    public static func category(_ id: String) -> String { "category-\(id)" }
    public static func product(_ id: String) -> String { "product-\(id)" }
    public static func stock(_ id: String) -> String { "stock-\(id)" }
    public static func order(_ id: String) -> String { "order-\(id)" }
    public static func payment(_ id: String) -> String { "payment-\(id)" }
}

/// Claim streams: one per unique value (a username, an email, a social account, a payment
/// transaction id). Personal values are named by a keyed digest (HMAC-SHA-256 with the vault's claim
/// secret), so a stream name reveals nothing to a dictionary; without a vault (tests in memory) by a
/// domain-separated SHA-256.
public enum Claims {
    public static func username(_ name: String, secret: SymmetricKey?) -> String {
        "claim-username-\(keyedDigest("username", name.lowercased(), secret: secret))"
    }
    public static func email(_ email: String, secret: SymmetricKey?) -> String {
        "claim-email-\(keyedDigest("email", email.lowercased(), secret: secret))"
    }
    public static func social(_ provider: String, _ id: String, secret: SymmetricKey?) -> String {
        "claim-social-\(keyedDigest("social/\(provider)", id, secret: secret))"
    }
    /// A device's fingerprint as `MemberDeviceSeen` records it: `device-` and its keyed digest.
    public static func device(_ fingerprint: String, secret: SymmetricKey?) -> String {
        "device-\(keyedDigest("device", fingerprint, secret: secret))"
    }
    public static func paymentTransaction(_ method: PaymentMethod, _ id: String) -> String { "claim-payment-\(method.rawValue)-\(id)" }
    /// A category's name, whatever its capitals ("Books" and "BOOKS" are one name on a shop's menu).
    public static func categoryName(_ name: String) -> String { "claim-category-name-\(name.lowercased())" }
    /// A category's or a product's slug: the last part of its URL.
    public static func slug(_ kind: String, _ slug: String) -> String { "claim-\(kind)-slug-\(slug)" }
    /// Held by an order's payment from its start until it fails; kept once it succeeds.
    public static func orderPayment(_ orderID: String) -> String { "claim-order-payment-\(orderID)" }
    /// The booth an operator serves: one at a time, as the seed's booths table has the operator's
    /// username UNIQUE (their login names their booth).
    public static func operatorBooth(_ operatorID: String) -> String { "claim-operator-\(operatorID)" }

    static func keyedDigest(_ kind: String, _ value: String, secret: SymmetricKey?) -> String {
        let input = Data("tally/claim/\(kind)\u{0}\(value)".utf8)
        let digest: [UInt8] = if let secret { Array(HMAC<SHA256>.authenticationCode(for: input, using: secret)) } else { Array(SHA256.hash(data: input)) }
        return PersonalData.hex(digest.prefix(20))
    }
}

public enum OrderStatus: String, Codable, Sendable, Comparable {
    case pending, confirmed, paid, shipped, delivered, cancelled
    var rank: Int { [.pending: 0, .confirmed: 1, .paid: 2, .shipped: 3, .delivered: 4, .cancelled: 5][self]! }
    public static func < (lhs: OrderStatus, rhs: OrderStatus) -> Bool { lhs.rank < rhs.rank }
}

public struct UserState: Foldable {
    public init() {}
    public var registered: UserRegistered?
    public var email: String?
    public var active = true
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case UserRegistered.eventType:
            registered = try DomainCoding.decode(UserRegistered.self, from: payload)
            email = registered?.email
        case UserEmailChanged.eventType: email = try DomainCoding.decode(UserEmailChanged.self, from: payload).email
        case UserDeactivated.eventType: active = false
        default: break
        }
    }
}

public struct ProductState: Foldable {
    public init() {}
    public var created: ProductCreated?
    public var price: Money?
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case ProductCreated.eventType:
            created = try DomainCoding.decode(ProductCreated.self, from: payload)
            price = created?.price
        case ProductPriceChanged.eventType: price = try DomainCoding.decode(ProductPriceChanged.self, from: payload).price
        default: break
        }
    }
}

public struct StockState: Foldable {
    public init() {}
    /// Units on hand and not reserved by a confirmed order.
    public var available = 0
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        // (product, units, whether they are taken away)
        let movement: (String, Int, Bool)
        switch type {
        case StockReceived.eventType: let event = try DomainCoding.decode(StockReceived.self, from: payload); movement = (event.productID, event.quantity, false)
        case StockAdjusted.eventType: let event = try DomainCoding.decode(StockAdjusted.self, from: payload); movement = (event.productID, event.delta, false)
        case StockReserved.eventType: let event = try DomainCoding.decode(StockReserved.self, from: payload); movement = (event.productID, event.quantity, true)
        case StockReleased.eventType: let event = try DomainCoding.decode(StockReleased.self, from: payload); movement = (event.productID, event.quantity, false)
        default: return
        }
        // Checked: a log written behind the rules' back may hold counts that do not add up in 64 bits.
        let (product, units, taken) = movement
        available = taken ? try Quantities.difference(available, units, "the stock of product \(product)")
                          : try Quantities.sum(available, units, "the stock of product \(product)")
    }
}

public struct OrderState: Foldable {
    public init() {}
    public var placed: OrderPlaced?
    public var status: OrderStatus = .pending
    public var paid: OrderPaid?
    /// What the order owes back since it was cancelled paid, and the refund that paid it.
    public var refundDue: RefundDue?
    public var refunded: RefundPaid?
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case OrderPlaced.eventType: placed = try DomainCoding.decode(OrderPlaced.self, from: payload)
        case OrderConfirmed.eventType: status = .confirmed
        case OrderPaid.eventType:
            status = .paid
            paid = try DomainCoding.decode(OrderPaid.self, from: payload)
        case OrderShipped.eventType: status = .shipped
        case OrderDelivered.eventType: status = .delivered
        case OrderCancelled.eventType:
            status = .cancelled
            refundDue = try DomainCoding.decode(OrderCancelled.self, from: payload).refundDue
        case RefundPaid.eventType: refunded = try DomainCoding.decode(RefundPaid.self, from: payload)
        default: break
        }
    }
}

public struct PaymentState: Foldable {
    public init() {}
    public var initiated: PaymentInitiated?
    public var succeeded: PaymentSucceeded?
    public var failed: PaymentFailed?
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case PaymentInitiated.eventType: initiated = try DomainCoding.decode(PaymentInitiated.self, from: payload)
        case PaymentSucceeded.eventType: succeeded = try DomainCoding.decode(PaymentSucceeded.self, from: payload)
        case PaymentFailed.eventType: failed = try DomainCoding.decode(PaymentFailed.self, from: payload)
        default: break
        }
    }
}
