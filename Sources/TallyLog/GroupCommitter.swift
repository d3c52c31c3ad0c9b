import Foundation
import Synchronization
import TallyLMDB

/// Work the writer does inside its transaction for one caller.
enum WriteWork: Sendable {
    /// A batch already checked against the limits.
    case batch(PreparedBatch)
    /// A decision made against the log's state inside the writer's transaction (the domain's
    /// commands): it returns the batch to append, or a refusal. Its reads see every earlier append.
    case decide(@Sendable (inout WriterView) throws -> AppendRequest?)
}

/// One caller's request and how to tell it the outcome.
final class PendingWrite: Sendable {
    let work: WriteWork
    let eventCount: Int
    let deliver: @Sendable (Result<AppendResult?, any Error>) -> Void

    init(work: WriteWork, deliver: @escaping @Sendable (Result<AppendResult?, any Error>) -> Void) {
        self.work = work
        if case .batch(let batch) = work { eventCount = batch.events.count } else { eventCount = 1 }
        self.deliver = deliver
    }
}

/// The one writer of a store in this process. Callers queue their work; the writer thread takes all
/// that is queued (up to `Limits.transactionEventsMax` events), decides and writes it in one LMDB
/// transaction with one sync, then acknowledges each caller. While it syncs, new work queues up for the
/// next transaction: the more callers wait, the more each sync carries.
final class GroupCommitter: @unchecked Sendable {
    // @unchecked: `queue` and `closed` are guarded by `condition`; `streamCache` is touched only by
    // the writer thread.
    private let environment: Environment
    private let tables: LogTables
    private let tail: IndexTail
    private let clock: any TallyClock
    private let indexTailEventsMax: UInt64
    private let onCommit: @Sendable (LogHead) -> Void
    private let condition = NSCondition()
    private var queue: [PendingWrite] = []
    private var closed = false
    private let finished = DispatchSemaphore(value: 0)
    private let acknowledger = Acknowledger()
    /// Streams seen by earlier transactions of this writer, valid while no other process writes.
    private let streamCache: StreamCache
    private var cachedHead: LogHead?

    init(environment: Environment, tables: LogTables, tail: IndexTail, clock: any TallyClock, indexTailEventsMax: UInt64,
         streamCacheEntriesMax: Int, onCommit: @escaping @Sendable (LogHead) -> Void) {
        self.indexTailEventsMax = indexTailEventsMax
        self.streamCache = StreamCache(entriesMax: streamCacheEntriesMax)
        self.environment = environment
        self.tables = tables
        self.tail = tail
        self.clock = clock
        self.onCommit = onCommit
        startNamedThread("tally-writer") { [unowned self] in self.run() }
    }

    func submit(_ pending: PendingWrite) {
        condition.lock()
        if closed {
            condition.unlock()
            pending.deliver(.failure(LogError.closed))
            return
        }
        queue.append(pending)
        condition.signal()
        condition.unlock()
    }

    /// Finishes the queued work, then stops the thread.
    func close() {
        condition.lock()
        let wasClosed = closed
        closed = true
        condition.signal()
        condition.unlock()
        if !wasClosed { finished.wait() }
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty && closed {
                condition.unlock()
                acknowledger.close()
                finished.signal()
                return
            }
            var taken: [PendingWrite] = []
            var events = 0
            while let next = queue.first, taken.isEmpty || events + next.eventCount <= Limits.transactionEventsMax {
                taken.append(queue.removeFirst())
                events += next.eventCount
            }
            condition.unlock()
            commit(taken)
        }
    }

    private func commit(_ taken: [PendingWrite]) {
        var outcomes: [Result<AppendResult?, any Error>] = []
        var committedHead: LogHead?
        do {
            try environment.write { txn in
                // A run of this body that did not commit (the map filled) is undone first.
                streamCache.rollBack()
                try validateStreamCache(txn)
                var session = try AppendSession(txn: txn, tables: tables, tail: tail, clock: clock, streams: streamCache,
                                                indexTailEventsMax: indexTailEventsMax)
                outcomes = []
                outcomes.reserveCapacity(taken.count)
                for pending in taken {
                    outcomes.append(try decide(pending.work, in: &session))
                }
                try session.finish()
                committedHead = session.head
            }
        } catch {
            // The transaction was aborted: nobody's work is in the log, and the cache is as before it.
            streamCache.rollBack()
            acknowledger.deliver(taken, taken.map { _ in .failure(error) })
            return
        }
        streamCache.commit()
        if let head = committedHead {
            cachedHead = head
            onCommit(head)
        }
        acknowledger.deliver(taken, outcomes)
    }

    /// Keeps the stream cache only if the log's head is the one this writer last committed (no other
    /// process has written since, and no earlier run of this transaction's body was abandoned).
    private func validateStreamCache(_ txn: WriteTransaction) throws {
        let head = try tables.head(txn)
        // Emptied only here, between transactions: within one, every stream it wrote must stay cached.
        if let cachedHead, cachedHead.position == head.position, cachedHead.chainHash == head.chainHash {
            streamCache.ageIfFull()
            return
        }
        streamCache.removeAll()
        cachedHead = nil
    }

    private func decide(_ work: WriteWork, in session: inout AppendSession) throws -> Result<AppendResult?, any Error> {
        switch work {
        case .batch(let batch):
            return try session.apply(batch).map { $0 }.mapError { $0 }
        case .decide(let decision):
            let request: AppendRequest?
            do {
                var view = WriterView(session: session)
                request = try decision(&view)
                session = view.session
            } catch let error as LMDBError {
                throw error
            } catch {
                return .failure(error)
            }
            guard let request else { return .success(nil) }
            let batch: PreparedBatch
            do { batch = try PreparedBatch(request) } catch { return .failure(error) }
            return try session.apply(batch).map { $0 }.mapError { $0 }
        }
    }
}

