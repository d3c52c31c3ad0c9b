import Foundation
import TallyLMDB
import TallyMerkle

/// An event checked against the limits, its record body encoded and hashed on the appender's thread,
/// so the writer only copies bytes and hashes a fixed 109-byte leaf.
struct PreparedEvent: Sendable {
    /// The proposed event is the batch's (`PreparedBatch.proposed`): a copy of it here retained and
    /// released its five strings and buffers once per event. What the writer needs of it is here.
    let id: UUID
    let schemaVersion: UInt16
    /// The stream's name and hash, worked out here, on the caller's thread, not in the writer.
    let stream: StreamKey
    /// The event type and its hash, likewise: the writer numbers types by it.
    let type: ExactText
    /// Where the record body lies in the batch's `bodies`.
    let body: Range<Int>
    let bodyDigest: Hash
    let flags: UInt8
    /// Where the event type's UTF-8 lies in the batch's `bodies`.
    let typeRange: Range<Int>
}

/// A request that passed every check that needs no log state.
struct PreparedBatch: Sendable {
    let events: [PreparedEvent]
    /// The events as proposed, in the same order: what an idempotent retry is compared with.
    let proposed: [ProposedEvent]
    /// Every event's record body, end to end: one buffer per batch, not one per event, so preparing
    /// a batch makes one allocation and the writer retains one buffer (a buffer made on the caller's
    /// core and retained on the writer's cost a cache miss per event, a tenth of the writer's time).
    let bodies: [UInt8]
    let expectations: [String: ExpectedVersion]

    /// Batches at least this long are prepared on two threads: encoding and hashing bodies is most of
    /// an appender's work, and the writer is idle while a single caller prepares.
    static let parallelPreparationEventsMin = 256

    init(_ request: AppendRequest) throws {
        guard !request.events.isEmpty else { throw LogError.emptyBatch }
        guard request.events.count <= Limits.batchEventsMax else { throw LogError.batchTooLarge(events: request.events.count, bytes: nil) }
        try Self.checkDistinctIDs(request.events)
        let events = request.events
        // Where each body goes, known before any is written, so both halves write into one buffer.
        let offsets = [Int](unsafeUninitializedCapacity: events.count + 1) { offsets, count in
            offsets[0] = 0
            for index in events.indices { offsets[index + 1] = offsets[index] + RecordCodec.bodySize(events[index]) }
            count = events.count + 1
        }
        let total = offsets[events.count]
        let bytes = total + events.count * (RecordCodec.headerBytesMax + Hash.byteCount)
        if bytes > Limits.batchBytesMax {
            // An event that is wrong on its own is named first, as when the batch is small enough.
            for event in events { try Self.check(event) }
            throw LogError.batchTooLarge(events: events.count, bytes: bytes)
        }
        for stream in request.expectations.keys { try Validation.streamID(stream) }
        var prepared: [PreparedEvent] = []
        bodies = try [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            let out = SharedBytes(buffer: UnsafeMutableRawBufferPointer(buffer))
            if events.count >= Self.parallelPreparationEventsMin {
                // Two halves at once; the first error in event order wins, as it would sequentially.
                let halves = [0..<(events.count / 2), (events.count / 2)..<events.count]
                let results = ParallelSlots<Result<[PreparedEvent], any Error>>(count: 2, initial: .success([]))
                DispatchQueue.concurrentPerform(iterations: 2) { half in
                    results[half] = Result {
                        var part: [PreparedEvent] = []
                        // The first half's array takes the second's events after: room for all of them.
                        part.reserveCapacity(half == 0 ? events.count : halves[half].count)
                        for index in halves[half] {
                            part.append(try Self.prepare(events[index], into: out.buffer, at: offsets[index]..<offsets[index + 1]))
                        }
                        return part
                    }
                }
                // Moved out of the slots, so the first array is unique and grows in place.
                do {
                    prepared = try results.take(0, leaving: .success([])).get()
                    prepared.append(contentsOf: try results.take(1, leaving: .success([])).get())
                } catch {
                    count = 0
                    throw error
                }
            } else {
                prepared.reserveCapacity(events.count)
                do {
                    for index in events.indices {
                        prepared.append(try Self.prepare(events[index], into: out.buffer, at: offsets[index]..<offsets[index + 1]))
                    }
                } catch {
                    count = 0
                    throw error
                }
            }
            count = total
        }
        self.events = prepared
        proposed = events
        expectations = request.expectations
    }

