import CLMDB
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How much a committed write transaction is worth after a crash.
public enum Durability: Sendable, Equatable {
    /// Every commit is flushed to disk (data, then the meta page) before it returns. A commit that
    /// returned survives a process crash, an OS crash and a power loss. The default.
    case durable
    /// One flush per commit instead of two (`MDB_NOMETASYNC`): an OS crash or power loss may undo the
    /// last committed transaction, but never corrupts the store. A process crash loses nothing.
    case noMetaSync
    /// No flush at all (`MDB_NOSYNC`): a process crash loses nothing, but an OS crash or power loss may
    /// lose every transaction since the last `sync()`, and on a file system that reorders writes may
    /// leave the store unreadable. Only for bulk loads that can be redone from their source.
    case noSync
}

/// Settings for opening an LMDB environment. Every size is in bytes.
public struct EnvironmentOptions: Sendable {
    /// The map size to start with. The map grows by doubling when a write fills it.
    public var mapSizeInitialBytes: Int = 64 << 20
    /// The map never grows past this. It is address space, not disk: the file only holds what is written.
    public var mapSizeMaxBytes: Int = 1 << 40
    /// Named tables the environment can hold (`mdb_env_set_maxdbs`).
    public var tablesMax: UInt32 = 16
    /// Concurrent read transactions across all processes (`mdb_env_set_maxreaders`).
    public var readersMax: UInt32 = 254
    public var durability: Durability = .durable
    /// Open without write access: no write transaction can be started, and the store may be read-only.
    public var readOnly: Bool = false
    /// Permissions of newly created files.
    public var fileMode: mode_t = 0o644

    public init() {}
}

/// A table (LMDB "named database"): opened once per environment, never closed.
public struct Table: Sendable, Hashable {
    public let name: String
    @usableFromInline let dbi: MDB_dbi
    public let flags: TableFlags
}

/// Flags a table is created with. The raw values are LMDB's; the tests pin them to lmdb.h.
public struct TableFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Several sorted values per key (`MDB_DUPSORT`).
    public static let duplicateSort = TableFlags(rawValue: UInt32(MDB_DUPSORT))
    /// With `duplicateSort`: every value of the table has the same size, stored packed (`MDB_DUPFIXED`).
    public static let duplicateFixed = TableFlags(rawValue: UInt32(MDB_DUPFIXED))
}

/// Flags for `put`. The raw values are LMDB's; the tests pin them to lmdb.h.
public struct PutFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Fail with `MDB_KEYEXIST` if the key is present (`MDB_NOOVERWRITE`).
    public static let noOverwrite = PutFlags(rawValue: UInt32(MDB_NOOVERWRITE))
    /// For duplicate-sorted tables: fail if the key/value pair is present (`MDB_NODUPDATA`).
    public static let noDuplicateData = PutFlags(rawValue: UInt32(MDB_NODUPDATA))
    /// The key is greater than every key in the table: append without a search, and fill pages
    /// completely instead of splitting them in half (`MDB_APPEND`).
    public static let append = PutFlags(rawValue: UInt32(MDB_APPEND))
    /// The value is greater than every value of its key (`MDB_APPENDDUP`).
    public static let appendDuplicate = PutFlags(rawValue: UInt32(MDB_APPENDDUP))
}

/// Facts about an environment, from `mdb_env_info` and `mdb_env_stat`.
public struct EnvironmentInfo: Sendable {
    public let mapSizeBytes: Int
    public let lastPageNumber: Int
    public let lastTransactionID: Int
    public let readersMax: Int
    public let readersUsed: Int
    public let pageSizeBytes: Int
}

/// One LMDB environment: a directory holding `data.mdb` and `lock.mdb`.
///
/// LMDB forbids opening the same environment twice in one process (its locks are per process), so
/// `Environment.open` returns the instance already open for a path. All access goes through scoped,
/// synchronous `read` and `write` closures; the transaction cannot outlive its closure, and neither
/// can the bytes it hands out. Never start a write inside a read closure on the same thread: growing
/// the map waits for every read transaction of the process to end.
public final class Environment: @unchecked Sendable {
    // @unchecked: the MDB_env is thread-safe for everything done here (transactions are begun and ended
    // on one thread, MDB_NOTLS binds reader slots to transactions, not threads); the mutable state is
    // behind `resizeLock` and `state`.

    public let path: String
    public let options: EnvironmentOptions
    let env: OpaquePointer
    /// Held shared by every transaction of this process, exclusively while the map size changes:
    /// `mdb_env_set_mapsize` may only be called with no transaction active in the process.
    private let resizeLock: UnsafeMutablePointer<pthread_rwlock_t>
    /// Stops new transactions while a resize waits for `resizeLock`: glibc's rwlock prefers readers,
    /// so with many threads reading, a resize (and with it every write) could wait for seconds.
    private let resizeGate = ResizeGate()
    private let state = Mutex(EnvironmentState())

