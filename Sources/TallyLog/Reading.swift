import Foundation
import TallyLMDB
import TallyMerkle

/// What to read.
public struct ReadQuery: Sendable, Equatable {
    public enum Selection: Sendable, Equatable {
        /// The whole log, by position.
        case all
        /// One stream, by version.
        case stream(String)
        /// Every event of one type, by position.
        case type(String)
    }

    public var selection: Selection
    /// Where to start, inclusive: a position (all, type) or a stream version (stream). For backward
    /// reads `nil` means the end.
    public var from: UInt64?
    public var backward: Bool
    /// At most this many events.
    public var limit: Int?
    /// Ignore events after this position: the log as it stood then.
    public var untilPosition: UInt64?
    /// Ignore events before this position: the log from a moment on (the first position recorded at
    /// or after a time is `position(atOrBefore:)` of the microsecond before it, plus one). Unlike
    /// `from`, it is a position whatever the selection.
    public var sincePosition: UInt64?

    public init(_ selection: Selection = .all, from: UInt64? = nil, backward: Bool = false, limit: Int? = nil, untilPosition: UInt64? = nil,
                sincePosition: UInt64? = nil) {
        self.selection = selection
        self.from = from
        self.backward = backward
        self.limit = limit
        self.untilPosition = untilPosition
        self.sincePosition = sincePosition
    }
}

/// Scans shared by snapshots, readers and the writer's view. Each calls `body` with zero-copy views,
/// in order, until it returns false or the selection ends.
enum LogReading {
    static func scanAll(_ txn: some TransactionReading, tables: LogTables, from: UInt64?, backward: Bool, untilPosition: UInt64?,
                        _ body: (RecordView) throws -> Bool) throws {
        try txn.withCursor(tables.events) { cursor in
            var entry: Cursor.Entry?
            if backward {
                let start = min(from ?? .max, untilPosition ?? .max)
                entry = try withBigEndian(start) { key in try cursor.seek(key) }
                if let found = entry {
                    if keyPosition(found.key) > start { entry = try cursor.previous() }
                } else {
                    entry = try cursor.last()  // Every position is below `start`.
                }
            } else {
                entry = try withBigEndian(max(from ?? 1, 1)) { key in try cursor.seek(key) }
            }
            // Not in the writer's transaction: what it scans is its own recent events, in memory.
            var readAhead = txn is ReadTransaction ? ReadAhead(backward: backward) : nil
            // Positions have no gaps: a scan never steps over a missing record in silence. (Going
            // backward, the first record found may lie below `from`, past the log's end.)
            var expected: UInt64? = backward ? nil : max(from ?? 1, 1)
            while let current = entry {
                let position = keyPosition(current.key)
                if let untilPosition, position > untilPosition { return }
                if let expected, position != expected {
                    throw LogError.corruptRecord(position: expected, reason: "the record is missing: the log steps from position "
                                                 + "\(backward ? expected + 1 : expected - 1) to \(position)")
                }
                expected = backward ? position &- 1 : position + 1
                readAhead?.note(current.value)
                let record = try RecordView(bytes: current.value, position: position)
                guard try body(record) else { return }
                entry = backward ? try cursor.previous() : try cursor.next()
            }
        }
    }

