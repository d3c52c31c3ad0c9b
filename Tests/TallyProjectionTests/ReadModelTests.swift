import Foundation
import GRDB
import MemberActivityProjection
import SalesLogProjection
import TallyDomain
import TallyLog
import TallyProjection
import TallyTestSupport
import Testing
import TransactionsProjection

let admin = Actor(.admin, "ana")
let lee = Actor(.operator, "lee"), max = Actor(.operator, "max")
let system = Actor(.system, "payments")

/// A small history whose figures are computed by hand below: two booths and four vouchers, a
/// self-checkout with "3 for $1" limes and a superseded soap SKU, an abandoned cart, and a paid web
/// order; then a price change after the sale, which must not change what the sale recorded.
struct HandScenario {
    static let lime = sku("000000004048"), oldSoap = sku("000777000001"), newSoap = sku("000777000002")

    static func record(_ store: TestStore) throws {
        let clock = store.clock
        // Day 1, 09:00: the fair opens.
        try store.run(admin, .registerBooth(boothID: "b1", name: "Pies", location: "Hall A"))
        try store.run(admin, .registerBooth(boothID: "b2", name: "Tea", location: "Hall B"))
        try store.run(admin, .assignOperator(boothID: "b1", operatorID: "lee", operatorName: "Lee Kim"))
        try store.run(admin, .assignOperator(boothID: "b2", operatorID: "max", operatorName: "Max Roe"))
        try store.run(admin, .issueVoucher(voucherID: "v1", amount: cents(2500), buyerEmail: "ann@example.org"))
        try store.run(admin, .issueVoucher(voucherID: "v2", amount: cents(1000), buyerEmail: "bob@example.org"))
        try store.run(admin, .issueVoucher(voucherID: "v3", amount: cents(500), buyerEmail: "cat@example.org"))
        try store.run(admin, .issueVoucher(voucherID: "v4", amount: cents(700), buyerEmail: "dan@example.org"))
        clock.set(time("2026-11-20T09:30:00Z"))
        try store.run(lee, .redeemVoucher(voucherID: "v1", boothID: "b1", saleID: "s1", saleAmount: cents(1250)))
        try store.run(max, .redeemVoucher(voucherID: "v2", boothID: "b2", saleID: "s2", saleAmount: cents(1000)))

        // Day 1, 10:00: the self-checkout.
        clock.set(time("2026-11-20T10:00:00Z"))
        try store.run(admin, .openStore(storeID: "s1", name: "Corner", currency: usd))
        try store.run(admin, .createItem(storeID: "s1", sku: lime, details: ItemDetails(description: "Lime", size: "each", departmentCode: "PROD")))
        try store.run(admin, .createItem(storeID: "s1", sku: newSoap, details: ItemDetails(description: "Soap (new look)", departmentCode: "HBA")))
        try store.run(admin, .createItem(storeID: "s1", sku: oldSoap, details: ItemDetails(description: "Soap", departmentCode: "HBA", supersededBy: newSoap)))
        try store.run(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: lime, price: cents(100), quantity: 3)))
        try store.run(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: newSoap, price: cents(249))))
        try store.run(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: oldSoap, price: cents(199))))
        let member = Actor(.member, "m1")
        try store.run(member, .registerMember(memberID: "m1", firstName: "Ada", lastName: "Lovelace", email: "ada@example.org", phone: nil))
        try store.run(member, .openCart(cartID: "k1", storeID: "s1", memberID: "m1"))
        try store.run(member, .scanItem(cartID: "k1", scannedInput: lime.value, quantity: 1))
        try store.run(member, .scanItem(cartID: "k1", scannedInput: lime.value, quantity: 3))
        try store.run(member, .scanItem(cartID: "k1", scannedInput: oldSoap.value, quantity: 1))
        clock.set(time("2026-11-20T10:05:00Z"))
        try store.run(member, .checkout(cartID: "k1", paymentTransactionID: "bt-1"))
        clock.set(time("2026-11-20T10:30:00Z"))
        try store.run(member, .openCart(cartID: "k2", storeID: "s1", memberID: "m1"))
        try store.run(member, .scanItem(cartID: "k2", scannedInput: lime.value, quantity: 1))

        // Day 1, 11:00: the web shop.
        clock.set(time("2026-11-20T11:00:00Z"))
        let customer = Actor(.customer, "u1")
        try store.run(admin, .createCategory(categoryID: "c1", name: "Kitchen", slug: "kitchen"))
        try store.run(admin, .createProduct(productID: "p1", name: "Kettle", slug: "kettle", description: "1.7 L", price: cents(1000), categoryID: "c1"))
        try store.run(admin, .receiveStock(productID: "p1", quantity: 5))
        try store.run(customer, .registerUser(userID: "u1", username: "una", email: "una@example.org", isAdmin: false))
        try store.run(customer, .placeOrder(orderID: "o1", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 2)]))
        try store.run(system, .confirmOrder(orderID: "o1"))
        try store.run(customer, .initiatePayment(paymentID: "pay1", orderID: "o1", amount: cents(2000), method: .mpesa))
        try store.run(system, .recordPaymentSucceeded(paymentID: "pay1", transactionID: "MP1"))
        try store.run(system, .markOrderPaid(orderID: "o1", paymentID: "pay1"))

        // Day 2: limes go up (after the sale), and a last booth sale.
        clock.set(time("2026-11-21T12:00:00Z"))
        try store.run(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: lime, priceType: 1, price: cents(50))))
        try store.run(lee, .redeemVoucher(voucherID: "v3", boothID: "b1", saleID: "s3", saleAmount: cents(400)))
    }
}