    /// The body of the event at `index`, for as long as `body` runs.
    func withBody<R>(of index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bodies.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[events[index].body])) }
    }

    /// Refuses an event id given twice. Ids made by `EventIDGenerator` (time-ordered) arrive in
    /// increasing order, which proves them distinct in one pass with no hashing; any other order is
    /// checked with a set, and the first id seen before is named.
    static func checkDistinctIDs(_ events: [ProposedEvent]) throws {
        var increasing = true
        var previous = (UInt64(0), UInt64(0))
        for (index, event) in events.enumerated() {
            let words = EventIDKey.words(event.id)
            if index > 0 && words <= previous { increasing = false; break }
            previous = words
        }
        if increasing { return }
        var ids = Set<UUID>(minimumCapacity: events.count)
        for event in events {
            guard ids.insert(event.id).inserted else { throw LogError.duplicateEventIDInBatch(event.id) }
        }
    }

    /// The checks of one event that need nothing but the event.
    private static func check(_ event: ProposedEvent) throws {
        try Validation.streamID(event.stream)
        try Validation.eventType(event.type)
        try Validation.actor(event.actor)
        guard event.schemaVersion >= 1 else { throw LogError.invalidSchemaVersion(event.schemaVersion) }
        guard event.metadata.count <= Limits.metadataBytesMax else {
            throw LogError.invalidMetadata(reason: "\(event.metadata.count) bytes, over the limit of \(Limits.metadataBytesMax)")
        }
        guard event.payload.count <= Limits.payloadBytesMax else {
            throw LogError.payloadTooLarge(eventID: event.id, bytes: event.payload.count, bytesMax: Limits.payloadBytesMax)
        }
    }

    /// Checks `event` and encodes its body into `range` of `bodies`.
    private static func prepare(_ event: ProposedEvent, into bodies: UnsafeMutableRawBufferPointer, at range: Range<Int>) throws -> PreparedEvent {
        try check(event)
        let out = UnsafeMutableRawBufferPointer(rebasing: bodies[range])
        let type = RecordCodec.encodeBody(event, into: out)
        return PreparedEvent(id: event.id, schemaVersion: event.schemaVersion, stream: StreamKey(event.stream), type: ExactText(event.type), body: range,
                             bodyDigest: sha256(UnsafeRawBufferPointer(out)), flags: RecordCodec.flags(of: event),
                             typeRange: (range.lowerBound + type.lowerBound)..<(range.lowerBound + type.upperBound))
    }
}

/// The batch's body buffer, written by both preparing threads, each in its own events' ranges only.
private struct SharedBytes: @unchecked Sendable {
    // @unchecked: the ranges the threads write never overlap, and the buffer is read once both are done.
    let buffer: UnsafeMutableRawBufferPointer
}

enum Validation {
    static func streamID(_ id: String) throws {
        // Most ids are printable ASCII ("cart-12"): one pass over the bytes settles them. Anything
        // else, good or bad, takes the full checks below, which also name what is wrong.
        if !id.isEmpty && isPlainASCII(id, count: Limits.streamIDBytesMax, edgeSpacesAllowed: false) { return }
        let count = id.utf8.count
        guard count > 0 else { throw LogError.invalidStreamID(id, reason: "it is empty") }
        guard count <= Limits.streamIDBytesMax else {
            throw LogError.invalidStreamID(id, reason: "it is \(count) bytes; the limit is \(Limits.streamIDBytesMax)")
        }
        guard !id.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw LogError.invalidStreamID(id, reason: "it contains a control character")
        }
        // "cart-1 " would be another stream than the "cart-1" everyone reads; " " would name none.
        guard id.unicodeScalars.first?.properties.isWhitespace == false, id.unicodeScalars.last?.properties.isWhitespace == false else {
            throw LogError.invalidStreamID(id, reason: "it begins or ends with a space")
        }
    }

    static func eventType(_ type: String) throws {
        let count = type.utf8.count
        guard count > 0 else { throw LogError.invalidEventType(type, reason: "it is empty") }
        guard count <= Limits.eventTypeBytesMax else {
            throw LogError.invalidEventType(type, reason: "it is \(count) bytes; the limit is \(Limits.eventTypeBytesMax)")
        }
        var type = type
        let wellFormed = type.withUTF8 { bytes in
            isLetter(bytes[0]) && bytes.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ":") }
        }
        guard wellFormed else {
            throw LogError.invalidEventType(type, reason: "it must start with a letter and hold only letters, digits, '.', '-', '_' and ':'")
        }
    }

    static func actor(_ actor: String) throws {
        if isPlainASCII(actor, count: Limits.actorBytesMax, edgeSpacesAllowed: true) { return }
        let count = actor.utf8.count
        guard count <= Limits.actorBytesMax else { throw LogError.invalidActor(actor, reason: "it is \(count) bytes; the limit is \(Limits.actorBytesMax)") }
        guard !actor.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw LogError.invalidActor(actor, reason: "it contains a control character")
        }
    }

    /// True if `text` is at most `count` bytes of printable ASCII (space included, but not at either
    /// end unless `edgeSpacesAllowed`): text every check of an id passes. False says nothing either way.
    private static func isPlainASCII(_ text: String, count: Int, edgeSpacesAllowed: Bool) -> Bool {
        var text = text
        // A native string hands out its bytes without a copy; a byte-by-byte walk of `utf8` cost more
        // than encoding the record.
        return text.withUTF8 { bytes in
            guard bytes.count <= count, bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else { return false }
            return edgeSpacesAllowed || (bytes.first != 0x20 && bytes.last != 0x20)
        }
    }

    private static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}