    /// A stream's events: its indexed entries (B-tree, up to the watermark), then its tail entries.
    static func scanStream(_ txn: some TransactionReading, tables: LogTables, tail: TailView, stream: String, fromVersion: UInt64?,
                           backward: Bool, untilPosition: UInt64?, _ body: (RecordView) throws -> Bool) throws {
        let utf8 = ContiguousArray(stream.utf8)
        guard let number = try utf8.withUnsafeBytes({ try tables.streamNumber(txn, streamUTF8: $0) }) else { return }
        let tailEntries = tail.entries(stream: stream)
        func visit(_ position: UInt64) throws -> Bool {
            guard let record = try tables.record(txn, at: position) else {
                throw LogError.corruptRecord(position: position, reason: "stream \(quoted(stream)) points at a missing record")
            }
            return try body(record)
        }
        let limit = untilPosition ?? .max
        if backward {
            let start = fromVersion ?? .max
            for entry in tailEntries.reversed() where entry.version <= start && entry.position <= limit {
                guard try visit(entry.position) else { return }
            }
        }
        let continueAfterIndexed: Bool = try withBigEndian(number) { key in
            try txn.withCursor(tables.streamEvents) { cursor in
                let start = fromVersion ?? (backward ? .max : 1)
                var entry = try StreamEntry.with(version: start, position: 0) { try cursor.seek(key, duplicateAtLeast: $0) }
                if backward {
                    if let found = entry, StreamEntry.decode(found.value).version > start { entry = try cursor.previousDuplicate() }
                    if entry == nil, try cursor.find(key) != nil, let last = try cursor.lastDuplicate(), StreamEntry.decode(last.value).version <= start {
                        entry = last
                    }
                }
                while let current = entry {
                    let (_, position) = StreamEntry.decode(current.value)
                    if position > limit {
                        if backward { entry = try cursor.previousDuplicate(); continue } else { return false }
                    }
                    guard try visit(position) else { return false }
                    entry = backward ? try cursor.previousDuplicate() : try cursor.nextDuplicate()
                }
                return true
            }
        }
        if !backward && continueAfterIndexed {
            let start = fromVersion ?? 1
            for entry in tailEntries where entry.version >= start {
                if entry.position > limit { return }
                guard try visit(entry.position) else { return }
            }
        }
    }

    /// A type's events: its indexed positions (B-tree, up to the watermark), then its tail positions.
    static func scanType(_ txn: some TransactionReading, tables: LogTables, tail: TailView, type: String, from: UInt64?, backward: Bool,
                         untilPosition: UInt64?, _ body: (RecordView) throws -> Bool) throws {
        let tailPositions = tail.positions(type: type)
        let limit = untilPosition ?? .max
        func visit(_ position: UInt64) throws -> Bool {
            guard let record = try tables.record(txn, at: position) else {
                throw LogError.corruptRecord(position: position, reason: "type \(quoted(type)) points at a missing record")
            }
            return try body(record)
        }
        if backward {
            let start = min(from ?? .max, limit)
            for position in tailPositions.reversed() where position <= start {
                guard try visit(position) else { return }
            }
        }
        let utf8 = ContiguousArray(type.utf8)
        let continueAfterIndexed: Bool = try utf8.withUnsafeBytes { key in
            try txn.withCursor(tables.typeEvents) { cursor in
                guard try cursor.find(key) != nil else { return true }
                let start = backward ? min(from ?? .max, limit) : (from ?? 1)
                var entry = try PositionValue.with(min(start, Limits.positionMax)) { try cursor.seek(key, duplicateAtLeast: $0) }
                if backward {
                    if let found = entry, PositionValue.decode(found.value) > start { entry = try cursor.previousDuplicate() }
                    if entry == nil, try cursor.find(key) != nil, let last = try cursor.lastDuplicate(), PositionValue.decode(last.value) <= start {
                        entry = last
                    }
                }
                while let current = entry {
                    let position = PositionValue.decode(current.value)
                    if position > limit, !backward { return false }
                    guard try visit(position) else { return false }
                    entry = backward ? try cursor.previousDuplicate() : try cursor.nextDuplicate()
                }
                return true
            }
        }
        if !backward && continueAfterIndexed {
            for position in tailPositions where position >= (from ?? 1) {
                if position > limit { return }
                guard try visit(position) else { return }
            }
        }
    }

