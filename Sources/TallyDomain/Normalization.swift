import Foundation

// Text in a command is taken in Unicode Normalization Form C.
//
// Swift's `String` compares and hashes by canonical equivalence: "café" written with U+00E9 and with
// "e" + U+0301 (as macOS file names and some keyboards give it) are `==`. Everything below the rules
// compares bytes: the log's streams, the uniqueness claims (hashes of the value's bytes), the
// vault's subjects, SQLite's keys in the read models. Left as given, one member id in the two forms
// would be one member to the rules' in-memory caches and two streams and two people everywhere
// else, and one email address in the two forms could be claimed twice.
//
// So every text of a command, and the actor's id, is normalized to NFC before the rules see it: one
// form per canonical equivalence class, so the rules' `==` and everyone's bytes agree. Events record
// the NFC form. Text in events written before this rule is read as stored.

extension String {
    /// This text in Normalization Form C. ASCII text (almost every id) is its own NFC and is returned
    /// without a copy.
    var nfc: String {
        if utf8.allSatisfy({ $0 < 0x80 }) { return self }
        return precomposedStringWithCanonicalMapping
    }
}

extension Optional where Wrapped == String {
    var nfc: String? { map(\.nfc) }
}

extension Actor {
    /// The actor with its id in NFC.
    public var normalized: Actor { Actor(role, id.nfc) }
}

extension ItemDetails {
    var normalized: ItemDetails {
        var details = self
        details.description = description.nfc
        details.size = size.nfc
        details.posDescription = posDescription.nfc
        details.aisle = aisle.nfc
        details.shelf = shelf.nfc
        details.departmentCode = departmentCode.nfc
        return details
    }
}

extension PriceRecord {
    var normalized: PriceRecord {
        var record = self
        record.label = label.nfc
        return record
    }
}

extension CommandEnvelope {
    /// The envelope with every text of its command, and its actor's id, in NFC (see above). SKUs,
    /// currencies and enumerations are ASCII by construction.
    public var normalized: CommandEnvelope {
        CommandEnvelope(id: id, actor: actor.normalized, command: command.normalized)
    }
}