/// Tells callers their outcomes, in commit order. Waking many callers (a futex wake per blocked
/// thread, a continuation resumed per task) and freeing their batches took a quarter of the writer's
/// time at 256 callers, so large groups are handed to this thread and the writer starts its next
/// transaction while they are woken. A small group is delivered by the writer itself when nothing
/// earlier is still waiting here: one thread hop less for a lone caller, and the order is kept.
final class Acknowledger: @unchecked Sendable {
    // @unchecked: `queue`, `delivering` and `closed` are guarded by `condition`.
    /// Groups up to this many callers are delivered by the writer when this thread is idle.
    static let directDeliveryCallersMax = 8
    private let condition = NSCondition()
    private var queue: [(taken: [PendingWrite], outcomes: [Result<AppendResult?, any Error>])] = []
    private var delivering = false
    private var closed = false
    private let finished = DispatchSemaphore(value: 0)

    init() {
        startNamedThread("tally-acks") { [unowned self] in self.run() }
    }

    func deliver(_ taken: [PendingWrite], _ outcomes: [Result<AppendResult?, any Error>]) {
        condition.lock()
        if taken.count <= Self.directDeliveryCallersMax && queue.isEmpty && !delivering {
            condition.unlock()
            for (pending, outcome) in zip(taken, outcomes) { pending.deliver(outcome) }
            return
        }
        queue.append((taken, outcomes))
        condition.signal()
        condition.unlock()
    }

    /// Delivers everything handed over so far, then stops the thread.
    func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
        finished.wait()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                finished.signal()
                return
            }
            let groups = queue
            queue = []
            delivering = true
            condition.unlock()
            for group in groups {
                for (pending, outcome) in zip(group.taken, group.outcomes) { pending.deliver(outcome) }
            }
            condition.lock()
            delivering = false
            condition.unlock()
        }
    }
}

/// What a decision made inside the writer's transaction may read: the log as it stands, including
/// the appends earlier in the same transaction.
public struct WriterView {
    fileprivate var session: AppendSession

    fileprivate init(session: AppendSession) { self.session = session }

    /// The stream's current version (0 if it has no events).
    public mutating func version(of stream: String) throws -> UInt64 {
        try session.streamState(StreamKey(stream))?.version ?? 0
    }

    /// Calls `body` with each event of `stream` from `fromVersion` on, in order, until it returns false:
    /// the committed log (B-tree and tail), then the events this transaction appended before.
    public mutating func forEachEvent(in stream: String, fromVersion: UInt64 = 1, _ body: (RecordView) throws -> Bool) throws {
        let tail = try session.committedTailView()
        var going = true
        try LogReading.scanStream(session.txn, tables: session.tables, tail: tail, stream: stream, fromVersion: fromVersion, backward: false,
                                  untilPosition: session.committedPosition) { record in
            going = try body(record)
            return going
        }
        guard going, session.head.position > session.committedPosition else { return }
        if session.ownStreamPositions == nil {
            var positions: [StreamKey: [UInt64]] = [:]
            try LogReading.scanAll(session.txn, tables: session.tables, from: session.committedPosition + 1, backward: false,
                                   untilPosition: session.head.position) { record in
                positions[StreamKey(record.stream), default: []].append(record.position)
                return true
            }
            session.ownStreamPositions = positions
        }
        for position in session.ownStreamPositions?[StreamKey(stream)] ?? [] {
            guard let record = try session.tables.record(session.txn, at: position) else {
                throw LogError.corruptRecord(position: position, reason: "this transaction's record is missing")
            }
            guard record.version >= fromVersion else { continue }
            guard try body(record) else { return }
        }
    }

    /// The position of the event with this id, if it is in the log.
    public func position(ofEventID id: UUID) throws -> UInt64? { try session.tables.position(session.txn, ofEventID: id) }

    /// The record at `position` (committed, or appended earlier in this transaction).
    public func record(at position: UInt64) throws -> RecordView? { try session.tables.record(session.txn, at: position) }

    public var headPosition: UInt64 { session.head.position }
    /// The head when the writer's transaction began: events after it are this transaction's, not yet committed.
    public var committedPosition: UInt64 { session.committedPosition }
    public var now: Timestamp { max(session.clock.now(), session.head.lastRecordedAt) }
}
