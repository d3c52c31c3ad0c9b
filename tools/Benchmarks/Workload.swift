import Foundation
import TallyLog

/// A deterministic mix of the domain's events over many streams, about 200 bytes each (record
/// envelope and JSON payload together): vouchers issued then redeemed, sales at a dozen booths, carts
/// opened, filled, emptied a little and checked out, orders, their payments and their being paid, price
/// changes on a catalogue of 2,000 items. Payloads are the domain's own JSON shapes (padded with a
/// "note"), so the read models' projectors can rebuild from them. The same seed gives the same events, for Tally and every baseline.
struct Workload {
    private var random: SplitMix64
    private let clock: ManualClock
    private let ids: EventIDGenerator
    private var vouchersIssued = 0
    private var unredeemed: [Int] = []
    private var carts = 0
    private var openCarts: [(id: Int, items: Int, member: Int)] = []
    private var orders = 0
    private var unpaidOrders: [(id: Int, total: Int)] = []
    private var payments = 0
    private var awaitingPaid: [(order: Int, payment: Int, transaction: String)] = []
    private var checkouts = 0
    /// The booths whose operator has been assigned: the first events, before the mix, so every
    /// redemption is by an operator serving its booth (`tally audit invariants` holds on the history).
    private var operatorsAssigned = 0
    static let booths = 12
    /// Every stream created so far, for the random stream-load scenario (bounded).
    private(set) var sampleStreams: [String] = []

    init(seed: UInt64) {
        random = SplitMix64(seed: seed)
        clock = ManualClock(Timestamp(microsecondsSinceEpoch: 1_790_000_000_000_000))
        ids = EventIDGenerator(clock: clock, seed: seed &+ 1)
    }

    private mutating func pick(_ bound: Int) -> Int { Int(random.next() % UInt64(bound)) }

    private mutating func remember(_ stream: String) {
        if sampleStreams.count < 100_000 { sampleStreams.append(stream) }
        else { sampleStreams[pick(sampleStreams.count)] = stream }
    }

