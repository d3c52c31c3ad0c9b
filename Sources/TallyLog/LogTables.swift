import Foundation
import TallyLMDB
import TallyMerkle

/// The log's state as of a transaction: what `info` shows and what the next append builds on.
public struct LogHead: Sendable, Equatable {
    /// The last position; positions run gapless from 1, so this is also the number of events.
    public var position: UInt64
    /// The chain hash of the last record (all zero for an empty log).
    public var chainHash: Hash
    /// The latest recorded-at time; the next event's time is never earlier.
    public var lastRecordedAt: Timestamp
    public var streamCount: UInt64
    /// The right edge of the Merkle tree over every record, so the root is known without a walk.
    public var frontier: MerkleFrontier

    public var eventCount: UInt64 { position }
    public var merkleRoot: Hash { frontier.root }

    static let empty = LogHead(position: 0, chainHash: .zero, lastRecordedAt: Timestamp(microsecondsSinceEpoch: 0),
                               streamCount: 0, frontier: MerkleFrontier())

    /// Meta value "head": u64 position, i64 last recorded-at, u64 stream count, 32-byte chain hash, then
    /// one 32-byte hash per set bit of the position (the frontier, largest subtree first).
    func encoded() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(56 + 32 * frontier.subtrees.count)
        withUnsafeBytes(of: position.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: lastRecordedAt.microsecondsSinceEpoch.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: streamCount.littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: chainHash.bytes)
        for subtree in frontier.subtrees { out.append(contentsOf: subtree.hash.bytes) }
        return out
    }

    init(position: UInt64, chainHash: Hash, lastRecordedAt: Timestamp, streamCount: UInt64, frontier: MerkleFrontier) {
        self.position = position
        self.chainHash = chainHash
        self.lastRecordedAt = lastRecordedAt
        self.streamCount = streamCount
        self.frontier = frontier
    }

    init(decoding bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count >= 56 else { throw LogError.corruptRecord(position: 0, reason: "the log head is \(bytes.count) bytes") }
        position = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        lastRecordedAt = Timestamp(microsecondsSinceEpoch: Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: Int64.self)))
        streamCount = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        chainHash = Hash(loadingFrom: UnsafeRawBufferPointer(rebasing: bytes[24..<56]))
        let count = position.nonzeroBitCount
        guard bytes.count == 56 + 32 * count else { throw LogError.corruptRecord(position: position, reason: "the log head's Merkle frontier has the wrong size") }
        let hashes = (0..<count).map { Hash(loadingFrom: UnsafeRawBufferPointer(rebasing: bytes[(56 + 32 * $0)...])) }
        guard let frontier = MerkleFrontier(size: position, subtreeHashes: hashes) else {
            throw LogError.corruptRecord(position: position, reason: "the log head's Merkle frontier does not match its size")
        }
        self.frontier = frontier
    }
}

/// The LMDB tables of a store and the look-ups every reader and the writer share. All keys that
/// sort by number are big-endian so memcmp order is numeric order.
public struct LogTables: Sendable {
    /// position (u64 BE) → record (RecordCodec). Written with MDB_APPEND only.
    let events: Table
    /// stream id (UTF-8) → stream number (StreamNumberValue: LE, 1–8 bytes), assigned 1, 2, 3… at the stream's first event.
    let streams: Table
    /// stream number (u64 BE) → duplicates of version (u32 BE) ‖ position (u48 BE), sorted by version.
    let streamEvents: Table
    /// event type (UTF-8) → duplicates of position (u48 BE).
    let typeEvents: Table
    /// event id (16 bytes) → position (u48 BE): the persistent idempotency index.
    let eventIDs: Table
    /// last leaf index (u64 BE) ‖ level (u8) → hash of the perfect Merkle subtree at that level whose last
    /// leaf that is, for levels ≥ `merkleStoredLevelMin`. Nodes complete in this key order: appends.
    let merkle: Table
    /// "format" (u32 LE), "store-id" (16 bytes), "created-at" (i64 LE µs), "head" (LogHead), "indexed"
    /// (u64 LE: the indexed watermark; events after it have their stream and type entries in the tail).
    let meta: Table

    /// How many events the writer leaves to the index tail, by default, before it merges the older half
    /// of their entries into `stream-events` and `type-events` in one sorted pass: bounds the tail each
    /// process keeps in memory (a few MB) and rescans after opening (65,536 records, about 30 ms), while
    /// making each merged B-tree page carry many entries instead of one.
    public static let indexTailEventsMaxDefault: UInt64 = 65_536

    /// Subtrees below this level are recomputed from records when a proof needs them (a proof reads
    /// 31 records' hashes for its five lowest siblings); storing every level would cost two hashes per
    /// event on disk, storing from 32 leaves up costs one per sixteen.
    static let merkleStoredLevelMin = 5

