import Foundation
import TallyLog

/// The self-checkout's rules: admins alone change items and prices; scanning an item with a linked item
/// adds the linked one too; a superseded SKU is priced and reported as its replacement while the scanned
/// input is kept; a cart with a restricted item needs a staff approval before checkout; social account
/// ids and emails belong to one member; and a checkout records every line as it was charged.
enum CheckoutRules {
    static func decide(_ envelope: CommandEnvelope, streams: inout some StreamReading) throws -> Decision {
        let actor = envelope.actor
        var draft = Draft()
        switch envelope.command {
        case .openStore(let storeID, let name, let currency):
            try Require.admin(actor, "open a store")
            try Require.field("storeID", storeID)
            try Require.text("name", name)
            let store = try draft.load(CheckoutStreams.store(storeID), as: StoreState.self, from: &streams)
            guard store.opened == nil else { throw Rejection(.storeAlreadyExists, "store \(storeID) already exists") }
            draft.emit(CheckoutStreams.store(storeID), StoreOpened(storeID: storeID, name: name, currency: currency))

        case .createItem(let storeID, let sku, let details), .changeItem(let storeID, let sku, let details):
            let creating = if case .createItem = envelope.command { true } else { false }
            try Require.admin(actor, creating ? "create an item" : "change an item")
            try Require.text("description", details.description, charactersMax: TextLimits.descriptionCharactersMax)
            try Require.text("size", details.size, charactersMax: TextLimits.descriptionCharactersMax)
            try Require.text("posDescription", details.posDescription, charactersMax: TextLimits.descriptionCharactersMax)
            try Require.text("aisle", details.aisle, charactersMax: TextLimits.shelfCharactersMax)
            try Require.text("shelf", details.shelf, charactersMax: TextLimits.shelfCharactersMax)
            try Require.text("departmentCode", details.departmentCode, charactersMax: TextLimits.departmentCodeCharactersMax)
            _ = try loadStore(storeID, &draft, &streams)
            let item = try draft.load(CheckoutStreams.item(storeID, sku), as: ItemState.self, from: &streams)
            if creating {
                guard item.details == nil else { throw Rejection(.itemAlreadyExists, "item \(sku) already exists in store \(storeID)") }
            } else {
                guard item.details != nil else { throw Rejection(.itemNotFound, "item \(sku) does not exist in store \(storeID)") }
            }
            for (what, other) in [("linked item", details.linkedSKU), ("replacement", details.supersededBy)] {
                guard let other else { continue }
                guard other != sku else { throw Rejection(.invalidField, "item \(sku) cannot be its own \(what)") }
                guard try draft.load(CheckoutStreams.item(storeID, other), as: ItemState.self, from: &streams).details != nil else {
                    throw Rejection(.itemNotFound, "the \(what) \(other) does not exist in store \(storeID)")
                }
            }
            // Rule 8's replacements form chains a scan follows to their end: no loop, or a scan of either
            // item would be sold as whichever the walk stopped at. (A walk stops at an older loop too.)
            if let first = details.supersededBy {
                var chain = [sku, first]
                while chain.count <= Self.replacementHopsMax,
                      let next = try draft.load(CheckoutStreams.item(storeID, chain.last!), as: ItemState.self, from: &streams).details?.supersededBy {
                    guard next != sku else {
                        throw Rejection(.invalidField, "replacing \(sku) by \(first) makes a loop: \((chain + [next]).map(\.value).joined(separator: " → "))")
                    }
                    chain.append(next)
                }
            }
            if creating {
                draft.emit(CheckoutStreams.item(storeID, sku), ItemCreated(storeID: storeID, sku: sku, details: details))
            } else {
                draft.emit(CheckoutStreams.item(storeID, sku), ItemChanged(storeID: storeID, sku: sku, details: details))
            }

        case .schedulePrice(let storeID, let price):
            try Require.admin(actor, "schedule a price")
            let store = try loadStore(storeID, &draft, &streams)
            do { try Pricing.validate(price) } catch let error as PricingError { throw Rejection(.invalidPrice, error.description) }
            // Checked here, not by `Pricing.validate`, so records already in a log still price.
            // A negative type: the seed's column is unsigned.
            guard price.priceType >= 0 else {
                throw Rejection(.invalidPrice, "invalid price record: price type \(price.priceType) is negative (0 is the regular price, higher types override it)")
            }
            // "Every second unit free" of a group price ("3 for $1") has no one reading: which unit is
            // free, and what does the group's last unit take?
            guard !price.bogo || price.quantity == 1 else {
                throw Rejection(.invalidPrice, "invalid price record: a buy-one-get-one price is for one unit, not a group of \(price.quantity)")
            }
            guard price.price.currency == store.currency else {
                throw Rejection(.currencyMismatch, "store \(storeID) sells in \(store.currency), not \(price.price.currency)")
            }
            let item = try draft.load(CheckoutStreams.item(storeID, price.sku), as: ItemState.self, from: &streams)
            guard item.details != nil else { throw Rejection(.itemNotFound, "item \(price.sku) does not exist in store \(storeID)") }
            draft.emit(CheckoutStreams.item(storeID, price.sku), PriceScheduled(storeID: storeID, price: price))

        case .registerMember(let memberID, let firstName, let lastName, let email, let phone):
            try Require.selfOrAdmin(actor, .member, memberID, "register member \(memberID)")
            try Require.field("memberID", memberID)
            try Require.text("firstName", firstName)
            try Require.text("lastName", lastName)
            try Require.phone("phone", phone)
            let member = try draft.load(CheckoutStreams.member(memberID), as: MemberState.self, from: &streams)
            guard member.registered == nil else { throw Rejection(.memberAlreadyRegistered, "member \(memberID) is already registered") }
            if let email {
                try Require.email("email", email)
                try draft.claim(Claims.email(email, secret: streams.claimSecret), kind: "email", owner: memberID, from: &streams,
                                taken: Rejection(.emailTaken, "that email address is already registered"))
            }
            draft.emit(CheckoutStreams.member(memberID), MemberRegistered(memberID: memberID, firstName: firstName, lastName: lastName, email: email, phone: phone))

        case .linkSocialAccount(let memberID, let provider, let accountID):
            try Require.selfOrAdmin(actor, .member, memberID, "link an account to member \(memberID)")
            try Require.field("provider", provider)
            try Require.field("accountID", accountID)
            _ = try loadMember(memberID, &draft, &streams)
            try draft.claim(Claims.social(provider, accountID, secret: streams.claimSecret), kind: "social/\(provider)", owner: memberID, from: &streams,
                            taken: Rejection(.socialAccountTaken, "that \(provider) account is linked to another member"),
                            theirs: Rejection(.invalidField, "that \(provider) account is already linked to member \(memberID): nothing to change"))
            draft.emit(CheckoutStreams.member(memberID), SocialAccountLinked(memberID: memberID, provider: provider, accountID: accountID))

        case .recordMemberDevice(let memberID, let fingerprint, let storeID):
            try Require.selfOrAdmin(actor, .member, memberID, "record a device of member \(memberID)")
            try Require.field("deviceFingerprint", fingerprint)
            _ = try loadMember(memberID, &draft, &streams)
            if let storeID { _ = try loadStore(storeID, &draft, &streams) }
            draft.emit(CheckoutStreams.member(memberID),
                       MemberDeviceSeen(memberID: memberID, device: Claims.device(fingerprint, secret: streams.claimSecret), storeID: storeID))

        case .reviseShoppingList(let listID, let memberID, let lines):
            try Require.selfOrAdmin(actor, .member, memberID, "revise a shopping list of member \(memberID)")
            try Require.field("listID", listID)
            _ = try loadMember(memberID, &draft, &streams)
            let list = try draft.load(CheckoutStreams.shoppingList(listID), as: ShoppingListState.self, from: &streams)
            if let owner = list.memberID, owner != memberID {
                throw Rejection(.notAuthorized, "shopping list \(listID) belongs to member \(owner), not \(memberID)")
            }
            // The list is recorded whole in one event: it holds as many lines as a cart.
            guard lines.count <= Quantities.linesMax else {
                throw Rejection(.quantityTooLarge, "a shopping list holds at most \(Quantities.linesMax) lines, not \(lines.count)")
            }
            var listed = Set<SKU>()
            for line in lines {
                try Require.quantity(line.quantity, max: Quantities.perItemMax, "the quantity of \(line.sku) on the list")
                guard listed.insert(line.sku).inserted else {
                    throw Rejection(.invalidField, "\(line.sku) is on the list twice: give it once, with the units of both")
                }
            }
            guard lines != list.lines else {
                throw Rejection(.invalidField, list.revision == 0 ? "shopping list \(listID) does not exist yet: give it at least one line"
                                                                   : "shopping list \(listID) already holds exactly these lines: nothing to change")
            }
            draft.emit(CheckoutStreams.shoppingList(listID), ShoppingListRevised(memberID: memberID, listID: listID, revision: list.revision + 1, lines: lines))

        case .changeMemberProfile(let memberID, let firstName, let lastName, let phone):
            try Require.selfOrAdmin(actor, .member, memberID, "change member \(memberID)")
            guard firstName != nil || lastName != nil || phone != nil else {
                throw Rejection(.invalidField, "a profile change needs at least one of firstName, lastName and phone")
            }
            try Require.text("firstName", firstName)
            try Require.text("lastName", lastName)
            try Require.phone("phone", phone)
            _ = try loadMember(memberID, &draft, &streams)
            draft.emit(CheckoutStreams.member(memberID), MemberProfileChanged(memberID: memberID, firstName: firstName, lastName: lastName, phone: phone))

        case .deactivateMember(let memberID):
            try Require.selfOrAdmin(actor, .member, memberID, "deactivate member \(memberID)")
            _ = try loadMember(memberID, &draft, &streams)
            draft.emit(CheckoutStreams.member(memberID), MemberDeactivated(memberID: memberID))

        case .openCart(let cartID, let storeID, let memberID):
            try Require.selfOrAdmin(actor, .member, memberID, "open a cart for member \(memberID)")
            try Require.field("cartID", cartID)
            _ = try loadStore(storeID, &draft, &streams)
            _ = try loadMember(memberID, &draft, &streams)
            let cart = try draft.load(CheckoutStreams.cart(cartID), as: CartState.self, from: &streams)
            guard cart.opened == nil else { throw Rejection(.cartAlreadyExists, "cart \(cartID) already exists") }
            draft.emit(CheckoutStreams.cart(cartID), CartOpened(cartID: cartID, storeID: storeID, memberID: memberID))

        case .scanItem(let cartID, let scannedInput, let quantity):
            try Require.quantity(quantity, max: Quantities.perItemMax, "a scanned quantity")
            let cart = try loadOpenCart(cartID, actor, &draft, &streams)
            // A deactivated member's cart takes nothing more (its checkout is still recorded: the payment
            // may already be taken).
            _ = try loadMember(cart.opened!.memberID, &draft, &streams)
            let store = try loadStore(cart.opened!.storeID, &draft, &streams)
            let storeID = cart.opened!.storeID
            // A variable-price code carries its price; anything else is a SKU, kept as a string.
            let variable = VariablePriceCode(scannedInput, currency: store.currency)
            guard let scannedSKU = variable?.itemSKU ?? SKU(scannedInput) else {
                throw Rejection(.invalidField, "\"\(scannedInput)\" is not a SKU or a variable-price code")
            }
            var item = try draft.load(CheckoutStreams.item(storeID, scannedSKU), as: ItemState.self, from: &streams)
            guard let scannedDetails = item.details else { throw Rejection(.itemNotFound, "item \(scannedSKU) does not exist in store \(storeID)") }
            var details = scannedDetails
            // Rule 8: a superseded SKU resolves to its replacement for pricing and reporting.
            var sku = scannedSKU
            var hops = 0
            while let replacement = details.supersededBy {
                guard hops < Self.replacementHopsMax else {
                    throw Rejection(.invalidField, "item \(scannedSKU) is replaced by \(scannedDetails.supersededBy!), and so on past \(Self.replacementHopsMax) "
                                    + "replacements: give the items a shorter chain")
                }
                item = try draft.load(CheckoutStreams.item(storeID, replacement), as: ItemState.self, from: &streams)
                guard let replacementDetails = item.details else { throw Rejection(.itemNotFound, "replacement \(replacement) does not exist") }
                sku = replacement
                details = replacementDetails
                hops += 1
            }
            // Checkout prices each unit: a cart holds at most `perItemMax` of one item (its linked item follows it).
            let held = try cart.quantity(of: sku)
            guard held <= Quantities.perItemMax - quantity else {
                throw Rejection(.quantityTooLarge, "cart \(cartID) holds \(held) of \(sku); \(quantity) more would pass \(Quantities.perItemMax), the most of one item a cart holds")
            }
            // The checkout records every line in one event: a cart holds at most `linesMax` of them.
            let newLines = (variable != nil || !cart.lines.contains { $0.sku == sku && $0.embeddedPrice == nil } ? 1 : 0)
                + (details.linkedSKU.map { linked in cart.lines.contains { $0.sku == linked && $0.embeddedPrice == nil } ? 0 : 1 } ?? 0)
            guard cart.checkoutLineCount + newLines <= Quantities.linesMax else {
                throw Rejection(.quantityTooLarge, "cart \(cartID) has \(cart.checkoutLineCount) lines, the most a cart holds is \(Quantities.linesMax): "
                                + "check it out and open another")
            }
            draft.emit(CheckoutStreams.cart(cartID), CartItemAdded(cartID: cartID, scannedInput: scannedInput, sku: sku, quantity: quantity,
                                                                   embeddedPrice: variable?.price, linkedFrom: nil))
            // Rule 7: a linked item (a bottle deposit) comes with it.
            if let linked = details.linkedSKU {
                guard try draft.load(CheckoutStreams.item(storeID, linked), as: ItemState.self, from: &streams).details != nil else {
                    throw Rejection(.itemNotFound, "linked item \(linked) does not exist in store \(storeID)")
                }
                draft.emit(CheckoutStreams.cart(cartID), CartItemAdded(cartID: cartID, scannedInput: scannedInput, sku: linked, quantity: quantity,
                                                                       embeddedPrice: nil, linkedFrom: sku))
            }

        case .removeItem(let cartID, let sku, let quantity):
            try Require.quantity(quantity, max: Quantities.perItemMax, "a removed quantity")
            let cart = try loadOpenCart(cartID, actor, &draft, &streams)
            // Rule 7 both ways: a linked item (a bottle deposit) goes with the item that brought it, and
            // only with it. Removing the deposit alone charged two six-packs one deposit.
            let own = try cart.quantity(of: sku, linkedFrom: nil)
            guard own >= quantity else {
                let held = try cart.quantity(of: sku)
                if held >= quantity, let item = cart.lines.first(where: { $0.sku == sku && $0.linkedFrom != nil })?.linkedFrom {
                    throw Rejection(.linkedItemStaysWithItsItem, "\(held - own) of \(sku) in cart \(cartID) came with \(item) and go only with it: remove \(item)")
                }
                throw Rejection(.itemNotInCart, "cart \(cartID) holds \(held) of \(sku), fewer than \(quantity)")
            }
            draft.emit(CheckoutStreams.cart(cartID), CartItemRemoved(cartID: cartID, sku: sku, quantity: quantity))
            // The units this item brought leave with it (removing bottles left their deposit charged).
            var brought: [SKU] = []
            for line in cart.lines where line.linkedFrom == sku && !brought.contains(line.sku) { brought.append(line.sku) }
            for linked in brought {
                let units = min(quantity, try cart.quantity(of: linked, linkedFrom: sku))
                draft.emit(CheckoutStreams.cart(cartID), CartItemRemoved(cartID: cartID, sku: linked, quantity: units, linkedFrom: sku))
            }

        case .approveRestrictedItems(let cartID):
            try Require.role(actor, [.staff], "approve restricted items")
            let cart = try draft.load(CheckoutStreams.cart(cartID), as: CartState.self, from: &streams)
            guard cart.opened != nil else { throw Rejection(.cartNotFound, "cart \(cartID) does not exist") }
            guard !cart.checkedOut else { throw Rejection(.cartAlreadyCheckedOut, "cart \(cartID) is already checked out") }
            draft.emit(CheckoutStreams.cart(cartID), RestrictedItemsApproved(cartID: cartID, staffID: actor.id))

        case .checkout(let cartID, let paymentTransactionID):
            try Require.field("paymentTransactionID", paymentTransactionID)
            let cart = try loadOpenCart(cartID, actor, &draft, &streams)
            guard !cart.lines.isEmpty else { throw Rejection(.cartEmpty, "cart \(cartID) is empty") }
            let storeID = cart.opened!.storeID
            let store = try loadStore(storeID, &draft, &streams)
            var items: [SKU: ItemState] = [:]
            for line in cart.lines where items[line.sku] == nil {
                items[line.sku] = try draft.load(CheckoutStreams.item(storeID, line.sku), as: ItemState.self, from: &streams)
            }
            // Rule 6: a restricted item needs a staff approval for this cart.
            if let restricted = cart.lines.first(where: { items[$0.sku]?.details?.restricted == true }), !cart.approved {
                throw Rejection(.restrictedItemNeedsApproval, "cart \(cartID) holds restricted item \(restricted.sku): a staff member must approve it first")
            }
            let lines = try transactionLines(cart, items: items, at: streams.now)
            guard let total = lines.reduce(Money?.some(.zero(store.currency)), { $0?.adding($1.preTaxTotal) }) else {
                throw Rejection(.currencyMismatch, "cart \(cartID)'s lines are not all in \(store.currency)")
            }
            try draft.claim(Claims.paymentTransaction(.card, paymentTransactionID), kind: "payment-transaction", owner: cartID, from: &streams,
                            taken: Rejection(.duplicatePaymentTransaction, "payment transaction \(paymentTransactionID) was already used"))
            draft.emit(CheckoutStreams.cart(cartID), CartCheckedOut(cartID: cartID, storeID: storeID, memberID: cart.opened!.memberID, lines: lines,
                                                                    total: total, paymentTransactionID: paymentTransactionID))

        default:
            preconditionFailure("\(envelope.command.name) is not a checkout command")
        }
        return draft.decision
    }

