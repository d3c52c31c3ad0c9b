import Foundation
import Testing
import TallyLog
import TallyTestSupport
@testable import TallyDomain

let system = Actor(.system, "payments")
let customer = Actor(.customer, "u1")

/// The shop's rules, in memory.
@Suite struct ShopRuleTests {
    /// User u1, category c1, product p1 at $10.00 with 5 in stock, product p2 at $2.50 with 1 in stock.
    func shop() throws -> MemoryStreams {
        var streams = MemoryStreams()
        for setup in [
            command(customer, .registerUser(userID: "u1", username: "wanjiru", email: "w@example.org", isAdmin: false)),
            command(admin, .createCategory(categoryID: "c1", name: "Books", slug: "books")),
            command(admin, .createProduct(productID: "p1", name: "Atlas", slug: "atlas", description: "", price: cents(1000), categoryID: "c1")),
            command(admin, .createProduct(productID: "p2", name: "Map", slug: "map", description: "", price: cents(250), categoryID: "c1")),
            command(admin, .receiveStock(productID: "p1", quantity: 5)),
            command(admin, .receiveStock(productID: "p2", quantity: 1)),
        ] {
            streams.append(try Decide.decide(setup, streams: &streams))
        }
        return streams
    }

    func run(_ streams: inout MemoryStreams, _ commands: [CommandEnvelope]) throws {
        for envelope in commands { streams.append(try Decide.decide(envelope, streams: &streams)) }
    }

    func code(_ envelope: CommandEnvelope, _ streams: inout MemoryStreams) -> RejectionCode? {
        do { streams.append(try Decide.decide(envelope, streams: &streams)); return nil } catch let rejection as Rejection { return rejection.code } catch { return nil }
    }

