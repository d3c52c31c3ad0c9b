import GRDB
import TallyDomain
import TallyProjection

/// Member activity: every action of each self-checkout member and web-shop customer in time order,
/// and a summary per person.
///
/// People are keyed by `(kind, member_id)`: kind "member" (self-checkout) or "customer" (web shop),
/// whose ids are separate namespaces. The tables hold no personal values (names, emails, phone
/// numbers, social account ids): an action says which fields changed, not what to.
///
/// - `activity`: one row per action, keyed by log position; `action` is the event type.
/// - `members`: first and last seen, counts of actions, carts, checkouts, orders and payments, active.
/// - `member_spending`: total spent per person and currency (checkouts and successful payments).
/// - `carts`, `orders`: which person a cart or an order belongs to, and a cart's last activity.
/// - view `member_summary`: `members` with `abandoned_carts`, carts never checked out whose last
///   activity is more than 24 hours before the last event applied.
public struct MemberActivity: Projector {
    public let name = "members"
    public let version = 1
    public let eventTypes: Set<String> = [
        MemberRegistered.eventType, MemberProfileChanged.eventType, SocialAccountLinked.eventType, MemberDeactivated.eventType,
        CartOpened.eventType, CartItemAdded.eventType, CartItemRemoved.eventType, RestrictedItemsApproved.eventType, CartCheckedOut.eventType,
        UserRegistered.eventType, UserEmailChanged.eventType, UserDeactivated.eventType,
        OrderPlaced.eventType, OrderConfirmed.eventType, OrderCancelled.eventType, OrderPaid.eventType, OrderShipped.eventType,
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
            CREATE INDEX activity_by_member ON activity (kind, member_id, position);
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
                spent_minor INTEGER NOT NULL,
                PRIMARY KEY (kind, member_id, currency)
            ) WITHOUT ROWID;