/// A stream's identity and version as the writer tracks it.
struct StreamState: Sendable {
    var number: UInt64
    var version: UInt64
}

/// What the writer knows beyond the committed log: the streams it has seen, so a hot stream costs one
/// table look-up per event (`StreamTable`) instead of two B-tree searches, and the index entries of the events it
/// wrote after the indexed watermark, so merging them needs no rescan. Owned by the writer thread; valid
/// while no other process writes. A transaction body that is abandoned (the map filled, or an error)
/// is undone with `rollBack`, so the cache always matches the last commit.
final class StreamCache: @unchecked Sendable {
    // @unchecked: only the writer thread touches it.
    /// The streams seen since the last `ageIfFull()`, then those seen in the generation before: a stream
    /// found only in the older one moves to the newer. At `entriesMax` streams the older generation
    /// is dropped, so the streams in use stay cached and the memory stays bounded (two generations).
    private let states = StreamTable()
    private let olderStates = StreamTable()
    /// Index entries of this writer's events after the watermark, in position order.
    var pendingIndex: [PendingIndexEntry] = []
    /// What the current transaction changed: the previous state of each stream it touched.
    private var undo: [(stream: StreamKey, previous: StreamState?)] = []
    private var pendingIndexCommitted = 0
    /// The current transaction merged the first `mergedPrefix` pending entries into the B-trees: drop
    /// them when it commits.
    var mergedPrefix = 0
    /// Event types numbered for this writer, so a pending entry holds an integer, not a copy of its type.
    private let typeIDs = TextTable<Int>(filler: 0)
    private(set) var typeNames: [ContiguousArray<UInt8>] = []
    let entriesMax: Int

    init(entriesMax: Int) { self.entriesMax = entriesMax }

    func typeID(_ type: ExactText, bytes: UnsafeRawBufferPointer) -> Int {
        if let id = typeIDs[type] { return id }
        typeNames.append(ContiguousArray(bytes))
        typeIDs.set(type, typeNames.count - 1)
        return typeNames.count - 1
    }

    /// The stream's cached state, if any.
    func state(_ stream: StreamKey) -> StreamState? {
        if let state = states[stream] { return state }
        guard let state = olderStates.remove(stream) else { return nil }
        states.set(stream, state)  // The same committed state: nothing for `rollBack` to undo.
        return state
    }

    /// Touches the slots the batch's streams will be looked up in, before the batch is written. A
    /// look-up in a table of a few hundred thousand streams mostly waits for memory (and for the page
    /// walk: the table spans thousands of pages); these loads depend on nothing, so the processor keeps
    /// many in flight, where the writer's own look-ups, each inside an event's work, wait one by one.
    func warm(_ events: UnsafeBufferPointer<PreparedEvent>) {
        var sink = 0
        for index in events.indices {
            sink ^= states.touch(events[index].stream) ^ olderStates.touch(events[index].stream)
        }
        warmSink = sink
    }

