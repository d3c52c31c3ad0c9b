import Foundation
import TallyLog

/// A stream's state built by folding its events.
public protocol Foldable: Sendable {
    init()
    mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws
}

/// Whether a stream has any event.
public struct Existence: Foldable {
    public var exists = false
    public init() {}
    public mutating func apply(_ type: String, _ payload: UnsafeRawBufferPointer) throws { exists = true }
}

/// A decision being made: the streams it read (their versions become the batch's expectations) and
/// the events it emits.
struct Draft {
    private(set) var events: [Emitted] = []
    private(set) var expectations: [String: ExpectedVersion] = [:]

    /// The state of `stream`, folded from its events (from a cached committed state when there is one);
    /// its version is remembered.
    mutating func load<State: Foldable>(_ stream: String, as _: State.Type = State.self, from streams: inout some StreamReading) throws -> State {
        let cache = streams.states
        var (cachedVersion, state) = cache?.get(stream, State.self) ?? (0, State())
        var committed: (version: UInt64, state: State)?
        let version = try streams.fold(stream, fromVersion: cachedVersion + 1) { type, payload, version, isCommitted in
            // The state just before the first uncommitted event is the last cacheable one.
            if !isCommitted && committed == nil { committed = (version - 1, state) }
            try state.apply(type, payload)
        }
        if let cache {
            let last = committed ?? (version, state)
            if last.version > cachedVersion { cache.put(stream, version: last.version, last.state) }
        }
        cachedVersion = version
        expectations[stream] = .exact(version)
        return state
    }

    /// Takes a unique value for `owner`: refused with `taken` if someone holds it, or with `theirs`
    /// (when given) if `owner` already does.
    mutating func claim(_ stream: String, kind: String, owner: String, from streams: inout some StreamReading, taken: Rejection,
                        theirs: Rejection? = nil) throws {
        if let holder = try load(stream, as: ClaimState.self, from: &streams).owner { throw holder == owner ? theirs ?? taken : taken }
        emit(stream, ValueClaimed(kind: kind, owner: owner))
    }

    /// Gives a value up, so it can be claimed again.
    mutating func release(_ stream: String, kind: String, owner: String, from streams: inout some StreamReading) throws {
        guard try load(stream, as: ClaimState.self, from: &streams).owner == owner else { return }
        emit(stream, ValueReleased(kind: kind, owner: owner))
    }

    mutating func emit(_ stream: String, _ event: some DomainEvent) {
        events.append(Emitted(stream: stream, event))
    }

    var decision: Decision { Decision(events: events, expectations: expectations) }
}

enum Require {
    static func admin(_ actor: Actor, _ what: String) throws {
        guard actor.role == .admin else { throw Rejection(.notAuthorized, "only an admin may \(what), not \(actor)") }
    }

    static func role(_ actor: Actor, _ roles: Set<Actor.Role>, _ what: String) throws {
        guard roles.contains(actor.role) else {
            throw Rejection(.notAuthorized, "only \(roles.map(\.rawValue).sorted().joined(separator: " or ")) may \(what), not \(actor)")
        }
    }

    /// The actor is `id` acting for themselves, or an admin.
    static func selfOrAdmin(_ actor: Actor, _ role: Actor.Role, _ id: String, _ what: String) throws {
        guard actor.role == .admin || (actor.role == role && actor.id == id) else {
            throw Rejection(.notAuthorized, "only \(role.rawValue) \(id) or an admin may \(what), not \(actor)")
        }
    }

