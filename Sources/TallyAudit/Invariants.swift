import Foundation
import Synchronization
import TallyDomain
import TallyLog

/// A business rule the log breaks, at the position where it first shows.
public struct InvariantViolation: Sendable, Equatable, CustomStringConvertible {
    public var position: UInt64
    public var rule: String
    public var message: String

    public var description: String { "position \(position): \(rule): \(message)" }
}

/// Replays the log and checks the domain's rules as facts about the history, independent of the code
/// that enforced them when the events were appended: an auditor's second opinion.
///
/// - `voucher-redeemed-once`: each voucher redeemed at most once, and only after it was issued;
/// - `stock-never-negative`: a product's stock (received, adjusted, reserved, released) never below zero;
/// - `payment-transaction-once`: a payment provider's transaction id succeeds once per provider (web payments), and
///   a checkout's payment transaction id is used once;
/// - `paid-order-has-payment`: an order marked paid has an earlier successful payment for that order,
///   with that transaction id, of exactly the order's total;
/// - `order-charged-once`: an order has at most one successful payment (a second charged the customer twice);
/// - `refund-of-the-payment`: a cancelled order's refund (`refundDue`) is of the payment that paid it, its
///   transaction and the order's total, and is paid (`RefundPaid`) once, in that amount;
/// - `operator-serves-the-booth`: a voucher is redeemed at a booth by an operator assigned to it and
///   not unassigned since (the booth's sales are its operators');
/// - `cart-checked-out-by-its-member`: a cart is opened once, and checked out at most once, after it
///   was opened, in the name of the member and at the store that opened it (a member's spending
///   is added up from its checkouts);
/// - `shopping-list-of-its-member`: a shopping list's revisions are numbered 1, 2, 3… and all in the
///   name of the member of its first (the read model keeps each revision by its number).
public enum Invariants {
    public static let rules = ["voucher-redeemed-once", "stock-never-negative", "payment-transaction-once", "paid-order-has-payment",
                               "order-charged-once", "refund-of-the-payment", "operator-serves-the-booth", "cart-checked-out-by-its-member",
                               "shopping-list-of-its-member"]

