import GRDB
import TallyDomain
import TallyLog
import TallyProjection

/// Member activity: every action of each self-checkout member and web-shop customer in time order,
/// and a summary per person.
///
/// People are keyed by `(kind, member_id)`: kind "member" (self-checkout) or "customer" (web shop),
/// whose ids are separate namespaces. The tables hold no personal values (names, emails, phone
/// numbers, social account ids): an action says which fields changed, not what to. The one exception
/// is `member_devices`: the keyed digests of the devices members opened the app on, pseudonymous but
/// personal, so the read model is rebuilt when a member is forgotten and their devices leave it.
///
/// - `activity`: one row per action, keyed by log position; `action` is the event type.
/// - `members`: first and last seen, counts of actions, carts, checkouts, orders and payments, active.
/// - `member_spending`: total spent per person and currency (checkouts and successful payments, less
///   the refunds of paid orders cancelled).
/// - `carts`, `orders`: which person a cart or an order belongs to, and a cart's last activity.
/// - view `member_summary`: `members` with `abandoned_carts`, carts never checked out whose last
///   activity is more than 24 hours before the last event applied.
/// - `member_devices`: each self-checkout member's devices (`device-` and a keyed digest of the
///   fingerprint), first and last seen and how often; view `shared_devices`: the devices more than one
///   member id was seen on, and those ids, the ids likely to be one person.
/// - `shopping_lists`: each member's shopping list as its last revision left it (revisions, lines,
///   units); `shopping_list_lines`: the lines of every revision; view `shopping_list_changes`: what
///   each revision changed, SKU by SKU (`was` and `now` units, 0 for absent): what members meant to buy.
public struct MemberActivity: BatchingProjector {
    public let name = "members"
    /// 2: `activity_by_member` leads with `member_id` (see `createQueryIndexes`).
    /// 3: `member_spending.spent_minor` must stay an integer: SQLite turns a sum past 2^63 into a float.
    /// 4: `member_devices` and `shared_devices`, from `MemberDeviceSeen`.
    /// 5: `shopping_lists`, `shopping_list_lines` and `shopping_list_changes`, from `ShoppingListRevised`.
    public let version = 5
    public let holdsPersonalData = true
    public let eventTypes: Set<String> = [
        MemberRegistered.eventType, MemberProfileChanged.eventType, SocialAccountLinked.eventType, MemberDeviceSeen.eventType, MemberDeactivated.eventType,
        ShoppingListRevised.eventType,
        CartOpened.eventType, CartItemAdded.eventType, CartItemRemoved.eventType, RestrictedItemsApproved.eventType, CartCheckedOut.eventType,
        UserRegistered.eventType, UserEmailChanged.eventType, UserDeactivated.eventType,
        OrderPlaced.eventType, OrderConfirmed.eventType, OrderCancelled.eventType, RefundPaid.eventType, OrderPaid.eventType, OrderShipped.eventType,
        OrderDelivered.eventType, PaymentInitiated.eventType, PaymentSucceeded.eventType, PaymentFailed.eventType,
    ]

    /// A cart left open this long after its last activity counts as abandoned.
    public static let abandonedAfterMicroseconds: Int64 = 24 * 3600 * 1_000_000

    public init() {}

    public func createSchema(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE activity (
                position INTEGER PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('member', 'customer')),
                member_id TEXT NOT NULL,
                action TEXT NOT NULL,
                subject TEXT,
                detail TEXT NOT NULL,
                amount_minor INTEGER,
                currency TEXT,
                at TEXT NOT NULL,
                at_us INTEGER NOT NULL
            );
            -- Made with the table: positions, so times, arrive in order, and each row appends to it.
            CREATE INDEX activity_by_time ON activity (at_us);

            CREATE TABLE members (
                kind TEXT NOT NULL,
                member_id TEXT NOT NULL,
                first_seen TEXT NOT NULL,
                last_seen TEXT NOT NULL,
                last_seen_us INTEGER NOT NULL,
                actions INTEGER NOT NULL DEFAULT 0,
                carts INTEGER NOT NULL DEFAULT 0,
                checkouts INTEGER NOT NULL DEFAULT 0,
                orders INTEGER NOT NULL DEFAULT 0,
                payments INTEGER NOT NULL DEFAULT 0,
                active INTEGER NOT NULL DEFAULT 1,
                PRIMARY KEY (kind, member_id)
            ) WITHOUT ROWID;