    static let tableNames = ["events", "streams", "stream-events", "type-events", "event-ids", "merkle", "meta"]

    init(environment: Environment, create: Bool) throws {
        events = try environment.openTable("events", create: create)
        streams = try environment.openTable("streams", create: create)
        streamEvents = try environment.openTable("stream-events", flags: [.duplicateSort, .duplicateFixed], create: create)
        typeEvents = try environment.openTable("type-events", flags: [.duplicateSort, .duplicateFixed], create: create)
        eventIDs = try environment.openTable("event-ids", create: create)
        merkle = try environment.openTable("merkle", create: create)
        meta = try environment.openTable("meta", create: create)
    }

    // MARK: Look-ups shared by readers and the writer

    func head(_ txn: some TransactionReading) throws -> LogHead {
        guard let bytes = try txn.get(meta, key: MetaKey.head) else { return .empty }
        return try LogHead(decoding: bytes)
    }

    /// Events up to this position have their stream and type entries in the B-trees. A store without
    /// the key is fully indexed.
    func indexedWatermark(_ txn: some TransactionReading, head: UInt64) throws -> UInt64 {
        guard let bytes = try txn.get(meta, key: MetaKey.indexed) else { return head }
        return UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
    }

    func record(_ txn: some TransactionReading, at position: UInt64) throws -> RecordView? {
        try withBigEndian(position) { key in
            guard let bytes = try txn.get(events, key: key) else { return nil }
            return try RecordView(bytes: bytes, position: position)
        }
    }

    func streamNumber(_ txn: some TransactionReading, streamUTF8: UnsafeRawBufferPointer) throws -> UInt64? {
        guard let value = try txn.get(streams, key: streamUTF8) else { return nil }
        return StreamNumberValue.decode(value)
    }

    /// The stream's current version: its last tail entry, else its last (version, position) duplicate.
    func lastVersion(_ txn: some TransactionReading, stream: String, streamNumber: UInt64, tail: TailView) throws -> UInt64 {
        if let last = tail.entries(stream: stream).last { return last.version }
        return try lastIndexed(txn, streamNumber: streamNumber)?.version ?? 0
    }

    /// The stream's last entry in the `stream-events` B-tree.
    func lastIndexed(_ txn: some TransactionReading, streamNumber: UInt64) throws -> (version: UInt64, position: UInt64)? {
        try withBigEndian(streamNumber) { key in
            try txn.withCursor(streamEvents) { cursor in
                guard try cursor.find(key) != nil, let last = try cursor.lastDuplicate() else { return nil }
                return StreamEntry.decode(last.value)
            }
        }
    }

    /// Writes `entries` into `stream-events` sorted by (stream number, version), so each B-tree page is
    /// copied once for many entries: a stream numbered past every key (`numberMax`, the greatest so far)
    /// is appended, and an existing stream's entry goes at the end of its duplicates. Returns the new
    /// greatest stream number.
    func appendStreamEntries(_ txn: WriteTransaction, _ entries: inout [(number: UInt64, version: UInt64, position: UInt64)],
                             numberMax: UInt64) throws -> UInt64 {
        Self.sortByStreamAndVersion(&entries)
        var numberMax = numberMax
        // One cursor walks the keys in order, so most puts find their key on the page it is on; each
        // stream's entries go in one call (`MDB_MULTIPLE`), a new stream's at the end of the table.
        var values = [UInt8](repeating: 0, count: entries.count * StreamEntry.byteCount)
        try values.withUnsafeMutableBytes { values in
            try txn.withWriteCursor(streamEvents) { cursor in
                var start = 0
                while start < entries.count {
                    let number = entries[start].number
                    var end = start
                    while end < entries.count && entries[end].number == number {
                        StreamEntry.store(version: entries[end].version, position: entries[end].position, into: values,
                                          at: (end - start) * StreamEntry.byteCount)
                        end += 1
                    }
                    let flags: PutFlags = number > numberMax ? [.append, .appendDuplicate] : .appendDuplicate
                    numberMax = max(numberMax, number)
                    try withBigEndian(number) { key in
                        try cursor.putDuplicates(key: key, values: UnsafeRawBufferPointer(rebasing: values[..<((end - start) * StreamEntry.byteCount)]),
                                                 valueSize: StreamEntry.byteCount, flags: flags)
                    }
                    start = end
                }
            }
        }
        return numberMax
    }