    /// Keeps `warm`'s loads from being optimised away.
    private var warmSink = 0

    /// Counts one more event of a cached stream, finding it once: its state before, or nil (changing
    /// nothing) when it is not cached.
    func advance(_ stream: StreamKey) -> StreamState? {
        if let previous = states.increment(stream) {
            undo.append((stream, previous))
            return previous
        }
        guard let previous = olderStates.remove(stream) else { return nil }
        undo.append((stream, previous))
        states.set(stream, StreamState(number: previous.number, version: previous.version + 1))
        return previous
    }

    func set(_ stream: StreamKey, _ state: StreamState, previous: StreamState?) {
        undo.append((stream, previous))
        states.set(stream, state)
    }

    /// Between transactions, once `entriesMax` streams are cached: the newer generation becomes the
    /// older one and the oldest is dropped. The pending index entries stay: they are still exact.
    func ageIfFull() {
        guard states.count >= entriesMax else { return }
        olderStates.take(from: states, leaving: states.count)
    }

    /// The transaction committed: its changes stay.
    func commit() {
        undo.removeAll(keepingCapacity: true)
        pendingIndex.removeFirst(min(mergedPrefix, pendingIndex.count))
        mergedPrefix = 0
        pendingIndexCommitted = pendingIndex.count
    }

    /// The transaction was abandoned: back to the last commit.
    func rollBack() {
        for (stream, previous) in undo.reversed() { states[stream] = previous }
        undo.removeAll(keepingCapacity: true)
        pendingIndex.removeSubrange(min(pendingIndexCommitted, pendingIndex.count)...)
        mergedPrefix = 0
        // A replacement made by the abandoned run was kept only up to the committed events: still exact.
    }

    func removeAll() {
        states.removeAll()
        olderStates.removeAll(keepingCapacity: false)
        pendingIndex.removeAll(keepingCapacity: true)
        undo.removeAll(keepingCapacity: true)
        pendingIndexCommitted = 0
        mergedPrefix = 0
    }

    /// Replaces the pending entries with the tail read back from the records; the first `committed` of
    /// them are committed events, the rest the current transaction's.
    func replacePendingIndex(_ entries: [PendingIndexEntry], committed: Int) {
        pendingIndex = entries
        pendingIndexCommitted = committed
    }
}

/// A stream and type index entry waiting in the tail.
struct PendingIndexEntry {
    var streamNumber: UInt64
    var version: UInt64
    var position: UInt64
    /// The writer's own number for the event type (see `StreamCache.typeID`).
    var typeID: Int
}

/// Everything one write transaction does: it decides each batch against the log's state (which
/// includes the batches before it in the same transaction), writes the accepted ones, and finally the
/// head. A batch is fully checked before its first write, so a refused batch leaves nothing behind;
/// a thrown error (LMDB's) aborts the whole transaction, and the writer then empties its stream cache.
struct AppendSession {
    let txn: WriteTransaction
    let tables: LogTables
    let clock: any TallyClock
    let streams: StreamCache
    let tail: IndexTail
    var head: LogHead
    /// The head when the transaction began: positions after it are this transaction's own.
    let committedPosition: UInt64
    let indexTailEventsMax: UInt64
    /// The index tail as of the committed head, fetched on the first stream-cache miss.
    private var committedTail: TailView?
    /// Positions of this transaction's own events by stream, built the first time a decision reads a
    /// stream and kept up to date by `write` from then on (nil until needed: plain batches never pay).
    var ownStreamPositions: [StreamKey: [UInt64]]?
    /// The greatest event id in `event-ids`: a larger id (the usual case for time-ordered v7 ids) is
    /// new without a look-up, and is appended to the index with MDB_APPEND.
    var eventIDMax: (UInt64, UInt64)

    init(txn: WriteTransaction, tables: LogTables, tail: IndexTail, clock: any TallyClock, streams: StreamCache,
         indexTailEventsMax: UInt64) throws {
        self.indexTailEventsMax = indexTailEventsMax
        self.txn = txn
        self.tables = tables
        self.tail = tail
        self.clock = clock
        self.streams = streams
        head = try tables.head(txn)
        committedPosition = head.position
        eventIDMax = try txn.withCursor(tables.eventIDs) { cursor in
            guard let last = try cursor.last() else { return (0, 0) }
            return EventIDKey.words(last.key)
        }
    }

