import Foundation
import TallyLMDB
import TallyMerkle

/// What `EventLog.upgrade` did.
public struct UpgradeReport: Sendable, Equatable {
    public let path: String
    /// The store format before; equal to `EventLog.formatVersion` when there was nothing to do.
    public let fromFormat: UInt32
    public let toFormat: UInt32
    public let events: UInt64
    public let streams: UInt64
}

extension EventLog {
    /// Brings a store of an earlier format to this build's, in one write transaction: all of it or,
    /// if anything fails (a record that does not chain, a full disk), none of it.
    ///
    /// Format 1 → 2 keeps every record as it is, bytes and hashes: format 2 readers read format 1
    /// records. It rebuilds what format 2 stores differently — the indexes (`streams`,
    /// `stream-events`, `type-events`, `event-ids`, with smaller entries) and the `merkle` table (nodes
    /// from 32 leaves up) — from the records, after checking every record's hash against its bytes and
    /// the one before it, and the rebuilt tree against the head. Stop every process using the store
    /// first: a writer of the old format would go on writing old entries.
    /// `progress` is called with (records done, records in all) as the records are checked and indexed.
    public static func upgrade(at path: String, options: LogOptions = LogOptions(),
                               progress: ((UInt64, UInt64) -> Void)? = nil) throws -> UpgradeReport {
        var options = options
        options.readOnly = false
        guard FileManager.default.fileExists(atPath: logDirectory(path) + "/data.mdb") else {
            throw LogError.notAStore(path: path, reason: "it has no log/data.mdb")
        }
        let environment = try openEnvironment(path: path, options: options, readOnly: false)
        let tables: LogTables
        do {
            tables = try LogTables(environment: environment, create: false)
        } catch let error as LMDBError where error.code == LMDBError.notFoundCode {
            throw LogError.notAStore(path: path, reason: "its LMDB environment has no Tally tables")
        }
        return try environment.write { txn in
            guard let format = try txn.get(tables.meta, key: MetaKey.format).map({ UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }) else {
                throw LogError.notAStore(path: path, reason: "it has no format version")
            }
            guard format <= formatVersion else { throw LogError.newerFormat(path: path, found: format, supported: formatVersion) }
            let head = try tables.head(txn)
            if format == formatVersion {
                return UpgradeReport(path: path, fromFormat: format, toFormat: format, events: head.position, streams: head.streamCount)
            }
            try rebuildIndexes(txn, tables: tables, head: head, progress: progress)
            var upgraded = formatVersion.littleEndian
            try withUnsafeBytes(of: &upgraded) { try txn.put(tables.meta, key: MetaKey.format, value: $0) }
            return UpgradeReport(path: path, fromFormat: format, toFormat: formatVersion, events: head.position, streams: head.streamCount)
        }
    }