    public static func check(_ log: EventLog, progress: ((UInt64, UInt64) -> Void)? = nil) throws -> (checked: UInt64, violations: [InvariantViolation]) {
        var issued = Set<String>(), redeemed = [String: UInt64]()
        var serving = [String: Set<String>]()  // operator → the booths they serve
        var stock = [String: Int64]()
        var webTransactions = [String: UInt64](), checkoutTransactions = [String: UInt64]()
        var payments = [String: (order: String, transaction: String, amount: Money)]()
        var charged = [String: (payment: String, position: UInt64)]()
        var paidBy = [String: String]()  // order → the payment that paid it
        var refundsDue = [String: (refund: RefundDue, paidAt: UInt64?)]()
        var orderTotals = [String: Money]()
        var carts = [String: (opened: UInt64, member: String, store: String, checkedOut: UInt64?)]()
        var lists = [String: (member: String, revision: Int)]()
        var violations: [InvariantViolation] = []
        var checked: UInt64 = 0
        let head = try log.head().position
        var next: UInt64 = 1
        // Chunks of short read transactions, so a long replay never pins old pages.
        while next <= head {
            let end = min(head, next + 65_535)
            // The chunk's events the rules read, copied out of the snapshot; then decoded on every core
            // (decoding was two thirds of the time), and checked one by one in position order.
            var facts: [Fact] = []
            try log.withSnapshot { snapshot in
                try snapshot.forEach(ReadQuery(.all, from: next, untilPosition: end)) { record in
                    checked += 1
                    let type = record.type
                    if let decode = decoders[type] {
                        facts.append(Fact(position: record.position, type: type, schemaVersion: record.schemaVersion,
                                          payload: Data(record.payloadBytes), decode: decode))
                    }
                    return true
                }
            }
            let decoded = decodeInLanes(facts)
            for (fact, outcome) in zip(facts, decoded) {
                let position = fact.position, type = fact.type
                func violation(_ rule: String, _ message: String) { violations.append(InvariantViolation(position: position, rule: rule, message: message)) }
                func decode<Event: DomainEvent>(_: Event.Type) throws -> Event? {
                    switch outcome {
                    case .decoded(let event): return event as? Event
                    case .unreadable(let error):
                        violation("readable-events", "\(type) cannot be decoded: \(error)")
                        return nil
                    case .failed(let error): throw error
                    }
                }
                switch type {
                case VoucherIssued.eventType:
                    if let event = try decode(VoucherIssued.self) { issued.insert(event.voucherID) }
                case VoucherRedeemed.eventType:
                    guard let event = try decode(VoucherRedeemed.self) else { break }
                    if let first = redeemed[event.voucherID] {
                        violation("voucher-redeemed-once", "voucher \(event.voucherID) redeemed again (first at position \(first))")
                    } else if !issued.contains(event.voucherID) {
                        violation("voucher-redeemed-once", "voucher \(event.voucherID) redeemed but never issued")
                    }
                    redeemed[event.voucherID] = redeemed[event.voucherID] ?? position
                    if serving[event.operatorID]?.contains(event.boothID) != true {
                        violation("operator-serves-the-booth",
                                  "voucher \(event.voucherID) redeemed at booth \(event.boothID) by operator \(event.operatorID), who did not serve it then")
                    }
                case OperatorAssigned.eventType:
                    if let event = try decode(OperatorAssigned.self) { serving[event.operatorID, default: []].insert(event.boothID) }
                case OperatorUnassigned.eventType:
                    if let event = try decode(OperatorUnassigned.self) { serving[event.operatorID]?.remove(event.boothID) }
                case StockReceived.eventType, StockReleased.eventType, StockAdjusted.eventType, StockReserved.eventType:
                    // (product, units, whether they are taken away)
                    let movement: (String, Int64, Bool)? = switch type {
                    case StockReceived.eventType: try decode(StockReceived.self).map { ($0.productID, Int64($0.quantity), false) }
                    case StockReleased.eventType: try decode(StockReleased.self).map { ($0.productID, Int64($0.quantity), false) }
                    case StockAdjusted.eventType: try decode(StockAdjusted.self).map { ($0.productID, Int64($0.delta), false) }
                    default: try decode(StockReserved.self).map { ($0.productID, Int64($0.quantity), true) }
                    }
                    guard let (product, units, taken) = movement else { break }
                    // Checked: the log is the auditor's evidence, and may hold counts that do not add up in 64 bits.
                    let previous = stock[product, default: 0]
                    let (level, overflow) = taken ? previous.subtractingReportingOverflow(units) : previous.addingReportingOverflow(units)
                    if overflow {
                        violation("stock-never-negative", "product \(product)'s stock of \(previous) \(taken ? "minus" : "plus") \(units) passes the range of a 64-bit count")
                        break
                    }
                    stock[product] = level
                    if level < 0 { violation("stock-never-negative", "product \(product)'s stock falls to \(level)") }
                case OrderPlaced.eventType:
                    if let event = try decode(OrderPlaced.self) { orderTotals[event.orderID] = event.total }
                case PaymentSucceeded.eventType:
                    guard let event = try decode(PaymentSucceeded.self) else { break }
                    // Each provider numbers its own transactions: the id is unique per method.
                    let reference = "\(event.method.rawValue) \(event.transactionID)"
                    if let first = webTransactions[reference] {
                        violation("payment-transaction-once", "\(reference) succeeded again (first at position \(first))")
                    }
                    webTransactions[reference] = webTransactions[reference] ?? position
                    payments[event.paymentID] = (event.orderID, event.transactionID, event.amount)
                    if let first = charged[event.orderID], first.payment != event.paymentID {
                        violation("order-charged-once", "order \(event.orderID) charged again by payment \(event.paymentID) "
                                  + "(payment \(first.payment) succeeded at position \(first.position))")
                    }
                    if charged[event.orderID] == nil { charged[event.orderID] = (event.paymentID, position) }
                case CartOpened.eventType:
                    guard let event = try decode(CartOpened.self) else { break }
                    if let cart = carts[event.cartID] {
                        violation("cart-checked-out-by-its-member", "cart \(event.cartID) opened again (first at position \(cart.opened))")
                    } else {
                        carts[event.cartID] = (position, event.memberID, event.storeID, nil)
                    }
                case ShoppingListRevised.eventType:
                    guard let event = try decode(ShoppingListRevised.self) else { break }
                    let list = lists[event.listID]
                    if let list, list.member != event.memberID {
                        violation("shopping-list-of-its-member", "shopping list \(event.listID) of member \(list.member) revised in the name of member \(event.memberID)")
                    } else if event.revision != (list?.revision ?? 0) + 1 {
                        violation("shopping-list-of-its-member", "shopping list \(event.listID) revision \(event.revision) follows revision \(list?.revision ?? 0)")
                    }
                    lists[event.listID] = (list?.member ?? event.memberID, max(list?.revision ?? 0, event.revision))
                case CartCheckedOut.eventType:
                    guard let event = try decode(CartCheckedOut.self) else { break }
                    if let cart = carts[event.cartID] {
                        if let first = cart.checkedOut {
                            violation("cart-checked-out-by-its-member", "cart \(event.cartID) checked out again (first at position \(first))")
                        } else if cart.member != event.memberID {
                            violation("cart-checked-out-by-its-member",
                                      "cart \(event.cartID) of member \(cart.member) checked out in the name of member \(event.memberID)")
                        } else if cart.store != event.storeID {
                            violation("cart-checked-out-by-its-member", "cart \(event.cartID) opened at store \(cart.store) checked out at store \(event.storeID)")
                        }
                        carts[event.cartID]?.checkedOut = cart.checkedOut ?? position
                    } else {
                        violation("cart-checked-out-by-its-member", "cart \(event.cartID) checked out but never opened")
                    }
                    if let first = checkoutTransactions[event.paymentTransactionID] {
                        violation("payment-transaction-once", "checkout payment \(event.paymentTransactionID) used again (first at position \(first))")
                    }
                    checkoutTransactions[event.paymentTransactionID] = checkoutTransactions[event.paymentTransactionID] ?? position
                case RefundPaid.eventType:
                    guard let event = try decode(RefundPaid.self) else { break }
                    guard let due = refundsDue[event.orderID] else {
                        violation("refund-of-the-payment", "order \(event.orderID) refunded without owing a refund")
                        break
                    }
                    if let paidAt = due.paidAt {
                        violation("refund-of-the-payment", "order \(event.orderID) refunded again (first at position \(paidAt))")
                    } else if due.refund.amount != event.amount || due.refund.paymentID != event.paymentID {
                        violation("refund-of-the-payment", "order \(event.orderID) refunded \(event.amount) of payment \(event.paymentID); "
                                  + "it owed \(due.refund.amount) of payment \(due.refund.paymentID)")
                    }
                    refundsDue[event.orderID]?.paidAt = due.paidAt ?? position
                case OrderCancelled.eventType:
                    guard let event = try decode(OrderCancelled.self), let refund = event.refundDue else { break }
                    refundsDue[event.orderID] = (refund, nil)
                    if paidBy[event.orderID] != refund.paymentID {
                        violation("refund-of-the-payment", "order \(event.orderID) refunds payment \(refund.paymentID), "
                                  + (paidBy[event.orderID].map { "but payment \($0) paid it" } ?? "but it was never paid"))
                    } else if let payment = payments[refund.paymentID], payment.transaction != refund.transactionID || payment.amount != refund.amount {
                        violation("refund-of-the-payment", "order \(event.orderID) refunds \(refund.amount) of transaction \(refund.transactionID); "
                                  + "payment \(refund.paymentID) took \(payment.amount) in transaction \(payment.transaction)")
                    }
                case OrderPaid.eventType:
                    guard let event = try decode(OrderPaid.self) else { break }
                    paidBy[event.orderID] = event.paymentID
                    guard let payment = payments[event.paymentID] else {
                        violation("paid-order-has-payment", "order \(event.orderID) marked paid by payment \(event.paymentID), which never succeeded")
                        break
                    }
                    if payment.order != event.orderID {
                        violation("paid-order-has-payment", "order \(event.orderID) marked paid by payment \(event.paymentID) of order \(payment.order)")
                    } else if payment.transaction != event.transactionID {
                        violation("paid-order-has-payment", "order \(event.orderID) paid with transaction \(event.transactionID), the payment's is \(payment.transaction)")
                    } else if let total = orderTotals[event.orderID], total != payment.amount {
                        violation("paid-order-has-payment", "order \(event.orderID) totals \(total) but its payment was \(payment.amount)")
                    } else if orderTotals[event.orderID] == nil {
                        violation("paid-order-has-payment", "order \(event.orderID) marked paid but never placed")
                    }
                default:
                    break
                }
            }
            progress?(end, head)
            next = end + 1
        }
        return (checked, violations)
    }

