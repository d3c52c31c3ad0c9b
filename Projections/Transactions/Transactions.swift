import Foundation
import GRDB
import TallyDomain
import TallyLog
import TallyProjection

/// Historic transactions: one row per purchased line, with the fields of the self-checkout seed's
/// `Transaction` table, for self-checkouts and paid web orders alike. Each line holds what was
/// charged then (the checkout and order events record it), never today's price.
///
/// - `transaction_lines`: keyed by (log position of the purchase, line number).
/// - `item_prices`: every price record scheduled, with its label (schema 2 of `PriceScheduled`;
///   version 1 records get theirs from the upcaster), so an analyst can see which layer applied.
/// - `open_orders`: web orders placed and not yet paid or cancelled (their lines become
///   transactions when paid); `paid_orders`: where each paid web order's lines are.
/// A paid web order cancelled keeps its lines (they were bought) with `refunded_at` set: sums of
/// what was kept leave those out.
public struct Transactions: Projector {
    public let name = "transactions"
    /// 2: `transaction_lines.refunded_at` for a paid web order cancelled, and `paid_orders`.
    public let version = 2
    public let eventTypes: Set<String> = [
        CartCheckedOut.eventType, OrderPlaced.eventType, OrderPaid.eventType, OrderCancelled.eventType, PriceScheduled.eventType,
    ]

    public init() {}