    private struct EnvironmentState {
        var tables: [String: Table] = [:]
    }

    private static let openEnvironments = Mutex([String: WeakEnvironment]())
    private struct WeakEnvironment { weak var environment: Environment? }

    /// Opens the environment in the directory `path` (which must exist), or returns the one this process
    /// already has open there. Stale reader slots left by dead processes are cleared.
    public static func open(path: String, options: EnvironmentOptions = EnvironmentOptions()) throws -> Environment {
        let key = canonicalPath(path)
        return try openEnvironments.withLock { environments in
            if let existing = environments[key]?.environment {
                if existing.options.readOnly && !options.readOnly {
                    throw LMDBError(code: EBUSY, operation: "open \(path) for writing (this process has it open read-only)")
                }
                return existing
            }
            let environment = try Environment(path: path, options: options)
            environments[key] = WeakEnvironment(environment: environment)
            return environment
        }
    }

    private init(path: String, options: EnvironmentOptions) throws {
        precondition(options.mapSizeInitialBytes > 0 && options.mapSizeInitialBytes <= options.mapSizeMaxBytes,
                     "the initial map size must be positive and at most the maximum")
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create")
        guard let env else { fatalError("mdb_env_create returned no environment") }
        do {
            try check(mdb_env_set_maxdbs(env, options.tablesMax), "mdb_env_set_maxdbs")
            try check(mdb_env_set_maxreaders(env, options.readersMax), "mdb_env_set_maxreaders")
            try check(mdb_env_set_mapsize(env, options.mapSizeInitialBytes), "mdb_env_set_mapsize")
            var flags = UInt32(MDB_NOTLS) | UInt32(MDB_NORDAHEAD)
            switch options.durability {
            case .durable: break
            case .noMetaSync: flags |= UInt32(MDB_NOMETASYNC)
            case .noSync: flags |= UInt32(MDB_NOSYNC)
            }
            if options.readOnly { flags |= UInt32(MDB_RDONLY) }
            try check(mdb_env_open(env, path, flags, options.fileMode), "open the LMDB environment at \(path)")
            try Self.checkNotTruncated(env, path: path)
            var dead: Int32 = 0
            try check(mdb_reader_check(env, &dead), "mdb_reader_check")
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.env = env
        self.path = path
        self.options = options
        self.resizeLock = .allocate(capacity: 1)
        pthread_rwlock_init(resizeLock, nil)
    }

    /// A data file shorter than the pages its meta page says are used (a copy cut short, a transfer
    /// that stopped) would be read past its end through the map, and the process killed by SIGBUS:
    /// it is refused on open instead, naming both sizes.
    private static func checkNotTruncated(_ env: OpaquePointer, path: String) throws {
        var info = MDB_envinfo()
        var pages = MDB_stat()
        guard mdb_env_info(env, &info) == 0, mdb_env_stat(env, &pages) == 0 else { return }
        let needed = UInt64(info.me_last_pgno + 1) * UInt64(pages.ms_psize)
        let dataPath = path.hasSuffix("/") ? path + "data.mdb" : path + "/data.mdb"
        var file = stat()
        guard stat(dataPath, &file) == 0 else { return }
        let size = UInt64(file.st_size)
        if size < needed { throw LMDBTruncatedFileError(path: dataPath, bytes: size, bytesNeeded: needed) }
    }

    deinit {
        mdb_env_close(env)
        pthread_rwlock_destroy(resizeLock)
        resizeLock.deallocate()
    }

    private static func canonicalPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    // MARK: Tables

    /// Opens (creating it in a writable environment) a table. The handle is kept for the life of the
    /// environment; opening the same name again returns it.
    public func openTable(_ name: String, flags: TableFlags = [], create: Bool = true) throws -> Table {
        if let table = state.withLock({ $0.tables[name] }) { return table }
        let open = { (txn: OpaquePointer) throws -> Table in
            var dbi = MDB_dbi()
            let createFlag = create && !self.options.readOnly ? UInt32(MDB_CREATE) : 0
            try check(mdb_dbi_open(txn, name, flags.rawValue | createFlag, &dbi), "open table \(name)")
            return Table(name: name, dbi: dbi, flags: flags)
        }
        // A handle opened in a transaction is usable by others only once that transaction commits,
        // read-only ones included.
        let table = try withTransaction(readOnly: options.readOnly, retryOnMapFull: true) { txn, _ in try open(txn) }
        state.withLock { $0.tables[name] = table }
        return table
    }

    // MARK: Transactions

    /// Runs `body` in a read transaction: a consistent snapshot of the store as of the start.
    /// Bytes handed out inside `body` are valid only until it returns.
    public func read<Result>(_ body: (ReadTransaction) throws -> Result) throws -> Result {
        try withTransaction(readOnly: true, retryOnMapFull: false) { txn, _ in try body(ReadTransaction(txn: txn)) }
    }

    /// Runs `body` in the one write transaction: it commits when `body` returns and aborts when it
    /// throws. If the map fills, the transaction is aborted, the map grows, and `body` runs again from
    /// the start, so `body` must not keep effects outside the transaction between runs.
    public func write<Result>(_ body: (WriteTransaction) throws -> Result) throws -> Result {
        precondition(!options.readOnly, "write transaction on a read-only environment")
        return try withTransaction(readOnly: false, retryOnMapFull: true) { txn, mapFull in
            try body(WriteTransaction(txn: txn, mapFull: mapFull))
        }
    }

    private func withTransaction<Result>(
        readOnly: Bool, retryOnMapFull: Bool, _ body: (OpaquePointer, MapFullFlag) throws -> Result
    ) throws -> Result {
        while true {
            enterShared()
            var txn: OpaquePointer?
            var rc = mdb_txn_begin(env, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn)
            if rc == MDB_READERS_FULL {
                // Slots of processes that died without ending their transactions: clear and retry once.
                var dead: Int32 = 0
                mdb_reader_check(env, &dead)
                rc = mdb_txn_begin(env, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn)
            }
            if rc == MDB_MAP_RESIZED {
                // Another process grew the map: adopt its size, then start again.
                leaveShared()
                try adoptMapSize()
                continue
            }
            guard rc == 0, let txn else {
                leaveShared()
                throw LMDBError(code: rc, operation: readOnly ? "begin a read transaction" : "begin a write transaction")
            }
            let mapFullStorage = UnsafeMutablePointer<Bool>.allocate(capacity: 1)
            mapFullStorage.initialize(to: false)
            defer { mapFullStorage.deallocate() }
            let mapFull = MapFullFlag(storage: mapFullStorage)
            let result: Result
            do {
                result = try body(txn, mapFull)
            } catch {
                mdb_txn_abort(txn)
                leaveShared()
                // A map-full anywhere in the body is recorded in the flag, even if the body wrapped it.
                if retryOnMapFull && !readOnly && (mapFull.isSet || (error as? LMDBError)?.isMapFull == true) {
                    try grow()
                    continue
                }
                throw error
            }
            let commit = mdb_txn_commit(txn)  // Frees the transaction whatever it returns.
            leaveShared()
            if commit == MDB_MAP_FULL && retryOnMapFull && !readOnly {
                try grow()
                continue
            }
            if commit != 0 && !readOnly {
                throw LMDBError(code: commit, operation: Self.commitFailure(commit, freeBytes: freeBytes(), path: path))
            }
            try check(commit, "end a read transaction")
            return result
        }
    }

    /// What a failed commit says. LMDB reports a short write as `EIO`, which is what a full disk gives:
    /// with little space left the message says so. Either way the store stays as it was before the
    /// transaction (LMDB writes the meta page that makes a transaction visible only after its pages).
    static func commitFailure(_ code: Int32, freeBytes: UInt64?, path: String) -> String {
        var text = "commit a write transaction"
        if code == EIO || code == ENOSPC, let freeBytes, freeBytes < 64 << 20 {
            text += " (the file system holding \(path) has \(freeBytes) bytes free: it is probably full; "
                + "the store stays as it was before this transaction, and appends go on once there is room)"
        }
        return text
    }

    /// Bytes free to this process on the file system holding the environment, if it can tell.
    private func freeBytes() -> UInt64? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }

    /// Takes `resizeLock` shared for a transaction. A thread's first transaction waits while a resize
    /// is pending; one begun inside another on the same thread does not (it would wait for itself).
    private func enterShared() {
        let depth = TransactionDepth.current
        if depth == 0 { resizeGate.waitWhilePending() }
        pthread_rwlock_rdlock(resizeLock)
        TransactionDepth.current = depth + 1
    }

    private func leaveShared() {
        TransactionDepth.current -= 1
        pthread_rwlock_unlock(resizeLock)
    }

    /// Runs `body` holding `resizeLock` exclusively, with new transactions held at the gate meanwhile.
    private func exclusively<Result>(_ body: () throws -> Result) rethrows -> Result {
        resizeGate.begin()
        defer { resizeGate.end() }
        pthread_rwlock_wrlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        return try body()
    }

    private func adoptMapSize() throws {
        try exclusively { try adoptMapSizeLocked() }
    }

    private func adoptMapSizeLocked() throws {
        try check(mdb_env_set_mapsize(env, 0), "adopt the map size grown by another process")
    }

    private func grow() throws {
        try exclusively { try growLocked() }
    }

    private func growLocked() throws {
        let current = rawInfo().me_mapsize
        guard current < options.mapSizeMaxBytes else {
            throw LMDBMapFullError(mapSizeBytes: current, mapSizeMaxBytes: options.mapSizeMaxBytes)
        }
        let grown = min(options.mapSizeMaxBytes, current * 2)
        try check(mdb_env_set_mapsize(env, grown), "grow the map to \(grown) bytes")
    }