    /// A name or an id: not empty, not beginning or ending with a space (a voucher "7 " would be
    /// another voucher than the "7" printed on it, and a name of spaces is none), at most 100 bytes,
    /// no control characters.
    static func field(_ name: String, _ value: String) throws {
        try trimmed(name, value)
        guard value.utf8.count <= 100, !value.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            throw Rejection(.invalidField, "\(name) must be at most 100 bytes without control characters")
        }
    }

    /// A text of a given length, as the seeds' tables hold them (a member's name 120 characters, an
    /// item's description 255, its aisle 10): `field`'s rules, counted in characters rather than bytes
    /// so a text in any script fits. nil (left out) passes.
    static func text(_ name: String, _ value: String?, charactersMax: Int = TextLimits.nameCharactersMax) throws {
        guard let value else { return }
        try trimmed(name, value, empty: " (leave it out instead)")
        guard value.count <= charactersMax, !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw Rejection(.invalidField, "\(name) must be at most \(charactersMax) characters without control characters")
        }
    }

    /// Not empty, and neither beginning nor ending with white space.
    private static func trimmed(_ name: String, _ value: String, empty: String = "") throws {
        guard let first = value.first, let last = value.last else { throw Rejection(.invalidField, "\(name) must not be empty\(empty)") }
        guard !first.isWhitespace, !last.isWhitespace else {
            throw Rejection(.invalidField, "\(name) \(JSONView.quoted(value)) must not begin or end with a space")
        }
    }

    /// A phone number as people write one: digits, with a leading "+" and spaces, hyphens, dots or
    /// parentheses between them, 5 to 15 digits (E.164's most).
    static func phone(_ name: String, _ value: String?) throws {
        guard let value else { return }
        let digits = value.filter(\.isASCII).filter(\.isNumber).count
        let allowed = value.enumerated().allSatisfy { index, character in
            (character.isASCII && character.isNumber) || " -.()".contains(character) || (character == "+" && index == 0)
        }
        guard allowed, (5...15).contains(digits), value.count <= 20 else {
            throw Rejection(.invalidField, "\(name) \(JSONView.quoted(value)) is not a phone number (+1 555 0100)")
        }
    }

    /// A slug, the last part of a URL: lowercase letters and digits in words joined by "-" ("world-atlas").
    static func slug(_ name: String, _ value: String) throws {
        try field(name, value)
        let words = value.split(separator: "-", omittingEmptySubsequences: false)
        guard words.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) } }) else {
            throw Rejection(.invalidField, "\(name) \(JSONView.quoted(value)) is not a slug: lowercase letters and digits in words joined by \"-\" (world-atlas)")
        }
    }

    /// An email address as people write one: a name, one "@", a domain, no spaces. The seeds' systems
    /// let anything in and were left with data they could not send a receipt to. (A domain without a
    /// dot is let through: intranets have them.)
    static func email(_ name: String, _ value: String) throws {
        try field(name, value)
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
              !value.contains(where: \.isWhitespace) else {
            throw Rejection(.invalidField, "\(name) \"\(value)\" is not an email address (name@example.org)")
        }
    }

    static func positive(_ amount: Money, _ what: String) throws {
        guard amount.minor > 0 else { throw Rejection(.nonPositiveAmount, "\(what) must be positive, not \(amount)") }
    }

    /// Units a command names (scanned, removed, ordered, received): a whole number from 1 to `max`.
    static func quantity(_ quantity: Int, max: Int, _ what: String) throws {
        guard quantity > 0 else { throw Rejection(.invalidField, "\(what) must be a positive whole number, not \(quantity)") }
        guard quantity <= max else { throw Rejection(.quantityTooLarge, "\(what) must be at most \(max), not \(quantity)") }
    }
}

/// How long a command's texts may be: as long as the seeds' tables hold them, so nothing recorded is
/// longer than the systems it came from could keep. Ids, emails and other keys are `Require.field`'s
/// 100 bytes.
public enum TextLimits {
    /// A member's first or last name, an operator's or a store's name: the self-checkout seed's `Member`
    /// table, varchar(120).
    public static let nameCharactersMax = 120
    /// An item's description, size and POS description: its `Item` table, varchar(255).
    public static let descriptionCharactersMax = 255
    /// An item's aisle and shelf: varchar(10).
    public static let shelfCharactersMax = 10
    /// An item's department code: varchar(15).
    public static let departmentCodeCharactersMax = 15
}

/// How many units a command may name. Checkout prices each unit of a cart ("3 for $1" splits a group's
/// price over its units), so the units of one item in a cart, like those of an order line, are kept to
/// what a shop sells in one go; a delivery or a stock correction may be larger. Counts past these,
/// or past what 64 bits hold in a log written behind the rules' back, are refused with
/// `quantityTooLarge`, never added up past the integer's range.
public enum Quantities {
    public static let perItemMax = 10_000
    /// An order's lines, a cart's lines at checkout (its items, and each scan of a variable-price
    /// code): the placing or checkout event records every line with its texts, up to about 3 KiB with
    /// the longest `TextLimits` allow, and one event's payload is at most 1 MiB (`Limits`). A bigger
    /// cart could never be checked out.
    public static let linesMax = 250
    public static let stockChangeMax = 1_000_000_000

    /// `a + b`, or a refusal naming `what` when it passes what an `Int` holds.
    static func sum(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        guard !overflow else { throw Rejection(.quantityTooLarge, "\(what()) passes \(Int.max), the most a 64-bit count holds") }
        return sum
    }

    /// `a − b`, checked the same way.
    static func difference(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
        let (difference, overflow) = a.subtractingReportingOverflow(b)
        guard !overflow else { throw Rejection(.quantityTooLarge, "\(what()) passes the range of a 64-bit count") }
        return difference
    }
}
