import Foundation
import TallyLog

/// A deterministic mix of the domain's events over many streams, about 200 bytes each (record
/// envelope and JSON payload together): vouchers issued then redeemed, sales at a dozen booths, carts
/// opened, filled, emptied a little and checked out, orders and their payments, price changes on a
/// catalogue of 2,000 items. The same seed gives the same events, for Tally and every baseline.
struct Workload {
    private var random: SplitMix64
    private let clock: ManualClock
    private let ids: EventIDGenerator
    private var vouchersIssued = 0
    private var unredeemed: [Int] = []
    private var carts = 0
    private var openCarts: [(id: Int, items: Int)] = []
    private var orders = 0
    private var unpaidOrders: [Int] = []
    private var payments = 0
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

    private func money(_ minor: Int) -> String { "{\"minor\":\(minor),\"currency\":\"USD\"}" }

    mutating func next() -> ProposedEvent {
        clock.advance(microseconds: 250)
        let roll = pick(100)
        let stream: String, type: String, body: String, actor: String
        switch roll {
        case 0..<10:
            vouchersIssued += 1
            unredeemed.append(vouchersIssued)
            stream = "voucher-\(vouchersIssued)"; type = "VoucherIssued"; actor = "admin:ana"
            remember(stream)
            body = "\"voucherId\":\"\(vouchersIssued)\",\"amount\":\(money(500 + pick(5000))),\"buyerEmail\":\"enc:\(random.next())\""
        case 10..<18 where !unredeemed.isEmpty:
            let voucher = unredeemed.remove(at: pick(unredeemed.count))
            stream = "voucher-\(voucher)"; type = "VoucherRedeemed"; actor = "booth:\(pick(12)):operator"
            body = "\"voucherId\":\"\(voucher)\",\"boothId\":\"\(pick(12))\",\"saleId\":\"\(random.next() % 1_000_000)\""
        case 18..<26:
            let booth = pick(12)
            stream = "booth-\(booth)"; type = "SaleRecorded"; actor = "booth:\(booth):operator"
            body = "\"boothId\":\"\(booth)\",\"voucherId\":\"\(pick(max(1, vouchersIssued)))\",\"amount\":\(money(100 + pick(2000)))"
        case 26..<33:
            carts += 1
            openCarts.append((carts, 0))
            stream = "cart-\(carts)"; type = "CartOpened"; actor = "member:\(pick(5000))"
            remember(stream)
            body = "\"cartId\":\"\(carts)\",\"storeId\":\"1\",\"memberId\":\"\(pick(5000))\""
        case 33..<63 where !openCarts.isEmpty:
            let index = pick(openCarts.count)
            openCarts[index].items += 1
            let sku = String(format: "%012d", pick(2000) * 7919)
            stream = "cart-\(openCarts[index].id)"; type = "ItemAdded"; actor = "member"
            body = "\"sku\":\"\(sku)\",\"scannedInput\":\"0\(sku)\",\"quantity\":\(1 + pick(3)),\"unitPrice\":\(money(99 + pick(900)))"
        case 63..<67 where !openCarts.isEmpty:
            let index = pick(openCarts.count)
            stream = "cart-\(openCarts[index].id)"; type = "ItemRemoved"; actor = "member"
            body = "\"sku\":\"\(String(format: "%012d", pick(2000) * 7919))\",\"quantity\":1"
        case 67..<73 where !openCarts.isEmpty:
            let cart = openCarts.remove(at: pick(openCarts.count))
            stream = "cart-\(cart.id)"; type = "CartCheckedOut"; actor = "member"
            body = "\"lines\":\(cart.items),\"total\":\(money(cart.items * 450)),\"paymentId\":\"bt-\(random.next() % 10_000_000)\""
        case 73..<80:
            orders += 1
            unpaidOrders.append(orders)
            stream = "order-\(orders)"; type = "OrderPlaced"; actor = "customer:\(pick(3000))"
            remember(stream)
            body = "\"orderId\":\"\(orders)\",\"items\":\(1 + pick(4)),\"total\":\(money(1000 + pick(20000)))"
        case 80..<88 where !unpaidOrders.isEmpty:
            let order = unpaidOrders.remove(at: pick(unpaidOrders.count))
            payments += 1
            stream = "order-\(order)"; type = "PaymentSucceeded"; actor = "system:payments"
            body = "\"paymentId\":\"\(payments)\",\"method\":\"mpesa\",\"transactionId\":\"MP\(random.next() % 100_000_000)\""
        default:
            let sku = String(format: "%012d", pick(2000) * 7919)
            stream = "item-\(sku)"; type = "PriceChanged"; actor = "admin:ana"
            body = "\"sku\":\"\(sku)\",\"price\":\(money(99 + pick(900))),\"priceType\":\(pick(3)),\"quantity\":1"
        }
        // Pad the payload so envelope and payload come to about 200 bytes, as the issue's workload.
        let envelope = 44 + 3 + stream.utf8.count + type.utf8.count + actor.utf8.count
        let padding = max(0, 200 - envelope - body.utf8.count - 12)
        let payload = "{" + body + ",\"note\":\"" + String(repeating: "x", count: padding) + "\"}"
        return ProposedEvent(id: ids.next(), stream: stream, type: type, actor: actor, payload: Data(payload.utf8))
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