    /// The historic truth of a checkout: one line per SKU (units scanned separately are priced as one
    /// quantity, so "3 for $1" applies across scans) plus one per variable-price scan, each with what was
    /// charged at `moment`.
    static func transactionLines(_ cart: CartState, items: [SKU: ItemState], at moment: Timestamp) throws -> [TransactionLine] {
        var lines: [TransactionLine] = []
        var order: [SKU] = []
        var quantities: [SKU: (quantity: Int, scanned: String, item: ItemState, details: ItemDetails)] = [:]
        for line in cart.lines {
            // Scans add only items that exist; a cart written behind the rules' back may name one that does not.
            guard let item = items[line.sku], let details = item.details else { throw Rejection(.itemNotFound, "item \(line.sku) in the cart does not exist in its store") }
            if let embedded = line.embeddedPrice {
                guard let total = embedded.times(Int64(line.quantity)) else { throw Rejection(.invalidPrice, "the amount is too large") }
                lines.append(TransactionLine(scannedInput: line.scannedInput, sku: line.sku, description: details.description, size: details.size,
                                             unitPrice: embedded, quantity: line.quantity, appliedDiscounts: .zero(embedded.currency),
                                             preTaxTotal: total, taxable: details.taxable, departmentCode: details.departmentCode, bogo: false))
                continue
            }
            if quantities[line.sku] == nil { order.append(line.sku); quantities[line.sku] = (0, line.scannedInput, item, details) }
            // Scans kept each item to `perItemMax`; a cart written behind the rules' back is refused here
            // rather than priced unit by unit.
            let units = try Quantities.sum(quantities[line.sku]!.quantity, line.quantity, "the units of \(line.sku) in the cart")
            guard units <= Quantities.perItemMax else {
                throw Rejection(.quantityTooLarge, "the cart holds \(units) of \(line.sku), more than \(Quantities.perItemMax)")
            }
            quantities[line.sku]!.quantity = units
        }
        for sku in order {
            let (quantity, scanned, item, details) = quantities[sku]!
            guard let record = Pricing.activePrice(item.prices, at: moment) else {
                throw Rejection(.noActivePrice, "item \(sku) has no active price at \(moment)")
            }
            let charge: LineCharge
            do { charge = try Pricing.charge(record, quantity: quantity) } catch let error as PricingError { throw Rejection(.invalidPrice, error.description) }
            lines.append(TransactionLine(scannedInput: scanned, sku: sku, description: details.posDescription ?? details.description, size: details.size,
                                         unitPrice: charge.unitPrice, quantity: quantity, appliedDiscounts: charge.appliedDiscounts,
                                         preTaxTotal: charge.preTaxTotal, taxable: record.taxable || details.taxable,
                                         departmentCode: details.departmentCode, bogo: record.bogo))
        }
        return lines
    }

