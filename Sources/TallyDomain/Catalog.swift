import Foundation
import TallyLog

/// One example of every command, in an order that a fresh store accepts from first to last: the
/// command catalogue `tally exec --catalog` prints, and that the tests run.
public enum CommandCatalog {
    public static var examples: [CommandEnvelope] {
        let admin = Actor(.admin, "ana"), lee = Actor(.operator, "lee"), customer = Actor(.customer, "u1")
        let system = Actor(.system, "payments"), member = Actor(.member, "m1"), staff = Actor(.staff, "sam")
        let usd = Currency.usd
        func money(_ minor: Int64) -> Money { Money(minor: minor, currency: usd) }
        let lime = SKU("000000004048")!, beer = SKU("000012345678")!, deposit = SKU("000000000010")!
        let commands: [(Actor, Command)] = [
            (admin, .registerBooth(boothID: "3", name: "Lemonade", location: "North gate")),
            (admin, .assignOperator(boothID: "3", operatorID: "lee", operatorName: "Lee Kim")),
            (admin, .issueVoucher(voucherID: "7", amount: money(2500), buyerEmail: "kim@example.org")),
            (lee, .redeemVoucher(voucherID: "7", boothID: "3", saleID: "s1", saleAmount: money(1800))),
            (admin, .unassignOperator(boothID: "3", operatorID: "lee")),
            (customer, .registerUser(userID: "u1", username: "wanjiru", email: "wanjiru@example.org", isAdmin: false)),
            (customer, .changeUserEmail(userID: "u1", email: "wanjiru.k@example.org")),
            (admin, .createCategory(categoryID: "books", name: "Books", slug: "books")),
            (admin, .changeCategory(categoryID: "books", name: "Books & Atlases", slug: "books")),
            (admin, .createProduct(productID: "atlas", name: "World Atlas", slug: "world-atlas", description: "Maps of every country", price: money(1999), categoryID: "books")),
            (admin, .changeProductPrice(productID: "atlas", price: money(1899))),
            (admin, .receiveStock(productID: "atlas", quantity: 10)),
            (admin, .adjustStock(productID: "atlas", delta: -1, reason: "damaged in storage")),
            (customer, .placeOrder(orderID: "o1", userID: "u1", lines: [OrderRequestLine(productID: "atlas", quantity: 2)])),
            (system, .confirmOrder(orderID: "o1")),
            (customer, .initiatePayment(paymentID: "pay1", orderID: "o1", amount: money(3798), method: .mpesa)),
            (system, .recordPaymentSucceeded(paymentID: "pay1", transactionID: "QK71B2XYZ")),
            (system, .markOrderPaid(orderID: "o1", paymentID: "pay1")),
            (admin, .shipOrder(orderID: "o1")),
            (admin, .deliverOrder(orderID: "o1")),
            (customer, .placeOrder(orderID: "o2", userID: "u1", lines: [OrderRequestLine(productID: "atlas", quantity: 1)])),
            (customer, .initiatePayment(paymentID: "pay2", orderID: "o2", amount: money(1899), method: .card)),
            (system, .recordPaymentFailed(paymentID: "pay2", reason: "card declined")),
            (customer, .cancelOrder(orderID: "o2", reason: "payment failed")),
            (admin, .openStore(storeID: "s1", name: "Corner Grocery", currency: usd)),
            (admin, .createItem(storeID: "s1", sku: deposit, details: ItemDetails(description: "Bottle deposit", departmentCode: "DEP"))),
            (admin, .createItem(storeID: "s1", sku: lime, details: ItemDetails(description: "Lime", size: "each", aisle: "1", shelf: "A", departmentCode: "PROD"))),
            (admin, .createItem(storeID: "s1", sku: beer, details: ItemDetails(description: "Lager 6-pack", size: "6 x 12 oz", posDescription: "LAGER 6PK",
                                                                             departmentCode: "BEER", restricted: true, linkedSKU: deposit, taxable: true))),
            (admin, .changeItem(storeID: "s1", sku: lime, details: ItemDetails(description: "Key lime", size: "each", aisle: "1", shelf: "A", departmentCode: "PROD"))),
            (admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: lime, price: money(100), quantity: 3))),
            (admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: beer, price: money(899), taxable: true))),
            (admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: deposit, price: money(10)))),
            (member, .registerMember(memberID: "m1", firstName: "Ada", lastName: "Lovelace", email: "ada@example.org", phone: "+1 555 0100")),
            (member, .linkSocialAccount(memberID: "m1", provider: "google", accountID: "g-1029384756")),
            (member, .recordMemberDevice(memberID: "m1", deviceFingerprint: "ios/iPhone14,5/6F1A0C2E-77B4-4D0F-9E3A-5B1C2D3E4F50", storeID: "s1")),
            (member, .changeMemberProfile(memberID: "m1", firstName: "Ada", lastName: "King", phone: nil)),
            (member, .reviseShoppingList(listID: "l1", memberID: "m1", lines: [ShoppingListLine(sku: lime, quantity: 6), ShoppingListLine(sku: beer, quantity: 1)])),
            (member, .reviseShoppingList(listID: "l1", memberID: "m1", lines: [ShoppingListLine(sku: lime, quantity: 4)])),
            (member, .openCart(cartID: "k1", storeID: "s1", memberID: "m1")),
            (member, .scanItem(cartID: "k1", scannedInput: lime.value, quantity: 4)),
            (member, .scanItem(cartID: "k1", scannedInput: beer.value, quantity: 1)),
            (member, .removeItem(cartID: "k1", sku: lime, quantity: 1)),
            (staff, .approveRestrictedItems(cartID: "k1")),
            (member, .checkout(cartID: "k1", paymentTransactionID: "bt-5f2a9c")),
            (customer, .placeOrder(orderID: "o3", userID: "u1", lines: [OrderRequestLine(productID: "atlas", quantity: 1)])),
            (system, .confirmOrder(orderID: "o3")),
            (customer, .initiatePayment(paymentID: "pay3", orderID: "o3", amount: money(1899), method: .card)),
            (system, .recordPaymentSucceeded(paymentID: "pay3", transactionID: "ch_3Nq7")),
            (system, .markOrderPaid(orderID: "o3", paymentID: "pay3")),
            (admin, .cancelOrder(orderID: "o3", reason: "out of delivery area")),
            (system, .recordRefund(orderID: "o3", refundTransactionID: "re_3Nq8")),
            (member, .deactivateMember(memberID: "m1")),
            (customer, .deactivateUser(userID: "u1")),
            (admin, .erasePersonalData(subject: "member:m1", reason: "erasure request 2026-118")),
        ]
        return commands.enumerated().map { index, pair in
            CommandEnvelope(id: UUID(uuidString: String(format: "00000000-0000-4000-8000-%012d", index + 1))!, actor: pair.0, command: pair.1)
        }
    }
}
