import Foundation
import TallyDomain
import TallyLog

/// Event types by number: each distinct type's bytes are matched once and named by one shared
/// `String`, so a projector's per-event type checks are array look-ups, not a new string and three
/// hashes (its own types, upcasting, personal data) per event. It numbers at most `capacity` types,
/// so its memory is bounded whatever the log holds; a type met past that is worked out per event.
struct EventTypeTable {
    private(set) var names: [String] = []
    private var utf8: [[UInt8]] = []
    /// Open addressing: indices into `names`, -1 where empty; kept at most half full.
    private var slots = [Int32](repeating: -1, count: 64)
    static let capacity = 65_536

    /// The number of the type whose UTF-8 bytes are `type` (given it on first sight), or nil if it is
    /// new and the table is full.
    mutating func number(of type: UnsafeRawBufferPointer) -> Int? {
        let mask = slots.count - 1
        var slot = Self.hash(type) & mask
        while true {
            let entry = Int(slots[slot])
            if entry < 0 { break }
            if utf8[entry].count == type.count && utf8[entry].withUnsafeBytes({ Self.same($0, type) }) { return entry }
            slot = (slot + 1) & mask
        }
        guard names.count < Self.capacity else { return nil }
        let number = names.count
        names.append(String(decoding: type, as: UTF8.self))
        utf8.append(Array(type))
        if names.count * 2 > slots.count {
            rehash(capacity: slots.count * 2)
        } else {
            slots[slot] = Int32(number)
        }
        return number
    }

    private static func same(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard let left = a.baseAddress, let right = b.baseAddress else { return a.count == b.count }
        return memcmp(left, right, a.count) == 0
    }

    private mutating func rehash(capacity: Int) {
        slots = [Int32](repeating: -1, count: capacity)
        for (number, bytes) in utf8.enumerated() {
            var slot = bytes.withUnsafeBytes { Self.hash($0) } & (capacity - 1)
            while slots[slot] >= 0 { slot = (slot + 1) & (capacity - 1) }
            slots[slot] = Int32(number)
        }
    }

    /// FNV-1a: types are short, and the table only needs them spread. Whoever writes the log could
    /// choose types that collide; the capacity keeps that to slower look-ups, never more memory.
    private static func hash(_ bytes: UnsafeRawBufferPointer) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: hash ^ (hash >> 29))
    }
}

/// How one projector treats an event type: worked out the first time the type is met.
struct TypeHandling {
    let name: String
    /// One of the projector's `eventTypes`: the others are passed over without being looked at.
    let wanted: Bool
    /// The type's current schema version, if it was ever upcast (see `Upcasting`).
    let currentSchema: UInt16?
    /// Its payload carries sealed personal fields (see `PersonalData`).
    let personal: Bool

    func needsUpcast(_ record: RecordView) -> Bool { currentSchema.map { $0 != record.schemaVersion } ?? false }
}

/// Each type number's handling, for one projector and one numbering.
struct TypeHandlings {
    let eventTypes: Set<String>
    private var byNumber: [TypeHandling?] = []

    init(_ eventTypes: Set<String>) { self.eventTypes = eventTypes }

    @inline(__always)
    mutating func handling(_ number: Int, names: [String]) -> TypeHandling {
        if number < byNumber.count, let known = byNumber[number] { return known }
        let handling = Self.handling(names[number], eventTypes)
        if number >= byNumber.count { byNumber.append(contentsOf: repeatElement(nil, count: number + 1 - byNumber.count)) }
        byNumber[number] = handling
        return handling
    }

    /// Worked out from scratch, for a type the table had no room to number.
    static func handling(_ name: String, _ eventTypes: Set<String>) -> TypeHandling {
        TypeHandling(name: name, wanted: eventTypes.contains(name), currentSchema: Upcasting.currentVersions[name],
                     personal: PersonalData.isPersonal(name))
    }
}

/// A projector's reads of the log, one snapshot per batch, with each record's type handling.
struct BatchReader {
    let log: EventLog
    private var table = EventTypeTable()
    private var handlings: TypeHandlings

    init(log: EventLog, eventTypes: Set<String>) {
        self.log = log
        handlings = TypeHandlings(eventTypes)
    }

    /// Calls `body` with each record from `first` through `last` (positions) and its type's handling,
    /// in order, until it returns false or the log ends.
    mutating func forEach(first: UInt64, last: UInt64, _ body: (RecordView, TypeHandling) throws -> Bool) throws {
        try log.withSnapshot { snapshot in
            try snapshot.forEach(ReadQuery(.all, from: first, untilPosition: last)) { record in
                guard let number = table.number(of: record.typeBytes) else {
                    return try body(record, TypeHandlings.handling(record.type, handlings.eventTypes))
                }
                return try body(record, handlings.handling(number, names: table.names))
            }
        }
    }
}