    /// Sorts stream entries by (stream number, version). Entries come in position order, where each
    /// stream's versions rise, so a stable sort by stream number alone gives that order: a radix sort,
    /// 11 bits of the number a pass, as many passes as the greatest number needs. The comparison sort
    /// it replaces took a tenth of the writer's time (its merges sort 32,768 entries each). Input that
    /// breaks the premise (a version not above the one before it in its stream) is sorted by
    /// comparison instead.
    static func sortByStreamAndVersion(_ entries: inout [(number: UInt64, version: UInt64, position: UInt64)]) {
        guard entries.count > 1 else { return }
        let numberMax = entries.reduce(UInt64(0)) { max($0, $1.number) }
        let radixBits = 11, bucketCount = 1 << 11, mask = UInt64(bucketCount - 1)
        var sorted = entries
        var scratch = entries
        var shift = 0
        var counts = [Int](repeating: 0, count: bucketCount + 1)
        while shift < 64 && (numberMax >> UInt64(shift)) > 0 {
            for index in counts.indices { counts[index] = 0 }
            for entry in sorted { counts[Int((entry.number >> UInt64(shift)) & mask) + 1] += 1 }
            for bucket in 0..<bucketCount { counts[bucket + 1] += counts[bucket] }
            for entry in sorted {
                let bucket = Int((entry.number >> UInt64(shift)) & mask)
                scratch[counts[bucket]] = entry
                counts[bucket] += 1
            }
            swap(&sorted, &scratch)
            shift += radixBits
        }
        for index in 1..<sorted.count where sorted[index].number == sorted[index - 1].number && sorted[index].version <= sorted[index - 1].version {
            entries.sort { ($0.number, $0.version) < ($1.number, $1.version) }
            return
        }
        entries = sorted
    }

    /// Appends each type's positions (ascending, and after every position the table holds for that
    /// type) to its duplicates in `type-events`: one call per type, through one cursor.
    func appendTypeEntries(_ txn: WriteTransaction, _ positionsByType: [(type: ContiguousArray<UInt8>, positions: [UInt64])]) throws {
        var values = [UInt8](repeating: 0, count: (positionsByType.map(\.positions.count).max() ?? 0) * PositionValue.byteCount)
        try values.withUnsafeMutableBytes { values in
            try txn.withWriteCursor(typeEvents) { cursor in
                for (type, positions) in positionsByType where !positions.isEmpty {
                    for (index, position) in positions.enumerated() { PositionValue.store(position, into: values, at: index * PositionValue.byteCount) }
                    try type.withUnsafeBytes { key in
                        try cursor.putDuplicates(key: key, values: UnsafeRawBufferPointer(rebasing: values[..<(positions.count * PositionValue.byteCount)]),
                                                 valueSize: PositionValue.byteCount, flags: .appendDuplicate)
                    }
                }
            }
        }
    }

    func position(_ txn: some TransactionReading, ofEventID id: UUID) throws -> UInt64? {
        var raw = id.uuid
        return try withUnsafeBytes(of: &raw) { key in
            guard let value = try txn.get(eventIDs, key: key) else { return nil }
            guard value.count == PositionValue.byteCount else {
                throw LogError.corruptRecord(position: 0, reason: "the event-ids entry of \(id) is \(value.count) bytes, not \(PositionValue.byteCount)")
            }
            return PositionValue.decode(value)
        }
    }
}

enum MetaKey {
    static var format: UnsafeRawBufferPointer { UnsafeRawBufferPointer(staticBytes: "format") }
    static var storeID: UnsafeRawBufferPointer { UnsafeRawBufferPointer(staticBytes: "store-id") }
    static var createdAt: UnsafeRawBufferPointer { UnsafeRawBufferPointer(staticBytes: "created-at") }
    static var head: UnsafeRawBufferPointer { UnsafeRawBufferPointer(staticBytes: "head") }
    static var indexed: UnsafeRawBufferPointer { UnsafeRawBufferPointer(staticBytes: "indexed") }
}

extension UnsafeRawBufferPointer {
    /// The UTF-8 bytes of a string literal, which live as long as the program.
    init(staticBytes literal: StaticString) {
        self.init(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
    }
}

/// A position inside an index value (`event-ids`, `type-events`, `stream-events`): u48 big-endian,
/// 6 bytes. Positions stop at `Limits.positionMax`, so two bytes of every entry would always be zero.
enum PositionValue {
    static let byteCount = 6