    static func scan(_ txn: some TransactionReading, tables: LogTables, tail: IndexTail, query: ReadQuery, from: UInt64?,
                     _ body: (RecordView) throws -> Bool) throws {
        var from = from
        let since = query.sincePosition ?? 1
        // Positions grow along every forward scan and shrink along every backward one, so events before
        // `since` are skipped going forward (a position scan starts there) and end a backward scan.
        if case .stream = query.selection {} else if !query.backward { from = max(from ?? 1, since) }
        func sliced(_ record: RecordView) throws -> Bool {
            guard record.position >= since else { return !query.backward }
            return try body(record)
        }
        switch query.selection {
        case .all: try scanAll(txn, tables: tables, from: from, backward: query.backward, untilPosition: query.untilPosition, sliced)
        case .stream(let stream):
            try scanStream(txn, tables: tables, tail: try tail.view(txn, tables: tables), stream: stream, fromVersion: from,
                           backward: query.backward, untilPosition: query.untilPosition, sliced)
        case .type(let type):
            try scanType(txn, tables: tables, tail: try tail.view(txn, tables: tables), type: type, from: from,
                         backward: query.backward, untilPosition: query.untilPosition, sliced)
        }
    }

    @inline(__always)
    static func keyPosition(_ key: UnsafeRawBufferPointer) -> UInt64 { UInt64(bigEndian: key.loadUnaligned(as: UInt64.self)) }
}

/// A consistent, read-only view of the log as of one moment. Only exists inside `EventLog.withSnapshot`;
/// the `RecordView`s it hands out are valid only inside it.
public struct LogSnapshot {
    let txn: ReadTransaction
    let tables: LogTables
    let tail: IndexTail

    public func head() throws -> LogHead { try tables.head(txn) }

    public func record(at position: UInt64) throws -> RecordView? { try tables.record(txn, at: position) }

    /// Calls `body` with each selected record, in order, until it returns false. Never copies.
    public func forEach(_ query: ReadQuery, _ body: (RecordView) throws -> Bool) throws {
        var remaining = query.limit ?? .max
        guard remaining > 0 else { return }
        try LogReading.scan(txn, tables: tables, tail: tail, query: query, from: query.from) { record in
            remaining -= 1
            return try body(record) && remaining > 0
        }
    }

    /// The current version of `stream` (0 if it has no events).
    public func version(of stream: String) throws -> UInt64 {
        let utf8 = ContiguousArray(stream.utf8)
        guard let number = try utf8.withUnsafeBytes({ try tables.streamNumber(txn, streamUTF8: $0) }) else { return 0 }
        return try tables.lastVersion(txn, stream: stream, streamNumber: number, tail: try tail.view(txn, tables: tables))
    }

    public func position(ofEventID id: UUID) throws -> UInt64? { try tables.position(txn, ofEventID: id) }

    /// Every event type in the log with how many events it has, in type order: from the indexes
    /// (a count per type in `type-events`, then the index tail), not by reading the events.
    public func eventTypeCounts() throws -> [(type: String, events: UInt64)] {
        var counts: [String: UInt64] = [:]
        try txn.withCursor(tables.typeEvents) { cursor in
            var entry = try cursor.first()
            while let current = entry {
                counts[String(decoding: current.key, as: UTF8.self), default: 0] += UInt64(try cursor.duplicateCount())
                entry = try cursor.nextKey()
            }
        }
        for (type, count) in try tail.view(txn, tables: tables).typeCounts() { counts[type, default: 0] += UInt64(count) }
        return counts.map { (type: $0.key, events: $0.value) }.sorted { $0.type.utf8.lexicographicallyPrecedes($1.type.utf8) }
    }

    /// The last position recorded at or before `time` (0 if none): recorded-at times never decrease
    /// along the log, so a binary search finds it.
    public func position(atOrBefore time: Timestamp) throws -> UInt64 {
        var low: UInt64 = 0, high = try head().position
        while low < high {
            let middle = low + (high - low + 1) / 2
            guard let record = try record(at: middle) else { throw LogError.corruptRecord(position: middle, reason: "the record is missing") }
            if record.recordedAt <= time { low = middle } else { high = middle - 1 }
        }
        return low
    }

