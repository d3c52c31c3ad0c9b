import Foundation
import Synchronization
import TallyLMDB
import TallyMerkle

/// How to open a store.
public struct LogOptions: Sendable {
    /// `.durable` (the default) acknowledges an append only once it is on disk. See `Durability` for
    /// what the relaxed modes risk.
    public var durability: Durability = .durable
    public var clock: any TallyClock = SystemClock()
    /// Open for reading only: appends are refused.
    public var readOnly = false
    public var mapSizeInitialBytes = 64 << 20
    public var mapSizeMaxBytes = 1 << 40
    /// How often a follower looks for events appended by another process. Appends by this process
    /// wake followers at once.
    public var followPollInterval: Duration = .milliseconds(20)
    /// How many events the writer leaves in the index tail before merging their stream and type
    /// entries into the B-trees in one sorted pass (see `IndexTail`). Larger: fewer, bigger merges and
    /// more tail for each process to keep and rescan; smaller: the reverse. Tests make it tiny so
    /// merges happen often.
    public var indexTailEventsMax: UInt64 = LogTables.indexTailEventsMaxDefault
    /// How many streams' versions the writer keeps in each of its cache's two generations (a stream
    /// not in the cache costs two B-tree searches). At this many the older generation is dropped:
    /// the streams in use stay, and the cache's memory is bounded.
    public var streamCacheEntriesMax = 1 << 18

    public init() {}
}

/// An append-only, hash-chained event log in an LMDB environment.
///
/// A store is a directory; the log lives in its `log/` folder (`data.mdb`, `lock.mdb`). Open each
/// store once per process and share the instance: it is thread-safe. Appends from every thread and
/// task go through one writer (group commit); reads run concurrently in snapshots.
public final class EventLog: Sendable {
    /// The store format this build writes and the newest it reads.
    /// Format 2 (2026-12) stores index positions in 6 bytes and stream versions in 4, Merkle nodes from
    /// 32 leaves up, and writes records of format 2. A format 1 store is upgraded with `EventLog.upgrade`.
    public static let formatVersion: UInt32 = 2

    public let path: String
    public let options: LogOptions
    let environment: Environment
    let tables: LogTables
    private let committer: GroupCommitter?
    let signal = HeadSignal()
    /// Stream and type entries of the events not merged into the B-trees yet (see `IndexTail`).
    let tail = IndexTail()

    /// Creates a new, empty store at `path` (the directory is created; it must not hold a store).
    public static func create(at path: String, options: LogOptions = LogOptions()) throws -> EventLog {
        let logPath = logDirectory(path)
        if FileManager.default.fileExists(atPath: logPath + "/data.mdb") { throw LogError.storeExists(path: path) }
        do {
            try FileManager.default.createDirectory(atPath: logPath, withIntermediateDirectories: true)
        } catch {
            throw LogError.permissionDenied(path: path, operation: "create the store directory")
        }
        let environment = try openEnvironment(path: path, options: options, readOnly: false)
        let tables = try LogTables(environment: environment, create: true)
        try environment.write { txn in
            var format = formatVersion.littleEndian
            try withUnsafeBytes(of: &format) { try txn.put(tables.meta, key: MetaKey.format, value: $0) }
            var id = UUID().uuid
            try withUnsafeBytes(of: &id) { try txn.put(tables.meta, key: MetaKey.storeID, value: $0) }
            var created = options.clock.now().microsecondsSinceEpoch.littleEndian
            try withUnsafeBytes(of: &created) { try txn.put(tables.meta, key: MetaKey.createdAt, value: $0) }
            try LogHead.empty.encoded().withUnsafeBytes { try txn.put(tables.meta, key: MetaKey.head, value: $0) }
            var indexed = UInt64(0).littleEndian
            try withUnsafeBytes(of: &indexed) { try txn.put(tables.meta, key: MetaKey.indexed, value: $0) }
        }
        return EventLog(path: path, options: options, environment: environment, tables: tables)
    }

    /// Opens the store at `path`, checking that it is a Tally store of a format this build reads.
    public static func open(at path: String, options: LogOptions = LogOptions()) throws -> EventLog {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw LogError.notAStore(path: path, reason: "it does not exist (create one with `tally init`)")
        }
        guard isDirectory.boolValue else { throw LogError.notAStore(path: path, reason: "it is a file, not a store directory") }
        guard FileManager.default.fileExists(atPath: logDirectory(path) + "/data.mdb") else {
            throw LogError.notAStore(path: path, reason: "it has no log/data.mdb")
        }
        let environment = try openEnvironment(path: path, options: options, readOnly: options.readOnly)
        let tables: LogTables
        do {
            tables = try LogTables(environment: environment, create: false)
        } catch let error as LMDBError where error.code == LMDBError.notFoundCode {
            throw LogError.notAStore(path: path, reason: "its LMDB environment has no Tally tables")
        }
        let format: UInt32? = try environment.read { txn in
            try txn.get(tables.meta, key: MetaKey.format).map { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        }
        guard let format else { throw LogError.notAStore(path: path, reason: "it has no format version") }
        guard format <= formatVersion else { throw LogError.newerFormat(path: path, found: format, supported: formatVersion) }
        guard format == formatVersion else { throw LogError.olderFormat(path: path, found: format, supported: formatVersion) }
        return EventLog(path: path, options: options, environment: environment, tables: tables)
    }

