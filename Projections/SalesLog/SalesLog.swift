import GRDB
import OrderedCollections
import TallyDomain
import TallyLog
import TallyProjection

/// The sales log: every sale on every channel (a voucher redeemed at a fair booth, a paid web order,
/// a self-checkout), revenue per booth or store by day, and the fair's voucher liability.
///
/// Tables (amounts in integer minor units with their currency; times as ISO 8601 UTC text and as
/// microseconds since the epoch):
/// - `sales`: one row per sale, keyed by the log position of the event that made it a sale; a paid web
///   order cancelled adds a `refund` row of the amount owed back, negative, so sums are net.
/// - `revenue_daily`: sales and refunds counted, and revenue net of refunds, per day, channel, location
///   (booth, store or "web") and currency.
/// - `vouchers`: every voucher issued, and its redemption.
/// - `booths`, `web_orders`: what sales refer to.
/// - views `booth_sales_log` (the seed's per-booth sales-log query) and `voucher_liability`
///   (issued, redeemed and outstanding vouchers per currency).
public struct SalesLog: BatchingProjector {
    public let name = "sales"
    /// 2: the `sales.channel` check written as comparisons (the same rule), see `createSchema`.
    /// 3: `revenue_daily.revenue_minor` must stay an integer: SQLite turns a sum past 2^63 into a float.
    /// 4: refunds of paid web orders cancelled: `sales.kind`, `revenue_daily.refunds`, revenue net of them.
    public let version = 4
    /// The buyer's email of each voucher sale.
    public let holdsPersonalData = true
    public let eventTypes: Set<String> = [
        BoothRegistered.eventType, VoucherIssued.eventType, VoucherRedeemed.eventType, SaleRecorded.eventType,
        OrderPlaced.eventType, OrderPaid.eventType, OrderCancelled.eventType, CartCheckedOut.eventType,
    ]

    public init() {}

