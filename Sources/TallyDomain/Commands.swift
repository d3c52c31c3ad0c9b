import Crypto
import Foundation
import Synchronization
import TallyLog

/// Why a command was refused. Each reason is its own stable code; the message is for people.
public enum RejectionCode: String, Codable, Sendable, CaseIterable {
    case notAuthorized
    case invalidField
    case nonPositiveAmount
    case currencyMismatch
    case boothAlreadyRegistered
    case boothNotFound
    case operatorNotAssigned
    /// The operator already serves another booth: an operator serves one booth at a time.
    case operatorServesAnotherBooth
    case voucherAlreadyIssued
    case voucherNotFound
    case voucherAlreadyRedeemed
    case saleExceedsVoucher
    case saleAlreadyRecorded
    case userAlreadyRegistered
    case userNotFound
    case userInactive
    case usernameTaken
    /// A category name, or a category's or product's slug, that another one has.
    case nameTaken
    case emailTaken
    case socialAccountTaken
    case categoryAlreadyExists
    case categoryNotFound
    case productAlreadyExists
    case productNotFound
    case stockWouldGoNegative
    case insufficientStock
    case orderAlreadyExists
    case orderNotFound
    case invalidOrderTransition
    case paymentAlreadyExists
    case paymentNotFound
    case paymentAlreadySettled
    case duplicatePaymentTransaction
    case paymentNotSuccessful
    case paymentAmountMismatch
    /// An order whose earlier payment is in progress or went through (one payment at a time).
    case orderHasPayment
    case storeAlreadyExists
    case storeNotFound
    case itemAlreadyExists
    case itemNotFound
    case invalidPrice
    case noActivePrice
    case memberAlreadyRegistered
    case memberNotFound
    case memberInactive
    case cartAlreadyExists
    case cartNotFound
    case cartAlreadyCheckedOut
    case cartEmpty
    case itemNotInCart
    /// A linked item's units (a deposit) removed without the item that brought them.
    case linkedItemStaysWithItsItem
    /// A refund recorded for an order that owes none, or whose refund was already paid.
    case noRefundDue
    case restrictedItemNeedsApproval
    /// More units than one command, a cart's line of an item or a count of stock may hold (`Quantities`).
    case quantityTooLarge
    /// A command id already used for a different command (`CommandDigest`).
    case commandIDReused
}

/// A refused command: nothing was appended.
public struct Rejection: Error, Equatable, Sendable, Codable, CustomStringConvertible {
    public var code: RejectionCode
    public var message: String