    static func logDirectory(_ path: String) -> String { path + "/log" }

    static func openEnvironment(path: String, options: LogOptions, readOnly: Bool) throws -> Environment {
        var environmentOptions = EnvironmentOptions()
        environmentOptions.durability = options.durability
        environmentOptions.readOnly = readOnly
        environmentOptions.mapSizeInitialBytes = options.mapSizeInitialBytes
        environmentOptions.mapSizeMaxBytes = options.mapSizeMaxBytes
        do {
            return try Environment.open(path: logDirectory(path), options: environmentOptions)
        } catch let error as LMDBError where error.code == EACCES || error.code == EROFS || error.code == EPERM {
            throw LogError.permissionDenied(path: path, operation: readOnly ? "read" : "open for writing")
        } catch let error as LMDBError where error.isNotAnEnvironment {
            throw LogError.notAStore(path: path, reason: "log/data.mdb is not an LMDB environment this build can read")
        }
    }

    private init(path: String, options: LogOptions, environment: Environment, tables: LogTables) {
        self.path = path
        self.options = options
        self.environment = environment
        self.tables = tables
        if options.readOnly {
            committer = nil
        } else {
            let signal = self.signal
            committer = GroupCommitter(environment: environment, tables: tables, tail: tail, clock: options.clock,
                                       indexTailEventsMax: max(1, options.indexTailEventsMax),
                                       streamCacheEntriesMax: max(1, options.streamCacheEntriesMax)) { head in
                signal.committed(head.position)
            }
        }
    }

    deinit { committer?.close() }

    /// Waits for queued appends, then stops the writer. Later appends fail with `LogError.closed`.
    public func close() {
        committer?.close()
        if options.durability == .noSync { try? environment.sync() }
    }

    // MARK: Appending

    /// Appends a batch atomically and returns once it is durable (or, in relaxed modes, committed).
    /// Refusals (`LogError`) write nothing; neither do other errors.
    @discardableResult
    public func append(_ request: AppendRequest) throws -> AppendResult {
        let result = try submitAndWait(.batch(try PreparedBatch(request)))
        return result!
    }

    /// The same, without blocking the calling thread.
    @discardableResult
    public func append(_ request: AppendRequest) async throws -> AppendResult {
        let result = try await submit(.batch(try PreparedBatch(request)))
        return result!
    }

    /// `append` without waiting, for importers and other producers of many batches: the batch is
    /// checked and encoded on this thread (a refusal of its shape throws here, before anything is
    /// queued), then queued; `completion` is called on one of the log's threads once it is durable or
    /// refused, in commit order. It must be quick and must not wait for the log. Batches submitted one
    /// after another from one thread are written in that order, so a producer can keep a few in flight
    /// and prepare the next while the writer writes the last.
    public func append(_ request: AppendRequest, completion: @escaping @Sendable (Result<AppendResult, any Error>) -> Void) throws {
        guard let committer else { throw LogError.readOnlyStore(path: path) }
        let batch = try PreparedBatch(request)
        committer.submit(PendingWrite(work: .batch(batch)) { outcome in completion(outcome.map { $0! }) })
    }

    /// Runs `decide` inside the writer's transaction, after every append queued before it, and appends
    /// what it returns (nothing if it returns nil). What `decide` reads cannot change before its events
    /// are written, so rules checked there hold under any concurrency. `decide` must be quick and must
    /// not touch the log itself; it may run more than once if the map has to grow, so it must not have
    /// side effects. Errors it throws are returned to this caller only.
    public func appendDecided(_ decide: @escaping @Sendable (inout WriterView) throws -> AppendRequest?) throws -> AppendResult? {
        try submitAndWait(.decide(decide))
    }

    public func appendDecided(_ decide: @escaping @Sendable (inout WriterView) throws -> AppendRequest?) async throws -> AppendResult? {
        try await submit(.decide(decide))
    }