    /// Places order o1 (2 × p1 = $20.00), confirms it, and pays it with payment pay1 (mpesa MP1).
    func paidOrder(_ streams: inout MemoryStreams) throws {
        try run(&streams, [
            command(customer, .placeOrder(orderID: "o1", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 2)])),
            command(system, .confirmOrder(orderID: "o1")),
            command(customer, .initiatePayment(paymentID: "pay1", orderID: "o1", amount: cents(2000), method: .mpesa)),
            command(system, .recordPaymentSucceeded(paymentID: "pay1", transactionID: "MP1")),
            command(system, .markOrderPaid(orderID: "o1", paymentID: "pay1")),
        ])
    }

    @Test func anOrderGoesFromPlacedToDelivered() throws {
        var streams = try shop()
        try paidOrder(&streams)
        #expect(code(command(admin, .shipOrder(orderID: "o1")), &streams) == nil)
        #expect(code(command(admin, .deliverOrder(orderID: "o1")), &streams) == nil)
        var order = OrderState()
        _ = try streams.fold("order-o1") { try order.apply($0, $1) }
        #expect(order.status == .delivered)
        #expect(order.placed?.total == cents(2000))
        #expect(order.placed?.lines == [OrderLine(productID: "p1", name: "Atlas", categoryID: "c1", quantity: 2, unitPrice: cents(1000),
                                                  appliedDiscounts: cents(0), preTaxTotal: cents(2000))])
    }

    @Test func stockMustCoverEveryLineWhenAnOrderIsConfirmed() throws {
        var streams = try shop()
        try run(&streams, [command(customer, .placeOrder(orderID: "o2", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 1),
                                                                                           OrderRequestLine(productID: "p2", quantity: 2)]))])
        #expect(code(command(system, .confirmOrder(orderID: "o2")), &streams) == .insufficientStock)
        // Nothing was reserved for p1 either.
        var stock = StockState()
        _ = try streams.fold("stock-p1") { try stock.apply($0, $1) }
        #expect(stock.available == 5)
        #expect(code(command(admin, .receiveStock(productID: "p2", quantity: 1)), &streams) == nil)
        #expect(code(command(system, .confirmOrder(orderID: "o2")), &streams) == nil)
        stock = StockState()
        _ = try streams.fold("stock-p2") { try stock.apply($0, $1) }
        #expect(stock.available == 0)
    }

    @Test func stockNeverGoesNegative() throws {
        var streams = try shop()
        #expect(code(command(admin, .adjustStock(productID: "p1", delta: -6, reason: "count")), &streams) == .stockWouldGoNegative)
        #expect(code(command(admin, .adjustStock(productID: "p1", delta: -5, reason: "count")), &streams) == nil)
        #expect(code(command(admin, .receiveStock(productID: "p1", quantity: 0)), &streams) == .invalidField)
    }

    /// A delivery or a correction names at most a billion units, and an order line at most 10,000; a
    /// stock whose events, written behind the rules' back, do not add up in 64 bits refuses every
    /// command that reads it (it stopped the process with a trap).
    @Test func stockCountsStayWithinTheirRange() throws {
        var streams = try shop()
        #expect(code(command(admin, .receiveStock(productID: "p1", quantity: Quantities.stockChangeMax + 1)), &streams) == .quantityTooLarge)
        #expect(code(command(admin, .receiveStock(productID: "p1", quantity: Quantities.stockChangeMax)), &streams) == nil)
        #expect(code(command(admin, .adjustStock(productID: "p1", delta: -Quantities.stockChangeMax - 1, reason: "count")), &streams) == .quantityTooLarge)
        #expect(code(command(admin, .adjustStock(productID: "p1", delta: Int.min, reason: "count")), &streams) == .quantityTooLarge)
        #expect(code(command(admin, .adjustStock(productID: "p1", delta: 0, reason: "count")), &streams) == .invalidField)
        #expect(code(command(customer, .placeOrder(orderID: "o9", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: Quantities.perItemMax + 1)])),
                     &streams) == .quantityTooLarge)
        for _ in 0..<2 {
            streams.append(stream: "stock-p2", type: StockReceived.eventType, schemaVersion: 1,
                           payload: DomainCoding.encode(StockReceived(productID: "p2", quantity: 9_000_000_000_000_000_000)))
        }
        let refused = #expect(throws: Rejection.self) { try Decide.decide(command(admin, .receiveStock(productID: "p2", quantity: 1)), streams: &streams) }
        #expect(refused == Rejection(.quantityTooLarge, "the stock of product p2 passes 9223372036854775807, the most a 64-bit count holds"))
    }

    /// A payment is initiated only for an order still waiting for one: not for one paid (a second
    /// charge), shipped, delivered or cancelled.
    @Test func onlyAnOrderWaitingForPaymentTakesOne() throws {
        var streams = try shop()
        try paidOrder(&streams)
        #expect(code(command(customer, .initiatePayment(paymentID: "pay8", orderID: "o1", amount: cents(250), method: .card)), &streams) == .invalidOrderTransition)
        try run(&streams, [command(customer, .placeOrder(orderID: "o4", userID: "u1", lines: [OrderRequestLine(productID: "p2", quantity: 1)])),
                           command(customer, .cancelOrder(orderID: "o4", reason: "changed my mind"))])
        let refused = #expect(throws: Rejection.self) {
            try Decide.decide(command(customer, .initiatePayment(paymentID: "pay9", orderID: "o4", amount: cents(250), method: .card)), streams: &streams)
        }
        #expect(refused == Rejection(.invalidOrderTransition, "order o4 is cancelled; it takes no payment"))
        try run(&streams, [command(customer, .placeOrder(orderID: "o5", userID: "u1", lines: [OrderRequestLine(productID: "p2", quantity: 1)]))])
        #expect(code(command(customer, .initiatePayment(paymentID: "pay10", orderID: "o5", amount: cents(250), method: .card)), &streams) == nil)
    }

    @Test func aProviderTransactionIDIsAcceptedOnceAcrossOrders() throws {
        var streams = try shop()
        try paidOrder(&streams)
        try run(&streams, [
            command(customer, .placeOrder(orderID: "o3", userID: "u1", lines: [OrderRequestLine(productID: "p2", quantity: 1)])),
            command(customer, .initiatePayment(paymentID: "pay3", orderID: "o3", amount: cents(250), method: .mpesa)),
        ])
        #expect(code(command(system, .recordPaymentSucceeded(paymentID: "pay3", transactionID: "MP1")), &streams) == .duplicatePaymentTransaction)
        #expect(code(command(system, .recordPaymentSucceeded(paymentID: "pay3", transactionID: "MP3")), &streams) == nil)
        #expect(code(command(system, .recordPaymentFailed(paymentID: "pay3", reason: "late")), &streams) == .paymentAlreadySettled)
    }

    @Test func anOrderIsPaidOnlyByASuccessfulPaymentOfItsTotal() throws {
        var streams = try shop()
        try run(&streams, [
            command(customer, .placeOrder(orderID: "o1", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 2)])),
            command(system, .confirmOrder(orderID: "o1")),
        ])
        // A payment of another amount could never pay the order: refused at its start.
        let short = #expect(throws: Rejection.self) {
            try Decide.decide(command(customer, .initiatePayment(paymentID: "short", orderID: "o1", amount: cents(1999), method: .card)), streams: &streams)
        }
        #expect(short == Rejection(.paymentAmountMismatch, "a payment of 19.99 USD cannot pay order o1, which totals 20.00 USD"))
        try run(&streams, [
            command(customer, .initiatePayment(paymentID: "failed", orderID: "o1", amount: cents(2000), method: .paypal)),
            command(system, .recordPaymentFailed(paymentID: "failed", reason: "declined")),
            command(customer, .initiatePayment(paymentID: "good", orderID: "o1", amount: cents(2000), method: .card)),
        ])
        #expect(code(command(system, .markOrderPaid(orderID: "o1", paymentID: "good")), &streams) == .paymentNotSuccessful)
        #expect(code(command(system, .markOrderPaid(orderID: "o1", paymentID: "failed")), &streams) == .paymentNotSuccessful)
        try run(&streams, [command(system, .recordPaymentSucceeded(paymentID: "good", transactionID: "C-2"))])
        #expect(code(command(system, .markOrderPaid(orderID: "o1", paymentID: "good")), &streams) == nil)
        // A payment of the wrong amount written behind the rules' back does not pay an order either.
        try run(&streams, [command(customer, .placeOrder(orderID: "o2", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 1)])),
                           command(system, .confirmOrder(orderID: "o2"))])
        streams.append(stream: "payment-raw", type: PaymentSucceeded.eventType, schemaVersion: 1,
                       payload: DomainCoding.encode(PaymentSucceeded(paymentID: "raw", orderID: "o2", transactionID: "C-3", method: .card, amount: cents(1))))
        #expect(code(command(system, .markOrderPaid(orderID: "o2", paymentID: "raw")), &streams) == .paymentAmountMismatch)
    }

    /// A paid order cancelled kept the customer's money without a word: the sales log counted the sale
    /// and the member's spending the payment. The cancellation now says what is owed back; an order
    /// whose payment is still in flight, or went through unrecorded, is settled before it is cancelled.
    @Test func aPaidOrderCancelledOwesItsPaymentBack() throws {
        var paid = try shop()
        try paidOrder(&paid)
        let decision = try Decide.decide(command(customer, .cancelOrder(orderID: "o1", reason: "changed my mind")), streams: &paid)
        let cancelled = try DomainCoding.decode(OrderCancelled.self, from: try #require(decision.events.last).payload)
        #expect(cancelled.refundDue == RefundDue(paymentID: "pay1", transactionID: "MP1", amount: cents(2000)))
        // The refund paid back is recorded once, by the payments system, with the provider's transaction.
        #expect(code(command(customer, .recordRefund(orderID: "o1", refundTransactionID: "MP1-R")), &paid) == .notAuthorized)
        paid.append(decision)
        #expect(code(command(system, .recordRefund(orderID: "o1", refundTransactionID: "MP1")), &paid) == .duplicatePaymentTransaction)
        #expect(code(command(system, .recordRefund(orderID: "o1", refundTransactionID: "MP1-R")), &paid) == nil)
        let again = #expect(throws: Rejection.self) {
            try Decide.decide(command(system, .recordRefund(orderID: "o1", refundTransactionID: "MP1-S")), streams: &paid)
        }
        #expect(again == Rejection(.noRefundDue, "order o1's refund was already paid (transaction MP1-R)"))

        var streams = try shop()
        try run(&streams, [command(customer, .placeOrder(orderID: "o2", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 1)])),
                           command(system, .confirmOrder(orderID: "o2")),
                           command(customer, .initiatePayment(paymentID: "pay2", orderID: "o2", amount: cents(1000), method: .card))])
        let inFlight = #expect(throws: Rejection.self) {
            try Decide.decide(command(customer, .cancelOrder(orderID: "o2", reason: "too slow")), streams: &streams)
        }
        #expect(inFlight == Rejection(.orderHasPayment, "order o2 has payment pay2 in progress; record its result first"))
        try run(&streams, [command(system, .recordPaymentSucceeded(paymentID: "pay2", transactionID: "C-9"))])
        let unrecorded = #expect(throws: Rejection.self) {
            try Decide.decide(command(customer, .cancelOrder(orderID: "o2", reason: "too slow")), streams: &streams)
        }
        #expect(unrecorded == Rejection(.orderHasPayment, "order o2's payment pay2 went through: mark the order paid first, so that its cancellation records the refund"))
        // A payment that failed leaves nothing to give back.
        try run(&streams, [command(customer, .placeOrder(orderID: "o3", userID: "u1", lines: [OrderRequestLine(productID: "p2", quantity: 1)])),
                           command(customer, .initiatePayment(paymentID: "pay3", orderID: "o3", amount: cents(250), method: .card)),
                           command(system, .recordPaymentFailed(paymentID: "pay3", reason: "declined"))])
        let unpaid = try Decide.decide(command(customer, .cancelOrder(orderID: "o3", reason: "gave up")), streams: &streams)
        #expect(try DomainCoding.decode(OrderCancelled.self, from: try #require(unpaid.events.last).payload).refundDue == nil)
        streams.append(unpaid)
        #expect(code(command(system, .recordRefund(orderID: "o3", refundTransactionID: "R-1")), &streams) == .noRefundDue)
    }

    /// An order's placing event records every line: more than `linesMax` are refused before the log would refuse the event.
    @Test func anOrderHoldsAtMostLinesMaxLines() throws {
        var streams = try shop()
        let lines = (0...Quantities.linesMax).map { _ in OrderRequestLine(productID: "p1", quantity: 1) }
        let refused = #expect(throws: Rejection.self) {
            try Decide.decide(command(customer, .placeOrder(orderID: "o9", userID: "u1", lines: lines)), streams: &streams)
        }
        #expect(refused == Rejection(.quantityTooLarge, "an order holds at most 250 lines, not 251"))
    }

    /// One payment of an order at a time: two in flight both charged the customer when both went
    /// through (the shop seed's double payment). Another may start once the last one failed.
    @Test func anOrderTakesOnePaymentAtATime() throws {
        var streams = try shop()
        try run(&streams, [
            command(customer, .placeOrder(orderID: "o1", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 1)])),
            command(customer, .initiatePayment(paymentID: "pay1", orderID: "o1", amount: cents(1000), method: .card)),
        ])
        let second = #expect(throws: Rejection.self) {
            try Decide.decide(command(customer, .initiatePayment(paymentID: "pay2", orderID: "o1", amount: cents(1000), method: .mpesa)), streams: &streams)
        }
        #expect(second == Rejection(.orderHasPayment, "order o1 has payment pay1 in progress; record its result first (another could charge the customer twice)"))
        try run(&streams, [command(system, .recordPaymentFailed(paymentID: "pay1", reason: "declined"))])
        #expect(code(command(customer, .initiatePayment(paymentID: "pay2", orderID: "o1", amount: cents(1000), method: .mpesa)), &streams) == nil)
        try run(&streams, [command(system, .recordPaymentSucceeded(paymentID: "pay2", transactionID: "MP-9"))])
        // Succeeded but not yet marked paid: the order is still pending, and a third payment would charge twice.
        let third = #expect(throws: Rejection.self) {
            try Decide.decide(command(customer, .initiatePayment(paymentID: "pay3", orderID: "o1", amount: cents(1000), method: .card)), streams: &streams)
        }
        #expect(third == Rejection(.orderHasPayment, "order o1 was already paid by payment pay2; another would charge the customer twice"))
        // Another order is not held by this one's payment.
        try run(&streams, [command(customer, .placeOrder(orderID: "o2", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 1)]))])
        #expect(code(command(customer, .initiatePayment(paymentID: "pay3", orderID: "o2", amount: cents(1000), method: .card)), &streams) == nil)
    }

    @Test func orderStatusOnlyMovesForwardAndCancellingStopsAtShipping() throws {
        var streams = try shop()
        try run(&streams, [command(customer, .placeOrder(orderID: "o1", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 2)]))])
        #expect(code(command(admin, .shipOrder(orderID: "o1")), &streams) == .invalidOrderTransition)
        #expect(code(command(system, .markOrderPaid(orderID: "o1", paymentID: "x")), &streams) == .invalidOrderTransition)
        var paid = try shop()
        try paidOrder(&paid)
        #expect(code(command(system, .confirmOrder(orderID: "o1")), &paid) == .invalidOrderTransition)
        #expect(code(command(admin, .deliverOrder(orderID: "o1")), &paid) == .invalidOrderTransition)
        #expect(code(command(admin, .shipOrder(orderID: "o1")), &paid) == nil)
        #expect(code(command(customer, .cancelOrder(orderID: "o1", reason: "changed my mind")), &paid) == .invalidOrderTransition)
        // Cancelling a paid order before shipping releases its stock.
        var before = try shop()
        try paidOrder(&before)
        #expect(code(command(customer, .cancelOrder(orderID: "o1", reason: "changed my mind")), &before) == nil)
        var stock = StockState()
        _ = try before.fold("stock-p1") { try stock.apply($0, $1) }
        #expect(stock.available == 5)
    }

    @Test func onlyAdminsChangeTheCatalogue() throws {
        var streams = try shop()
        #expect(code(command(customer, .createCategory(categoryID: "c2", name: "Toys", slug: "toys")), &streams) == .notAuthorized)
        #expect(code(command(customer, .createProduct(productID: "p3", name: "Ball", slug: "ball", description: "", price: cents(100), categoryID: "c1")), &streams) == .notAuthorized)
        #expect(code(command(customer, .changeProductPrice(productID: "p1", price: cents(1)), ), &streams) == .notAuthorized)
        #expect(code(command(customer, .receiveStock(productID: "p1", quantity: 1)), &streams) == .notAuthorized)
        #expect(code(command(admin, .createProduct(productID: "p3", name: "Ball", slug: "ball", description: "", price: cents(100), categoryID: "nope")), &streams) == .categoryNotFound)
        #expect(code(command(admin, .changeProductPrice(productID: "p1", price: cents(1200))), &streams) == nil)
        // A later price change never alters an order already placed.
        try run(&streams, [command(customer, .placeOrder(orderID: "o9", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 1)]))])
        var order = OrderState()
        _ = try streams.fold("order-o9") { try order.apply($0, $1) }
        #expect(order.placed?.total == cents(1200))
    }

    /// A user's own address is not "already registered" to them: the same address again changes
    /// nothing (said so), another spelling of it keeps its claim, and the claim goes with the next change.
    @Test func aUsersOwnEmailIsNotTakenFromThem() throws {
        var streams = try shop()
        let same = #expect(throws: Rejection.self) { try Decide.decide(command(customer, .changeUserEmail(userID: "u1", email: "w@example.org")), streams: &streams) }
        #expect(same == Rejection(.invalidField, "that is already user u1's email address: nothing to change"))
        #expect(code(command(customer, .changeUserEmail(userID: "u1", email: "W@Example.org")), &streams) == nil)
        let other = Actor(.customer, "u2")
        #expect(code(command(other, .registerUser(userID: "u2", username: "otieno", email: "w@example.org", isAdmin: false)), &streams) == .emailTaken)
        #expect(code(command(customer, .changeUserEmail(userID: "u1", email: "new@example.org")), &streams) == nil)
        #expect(code(command(other, .registerUser(userID: "u2", username: "otieno", email: "w@example.org", isAdmin: false)), &streams) == nil)
    }

    @Test func aUserChangesEmailAndTheOldAddressIsFreed() throws {
        var streams = try shop()
        #expect(code(command(customer, .changeUserEmail(userID: "u1", email: "new@example.org")), &streams) == nil)
        let other = Actor(.customer, "u2")
        #expect(code(command(other, .registerUser(userID: "u2", username: "otieno", email: "new@example.org", isAdmin: false)), &streams) == .emailTaken)
        #expect(code(command(other, .registerUser(userID: "u2", username: "otieno", email: "w@example.org", isAdmin: false)), &streams) == nil)
        #expect(code(command(other, .changeUserEmail(userID: "u1", email: "x@example.org")), &streams) == .notAuthorized)
        #expect(code(command(customer, .placeOrder(orderID: "o4", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 1)])), &streams) == nil)
        #expect(code(command(customer, .deactivateUser(userID: "u1")), &streams) == nil)
        #expect(code(command(customer, .placeOrder(orderID: "o5", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 1)])), &streams) == .userInactive)
        // An order placed before the user was deactivated takes no payment either (the seed: only users who sign in pay).
        #expect(code(command(customer, .initiatePayment(paymentID: "pay9", orderID: "o4", amount: cents(1000), method: .card)), &streams) == .userInactive)
        #expect(code(command(admin, .changeCategory(categoryID: "c1", name: "Books & maps", slug: "books")), &streams) == nil)
        #expect(code(command(admin, .changeCategory(categoryID: "c9", name: "x", slug: "x")), &streams) == .categoryNotFound)
    }

    /// The seed's categories have unique names and URL-friendly slugs, and a product's slug is its URL:
    /// two categories "Books", a slug "Books Atlases!" and two products at "world-atlas" were accepted.
    @Test func categoryNamesAndSlugsAreOnesAndURLFriendly() throws {
        var streams = try shop()
        let sameName = #expect(throws: Rejection.self) {
            try Decide.decide(command(admin, .createCategory(categoryID: "c2", name: "BOOKS", slug: "more-books")), streams: &streams)
        }
        #expect(sameName == Rejection(.nameTaken, #"another category is named "BOOKS""#))
        #expect(code(command(admin, .createCategory(categoryID: "c2", name: "Maps", slug: "books")), &streams) == .nameTaken)
        let notASlug = #expect(throws: Rejection.self) {
            try Decide.decide(command(admin, .createCategory(categoryID: "c2", name: "Maps", slug: "Maps & Atlases!")), streams: &streams)
        }
        #expect(notASlug == Rejection(.invalidField, #"slug "Maps & Atlases!" is not a slug: lowercase letters and digits in words joined by "-" (world-atlas)"#))
        for slug in ["-maps", "maps-", "ma--ps", "mäps", ""] {
            #expect(code(command(admin, .createCategory(categoryID: "c2", name: "Maps", slug: slug)), &streams) == .invalidField, "\(slug)")
        }
        #expect(code(command(admin, .createProduct(productID: "p3", name: "Atlas 2", slug: "atlas", description: "", price: cents(1), categoryID: "c1")),
                     &streams) == .nameTaken)
        #expect(code(command(admin, .createProduct(productID: "p3", name: "Atlas 2", slug: "atlas-2", description: "", price: cents(1), categoryID: "c1")),
                     &streams) == nil)
        // A renamed category gives its old name and slug up, and keeps them when only the capitals change.
        #expect(code(command(admin, .changeCategory(categoryID: "c1", name: "Books", slug: "books")), &streams) == .invalidField)
        #expect(code(command(admin, .changeCategory(categoryID: "c1", name: "Atlases", slug: "atlases")), &streams) == nil)
        #expect(code(command(admin, .createCategory(categoryID: "c2", name: "books", slug: "books")), &streams) == nil)
        #expect(code(command(admin, .changeCategory(categoryID: "c1", name: "ATLASES", slug: "atlases")), &streams) == nil)
        #expect(code(command(admin, .changeCategory(categoryID: "c2", name: "Atlases", slug: "books")), &streams) == .nameTaken)
    }

    @Test func usernamesAndEmailsAreUnique() throws {
        var streams = try shop()
        let other = Actor(.customer, "u2")
        #expect(code(command(other, .registerUser(userID: "u2", username: "wanjiru", email: "x@example.org", isAdmin: false)), &streams) == .usernameTaken)
        #expect(code(command(other, .registerUser(userID: "u2", username: "otieno", email: "W@example.org", isAdmin: false)), &streams) == .emailTaken)
        #expect(code(command(other, .registerUser(userID: "u2", username: "otieno", email: "otieno at example.org", isAdmin: false)), &streams) == .invalidField)
        #expect(code(command(other, .registerUser(userID: "u2", username: "otieno", email: "o@example.org", isAdmin: true)), &streams) == .notAuthorized)
        #expect(code(command(other, .registerUser(userID: "u2", username: "otieno", email: "o@example.org", isAdmin: false)), &streams) == nil)
        // Claim streams never hold an email in clear.
        #expect(!streams.streams.keys.contains { $0.contains("example.org") })
    }
}