    /// The Merkle root of the log's first `size` events.
    public func merkleRoot(size: UInt64) throws -> Hash {
        try Merkle.root(size: size, source: StoredSubtreeHashes(txn: txn, tables: tables))
    }

    public func inclusionPath(position: UInt64, treeSize: UInt64) throws -> [Hash] {
        try Merkle.inclusionPath(leafIndex: position - 1, treeSize: treeSize, source: StoredSubtreeHashes(txn: txn, tables: tables))
    }

    public func consistencyPath(from first: UInt64, to second: UInt64) throws -> [Hash] {
        try Merkle.consistencyPath(from: first, to: second, source: StoredSubtreeHashes(txn: txn, tables: tables))
    }

    /// Every stream id with its stream number, in stream-id order.
    public func forEachStream(_ body: (String, UInt64) throws -> Bool) throws {
        try txn.withCursor(tables.streams) { cursor in
            var entry = try cursor.first()
            while let current = entry {
                guard try body(String(decoding: current.key, as: UTF8.self), StreamNumberValue.decode(current.value)) else { return }
                entry = try cursor.next()
            }
        }
    }
}

/// Reads the events a query selects, a chunk of `Limits.readChunkEvents` per short read transaction,
/// so memory stays bounded however long the log and the writer is never held back by a long reader.
///
/// A forward read of the whole log (`.all`), once its first chunk came back full, decodes the next
/// chunks on as many cores as there are (up to `decodingLanesMax`), each lane a run of positions in
/// its own snapshot; they are handed out in position order. Positions have no gaps, so a lane that
/// does not reach the end of its run found the end of the log: the read ends with it, as a chunk that
/// came back short ends a sequential read, and the lanes after it are dropped.
public struct EventReader {
    let log: EventLog
    let query: ReadQuery
    /// The chunk being handed out, and the decoded chunks after it, in order.
    private var buffer: [RecordedEvent] = []
    private var bufferIndex = 0
    private var queued: [[RecordedEvent]] = []
    /// Chunks handed out since the last decoding in lanes: the lanes release them, so their memory is
    /// freed on the decoding cores and not one event at a time on the reader's.
    private var spent: [[RecordedEvent]] = []
    /// Where the next chunk starts (position or version), or nil when the selection is exhausted.
    private var resume: UInt64??
    /// Events still to hand out, decoded or not.
    private var remaining: Int
    /// Whether a chunk came back full, so the selection is likely long enough to decode in lanes.
    private var sawFullChunk = false

    /// At most this many chunks decoded at once.
    static let decodingLanesMax = 4

    init(log: EventLog, query: ReadQuery) {
        self.log = log
        self.query = query
        self.resume = .some(query.from)
        self.remaining = query.limit ?? .max
    }

    /// The next event, or nil at the end of the selection. Errors are thrown, never taken for the end.
    public mutating func next() throws -> RecordedEvent? {
        if bufferIndex == buffer.count {
            guard try advance() else { return nil }
        }
        defer { bufferIndex += 1; remaining -= 1 }
        return buffer[bufferIndex]
    }

    /// Calls `body` with every remaining event. Each is lent to `body` from the chunk, not copied.
    public mutating func forEach(_ body: (RecordedEvent) throws -> Void) throws {
        while true {
            if bufferIndex == buffer.count {
                guard try advance() else { return }
            }
            let chunk = buffer
            try chunk.withUnsafeBufferPointer { events in
                while bufferIndex < events.count {
                    let event = bufferIndex
                    bufferIndex += 1
                    remaining -= 1
                    try body(events[event])
                }
            }
        }
    }

    /// Makes the next decoded chunk current; false at the end of the selection.
    private mutating func advance() throws -> Bool {
        bufferIndex = 0
        let decodesInLanes = sawFullChunk && query.selection == .all && !query.backward
        if decodesInLanes && !buffer.isEmpty { spent.append(buffer) }
        if !queued.isEmpty {
            buffer = queued.removeFirst()
            return true
        }
        buffer = []
        guard remaining > 0, case .some(let from) = resume else { spent = []; return false }
        if decodesInLanes {
            try fillInLanes(from: max(from ?? 1, query.sincePosition ?? 1))
        } else {
            try fill(from: from)
        }
        if !queued.isEmpty { buffer = queued.removeFirst() }
        return !buffer.isEmpty
    }