    /// The stream's state, from the cache or the tables (then cached); nil for a new stream. Every
    /// stream this transaction wrote is in the cache (it is never emptied mid-transaction), so a miss
    /// only needs the committed log: the B-tree and the tail.
    mutating func streamState(_ stream: StreamKey) throws -> StreamState? {
        if let state = streams.state(stream) { return state }
        guard let state = try committedStreamState(stream) else { return nil }
        streams.set(stream, state, previous: nil)
        return state
    }

    /// The state of a stream the cache does not hold, from the B-tree and the tail (not cached).
    private mutating func committedStreamState(_ stream: StreamKey) throws -> StreamState? {
        var key = stream.text
        guard let number = try key.withUTF8({ try tables.streamNumber(txn, streamUTF8: UnsafeRawBufferPointer($0)) }) else { return nil }
        if committedTail == nil { committedTail = try tail.view(txn, tables: tables) }
        return StreamState(number: number, version: try tables.lastVersion(txn, stream: stream.text, streamNumber: number, tail: committedTail!))
    }

    /// The view of the committed tail this transaction uses.
    mutating func committedTailView() throws -> TailView {
        if committedTail == nil { committedTail = try tail.view(txn, tables: tables) }
        return committedTail!
    }

    /// Decides and, if accepted, writes `batch`. Refusals are returned; only LMDB errors are thrown.
    mutating func apply(_ batch: PreparedBatch) throws -> Result<AppendResult, LogError> {
        if let outcome = try idempotencyOutcome(batch) { return outcome }
        for (stream, expected) in batch.expectations {
            let current = try streamState(StreamKey(stream))?.version ?? 0
            if !expected.admits(current) { return .failure(.wrongExpectedVersion(stream: stream, expected: expected, actual: current)) }
        }
        if head.position + UInt64(batch.events.count) > Limits.positionMax { return .failure(.logFull(positionMax: Limits.positionMax)) }
        // A stream's version never exceeds the log's position, so streams are looked at only in a log
        // past 2^32 events: below that this costs one comparison a batch.
        if head.position + UInt64(batch.events.count) > Limits.streamVersionMax {
            for prepared in batch.events {
                let version = try streamState(prepared.stream)?.version ?? 0
                if version > Limits.streamVersionMax - UInt64(batch.events.count) {
                    let appended = batch.events.lazy.filter { $0.stream == prepared.stream }.count
                    if version + UInt64(appended) > Limits.streamVersionMax {
                        return .failure(.streamFull(stream: prepared.stream.text, versionMax: Limits.streamVersionMax))
                    }
                }
            }
        }
        let recordedAt = max(clock.now(), head.lastRecordedAt)
        var positions = [UInt64](), versions = [UInt64](), streamIDs = [String]()
        positions.reserveCapacity(batch.events.count)
        versions.reserveCapacity(batch.events.count)
        streamIDs.reserveCapacity(batch.events.count)
        try batch.bodies.withUnsafeBytes { bodies in
            try batch.events.withUnsafeBufferPointer { events in
                streams.warm(events)
                for index in events.indices {
                    let body = UnsafeRawBufferPointer(rebasing: bodies[events[index].body])
                    let version = try write(events.baseAddress! + index, body: body, recordedAt: recordedAt)
                    positions.append(head.position)
                    versions.append(version)
                    streamIDs.append(events[index].stream.text)
                }
            }
        }
        head.lastRecordedAt = recordedAt
        return .success(AppendResult(positions: positions, versions: versions, streams: streamIDs, wasAlreadyAppended: false))
    }

    /// `nil` if no event of the batch is in the log; the original positions if all are, unchanged;
    /// a conflict otherwise.
    private func idempotencyOutcome(_ batch: PreparedBatch) throws -> Result<AppendResult, LogError>? {
        var known: [(index: Int, position: UInt64)] = []
        // By index: a copy of each prepared event would retain its five strings and buffers.
        for index in batch.events.indices {
            let id = batch.events[index].id
            if EventIDKey.words(id) > eventIDMax { continue }
            if let position = try tables.position(txn, ofEventID: id) { known.append((index, position)) }
        }
        guard let first = known.first else { return nil }
        guard known.count == batch.events.count else {
            let id = batch.events[first.index].id
            return .failure(.eventIDConflict(id: id, position: first.position,
                                             reason: "but other events of this batch are not: a retry must repeat the original events exactly"))
        }
        var versions: [UInt64] = []
        for (index, position) in known {
            let prepared = batch.events[index]
            guard let record = try tables.record(txn, at: position) else {
                throw LogError.corruptRecord(position: position, reason: "the event-ids index points at a missing record")
            }
            if let difference = batch.withBody(of: index, { record.difference(from: batch.proposed[index], body: $0) }) {
                return .failure(.eventIDConflict(id: prepared.id, position: position, reason: difference))
            }
            versions.append(record.version)
        }
        return .success(AppendResult(positions: known.map(\.position), versions: versions, streams: batch.events.map(\.stream.text),
                                     wasAlreadyAppended: true))
    }

