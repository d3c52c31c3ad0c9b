import Foundation
import TallyLog

// The e-voucher fair: booths with operators, vouchers bought for an amount, redeemed at a booth.
// Streams: "booth-<id>" (registration, operators), "voucher-<id>" (issue, redemption), "sale-<id>" (the
// sale a redemption paid for: one stream per sale, so a sale id is used once and booth streams stay short).

public struct BoothRegistered: DomainEvent {
    public static let eventType = "BoothRegistered"
    public var boothID: String
    public var name: String
    public var location: String
}

public struct OperatorAssigned: DomainEvent {
    public static let eventType = "OperatorAssigned"
    public static let personalFields: Set<String> = ["operatorName"]
    public var boothID: String
    /// The operator's username: the actor id of their commands.
    public var operatorID: String
    public var operatorName: String
}

/// The operator no longer serves the booth (their shift there ended, or they move to another booth).
public struct OperatorUnassigned: DomainEvent {
    public static let eventType = "OperatorUnassigned"
    public var boothID: String
    public var operatorID: String
}

public struct VoucherIssued: DomainEvent {
    public static let eventType = "VoucherIssued"
    public static let personalFields: Set<String> = ["buyerEmail"]
    public var voucherID: String
    public var amount: Money
    public var buyerEmail: String
}

public struct VoucherRedeemed: DomainEvent {
    public static let eventType = "VoucherRedeemed"
    public var voucherID: String
    public var boothID: String
    public var operatorID: String
    public var saleID: String
    public var saleAmount: Money
}

/// A sale at a booth, paid with a voucher: the seed's sales table, one row per redemption.
public struct SaleRecorded: DomainEvent {
    public static let eventType = "SaleRecorded"
    public var saleID: String
    public var boothID: String
    public var voucherID: String
    public var operatorID: String
    public var amount: Money
}

public enum FairStreams {
    public static func booth(_ id: String) -> String { "booth-\(id)" }
    public static func voucher(_ id: String) -> String { "voucher-\(id)" }
    public static func sale(_ id: String) -> String { "sale-\(id)" }
}

/// A booth as its stream tells it.
public struct BoothState: Foldable, Equatable {
    public var registered: BoothRegistered?
    public var operators: Set<String> = []

    public init() {}

    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case BoothRegistered.eventType: registered = try DomainCoding.decode(BoothRegistered.self, from: payload)
        case OperatorAssigned.eventType: operators.insert(try DomainCoding.decode(OperatorAssigned.self, from: payload).operatorID)
        case OperatorUnassigned.eventType: operators.remove(try DomainCoding.decode(OperatorUnassigned.self, from: payload).operatorID)
        default: break
        }
    }
}

/// A voucher as its stream tells it.
public struct VoucherState: Foldable, Equatable {
    public var issued: VoucherIssued?
    public var redeemed: VoucherRedeemed?

    public init() {}

    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws {
        switch type {
        case VoucherIssued.eventType: issued = try DomainCoding.decode(VoucherIssued.self, from: payload)
        case VoucherRedeemed.eventType: redeemed = try DomainCoding.decode(VoucherRedeemed.self, from: payload)
        default: break
        }
    }
}