    @inline(__always)
    static func decode(_ value: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt64 {
        let high = UInt64(UInt16(bigEndian: value.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
        return high << 32 | UInt64(UInt32(bigEndian: value.loadUnaligned(fromByteOffset: offset + 2, as: UInt32.self)))
    }

    @inline(__always)
    static func store(_ position: UInt64, into raw: UnsafeMutableRawBufferPointer, at offset: Int = 0) {
        raw.storeBytes(of: UInt16(truncatingIfNeeded: position >> 32).bigEndian, toByteOffset: offset, as: UInt16.self)
        raw.storeBytes(of: UInt32(truncatingIfNeeded: position).bigEndian, toByteOffset: offset + 2, as: UInt32.self)
    }

    @inline(__always)
    static func with<R>(_ position: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 1) { raw in
            store(position, into: raw)
            return try body(UnsafeRawBufferPointer(raw))
        }
    }
}

/// A `stream-events` duplicate: version (u32 BE) ‖ position (u48 BE), 10 bytes. Versions stop at
/// `Limits.streamVersionMax`. Big-endian, so LMDB's byte order of a stream's duplicates is version order.
enum StreamEntry {
    static let byteCount = 4 + PositionValue.byteCount

    @inline(__always)
    static func decode(_ value: UnsafeRawBufferPointer) -> (version: UInt64, position: UInt64) {
        (UInt64(UInt32(bigEndian: value.loadUnaligned(fromByteOffset: 0, as: UInt32.self))), PositionValue.decode(value, at: 4))
    }

    @inline(__always)
    static func store(version: UInt64, position: UInt64, into raw: UnsafeMutableRawBufferPointer, at offset: Int) {
        raw.storeBytes(of: UInt32(min(version, Limits.streamVersionMax)).bigEndian, toByteOffset: offset, as: UInt32.self)
        PositionValue.store(min(position, Limits.positionMax), into: raw, at: offset + 4)
    }

    /// The entry for (version, position); a `version` over `Limits.streamVersionMax` (a seek past every
    /// entry) is clamped to it.
    static func with<R>(version: UInt64, position: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 1) { raw in
            store(version: version, position: position, into: raw, at: 0)
            return try body(UnsafeRawBufferPointer(raw))
        }
    }
}

/// A `streams` value: the stream number, little-endian, without its high zero bytes (1 to 8 bytes).
enum StreamNumberValue {
    static func decode(_ value: UnsafeRawBufferPointer) -> UInt64 {
        var number: UInt64 = 0
        for (index, byte) in value.prefix(8).enumerated() { number |= UInt64(byte) << (8 * UInt64(index)) }
        return number
    }

    static func with<R>(_ number: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var littleEndian = number.littleEndian
        let count = max(1, 8 - number.leadingZeroBitCount / 8)
        return try withUnsafeBytes(of: &littleEndian) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }
}

@inline(__always)
func withBigEndian<R>(_ value: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    var bigEndian = value.bigEndian
    return try withUnsafeBytes(of: &bigEndian) { try body($0) }
}

/// Subtree hashes over a transaction: stored levels are looked up, lower ones recomputed from records.
struct StoredSubtreeHashes<Transaction: TransactionReading>: SubtreeHashSource {
    let txn: Transaction
    let tables: LogTables

    func perfectSubtreeHash(level: Int, index: UInt64) throws -> Hash {
        if level >= LogTables.merkleStoredLevelMin {
            let found = try MerkleNodeKey.with(level: level, index: index) { key in
                try txn.get(tables.merkle, key: key).map { Hash(loadingFrom: $0) }
            }
            guard let found else {
                throw LogError.corruptRecord(position: (index << UInt64(level)) + 1, reason: "the Merkle node at level \(level), index \(index) is missing")
            }
            return found
        }
        // The subtree's 2^level leaves are consecutive records: one cursor walk reads their hashes (a
        // proof's five lowest siblings cost five seeks, not 31 look-ups), then they are folded pairwise.
        let first = (index << UInt64(level)) + 1
        var hashes: [Hash] = []
        hashes.reserveCapacity(1 << level)
        try txn.withCursor(tables.events) { cursor in
            var entry = try withBigEndian(first) { try cursor.seek($0) }
            for position in first..<(first + (1 << UInt64(level))) {
                guard let current = entry, LogReading.keyPosition(current.key) == position else {
                    throw LogError.corruptRecord(position: position, reason: "the record is missing")
                }
                hashes.append(try RecordView(bytes: current.value, position: position).hash)
                entry = try cursor.next()
            }
        }
        while hashes.count > 1 {
            hashes = stride(from: 0, to: hashes.count, by: 2).map { MerkleHash.node(hashes[$0], hashes[$0 + 1]) }
        }
        return hashes[0]
    }
}

/// The `merkle` table's key for the node at (level, index): the index of its last leaf, then the level.
/// A node completes when its last leaf is appended, and the nodes one leaf completes go up in level,
/// so keys arrive in increasing order and every insert is an MDB_APPEND (full pages).
enum MerkleNodeKey {
    static func with<R>(level: Int, index: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: 9, alignment: 1) { raw in
            let lastLeaf = ((index + 1) << UInt64(level)) - 1
            raw.storeBytes(of: lastLeaf.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw[8] = UInt8(level)
            return try body(UnsafeRawBufferPointer(raw))
        }
    }
}