    /// Writes one event at the next position and returns its stream version.
    private mutating func write(_ event: UnsafePointer<PreparedEvent>, body: UnsafeRawBufferPointer, recordedAt: Timestamp) throws -> UInt64 {
        // Read through the pointer, field by field: a copy of the prepared event (what passing it by
        // value or borrowing it from the batch's array compiled to) retained and released its five
        // strings and buffers, once per event.
        let position = head.position + 1
        var state: StreamState
        if let cached = streams.advance(event.pointee.stream) {
            // The usual case, a stream the writer has seen: one look-up, the cache already counts this event.
            state = StreamState(number: cached.number, version: cached.version + 1)
        } else {
            let previousState = try committedStreamState(event.pointee.stream)
            if let existing = previousState {
                state = existing
            } else {
                head.streamCount += 1
                state = StreamState(number: head.streamCount, version: 0)
                var stream = event.pointee.stream.text
                let inserted = try stream.withUTF8 { key in
                    try StreamNumberValue.with(state.number) { try txn.insert(tables.streams, key: UnsafeRawBufferPointer(key), value: $0) }
                }
                if !inserted { throw LogError.corruptRecord(position: position, reason: "stream \(quoted(event.pointee.stream.text)) is in the streams table but was not found") }
            }
            state.version += 1
            streams.set(event.pointee.stream, state, previous: previousState)
        }
        if ownStreamPositions != nil { ownStreamPositions![event.pointee.stream, default: []].append(position) }

        let schemaVersion = event.pointee.schemaVersion, id = event.pointee.id
        let size = RecordCodec.headerSize(schemaVersion: schemaVersion, version: state.version) + body.count + Hash.byteCount
        let previous = head.chainHash
        var hash = Hash.zero
        try withBigEndian(position) { key in
            try txn.reserve(tables.events, key: key, count: size, flags: .append) { out in
                hash = RecordCodec.write(schemaVersion: schemaVersion, flags: event.pointee.flags, position: position, version: state.version,
                                         recordedAt: recordedAt, id: id, body: body, bodyDigest: event.pointee.bodyDigest,
                                         previous: previous, into: out)
            }
        }
        head.position = position
        head.chainHash = hash
        let (writeTxn, merkle) = (txn, tables.merkle)
        try head.frontier.append(leaf: hash) { level, index, node in
            guard level >= LogTables.merkleStoredLevelMin else { return }
            // Nodes complete in key order (see MerkleNodeKey), so each one is an append.
            try MerkleNodeKey.with(level: level, index: index) { key in
                try node.withUnsafeBytes { try writeTxn.put(merkle, key: key, value: $0, flags: .append) }
            }
        }
        // The stream and type index entries go to the tail (see IndexTail): merged in bulk later.
        let typeStart = event.pointee.typeRange.lowerBound - event.pointee.body.lowerBound
        let typeID = streams.typeID(event.pointee.type, bytes: UnsafeRawBufferPointer(rebasing: body[typeStart..<(typeStart + event.pointee.typeRange.count)]))
        streams.pendingIndex.append(PendingIndexEntry(streamNumber: state.number, version: state.version, position: position, typeID: typeID))
        try PositionValue.with(position) { value in
            var id = id.uuid
            try withUnsafeBytes(of: &id) { key in
                let words = EventIDKey.words(key)
                if words > eventIDMax {
                    try txn.put(tables.eventIDs, key: key, value: value, flags: .append)
                    eventIDMax = words
                } else {
                    try txn.put(tables.eventIDs, key: key, value: value, flags: .noOverwrite)
                }
            }
        }
        return state.version
    }

