import GRDB
import OrderedCollections
import TallyDomain
import TallyLog
import TallyProjection

/// What `members` adds up over one batch and writes when it finishes: each person's summary and
/// spending once per batch instead of once per action, each cart's row once, and the
/// actions sixteen rows to a statement. Rows are
/// written in the order their keys were first touched, so a rebuild writes the same rows in the same
/// order every time.
public final class MemberBatch: ProjectionBatch {
    /// What an action adds to its person's counters.
    enum Counter { case cart, checkout, order, payment, deactivation }

    /// People, carts and orders are told apart by their ids' bytes, as SQLite's keys are (`ExactText`).
    struct Person: Hashable {
        var kind: MemberActivity.Kind
        var member: ExactText
    }

    struct Summary {
        var firstSeen: String
        var lastSeen: String
        var lastSeenMicroseconds: Int64
        var actions = 0, carts = 0, checkouts = 0, orders = 0, payments = 0
        var active = 1

        mutating func count(at: String, _ microseconds: Int64, counter: Counter?) {
            lastSeen = at
            lastSeenMicroseconds = microseconds
            actions += 1
            switch counter {
            case .cart: carts += 1
            case .checkout: checkouts += 1
            case .order: orders += 1
            case .payment: payments += 1
            case .deactivation: active = 0
            case nil: break
            }
        }
    }

    struct Spending: Hashable {
        var person: Person
        var currency: String
    }

    /// What the batch did to a cart's row: written once, when the batch finishes.
    struct CartChange {
        /// Opened in the batch (its last opening): the whole row is written anew.
        var opened: (member: String, store: String)?
        var lastActivityMicroseconds: Int64
        /// Checked out (true) or opened (false) in the batch; nil: as the row already says.
        var checkedOut: Bool?
    }

    private var summaries: OrderedDictionary<Person, Summary> = [:]
    private var spending: OrderedDictionary<Spending, Int64> = [:]
    /// Carts touched in the batch, each row written once at its end (a cart is usually opened, filled
    /// and checked out within one batch: one statement instead of one per opening and checkout and
    /// one for the last item).
    private var carts: OrderedDictionary<ExactText, CartChange> = [:]
    /// Cart and order owners seen in this batch, so each is looked up in SQLite at most once.
    var cartMembers: [ExactText: String] = [:]
    var orderMembers: [ExactText: String] = [:]

    /// At most this many owners of carts and of orders are carried from one batch to the next
    /// (`MemberActivity.makeBatch(after:)`); past it, none are, and the next batch looks them up again.
    static let carriedOwnersMax = 65_536

    init() {}

    /// A batch that knows the owners `previous` knew, but those of the carts it saw checked out
    /// (nothing follows a checkout). An owner is a fact of the log (the cart's or order's first event),
    /// so it holds whatever batch learned it.
    init(carrying previous: MemberBatch?) {
        guard let previous else { return }
        var carts = previous.cartMembers
        for (cart, change) in previous.carts where change.checkedOut == true { carts.removeValue(forKey: cart) }
        if carts.count <= Self.carriedOwnersMax { cartMembers = carts }
        if previous.orderMembers.count <= Self.carriedOwnersMax { orderMembers = previous.orderMembers }
    }

    /// One row of `activity`.
    struct Action {
        var position: Int64
        var kind: MemberActivity.Kind
        var member: String
        var action: String
        var subject: String?
        var detail: String
        var amount: Money?
        var at: String
        var atMicroseconds: Int64
    }

    /// The actions, inserted sixteen to a statement (nothing reads `activity` while a batch is applied).
    static let actionInserts = RowInserter<Action>.Statements(
        table: "activity", columns: ["position", "kind", "member_id", "action", "subject", "detail", "amount_minor", "currency", "at", "at_us"])
    private var actions = RowInserter<Action>(MemberBatch.actionInserts) { action, bindings in
        bindings.bind(action.position); bindings.bind(action.kind.rawValue); bindings.bind(action.member); bindings.bind(action.action)
        bindings.bind(action.subject); bindings.bind(action.detail); bindings.bind(action.amount?.minor); bindings.bind(action.amount?.currency.code)
        bindings.bind(action.at); bindings.bind(action.atMicroseconds)
    }

