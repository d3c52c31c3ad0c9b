import Foundation
import TallyLog

/// A deterministic (seeded) day of the three seed systems, as commands: a fair with a dozen booths
/// selling against vouchers, a web shop with orders and payments, a grocery self-checkout. It follows
/// the outcomes it is told of, so later commands refer to vouchers, orders and carts that exist, and it
/// deliberately sends commands that the rules refuse (double redemptions, races for one voucher,
/// duplicate payment ids, unapproved restricted items). Its memory is bounded however long it runs.
public struct DemoScenario {
    /// What to run next: one command, or several sent at the same moment (a race).
    public enum Step {
        case one(CommandEnvelope)
        case race([CommandEnvelope])
    }

    private var random: SplitMix64
    private let clock: ManualClock
    private var commandCounter: UInt64 = 0
    private let seed: UInt64
    private static let pendingMax = 5000

    // The fair.
    private let booths = (1...12).map { (booth: String($0), operators: ["op\($0)a", "op\($0)b"]) }
    private var voucherCounter = 0, saleCounter = 0
    private var unredeemed: [(id: String, amount: Int64)] = []
    private var redeemed: [String] = []
    // The shop.
    private var users = 0, orderCounter = 0, paymentCounter = 0
    private var registeredUsers: [String] = []
    private var registeredMembers: [String] = []
    private let products = (1...40).map { "p\($0)" }
    private var placed: [String] = [], confirmed: [(order: String, user: String, total: Int64)] = []
    private var awaitingResult: [(payment: String, order: String)] = []
    private var succeeded: [(payment: String, order: String)] = [], paid: [String] = [], shipped: [String] = []
    /// Paid orders cancelled: their refunds are paid back a while later.
    private var refundsDue: [String] = []
    private var transactionIDs: [String] = []
    private var orderTotals: [String: (user: String, total: Int64)] = [:]
    // The self-checkout.
    private var members = 0, cartCounter = 0
    private var carts: [(cart: String, member: String, scans: Int, restricted: Bool, approved: Bool, last: SKU?)] = []
    private var items: [(sku: SKU, restricted: Bool)] = []
    private var priceChangeCounter = 0
    private var paymentOrders: [String: String] = [:]

    public init(seed: UInt64, clock: ManualClock) {
        self.seed = seed
        random = SplitMix64(seed: seed)
        self.clock = clock
    }

    private mutating func pick(_ bound: Int) -> Int { Int(random.next() % UInt64(max(bound, 1))) }
    private mutating func chance(_ percent: Int) -> Bool { pick(100) < percent }
    private func money(_ minor: Int64) -> Money { Money(minor: minor, currency: .usd) }