    mutating func finish() throws {
        let encoded = head.encoded()
        try encoded.withUnsafeBytes { try txn.put(tables.meta, key: MetaKey.head, value: $0) }
        try mergeIndexTailIfDue()
    }

    /// Once the tail holds `indexTailEventsMax` events (an option of the log), merges its oldest slice
    /// into the B-trees in key order, so each page is copied once for many entries, and moves the
    /// watermark past it. A slice is half of `indexTailEventsMax` (32,768 events by default), and
    /// never fewer than this transaction appended, so the tail cannot outgrow the merges. A merge
    /// dirties about one page per stream it touches, so the bigger the slice the fewer pages per event:
    /// eighths (4,096) wrote 2.2 times the bytes of halves for 1 M batched events, and at 256 callers
    /// about one call in sixteen waited for a merge (p99 6.6–8.7 ms, against 2.6–5.0 ms with halves;
    /// BENCHMARKS.md, session 11). A half's merge takes 15–25 ms in a 1 M event store (175–236 ms at
    /// 10 M, where its pages lie all over a larger tree), and the callers of the transaction that runs
    /// it wait for it (p99.9).
    mutating func mergeIndexTailIfDue() throws {
        let watermark = try tables.indexedWatermark(txn, head: committedPosition)
        guard head.position - watermark >= indexTailEventsMax else { return }
        let sliceEvents = max(indexTailEventsMax / 2, head.position - committedPosition, 1)
        let sliceEnd = min(head.position, watermark + sliceEvents)
        // The pending entries must be exactly the tail, in position order; if another process wrote
        // part of it, or this writer started with a tail, they are read back from the records once.
        if streams.pendingIndex.count != Int(head.position - watermark) || streams.pendingIndex.first?.position != watermark + 1 {
            let scanned = try scanTail(after: watermark, through: head.position)
            streams.replacePendingIndex(scanned, committed: scanned.partitionPoint { $0.position > committedPosition })
        }
        let entries = streams.pendingIndex[..<Int(sliceEnd - watermark)]
        var streamEntries = entries.map { (number: $0.streamNumber, version: $0.version, position: $0.position) }
        let numberMax = try txn.withCursor(tables.streamEvents) { try $0.last().map { UInt64(bigEndian: $0.key.loadUnaligned(as: UInt64.self)) } } ?? 0
        _ = try tables.appendStreamEntries(txn, &streamEntries, numberMax: numberMax)
        // Grouped by type, in position order within each (entries are in position order): every put
        // appends to its type's duplicates.
        var positionsByType = [[UInt64]](repeating: [], count: streams.typeNames.count)
        for entry in entries { positionsByType[entry.typeID].append(entry.position) }
        try tables.appendTypeEntries(txn, zip(streams.typeNames, positionsByType).map { (type: $0, positions: $1) })
        var indexed = sliceEnd.littleEndian
        try withUnsafeBytes(of: &indexed) { try txn.put(tables.meta, key: MetaKey.indexed, value: $0) }
        streams.mergedPrefix = entries.count
    }

    /// The index entries of the records in (watermark, through], read from the records.
    private func scanTail(after watermark: UInt64, through: UInt64) throws -> [PendingIndexEntry] {
        var entries: [PendingIndexEntry] = []
        var numbers: [StreamKey: UInt64] = [:]
        try LogReading.scanAll(txn, tables: tables, from: watermark + 1, backward: false, untilPosition: through) { record in
            let stream = StreamKey(record.stream)
            var number = numbers[stream] ?? streams.state(stream)?.number
            if number == nil { number = try tables.streamNumber(txn, streamUTF8: record.streamBytes) }
            guard let number else { throw LogError.corruptRecord(position: record.position, reason: "its stream is missing from the streams table") }
            numbers[stream] = number
            entries.append(PendingIndexEntry(streamNumber: number, version: record.version, position: record.position,
                                             typeID: streams.typeID(ExactText(record.type), bytes: record.typeBytes)))
            return true
        }
        return entries
    }
}

/// Event ids compared as the index compares them: 16 bytes in memcmp order, as two big-endian words.
enum EventIDKey {
    static func words(_ key: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        (UInt64(bigEndian: key.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
         UInt64(bigEndian: key.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }

    static func words(_ id: UUID) -> (UInt64, UInt64) {
        var raw = id.uuid
        return withUnsafeBytes(of: &raw) { words($0) }
    }
}
