import Foundation
import TallyLog

/// The web shop's rules (the seed's "security rules"): admins alone change the catalogue; stock covers
/// every line when an order is confirmed and never goes negative; a provider's transaction id is
/// accepted once; an order is paid only by a successful payment of exactly its total, and has one
/// payment at a time (another only once the last failed); its status only moves forward, and it can
/// be cancelled only before it ships.
enum ShopRules {
    static func decide(_ envelope: CommandEnvelope, streams: inout some StreamReading) throws -> Decision {
        let actor = envelope.actor
        var draft = Draft()
        switch envelope.command {
        case .registerUser(let userID, let username, let email, let isAdmin):
            try Require.field("userID", userID)
            try Require.field("username", username)
            try Require.email("email", email)
            if isAdmin { try Require.admin(actor, "register an admin") } else { try Require.selfOrAdmin(actor, .customer, userID, "register user \(userID)") }
            let user = try draft.load(ShopStreams.user(userID), as: UserState.self, from: &streams)
            guard user.registered == nil else { throw Rejection(.userAlreadyRegistered, "user \(userID) is already registered") }
            try draft.claim(Claims.username(username, secret: streams.claimSecret), kind: "username", owner: userID, from: &streams,
                            taken: Rejection(.usernameTaken, "the username \(username) is taken"))
            try draft.claim(Claims.email(email, secret: streams.claimSecret), kind: "email", owner: userID, from: &streams,
                            taken: Rejection(.emailTaken, "that email address is already registered"))
            draft.emit(ShopStreams.user(userID), UserRegistered(userID: userID, username: username, email: email, isAdmin: isAdmin))

        case .changeUserEmail(let userID, let email):
            try Require.selfOrAdmin(actor, .customer, userID, "change user \(userID)'s email")
            try Require.email("email", email)
            let user = try draft.load(ShopStreams.user(userID), as: UserState.self, from: &streams)
            guard user.registered != nil else { throw Rejection(.userNotFound, "user \(userID) is not registered") }
            guard user.active else { throw Rejection(.userInactive, "user \(userID) is deactivated") }
            // The old address is sealed in the log: open it to name its claim (erased: its claim stays).
            let old = try user.email.map { try streams.open($0, field: "email") }.flatMap { $0 == PersonalData.erased ? nil : $0 }
            if let old, old.lowercased() == email.lowercased() {
                // Their own address (claims are case-blind): no claim to take, another spelling at most.
                guard old != email else { throw Rejection(.invalidField, "that is already user \(userID)'s email address: nothing to change") }
            } else {
                try draft.claim(Claims.email(email, secret: streams.claimSecret), kind: "email", owner: userID, from: &streams,
                                taken: Rejection(.emailTaken, "that email address is already registered"))
                if let old { try draft.release(Claims.email(old, secret: streams.claimSecret), kind: "email", owner: userID, from: &streams) }
            }
            draft.emit(ShopStreams.user(userID), UserEmailChanged(userID: userID, email: email))

        case .deactivateUser(let userID):
            try Require.selfOrAdmin(actor, .customer, userID, "deactivate user \(userID)")
            let user = try draft.load(ShopStreams.user(userID), as: UserState.self, from: &streams)
            guard user.registered != nil else { throw Rejection(.userNotFound, "user \(userID) is not registered") }
            guard user.active else { throw Rejection(.userInactive, "user \(userID) is already deactivated") }
            draft.emit(ShopStreams.user(userID), UserDeactivated(userID: userID))

        case .changeCategory(let categoryID, let name, let slug):
            try Require.admin(actor, "change a category")
            try Require.field("name", name)
            try Require.slug("slug", slug)
            let category = try draft.load(ShopStreams.category(categoryID), as: CategoryState.self, from: &streams)
            guard category.exists else { throw Rejection(.categoryNotFound, "category \(categoryID) does not exist") }
            guard name != category.name || slug != category.slug else {
                throw Rejection(.invalidField, "category \(categoryID) is already named \(JSONView.quoted(name)) at \(JSONView.quoted(slug)): nothing to change")
            }
            // A name and a slug are each one category's: the new ones are taken, the old ones given up.
            if Claims.categoryName(name) != Claims.categoryName(category.name) {
                try draft.claim(Claims.categoryName(name), kind: "category-name", owner: categoryID, from: &streams,
                                taken: Rejection(.nameTaken, "another category is named \(JSONView.quoted(name))"))
                try draft.release(Claims.categoryName(category.name), kind: "category-name", owner: categoryID, from: &streams)
            }
            if slug != category.slug {
                try draft.claim(Claims.slug("category", slug), kind: "category-slug", owner: categoryID, from: &streams,
                                taken: Rejection(.nameTaken, "another category has the slug \(JSONView.quoted(slug))"))
                try draft.release(Claims.slug("category", category.slug), kind: "category-slug", owner: categoryID, from: &streams)
            }
            draft.emit(ShopStreams.category(categoryID), CategoryChanged(categoryID: categoryID, name: name, slug: slug))

        case .createCategory(let categoryID, let name, let slug):
            try Require.admin(actor, "create a category")
            try Require.field("categoryID", categoryID)
            try Require.field("name", name)
            try Require.slug("slug", slug)
            let stream = ShopStreams.category(categoryID)
            guard !(try draft.load(stream, as: Existence.self, from: &streams).exists) else {
                throw Rejection(.categoryAlreadyExists, "category \(categoryID) already exists")
            }
            try draft.claim(Claims.categoryName(name), kind: "category-name", owner: categoryID, from: &streams,
                            taken: Rejection(.nameTaken, "another category is named \(JSONView.quoted(name))"))
            try draft.claim(Claims.slug("category", slug), kind: "category-slug", owner: categoryID, from: &streams,
                            taken: Rejection(.nameTaken, "another category has the slug \(JSONView.quoted(slug))"))
            draft.emit(stream, CategoryCreated(categoryID: categoryID, name: name, slug: slug))

        case .createProduct(let productID, let name, let slug, let description, let price, let categoryID):
            try Require.admin(actor, "create a product")
            try Require.field("productID", productID)
            try Require.field("name", name)
            try Require.slug("slug", slug)
            try Require.positive(price, "a product's price")
            let product = try draft.load(ShopStreams.product(productID), as: ProductState.self, from: &streams)
            guard product.created == nil else { throw Rejection(.productAlreadyExists, "product \(productID) already exists") }
            guard try draft.load(ShopStreams.category(categoryID), as: Existence.self, from: &streams).exists else {
                throw Rejection(.categoryNotFound, "category \(categoryID) does not exist")
            }
            try draft.claim(Claims.slug("product", slug), kind: "product-slug", owner: productID, from: &streams,
                            taken: Rejection(.nameTaken, "another product has the slug \(JSONView.quoted(slug))"))
            draft.emit(ShopStreams.product(productID), ProductCreated(productID: productID, name: name, slug: slug, description: description,
                                                                      price: price, categoryID: categoryID))

        case .changeProductPrice(let productID, let price):
            try Require.admin(actor, "change a price")
            try Require.positive(price, "a product's price")
            let product = try draft.load(ShopStreams.product(productID), as: ProductState.self, from: &streams)
            guard let current = product.price else { throw Rejection(.productNotFound, "product \(productID) does not exist") }
            guard current.currency == price.currency else { throw Rejection(.currencyMismatch, "product \(productID) is priced in \(current.currency), not \(price.currency)") }
            draft.emit(ShopStreams.product(productID), ProductPriceChanged(productID: productID, price: price))

        case .receiveStock(let productID, let quantity):
            try Require.admin(actor, "receive stock")
            try Require.quantity(quantity, max: Quantities.stockChangeMax, "a received quantity")
            try requireProduct(productID, &draft, &streams)
            let stock = try draft.load(ShopStreams.stock(productID), as: StockState.self, from: &streams)
            _ = try Quantities.sum(stock.available, quantity, "the stock of product \(productID)")
            draft.emit(ShopStreams.stock(productID), StockReceived(productID: productID, quantity: quantity))

        case .adjustStock(let productID, let delta, let reason):
            try Require.admin(actor, "adjust stock")
            try Require.field("reason", reason)
            try requireProduct(productID, &draft, &streams)
            guard delta != 0, delta.magnitude <= Quantities.stockChangeMax else {
                throw Rejection(delta == 0 ? .invalidField : .quantityTooLarge,
                                "a stock adjustment must be a nonzero whole number of at most \(Quantities.stockChangeMax) units either way, not \(delta)")
            }
            let stock = try draft.load(ShopStreams.stock(productID), as: StockState.self, from: &streams)
            let after = try Quantities.sum(stock.available, delta, "the stock of product \(productID)")
            guard after >= 0 else {
                throw Rejection(.stockWouldGoNegative, "product \(productID) has \(stock.available) available; adjusting by \(delta) would leave \(after)")
            }
            draft.emit(ShopStreams.stock(productID), StockAdjusted(productID: productID, delta: delta, reason: reason))

        case .placeOrder(let orderID, let userID, let requested):
            try Require.selfOrAdmin(actor, .customer, userID, "place an order for user \(userID)")
            try Require.field("orderID", orderID)
            guard !requested.isEmpty else { throw Rejection(.invalidField, "an order needs at least one line") }
            guard requested.count <= Quantities.linesMax else {
                throw Rejection(.quantityTooLarge, "an order holds at most \(Quantities.linesMax) lines, not \(requested.count)")
            }
            let order = try draft.load(ShopStreams.order(orderID), as: OrderState.self, from: &streams)
            guard order.placed == nil else { throw Rejection(.orderAlreadyExists, "order \(orderID) already exists") }
            let user = try draft.load(ShopStreams.user(userID), as: UserState.self, from: &streams)
            guard user.registered != nil else { throw Rejection(.userNotFound, "user \(userID) is not registered") }
            guard user.active else { throw Rejection(.userInactive, "user \(userID) is deactivated") }
            var lines: [OrderLine] = []
            var total: Money?
            for line in requested {
                try Require.quantity(line.quantity, max: Quantities.perItemMax, "the quantity of \(line.productID)")
                let product = try draft.load(ShopStreams.product(line.productID), as: ProductState.self, from: &streams)
                guard let price = product.price, let created = product.created else { throw Rejection(.productNotFound, "product \(line.productID) does not exist") }
                guard let lineTotal = price.times(Int64(line.quantity)), let sum = (total ?? .zero(price.currency)).adding(lineTotal) else {
                    throw Rejection(.currencyMismatch, "the order mixes currencies or is too large")
                }
                total = sum
                lines.append(OrderLine(productID: line.productID, name: created.name, categoryID: created.categoryID, quantity: line.quantity,
                                       unitPrice: price, appliedDiscounts: .zero(price.currency), preTaxTotal: lineTotal))
            }
            draft.emit(ShopStreams.order(orderID), OrderPlaced(orderID: orderID, userID: userID, lines: lines, total: total!))

        case .confirmOrder(let orderID):
            try Require.role(actor, [.admin, .system], "confirm an order")
            let order = try loadOrder(orderID, &draft, &streams)
            try requireTransition(order, to: .confirmed, orderID)
            // Rule 3: stock covers every line at this moment, or nothing is reserved.
            var needed: [String: Int] = [:]
            for line in order.placed!.lines { needed[line.productID, default: 0] += line.quantity }
            for (productID, quantity) in needed.sorted(by: { $0.key < $1.key }) {
                let stock = try draft.load(ShopStreams.stock(productID), as: StockState.self, from: &streams)
                guard stock.available >= quantity else {
                    throw Rejection(.insufficientStock, "product \(productID) has \(stock.available) available; order \(orderID) needs \(quantity)")
                }
                draft.emit(ShopStreams.stock(productID), StockReserved(productID: productID, orderID: orderID, quantity: quantity))
            }
            draft.emit(ShopStreams.order(orderID), OrderConfirmed(orderID: orderID))

        case .initiatePayment(let paymentID, let orderID, let amount, let method):
            try Require.field("paymentID", paymentID)
            try Require.positive(amount, "a payment")
            let order = try loadOrder(orderID, &draft, &streams)
            try Require.selfOrAdmin(actor, .customer, order.placed!.userID, "pay order \(orderID)")
            // The seed: only users who can sign in make payments; a deactivated one cannot.
            guard try draft.load(ShopStreams.user(order.placed!.userID), as: UserState.self, from: &streams).active else {
                throw Rejection(.userInactive, "user \(order.placed!.userID) is deactivated: their orders take no payment")
            }
            // A payment is for an order still waiting for one: paying a paid, shipped, delivered or
            // cancelled order would charge the customer for nothing (a second payment of a paid order is
            // the double charge the shop's seed warns of).
            guard order.status == .pending || order.status == .confirmed else {
                throw Rejection(.invalidOrderTransition, "order \(orderID) is \(order.status.rawValue); it takes no payment")
            }
            // Rule 4 from the start: a payment of another amount could never pay the order, only charge the customer.
            let total = order.placed!.total
            guard amount == total else {
                throw Rejection(.paymentAmountMismatch, "a payment of \(amount) cannot pay order \(orderID), which totals \(total)")
            }
            let payment = try draft.load(ShopStreams.payment(paymentID), as: PaymentState.self, from: &streams)
            guard payment.initiated == nil else { throw Rejection(.paymentAlreadyExists, "payment \(paymentID) already exists") }
            // One payment of an order at a time: two in flight would both charge the customer if both
            // went through. A payment that fails gives the order back for another.
            if let (holder, succeeded) = try openPayment(orderID, &draft, &streams) {
                throw Rejection(.orderHasPayment, succeeded
                    ? "order \(orderID) was already paid by payment \(holder); another would charge the customer twice"
                    : "order \(orderID) has payment \(holder) in progress; record its result first (another could charge the customer twice)")
            }
            try draft.claim(Claims.orderPayment(orderID), kind: "order-payment", owner: paymentID, from: &streams,
                            taken: Rejection(.orderHasPayment, "order \(orderID) has another payment in progress"))
            draft.emit(ShopStreams.payment(paymentID), PaymentInitiated(paymentID: paymentID, orderID: orderID, userID: order.placed!.userID,
                                                                          amount: amount, method: method))

        case .recordPaymentSucceeded(let paymentID, let transactionID):
            try Require.role(actor, [.admin, .system], "record a payment's result")
            try Require.field("transactionID", transactionID)
            let payment = try draft.load(ShopStreams.payment(paymentID), as: PaymentState.self, from: &streams)
            guard let initiated = payment.initiated else { throw Rejection(.paymentNotFound, "payment \(paymentID) was never initiated") }
            guard payment.succeeded == nil && payment.failed == nil else { throw Rejection(.paymentAlreadySettled, "payment \(paymentID) is already settled") }
            // Rule 2: a provider's transaction id is accepted once, across all orders.
            try draft.claim(Claims.paymentTransaction(initiated.method, transactionID), kind: "payment-transaction", owner: paymentID, from: &streams,
                            taken: Rejection(.duplicatePaymentTransaction, "\(initiated.method.rawValue) transaction \(transactionID) was already recorded for another payment"))
            draft.emit(ShopStreams.payment(paymentID), PaymentSucceeded(paymentID: paymentID, orderID: initiated.orderID, transactionID: transactionID,
                                                                          method: initiated.method, amount: initiated.amount))

        case .recordPaymentFailed(let paymentID, let reason):
            try Require.role(actor, [.admin, .system], "record a payment's result")
            let payment = try draft.load(ShopStreams.payment(paymentID), as: PaymentState.self, from: &streams)
            guard let initiated = payment.initiated else { throw Rejection(.paymentNotFound, "payment \(paymentID) was never initiated") }
            guard payment.succeeded == nil && payment.failed == nil else { throw Rejection(.paymentAlreadySettled, "payment \(paymentID) is already settled") }
            draft.emit(ShopStreams.payment(paymentID), PaymentFailed(paymentID: paymentID, orderID: initiated.orderID, reason: reason))
            try draft.release(Claims.orderPayment(initiated.orderID), kind: "order-payment", owner: paymentID, from: &streams)

        case .markOrderPaid(let orderID, let paymentID):
            try Require.role(actor, [.admin, .system], "mark an order paid")
            let order = try loadOrder(orderID, &draft, &streams)
            try requireTransition(order, to: .paid, orderID)
            let payment = try draft.load(ShopStreams.payment(paymentID), as: PaymentState.self, from: &streams)
            // Rule 4: only a successful payment of this order, of exactly its total.
            guard let succeeded = payment.succeeded, succeeded.orderID == orderID else {
                throw Rejection(.paymentNotSuccessful, "payment \(paymentID) has not succeeded for order \(orderID)")
            }
            guard succeeded.amount == order.placed!.total else {
                throw Rejection(.paymentAmountMismatch, "payment \(paymentID) is \(succeeded.amount); order \(orderID) totals \(order.placed!.total)")
            }
            draft.emit(ShopStreams.order(orderID), OrderPaid(orderID: orderID, paymentID: paymentID, transactionID: succeeded.transactionID))

        case .shipOrder(let orderID):
            try Require.role(actor, [.admin, .system], "ship an order")
            let order = try loadOrder(orderID, &draft, &streams)
            try requireTransition(order, to: .shipped, orderID)
            draft.emit(ShopStreams.order(orderID), OrderShipped(orderID: orderID))

        case .deliverOrder(let orderID):
            try Require.role(actor, [.admin, .system], "record a delivery")
            let order = try loadOrder(orderID, &draft, &streams)
            try requireTransition(order, to: .delivered, orderID)
            draft.emit(ShopStreams.order(orderID), OrderDelivered(orderID: orderID))

        case .cancelOrder(let orderID, let reason):
            let order = try loadOrder(orderID, &draft, &streams)
            try Require.selfOrAdmin(actor, .customer, order.placed!.userID, "cancel order \(orderID)")
            try requireTransition(order, to: .cancelled, orderID)
            // Money in flight is settled first: a payment under way could still take the customer's money
            // for a cancelled order, and one that went through but is not yet the order's would leave its
            // refund unrecorded. (An order marked paid records its refund below.)
            if order.status != .paid, let (holder, succeeded) = try openPayment(orderID, &draft, &streams) {
                throw Rejection(.orderHasPayment, succeeded
                    ? "order \(orderID)'s payment \(holder) went through: mark the order paid first, so that its cancellation records the refund"
                    : "order \(orderID) has payment \(holder) in progress; record its result first")
            }
            if order.status == .confirmed || order.status == .paid {
                var reserved: [String: Int] = [:]
                for line in order.placed!.lines { reserved[line.productID, default: 0] += line.quantity }
                for (productID, quantity) in reserved.sorted(by: { $0.key < $1.key }) {
                    _ = try draft.load(ShopStreams.stock(productID), as: StockState.self, from: &streams)
                    draft.emit(ShopStreams.stock(productID), StockReleased(productID: productID, orderID: orderID, quantity: quantity))
                }
            }
            // A paid order cancelled owes its payment back: the event says so, and the read models net it.
            let refund = order.paid.map { RefundDue(paymentID: $0.paymentID, transactionID: $0.transactionID, amount: order.placed!.total) }
            draft.emit(ShopStreams.order(orderID), OrderCancelled(orderID: orderID, reason: reason, refundDue: refund))

        case .recordRefund(let orderID, let refundTransactionID):
            try Require.role(actor, [.admin, .system], "record a refund")
            try Require.field("refundTransactionID", refundTransactionID)
            let order = try loadOrder(orderID, &draft, &streams)
            guard let due = order.refundDue else { throw Rejection(.noRefundDue, "order \(orderID) owes no refund") }
            if let refunded = order.refunded {
                throw Rejection(.noRefundDue, "order \(orderID)'s refund was already paid (transaction \(refunded.refundTransactionID))")
            }
            // The provider's refund is one of its transactions: accepted once, like a payment's.
            guard let method = try draft.load(ShopStreams.payment(due.paymentID), as: PaymentState.self, from: &streams).initiated?.method else {
                throw Rejection(.paymentNotFound, "payment \(due.paymentID) was never initiated")
            }
            try draft.claim(Claims.paymentTransaction(method, refundTransactionID), kind: "payment-transaction", owner: "refund-\(orderID)", from: &streams,
                            taken: Rejection(.duplicatePaymentTransaction, "\(method.rawValue) transaction \(refundTransactionID) was already recorded"))
            draft.emit(ShopStreams.order(orderID), RefundPaid(orderID: orderID, paymentID: due.paymentID, refundTransactionID: refundTransactionID,
                                                              amount: due.amount))

        default:
            preconditionFailure("\(envelope.command.name) is not a shop command")
        }
        return draft.decision
    }