    /// An event the rules read, as the log holds it, and the decoder of its type.
    struct Fact {
        var position: UInt64
        var type: String
        var schemaVersion: UInt16
        var payload: Data
        var decode: @Sendable (Data) throws -> any DomainEvent
    }

    enum Decoded: Sendable {
        case decoded(any DomainEvent)
        /// Its payload does not decode as its type: a violation of `readable-events`.
        case unreadable(any Error)
        /// It could not be upcast (an unknown schema version): the check stops there, with this error.
        case failed(any Error)
    }

    /// Each fact decoded (upcast first), in order, on as many cores as there are: each lane decodes a
    /// contiguous run and hands its results over once.
    static func decodeInLanes(_ facts: [Fact]) -> [Decoded] {
        let lanes = max(1, min(ProcessInfo.processInfo.activeProcessorCount, (facts.count + 1_023) / 1_024))
        let runs = Mutex([[Decoded]](repeating: [], count: lanes))
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            let decoded = facts[(facts.count * lane / lanes)..<(facts.count * (lane + 1) / lanes)].map { fact -> Decoded in
                do {
                    let payload = try Upcasting.upcast(type: fact.type, schemaVersion: fact.schemaVersion, payload: fact.payload)
                    do { return .decoded(try fact.decode(payload)) } catch { return .unreadable(error) }
                } catch {
                    return .failed(error)
                }
            }
            runs.withLock { $0[lane] = decoded }
        }
        return runs.withLock { $0.flatMap { $0 } }
    }

    /// The event types the rules read, each with its decoder.
    static let decoders: [String: @Sendable (Data) throws -> any DomainEvent] = [
        VoucherIssued.eventType: { try DomainCoding.decode(VoucherIssued.self, from: $0) },
        VoucherRedeemed.eventType: { try DomainCoding.decode(VoucherRedeemed.self, from: $0) },
        OperatorAssigned.eventType: { try DomainCoding.decode(OperatorAssigned.self, from: $0) },
        OperatorUnassigned.eventType: { try DomainCoding.decode(OperatorUnassigned.self, from: $0) },
        StockReceived.eventType: { try DomainCoding.decode(StockReceived.self, from: $0) },
        StockReleased.eventType: { try DomainCoding.decode(StockReleased.self, from: $0) },
        StockAdjusted.eventType: { try DomainCoding.decode(StockAdjusted.self, from: $0) },
        StockReserved.eventType: { try DomainCoding.decode(StockReserved.self, from: $0) },
        OrderPlaced.eventType: { try DomainCoding.decode(OrderPlaced.self, from: $0) },
        PaymentSucceeded.eventType: { try DomainCoding.decode(PaymentSucceeded.self, from: $0) },
        CartOpened.eventType: { try DomainCoding.decode(CartOpened.self, from: $0) },
        CartCheckedOut.eventType: { try DomainCoding.decode(CartCheckedOut.self, from: $0) },
        ShoppingListRevised.eventType: { try DomainCoding.decode(ShoppingListRevised.self, from: $0) },
        OrderPaid.eventType: { try DomainCoding.decode(OrderPaid.self, from: $0) },
        OrderCancelled.eventType: { try DomainCoding.decode(OrderCancelled.self, from: $0) },
        RefundPaid.eventType: { try DomainCoding.decode(RefundPaid.self, from: $0) },
    ]
}