    /// Writes a consistent copy of the environment as it stands to `directory/data.mdb`, compacted:
    /// free pages left out and pages renumbered (`mdb_env_copy2` with `MDB_CP_COMPACT`). The copy runs
    /// in one read transaction, so writers go on meanwhile; a map resize in this process waits for it.
    /// `directory` must exist and hold no `data.mdb`. The copy is not synced: the caller syncs it.
    public func copy(toDirectory directory: String) throws {
        while true {
            enterShared()
            let rc = mdb_env_copy2(env, directory, UInt32(MDB_CP_COMPACT))
            leaveShared()
            if rc == MDB_MAP_RESIZED {
                try adoptMapSize()
                continue
            }
            try check(rc, "copy the environment to \(directory)")
            return
        }
    }

    /// Flushes everything committed to disk: for `Durability.noSync` environments.
    public func sync() throws {
        try check(mdb_env_sync(env, 1), "mdb_env_sync")
    }

    /// Clears reader slots of processes that died mid-transaction; returns how many were cleared.
    @discardableResult
    public func clearStaleReaders() throws -> Int {
        var dead: Int32 = 0
        try check(mdb_reader_check(env, &dead), "mdb_reader_check")
        return Int(dead)
    }

    private func rawInfo() -> MDB_envinfo {
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        return info
    }

    public func info() -> EnvironmentInfo {
        let info = rawInfo()
        var stat = MDB_stat()
        mdb_env_stat(env, &stat)
        return EnvironmentInfo(
            mapSizeBytes: info.me_mapsize, lastPageNumber: info.me_last_pgno,
            lastTransactionID: info.me_last_txnid, readersMax: Int(info.me_maxreaders),
            readersUsed: Int(info.me_numreaders), pageSizeBytes: Int(stat.ms_psize))
    }

    /// The largest key LMDB accepts, in bytes (511 for Debian's build).
    public var keySizeMaxBytes: Int { Int(mdb_env_get_maxkeysize(env)) }
}

/// Set when an operation of the transaction hit the map's end, so the whole body is run again in a
/// larger map even if the body wrapped the error (any put of the transaction that answered
/// `MDB_MAP_FULL` sets it). A pointer, not an object: every transaction and
/// cursor value carries it, and each copy of an object reference is an atomic retain and release
/// (a tenth of the writer's time when it was a class). It lives as long as its transaction.
@usableFromInline
struct MapFullFlag {
    @usableFromInline let storage: UnsafeMutablePointer<Bool>

    @usableFromInline
    var isSet: Bool {
        get { storage.pointee }
        nonmutating set { storage.pointee = newValue }
    }
}

/// Counts resizes waiting for the lock; transactions about to begin wait until there are none.
private final class ResizeGate: @unchecked Sendable {
    // @unchecked: `waiting` is guarded by `mutex`; `pending` mirrors it atomically for the fast path.
    private let pending = Atomic<Int>(0)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t> = .allocate(capacity: 1)
    private let condition: UnsafeMutablePointer<pthread_cond_t> = .allocate(capacity: 1)
    private var waiting = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func begin() {
        pthread_mutex_lock(mutex)
        waiting += 1
        pending.store(waiting, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(mutex)
    }

    func end() {
        pthread_mutex_lock(mutex)
        waiting -= 1
        pending.store(waiting, ordering: .sequentiallyConsistent)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    func waitWhilePending() {
        guard pending.load(ordering: .sequentiallyConsistent) > 0 else { return }
        pthread_mutex_lock(mutex)
        while waiting > 0 { pthread_cond_wait(condition, mutex) }
        pthread_mutex_unlock(mutex)
    }
}

/// How many transactions (of any environment) the calling thread has open: a thread-specific value
/// stored in the pointer's bits, so reading and setting it allocates nothing.
private enum TransactionDepth {
    static let key: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key, nil)
        precondition(created == 0, "pthread_key_create failed: \(created)")
        return key
    }()

    static var current: Int {
        get { Int(bitPattern: pthread_getspecific(key)) }
        set { _ = pthread_setspecific(key, UnsafeRawPointer(bitPattern: newValue)) }
    }
}