    static func loadStore(_ storeID: String, _ draft: inout Draft, _ streams: inout some StreamReading) throws -> StoreOpened {
        guard let opened = try draft.load(CheckoutStreams.store(storeID), as: StoreState.self, from: &streams).opened else {
            throw Rejection(.storeNotFound, "store \(storeID) does not exist")
        }
        return opened
    }

    /// The longest chain of replacements (an item superseded by one superseded by another…).
    static let replacementHopsMax = 8

    static func loadMember(_ memberID: String, _ draft: inout Draft, _ streams: inout some StreamReading) throws -> MemberState {
        let member = try draft.load(CheckoutStreams.member(memberID), as: MemberState.self, from: &streams)
        guard member.registered != nil else { throw Rejection(.memberNotFound, "member \(memberID) is not registered") }
        guard member.active else { throw Rejection(.memberInactive, "member \(memberID) is deactivated") }
        return member
    }

    /// A cart that exists, is not checked out, and belongs to the acting member (or staff, or an admin).
    static func loadOpenCart(_ cartID: String, _ actor: Actor, _ draft: inout Draft, _ streams: inout some StreamReading) throws -> CartState {
        let cart = try draft.load(CheckoutStreams.cart(cartID), as: CartState.self, from: &streams)
        guard let opened = cart.opened else { throw Rejection(.cartNotFound, "cart \(cartID) does not exist") }
        guard !cart.checkedOut else { throw Rejection(.cartAlreadyCheckedOut, "cart \(cartID) is already checked out") }
        guard actor.role == .admin || actor.role == .staff || (actor.role == .member && actor.id == opened.memberID) else {
            throw Rejection(.notAuthorized, "cart \(cartID) belongs to member \(opened.memberID), not \(actor)")
        }
        return cart
    }
}