    /// `appendDecided` without waiting: `completion` is called on one of the log's threads, in commit
    /// order, once the outcome is durable (or refused); it must be quick and must not wait for the log.
    /// Calls made one after another from one thread are decided in that order, so a
    /// caller can keep many commands in flight and still know which was decided first.
    public func appendDecided(_ decide: @escaping @Sendable (inout WriterView) throws -> AppendRequest?,
                              completion: @escaping @Sendable (Result<AppendResult?, any Error>) -> Void) {
        guard let committer else { completion(.failure(LogError.readOnlyStore(path: path))); return }
        committer.submit(PendingWrite(work: .decide(decide), deliver: completion))
    }

    private func submitAndWait(_ work: WriteWork) throws -> AppendResult? {
        guard let committer else { throw LogError.readOnlyStore(path: path) }
        let done = DispatchSemaphore(value: 0)
        let box = OutcomeBox()
        committer.submit(PendingWrite(work: work) { outcome in
            box.outcome = outcome
            done.signal()
        })
        done.wait()
        return try box.outcome!.get()
    }

    private func submit(_ work: WriteWork) async throws -> AppendResult? {
        guard let committer else { throw LogError.readOnlyStore(path: path) }
        return try await withCheckedThrowingContinuation { continuation in
            committer.submit(PendingWrite(work: work) { outcome in continuation.resume(with: outcome) })
        }
    }

    // MARK: Reading

    /// Runs `body` with a consistent snapshot of the log. Keep it short: a long snapshot stops the writer
    /// from reusing pages.
    public func withSnapshot<Result>(_ body: (LogSnapshot) throws -> Result) throws -> Result {
        try environment.read { txn in try body(LogSnapshot(txn: txn, tables: tables, tail: tail)) }
    }

    /// Flushes every commit to disk now (a no-op cost in durable mode, where each commit already is).
    /// Call it before vouching for the data, e.g. before signing a checkpoint of a store written with
    /// a relaxed durability.
    public func sync() throws {
        guard !options.readOnly else { return }
        try environment.sync()
    }

    public func head() throws -> LogHead { try withSnapshot { try $0.head() } }

    /// The events `query` selects, read in bounded chunks.
    public func read(_ query: ReadQuery = ReadQuery()) -> EventReader { EventReader(log: self, query: query) }

    /// The store's identity, fixed at creation: part of its checkpoints' origin.
    public func storeID() throws -> UUID {
        try withSnapshot { snapshot in
            guard let bytes = try snapshot.txn.get(tables.meta, key: MetaKey.storeID), bytes.count == 16 else {
                throw LogError.notAStore(path: path, reason: "it has no store id")
            }
            var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: bytes) }
            return UUID(uuid: raw)
        }
    }

    /// Sizes of the store for `info`.
    public func storageInfo() throws -> StorageInfo {
        let info = environment.info()
        return try withSnapshot { snapshot in
            var pages: [String: Int] = [:]
            for (name, table) in tables.all { pages[name] = try snapshot.txn.pageCount(table) }
            return StorageInfo(mapSizeBytes: info.mapSizeBytes, usedBytes: (info.lastPageNumber + 1) * info.pageSizeBytes,
                               pageSizeBytes: info.pageSizeBytes, pagesByTable: pages, readersUsed: info.readersUsed)
        }
    }
}

public struct StorageInfo: Sendable {
    public let mapSizeBytes: Int
    public let usedBytes: Int
    public let pageSizeBytes: Int
    public let pagesByTable: [String: Int]
    public let readersUsed: Int
}

extension LogTables {
    var all: [(String, Table)] {
        [("events", events), ("streams", streams), ("stream-events", streamEvents), ("type-events", typeEvents),
         ("event-ids", eventIDs), ("merkle", merkle), ("meta", meta)]
    }
}

private final class OutcomeBox: @unchecked Sendable {
    // @unchecked: written once by the writer thread before the semaphore is signalled, read after.
    var outcome: Result<AppendResult?, any Error>?
}

/// Wakes followers when this process commits; they also poll for other processes' commits.
final class HeadSignal: Sendable {
    private let condition = NSConditionBox()

    func committed(_ position: UInt64) { condition.broadcast(position) }

    /// Waits until this process commits past `position` or `timeout` passes.
    func wait(after position: UInt64, timeout: Duration) { condition.wait(after: position, timeout: timeout) }
}

final class NSConditionBox: @unchecked Sendable {
    // @unchecked: `latest` is guarded by `condition`.
    private let condition = NSCondition()
    private var latest: UInt64 = 0

    func broadcast(_ position: UInt64) {
        condition.lock()
        latest = max(latest, position)
        condition.broadcast()
        condition.unlock()
    }

    func wait(after position: UInt64, timeout: Duration) {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        while latest <= position {
            if !condition.wait(until: deadline) { break }
        }
        condition.unlock()
    }
}