    static func requireProduct(_ productID: String, _ draft: inout Draft, _ streams: inout some StreamReading) throws {
        let product = try draft.load(ShopStreams.product(productID), as: ProductState.self, from: &streams)
        guard product.created != nil else { throw Rejection(.productNotFound, "product \(productID) does not exist") }
    }

    /// The payment holding `orderID`'s payment claim, and whether it went through: one in progress, or
    /// one that succeeded (and stays the order's). nil when the order is free to take a payment.
    static func openPayment(_ orderID: String, _ draft: inout Draft, _ streams: inout some StreamReading) throws -> (payment: String, succeeded: Bool)? {
        guard let holder = try draft.load(Claims.orderPayment(orderID), as: ClaimState.self, from: &streams).owner else { return nil }
        return (holder, try draft.load(ShopStreams.payment(holder), as: PaymentState.self, from: &streams).succeeded != nil)
    }

    static func loadOrder(_ orderID: String, _ draft: inout Draft, _ streams: inout some StreamReading) throws -> OrderState {
        let order = try draft.load(ShopStreams.order(orderID), as: OrderState.self, from: &streams)
        guard order.placed != nil else { throw Rejection(.orderNotFound, "order \(orderID) does not exist") }
        return order
    }

    /// Rule 10: pending → confirmed → paid → shipped → delivered, one step at a time; cancelled from any
    /// status before shipped.
    static func requireTransition(_ order: OrderState, to next: OrderStatus, _ orderID: String) throws {
        let allowed: Bool
        switch next {
        case .cancelled: allowed = [.pending, .confirmed, .paid].contains(order.status)
        case .confirmed: allowed = order.status == .pending
        case .paid: allowed = order.status == .confirmed
        case .shipped: allowed = order.status == .paid
        case .delivered: allowed = order.status == .shipped
        case .pending: allowed = false
        }
        guard allowed else {
            throw Rejection(.invalidOrderTransition, "order \(orderID) is \(order.status.rawValue); it cannot become \(next.rawValue)")
        }
    }
}