            CREATE TABLE member_spending (
                kind TEXT NOT NULL,
                member_id TEXT NOT NULL,
                currency TEXT NOT NULL,
                spent_minor INTEGER NOT NULL CHECK (typeof(spent_minor) = 'integer'),
                PRIMARY KEY (kind, member_id, currency)
            ) WITHOUT ROWID;

            CREATE TABLE carts (
                cart_id TEXT PRIMARY KEY,
                member_id TEXT NOT NULL,
                store_id TEXT NOT NULL,
                last_activity_us INTEGER NOT NULL,
                checked_out INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID;

            CREATE TABLE orders (
                order_id TEXT PRIMARY KEY,
                member_id TEXT NOT NULL
            ) WITHOUT ROWID;

            CREATE TABLE member_devices (
                member_id TEXT NOT NULL,
                device TEXT NOT NULL,
                first_seen TEXT NOT NULL,
                last_seen TEXT NOT NULL,
                sightings INTEGER NOT NULL,
                PRIMARY KEY (member_id, device)
            ) WITHOUT ROWID;

            CREATE TABLE shopping_lists (
                list_id TEXT PRIMARY KEY,
                member_id TEXT NOT NULL,
                revision INTEGER NOT NULL,
                lines INTEGER NOT NULL,
                units INTEGER NOT NULL,
                created TEXT NOT NULL,
                revised TEXT NOT NULL
            ) WITHOUT ROWID;

            CREATE TABLE shopping_list_lines (
                list_id TEXT NOT NULL,
                revision INTEGER NOT NULL,
                sku TEXT NOT NULL,
                quantity INTEGER NOT NULL,
                PRIMARY KEY (list_id, revision, sku)
            ) WITHOUT ROWID;

            -- Each revision against the one before: SKUs added or recounted, then SKUs dropped.
            CREATE VIEW shopping_list_changes AS
                SELECT now.list_id, now.revision, now.sku, COALESCE(was.quantity, 0) AS was, now.quantity AS now
                FROM shopping_list_lines now
                LEFT JOIN shopping_list_lines was
                    ON was.list_id = now.list_id AND was.revision = now.revision - 1 AND was.sku = now.sku
                WHERE was.quantity IS NULL OR was.quantity != now.quantity
                UNION ALL
                SELECT was.list_id, was.revision + 1, was.sku, was.quantity, 0
                FROM shopping_list_lines was
                JOIN shopping_lists list ON list.list_id = was.list_id AND list.revision > was.revision
                LEFT JOIN shopping_list_lines now
                    ON now.list_id = was.list_id AND now.revision = was.revision + 1 AND now.sku = was.sku
                WHERE now.sku IS NULL;

            CREATE VIEW shared_devices AS
                SELECT device, COUNT(*) AS members, group_concat(member_id, ' ') AS member_ids,
                       MIN(first_seen) AS first_seen, MAX(last_seen) AS last_seen, SUM(sightings) AS sightings
                FROM (SELECT * FROM member_devices ORDER BY device, first_seen, member_id)
                GROUP BY device HAVING COUNT(*) > 1;

            CREATE VIEW member_summary AS
                SELECT m.kind, m.member_id, m.first_seen, m.last_seen, m.actions, m.carts, m.checkouts, m.orders, m.payments, m.active,
                       (SELECT COUNT(*) FROM carts c
                         WHERE m.kind = 'member' AND c.member_id = m.member_id AND c.checked_out = 0
                           AND c.last_activity_us < (SELECT last_event_at FROM tally_projection) - \(Self.abandonedAfterMicroseconds)
                       ) AS abandoned_carts
                FROM members m;
            """)
    }

    /// `activity_by_member` leads with `member_id`, which tells people apart at the first column, not
    /// with `kind` (two values): sorting it for 620 k actions took 0.41–0.47 s of CPU instead of
    /// 0.57–0.69 s (sqlite3 shell, three runs each), and a look-up by member id alone can use it.
    public func createQueryIndexes(_ db: Database) throws {
        try db.execute(sql: """
            CREATE INDEX IF NOT EXISTS activity_by_member ON activity (member_id, kind, position);
            CREATE INDEX IF NOT EXISTS open_carts_by_member ON carts (member_id) WHERE checked_out = 0;
            CREATE INDEX IF NOT EXISTS member_devices_by_device ON member_devices (device, member_id);
            CREATE INDEX IF NOT EXISTS shopping_lists_by_member ON shopping_lists (member_id, list_id);
            """)
    }

    public func makeBatch() -> MemberBatch { MemberBatch() }

    /// Carries the owners of the carts still open and of the orders the last batch knew: a cart is
    /// usually filled over more than one batch, and its owner was looked up in SQLite once per batch.
    public func makeBatch(after previous: MemberBatch?) -> MemberBatch { MemberBatch(carrying: previous) }

    public func apply(_ event: ProjectedEvent, _ db: Database, batch: MemberBatch) throws {
        let json = try event.json()
        switch event.type {
        case MemberRegistered.eventType:
            try record(db, batch, event, .member, try json.string("memberID"), detail: "registered")
        case MemberProfileChanged.eventType:
            var fields: [String] = []
            for (key, name) in [("firstName", "first name"), ("lastName", "last name"), ("phone", "phone")] where try json.optionalString(key) != nil {
                fields.append(name)
            }
            try record(db, batch, event, .member, try json.string("memberID"), detail: "changed " + (fields.isEmpty ? "nothing" : fields.joined(separator: ", ")))
        case SocialAccountLinked.eventType:
            try record(db, batch, event, .member, try json.string("memberID"), detail: "linked a \(try json.string("provider")) account")
        case MemberDeviceSeen.eventType:
            let memberID = try json.string("memberID"), device = try json.string("device")
            // A forgotten member's device reads as erased: their tie to it is gone with their key.
            if device != PersonalData.erased {
                let at = event.recordedAtISO
                try db.run("""
                    INSERT INTO member_devices (member_id, device, first_seen, last_seen, sightings) VALUES (?, ?, ?, ?, 1)
                    ON CONFLICT (member_id, device) DO UPDATE SET last_seen = excluded.last_seen, sightings = sightings + 1
                    """) { $0.bind(memberID); $0.bind(device); $0.bind(at); $0.bind(at) }
            }
            let store = try json.optionalString("storeID")
            try record(db, batch, event, .member, memberID, subject: store,
                       detail: store.map { "opened the app on a device at store \($0)" } ?? "opened the app on a device")
        case MemberDeactivated.eventType:
            try record(db, batch, event, .member, try json.string("memberID"), detail: "deactivated", counter: .deactivation)
        case ShoppingListRevised.eventType:
            let memberID = try json.string("memberID"), listID = try json.string("listID"), revision = try json.int("revision")
            var lines = 0, units = 0
            try json.required("lines").forEachElement { line in
                let sku = try line.string("sku"), quantity = try line.int("quantity")
                lines += 1
                // Bounded by the rules; a list written behind their back must not trap the process.
                let (sum, overflow) = units.addingReportingOverflow(quantity)
                guard !overflow else { throw ProjectionError.inconsistent("the units on shopping list \(listID) pass \(Int.max)") }
                units = sum
                try db.run("INSERT INTO shopping_list_lines (list_id, revision, sku, quantity) VALUES (?, ?, ?, ?)") {
                    $0.bind(listID); $0.bind(revision); $0.bind(sku); $0.bind(quantity)
                }
            }
            let at = event.recordedAtISO
            try db.run("""
                INSERT INTO shopping_lists (list_id, member_id, revision, lines, units, created, revised) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (list_id) DO UPDATE SET revision = excluded.revision, lines = excluded.lines, units = excluded.units,
                    revised = excluded.revised
                """) { $0.bind(listID); $0.bind(memberID); $0.bind(revision); $0.bind(lines); $0.bind(units); $0.bind(at); $0.bind(at) }
            try record(db, batch, event, .member, memberID, subject: listID,
                       detail: lines == 0 ? "cleared shopping list \(listID)" : "revised shopping list \(listID): \(lines) lines, \(units) units")

        case CartOpened.eventType:
            let cartID = try json.string("cartID"), storeID = try json.string("storeID"), memberID = try json.string("memberID")
            batch.openCart(cartID, member: memberID, store: storeID, at: event.recordedAt.microsecondsSinceEpoch)
            try record(db, batch, event, .member, memberID, subject: cartID, detail: "opened cart at store \(storeID)", counter: .cart)
        case CartItemAdded.eventType:
            let cartID = try json.string("cartID"), sku = try json.string("sku"), scannedInput = try json.string("scannedInput")
            let member = try cartMember(db, batch, cartID, event)
            let scanned = scannedInput == sku ? "" : " (scanned \(scannedInput))"
            try record(db, batch, event, .member, member, subject: cartID, detail: "added \(try json.int("quantity")) × \(sku)\(scanned)")
        case CartItemRemoved.eventType:
            let cartID = try json.string("cartID")
            let member = try cartMember(db, batch, cartID, event)
            // Units that left with the item that brought them (a deposit with its bottles) say so.
            let with = try json.optionalString("linkedFrom").map { " (with \($0))" } ?? ""
            try record(db, batch, event, .member, member, subject: cartID, detail: "removed \(try json.int("quantity")) × \(try json.string("sku"))\(with)")
        case RestrictedItemsApproved.eventType:
            let cartID = try json.string("cartID")
            let member = try cartMember(db, batch, cartID, event)
            try record(db, batch, event, .member, member, subject: cartID, detail: "restricted items approved by staff \(try json.string("staffID"))")
        case CartCheckedOut.eventType:
            let cartID = try json.string("cartID"), total = try json.money("total")
            batch.checkOutCart(cartID, at: event.recordedAt.microsecondsSinceEpoch)
            var lines = 0, units = 0
            try json.required("lines").forEachElement { line in
                lines += 1
                units += try line.int("quantity")
            }
            try record(db, batch, event, .member, try json.string("memberID"), subject: cartID,
                       detail: "checked out \(lines) lines, \(units) units at store \(try json.string("storeID"))",
                       amount: total, counter: .checkout, spent: total)

        case UserRegistered.eventType:
            try record(db, batch, event, .customer, try json.string("userID"), detail: try json.bool("isAdmin") ? "registered (admin)" : "registered")
        case UserEmailChanged.eventType:
            try record(db, batch, event, .customer, try json.string("userID"), detail: "changed email")
        case UserDeactivated.eventType:
            try record(db, batch, event, .customer, try json.string("userID"), detail: "deactivated", counter: .deactivation)
        case OrderPlaced.eventType:
            let orderID = try json.string("orderID"), userID = try json.string("userID")
            try db.run("INSERT OR REPLACE INTO orders (order_id, member_id) VALUES (?, ?)") { $0.bind(orderID); $0.bind(userID) }
            batch.orderMembers[ExactText(orderID)] = userID
            var lines = 0, units = 0
            try json.required("lines").forEachElement { line in
                lines += 1
                units += try line.int("quantity")
            }
            try record(db, batch, event, .customer, userID, subject: orderID, detail: "placed order of \(lines) lines, \(units) units",
                       amount: try json.money("total"), counter: .order)
        case OrderConfirmed.eventType:
            let orderID = try json.string("orderID")
            try record(db, batch, event, .customer, try orderMember(db, batch, orderID), subject: orderID, detail: "order confirmed")
        case OrderCancelled.eventType:
            let orderID = try json.string("orderID")
            // A paid order cancelled owes its payment back: the customer's spending is net of it.
            if let refund = try json.member("refundDue"), !refund.isNull {
                let amount = try refund.money("amount")
                try record(db, batch, event, .customer, try orderMember(db, batch, orderID), subject: orderID,
                           detail: "order cancelled: \(try json.string("reason")); payment \(try refund.string("paymentID")) to be refunded",
                           amount: amount, spent: Money(minor: -amount.minor, currency: amount.currency))
            } else {
                try record(db, batch, event, .customer, try orderMember(db, batch, orderID), subject: orderID, detail: "order cancelled: \(try json.string("reason"))")
            }
        case RefundPaid.eventType:
            let orderID = try json.string("orderID")
            try record(db, batch, event, .customer, try orderMember(db, batch, orderID), subject: orderID,
                       detail: "refund paid (payment \(try json.string("paymentID")), transaction \(try json.string("refundTransactionID")))",
                       amount: try json.money("amount"))
        case OrderPaid.eventType:
            let orderID = try json.string("orderID")
            try record(db, batch, event, .customer, try orderMember(db, batch, orderID), subject: orderID, detail: "order paid (payment \(try json.string("paymentID")))")
        case OrderShipped.eventType:
            let orderID = try json.string("orderID")
            try record(db, batch, event, .customer, try orderMember(db, batch, orderID), subject: orderID, detail: "order shipped")
        case OrderDelivered.eventType:
            let orderID = try json.string("orderID")
            try record(db, batch, event, .customer, try orderMember(db, batch, orderID), subject: orderID, detail: "order delivered")
        case PaymentInitiated.eventType:
            try record(db, batch, event, .customer, try json.string("userID"), subject: try json.string("orderID"),
                       detail: "started \(try json.string("method")) payment \(try json.string("paymentID"))", amount: try json.money("amount"))
        case PaymentSucceeded.eventType:
            let orderID = try json.string("orderID"), amount = try json.money("amount")
            try record(db, batch, event, .customer, try orderMember(db, batch, orderID), subject: orderID,
                       detail: "\(try json.string("method")) payment \(try json.string("paymentID")) succeeded", amount: amount,
                       counter: .payment, spent: amount)
        case PaymentFailed.eventType:
            let orderID = try json.string("orderID")
            try record(db, batch, event, .customer, try orderMember(db, batch, orderID), subject: orderID,
                       detail: "payment \(try json.string("paymentID")) failed: \(try json.string("reason"))")
        default:
            break
        }
    }

    enum Kind: String { case member, customer }

    /// The cart's member (from the batch, else from `carts`); its last activity is written when the batch finishes.
    private func cartMember(_ db: Database, _ batch: MemberBatch, _ cartID: String, _ event: ProjectedEvent) throws -> String {
        let member: String
        if let known = batch.cartMembers[ExactText(cartID)] {
            member = known
        } else {
            guard let stored = try db.text("SELECT member_id FROM carts WHERE cart_id = ?", { $0.bind(cartID) }) else {
                throw ProjectionError.inconsistent("cart \(cartID) was never opened")
            }
            member = stored
            batch.cartMembers[ExactText(cartID)] = stored
        }
        batch.touchCart(cartID, at: event.recordedAt.microsecondsSinceEpoch)
        return member
    }

    private func orderMember(_ db: Database, _ batch: MemberBatch, _ orderID: String) throws -> String {
        if let known = batch.orderMembers[ExactText(orderID)] { return known }
        guard let member = try db.text("SELECT member_id FROM orders WHERE order_id = ?", { $0.bind(orderID) }) else {
            throw ProjectionError.inconsistent("order \(orderID) was never placed")
        }
        batch.orderMembers[ExactText(orderID)] = member
        return member
    }

    /// One action: its activity row (inserted with the batch's next ones, `MemberBatch.add`), and its person's summary and spending added up in the batch.
    private func record(_ db: Database, _ batch: MemberBatch, _ event: ProjectedEvent, _ kind: Kind, _ member: String, subject: String? = nil, detail: String,
                        amount: Money? = nil, counter: MemberBatch.Counter? = nil, spent: Money? = nil) throws {
        let at = event.recordedAtISO
        let atMicroseconds = event.recordedAt.microsecondsSinceEpoch
        try batch.count(kind, member, at: at, atMicroseconds, counter: counter, spent: spent)
        try batch.add(MemberBatch.Action(position: Int64(event.position), kind: kind, member: member, action: event.type, subject: subject,
                                         detail: detail, amount: amount, at: at, atMicroseconds: atMicroseconds), db)
    }
}