            CREATE TABLE carts (
                cart_id TEXT PRIMARY KEY,
                member_id TEXT NOT NULL,
                store_id TEXT NOT NULL,
                last_activity_us INTEGER NOT NULL,
                checked_out INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID;
            CREATE INDEX open_carts_by_member ON carts (member_id) WHERE checked_out = 0;

            CREATE TABLE orders (
                order_id TEXT PRIMARY KEY,
                member_id TEXT NOT NULL
            ) WITHOUT ROWID;

            CREATE VIEW member_summary AS
                SELECT m.kind, m.member_id, m.first_seen, m.last_seen, m.actions, m.carts, m.checkouts, m.orders, m.payments, m.active,
                       (SELECT COUNT(*) FROM carts c
                         WHERE m.kind = 'member' AND c.member_id = m.member_id AND c.checked_out = 0
                           AND c.last_activity_us < (SELECT last_event_at FROM tally_projection) - \(Self.abandonedAfterMicroseconds)
                       ) AS abandoned_carts
                FROM members m;
            """)
    }

    public func apply(_ event: ProjectedEvent, _ db: Database) throws {
        switch event.type {
        case MemberRegistered.eventType:
            let registered = try event.decode(MemberRegistered.self)
            try record(db, event, .member, registered.memberID, detail: "registered")
        case MemberProfileChanged.eventType:
            let changed = try event.decode(MemberProfileChanged.self)
            let fields = [("first name", changed.firstName), ("last name", changed.lastName), ("phone", changed.phone)]
                .filter { $0.1 != nil }.map(\.0)
            try record(db, event, .member, changed.memberID, detail: "changed " + (fields.isEmpty ? "nothing" : fields.joined(separator: ", ")))
        case SocialAccountLinked.eventType:
            let linked = try event.decode(SocialAccountLinked.self)
            try record(db, event, .member, linked.memberID, detail: "linked a \(linked.provider) account")
        case MemberDeactivated.eventType:
            let deactivated = try event.decode(MemberDeactivated.self)
            try record(db, event, .member, deactivated.memberID, detail: "deactivated", counter: "active = 0")

        case CartOpened.eventType:
            let opened = try event.decode(CartOpened.self)
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO carts (cart_id, member_id, store_id, last_activity_us) VALUES (?, ?, ?, ?)")
                .execute(arguments: [opened.cartID, opened.memberID, opened.storeID, event.recordedAt.microsecondsSinceEpoch])
            try record(db, event, .member, opened.memberID, subject: opened.cartID, detail: "opened cart at store \(opened.storeID)", counter: "carts = carts + 1")
        case CartItemAdded.eventType:
            let added = try event.decode(CartItemAdded.self)
            let member = try cartMember(db, added.cartID, event)
            let scanned = added.scannedInput == added.sku.value ? "" : " (scanned \(added.scannedInput))"
            try record(db, event, .member, member, subject: added.cartID, detail: "added \(added.quantity) × \(added.sku)\(scanned)")
        case CartItemRemoved.eventType:
            let removed = try event.decode(CartItemRemoved.self)
            let member = try cartMember(db, removed.cartID, event)
            try record(db, event, .member, member, subject: removed.cartID, detail: "removed \(removed.quantity) × \(removed.sku)")
        case RestrictedItemsApproved.eventType:
            let approved = try event.decode(RestrictedItemsApproved.self)
            let member = try cartMember(db, approved.cartID, event)
            try record(db, event, .member, member, subject: approved.cartID, detail: "restricted items approved by staff \(approved.staffID)")
        case CartCheckedOut.eventType:
            let checkout = try event.decode(CartCheckedOut.self)
            try db.cachedStatement(sql: "UPDATE carts SET checked_out = 1, last_activity_us = ? WHERE cart_id = ?")
                .execute(arguments: [event.recordedAt.microsecondsSinceEpoch, checkout.cartID])
            let units = checkout.lines.reduce(0) { $0 + $1.quantity }
            try record(db, event, .member, checkout.memberID, subject: checkout.cartID,
                       detail: "checked out \(checkout.lines.count) lines, \(units) units at store \(checkout.storeID)",
                       amount: checkout.total, counter: "checkouts = checkouts + 1", spent: checkout.total)

        case UserRegistered.eventType:
            let user = try event.decode(UserRegistered.self)
            try record(db, event, .customer, user.userID, detail: user.isAdmin ? "registered (admin)" : "registered")
        case UserEmailChanged.eventType:
            let changed = try event.decode(UserEmailChanged.self)
            try record(db, event, .customer, changed.userID, detail: "changed email")
        case UserDeactivated.eventType:
            let deactivated = try event.decode(UserDeactivated.self)
            try record(db, event, .customer, deactivated.userID, detail: "deactivated", counter: "active = 0")
        case OrderPlaced.eventType:
            let order = try event.decode(OrderPlaced.self)
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO orders (order_id, member_id) VALUES (?, ?)").execute(arguments: [order.orderID, order.userID])
            let units = order.lines.reduce(0) { $0 + $1.quantity }
            try record(db, event, .customer, order.userID, subject: order.orderID, detail: "placed order of \(order.lines.count) lines, \(units) units",
                       amount: order.total, counter: "orders = orders + 1")
        case OrderConfirmed.eventType:
            let order = try event.decode(OrderConfirmed.self).orderID
            try record(db, event, .customer, try orderMember(db, order, event), subject: order, detail: "order confirmed")
        case OrderCancelled.eventType:
            let cancelled = try event.decode(OrderCancelled.self)
            try record(db, event, .customer, try orderMember(db, cancelled.orderID, event), subject: cancelled.orderID,
                       detail: "order cancelled: \(cancelled.reason)")
        case OrderPaid.eventType:
            let paid = try event.decode(OrderPaid.self)
            try record(db, event, .customer, try orderMember(db, paid.orderID, event), subject: paid.orderID, detail: "order paid (payment \(paid.paymentID))")
        case OrderShipped.eventType:
            let order = try event.decode(OrderShipped.self).orderID
            try record(db, event, .customer, try orderMember(db, order, event), subject: order, detail: "order shipped")
        case OrderDelivered.eventType:
            let order = try event.decode(OrderDelivered.self).orderID
            try record(db, event, .customer, try orderMember(db, order, event), subject: order, detail: "order delivered")
        case PaymentInitiated.eventType:
            let payment = try event.decode(PaymentInitiated.self)
            try record(db, event, .customer, payment.userID, subject: payment.orderID, detail: "started \(payment.method.rawValue) payment \(payment.paymentID)",
                       amount: payment.amount)
        case PaymentSucceeded.eventType:
            let payment = try event.decode(PaymentSucceeded.self)
            try record(db, event, .customer, try orderMember(db, payment.orderID, event), subject: payment.orderID,
                       detail: "\(payment.method.rawValue) payment \(payment.paymentID) succeeded", amount: payment.amount,
                       counter: "payments = payments + 1", spent: payment.amount)
        case PaymentFailed.eventType:
            let payment = try event.decode(PaymentFailed.self)
            try record(db, event, .customer, try orderMember(db, payment.orderID, event), subject: payment.orderID,
                       detail: "payment \(payment.paymentID) failed: \(payment.reason)")
        default:
            break
        }
    }

    private enum Kind: String { case member, customer }

    private func cartMember(_ db: Database, _ cartID: String, _ event: ProjectedEvent) throws -> String {
        guard let member = try String.fetchOne(db.cachedStatement(sql: "SELECT member_id FROM carts WHERE cart_id = ?"), arguments: [cartID]) else {
            throw ProjectionError.inconsistent("cart \(cartID) was never opened")
        }
        try db.cachedStatement(sql: "UPDATE carts SET last_activity_us = ? WHERE cart_id = ?")
            .execute(arguments: [event.recordedAt.microsecondsSinceEpoch, cartID])
        return member
    }

    private func orderMember(_ db: Database, _ orderID: String, _ event: ProjectedEvent) throws -> String {
        guard let member = try String.fetchOne(db.cachedStatement(sql: "SELECT member_id FROM orders WHERE order_id = ?"), arguments: [orderID]) else {
            throw ProjectionError.inconsistent("order \(orderID) was never placed")
        }
        return member
    }

    /// One action: its activity row, and the person's summary (`counter` is a fixed SET clause).
    private func record(_ db: Database, _ event: ProjectedEvent, _ kind: Kind, _ member: String, subject: String? = nil, detail: String,
                        amount: Money? = nil, counter: String? = nil, spent: Money? = nil) throws {
        let at = event.recordedAtISO
        let atMicroseconds = event.recordedAt.microsecondsSinceEpoch
        try db.cachedStatement(sql: """
            INSERT INTO activity (position, kind, member_id, action, subject, detail, amount_minor, currency, at, at_us)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [Int64(event.position), kind.rawValue, member, event.type, subject, detail, amount?.minor,
                                     amount?.currency.code, at, atMicroseconds])
        try db.cachedStatement(sql: """
            INSERT INTO members (kind, member_id, first_seen, last_seen, last_seen_us, actions) VALUES (?, ?, ?, ?, ?, 1)
            ON CONFLICT (kind, member_id) DO UPDATE SET last_seen = excluded.last_seen, last_seen_us = excluded.last_seen_us, actions = actions + 1
            """).execute(arguments: [kind.rawValue, member, at, at, atMicroseconds])
        if let counter {
            try db.cachedStatement(sql: "UPDATE members SET \(counter) WHERE kind = ? AND member_id = ?").execute(arguments: [kind.rawValue, member])
        }
        if let spent {
            try db.cachedStatement(sql: """
                INSERT INTO member_spending (kind, member_id, currency, spent_minor) VALUES (?, ?, ?, ?)
                ON CONFLICT (kind, member_id, currency) DO UPDATE SET spent_minor = spent_minor + excluded.spent_minor
                """).execute(arguments: [kind.rawValue, member, spent.currency.code, spent.minor])
        }
    }
}
