import GRDB
import TallyDomain
import TallyProjection

/// What `members` adds up over one batch and writes when it finishes: each person's summary and
/// spending once per batch instead of once per action, and each cart's last activity once. Rows are
/// written in the order their keys were first touched, so a rebuild writes the same rows in the same
/// order every time.
public final class MemberBatch: ProjectionBatch {
    /// What an action adds to its person's counters.
    enum Counter { case cart, checkout, order, payment, deactivation }

    struct Person: Hashable {
        var kind: MemberActivity.Kind
        var member: String
    }

    struct Summary {
        var firstSeen: String
        var lastSeen: String
        var lastSeenMicroseconds: Int64
        var actions = 0, carts = 0, checkouts = 0, orders = 0, payments = 0
        var active = 1
    }

    struct Spending: Hashable {
        var person: Person
        var currency: String
    }

    private var summaries = FirstTouchOrdered<Person, Summary>()
    private var spending = FirstTouchOrdered<Spending, Int64>()
    /// Carts touched by an item or an approval since their row last had its time: their last activity.
    private var cartTimes = FirstTouchOrdered<String, Int64>()
    /// Cart and order owners seen in this batch, so each is looked up in SQLite at most once.
    var cartMembers: [String: String] = [:]
    var orderMembers: [String: String] = [:]

    func count(_ kind: MemberActivity.Kind, _ member: String, at: String, _ microseconds: Int64, counter: Counter?) {
        summaries.update(Person(kind: kind, member: member), first: Summary(firstSeen: at, lastSeen: at, lastSeenMicroseconds: microseconds)) {
            $0.lastSeen = at
            $0.lastSeenMicroseconds = microseconds
            $0.actions += 1
            switch counter {
            case .cart: $0.carts += 1
            case .checkout: $0.checkouts += 1
            case .order: $0.orders += 1
            case .payment: $0.payments += 1
            case .deactivation: $0.active = 0
            case nil: break
            }
        }
    }

    func spend(_ kind: MemberActivity.Kind, _ member: String, _ amount: Money) {
        spending.update(Spending(person: Person(kind: kind, member: member), currency: amount.currency.code), first: 0) { $0 += amount.minor }
    }

    /// An item, a removal or an approval: the cart's last activity, written at the end.
    func touchCart(_ cartID: String, at microseconds: Int64) {
        cartTimes.update(cartID, first: microseconds) { $0 = microseconds }
    }

    /// The cart's row was just written with this event's time (opened or checked out): nothing of the
    /// batch's older times is left to write. `member` is its owner when the row says so.
    func cartWritten(_ cartID: String, member: String?) {
        cartTimes.remove(cartID)
        if let member { cartMembers[cartID] = member }
    }

    public func finish(_ db: Database) throws {
        for (cartID, microseconds) in cartTimes.inOrder {
            try db.run("UPDATE carts SET last_activity_us = ? WHERE cart_id = ?") { $0.bind(microseconds); $0.bind(cartID) }
        }
        for (person, summary) in summaries.inOrder {
            try db.run("""
                INSERT INTO members (kind, member_id, first_seen, last_seen, last_seen_us, actions, carts, checkouts, orders, payments, active)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                ON CONFLICT (kind, member_id) DO UPDATE SET last_seen = ?4, last_seen_us = ?5, actions = actions + ?6, carts = carts + ?7,
                    checkouts = checkouts + ?8, orders = orders + ?9, payments = payments + ?10, active = MIN(active, ?11)
                """) {
                $0.bind(person.kind.rawValue); $0.bind(person.member); $0.bind(summary.firstSeen); $0.bind(summary.lastSeen)
                $0.bind(summary.lastSeenMicroseconds); $0.bind(summary.actions); $0.bind(summary.carts); $0.bind(summary.checkouts)
                $0.bind(summary.orders); $0.bind(summary.payments); $0.bind(summary.active)
            }
        }
        for (key, minor) in spending.inOrder {
            try db.run("""
                INSERT INTO member_spending (kind, member_id, currency, spent_minor) VALUES (?, ?, ?, ?)
                ON CONFLICT (kind, member_id, currency) DO UPDATE SET spent_minor = spent_minor + excluded.spent_minor
                """) { $0.bind(key.person.kind.rawValue); $0.bind(key.person.member); $0.bind(key.currency); $0.bind(minor) }
        }
    }
}

/// Values by key, handed out in the order their keys were first touched (or touched again after
/// being removed): what keeps a batch's writes in the same order in every rebuild.
struct FirstTouchOrdered<Key: Hashable, Value> {
    private var entries: [Key: (sequence: Int, value: Value)] = [:]
    private var nextSequence = 0

    /// Changes the key's value, starting from `first` if the key is not here.
    mutating func update(_ key: Key, first: @autoclosure () -> Value, _ change: (inout Value) -> Void) {
        if let index = entries.index(forKey: key) {
            change(&entries.values[index].value)
        } else {
            var value = first()
            change(&value)
            entries[key] = (nextSequence, value)
            nextSequence += 1
        }
    }

    mutating func remove(_ key: Key) { entries[key] = nil }

    var inOrder: [(key: Key, value: Value)] {
        entries.sorted { $0.value.sequence < $1.value.sequence }.map { ($0.key, $0.value.value) }
    }
}