@Suite struct ReadModelTests {
    @Test func theSalesLogMatchesTheHandComputedFigures() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        let runner = try store.runner()
        try runner.catchUp(SalesLog())
        let db = try runner.openServing("sales")
        let sales = try db.read { db in
            try Row.fetchAll(db, sql: "SELECT channel, sale_id, voucher_id, buyer_email, booth_id, store_id, member_id, payment_transaction_id, amount_minor, day FROM sales ORDER BY position")
                .map { "\($0[0] as String) \($0[1] as String) \(($0[2] as String?) ?? "-") \(($0[3] as String?) ?? "-") \(($0[4] as String?) ?? "-") \(($0[5] as String?) ?? "-") \(($0[6] as String?) ?? "-") \(($0[7] as String?) ?? "-") \($0[8] as Int64) \($0[9] as String)" }
        }
        #expect(sales == [
            "booth s1 v1 ann@example.org b1 - - - 1250 2026-11-20",
            "booth s2 v2 bob@example.org b2 - - - 1000 2026-11-20",
            "checkout k1 - - - s1 m1 bt-1 383 2026-11-20",  // 1.34 of limes + 2.49 of soap
            "web o1 - - - - u1 MP1 2000 2026-11-20",
            "booth s3 v3 cat@example.org b1 - - - 400 2026-11-21",
        ])
        let revenue = try db.read { db in
            try Row.fetchAll(db, sql: "SELECT day, channel, location, sales, revenue_minor FROM revenue_daily ORDER BY day, channel, location")
                .map { "\($0[0] as String) \($0[1] as String) \($0[2] as String) \($0[3] as Int) \($0[4] as Int64)" }
        }
        #expect(revenue == ["2026-11-20 booth b1 1 1250", "2026-11-20 booth b2 1 1000", "2026-11-20 checkout s1 1 383",
                            "2026-11-20 web web 1 2000", "2026-11-21 booth b1 1 400"])
        // The seed's per-booth sales log.
        let boothLog = try db.read { db in
            try Row.fetchAll(db, sql: "SELECT sale_id, voucher_id, buyer_email, sale_amount_minor FROM booth_sales_log WHERE booth_id = 'b1' ORDER BY sale_date")
                .map { "\($0[0] as String) \($0[1] as String) \($0[2] as String) \($0[3] as Int64)" }
        }
        #expect(boothLog == ["s1 v1 ann@example.org 1250", "s3 v3 cat@example.org 400"])
        // Issued 25 + 10 + 5 + 7 = 47.00; redeemed three for 12.50 + 10.00 + 4.00; v4 (7.00) outstanding.
        let liability = try db.read { db in try Row.fetchOne(db, sql: "SELECT * FROM voucher_liability") }
        let row = try #require(liability)
        #expect(row["issued"] as Int == 4 && row["issued_value_minor"] as Int64 == 4700)
        #expect(row["redeemed"] as Int == 3 && row["redeemed_sales_minor"] as Int64 == 2650)
        #expect(row["outstanding"] as Int == 1 && row["outstanding_value_minor"] as Int64 == 700)
    }

    @Test func transactionsRecordThePriceAsChargedAndTheScannedInput() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        let runner = try store.runner()
        try runner.catchUp(Transactions())
        let db = try runner.openServing("transactions")
        let lines = try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT channel, transaction_id, member_id, store_id, scanned_input, sku, description, unit_price_minor, quantity,
                       applied_discounts_minor, pre_tax_total_minor, department_code, bogo, payment_transaction_id, purchase_date
                FROM transaction_lines ORDER BY position, line
                """).map { row in (0..<15).map { (row[$0] as DatabaseValue).description }.joined(separator: " ") }
        }
        #expect(lines == [
            // Four limes at "3 for $1": 0.34 + 0.34 + 0.32 + 0.34 = 1.34, unit 0.34, 0.02 off.
            #""checkout" "k1" "m1" "s1" "000000004048" "000000004048" "Lime" 34 4 2 134 "PROD" 0 "bt-1" "2026-11-20T10:05:00.000000Z""#,
            // The superseded soap: sold and reported as its replacement at 2.49, the scan kept.
            #""checkout" "k1" "m1" "s1" "000777000001" "000777000002" "Soap (new look)" 249 1 0 249 "HBA" 0 "bt-1" "2026-11-20T10:05:00.000000Z""#,
            #""web" "o1" "u1" "web" NULL "p1" "Kettle" 1000 2 0 2000 "c1" 0 "MP1" "2026-11-20T11:00:00.000000Z""#,
        ])
        // The later price is in the price history, labelled; the sale above kept 0.34.
        let prices = try db.read { try String.fetchAll($0, sql: "SELECT sku || ' ' || price_minor || ' ' || label FROM item_prices ORDER BY position") }
        #expect(prices == ["000000004048 100 3 for 1.00 USD", "000777000002 249 regular", "000777000001 199 regular",
                           "000000004048 50 promotion (type 1)"])
        #expect(try count(db, "SELECT COUNT(*) FROM open_orders") == 0)
    }

    @Test func memberActivityListsEveryActionAndSummarises() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        let runner = try store.runner()
        try runner.catchUp(MemberActivity())
        let db = try runner.openServing("members")
        let actions = try db.read { try String.fetchAll($0, sql: "SELECT action FROM activity WHERE kind = 'member' AND member_id = 'm1' ORDER BY position") }
        #expect(actions == ["MemberRegistered", "CartOpened", "CartItemAdded", "CartItemAdded", "CartItemAdded", "CartCheckedOut",
                            "CartOpened", "CartItemAdded"])
        let customer = try db.read { try String.fetchAll($0, sql: "SELECT action FROM activity WHERE kind = 'customer' AND member_id = 'u1' ORDER BY position") }
        #expect(customer == ["UserRegistered", "OrderPlaced", "OrderConfirmed", "PaymentInitiated", "PaymentSucceeded", "OrderPaid"])
        // k2 was last touched at 10:30 on day 1; the last event is day 2 at 12:00, over 24 hours later.
        let m1 = try #require(try db.read { try Row.fetchOne($0, sql: "SELECT * FROM member_summary WHERE kind = 'member' AND member_id = 'm1'") })
        #expect(m1["carts"] as Int == 2 && m1["checkouts"] as Int == 1 && m1["abandoned_carts"] as Int == 1)
        #expect(m1["first_seen"] as String == "2026-11-20T10:00:00.000000Z" && m1["last_seen"] as String == "2026-11-20T10:30:00.000000Z")
        let u1 = try #require(try db.read { try Row.fetchOne($0, sql: "SELECT * FROM member_summary WHERE kind = 'customer' AND member_id = 'u1'") })
        #expect(u1["orders"] as Int == 1 && u1["payments"] as Int == 1 && u1["abandoned_carts"] as Int == 0)
        let spent = try db.read { try String.fetchAll($0, sql: "SELECT kind || ' ' || member_id || ' ' || spent_minor || ' ' || currency FROM member_spending ORDER BY kind") }
        #expect(spent == ["customer u1 2000 USD", "member m1 383 USD"])
        // No personal value is in the read model: names and emails are not copied.
        let everything = try dump(db).values.flatMap { $0 }.joined(separator: "\n")
        for secret in ["Ada", "Lovelace", "ada@example.org", "una@example.org", "una"] { #expect(!everything.contains(secret), "\(secret)") }
    }

    /// Device sightings tie member ids together: each member's devices with first and last sighting and
    /// their count, and `shared_devices` the devices more than one id was seen on. The fingerprints are
    /// not in the read model, only their keyed digests.
    @Test func memberDevicesTieTheIdsSeenOnOneDevice() throws {
        let store = try TestStore()
        for id in ["m1", "m2", "m3"] {
            try store.run(Actor(.member, id), .registerMember(memberID: id, firstName: nil, lastName: nil, email: nil, phone: nil))
        }
        let sightings: [(String, String, String)] = [("m1", "phone-A", "10:00"), ("m2", "phone-A", "11:00"), ("m3", "phone-B", "12:00"),
                                                     ("m1", "phone-A", "13:00"), ("m1", "tablet-C", "14:00")]
        for (member, fingerprint, at) in sightings {
            store.clock.set(time("2026-11-20T\(at):00Z"))
            try store.run(Actor(.member, member), .recordMemberDevice(memberID: member, deviceFingerprint: fingerprint))
        }
        let runner = try store.runner()
        try runner.catchUp(MemberActivity())
        let db = try runner.openServing("members")
        let a = Claims.device("phone-A", secret: nil), b = Claims.device("phone-B", secret: nil), c = Claims.device("tablet-C", secret: nil)
        let devices = try db.read {
            try String.fetchAll($0, sql: "SELECT member_id || ' ' || device || ' ' || first_seen || ' ' || last_seen || ' ' || sightings FROM member_devices ORDER BY member_id, first_seen")
        }
        #expect(devices == ["m1 \(a) 2026-11-20T10:00:00.000000Z 2026-11-20T13:00:00.000000Z 2", "m1 \(c) 2026-11-20T14:00:00.000000Z 2026-11-20T14:00:00.000000Z 1",
                            "m2 \(a) 2026-11-20T11:00:00.000000Z 2026-11-20T11:00:00.000000Z 1", "m3 \(b) 2026-11-20T12:00:00.000000Z 2026-11-20T12:00:00.000000Z 1"])
        let shared = try db.read { try String.fetchAll($0, sql: "SELECT device || ' ' || members || ' ' || member_ids || ' ' || sightings FROM shared_devices") }
        #expect(shared == ["\(a) 2 m1 m2 3"])
        let actions = try db.read { try String.fetchAll($0, sql: "SELECT detail FROM activity WHERE action = 'MemberDeviceSeen' AND member_id = 'm1'") }
        #expect(actions == Array(repeating: "opened the app on a device", count: 3))
        // Where the app opened: the store, in the action's subject, so opens per store are one GROUP BY away.
        try store.run(admin, .openStore(storeID: "s1", name: "Corner", currency: .usd))
        try store.run(Actor(.member, "m3"), .recordMemberDevice(memberID: "m3", deviceFingerprint: "phone-B", storeID: "s1"))
        try runner.catchUp(MemberActivity())
        let opened = try db.read { try String.fetchAll($0, sql: "SELECT subject || ': ' || detail FROM activity WHERE action = 'MemberDeviceSeen' AND subject IS NOT NULL") }
        #expect(opened == ["s1: opened the app on a device at store s1"])
        let everything = try dump(db).values.flatMap { $0 }.joined(separator: "\n")
        for fingerprint in ["phone-A", "phone-B", "tablet-C"] { #expect(!everything.contains(fingerprint), "\(fingerprint)") }
    }

    /// Every revision of a shopping list is kept, line by line; `shopping_lists` holds the last, and
    /// `shopping_list_changes` says what each revision changed: SKUs added, recounted and dropped.
    /// Batches of 1 and the default: a list revised over several batches reads the same.
    @Test(arguments: [ProjectionRunner.batchPositionsDefault, 1])
    func everyRevisionOfAShoppingListIsKept(batch: UInt64) throws {
        let store = try TestStore()
        try store.run(Actor(.member, "m1"), .registerMember(memberID: "m1", firstName: nil, lastName: nil, email: nil, phone: nil))
        func line(_ value: String, _ quantity: Int) -> ShoppingListLine { ShoppingListLine(sku: sku(value), quantity: quantity) }
        let revisions: [[ShoppingListLine]] = [
            [line("000000004048", 6), line("000000000011", 1)],
            [line("000000004048", 4), line("000000000022", 2)],
            [],
            [line("000000000011", 3)],
        ]
        for (index, lines) in revisions.enumerated() {
            store.clock.set(time("2026-11-20T1\(index):00:00Z"))
            try store.run(Actor(.member, "m1"), .reviseShoppingList(listID: "weekly", memberID: "m1", lines: lines))
        }
        let runner = try store.runner([MemberActivity()], batch: batch)
        try runner.catchUp(MemberActivity())
        let db = try runner.openServing("members")
        let list = try db.read { try String.fetchAll($0, sql: "SELECT list_id || ' ' || member_id || ' ' || revision || ' ' || lines || ' ' || units || ' ' || created || ' ' || revised FROM shopping_lists") }
        #expect(list == ["weekly m1 4 1 3 2026-11-20T10:00:00.000000Z 2026-11-20T13:00:00.000000Z"])
        let lines = try db.read { try String.fetchAll($0, sql: "SELECT revision || ' ' || sku || ' ' || quantity FROM shopping_list_lines ORDER BY revision, sku") }
        #expect(lines == ["1 000000000011 1", "1 000000004048 6", "2 000000000022 2", "2 000000004048 4", "4 000000000011 3"])
        let changes = try db.read {
            try String.fetchAll($0, sql: "SELECT revision || ' ' || sku || ' ' || was || '→' || now FROM shopping_list_changes ORDER BY revision, sku")
        }
        #expect(changes == ["1 000000000011 0→1", "1 000000004048 0→6",
                            "2 000000000011 1→0", "2 000000000022 0→2", "2 000000004048 6→4",
                            "3 000000000022 2→0", "3 000000004048 4→0",
                            "4 000000000011 0→3"])
        let actions = try db.read { try String.fetchAll($0, sql: "SELECT detail FROM activity WHERE action = 'ShoppingListRevised' ORDER BY position") }
        #expect(actions == ["revised shopping list weekly: 2 lines, 7 units", "revised shopping list weekly: 2 lines, 6 units",
                            "cleared shopping list weekly", "revised shopping list weekly: 1 lines, 3 units"])
    }

    /// A paid order cancelled: the sales log keeps the sale and adds its refund, negative, so revenue is
    /// net; the customer's spending is net of it too; its transaction lines say they were refunded.
    /// Before, all three counted money the shop gave back.
    @Test func aPaidOrderCancelledIsRefundedInTheReadModels() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        store.clock.set(time("2026-11-21T13:00:00Z"))
        try store.run(admin, .cancelOrder(orderID: "o1", reason: "out of delivery area"))
        let runner = try store.runner()
        try runner.catchUp(SalesLog())
        try runner.catchUp(MemberActivity())
        try runner.catchUp(Transactions())
        // The order's lines stay in the historic transactions (they were bought), marked refunded.
        let lines = try runner.openServing("transactions").read {
            try Row.fetchAll($0, sql: "SELECT transaction_id, refunded_at FROM transaction_lines ORDER BY position, line")
        }
        #expect(lines.map { "\($0["transaction_id"] as String) \(($0["refunded_at"] as String?) ?? "-")" }
                == ["k1 -", "k1 -", "o1 2026-11-21T13:00:00.000000Z"])
        let sales = try runner.openServing("sales")
        let rows = try sales.read { try Row.fetchAll($0, sql: "SELECT kind, sale_id, amount_minor, payment_transaction_id FROM sales WHERE channel = 'web' ORDER BY position") }
        #expect(rows.map { [$0["kind"] as String, $0["sale_id"], String($0["amount_minor"] as Int64), $0["payment_transaction_id"]] }
                == [["sale", "o1", "2000", "MP1"], ["refund", "o1", "-2000", "MP1"]])
        let days = try sales.read { try Row.fetchAll($0, sql: "SELECT day, sales, refunds, revenue_minor FROM revenue_daily WHERE channel = 'web' ORDER BY day") }
        #expect(days.map { "\($0["day"] as String) \($0["sales"] as Int) \($0["refunds"] as Int) \($0["revenue_minor"] as Int)" }
                == ["2026-11-20 1 0 2000", "2026-11-21 0 1 -2000"])
        let spent = try runner.openServing("members").read {
            try Int64.fetchOne($0, sql: "SELECT spent_minor FROM member_spending WHERE kind = 'customer' AND member_id = 'u1'")
        }
        #expect(spent == 0)
    }

    /// A deposit that leaves with its bottles is not an action of its own: the activity says whose it was.
    @Test func aRemovalThatFollowsItsItemSaysSo() throws {
        let store = try TestStore()
        let beer = sku("000012345678"), deposit = sku("000000000010")
        try store.run(admin, .openStore(storeID: "s1", name: "Corner", currency: usd))
        try store.run(admin, .createItem(storeID: "s1", sku: deposit, details: ItemDetails(description: "Bottle deposit")))
        try store.run(admin, .createItem(storeID: "s1", sku: beer, details: ItemDetails(description: "Lager", linkedSKU: deposit)))
        let member = Actor(.member, "m1")
        try store.run(member, .registerMember(memberID: "m1", firstName: nil, lastName: nil, email: nil, phone: nil))
        try store.run(member, .openCart(cartID: "k1", storeID: "s1", memberID: "m1"))
        try store.run(member, .scanItem(cartID: "k1", scannedInput: beer.value, quantity: 2))
        try store.run(member, .removeItem(cartID: "k1", sku: beer, quantity: 1))
        let runner = try store.runner()
        try runner.catchUp(MemberActivity())
        let details = try runner.openServing("members").read {
            try String.fetchAll($0, sql: "SELECT detail FROM activity WHERE action = 'CartItemRemoved' ORDER BY position")
        }
        #expect(details == ["removed 1 × 000012345678", "removed 1 × 000000000010 (with 000012345678)"])
    }

    /// An `IN` list of three or more values in a check makes SQLite build a temporary B-tree every time
    /// a row is inserted: that was 7% of a rebuild's instructions (callgrind) until `sales` wrote its
    /// check as comparisons. No read model's insert may build one.
    @Test func insertingIntoAReadModelBuildsNoTemporaryTable() throws {
        for projector in [SalesLog(), MemberActivity(), Transactions()] as [any Projector] {
            let queue = try DatabaseQueue()
            try queue.write { db in
                try projector.createSchema(db)
                try projector.createQueryIndexes(db)
                let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
                #expect(tables.count >= 3, "\(projector.name)")
                for table in tables {
                    let program = try Row.fetchAll(db, sql: "EXPLAIN INSERT INTO \(table) DEFAULT VALUES").map { $0["opcode"] as String }
                    #expect(program.contains("Insert") || program.contains("IdxInsert"), "\(projector.name).\(table)")
                    #expect(!program.contains("OpenEphemeral"), "\(projector.name).\(table)")
                }
            }
        }
    }

    /// Ids are their bytes, as SQLite's keys are: "café" written with "é" (NFC) and with "e" and a
    /// combining accent (NFD) are two people in the read model, whatever the batches (Swift's `==`
    /// takes them as one, and so did the batches' maps). Commands take every text in NFC, so the NFD
    /// form is appended here as a log written by `tally append`, or before that rule, can hold it.
    @Test func peopleAreToldApartByTheBytesOfTheirIds() throws {
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        let store = try TestStore()
        try HandScenario.record(store)
        try store.run(Actor(.member, composed), .registerMember(memberID: composed, firstName: nil, lastName: nil, email: nil, phone: nil))
        try store.run(Actor(.member, composed), .openCart(cartID: "kx0", storeID: "s1", memberID: composed))
        let opened = Data("{\"cartID\":\"kx1\",\"memberID\":\"\(decomposed)\",\"storeID\":\"s1\"}".utf8)
        try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: CheckoutStreams.cart("kx1"), type: CartOpened.eventType,
                                                                  actor: "member:\(decomposed)", payload: opened)]))
        var tables: [[String: [String]]] = []
        for batch in [ProjectionRunner.batchPositionsDefault, 1] {
            let runner = try store.runner([MemberActivity()], directory: testPath("members-\(batch)"), batch: batch)
            try runner.catchUp(MemberActivity())
            let db = try runner.openServing("members")
            let rows = try db.read { db in
                try Row.fetchAll(db, sql: "SELECT member_id, actions, carts FROM members WHERE member_id LIKE 'caf%' ORDER BY member_id")
            }
            #expect(rows.map { Array(($0["member_id"] as String).utf8) } == [Array(decomposed.utf8), Array(composed.utf8)], "batch \(batch)")
            #expect(rows.map { $0["actions"] as Int } == [1, 2] && rows.map { $0["carts"] as Int } == [1, 1], "batch \(batch)")
            tables.append(try dump(db))
        }
        #expect(tables[0] == tables[1])
    }

    /// `members` carries the owners of open carts and of orders from one batch to the next: whatever
    /// the batches' size, one catch-up writes the same tables (batches of 1 carry at every event).
    @Test func membersWritesTheSameTablesWhateverItsBatchesCarry() throws {
        let store = try TestStore(start: "2026-11-20T08:00:00Z")
        var driver = DemoDriver(commerce: store.commerce, seed: 11, clock: store.clock)
        try driver.run(untilEvents: 4000) { _ in }
        var tables: [[String: [String]]] = []
        for batch: UInt64 in [ProjectionRunner.batchPositionsDefault, 1, 7, 250] {
            let runner = try store.runner([MemberActivity()], directory: testPath("members-carry-\(batch)"), batch: batch)
            try runner.catchUp(MemberActivity())
            tables.append(try dump(try runner.openServing("members")))
        }
        #expect(tables[0]["carts"]?.isEmpty == false && tables[0]["activity"]?.isEmpty == false)
        for index in 1..<tables.count {
            #expect(tables[index] == tables[0], "differs in \(tables[0].keys.filter { tables[0][$0] != tables[index][$0] }.sorted())")
        }
    }

    @Test func rebuildingFromZeroGivesTheTablesIncrementalApplicationGave() throws {
        let store = try TestStore(start: "2026-11-20T08:00:00Z")
        // Small batches, caught up after every window of commands: many checkpoints at arbitrary places.
        let incremental = try store.runner(batch: 97)
        var driver = DemoDriver(commerce: store.commerce, seed: 7, clock: store.clock)
        var snapshots: [(position: UInt64, tables: [String: [String: [String]]])] = []
        var windows = 0
        try driver.run(untilEvents: 6000) { _ in
            windows += 1
            let results = incremental.catchUpAll()
            for (name, result) in results { #expect(throws: Never.self, "\(name)") { _ = try result.get() } }
            if windows % 25 == 0 {
                let position = try store.log.head().position
                var tables: [String: [String: [String]]] = [:]
                for projector in allProjectors { tables[projector.name] = try dump(try incremental.openServing(projector.name)) }
                snapshots.append((position, tables))
            }
        }
        #expect(snapshots.count >= 2)
        let rebuilt = try store.runner(directory: testPath("rebuilt"))
        for projector in allProjectors {
            let fromZero = try rebuilt.rebuild(projector)
            #expect(fromZero.checkpoint == (try store.log.head().position))
            let a = try dump(try incremental.openServing(projector.name)), b = try dump(try rebuilt.openServing(projector.name))
            #expect(a == b, "\(projector.name) differs in \(a.keys.filter { a[$0] != b[$0] }.sorted())")
            #expect(a.values.contains { !$0.isEmpty }, "\(projector.name) is empty")
            // As of a past position: exactly the tables the incremental read model had then.
            for snapshot in snapshots {
                let path = try rebuilt.buildAsOf(projector, position: snapshot.position)
                let asOf = try dump(try rebuilt.openFile(path))
                #expect(asOf == snapshot.tables[projector.name], "\(projector.name) as of \(snapshot.position) differs in \(asOf.keys.filter { asOf[$0] != snapshot.tables[projector.name]?[$0] }.sorted())")
            }
        }
    }

    /// `members` adds up each person's summary over a batch and writes it when the batch finishes. An
    /// event it cannot apply in the middle of a batch (an item for a cart never opened) stops the build
    /// just before it, and what the events before it added up is there, as an as-of build to the same
    /// position has it.
    @Test func aMemberBatchCutShortByABadEventKeepsWhatCameBeforeIt() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        let ghost = try store.log.append(AppendRequest(stream: "cart-ghost", events: [ProposedEvent(
            id: UUID(), stream: "cart-ghost", type: CartItemAdded.eventType, actor: "member:m1",
            payload: Data(#"{"cartID":"ghost","scannedInput":"000000004048","sku":"000000004048","quantity":1}"#.utf8))])).positions[0]
        try store.run(Actor(.member, "m2"), .registerMember(memberID: "m2", firstName: "Bo", lastName: "Ek", email: "bo@example.org", phone: nil))
        let runner = try store.runner([MemberActivity()])
        #expect(throws: ProjectionError.self) { try runner.catchUp(MemberActivity()) }
        let status = try #require(try runner.status().first { $0.name == "members" })
        #expect(status.state == .failed && status.buildCheckpoint == ghost - 1)
        // The tables' rows, not their schema: the as-of build is complete, so it also has the query indexes.
        var built = try dump(runner.openFile(try #require(status.buildFile)))
        var asOf = try dump(runner.openFile(try runner.buildAsOf(MemberActivity(), position: ghost - 1)))
        built["(schema)"] = nil
        asOf["(schema)"] = nil
        #expect(built == asOf, "differs in \(built.keys.filter { built[$0] != asOf[$0] }.sorted())")
        #expect(built["members"]?.count == 2, "m1 and u1 are summarised")
        #expect(built["member_spending"]?.count == 2)
    }

    @Test func aProjectorThatThrowsStopsAtItsLastGoodEventAndTheOthersGoOn() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        let failing = Failing(onNth: 2, of: VoucherRedeemed.eventType)
        let runner = try store.runner([SalesLog(), failing])
        let results = runner.catchUpAll()
        #expect(throws: Never.self) { _ = try results["sales"]?.get() }
        let redeemed = try store.log.read(ReadQuery(.type(VoucherRedeemed.eventType))).map(\.position)
        let badPosition = redeemed[1]
        #expect {
            _ = try results["failing"]!.get()
        } throws: { error in
            (error as? ProjectionError) == .failed(name: "failing", position: badPosition, type: VoucherRedeemed.eventType, cause: "refused on purpose")
        }
        // Its read model never switched in (a first build failed), and its build stopped just before the bad event.
        let status = try #require(try runner.status().first { $0.name == "failing" })
        #expect(status.state == .failed && status.buildCheckpoint == badPosition - 1)
        #expect(status.failure?.contains("position \(badPosition) (VoucherRedeemed): refused on purpose") == true)
        let build = try runner.openFile(try #require(status.buildFile))
        #expect(try count(build, "SELECT COUNT(*) FROM seen") == 1)
        let sales = try #require(try runner.status().first { $0.name == "sales" })
        #expect(sales.state == .current)
    }

    /// Totals past 2^63 − 1 minor units, from amounts the rules accept one by one: in one batch (the
    /// projector's own sum) or over several (the read model's column, which SQLite would turn into a
    /// float). Either way the read model stops at the sale or payment that passed it, and the process
    /// goes on (a plain `+` stopped it with a trap). Batches of 2 put the two sales, and the two
    /// payments, in different batches of two events each: the failing batch is applied again an event
    /// at a time to find its event.
    @Test(arguments: [ProjectionRunner.batchPositionsDefault, 2])
    func aTotalPastSixtyFourBitsStopsTheReadModelAtItsEvent(batch: UInt64) throws {
        let store = try TestStore()
        let huge = cents(Int64.max / 2 + 1)
        try store.run(admin, .registerBooth(boothID: "b1", name: "Gold", location: "Vault"))
        try store.run(admin, .assignOperator(boothID: "b1", operatorID: "lee", operatorName: "Lee Kim"))
        let customer = Actor(.customer, "u1")
        try store.run(admin, .createCategory(categoryID: "c1", name: "Bullion", slug: "bullion"))
        try store.run(admin, .createProduct(productID: "p1", name: "Bar", slug: "bar", description: "1 t", price: huge, categoryID: "c1"))
        try store.run(admin, .receiveStock(productID: "p1", quantity: 5))
        try store.run(customer, .registerUser(userID: "u1", username: "una", email: "una@example.org", isAdmin: false))
        var payments: [UInt64] = []
        for index in 1...2 {
            try store.run(admin, .issueVoucher(voucherID: "v\(index)", amount: huge, buyerEmail: "ann@example.org"))
            try store.run(customer, .placeOrder(orderID: "o\(index)", userID: "u1", lines: [OrderRequestLine(productID: "p1", quantity: 1)]))
            try store.run(customer, .initiatePayment(paymentID: "pay\(index)", orderID: "o\(index)", amount: huge, method: .mpesa))
            payments.append(try #require(store.run(system, .recordPaymentSucceeded(paymentID: "pay\(index)", transactionID: "MP\(index)")).last))
        }
        let sales = try (1...2).map { index in try #require(store.run(lee, .redeemVoucher(voucherID: "v\(index)", boothID: "b1", saleID: "s\(index)", saleAmount: huge)).last) }
        let runner = try store.runner([SalesLog(), MemberActivity(), Transactions()], batch: batch)
        let results = runner.catchUpAll()
        func stopped(_ name: String) -> ProjectionError? {
            if case .failure(let error) = results[name] { error as? ProjectionError } else { nil }
        }
        guard case .failed(_, let salePosition, let saleType, let saleCause) = stopped("sales") else { Issue.record("sales: \(String(describing: results["sales"]))"); return }
        #expect(salePosition == sales[1] && saleType == SaleRecorded.eventType, "\(saleCause)")
        guard case .failed(_, let paymentPosition, _, let paymentCause) = stopped("members") else { Issue.record("members: \(String(describing: results["members"]))"); return }
        #expect(paymentPosition == payments[1], "\(paymentCause)")
        if batch == ProjectionRunner.batchPositionsDefault {
            #expect(saleCause == #"the revenue of "b1" (booth) on 2026-11-20 in USD passes 9223372036854775807 minor units, the most a 64-bit integer holds"#)
            #expect(paymentCause == #"the spending of customer "u1" in USD passes 9223372036854775807 minor units, the most a 64-bit integer holds"#)
        } else {
            #expect(saleCause.contains("CHECK constraint failed") && paymentCause.contains("CHECK constraint failed"), "\(saleCause) / \(paymentCause)")
        }
        #expect(throws: Never.self) { _ = try results["transactions"]?.get() }
        // What was kept is everything before the event, in integers.
        let statuses = try Dictionary(uniqueKeysWithValues: runner.status().map { ($0.name, $0) })
        #expect(statuses["sales"]?.buildCheckpoint == sales[1] - 1 && statuses["members"]?.buildCheckpoint == payments[1] - 1)
        let build = try runner.openFile(try #require(statuses["sales"]?.buildFile))
        #expect(try build.read { try String.fetchOne($0, sql: "SELECT group_concat(typeof(revenue_minor)) FROM revenue_daily") } == "integer")
    }

    /// A batch that fails at an event (here one that does not decode) keeps the events before it; if
    /// those fail together at their batch's end (a total past 64 bits with the rows already written),
    /// the one that did is found an event at a time and the read model stops there instead.
    @Test func eventsBeforeAFailureThatFailAtTheirBatchsEndAreFoundOneByOne() throws {
        let store = try TestStore()
        let huge = cents(Int64.max / 2 + 1)
        try store.run(admin, .registerBooth(boothID: "b1", name: "Gold", location: "Vault"))
        try store.run(admin, .assignOperator(boothID: "b1", operatorID: "lee", operatorName: "Lee Kim"))
        for index in 1...2 { try store.run(admin, .issueVoucher(voucherID: "v\(index)", amount: huge, buyerEmail: "ann@example.org")) }
        try store.run(lee, .redeemVoucher(voucherID: "v1", boothID: "b1", saleID: "s1", saleAmount: huge))
        let runner = try store.runner([SalesLog()])
        _ = try runner.catchUp(SalesLog())
        let second = try #require(store.run(lee, .redeemVoucher(voucherID: "v2", boothID: "b1", saleID: "s2", saleAmount: huge)).last)
        _ = try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "sale-x", type: SaleRecorded.eventType, payload: Data("{}".utf8))]))
        #expect {
            _ = try runner.catchUp(SalesLog())
        } throws: { error in
            guard case .failed(_, let position, let type, let cause) = error as? ProjectionError else { return false }
            return position == second && type == SaleRecorded.eventType && cause.contains("CHECK constraint failed")
        }
        let status = try #require(try runner.status().first)
        #expect(status.checkpoint == second - 1)
    }

    @Test func rebuildingAllAtOnceSwitchesInEveryOneThatSucceeds() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        let head = try store.log.head().position
        let runner = try store.runner([SalesLog(), Failing(onNth: 1, of: VoucherRedeemed.eventType), MemberActivity()])
        let results = runner.rebuildAll()
        #expect(results.count == 3)
        #expect(try results["sales"]?.get().checkpoint == head)
        #expect(try results["members"]?.get().checkpoint == head)
        #expect(throws: ProjectionError.self) { _ = try results["failing"]?.get() }
        let states = try Dictionary(uniqueKeysWithValues: runner.status().map { ($0.name, $0.state) })
        #expect(states == ["sales": .current, "members": .current, "failing": .failed])
    }
}

/// A projector that refuses the n-th event of a type.
struct Failing: Projector {
    let name = "failing"
    let version = 1
    let eventTypes: Set<String>
    let nth: Int
    init(onNth nth: Int, of type: String) {
        self.nth = nth
        eventTypes = [type]
    }
    func createSchema(_ db: Database) throws { try db.execute(sql: "CREATE TABLE seen (position INTEGER PRIMARY KEY)") }
    func apply(_ event: ProjectedEvent, _ db: Database) throws {
        if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM seen") == nth - 1 { throw ProjectionError.inconsistent("refused on purpose") }
        try db.execute(sql: "INSERT INTO seen VALUES (?)", arguments: [Int64(event.position)])
    }
}

extension EventReader {
    func map<T>(_ transform: (RecordedEvent) -> T) throws -> [T] {
        var reader = self
        var result: [T] = []
        try reader.forEach { result.append(transform($0)) }
        return result
    }
}