    /// Checks are comparisons, not `IN` lists: SQLite builds a temporary B-tree for an `IN` list of
    /// three or more values each time the statement runs, that is for every sale inserted.
    public func createSchema(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE sales (
                position INTEGER PRIMARY KEY,
                channel TEXT NOT NULL CHECK (channel = 'booth' OR channel = 'web' OR channel = 'checkout'),
                kind TEXT NOT NULL CHECK (kind = 'sale' OR kind = 'refund'),
                sale_id TEXT NOT NULL,
                voucher_id TEXT,
                buyer_email TEXT,
                booth_id TEXT,
                store_id TEXT,
                operator_id TEXT,
                member_id TEXT,
                payment_transaction_id TEXT,
                amount_minor INTEGER NOT NULL,
                currency TEXT NOT NULL,
                sold_at TEXT NOT NULL,
                sold_at_us INTEGER NOT NULL,
                day TEXT NOT NULL
            );
            -- Made with the table: times arrive in order, so each row appends to these (at one of a
            -- dozen booths' or stores' ends), which costs less than sorting them at the end.
            CREATE INDEX sales_by_booth ON sales (booth_id, sold_at_us) WHERE booth_id IS NOT NULL;
            CREATE INDEX sales_by_store ON sales (store_id, sold_at_us) WHERE store_id IS NOT NULL;
            CREATE INDEX sales_by_time ON sales (sold_at_us);

            CREATE TABLE revenue_daily (
                day TEXT NOT NULL,
                channel TEXT NOT NULL,
                location TEXT NOT NULL,
                currency TEXT NOT NULL,
                sales INTEGER NOT NULL,
                refunds INTEGER NOT NULL,
                revenue_minor INTEGER NOT NULL CHECK (typeof(revenue_minor) = 'integer'),
                PRIMARY KEY (day, channel, location, currency)
            ) WITHOUT ROWID;

            CREATE TABLE vouchers (
                voucher_id TEXT PRIMARY KEY,
                amount_minor INTEGER NOT NULL,
                currency TEXT NOT NULL,
                buyer_email TEXT,
                issued_at TEXT NOT NULL,
                issued_position INTEGER NOT NULL,
                redeemed_at TEXT,
                redeemed_position INTEGER,
                booth_id TEXT,
                sale_id TEXT,
                sale_amount_minor INTEGER
            ) WITHOUT ROWID;

            CREATE TABLE booths (
                booth_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                location TEXT NOT NULL
            ) WITHOUT ROWID;

            CREATE TABLE web_orders (
                order_id TEXT PRIMARY KEY,
                member_id TEXT NOT NULL,
                total_minor INTEGER NOT NULL,
                currency TEXT NOT NULL
            ) WITHOUT ROWID;

            CREATE VIEW booth_sales_log AS
                SELECT s.booth_id, s.sale_id, s.voucher_id, v.buyer_email, s.amount_minor AS sale_amount_minor,
                       s.currency, s.sold_at AS sale_date, s.operator_id
                FROM sales s JOIN vouchers v ON s.voucher_id = v.voucher_id
                WHERE s.channel = 'booth';

            CREATE VIEW voucher_liability AS
                SELECT currency,
                       COUNT(*) AS issued,
                       SUM(amount_minor) AS issued_value_minor,
                       SUM(redeemed_at IS NOT NULL) AS redeemed,
                       COALESCE(SUM(CASE WHEN redeemed_at IS NOT NULL THEN sale_amount_minor END), 0) AS redeemed_sales_minor,
                       SUM(redeemed_at IS NULL) AS outstanding,
                       COALESCE(SUM(CASE WHEN redeemed_at IS NULL THEN amount_minor END), 0) AS outstanding_value_minor
                FROM vouchers GROUP BY currency;
            """)
    }

    public func createQueryIndexes(_ db: Database) throws {
        try db.execute(sql: """
            CREATE INDEX IF NOT EXISTS sales_by_voucher ON sales (voucher_id) WHERE voucher_id IS NOT NULL;
            """)
    }

    public func makeBatch() -> SalesBatch { SalesBatch() }

    public func apply(_ event: ProjectedEvent, _ db: Database, batch: SalesBatch) throws {
        let json = try event.json()
        switch event.type {
        case BoothRegistered.eventType:
            let boothID = try json.string("boothID"), boothName = try json.string("name"), location = try json.string("location")
            try db.run("INSERT OR REPLACE INTO booths (booth_id, name, location) VALUES (?, ?, ?)") {
                $0.bind(boothID); $0.bind(boothName); $0.bind(location)
            }

        case VoucherIssued.eventType:
            let amount = try json.money("amount")
            let voucherID = try json.string("voucherID"), email = try json.string("buyerEmail")
            try db.run("""
                INSERT INTO vouchers (voucher_id, amount_minor, currency, buyer_email, issued_at, issued_position) VALUES (?, ?, ?, ?, ?, ?)
                """) {
                $0.bind(voucherID); $0.bind(amount.minor); $0.bind(amount.currency.code); $0.bind(email)
                $0.bind(event.recordedAtISO); $0.bind(Int64(event.position))
            }

        case VoucherRedeemed.eventType:
            let voucherID = try json.string("voucherID")
            let boothID = try json.string("boothID"), saleID = try json.string("saleID"), saleAmount = try json.money("saleAmount")
            // Not `UPDATE … RETURNING buyer_email` for the sale that follows: SQLite gathers returned
            // rows in a temporary B-tree, which cost more than the sale's look-up by primary key.
            try db.run("""
                UPDATE vouchers SET redeemed_at = ?, redeemed_position = ?, booth_id = ?, sale_id = ?, sale_amount_minor = ? WHERE voucher_id = ?
                """) {
                $0.bind(event.recordedAtISO); $0.bind(Int64(event.position)); $0.bind(boothID); $0.bind(saleID)
                $0.bind(saleAmount.minor); $0.bind(voucherID)
            }
            guard db.changesCount == 1 else { throw ProjectionError.inconsistent("voucher \(voucherID) was redeemed but never issued") }

        case SaleRecorded.eventType:
            let voucherID = try json.string("voucherID"), boothID = try json.string("boothID")
            let email = try db.text("SELECT buyer_email FROM vouchers WHERE voucher_id = ?", { $0.bind(voucherID) })
            try insertSale(db, batch, event, channel: "booth", saleID: try json.string("saleID"), voucherID: voucherID, buyerEmail: email,
                           boothID: boothID, storeID: nil, operatorID: try json.string("operatorID"), memberID: nil, paymentTransactionID: nil,
                           amount: try json.money("amount"), location: boothID)

        case OrderPlaced.eventType:
            let total = try json.money("total")
            let orderID = try json.string("orderID"), userID = try json.string("userID")
            try db.run("INSERT OR REPLACE INTO web_orders (order_id, member_id, total_minor, currency) VALUES (?, ?, ?, ?)") {
                $0.bind(orderID); $0.bind(userID); $0.bind(total.minor); $0.bind(total.currency.code)
            }

        case OrderPaid.eventType:
            let orderID = try json.string("orderID")
            guard let order = try db.firstRow("SELECT member_id, total_minor, currency FROM web_orders WHERE order_id = ?", { $0.bind(orderID) },
                                              { (member: $0.text(0), minor: $0.int64(1), currency: $0.text(2)) }) else {
                throw ProjectionError.inconsistent("order \(orderID) was paid but never placed")
            }
            guard let member = order.member, let minor = order.minor, let code = order.currency, let currency = Currency(code: code) else {
                throw ProjectionError.inconsistent("order \(orderID) has member \(order.member ?? "NULL"), total \(order.minor.map(String.init) ?? "NULL"), currency \(order.currency ?? "NULL")")
            }
            try insertSale(db, batch, event, channel: "web", saleID: orderID, voucherID: nil, buyerEmail: nil, boothID: nil, storeID: nil,
                           operatorID: nil, memberID: member, paymentTransactionID: try json.string("transactionID"),
                           amount: Money(minor: minor, currency: currency), location: "web")

        case OrderCancelled.eventType:
            // A paid order cancelled: its sale is reversed by a refund row of what is owed back.
            guard let refund = try json.member("refundDue"), !refund.isNull else { break }
            let orderID = try json.string("orderID"), amount = try refund.money("amount")
            guard let member = try db.text("SELECT member_id FROM web_orders WHERE order_id = ?", { $0.bind(orderID) }) else {
                throw ProjectionError.inconsistent("order \(orderID) was refunded but never placed")
            }
            try insertSale(db, batch, event, channel: "web", kind: "refund", saleID: orderID, voucherID: nil, buyerEmail: nil, boothID: nil, storeID: nil,
                           operatorID: nil, memberID: member, paymentTransactionID: try refund.string("transactionID"),
                           amount: Money(minor: -amount.minor, currency: amount.currency), location: "web")

        case CartCheckedOut.eventType:
            let storeID = try json.string("storeID")
            try insertSale(db, batch, event, channel: "checkout", saleID: try json.string("cartID"), voucherID: nil, buyerEmail: nil, boothID: nil,
                           storeID: storeID, operatorID: nil, memberID: try json.string("memberID"),
                           paymentTransactionID: try json.string("paymentTransactionID"), amount: try json.money("total"), location: storeID)

        default:
            break
        }
    }

    private func insertSale(_ db: Database, _ batch: SalesBatch, _ event: ProjectedEvent, channel: String, kind: String = "sale", saleID: String,
                            voucherID: String?, buyerEmail: String?, boothID: String?, storeID: String?, operatorID: String?, memberID: String?,
                            paymentTransactionID: String?, amount: Money, location: String) throws {
        let day = event.day
        try batch.addRevenue(day: day, channel: channel, location: location, amount: amount, refund: kind == "refund")
        try batch.add(SalesBatch.Sale(position: Int64(event.position), channel: channel, kind: kind, saleID: saleID, voucherID: voucherID, buyerEmail: buyerEmail,
                                      boothID: boothID, storeID: storeID, operatorID: operatorID, memberID: memberID,
                                      paymentTransactionID: paymentTransactionID, amount: amount, soldAt: event.recordedAtISO,
                                      soldAtMicroseconds: event.recordedAt.microsecondsSinceEpoch, day: day), db)
    }
}

/// What `sales` gathers over one batch: the revenue per day, channel, location and currency, written
/// once per batch instead of once per sale (a batch's sales fall on a few days and places), and the
/// sales themselves, sixteen rows to a statement (nothing reads `sales` while a batch is applied).
public final class SalesBatch: ProjectionBatch {
    /// One row of `sales`.
    struct Sale {
        var position: Int64
        var channel: String
        var kind: String
        var saleID: String
        var voucherID: String?, buyerEmail: String?, boothID: String?, storeID: String?, operatorID: String?, memberID: String?
        var paymentTransactionID: String?
        var amount: Money
        var soldAt: String
        var soldAtMicroseconds: Int64
        var day: String
    }

    static let saleInserts = RowInserter<Sale>.Statements(
        table: "sales", columns: ["position", "channel", "kind", "sale_id", "voucher_id", "buyer_email", "booth_id", "store_id", "operator_id", "member_id",
                                  "payment_transaction_id", "amount_minor", "currency", "sold_at", "sold_at_us", "day"])
    private var sales = RowInserter<Sale>(SalesBatch.saleInserts) { sale, bindings in
        bindings.bind(sale.position); bindings.bind(sale.channel); bindings.bind(sale.kind); bindings.bind(sale.saleID); bindings.bind(sale.voucherID)
        bindings.bind(sale.buyerEmail); bindings.bind(sale.boothID); bindings.bind(sale.storeID); bindings.bind(sale.operatorID)
        bindings.bind(sale.memberID); bindings.bind(sale.paymentTransactionID); bindings.bind(sale.amount.minor)
        bindings.bind(sale.amount.currency.code); bindings.bind(sale.soldAt); bindings.bind(sale.soldAtMicroseconds); bindings.bind(sale.day)
    }

    func add(_ sale: Sale, _ db: Database) throws { try sales.add(sale, db) }

    /// A location (a booth or store id) is told apart by its bytes, as SQLite's key is (`ExactText`).
    struct RevenueKey: Hashable {
        var day: String
        var channel: String
        var location: ExactText
        var currency: String
    }

    /// In the order each key was first touched, so a rebuild writes the same rows in the same order.
    private var revenue: OrderedDictionary<RevenueKey, (sales: Int64, refunds: Int64, minor: Int64)> = [:]

    /// Adds a sale (or a refund, negative) to its day's revenue; a total past what 64 bits hold stops
    /// the read model at the sale that made it (where a plain `+` would stop the process).
    func addRevenue(day: String, channel: String, location: String, amount: Money, refund: Bool) throws {
        let key = RevenueKey(day: day, channel: channel, location: ExactText(location), currency: amount.currency.code)
        var total = revenue[key] ?? (0, 0, 0)
        total.minor = try ProjectionError.adding(amount.minor, to: total.minor,
                                                 "the revenue of \(JSONView.quoted(location)) (\(channel)) on \(day) in \(amount.currency.code)")
        if refund { total.refunds += 1 } else { total.sales += 1 }
        revenue[key] = total
    }

    public func finish(_ db: Database) throws {
        try sales.flush(db)
        for (key, total) in revenue {
            try db.run("""
                INSERT INTO revenue_daily (day, channel, location, currency, sales, refunds, revenue_minor) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (day, channel, location, currency) DO UPDATE SET sales = sales + excluded.sales,
                    refunds = refunds + excluded.refunds, revenue_minor = revenue_minor + excluded.revenue_minor
                """) {
                $0.bind(key.day); $0.bind(key.channel); $0.bind(key.location.text); $0.bind(key.currency); $0.bind(total.sales)
                $0.bind(total.refunds); $0.bind(total.minor)
            }
        }
    }
}