    public func createSchema(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE transaction_lines (
                position INTEGER NOT NULL,
                line INTEGER NOT NULL,
                channel TEXT NOT NULL CHECK (channel IN ('checkout', 'web')),
                transaction_id TEXT NOT NULL,
                member_id TEXT NOT NULL,
                store_id TEXT NOT NULL,
                scanned_input TEXT,
                sku TEXT NOT NULL,
                description TEXT NOT NULL,
                size TEXT,
                unit_price_minor INTEGER NOT NULL,
                quantity INTEGER NOT NULL,
                applied_discounts_minor INTEGER NOT NULL,
                pre_tax_total_minor INTEGER NOT NULL,
                currency TEXT NOT NULL,
                taxable INTEGER,
                department_code TEXT,
                purchase_date TEXT NOT NULL,
                purchase_date_us INTEGER NOT NULL,
                bogo INTEGER NOT NULL,
                payment_transaction_id TEXT,
                refunded_at TEXT,
                PRIMARY KEY (position, line)
            ) WITHOUT ROWID;

            CREATE TABLE item_prices (
                position INTEGER PRIMARY KEY,
                store_id TEXT NOT NULL,
                sku TEXT NOT NULL,
                price_start TEXT,
                price_end TEXT,
                price_type INTEGER NOT NULL,
                price_minor INTEGER NOT NULL,
                currency TEXT NOT NULL,
                quantity INTEGER NOT NULL,
                taxable INTEGER NOT NULL,
                bogo INTEGER NOT NULL,
                label TEXT NOT NULL
            );

            CREATE TABLE open_orders (
                order_id TEXT PRIMARY KEY,
                member_id TEXT NOT NULL,
                lines TEXT NOT NULL
            ) WITHOUT ROWID;

            CREATE TABLE paid_orders (
                order_id TEXT PRIMARY KEY,
                position INTEGER NOT NULL
            ) WITHOUT ROWID;
            """)
    }

    public func createQueryIndexes(_ db: Database) throws {
        try db.execute(sql: """
            CREATE INDEX IF NOT EXISTS lines_by_member ON transaction_lines (member_id, purchase_date_us);
            CREATE INDEX IF NOT EXISTS lines_by_store ON transaction_lines (store_id, purchase_date_us);
            CREATE INDEX IF NOT EXISTS lines_by_sku ON transaction_lines (sku);
            CREATE INDEX IF NOT EXISTS lines_by_time ON transaction_lines (purchase_date_us);
            CREATE INDEX IF NOT EXISTS prices_by_item ON item_prices (store_id, sku);
            """)
    }

    public func apply(_ event: ProjectedEvent, _ db: Database) throws {
        let json = try event.json()
        switch event.type {
        case CartCheckedOut.eventType:
            let cartID = try json.string("cartID"), memberID = try json.string("memberID"), storeID = try json.string("storeID")
            let paymentTransactionID = try json.string("paymentTransactionID")
            var number = 0
            try json.required("lines").forEachElement { line in
                number += 1
                try insertLine(db, event, line: number, channel: "checkout", transactionID: cartID, memberID: memberID, storeID: storeID,
                               scannedInput: try line.string("scannedInput"), sku: try line.string("sku"), description: try line.string("description"),
                               size: try line.optionalString("size"), unitPrice: try line.money("unitPrice"), quantity: try line.int("quantity"),
                               appliedDiscounts: try line.money("appliedDiscounts"), preTaxTotal: try line.money("preTaxTotal"),
                               taxable: try line.bool("taxable"), departmentCode: try line.optionalString("departmentCode"),
                               bogo: try line.bool("bogo"), paymentTransactionID: paymentTransactionID)
            }

        case OrderPlaced.eventType:
            // The lines as they were written (canonical JSON), until the order is paid.
            let orderID = try json.string("orderID"), userID = try json.string("userID"), lines = try json.required("lines").rawText
            try db.run("INSERT OR REPLACE INTO open_orders (order_id, member_id, lines) VALUES (?, ?, ?)") {
                $0.bind(orderID); $0.bind(userID); $0.bind(lines)
            }

        case OrderPaid.eventType:
            let orderID = try json.string("orderID")
            guard let order = try db.firstRow("SELECT member_id, lines FROM open_orders WHERE order_id = ?", { $0.bind(orderID) },
                                              { (member: $0.text(0), lines: $0.text(1)) }),
                  let memberID = order.member, var linesText = order.lines else {
                throw ProjectionError.inconsistent("order \(orderID) was paid but is not an open order")
            }
            let transactionID = try json.string("transactionID")
            try linesText.withUTF8 { bytes in
                var number = 0
                try JSONView(document: UnsafeRawBufferPointer(bytes)).forEachElement { line in
                    number += 1
                    // A web order has no scanner, store, size or tax flag: the product is the SKU, its category the department.
                    try insertLine(db, event, line: number, channel: "web", transactionID: orderID, memberID: memberID, storeID: "web",
                                   scannedInput: nil, sku: try line.string("productID"), description: try line.string("name"), size: nil,
                                   unitPrice: try line.money("unitPrice"), quantity: try line.int("quantity"),
                                   appliedDiscounts: try line.money("appliedDiscounts"), preTaxTotal: try line.money("preTaxTotal"), taxable: nil,
                                   departmentCode: try line.string("categoryID"), bogo: false, paymentTransactionID: transactionID)
                }
            }
            try db.run("DELETE FROM open_orders WHERE order_id = ?") { $0.bind(orderID) }
            try db.run("INSERT OR REPLACE INTO paid_orders (order_id, position) VALUES (?, ?)") { $0.bind(orderID); $0.bind(Int64(event.position)) }

        case OrderCancelled.eventType:
            let orderID = try json.string("orderID")
            try db.run("DELETE FROM open_orders WHERE order_id = ?") { $0.bind(orderID) }
            // A paid order cancelled: its lines stay (they were bought) and say they were refunded.
            if let refund = try json.member("refundDue"), !refund.isNull {
                try db.run("UPDATE transaction_lines SET refunded_at = ? WHERE position = (SELECT position FROM paid_orders WHERE order_id = ?)") {
                    $0.bind(event.recordedAtISO); $0.bind(orderID)
                }
                guard db.changesCount > 0 else { throw ProjectionError.inconsistent("order \(orderID) was refunded but its lines were never paid") }
            }

        case PriceScheduled.eventType:
            let price = try json.required("price").indexed()  // nine members, eight of them read
            let amount = try price.money("price")
            let start = try price.member("start").flatMap { $0.isNull ? nil : Timestamp(microsecondsSinceEpoch: try $0.int64()) }
            let end = try price.member("end").flatMap { $0.isNull ? nil : Timestamp(microsecondsSinceEpoch: try $0.int64()) }
            let storeID = try json.string("storeID"), sku = try price.string("sku"), priceType = try price.int("priceType")
            let quantity = try price.int("quantity"), taxable = try price.bool("taxable"), bogo = try price.bool("bogo")
            let label = try price.string("label")
            try db.run("""
                INSERT INTO item_prices (position, store_id, sku, price_start, price_end, price_type, price_minor, currency, quantity, taxable, bogo, label)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """) {
                $0.bind(Int64(event.position)); $0.bind(storeID); $0.bind(sku); $0.bind(start?.iso8601); $0.bind(end?.iso8601)
                $0.bind(priceType); $0.bind(amount.minor); $0.bind(amount.currency.code); $0.bind(quantity); $0.bind(taxable)
                $0.bind(bogo); $0.bind(label)
            }

        default:
            break
        }
    }

    private func insertLine(_ db: Database, _ event: ProjectedEvent, line: Int, channel: String, transactionID: String, memberID: String,
                            storeID: String, scannedInput: String?, sku: String, description: String, size: String?, unitPrice: Money,
                            quantity: Int, appliedDiscounts: Money, preTaxTotal: Money, taxable: Bool?, departmentCode: String?, bogo: Bool,
                            paymentTransactionID: String) throws {
        try db.run("""
            INSERT INTO transaction_lines (position, line, channel, transaction_id, member_id, store_id, scanned_input, sku, description, size,
                unit_price_minor, quantity, applied_discounts_minor, pre_tax_total_minor, currency, taxable, department_code,
                purchase_date, purchase_date_us, bogo, payment_transaction_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """) {
            $0.bind(Int64(event.position)); $0.bind(line); $0.bind(channel); $0.bind(transactionID); $0.bind(memberID); $0.bind(storeID)
            $0.bind(scannedInput); $0.bind(sku); $0.bind(description); $0.bind(size); $0.bind(unitPrice.minor); $0.bind(quantity)
            $0.bind(appliedDiscounts.minor); $0.bind(preTaxTotal.minor); $0.bind(unitPrice.currency.code); $0.bind(taxable)
            $0.bind(departmentCode); $0.bind(event.recordedAtISO); $0.bind(event.recordedAt.microsecondsSinceEpoch); $0.bind(bogo)
            $0.bind(paymentTransactionID)
        }
    }
}