    private mutating func envelope(_ actor: Actor, _ command: Command) -> CommandEnvelope {
        commandCounter += 1
        clock.advance(microseconds: Int64(1 + pick(20)) * 1_000_000)
        // Ids from the seed and a counter: the same seed makes the same commands.
        var bytes = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: seed.bigEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: commandCounter.bigEndian) { bytes.replaceSubrange(8..<16, with: $0) }
        bytes[6] = (bytes[6] & 0x0f) | 0x40
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        let id = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                             bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        return CommandEnvelope(id: id, actor: actor, command: command)
    }

    private static let admin = Actor(.admin, "ana"), system = Actor(.system, "payments"), staff = Actor(.staff, "sam")
    static let lime = SKU("000000004048")!, chips = SKU("000555000001")!, beer = SKU("000012345678")!, deposit = SKU("000000000010")!
    static let oldSoap = SKU("000777000001")!, newSoap = SKU("000777000002")!, deli = SKU("201234000006")!

    /// The set-up: booths and operators, the shop's catalogue and stock, the store's items and prices.
    public mutating func setUp() -> [CommandEnvelope] {
        var commands: [CommandEnvelope] = []
        let admin = Self.admin
        for booth in booths {
            commands.append(envelope(admin, .registerBooth(boothID: booth.booth, name: "Booth \(booth.booth)", location: "Hall \(1 + Int(booth.booth)! % 3)")))
            for op in booth.operators {
                commands.append(envelope(admin, .assignOperator(boothID: booth.booth, operatorID: op, operatorName: "Operator \(op)")))
            }
        }
        for category in ["books", "maps", "games", "music"] {
            commands.append(envelope(admin, .createCategory(categoryID: category, name: category.capitalized, slug: category)))
        }
        for (index, product) in products.enumerated() {
            let category = ["books", "maps", "games", "music"][index % 4]
            commands.append(envelope(admin, .createProduct(productID: product, name: "Product \(index + 1)", slug: product, description: "A \(category) item",
                                                           price: money(Int64(500 + pick(4000))), categoryID: category)))
            commands.append(envelope(admin, .receiveStock(productID: product, quantity: 50 + pick(100))))
        }
        commands.append(envelope(admin, .openStore(storeID: "s1", name: "Corner Grocery", currency: .usd)))
        var details: [(SKU, ItemDetails, PriceRecord)] = [
            (Self.deposit, ItemDetails(description: "Bottle deposit", departmentCode: "DEP"), PriceRecord(sku: Self.deposit, price: money(10))),
            (Self.lime, ItemDetails(description: "Lime", size: "each", departmentCode: "PROD"), PriceRecord(sku: Self.lime, price: money(100), quantity: 3)),
            (Self.chips, ItemDetails(description: "Potato chips", size: "8 oz", departmentCode: "SNK"), PriceRecord(sku: Self.chips, price: money(399), bogo: true)),
            (Self.beer, ItemDetails(description: "Lager 6-pack", size: "6 x 12 oz", posDescription: "LAGER 6PK", departmentCode: "BEER", restricted: true,
                                    linkedSKU: Self.deposit, taxable: true), PriceRecord(sku: Self.beer, price: money(899), taxable: true)),
            (Self.newSoap, ItemDetails(description: "Bar soap (new look)", departmentCode: "HBA", taxable: true), PriceRecord(sku: Self.newSoap, price: money(249))),
            (Self.oldSoap, ItemDetails(description: "Bar soap", departmentCode: "HBA", supersededBy: Self.newSoap, taxable: true), PriceRecord(sku: Self.oldSoap, price: money(229))),
            (Self.deli, ItemDetails(description: "Deli ham, by weight", departmentCode: "DELI"), PriceRecord(sku: Self.deli, price: money(0))),
        ]
        for index in 1...40 {
            let sku = SKU(String(format: "%012d", index * 104_729))!
            details.append((sku, ItemDetails(description: "Grocery item \(index)", size: ["1 lb", "12 oz", "each", "2 L"][index % 4],
                                             aisle: String(1 + index % 9), shelf: ["A", "B", "C"][index % 3], departmentCode: ["GRO", "DAIRY", "FROZ"][index % 3]),
                            PriceRecord(sku: sku, price: money(Int64(99 + pick(900))), quantity: index % 10 == 0 ? 2 : 1)))
        }
        for (sku, itemDetails, price) in details {
            commands.append(envelope(admin, .createItem(storeID: "s1", sku: sku, details: itemDetails)))
            commands.append(envelope(admin, .schedulePrice(storeID: "s1", price: price)))
            if sku != Self.deposit && sku != Self.oldSoap && sku != Self.deli { items.append((sku, itemDetails.restricted)) }
        }
        return commands
    }

    /// The next command, or race.
    public mutating func next() -> Step {
        let roll = pick(100)
        switch roll {
        case 0..<30: return fairStep()
        case 30..<62: return shopStep()
        default: return checkoutStep()
        }
    }

    private mutating func fairStep() -> Step {
        if unredeemed.count < 20 || chance(45) {
            voucherCounter += 1
            let amount = Int64(500 + pick(45) * 100)
            return .one(envelope(Self.admin, .issueVoucher(voucherID: "v\(voucherCounter)", amount: money(amount), buyerEmail: "buyer\(voucherCounter)@example.org")))
        }
        let index = pick(unredeemed.count)
        let voucher = unredeemed[index]
        saleCounter += 1
        if chance(4), let old = redeemed.last {
            // A voucher redeemed before, presented again.
            let booth = booths[pick(booths.count)]
            return .one(envelope(Actor(.operator, booth.operators[0]), .redeemVoucher(voucherID: old, boothID: booth.booth, saleID: "sale\(saleCounter)", saleAmount: money(100))))
        }
        if chance(5) {
            // Three booths scan the same voucher at the same moment: one sale goes through.
            var racers: [CommandEnvelope] = []
            for offset in 0..<3 {
                let booth = booths[(index + offset * 5) % booths.count]
                saleCounter += 1
                racers.append(envelope(Actor(.operator, booth.operators[offset % 2]), .redeemVoucher(voucherID: voucher.id, boothID: booth.booth,
                                                                                                   saleID: "sale\(saleCounter)", saleAmount: money(voucher.amount))))
            }
            return .race(racers)
        }
        let booth = booths[pick(booths.count)]
        let amount = chance(5) ? voucher.amount + 100 : Int64(100 + pick(Int(voucher.amount - 99)))
        return .one(envelope(Actor(.operator, booth.operators[pick(2)]), .redeemVoucher(voucherID: voucher.id, boothID: booth.booth,
                                                                                         saleID: "sale\(saleCounter)", saleAmount: money(amount))))
    }

    private mutating func shopStep() -> Step {
        let admin = Self.admin, system = Self.system
        if registeredUsers.count < 50 || chance(8) {
            users += 1
            let duplicate = users > 10 && chance(3)
            let name = duplicate ? "user\(users - 5)" : "user\(users)"
            return .one(envelope(Actor(.customer, "u\(users)"), .registerUser(userID: "u\(users)", username: name, email: "u\(users)@example.org", isAdmin: false)))
        }
        if chance(3) { return .one(envelope(admin, .receiveStock(productID: products[pick(products.count)], quantity: 20 + pick(60)))) }
        if chance(1) { return .one(envelope(admin, .adjustStock(productID: products[pick(products.count)], delta: -1 - pick(3), reason: "damaged in storage"))) }
        if !refundsDue.isEmpty && chance(3) {
            return .one(envelope(system, .recordRefund(orderID: refundsDue.removeFirst(), refundTransactionID: "RF\(seed % 1000)-\(pick(1_000_000_000))")))
        }
        if chance(2) { return .one(envelope(admin, .changeProductPrice(productID: products[pick(products.count)], price: money(Int64(500 + pick(4000)))))) }
        switch pick(7) {
        case 0 where !placed.isEmpty:
            return .one(envelope(system, .confirmOrder(orderID: placed.removeFirst())))
        case 1 where !confirmed.isEmpty:
            let order = confirmed.removeFirst()
            paymentCounter += 1
            let amount = chance(5) ? order.total - 50 : order.total
            let method = [PaymentMethod.mpesa, .card, .paypal][pick(3)]
            return .one(envelope(Actor(.customer, order.user), .initiatePayment(paymentID: "pay\(paymentCounter)", orderID: order.order, amount: money(amount), method: method)))
        case 2 where !awaitingResult.isEmpty:
            let payment = awaitingResult.removeFirst()
            if chance(12) { return .one(envelope(system, .recordPaymentFailed(paymentID: payment.payment, reason: "declined by the provider"))) }
            let reuse = chance(3) && !transactionIDs.isEmpty
            let transaction = reuse ? transactionIDs[pick(transactionIDs.count)] : "TX\(seed % 1000)-\(paymentCounter)-\(pick(1_000_000))"
            return .one(envelope(system, .recordPaymentSucceeded(paymentID: payment.payment, transactionID: transaction)))
        case 3 where !succeeded.isEmpty:
            let payment = succeeded.removeFirst()
            return .one(envelope(system, .markOrderPaid(orderID: payment.order, paymentID: payment.payment)))
        case 4 where !paid.isEmpty:
            if chance(10) { return .one(envelope(admin, .cancelOrder(orderID: paid.removeFirst(), reason: "out of delivery area"))) }
            return .one(envelope(admin, .shipOrder(orderID: paid.removeFirst())))
        case 5 where !shipped.isEmpty:
            return .one(envelope(admin, .deliverOrder(orderID: shipped.removeFirst())))
        default:
            orderCounter += 1
            let user = registeredUsers[pick(registeredUsers.count)]
            let lines = (0..<(1 + pick(3))).map { _ in OrderRequestLine(productID: products[pick(products.count)], quantity: 1 + pick(3)) }
            return .one(envelope(Actor(.customer, user), .placeOrder(orderID: "o\(orderCounter)", userID: user, lines: lines)))
        }
    }

    private mutating func checkoutStep() -> Step {
        if registeredMembers.count < 30 || chance(5) {
            members += 1
            let member = "m\(members)"
            let email: String? = chance(70) ? "member\(chance(2) && members > 5 ? members - 3 : members)@example.org" : nil
            return .one(envelope(Actor(.member, member), .registerMember(memberID: member, firstName: "First\(members)", lastName: "Last\(members)", email: email, phone: nil)))
        }
        if chance(3) {
            let member = registeredMembers[pick(registeredMembers.count)]
            return .one(envelope(Actor(.member, member), .linkSocialAccount(memberID: member, provider: ["facebook", "google"][pick(2)], accountID: "acct-\(pick(5000))")))
        }
        if chance(4) {
            // The app opens on the member's phone. Every seventh member id is a reinstall on the phone
            // of the id before it (the seed's one person with many ids): `report member --view devices`.
            let member = registeredMembers[pick(registeredMembers.count)]
            let number = Int(member.dropFirst()) ?? 0
            let phone = number % 7 == 0 ? number - 1 : number
            // Most opens are in the store, the rest at home.
            return .one(envelope(Actor(.member, member), .recordMemberDevice(memberID: member, deviceFingerprint: "android/Pixel 8/phone-\(phone)",
                                                                             storeID: chance(70) ? "s1" : nil)))
        }
        if chance(3) {
            // A member saves their weekly shopping list, each time whole: `report member --view lists`.
            let member = registeredMembers[pick(registeredMembers.count)]
            var lines: [ShoppingListLine] = []
            for item in [Self.lime, Self.chips, Self.beer, Self.newSoap, Self.deli] where chance(45) {
                lines.append(ShoppingListLine(sku: item, quantity: 1 + pick(6)))
            }
            return .one(envelope(Actor(.member, member), .reviseShoppingList(listID: "\(member)-weekly", memberID: member, lines: lines)))
        }
        if chance(1) {
            let member = registeredMembers[pick(registeredMembers.count)]
            return .one(envelope(Actor(.member, member), .changeMemberProfile(memberID: member, firstName: "First\(pick(1000))", lastName: nil, phone: "+1 555 \(1000 + pick(8999))")))
        }
        if chance(1) && pick(10) == 0 {
            let member = registeredMembers.remove(at: pick(registeredMembers.count))
            return .one(envelope(Actor(.member, member), .deactivateMember(memberID: member)))
        }
        if chance(1) && pick(5) == 0 {
            let item = items[pick(items.count)]
            return .one(envelope(Self.admin, .changeItem(storeID: "s1", sku: item.sku, details: ItemDetails(description: "Grocery item (new recipe)", size: "1 lb",
                                                                                                            departmentCode: "GRO", restricted: item.restricted,
                                                                                                            linkedSKU: item.sku == Self.beer ? Self.deposit : nil))))
        }
        if chance(1) {
            // Prices change during the day: a sale price from an hour from now, for three hours.
            priceChangeCounter += 1
            let item = items[pick(items.count)].sku
            let start = Timestamp(microsecondsSinceEpoch: clock.now().microsecondsSinceEpoch + 3_600_000_000)
            let end = Timestamp(microsecondsSinceEpoch: start.microsecondsSinceEpoch + 3 * 3_600_000_000)
            return .one(envelope(Self.admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: item, start: start, end: end, priceType: 1 + priceChangeCounter % 3,
                                                                                                price: money(Int64(79 + pick(500)))))))
        }
        if carts.count < 5 || chance(12) {
            cartCounter += 1
            let member = registeredMembers[pick(registeredMembers.count)]
            carts.append(("k\(cartCounter)", member, 0, false, false, nil))
            return .one(envelope(Actor(.member, member), .openCart(cartID: "k\(cartCounter)", storeID: "s1", memberID: member)))
        }
        let index = pick(carts.count)
        var cart = carts[index]
        let actor = Actor(.member, cart.member)
        if cart.scans >= 2 && chance(cart.scans * 6) {
            if cart.restricted && !cart.approved && chance(75) {
                cart.approved = true
                carts[index] = cart
                return .one(envelope(Self.staff, .approveRestrictedItems(cartID: cart.cart)))
            }
            carts.remove(at: index)
            return .one(envelope(actor, .checkout(cartID: cart.cart, paymentTransactionID: "bt-\(seed % 1000)-\(cartCounter)-\(pick(1_000_000))")))
        }
        cart.scans += 1
        let scanned: String
        switch pick(12) {
        case 0: scanned = Self.lime.value
        case 1: scanned = Self.chips.value
        case 2: scanned = Self.beer.value; cart.restricted = true
        case 3: scanned = Self.oldSoap.value
        case 4: scanned = Self.variablePriceCode(item: "01234", cents: 150 + pick(900))
        default: scanned = items[pick(items.count)].sku.value
        }
        if cart.scans > 3 && chance(8), let last = cart.last {
            cart.last = nil
            carts[index] = cart
            return .one(envelope(actor, .removeItem(cartID: cart.cart, sku: last, quantity: 1)))
        }
        cart.last = scanned == Self.oldSoap.value ? Self.newSoap : scanned.hasPrefix("2") ? nil : SKU(scanned)
        carts[index] = cart
        return .one(envelope(actor, .scanItem(cartID: cart.cart, scannedInput: scanned, quantity: scanned == Self.lime.value ? 1 + pick(4) : 1)))
    }

    /// A variable-price UPC-A code: 2, the item, the price in cents, the check digit.
    static func variablePriceCode(item: String, cents: Int) -> String {
        let body = "2" + item + String(format: "%05d", cents)
        let digits = body.utf8.map { Int($0) - 48 }
        let sum = digits.enumerated().reduce(0) { $0 + ($1.offset % 2 == 0 ? $1.element * 3 : $1.element) }
        return body + String((10 - sum % 10) % 10)
    }

    /// Learns what happened to a command, so later ones refer to what exists.
    public mutating func observe(_ envelope: CommandEnvelope, accepted: Bool) {
        func bounded<T>(_ list: inout [T]) { if list.count > Self.pendingMax { list.removeFirst(list.count - Self.pendingMax) } }
        /// The customer pays the order again (after a refused or failed payment).
        func payAgain(_ order: String) {
            if let known = orderTotals[order] { confirmed.append((order, known.user, known.total)); bounded(&confirmed) }
        }
        guard accepted else {
            // A payment of the wrong amount is refused at its start: the customer pays the right one.
            if case .initiatePayment(_, let order, let amount, _) = envelope.command, let known = orderTotals[order], amount.minor != known.total {
                payAgain(order)
            }
            return
        }
        switch envelope.command {
        case .issueVoucher(let id, let amount, _): unredeemed.append((id, amount.minor)); bounded(&unredeemed)
        case .registerUser(let user, _, _, _): registeredUsers.append(user); bounded(&registeredUsers)
        case .registerMember(let member, _, _, _, _): registeredMembers.append(member); bounded(&registeredMembers)
        case .redeemVoucher(let id, _, _, _):
            unredeemed.removeAll { $0.id == id }
            redeemed.append(id); bounded(&redeemed)
        case .placeOrder(let order, let user, _):
            placed.append(order); bounded(&placed)
            orderTotals[order] = (user, 0)
        case .confirmOrder(let order):
            if let known = orderTotals[order] { confirmed.append((order, known.user, known.total)); bounded(&confirmed) }
        case .initiatePayment(let payment, let order, _, _):
            awaitingResult.append((payment, order)); bounded(&awaitingResult)
            paymentOrders[payment] = order
            if paymentOrders.count > Self.pendingMax * 2 { paymentOrders.removeAll() }
        case .recordPaymentFailed(let payment, _):
            if let order = paymentOrders.removeValue(forKey: payment) { payAgain(order) }
        case .recordPaymentSucceeded(let payment, let transaction):
            if let order = paymentOrders.removeValue(forKey: payment) { succeeded.append((payment, order)); bounded(&succeeded) }
            transactionIDs.append(transaction); bounded(&transactionIDs)
        case .markOrderPaid(let order, _): paid.append(order); bounded(&paid); orderTotals[order] = nil
        case .shipOrder(let order): shipped.append(order); bounded(&shipped)
        case .cancelOrder(let order, _):
            // The scenario cancels only paid orders (out of the delivery area): each owes its payment back.
            refundsDue.append(order); bounded(&refundsDue)
            orderTotals[order] = nil
        default: break
        }
        if orderTotals.count > Self.pendingMax * 2 { orderTotals.removeAll() }
    }

    /// The order total, learnt from the accepted OrderPlaced event's payload (the scenario does not
    /// price orders itself).
    public mutating func observeOrderTotal(order: String, total: Int64) {
        if let known = orderTotals[order] { orderTotals[order] = (known.user, total) }
    }

}