    private mutating func fill(from: UInt64?) throws {
        let chunk = min(remaining, Limits.readChunkEvents)
        var events: [RecordedEvent] = []
        events.reserveCapacity(chunk)
        let query = self.query
        var recurring = RecurringText()
        try log.withSnapshot { snapshot in
            try LogReading.scan(snapshot.txn, tables: snapshot.tables, tail: snapshot.tail, query: query, from: from) { record in
                events.append(record.decode(&recurring))
                return events.count < chunk
            }
        }
        if events.count < chunk {
            resume = .none
        } else {
            sawFullChunk = true
            let last = events[events.count - 1]
            let key: UInt64
            switch query.selection {
            case .stream: key = last.version
            case .all, .type: key = last.position
            }
            if query.backward {
                resume = key <= 1 ? .none : .some(key - 1)
            } else {
                resume = .some(key + 1)
            }
        }
        queued = [events]
    }

    /// Decodes the runs of positions from `first` on, one per lane, at once (a forward `.all` read).
    private mutating func fillInLanes(from first: UInt64) throws {
        let chunk = UInt64(Limits.readChunkEvents)
        // The last position this read may still hand out.
        let last = min(query.untilPosition ?? .max, first &+ (UInt64(remaining) - 1))
        guard first <= last, first <= Limits.positionMax else { resume = .none; return }
        let lanes = Int(min(UInt64(min(ProcessInfo.processInfo.activeProcessorCount, Self.decodingLanesMax)), (last - first) / chunk + 1))
        let runs = (0..<lanes).map { lane in
            let start = first + UInt64(lane) * chunk
            return start...min(last, start + chunk - 1)
        }
        let decoded = ParallelSlots<Result<[RecordedEvent], any Error>>(count: lanes, initial: .success([]))
        let released = SpentChunks(spent)
        spent = []
        let log = self.log
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            released.release(lane: lane, of: lanes)
            let run = runs[lane]
            decoded[lane] = Result {
                var events: [RecordedEvent] = []
                events.reserveCapacity(run.count)
                var recurring = RecurringText()
                try log.withSnapshot { snapshot in
                    try LogReading.scanAll(snapshot.txn, tables: snapshot.tables, from: run.lowerBound, backward: false,
                                           untilPosition: run.upperBound) { record in
                        events.append(record.decode(&recurring))
                        return record.position < run.upperBound
                    }
                }
                return events
            }
        }
        queued = []
        for (lane, run) in runs.enumerated() {
            // The first error in position order wins, as it would sequentially.
            let events = try decoded[lane].get()
            if !events.isEmpty { queued.append(events) }
            guard events.last?.position == run.upperBound else {
                resume = .none  // The log ended inside this run (or the read's last position did).
                return
            }
        }
        resume = runs[lanes - 1].upperBound == last ? .none : .some(runs[lanes - 1].upperBound + 1)
    }
}

/// Chunks already handed out, released by the lanes: lane i releases every chunk at an index ≡ i
/// modulo the number of lanes, and only those.
private final class SpentChunks: @unchecked Sendable {
    // @unchecked: each element is replaced only by the lane it belongs to, through its own address.
    private let chunks: UnsafeMutableBufferPointer<[RecordedEvent]>
    init(_ spent: [[RecordedEvent]]) {
        chunks = .allocate(capacity: spent.count)
        _ = chunks.initialize(from: spent)
    }
    deinit {
        chunks.deinitialize()
        chunks.deallocate()
    }
    func release(lane: Int, of lanes: Int) {
        for index in stride(from: lane, to: chunks.count, by: lanes) { chunks[index] = [] }
    }
}