extension Command {
    /// The command with every text in NFC.
    public var normalized: Command {
        switch self {
        case .registerBooth(let boothID, let name, let location):
            .registerBooth(boothID: boothID.nfc, name: name.nfc, location: location.nfc)
        case .assignOperator(let boothID, let operatorID, let operatorName):
            .assignOperator(boothID: boothID.nfc, operatorID: operatorID.nfc, operatorName: operatorName.nfc)
        case .unassignOperator(let boothID, let operatorID):
            .unassignOperator(boothID: boothID.nfc, operatorID: operatorID.nfc)
        case .issueVoucher(let voucherID, let amount, let buyerEmail):
            .issueVoucher(voucherID: voucherID.nfc, amount: amount, buyerEmail: buyerEmail.nfc)
        case .redeemVoucher(let voucherID, let boothID, let saleID, let saleAmount):
            .redeemVoucher(voucherID: voucherID.nfc, boothID: boothID.nfc, saleID: saleID.nfc, saleAmount: saleAmount)

        case .registerUser(let userID, let username, let email, let isAdmin):
            .registerUser(userID: userID.nfc, username: username.nfc, email: email.nfc, isAdmin: isAdmin)
        case .changeUserEmail(let userID, let email):
            .changeUserEmail(userID: userID.nfc, email: email.nfc)
        case .deactivateUser(let userID):
            .deactivateUser(userID: userID.nfc)
        case .createCategory(let categoryID, let name, let slug):
            .createCategory(categoryID: categoryID.nfc, name: name.nfc, slug: slug.nfc)
        case .changeCategory(let categoryID, let name, let slug):
            .changeCategory(categoryID: categoryID.nfc, name: name.nfc, slug: slug.nfc)
        case .createProduct(let productID, let name, let slug, let description, let price, let categoryID):
            .createProduct(productID: productID.nfc, name: name.nfc, slug: slug.nfc, description: description.nfc, price: price,
                           categoryID: categoryID.nfc)
        case .changeProductPrice(let productID, let price):
            .changeProductPrice(productID: productID.nfc, price: price)
        case .receiveStock(let productID, let quantity):
            .receiveStock(productID: productID.nfc, quantity: quantity)
        case .adjustStock(let productID, let delta, let reason):
            .adjustStock(productID: productID.nfc, delta: delta, reason: reason.nfc)
        case .placeOrder(let orderID, let userID, let lines):
            .placeOrder(orderID: orderID.nfc, userID: userID.nfc,
                        lines: lines.map { OrderRequestLine(productID: $0.productID.nfc, quantity: $0.quantity) })
        case .confirmOrder(let orderID):
            .confirmOrder(orderID: orderID.nfc)
        case .initiatePayment(let paymentID, let orderID, let amount, let method):
            .initiatePayment(paymentID: paymentID.nfc, orderID: orderID.nfc, amount: amount, method: method)
        case .recordPaymentSucceeded(let paymentID, let transactionID):
            .recordPaymentSucceeded(paymentID: paymentID.nfc, transactionID: transactionID.nfc)
        case .recordPaymentFailed(let paymentID, let reason):
            .recordPaymentFailed(paymentID: paymentID.nfc, reason: reason.nfc)
        case .markOrderPaid(let orderID, let paymentID):
            .markOrderPaid(orderID: orderID.nfc, paymentID: paymentID.nfc)
        case .shipOrder(let orderID):
            .shipOrder(orderID: orderID.nfc)
        case .deliverOrder(let orderID):
            .deliverOrder(orderID: orderID.nfc)
        case .recordRefund(let orderID, let refundTransactionID):
            .recordRefund(orderID: orderID.nfc, refundTransactionID: refundTransactionID.nfc)
        case .cancelOrder(let orderID, let reason):
            .cancelOrder(orderID: orderID.nfc, reason: reason.nfc)

        case .openStore(let storeID, let name, let currency):
            .openStore(storeID: storeID.nfc, name: name.nfc, currency: currency)
        case .createItem(let storeID, let sku, let details):
            .createItem(storeID: storeID.nfc, sku: sku, details: details.normalized)
        case .changeItem(let storeID, let sku, let details):
            .changeItem(storeID: storeID.nfc, sku: sku, details: details.normalized)
        case .schedulePrice(let storeID, let price):
            .schedulePrice(storeID: storeID.nfc, price: price.normalized)
        case .registerMember(let memberID, let firstName, let lastName, let email, let phone):
            .registerMember(memberID: memberID.nfc, firstName: firstName.nfc, lastName: lastName.nfc, email: email.nfc, phone: phone.nfc)
        case .reviseShoppingList(let listID, let memberID, let lines):
            .reviseShoppingList(listID: listID.nfc, memberID: memberID.nfc, lines: lines)
        case .recordMemberDevice(let memberID, let fingerprint, let storeID):
            .recordMemberDevice(memberID: memberID.nfc, deviceFingerprint: fingerprint.nfc, storeID: storeID.nfc)
        case .linkSocialAccount(let memberID, let provider, let accountID):
            .linkSocialAccount(memberID: memberID.nfc, provider: provider.nfc, accountID: accountID.nfc)
        case .changeMemberProfile(let memberID, let firstName, let lastName, let phone):
            .changeMemberProfile(memberID: memberID.nfc, firstName: firstName.nfc, lastName: lastName.nfc, phone: phone.nfc)
        case .deactivateMember(let memberID):
            .deactivateMember(memberID: memberID.nfc)
        case .openCart(let cartID, let storeID, let memberID):
            .openCart(cartID: cartID.nfc, storeID: storeID.nfc, memberID: memberID.nfc)
        case .scanItem(let cartID, let scannedInput, let quantity):
            .scanItem(cartID: cartID.nfc, scannedInput: scannedInput.nfc, quantity: quantity)
        case .removeItem(let cartID, let sku, let quantity):
            .removeItem(cartID: cartID.nfc, sku: sku, quantity: quantity)
        case .approveRestrictedItems(let cartID):
            .approveRestrictedItems(cartID: cartID.nfc)
        case .checkout(let cartID, let paymentTransactionID):
            .checkout(cartID: cartID.nfc, paymentTransactionID: paymentTransactionID.nfc)

        case .erasePersonalData(let subject, let reason):
            .erasePersonalData(subject: subject.nfc, reason: reason.nfc)
        }
    }
}