/// Drives a `DemoScenario` against a log: windows of commands in flight together (the writer decides
/// them in order and packs them into a few transactions), then the scenario learns their outcomes in
/// order, so the same seed gives the same history, races included.
public struct DemoDriver {
    public let commerce: CommerceService
    public private(set) var scenario: DemoScenario
    public private(set) var commands = 0
    public private(set) var appended: UInt64 = 0
    public private(set) var rejections: [RejectionCode: Int] = [:]
    /// Commands sent together: large enough to fill writer transactions, small enough that the
    /// scenario soon learns what exists.
    public static let windowCommands = 64
    private var isSetUp = false

    public init(commerce: CommerceService, seed: UInt64, clock: ManualClock) {
        self.commerce = commerce
        scenario = DemoScenario(seed: seed, clock: clock)
    }

    /// Runs windows until at least `events` events have been appended in all, calling `afterWindow`
    /// with the total after each.
    public mutating func run(untilEvents events: UInt64, afterWindow: (UInt64) throws -> Void = { _ in }) throws {
        if !isSetUp {
            for envelope in scenario.setUp() { try record(envelope, try commerce.execute(envelope)) }
            isSetUp = true
        }
        while appended < events {
            var window: [CommandEnvelope] = []
            while window.count < Self.windowCommands {
                switch scenario.next() {
                case .one(let envelope): window.append(envelope)
                case .race(let racers): window += racers
                }
            }
            let outcomes = try commerce.executeInOrder(window)
            for (envelope, outcome) in zip(window, outcomes) { try record(envelope, outcome) }
            try afterWindow(appended)
        }
    }

    private mutating func record(_ envelope: CommandEnvelope, _ outcome: CommandOutcome) throws {
        commands += 1
        switch outcome {
        case .accepted(let positions, let wasRetry):
            if !wasRetry { appended += UInt64(positions.count) }
            scenario.observe(envelope, accepted: true)
            if case .placeOrder(let order, _, _) = envelope.command, let position = positions.last {
                let total = try commerce.log.withSnapshot { snapshot -> Int64? in
                    guard let record = try snapshot.record(at: position) else { return nil }
                    return try DomainCoding.decode(OrderPlaced.self, from: record.payloadBytes).total.minor
                }
                if let total { scenario.observeOrderTotal(order: order, total: total) }
            }
        case .rejected(let rejection):
            rejections[rejection.code, default: 0] += 1
            scenario.observe(envelope, accepted: false)
        }
    }
}