/// The shop through the log, with many commands in one group-commit transaction.
@Suite struct ShopServiceTests {
    @Test func concurrentConfirmationsNeverOversellStock() async throws {
        let commerce = CommerceService(log: try EventLog.create(at: testPath("shop")))
        let setup: [CommandEnvelope] = [
            command(admin, .createCategory(categoryID: "c", name: "Books", slug: "books")),
            command(admin, .createProduct(productID: "p", name: "Atlas", slug: "atlas", description: "", price: cents(1000), categoryID: "c")),
            command(admin, .receiveStock(productID: "p", quantity: 20)),
        ] + (0..<30).flatMap { index in [
            command(Actor(.customer, "u\(index)"), .registerUser(userID: "u\(index)", username: "user\(index)", email: "u\(index)@example.org", isAdmin: false)),
            command(Actor(.customer, "u\(index)"), .placeOrder(orderID: "o\(index)", userID: "u\(index)", lines: [OrderRequestLine(productID: "p", quantity: 1)])),
        ] }
        for envelope in setup {
            let outcome = try await commerce.execute(envelope)
            guard case .accepted = outcome else { Issue.record("setup refused: \(outcome)"); return }
        }
        // Thirty confirmations race for twenty units.
        let outcomes = await withTaskGroup(of: CommandOutcome?.self) { group in
            for index in 0..<30 { group.addTask { try? await commerce.execute(command(system, .confirmOrder(orderID: "o\(index)"))) } }
            return await group.reduce(into: [CommandOutcome?]()) { $0.append($1) }
        }
        let confirmed = outcomes.filter { if case .accepted = $0 { true } else { false } }.count
        let refused = outcomes.filter { if case .rejected(let rejection) = $0 { rejection.code == .insufficientStock } else { false } }.count
        #expect(confirmed == 20 && refused == 10)
        // The stock stream, read back from the log, ends at zero and never went below it.
        var reader = commerce.log.read(ReadQuery(.stream("stock-p")))
        var level = 0, lowest = Int.max
        try reader.forEach { event in
            var stock = StockState()
            try event.payload.withUnsafeBytes { try stock.apply(event.type, $0) }
            level += stock.available
            lowest = min(lowest, level)
        }
        #expect(level == 0 && lowest >= 0)
        // A later adjustment sees the true level, through the cache.
        let adjust = try await commerce.execute(command(admin, .adjustStock(productID: "p", delta: -1, reason: "count")))
        #expect(adjust == .rejected(Rejection(.stockWouldGoNegative, "product p has 0 available; adjusting by -1 would leave -1")))
        #expect(try commerce.log.verify().isSound)
    }
}
