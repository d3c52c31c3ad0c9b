import CTallySQLite
import Foundation
import GRDB
import TallyLog

/// One read model database and its checkpoint row.
///
/// Every file has a `tally_projection` table with one row: which projector and version built it, from
/// which store, up to which log position (the checkpoint), and the last failure if any. The
/// checkpoint moves in the same transaction as the rows the events produced, so after any crash the
/// tables and the checkpoint agree: each event is applied exactly once.
struct ReadModelFile {
    let path: String
    let queue: DatabaseQueue

    struct Checkpoint: Equatable {
        var name: String
        var version: Int
        var storeID: String
        var position: UInt64
        var asOf: UInt64?
        var lastEventAt: Int64?
        var complete: Bool
        var failedPosition: UInt64?
        var failedType: String?
        var failedError: String?

        /// Where it stopped, if it did.
        var stop: ProjectionStatus.Stop? {
            failedPosition.map { ProjectionStatus.Stop(position: $0, type: failedType ?? "?", error: failedError ?? "?") }
        }
    }

    enum Mode {
        /// A file being built from scratch: nothing reads it until it is switched in, and a build
        /// cut short by a power loss is thrown away and restarted, so it need not be synced.
        case building
        /// The serving file: WAL, so readers are never blocked; synced at each checkpoint's
        /// commit (a power loss loses at most the last transactions, rows and checkpoint together).
        case serving
        case readOnly
    }

    /// SQLite's memory statistics off, before this process's first connection (see `CTallySQLite`):
    /// with them on, read models rebuilt on several threads queued on one process-wide mutex.
    static let sqliteConfigured: Void = { _ = tally_sqlite_disable_memory_statistics() }()

    static func open(_ path: String, mode: Mode) throws -> ReadModelFile {
        _ = sqliteConfigured
        var configuration = Configuration()
        configuration.readonly = mode == .readOnly
        configuration.busyMode = .timeout(30)
        configuration.label = (path as NSString).lastPathComponent
        configuration.prepareDatabase { db in
            switch mode {
            // A new file gets 16 KiB pages (an existing one keeps its own): rebuilding all three read
            // models of a 100 k event store took 1.3% fewer instructions than with 4 KiB (8 KiB: 1.0%,
            // 64 KiB: 0.8%), and a 1 M store's rebuild 3.29 s against 3.37 s (medians of five, interleaved).
            //
            // Temporary files in memory (`temp_store`): inside a batch's transaction, a statement that
            // may abort half-way (an `INSERT OR REPLACE`, an `UPDATE` of several rows) first copies
            // every already-dirty page it touches into a statement journal, which SQLite spills to a
            // file past 64 KiB. Rebuilding all three read models of a 1 M event store wrote 3.34 GB
            // to those files, for 0.18 GB of read models. Now 0.63 GB is written in all, system time
            // halves, and the rebuild took 5.0–5.5 s against 5.2–6.0 s (four runs each, interleaved,
            // in a slow spell; `RowInserter` also needs no statement journal). The copies stay bounded by
            // the pages one statement touches. Index builds sort to files all the same (`createQueryIndexes`).
            //
            // A serving file gets a build's page cache (32 MiB) for its catch-ups: unlike a build, it has
            // its query indexes, so each row goes to a random page of each, and SQLite's default cache
            // (2 MB) could not hold them. Catching all three read models of a 1 M store up from position
            // 500,000 (`tools/catchup-timing`) took 2.9–3.6 s against 4.6–5.1 s, for up to 96 MB more.
            case .building:
                try db.execute(sql: "PRAGMA page_size = 16384; PRAGMA synchronous = OFF; PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY")
            case .serving: try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768")
            case .readOnly: break
            }
        }
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        if mode != .readOnly {
            // WAL lets analysts read while the projector writes. Set once per file; it persists.
            try queue.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        }
        return ReadModelFile(path: path, queue: queue)
    }

    /// The projector's query indexes, once the build has reached its end (see `Projector.createQueryIndexes`).
    /// Index creation sorts with up to `cache_size` of memory besides the page cache, for each read
    /// model being built at once: both are lowered to 8 MiB for it (the sort spills to temporary files),
    /// which keeps three concurrent builds' memory bounded whatever the log's size.
    /// The sort may use a second thread (`PRAGMA threads`): the last build to finish sorts its indexes
    /// while the other core is idle. Sorting `members`' indexes of a 1 M event log took 0.67–0.77 s
    /// instead of 0.84–0.94 s (the sqlite3 shell, same pragmas), for 8 MiB more memory.
    func createQueryIndexes(_ projector: any Projector) throws {
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA cache_size = -8192; PRAGMA temp_store = FILE; PRAGMA threads = 2") }
        try queue.inTransaction(.immediate) { db in
            try projector.createQueryIndexes(db)
            return .commit
        }
    }

    /// Creates the checkpoint table and the projector's schema in a new, empty file.
    static func create(_ path: String, projector: any Projector, storeID: String, asOf: UInt64?) throws -> ReadModelFile {
        let file = try open(path, mode: .building)
        try file.queue.inTransaction(.immediate) { db in
            try db.execute(sql: """
                CREATE TABLE tally_projection (
                    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
                    name TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    store_id TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    as_of INTEGER,
                    last_event_at INTEGER,
                    complete INTEGER NOT NULL DEFAULT 0,
                    failed_position INTEGER,
                    failed_type TEXT,
                    failed_error TEXT
                )
                """)
            try db.execute(sql: "INSERT INTO tally_projection (singleton, name, version, store_id, position, as_of) VALUES (1, ?, ?, ?, 0, ?)",
                           arguments: [projector.name, projector.version, storeID, asOf.map { Int64($0) }])
            try projector.createSchema(db)
            return .commit
        }
        return file
    }

    static func readCheckpoint(_ db: Database) throws -> Checkpoint {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM tally_projection WHERE singleton = 1") else {
            throw ProjectionError.inconsistent("the read model has no tally_projection row")
        }
        let asOf: Int64? = row["as_of"]
        let failedPosition: Int64? = row["failed_position"]
        return Checkpoint(name: row["name"], version: row["version"], storeID: row["store_id"], position: UInt64(row["position"] as Int64),
                          asOf: asOf.map { UInt64($0) }, lastEventAt: row["last_event_at"], complete: row["complete"],
                          failedPosition: failedPosition.map { UInt64($0) }, failedType: row["failed_type"], failedError: row["failed_error"])
    }

    func checkpoint() throws -> Checkpoint { try queue.read { try Self.readCheckpoint($0) } }

    static func moveCheckpoint(_ db: Database, to position: UInt64, lastEventAt: Int64?) throws {
        try db.execute(sql: """
            UPDATE tally_projection SET position = ?, last_event_at = COALESCE(?, last_event_at),
                failed_position = NULL, failed_type = NULL, failed_error = NULL WHERE singleton = 1
            """, arguments: [Int64(position), lastEventAt])
    }

    static func recordFailure(_ db: Database, position: UInt64, type: String, error: String) throws {
        try db.execute(sql: "UPDATE tally_projection SET failed_position = ?, failed_type = ?, failed_error = ? WHERE singleton = 1",
                       arguments: [Int64(position), type, error])
    }

    func markComplete() throws {
        try queue.write { try $0.execute(sql: "UPDATE tally_projection SET complete = 1 WHERE singleton = 1") }
    }

    /// Deletes a database file and its WAL and shared-memory files. Connections that still have it
    /// open keep reading the old inode until they close.
    static func remove(_ path: String) {
        for suffix in ["", "-wal", "-shm", "-journal"] { unlink(path + suffix) }
    }
}