    public init(_ code: RejectionCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// Every command of the domain.
public enum Command: Sendable, Codable, Equatable {
    case registerBooth(boothID: String, name: String, location: String)
    case assignOperator(boothID: String, operatorID: String, operatorName: String)
    case unassignOperator(boothID: String, operatorID: String)
    case issueVoucher(voucherID: String, amount: Money, buyerEmail: String)
    case redeemVoucher(voucherID: String, boothID: String, saleID: String, saleAmount: Money)

    case registerUser(userID: String, username: String, email: String, isAdmin: Bool)
    case changeUserEmail(userID: String, email: String)
    case deactivateUser(userID: String)
    case createCategory(categoryID: String, name: String, slug: String)
    case changeCategory(categoryID: String, name: String, slug: String)
    case createProduct(productID: String, name: String, slug: String, description: String, price: Money, categoryID: String)
    case changeProductPrice(productID: String, price: Money)
    case receiveStock(productID: String, quantity: Int)
    case adjustStock(productID: String, delta: Int, reason: String)
    case placeOrder(orderID: String, userID: String, lines: [OrderRequestLine])
    case confirmOrder(orderID: String)
    case initiatePayment(paymentID: String, orderID: String, amount: Money, method: PaymentMethod)
    case recordPaymentSucceeded(paymentID: String, transactionID: String)
    case recordPaymentFailed(paymentID: String, reason: String)
    case markOrderPaid(orderID: String, paymentID: String)
    case shipOrder(orderID: String)
    case deliverOrder(orderID: String)
    case cancelOrder(orderID: String, reason: String)
    /// The refund a cancelled paid order owed has been paid back (the provider's refund transaction).
    case recordRefund(orderID: String, refundTransactionID: String)

    case openStore(storeID: String, name: String, currency: Currency)
    case createItem(storeID: String, sku: SKU, details: ItemDetails)
    case changeItem(storeID: String, sku: SKU, details: ItemDetails)
    case schedulePrice(storeID: String, price: PriceRecord)
    case registerMember(memberID: String, firstName: String?, lastName: String?, email: String?, phone: String?)
    case linkSocialAccount(memberID: String, provider: String, accountID: String)
    /// The member's app started on the device with this fingerprint (any stable text the app derives
    /// from the device, at most 100 bytes: a hash of a longer one), in the store it names if the
    /// member is in one; only a keyed digest of the fingerprint is recorded (`MemberDeviceSeen`).
    case recordMemberDevice(memberID: String, deviceFingerprint: String, storeID: String? = nil)
    case changeMemberProfile(memberID: String, firstName: String?, lastName: String?, phone: String?)
    /// The whole shopping list as it now stands (each SKU once; none clears it). Its first revision
    /// makes the list the member's: only they (or an admin) revise it after.
    case reviseShoppingList(listID: String, memberID: String, lines: [ShoppingListLine])
    case deactivateMember(memberID: String)
    case openCart(cartID: String, storeID: String, memberID: String)
    case scanItem(cartID: String, scannedInput: String, quantity: Int)
    case removeItem(cartID: String, sku: SKU, quantity: Int)
    case approveRestrictedItems(cartID: String)
    case checkout(cartID: String, paymentTransactionID: String)

    /// Records that a data subject's personal data is erased (`member:<id>`, `customer:<id>`,
    /// `operator:<id>` or `email:<digest>`), and releases the unique values they held (email,
    /// username, linked accounts), so the same person may register again. Once the events are
    /// durable, `CommerceService` destroys the subject's key in its vault.
    case erasePersonalData(subject: String, reason: String)

    /// Every command's name, as `tally exec` accepts it.
    public static let names = [
        "registerBooth", "assignOperator", "unassignOperator", "issueVoucher", "redeemVoucher",
        "registerUser", "changeUserEmail", "deactivateUser", "createCategory", "changeCategory", "createProduct", "changeProductPrice", "receiveStock", "adjustStock", "placeOrder",
        "confirmOrder", "initiatePayment", "recordPaymentSucceeded", "recordPaymentFailed", "markOrderPaid", "shipOrder",
        "deliverOrder", "cancelOrder", "recordRefund",
        "openStore", "createItem", "changeItem", "schedulePrice", "registerMember", "linkSocialAccount", "recordMemberDevice", "changeMemberProfile", "reviseShoppingList",
        "deactivateMember", "openCart", "scanItem", "removeItem", "approveRestrictedItems", "checkout",
        "erasePersonalData",
    ]

    /// The command's name: the case name ("redeemVoucher"), as its JSON key. A switch, not reflection:
    /// it is read for every command's metadata.
    public var name: String {
        switch self {
        case .registerBooth: "registerBooth"
        case .assignOperator: "assignOperator"
        case .unassignOperator: "unassignOperator"
        case .issueVoucher: "issueVoucher"
        case .redeemVoucher: "redeemVoucher"
        case .registerUser: "registerUser"
        case .changeUserEmail: "changeUserEmail"
        case .deactivateUser: "deactivateUser"
        case .createCategory: "createCategory"
        case .changeCategory: "changeCategory"
        case .createProduct: "createProduct"
        case .changeProductPrice: "changeProductPrice"
        case .receiveStock: "receiveStock"
        case .adjustStock: "adjustStock"
        case .placeOrder: "placeOrder"
        case .confirmOrder: "confirmOrder"
        case .initiatePayment: "initiatePayment"
        case .recordPaymentSucceeded: "recordPaymentSucceeded"
        case .recordPaymentFailed: "recordPaymentFailed"
        case .markOrderPaid: "markOrderPaid"
        case .shipOrder: "shipOrder"
        case .deliverOrder: "deliverOrder"
        case .recordRefund: "recordRefund"
        case .cancelOrder: "cancelOrder"
        case .openStore: "openStore"
        case .createItem: "createItem"
        case .changeItem: "changeItem"
        case .schedulePrice: "schedulePrice"
        case .registerMember: "registerMember"
        case .linkSocialAccount: "linkSocialAccount"
        case .recordMemberDevice: "recordMemberDevice"
        case .changeMemberProfile: "changeMemberProfile"
        case .reviseShoppingList: "reviseShoppingList"
        case .deactivateMember: "deactivateMember"
        case .openCart: "openCart"
        case .scanItem: "scanItem"
        case .removeItem: "removeItem"
        case .approveRestrictedItems: "approveRestrictedItems"
        case .checkout: "checkout"
        case .erasePersonalData: "erasePersonalData"
        }
    }
}

/// A line of an order request: the price is the product's at the moment the order is placed.
public struct OrderRequestLine: Codable, Sendable, Equatable {
    public var productID: String
    public var quantity: Int

    public init(productID: String, quantity: Int) {
        self.productID = productID
        self.quantity = quantity
    }
}

/// A command with its id (retrying the same id returns the first result and appends nothing) and
/// who issues it.
public struct CommandEnvelope: Sendable, Codable, Equatable {
    public var id: UUID
    public var actor: Actor
    public var command: Command

    public init(id: UUID, actor: Actor, command: Command) {
        self.id = id
        self.actor = actor
        self.command = command
    }
}

/// What a command decided: the events to append, and the stream versions the decision read.
public struct Decision: Sendable {
    public var events: [Emitted]
    public var expectations: [String: ExpectedVersion]
}

/// Read access to the streams a decision needs. The log's `WriterView` provides it inside the
/// writer's transaction; tests use `MemoryStreams`.
public protocol StreamReading {
    /// Calls `body` with each event of `stream` from `fromVersion` on, in order: its type, payload,
    /// version, and whether it is committed (an event the current transaction appended is not yet).
    /// Returns the stream's version.
    mutating func fold(_ stream: String, fromVersion: UInt64,
                       _ body: (_ type: String, _ payload: UnsafeRawBufferPointer, _ version: UInt64, _ committed: Bool) throws -> Void) throws -> UInt64
    /// The moment the decision is made (prices are taken as of it): the writer's clock in the log.
    var now: Timestamp { get }
    /// Folded states at committed versions, shared across decisions (nil: fold from the start).
    var states: StateCache? { get }
    /// The secret claim streams of personal values are named with (nil: an unkeyed digest).
    var claimSecret: SymmetricKey? { get }
    /// A personal field's value as the rules may use it: folds give personal fields as stored
    /// (sealed when a vault sealed them), and the few rules that need the clear value open it here.
    func open(_ value: String, field: String) throws -> String
}

extension StreamReading {
    public var claimSecret: SymmetricKey? { nil }
    public func open(_ value: String, field: String) throws -> String { value }

    /// Calls `body` with the type and payload of each event of `stream`; returns its version.
    public mutating func fold(_ stream: String, _ body: (String, UnsafeRawBufferPointer) throws -> Void) throws -> UInt64 {
        try fold(stream, fromVersion: 1) { type, payload, _, _ in try body(type, payload) }
    }
}

extension WriterView: StreamReading {
    // `now` comes from WriterView itself: the writer's clock, never earlier than the last event.
    public mutating func fold(_ stream: String, fromVersion: UInt64,
                              _ body: (String, UnsafeRawBufferPointer, UInt64, Bool) throws -> Void) throws -> UInt64 {
        var version: UInt64?
        let committedPosition = self.committedPosition
        try forEachEvent(in: stream, fromVersion: fromVersion) { record in
            // Rules see current shapes only: an event written with an older schema is upcast.
            let type = record.type
            try Upcasting.withCurrentPayload(type: type, schemaVersion: record.schemaVersion, payload: record.payloadBytes) { payload in
                try body(type, payload, record.version, record.position <= committedPosition)
            }
            version = record.version
            return true
        }
        // The walk goes to the stream's end, so its last event is the version; with none after
        // `fromVersion`, ask.
        if let version { return version }
        return try self.version(of: stream)
    }

    public var states: StateCache? { nil }
}

/// The log's view inside the writer, with a cache of folded states: what `CommerceService` decides with.
struct LogStreams: StreamReading {
    var view: WriterView
    let states: StateCache?
    /// Opens sealed personal fields for the rules that need them (an erased value reads as `PersonalData.erased`).
    let vault: (any PersonalDataVault)?
    let claimSecret: SymmetricKey?

    mutating func fold(_ stream: String, fromVersion: UInt64, _ body: (String, UnsafeRawBufferPointer, UInt64, Bool) throws -> Void) throws -> UInt64 {
        try view.fold(stream, fromVersion: fromVersion, body)
    }

    func open(_ value: String, field: String) throws -> String {
        value.hasPrefix(PersonalData.prefix) ? try PersonalData.open(value, field: field, vault: vault) : value
    }

    var now: Timestamp { view.now }
}

/// The log as one snapshot shows it, for deciding a command ahead of the writer (every event in it is
/// committed). It records what the decision read: each stream's version, and whether it read the clock.
struct SnapshotStreams: StreamReading {
    let snapshot: LogSnapshot
    let states: StateCache?
    let vault: (any PersonalDataVault)?
    let claimSecret: SymmetricKey?
    let clock: any TallyClock
    let clockRead = Flag()
    /// Every stream the decision read, at the version it read (0: it had no events).
    private(set) var reads: [String: UInt64] = [:]

    /// Set by reading `now` (a class, so the non-mutating getter can set it).
    final class Flag {
        var value = false
    }

    mutating func fold(_ stream: String, fromVersion: UInt64, _ body: (String, UnsafeRawBufferPointer, UInt64, Bool) throws -> Void) throws -> UInt64 {
        var version: UInt64?
        try snapshot.forEach(ReadQuery(.stream(stream), from: fromVersion)) { record in
            let type = record.type
            try Upcasting.withCurrentPayload(type: type, schemaVersion: record.schemaVersion, payload: record.payloadBytes) { payload in
                try body(type, payload, record.version, true)
            }
            version = record.version
            return true
        }
        let read = try version ?? snapshot.version(of: stream)
        reads[stream] = read
        return read
    }

    func open(_ value: String, field: String) throws -> String {
        value.hasPrefix(PersonalData.prefix) ? try PersonalData.open(value, field: field, vault: vault) : value
    }

    var now: Timestamp {
        clockRead.value = true
        return clock.now()
    }
}

/// Streams held in memory: for deciding commands in tests, without a store.
public struct MemoryStreams: StreamReading {
    public var streams: [String: [(type: String, schemaVersion: UInt16, payload: Data)]] = [:]
    public var now = Timestamp(microsecondsSinceEpoch: 1_790_000_000_000_000)
    public var states: StateCache?

    public init() {}

    public mutating func append(_ decision: Decision) {
        for event in decision.events { streams[event.stream, default: []].append((event.type, event.schemaVersion, event.payload)) }
    }

    /// Appends one stored event as it is, e.g. one written with an older schema version.
    public mutating func append(stream: String, type: String, schemaVersion: UInt16, payload: Data) {
        streams[stream, default: []].append((type, schemaVersion, payload))
    }

    public mutating func fold(_ stream: String, fromVersion: UInt64, _ body: (String, UnsafeRawBufferPointer, UInt64, Bool) throws -> Void) throws -> UInt64 {
        let events = streams[stream] ?? []
        for (index, event) in events.enumerated() where UInt64(index + 1) >= fromVersion {
            let payload = try Upcasting.upcast(type: event.type, schemaVersion: event.schemaVersion, payload: event.payload)
            try payload.withUnsafeBytes { try body(event.type, $0, UInt64(index + 1), true) }
        }
        return UInt64(events.count)
    }
}

/// Folded stream states at committed versions. A committed event never changes, so the state of a
/// stream at a committed version is valid forever, in every process: a decision folds only the
/// events after it. Bounded: a shard is emptied when it holds its share of `entriesMax` states.
///
/// Sharded by stream, each shard behind its own lock, with the type check outside it: with one lock,
/// 64 threads deciding commands spent a quarter of the CPU spinning for it (`perf` of the domain
/// scenario, BENCHMARKS.md, session 11).
public final class StateCache: Sendable {
    private struct Key: Hashable {
        let type: ObjectIdentifier
        let stream: String
    }
    private final class Shard: Sendable {
        let entries = Mutex<[Key: (version: UInt64, state: any Sendable)]>([:])
    }
    private let shards: [Shard] = (0..<StateCache.shardCount).map { _ in Shard() }
    public static let entriesMax = 200_000
    static let shardCount = 64

    public init() {}

    /// The stream's shard, from a cheap hash of its bytes (FNV-1a), computed outside any lock.
    private func shard(_ stream: String) -> Shard {
        var hash: UInt32 = 2_166_136_261
        for byte in stream.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return shards[Int(hash % UInt32(Self.shardCount))]
    }

    func get<State: Foldable>(_ stream: String, _: State.Type) -> (version: UInt64, state: State)? {
        let key = Key(type: ObjectIdentifier(State.self), stream: stream)
        guard let entry = shard(stream).entries.withLock({ $0[key] }), let state = entry.state as? State else { return nil }
        return (entry.version, state)
    }

    func put<State: Foldable>(_ stream: String, version: UInt64, _ state: State) {
        let key = Key(type: ObjectIdentifier(State.self), stream: stream)
        let value: (version: UInt64, state: any Sendable) = (version, state)
        shard(stream).entries.withLock { entries in
            if entries.count >= Self.entriesMax / Self.shardCount { entries.removeAll(keepingCapacity: true) }
            entries[key] = value
        }
    }
}

/// The domain's rules: a pure function from a command and the streams it reads to events or a rejection.
public enum Decide {
    /// Every text of the command is taken in NFC (see `CommandEnvelope.normalized`).
    public static func decide(_ envelope: CommandEnvelope, streams: inout some StreamReading) throws -> Decision {
        let envelope = envelope.normalized
        let actor = envelope.actor
        switch envelope.command {
        case .registerBooth(let boothID, let name, let location):
            try Require.admin(actor, "register a booth")
            try Require.field("boothID", boothID)
            try Require.field("name", name)
            try Require.field("location", location)
            var draft = Draft()
            let booth = try draft.load(FairStreams.booth(boothID), as: BoothState.self, from: &streams)
            guard booth.registered == nil else { throw Rejection(.boothAlreadyRegistered, "booth \(boothID) is already registered") }
            draft.emit(FairStreams.booth(boothID), BoothRegistered(boothID: boothID, name: name, location: location))
            return draft.decision

        case .assignOperator(let boothID, let operatorID, let operatorName):
            try Require.admin(actor, "assign an operator")
            try Require.field("operatorID", operatorID)
            try Require.text("operatorName", operatorName)
            var draft = Draft()
            let booth = try draft.load(FairStreams.booth(boothID), as: BoothState.self, from: &streams)
            guard booth.registered != nil else { throw Rejection(.boothNotFound, "booth \(boothID) is not registered") }
            guard !booth.operators.contains(operatorID) else {
                throw Rejection(.invalidField, "operator \(operatorID) already serves booth \(boothID): nothing to change")
            }
            let claim = try draft.load(Claims.operatorBooth(operatorID), as: ClaimState.self, from: &streams)
            if let other = claim.owner {
                throw Rejection(.operatorServesAnotherBooth,
                                "operator \(operatorID) serves booth \(other): an operator serves one booth at a time (unassign them there first)")
            }
            draft.emit(Claims.operatorBooth(operatorID), ValueClaimed(kind: "operator", owner: boothID))
            draft.emit(FairStreams.booth(boothID), OperatorAssigned(boothID: boothID, operatorID: operatorID, operatorName: operatorName))
            return draft.decision

        case .unassignOperator(let boothID, let operatorID):
            try Require.admin(actor, "unassign an operator")
            var draft = Draft()
            let booth = try draft.load(FairStreams.booth(boothID), as: BoothState.self, from: &streams)
            guard booth.registered != nil else { throw Rejection(.boothNotFound, "booth \(boothID) is not registered") }
            guard booth.operators.contains(operatorID) else {
                throw Rejection(.operatorNotAssigned, "operator \(operatorID) is not assigned to booth \(boothID)")
            }
            draft.emit(FairStreams.booth(boothID), OperatorUnassigned(boothID: boothID, operatorID: operatorID))
            // An operator assigned before operators were claimed holds no claim: nothing to release then.
            try draft.release(Claims.operatorBooth(operatorID), kind: "operator", owner: boothID, from: &streams)
            return draft.decision

        case .issueVoucher(let voucherID, let amount, let buyerEmail):
            try Require.admin(actor, "issue a voucher")
            try Require.field("voucherID", voucherID)
            try Require.email("buyerEmail", buyerEmail)
            guard amount.minor > 0 else { throw Rejection(.nonPositiveAmount, "a voucher's amount must be positive, not \(amount)") }
            var draft = Draft()
            let voucher = try draft.load(FairStreams.voucher(voucherID), as: VoucherState.self, from: &streams)
            guard voucher.issued == nil else { throw Rejection(.voucherAlreadyIssued, "voucher \(voucherID) is already issued") }
            draft.emit(FairStreams.voucher(voucherID), VoucherIssued(voucherID: voucherID, amount: amount, buyerEmail: buyerEmail))
            return draft.decision

        case .redeemVoucher(let voucherID, let boothID, let saleID, let saleAmount):
            guard actor.role == .operator else {
                throw Rejection(.notAuthorized, "only a booth operator may redeem a voucher, not \(actor)")
            }
            try Require.field("saleID", saleID)
            guard saleAmount.minor > 0 else { throw Rejection(.nonPositiveAmount, "a sale's amount must be positive, not \(saleAmount)") }
            var draft = Draft()
            let booth = try draft.load(FairStreams.booth(boothID), as: BoothState.self, from: &streams)
            let voucher = try draft.load(FairStreams.voucher(voucherID), as: VoucherState.self, from: &streams)
            guard booth.registered != nil else { throw Rejection(.boothNotFound, "booth \(boothID) is not registered") }
            guard booth.operators.contains(actor.id) else {
                throw Rejection(.operatorNotAssigned, "operator \(actor.id) is not assigned to booth \(boothID)")
            }
            guard let issued = voucher.issued else { throw Rejection(.voucherNotFound, "voucher \(voucherID) was never issued") }
            if let redeemed = voucher.redeemed {
                throw Rejection(.voucherAlreadyRedeemed, "voucher \(voucherID) was already redeemed at booth \(redeemed.boothID) (sale \(redeemed.saleID))")
            }
            guard saleAmount.currency == issued.amount.currency else {
                throw Rejection(.currencyMismatch, "the sale is in \(saleAmount.currency), the voucher in \(issued.amount.currency)")
            }
            guard saleAmount.minor <= issued.amount.minor else {
                throw Rejection(.saleExceedsVoucher, "the sale of \(saleAmount) exceeds voucher \(voucherID)'s \(issued.amount)")
            }
            guard !(try draft.load(FairStreams.sale(saleID), as: Existence.self, from: &streams).exists) else {
                throw Rejection(.saleAlreadyRecorded, "sale \(saleID) is already recorded")
            }
            draft.emit(FairStreams.voucher(voucherID), VoucherRedeemed(voucherID: voucherID, boothID: boothID, operatorID: actor.id, saleID: saleID, saleAmount: saleAmount))
            draft.emit(FairStreams.sale(saleID), SaleRecorded(saleID: saleID, boothID: boothID, voucherID: voucherID, operatorID: actor.id, amount: saleAmount))
            return draft.decision

        case .registerUser, .changeUserEmail, .deactivateUser, .createCategory, .changeCategory, .createProduct, .changeProductPrice, .receiveStock, .adjustStock, .placeOrder,
             .confirmOrder, .initiatePayment, .recordPaymentSucceeded, .recordPaymentFailed, .markOrderPaid, .shipOrder, .recordRefund,
             .deliverOrder, .cancelOrder:
            return try ShopRules.decide(envelope, streams: &streams)

        case .openStore, .createItem, .changeItem, .schedulePrice, .registerMember, .linkSocialAccount, .recordMemberDevice, .changeMemberProfile,
             .reviseShoppingList, .deactivateMember, .openCart, .scanItem, .removeItem, .approveRestrictedItems, .checkout:
            return try CheckoutRules.decide(envelope, streams: &streams)

        case .erasePersonalData(let subject, let reason):
            try Require.admin(actor, "erase personal data")
            let parts = subject.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, ["member", "customer", "operator", "email"].contains(parts[0]), !parts[1].isEmpty else {
                throw Rejection(.invalidField, "subject \"\(subject)\" must be member:<id>, customer:<id>, operator:<id> or email:<digest>")
            }
            let id = parts[1]
            var draft = Draft()
            // The values are sealed in the log: each is opened with the subject's key to name its claim.
            // Once the key is gone there is nothing to open, so running this again releases nothing.
            func release(_ sealed: String?, field: String, _ claim: (String) -> String, kind: String) throws {
                guard let sealed, case let value = try streams.open(sealed, field: field), value != PersonalData.erased else { return }
                try draft.release(claim(value), kind: kind, owner: id, from: &streams)
            }
            let secret = streams.claimSecret
            switch parts[0] {
            case "member":
                let member = try draft.load(CheckoutStreams.member(id), as: MemberState.self, from: &streams)
                try release(member.registered?.email, field: "email", { Claims.email($0, secret: secret) }, kind: "email")
                for (provider, accountID) in member.socialAccounts.sorted(by: { $0.key < $1.key }) {
                    try release(accountID, field: "accountID", { Claims.social(provider, $0, secret: secret) }, kind: "social/\(provider)")
                }
            case "customer":
                let user = try draft.load(ShopStreams.user(id), as: UserState.self, from: &streams)
                try release(user.registered?.username, field: "username", { Claims.username($0, secret: secret) }, kind: "username")
                try release(user.email, field: "email", { Claims.email($0, secret: secret) }, kind: "email")
            default:
                break  // operators and voucher buyers hold no unique values
            }
            draft.emit(PersonalDataErased.stream, PersonalDataErased(subject: subject, reason: reason))
            return draft.decision
        }
    }
}