    /// The provider's id of the n-th transaction: unique (n times a prime coprime to the modulus is a
    /// permutation below it), but not in order, like real ones. The domain's rules refuse a payment
    /// id seen before, so a realistic history never repeats one (`tally audit invariants` holds on it).
    private static func transactionID(_ prefix: String, _ n: Int, digits: Int) -> String {
        var modulus = 1
        for _ in 0..<digits { modulus *= 10 }
        let value = (n * 7_919) % modulus
        let text = String(value)
        return prefix + String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    private func money(_ minor: Int) -> String { "{\"minor\":\(minor),\"currency\":\"USD\"}" }

    mutating func next() -> ProposedEvent {
        clock.advance(microseconds: 250)
        if operatorsAssigned < Self.booths {
            // No random draw: the mix after these events is the one before they were added.
            let booth = operatorsAssigned
            operatorsAssigned += 1
            let payload = "{\"boothID\":\"\(booth)\",\"operatorID\":\"op\(booth)\",\"operatorName\":\"enc:operator-\(booth)\"}"
            return ProposedEvent(id: ids.next(), stream: "booth-\(booth)", type: "OperatorAssigned", actor: "admin:ana", payload: Data(payload.utf8))
        }
        let roll = pick(100)
        let stream: String, type: String, body: String, actor: String
        var schemaVersion: UInt16 = 1
        switch roll {
        case 0..<10:
            vouchersIssued += 1
            unredeemed.append(vouchersIssued)
            stream = "voucher-\(vouchersIssued)"; type = "VoucherIssued"; actor = "admin:ana"
            remember(stream)
            body = "\"voucherID\":\"\(vouchersIssued)\",\"amount\":\(money(500 + pick(5000))),\"buyerEmail\":\"enc:\(random.next())\""
        case 10..<18 where !unredeemed.isEmpty:
            let voucher = unredeemed.remove(at: pick(unredeemed.count))
            let booth = pick(Self.booths)
            stream = "voucher-\(voucher)"; type = "VoucherRedeemed"; actor = "operator:op\(booth)"
            body = "\"voucherID\":\"\(voucher)\",\"boothID\":\"\(booth)\",\"operatorID\":\"op\(booth)\",\"saleID\":\"\(random.next() % 1_000_000)\",\"saleAmount\":\(money(100 + pick(400)))"
        case 18..<26:
            let booth = pick(Self.booths)
            stream = "booth-\(booth)"; type = "SaleRecorded"; actor = "operator:op\(booth)"
            body = "\"saleID\":\"\(random.next() % 1_000_000)\",\"boothID\":\"\(booth)\",\"voucherID\":\"\(pick(max(1, vouchersIssued)))\",\"operatorID\":\"op\(booth)\",\"amount\":\(money(100 + pick(2000)))"
        case 26..<33:
            carts += 1
            let member = pick(5000)
            openCarts.append((carts, 0, member))
            stream = "cart-\(carts)"; type = "CartOpened"; actor = "member:\(member)"
            remember(stream)
            body = "\"cartID\":\"\(carts)\",\"storeID\":\"1\",\"memberID\":\"\(member)\""
        case 33..<63 where !openCarts.isEmpty:
            let index = pick(openCarts.count)
            openCarts[index].items += 1
            let sku = String(format: "%012d", pick(2000) * 7919)
            stream = "cart-\(openCarts[index].id)"; type = "CartItemAdded"; actor = "member:\(openCarts[index].member)"
            body = "\"cartID\":\"\(openCarts[index].id)\",\"sku\":\"\(sku)\",\"scannedInput\":\"\(sku)\",\"quantity\":\(1 + pick(3))"
        case 63..<67 where !openCarts.isEmpty:
            let index = pick(openCarts.count)
            stream = "cart-\(openCarts[index].id)"; type = "CartItemRemoved"; actor = "member:\(openCarts[index].member)"
            body = "\"cartID\":\"\(openCarts[index].id)\",\"sku\":\"\(String(format: "%012d", pick(2000) * 7919))\",\"quantity\":1"
        case 67..<73 where !openCarts.isEmpty:
            let cart = openCarts.remove(at: pick(openCarts.count))
            checkouts += 1
            let sku = String(format: "%012d", pick(2000) * 7919)
            let quantity = max(1, cart.items)
            stream = "cart-\(cart.id)"; type = "CartCheckedOut"; actor = "member:\(cart.member)"
            // One line per checkout keeps the mix near 200 bytes an event; the line has every field.
            let line = "{\"scannedInput\":\"\(sku)\",\"sku\":\"\(sku)\",\"description\":\"Item\",\"unitPrice\":\(money(450)),\"quantity\":\(quantity),"
                + "\"appliedDiscounts\":\(money(0)),\"preTaxTotal\":\(money(quantity * 450)),\"taxable\":false,\"bogo\":false}"
            _ = pick(5000)  // Drawn as before 2026-12-02, so every other event of the mix stays the same.
            body = "\"cartID\":\"\(cart.id)\",\"storeID\":\"1\",\"memberID\":\"\(cart.member)\",\"lines\":[\(line)],\"total\":\(money(quantity * 450)),"
                + "\"paymentTransactionID\":\"\(Self.transactionID("bt-", checkouts, digits: 7))\""
        case 73..<80:
            orders += 1
            let quantity = 1 + pick(4), price = 1000 + pick(5000)
            unpaidOrders.append((orders, quantity * price))
            stream = "order-\(orders)"; type = "OrderPlaced"; actor = "customer:\(pick(3000))"
            remember(stream)
            let line = "{\"productID\":\"p\(pick(40))\",\"name\":\"Product\",\"categoryID\":\"c1\",\"quantity\":\(quantity),\"unitPrice\":\(money(price)),"
                + "\"appliedDiscounts\":\(money(0)),\"preTaxTotal\":\(money(quantity * price))}"
            body = "\"orderID\":\"\(orders)\",\"userID\":\"u\(pick(3000))\",\"lines\":[\(line)],\"total\":\(money(quantity * price))"
        case 80..<85 where !unpaidOrders.isEmpty:
            let (order, total) = unpaidOrders.remove(at: pick(unpaidOrders.count))
            payments += 1
            let transaction = Self.transactionID("MP", payments, digits: 8)
            awaitingPaid.append((order, payments, transaction))
            stream = "payment-\(payments)"; type = "PaymentSucceeded"; actor = "system:payments"
            body = "\"paymentID\":\"\(payments)\",\"orderID\":\"\(order)\",\"method\":\"mpesa\",\"transactionID\":\"\(transaction)\",\"amount\":\(money(total))"
        case 85..<88 where !awaitingPaid.isEmpty:
            let (order, payment, transaction) = awaitingPaid.removeFirst()
            stream = "order-\(order)"; type = "OrderPaid"; actor = "system:payments"
            body = "\"orderID\":\"\(order)\",\"paymentID\":\"\(payment)\",\"transactionID\":\"\(transaction)\""
        default:
            let sku = String(format: "%012d", pick(2000) * 7919)
            stream = "item-1-\(sku)"; type = "PriceScheduled"; actor = "admin:ana"
            schemaVersion = 2
            body = "\"storeID\":\"1\",\"price\":{\"sku\":\"\(sku)\",\"price\":\(money(99 + pick(900))),\"priceType\":\(pick(3)),\"quantity\":1,"
                + "\"taxable\":false,\"bogo\":false,\"label\":\"regular\"}"
        }
        // Pad the payload so envelope and payload come to about 200 bytes, as the issue's workload.
        let envelope = 44 + 3 + stream.utf8.count + type.utf8.count + actor.utf8.count
        let padding = max(0, 200 - envelope - body.utf8.count - 12)
        let payload = "{" + body + ",\"note\":\"" + String(repeating: "x", count: padding) + "\"}"
        return ProposedEvent(id: ids.next(), stream: stream, type: type, schemaVersion: schemaVersion, actor: actor, payload: Data(payload.utf8))
    }

    mutating func batch(_ count: Int) -> [ProposedEvent] { (0..<count).map { _ in next() } }
}

/// The bytes a baseline stores for an event: what Tally's record holds, without its hash.
func baselineRecord(_ event: ProposedEvent) -> [UInt8] {
    var bytes = [UInt8]()
    bytes.reserveCapacity(64 + event.payload.count)
    var raw = event.id.uuid
    withUnsafeBytes(of: &raw) { bytes.append(contentsOf: $0) }
    for field in [Array(event.stream.utf8), Array(event.type.utf8), Array(event.actor.utf8), Array(event.payload)] {
        bytes.append(UInt8(truncatingIfNeeded: field.count)); bytes.append(UInt8(truncatingIfNeeded: field.count >> 8))
        bytes.append(contentsOf: field)
    }
    return bytes
}