    /// Empties the index and Merkle tables and fills them again from the records, in the shape this
    /// build writes; the head must agree with what the records give.
    static func rebuildIndexes(_ txn: WriteTransaction, tables: LogTables, head: LogHead, progress: ((UInt64, UInt64) -> Void)?) throws {
        for table in [tables.streams, tables.streamEvents, tables.typeEvents, tables.eventIDs, tables.merkle] { try txn.clear(table) }
        var streamCount: UInt64 = 0
        var chain = Hash.zero
        var frontier = MerkleFrontier()
        var eventIDMax: (UInt64, UInt64) = (0, 0)
        // Each stream's last version, by stream number: its versions must run 1, 2, 3… in position order.
        var lastVersions: [UInt32] = []
        // Stream entries arrive in position order; they are written a chunk at a time in key order, so
        // each B-tree page is copied once for many entries (as the writer's merges do).
        var streamEntries: [(number: UInt64, version: UInt64, position: UInt64)] = []
        var streamNumberMax: UInt64 = 0
        func flushStreamEntries() throws {
            streamNumberMax = try tables.appendStreamEntries(txn, &streamEntries, numberMax: streamNumberMax)
            streamEntries.removeAll(keepingCapacity: true)
        }
        try txn.withCursor(tables.events) { cursor in
            var entry = try cursor.first()
            var expected: UInt64 = 1
            while let current = entry {
                let position = LogReading.keyPosition(current.key)
                guard position == expected else {
                    throw LogError.corruptRecord(position: expected, reason: "the record is missing (the next one is at \(position))")
                }
                let record = try RecordView(bytes: current.value, position: position)
                guard record.computedHash(previous: chain) == record.hash else {
                    throw LogError.corruptRecord(position: position, reason: "its bytes do not give the hash it carries")
                }
                chain = record.hash
                guard position <= Limits.positionMax else { throw LogError.logFull(positionMax: Limits.positionMax) }
                guard record.version <= Limits.streamVersionMax else {
                    throw LogError.streamFull(stream: record.stream, versionMax: Limits.streamVersionMax)
                }
                // Streams are numbered in the order of their first events, as the writer numbers them.
                let number: UInt64
                if record.version == 1 {
                    streamCount += 1
                    number = streamCount
                    let inserted = try StreamNumberValue.with(number) { try txn.insert(tables.streams, key: record.streamBytes, value: $0) }
                    guard inserted else { throw LogError.corruptRecord(position: position, reason: "stream \(quoted(record.stream)) begins twice") }
                    lastVersions.append(1)
                } else {
                    guard let found = try tables.streamNumber(txn, streamUTF8: record.streamBytes) else {
                        throw LogError.corruptRecord(position: position, reason: "version \(record.version) of \(quoted(record.stream)), which has no version 1")
                    }
                    number = found
                    let previous = lastVersions[Int(number - 1)]
                    guard record.version == UInt64(previous) + 1 else {
                        throw LogError.corruptRecord(position: position, reason: "version \(record.version) of \(quoted(record.stream)) follows its version \(previous)")
                    }
                    lastVersions[Int(number - 1)] = UInt32(record.version)
                }
                streamEntries.append((number, record.version, position))
                if streamEntries.count == 1 << 20 { try flushStreamEntries() }
                try PositionValue.with(position) { value in
                    // A type's positions only grow: each is the last of its duplicates (a new type's first too).
                    try txn.put(tables.typeEvents, key: record.typeBytes, value: value, flags: .appendDuplicate)
                    let id = record.idBytes
                    let words = EventIDKey.words(id)
                    if words > eventIDMax {
                        try txn.put(tables.eventIDs, key: id, value: value, flags: .append)
                        eventIDMax = words
                    } else {
                        guard try txn.insert(tables.eventIDs, key: id, value: value) else {
                            throw LogError.corruptRecord(position: position, reason: "its event id \(record.id) is also an earlier event's")
                        }
                    }
                }
                try frontier.append(leaf: record.hash) { level, index, node in
                    guard level >= LogTables.merkleStoredLevelMin else { return }
                    try MerkleNodeKey.with(level: level, index: index) { key in
                        try node.withUnsafeBytes { try txn.put(tables.merkle, key: key, value: $0, flags: .append) }
                    }
                }
                if position % 65_536 == 0 { progress?(position, head.position) }
                expected += 1
                entry = try cursor.next()
            }
        }
        try flushStreamEntries()
        progress?(frontier.size, head.position)
        guard frontier.size == head.position, chain == head.chainHash, frontier.root == head.merkleRoot, streamCount == head.streamCount else {
            throw LogError.corruptRecord(position: head.position, reason: "the records (\(frontier.size) events, \(streamCount) streams) do not give the head "
                                         + "(\(head.position) events, \(head.streamCount) streams, its chain hash and Merkle root)")
        }
        var indexed = head.position.littleEndian
        try withUnsafeBytes(of: &indexed) { try txn.put(tables.meta, key: MetaKey.indexed, value: $0) }
    }
}
