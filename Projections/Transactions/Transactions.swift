import Foundation
import GRDB
import TallyDomain
import TallyProjection

/// Historic transactions: one row per purchased line, with the fields of the self-checkout seed's
/// `Transaction` table, for self-checkouts and paid web orders alike. Each line holds what was
/// charged then (the checkout and order events record it), never today's price.
///
/// - `transaction_lines`: keyed by (log position of the purchase, line number).
/// - `item_prices`: every price record scheduled, with its label (schema 2 of `PriceScheduled`;
///   version 1 records get theirs from the upcaster), so an analyst can see which layer applied.
/// - `open_orders`: web orders placed and not yet paid or cancelled (their lines become
///   transactions when paid).
public struct Transactions: Projector {
    public let name = "transactions"
    public let version = 1
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
                PRIMARY KEY (position, line)
            ) WITHOUT ROWID;
            CREATE INDEX lines_by_member ON transaction_lines (member_id, purchase_date_us);
            CREATE INDEX lines_by_store ON transaction_lines (store_id, purchase_date_us);
            CREATE INDEX lines_by_sku ON transaction_lines (sku);
            CREATE INDEX lines_by_time ON transaction_lines (purchase_date_us);

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
            CREATE INDEX prices_by_item ON item_prices (store_id, sku);

            CREATE TABLE open_orders (
                order_id TEXT PRIMARY KEY,
                member_id TEXT NOT NULL,
                lines TEXT NOT NULL
            ) WITHOUT ROWID;
            """)
    }

    public func apply(_ event: ProjectedEvent, _ db: Database) throws {
        switch event.type {
        case CartCheckedOut.eventType:
            let checkout = try event.decode(CartCheckedOut.self)
            for (index, line) in checkout.lines.enumerated() {
                try insertLine(db, event, line: index + 1, channel: "checkout", transactionID: checkout.cartID, memberID: checkout.memberID,
                               storeID: checkout.storeID, scannedInput: line.scannedInput, sku: line.sku.value, description: line.description,
                               size: line.size, unitPrice: line.unitPrice, quantity: line.quantity, appliedDiscounts: line.appliedDiscounts,
                               preTaxTotal: line.preTaxTotal, taxable: line.taxable, departmentCode: line.departmentCode, bogo: line.bogo,
                               paymentTransactionID: checkout.paymentTransactionID)
            }

        case OrderPlaced.eventType:
            let order = try event.decode(OrderPlaced.self)
            // Sorted keys: the same order gives the same bytes, so a rebuild gives identical tables.
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let lines = String(decoding: try encoder.encode(order.lines), as: UTF8.self)
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO open_orders (order_id, member_id, lines) VALUES (?, ?, ?)")
                .execute(arguments: [order.orderID, order.userID, lines])

        case OrderPaid.eventType:
            let paid = try event.decode(OrderPaid.self)
            guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT member_id, lines FROM open_orders WHERE order_id = ?"),
                                             arguments: [paid.orderID]) else {
                throw ProjectionError.inconsistent("order \(paid.orderID) was paid but is not an open order")
            }
            let linesJSON: String = row["lines"]
            let lines = try JSONDecoder().decode([OrderLine].self, from: Data(linesJSON.utf8))
            for (index, line) in lines.enumerated() {
                // A web order has no scanner, store, size or tax flag: the product is the SKU, its category the department.
                try insertLine(db, event, line: index + 1, channel: "web", transactionID: paid.orderID, memberID: row["member_id"], storeID: "web",
                               scannedInput: nil, sku: line.productID, description: line.name, size: nil, unitPrice: line.unitPrice,
                               quantity: line.quantity, appliedDiscounts: line.appliedDiscounts, preTaxTotal: line.preTaxTotal, taxable: nil,
                               departmentCode: line.categoryID, bogo: false, paymentTransactionID: paid.transactionID)
            }
            try db.cachedStatement(sql: "DELETE FROM open_orders WHERE order_id = ?").execute(arguments: [paid.orderID])

        case OrderCancelled.eventType:
            let cancelled = try event.decode(OrderCancelled.self)
            try db.cachedStatement(sql: "DELETE FROM open_orders WHERE order_id = ?").execute(arguments: [cancelled.orderID])

        case PriceScheduled.eventType:
            let scheduled = try event.decode(PriceScheduled.self)
            let price = scheduled.price
            try db.cachedStatement(sql: """
                INSERT INTO item_prices (position, store_id, sku, price_start, price_end, price_type, price_minor, currency, quantity, taxable, bogo, label)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [Int64(event.position), scheduled.storeID, price.sku.value, price.start?.iso8601, price.end?.iso8601,
                                         price.priceType, price.price.minor, price.price.currency.code, price.quantity, price.taxable,
                                         price.bogo, price.label])

        default:
            break
        }
    }

    private func insertLine(_ db: Database, _ event: ProjectedEvent, line: Int, channel: String, transactionID: String, memberID: String,
                            storeID: String, scannedInput: String?, sku: String, description: String, size: String?, unitPrice: Money,
                            quantity: Int, appliedDiscounts: Money, preTaxTotal: Money, taxable: Bool?, departmentCode: String?, bogo: Bool,
                            paymentTransactionID: String) throws {
        try db.cachedStatement(sql: """
            INSERT INTO transaction_lines (position, line, channel, transaction_id, member_id, store_id, scanned_input, sku, description, size,
                unit_price_minor, quantity, applied_discounts_minor, pre_tax_total_minor, currency, taxable, department_code,
                purchase_date, purchase_date_us, bogo, payment_transaction_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [Int64(event.position), line, channel, transactionID, memberID, storeID, scannedInput, sku, description, size,
                                     unitPrice.minor, quantity, appliedDiscounts.minor, preTaxTotal.minor, unitPrice.currency.code, taxable,
                                     departmentCode, event.recordedAtISO, event.recordedAt.microsecondsSinceEpoch, bogo, paymentTransactionID])
    }
}