    func add(_ action: Action, _ db: Database) throws { try actions.add(action, db) }

    /// One action of a person: their summary, and their spending if it `spent` anything.
    func count(_ kind: MemberActivity.Kind, _ member: String, at: String, _ microseconds: Int64, counter: Counter?, spent: Money?) throws {
        let person = Person(kind: kind, member: ExactText(member))
        if let spent {
            // Checked first, so an action whose spending does not fit is counted nowhere.
            let key = Spending(person: person, currency: spent.currency.code)
            spending[key] = try ProjectionError.adding(spent.minor, to: spending[key] ?? 0,
                                                       "the spending of \(kind.rawValue) \(JSONView.quoted(member)) in \(spent.currency.code)")
        }
        // Entries keep the order their keys were first touched in, so a rebuild writes the same rows
        // in the same order every time.
        let first = Summary(firstSeen: at, lastSeen: at, lastSeenMicroseconds: microseconds)
        summaries[person, default: first].count(at: at, microseconds, counter: counter)
    }

    /// A cart opened (or opened again: its row is replaced, as `INSERT OR REPLACE` would).
    func openCart(_ cartID: String, member: String, store: String, at microseconds: Int64) {
        let cart = ExactText(cartID)
        carts[cart] = CartChange(opened: (member, store), lastActivityMicroseconds: microseconds, checkedOut: false)
        cartMembers[cart] = member
    }

    /// An item, a removal or an approval: the cart's last activity.
    func touchCart(_ cartID: String, at microseconds: Int64) {
        carts[ExactText(cartID), default: CartChange(lastActivityMicroseconds: microseconds)].lastActivityMicroseconds = microseconds
    }

    /// A checkout: the cart's last activity, and checked out.
    func checkOutCart(_ cartID: String, at microseconds: Int64) {
        let cart = ExactText(cartID)
        carts[cart, default: CartChange(lastActivityMicroseconds: microseconds)].lastActivityMicroseconds = microseconds
        carts[cart]?.checkedOut = true
    }

    public func finish(_ db: Database) throws {
        try actions.flush(db)
        for (cartID, change) in carts {
            if let opened = change.opened {
                try db.run("INSERT OR REPLACE INTO carts (cart_id, member_id, store_id, last_activity_us, checked_out) VALUES (?, ?, ?, ?, ?)") {
                    $0.bind(cartID.text); $0.bind(opened.member); $0.bind(opened.store); $0.bind(change.lastActivityMicroseconds)
                    $0.bind(change.checkedOut ?? false)
                }
            } else {
                // A cart opened in an earlier batch (or never: then there is no row, as before).
                try db.run("UPDATE carts SET last_activity_us = ?, checked_out = COALESCE(?, checked_out) WHERE cart_id = ?") {
                    $0.bind(change.lastActivityMicroseconds); $0.bind(change.checkedOut); $0.bind(cartID.text)
                }
            }
        }
        for (person, summary) in summaries {
            try db.run("""
                INSERT INTO members (kind, member_id, first_seen, last_seen, last_seen_us, actions, carts, checkouts, orders, payments, active)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                ON CONFLICT (kind, member_id) DO UPDATE SET last_seen = ?4, last_seen_us = ?5, actions = actions + ?6, carts = carts + ?7,
                    checkouts = checkouts + ?8, orders = orders + ?9, payments = payments + ?10, active = MIN(active, ?11)
                """) {
                $0.bind(person.kind.rawValue); $0.bind(person.member.text); $0.bind(summary.firstSeen); $0.bind(summary.lastSeen)
                $0.bind(summary.lastSeenMicroseconds); $0.bind(summary.actions); $0.bind(summary.carts); $0.bind(summary.checkouts)
                $0.bind(summary.orders); $0.bind(summary.payments); $0.bind(summary.active)
            }
        }
        for (key, minor) in spending {
            try db.run("""
                INSERT INTO member_spending (kind, member_id, currency, spent_minor) VALUES (?, ?, ?, ?)
                ON CONFLICT (kind, member_id, currency) DO UPDATE SET spent_minor = spent_minor + excluded.spent_minor
                """) { $0.bind(key.person.kind.rawValue); $0.bind(key.person.member.text); $0.bind(key.currency); $0.bind(minor) }
        }
    }
}
