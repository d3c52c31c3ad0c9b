import Foundation
import Synchronization
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
                if !backward { prefetchBelow(current.value, bytes: ReadAhead.nextValueBytes) }
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
/// A forward read of the whole log (`.all`), once its first chunk came back full, decodes the chunks
/// after it in the background, each in its own snapshot, up to `chunksAhead` of them at once on as
/// many cores as there are; they are handed out in position order, and each chunk handed out starts
/// the decoding of another, so the cores never wait for one another. Positions have no gaps, so a
/// chunk that comes back short found the end of the log: the read ends with it, as a chunk that came
/// back short ends a sequential read, and the chunks decoded after it are dropped.
public struct EventReader {
    let log: EventLog
    let query: ReadQuery
    /// The chunk being handed out.
    private var buffer: [RecordedEvent] = []
    private var bufferIndex = 0
    /// The chunks decoding in the background, in position order.
    private var ahead: [ChunkJob] = []
    /// Chunks handed out since the last chunk job started: it releases them, so their memory is freed
    /// on a decoding core and not one event at a time on the reader's.
    private var spent: [[RecordedEvent]] = []
    /// Where the next chunk starts (position or version), or nil when the selection is exhausted. When
    /// decoding ahead, where the next chunk job starts.
    private var resume: UInt64??
    /// Events still to hand out, decoded or not.
    private var remaining: Int
    /// When decoding ahead: the last position the read may hand out.
    private var lastPosition: UInt64?

    /// At most this many chunks decoding or decoded ahead of the reader (about 0.4 MB each for events
    /// of 200 bytes).
    static let chunksAhead = 8

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

    /// Calls `body` with every remaining event, in order, straight from the decoded chunk.
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
        if lastPosition != nil {
            if !buffer.isEmpty { spent.append(buffer) }
            buffer = []
            return try advanceAhead()
        }
        buffer = []
        guard remaining > 0, case .some(let from) = resume else { return false }
        try fill(from: from)
        if query.selection == .all && !query.backward && remaining > buffer.count, case .some(.some(let next)) = resume {
            // A full chunk: the selection is likely long enough to decode ahead from here on.
            lastPosition = min(query.untilPosition ?? .max, next &+ (UInt64(remaining - buffer.count) - 1))
        }
        return !buffer.isEmpty
    }

    /// The next chunk decoded ahead; the window topped up first and after.
    private mutating func advanceAhead() throws -> Bool {
        startChunkJobs()
        guard !ahead.isEmpty else { spent = []; return false }
        let job = ahead.removeFirst()
        let events: [RecordedEvent]
        do {
            events = try job.wait()
        } catch {
            // The read resumes at this chunk if asked again; nothing after it was handed out.
            ahead = []
            resume = .some(job.run.lowerBound)
            throw error
        }
        if events.last?.position != job.run.upperBound {
            // The log ended inside this chunk (or the read's last position did).
            ahead = []
            resume = .none
        }
        buffer = events
        startChunkJobs()
        return !buffer.isEmpty
    }

    /// Starts chunk jobs from `resume` until `chunksAhead` are decoding or the selection is covered.
    private mutating func startChunkJobs() {
        guard let lastPosition else { return }
        while ahead.count < Self.chunksAhead, case .some(.some(let first)) = resume {
            guard first <= lastPosition, first <= Limits.positionMax else { resume = .none; return }
            let run = first...min(lastPosition, first &+ (UInt64(Limits.readChunkEvents) - 1))
            ahead.append(ChunkJob(log: log, run: run, releasing: spent))
            spent = []
            resume = run.upperBound == lastPosition ? .none : .some(run.upperBound + 1)
        }
    }

    private mutating func fill(from: UInt64?) throws {
        let chunk = min(remaining, Limits.readChunkEvents)
        var decoder = ChunkDecoder(expectedEvents: chunk)
        let query = self.query
        try log.withSnapshot { snapshot in
            try LogReading.scan(snapshot.txn, tables: snapshot.tables, tail: snapshot.tail, query: query, from: from) { record in
                decoder.append(record)
                return decoder.count < chunk
            }
        }
        let events = decoder.finish()
        if events.count < chunk {
            resume = .none
        } else {
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
        buffer = events
    }
}

/// One chunk of a forward `.all` read, decoded in the background in its own snapshot. A reader dropped
/// before waiting for it leaves it to finish and its events to be freed.
///
/// Whoever comes first decodes it: a thread of the global queue, or the reader once it needs the chunk.
/// A reader never waits for a chunk no thread has started, so reads inside jobs of the global queue
/// cannot hold every one of its threads waiting for work queued behind them.
private final class ChunkJob: @unchecked Sendable {
    // @unchecked: `spent` and `result` are written only by whoever won `claimed`, and `result` is read
    // only after `done` says it was written.
    let run: ClosedRange<UInt64>
    private let log: EventLog
    /// Chunks handed out before, freed by whoever decodes this one (mostly a decoding core).
    private var spent: [[RecordedEvent]]
    private let claimed = Atomic<Bool>(false)
    private var result: Result<[RecordedEvent], any Error> = .success([])
    private let done = DispatchGroup()

    /// Starts decoding `run`, after releasing `spent` (chunks handed out before) on the decoding core.
    init(log: EventLog, run: ClosedRange<UInt64>, releasing spent: [[RecordedEvent]]) {
        self.run = run
        self.log = log
        self.spent = spent
        done.enter()
        DispatchQueue.global().async { [self] in decodeUnlessClaimed() }
    }

    /// The chunk's events, once decoded (here, if no thread has started on it); what it threw, if it did.
    func wait() throws -> [RecordedEvent] {
        decodeUnlessClaimed()
        done.wait()
        return try result.get()
    }

    private func decodeUnlessClaimed() {
        guard claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        spent = []
        result = Result { try Self.decode(run, of: log) }
        done.leave()
    }

    private static func decode(_ run: ClosedRange<UInt64>, of log: EventLog) throws -> [RecordedEvent] {
        var decoder = ChunkDecoder(expectedEvents: run.count)
        try log.withSnapshot { snapshot in
            try LogReading.scanAll(snapshot.txn, tables: snapshot.tables, from: run.lowerBound, backward: false,
                                   untilPosition: run.upperBound) { record in
                decoder.append(record)
                return record.position < run.upperBound
            }
        }
        return decoder.finish()
    }
}
