import Foundation
import GRDB
import Synchronization
import TallyDomain
import TallyLog

/// Runs projectors against a log: catches each read model up from its checkpoint, follows new
/// events, rebuilds a new version beside the serving one and switches it in, and builds read models
/// as of a past position.
///
/// Files, in `<store>/projections/`:
/// - `<name>.sqlite`: a symbolic link to the serving file. Analysts open this path.
/// - `<name>.v<version>.<build>.sqlite`: a built (or being built) read model of one projector version.
/// - `<name>.lock`: held (flock) by the one process applying events to that read model at a time.
/// - `as-of/<name>.v<version>.at-<position>.sqlite`: a read model frozen at a past position.
/// - `set-aside.json`: the events admins left out of a read model (`SetAsideEvent`).
public final class ProjectionRunner: Sendable {
    public let log: EventLog
    public let projectors: [any Projector]
    public let directory: String
    /// Log positions applied per SQLite transaction: bounds memory and how much a crash redoes.
    public let batchPositions: UInt64
    public static let batchPositionsDefault: UInt64 = 65_536
    /// Opens sealed personal fields for projectors; without it (or once a subject is forgotten) they
    /// read as `PersonalData.erased`, never as ciphertext.
    public let vault: (any PersonalDataVault)?
    /// Serving files kept open between catch-ups, by path: following the log opens each once.
    private let servingFiles = Mutex<[String: ReadModelFile]>([:])

    public init(log: EventLog, projectors: [any Projector], directory: String? = nil, batchPositions: UInt64 = batchPositionsDefault,
                vault: (any PersonalDataVault)? = nil) throws {
        self.log = log
        self.vault = vault
        self.projectors = projectors
        self.directory = directory ?? (log.path as NSString).appendingPathComponent("projections")
        self.batchPositions = max(1, batchPositions)
        let names = projectors.map(\.name)
        guard Set(names).count == names.count else { throw ProjectionError.inconsistent("two projectors share a name: \(names)") }
        for name in names where name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) {
            throw ProjectionError.inconsistent("projector name \"\(name)\" must be letters, digits and \"-\"")
        }
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
    }

    public func projector(named name: String) throws -> any Projector {
        guard let projector = projectors.first(where: { $0.name == name }) else {
            throw ProjectionError.unknownProjection(name, known: projectors.map(\.name))
        }
        return projector
    }

    // MARK: Paths

    /// The path analysts open: a link to the serving file.
    public func servingLink(_ name: String) -> String { (directory as NSString).appendingPathComponent("\(name).sqlite") }

    /// The file the serving link points to, if there is one.
    func servingTarget(_ name: String) -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: servingLink(name)) else { return nil }
        return target.hasPrefix("/") ? target : (directory as NSString).appendingPathComponent(target)
    }

    /// Files of `projector` at its current version that are not serving: an unfinished build.
    func pendingBuilds(_ projector: any Projector) -> [String] {
        let prefix = "\(projector.name).v\(projector.version)."
        let serving = servingTarget(projector.name)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".sqlite") }
            .map { (directory as NSString).appendingPathComponent($0) }
            .filter { $0 != serving }
            .sorted()
    }

    // MARK: Catching up

    /// What one catch-up did.
    public struct Outcome: Sendable, Equatable {
        public var name: String
        public var version: Int
        public var checkpoint: UInt64
        public var applied: UInt64
        /// The serving file changed: a new version (or a rebuild) was switched in.
        public var switched: Bool
    }

    /// Progress of a long catch-up or rebuild: positions done of the log's head.
    public typealias Progress = @Sendable (_ name: String, _ position: UInt64, _ head: UInt64) -> Void

    /// The open connection to a serving file (opened on first use). Opening a new one for a read
    /// model closes its previous one, which another process may have switched out and removed.
    private func servingFile(_ name: String, _ path: String) throws -> ReadModelFile {
        if let open = servingFiles.withLock({ $0[path] }) { return open }
        let file = try ReadModelFile.open(path, mode: .serving)
        let prefix = (directory as NSString).appendingPathComponent("\(name).v")
        servingFiles.withLock { files in
            for stale in files.keys where stale.hasPrefix(prefix) { files.removeValue(forKey: stale) }
            files[path] = file
        }
        return file
    }

    /// Brings the read model of `projector` up to the log's head. If the serving file is of another
    /// version (or missing, or from another store), builds the current version into a new file
    /// first, while the old one keeps serving, and switches it in once it has caught up.
    @discardableResult
    public func catchUp(_ projector: any Projector, progress: Progress? = nil) throws -> Outcome {
        try withLock(projector.name) {
            let storeID = try log.storeID().uuidString
            if let target = servingTarget(projector.name), FileManager.default.fileExists(atPath: target) {
                let file = try servingFile(projector.name, target)
                let checkpoint = try file.checkpoint()
                if checkpoint.version == projector.version && checkpoint.name == projector.name && checkpoint.storeID == storeID {
                    let before = checkpoint.position
                    let after = try advance(file, projector, to: try log.head().position, progress: progress)
                    return Outcome(name: projector.name, version: projector.version, checkpoint: after, applied: after - before, switched: false)
                }
            }
            return try build(projector, fresh: false, progress: progress)
        }
    }

    /// Rebuilds `projector`'s read model from position 0 into a new file while the serving one keeps
    /// answering, then switches it in. An unfinished build of the same version (a rebuild that was
    /// interrupted) is resumed where it stopped, unless `discardingUnfinished`: the log only grows,
    /// so its rows are the ones a fresh build would write, as long as the projector's code is the same.
    @discardableResult
    public func rebuild(_ projector: any Projector, discardingUnfinished: Bool = false, progress: Progress? = nil) throws -> Outcome {
        try withLock(projector.name) { try build(projector, fresh: discardingUnfinished, progress: progress) }
    }

    /// Catches every projector up (but those named in `skipping`), concurrently: as many at once as
    /// there are cores (`DispatchQueue.concurrentPerform`), the next starting when one ends. One
    /// failing does not stop the others.
    public func catchUpAll(skipping: Set<String> = [], progress: Progress? = nil) -> [String: Result<Outcome, any Error>] {
        let results = Mutex<[String: Result<Outcome, any Error>]>([:])
        let projectors = self.projectors.filter { !skipping.contains($0.name) }
        DispatchQueue.concurrentPerform(iterations: projectors.count) { index in
            let projector = projectors[index]
            let result = Result { try catchUp(projector, progress: progress) }
            results.withLock { $0[projector.name] = result }
        }
        return results.withLock { $0 }
    }

    /// Rebuilds every projector (or those given), concurrently as `catchUpAll` does; one failing does
    /// not stop the others. On two cores `members` (about half the work) runs beside `sales`, then
    /// `transactions` (BENCHMARKS.md has what else was tried).
    public func rebuildAll(_ projectors: [any Projector]? = nil, discardingUnfinished: Bool = false,
                           progress: Progress? = nil) -> [String: Result<Outcome, any Error>] {
        let results = Mutex<[String: Result<Outcome, any Error>]>([:])
        let projectors = projectors ?? self.projectors
        DispatchQueue.concurrentPerform(iterations: projectors.count) { index in
            let projector = projectors[index]
            let result = Result { try rebuild(projector, discardingUnfinished: discardingUnfinished, progress: progress) }
            results.withLock { $0[projector.name] = result }
        }
        return results.withLock { $0 }
    }

    /// Follows the log: catches every projector up, then again each time events commit, until
    /// `isStopped`. A projector that stops at an event is reported through `onError` and left at its
    /// last good checkpoint until that event is set aside (or the process restarts with fixed code);
    /// the others go on. One that fails for the machine's sake (`isOperational`: a full disk, a
    /// locked file) is reported too, and tried again `retryInterval` later, new events or not, then
    /// after twice as long each time it fails again (at most 32 intervals), until it catches up. `onProgress` hears of each catch-up that applied events, switched a version in
    /// or ended such a run of failures.
    public func run(isStopped: @Sendable () -> Bool, retryInterval: Duration = .seconds(2),
                    onError: (String, any Error) -> Void = { _, _ in },
                    onProgress: ((Outcome) -> Void)? = nil) throws {
        let clock = ContinuousClock()
        var stopped = Set<String>()
        var retryAt: [String: (at: ContinuousClock.Instant, failures: Int)] = [:]
        var seen: UInt64?
        var decisions = setAsideStamp()
        while !isStopped() {
            let head = try log.head().position
            // An event set aside meanwhile (by another process) lets the stopped ones try again.
            let stamp = setAsideStamp()
            if stamp != decisions {
                decisions = stamp
                stopped = []
                seen = nil
            }
            let now = clock.now
            let due = retryAt.filter { $0.value.at <= now }.keys
            if !due.isEmpty || seen.map({ head > $0 }) ?? true {
                let waiting = Set(retryAt.filter { $0.value.at > now }.keys)
                for (name, result) in catchUpAll(skipping: stopped.union(waiting)) {
                    switch result {
                    case .success(let outcome):
                        let recovered = retryAt.removeValue(forKey: name) != nil
                        if outcome.applied > 0 || outcome.switched || recovered { onProgress?(outcome) }
                    case .failure(let error):
                        if case ProjectionError.failed = error {
                            stopped.insert(name)
                            retryAt[name] = nil
                        } else {
                            let failures = (retryAt[name]?.failures ?? 0) + 1
                            retryAt[name] = (clock.now.advanced(by: retryInterval * (1 << min(failures - 1, 5))), failures)
                        }
                        onError(name, error)
                    }
                }
                seen = head
            }
            try log.waitForCommit(after: head)
        }
    }

    // MARK: Building

    private func build(_ projector: any Projector, fresh: Bool, progress: Progress?) throws -> Outcome {
        let storeID = try log.storeID().uuidString
        var pending = pendingBuilds(projector)
        if fresh {
            for path in pending { ReadModelFile.remove(path) }
            pending = []
        }
        // Resume the newest unfinished build of this version; drop any others.
        var file: ReadModelFile?
        if let path = pending.last {
            for other in pending.dropLast() { ReadModelFile.remove(other) }
            if let resumed = try? ReadModelFile.open(path, mode: .building), let checkpoint = try? resumed.checkpoint(),
               checkpoint.storeID == storeID, checkpoint.version == projector.version, checkpoint.asOf == nil {
                file = resumed
            } else {
                // Unreadable (a power loss during an unsynced build) or not ours: start again.
                ReadModelFile.remove(path)
            }
        }
        if file == nil {
            let build = String(UUID().uuidString.prefix(8)).lowercased()
            let path = (directory as NSString).appendingPathComponent("\(projector.name).v\(projector.version).\(build).sqlite")
            file = try ReadModelFile.create(path, projector: projector, storeID: storeID, asOf: nil)
        }
        guard let file else { throw ProjectionError.inconsistent("no build file") }
        let start = try file.checkpoint().position
        // Catch up; events keep arriving meanwhile, so go again until a pass finds nothing new.
        var checkpoint = try advance(file, projector, to: try log.head().position, progress: progress)
        while true {
            let head = try log.head().position
            if checkpoint >= head { break }
            checkpoint = try advance(file, projector, to: head, progress: progress)
        }
        try file.createQueryIndexes(projector)
        try file.markComplete()
        try switchIn(projector.name, file: file)
        return Outcome(name: projector.name, version: projector.version, checkpoint: checkpoint, applied: checkpoint - start, switched: true)
    }

    /// Makes `file` the serving read model: made durable, then the link is replaced atomically
    /// (rename), and the previous file is removed. Readers that opened the old file keep it until they close.
    private func switchIn(_ name: String, file: ReadModelFile) throws {
        try file.queue.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try syncFile(file.path)
        let previous = servingTarget(name)
        let link = servingLink(name)
        let temporary = link + ".switching"
        unlink(temporary)
        guard symlink((file.path as NSString).lastPathComponent, temporary) == 0 else {
            throw ProjectionError.inconsistent("cannot create link \(temporary): \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, link) == 0 else {
            throw ProjectionError.inconsistent("cannot switch \(link): \(String(cString: strerror(errno)))")
        }
        try syncFile(directory)
        if let previous, previous != file.path {
            servingFiles.withLock { _ = $0.removeValue(forKey: previous) }
            ReadModelFile.remove(previous)
        }
    }

    /// Removes the serving read model of `name` (the link and its file): for a file that must not be
    /// kept, such as one holding erased values that could not be rebuilt. Open connections keep
    /// reading it until they close; `status` then says it is missing.
    public func removeServing(_ name: String) throws {
        let projector = try projector(named: name)
        try withLock(projector.name) {
            let target = servingTarget(projector.name)
            unlink(servingLink(projector.name))
            if let target {
                servingFiles.withLock { _ = $0.removeValue(forKey: target) }
                ReadModelFile.remove(target)
            }
            try syncFile(directory)
        }
    }

    // MARK: Time travel

    /// The read model of `projector` as the log stood at `position` (0: empty), built into its own
    /// file under `as-of/` (kept and reused: the past does not change). Returns its path.
    public func buildAsOf(_ projector: any Projector, position: UInt64, progress: Progress? = nil) throws -> String {
        let head = try log.head().position
        guard position <= head else { throw ProjectionError.positionBeyondHead(position, head: head) }
        let asOfDirectory = (directory as NSString).appendingPathComponent("as-of")
        try FileManager.default.createDirectory(atPath: asOfDirectory, withIntermediateDirectories: true)
        let path = (asOfDirectory as NSString).appendingPathComponent("\(projector.name).v\(projector.version).at-\(position).sqlite")
        return try withLock("\(projector.name).as-of") {
            // Builds of an earlier version of this projector can never be reused: they only take room
            // (a store that ran many versions kept them all). A later version's are left to its Tally.
            for stale in try asOfBuilds() where stale.name == projector.name && stale.version < projector.version {
                ReadModelFile.remove(stale.path)
            }
            let storeID = try log.storeID().uuidString
            if FileManager.default.fileExists(atPath: path) {
                if let existing = try? ReadModelFile.open(path, mode: .readOnly), let checkpoint = try? existing.checkpoint(),
                   checkpoint.complete, checkpoint.storeID == storeID, checkpoint.position == position {
                    return path
                }
                ReadModelFile.remove(path)
            }
            let file = try ReadModelFile.create(path, projector: projector, storeID: storeID, asOf: position)
            _ = try advance(file, projector, to: position, progress: progress)
            try file.createQueryIndexes(projector)
            try file.markComplete()
            try file.queue.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            return path
        }
    }

    /// Deletes the as-of builds of `name` at a position of `atOrAfter` or later (all of them by
    /// default), with their WAL and shared-memory files: caches that no longer match what a build
    /// would write (after an erasure, or an event set aside taken back), or that an admin clears.
    /// Returns what was removed.
    @discardableResult
    public func removeAsOfBuilds(_ name: String, atOrAfter position: UInt64 = 0) throws -> [AsOfBuild] {
        let projector = try projector(named: name)
        return try withLock("\(projector.name).as-of") {
            let removed = try asOfBuilds().filter { $0.name == projector.name && $0.position >= position }
            for build in removed { ReadModelFile.remove(build.path) }
            return removed
        }
    }

    /// Deletes exactly these as-of builds, each under its read model's as-of lock (so a build being
    /// made is never cut), and returns those that were still there.
    @discardableResult
    public func removeAsOfBuilds(_ builds: [AsOfBuild]) throws -> [AsOfBuild] {
        var removed: [AsOfBuild] = []
        for name in Set(builds.map(\.name)).sorted() {
            try withLock("\(name).as-of") {
                let present = Set(try asOfBuilds().map(\.path))
                for build in builds where build.name == name && present.contains(build.path) {
                    ReadModelFile.remove(build.path)
                    removed.append(build)
                }
            }
        }
        return removed
    }

    /// An as-of build on disk: `as-of/<name>.v<version>.at-<position>.sqlite`.
    public struct AsOfBuild: Equatable, Sendable {
        public var name: String
        public var version: Int
        public var position: UInt64
        /// The file with its WAL and shared-memory files.
        public var bytes: UInt64
        public var path: String
    }

    /// Every as-of build in the store, by name, version and position (a cache: each can be removed
    /// and is built again when asked for).
    public func asOfBuilds() throws -> [AsOfBuild] {
        let asOf = (directory as NSString).appendingPathComponent("as-of")
        var builds: [AsOfBuild] = []
        for file in (try? FileManager.default.contentsOfDirectory(atPath: asOf)) ?? [] where file.hasSuffix(".sqlite") {
            // `<name>.v<version>.at-<position>.sqlite`
            guard let at = file.range(of: ".at-", options: .backwards), let end = file.range(of: ".sqlite", options: .backwards),
                  let versionMark = file[..<at.lowerBound].range(of: ".v", options: .backwards),
                  let version = Int(file[versionMark.upperBound..<at.lowerBound]),
                  let position = UInt64(file[at.upperBound..<end.lowerBound]) else { continue }
            let path = (asOf as NSString).appendingPathComponent(file)
            let bytes = ["", "-wal", "-shm"].reduce(UInt64(0)) { total, suffix in
                total + ((try? FileManager.default.attributesOfItem(atPath: path + suffix)[.size] as? NSNumber)?.uint64Value ?? 0)
            }
            builds.append(AsOfBuild(name: String(file[..<versionMark.lowerBound]), version: version, position: position, bytes: bytes, path: path))
        }
        return builds.sorted { ($0.name, $0.version, $0.position) < ($1.name, $1.version, $1.position) }
    }

    // MARK: Applying events

    /// Applies the events after the file's checkpoint through `limit`, one transaction per batch.
    /// Returns the new checkpoint. On a projector error the events before the failing one are
    /// applied, the failure is recorded in the file, and `ProjectionError.failed` is thrown.
    func advance(_ file: ReadModelFile, _ projector: any Projector, to limit: UInt64, progress: Progress?) throws -> UInt64 {
        var reader = BatchReader(log: log, eventTypes: projector.eventTypes)
        let setAside = Dictionary(try setAsideEvents().filter { $0.projection == projector.name }.map { ($0.position, $0.reason) },
                                  uniquingKeysWith: { first, _ in first })
        // The last batch that finished in this file, for the next to carry from (`makeBatch(after:)`).
        var carried: (any ProjectionBatch)?
        // Up to here, batches of one position: a batch whose end-of-batch writes failed on its data is
        // applied again an event at a time, so the failure lands on the event that caused it.
        var onePositionUntil: UInt64 = 0
        while true {
            var failure: (position: UInt64, type: String, cause: String)?
            var reached: UInt64 = 0
            do {
                try file.queue.inTransaction(.immediate) { db in
                    // Read inside the write transaction: another process may have moved it.
                    let checkpoint = try ReadModelFile.readCheckpoint(db)
                    reached = checkpoint.position
                    guard checkpoint.position < limit else { return .rollback }
                    let end = min(limit, checkpoint.position + (checkpoint.position < onePositionUntil ? 1 : batchPositions))
                    let applied = try BatchStatements.$current.withValue(BatchStatements(db)) {
                        try apply(projector, reader: &reader, db: db, after: checkpoint.position, through: end, setAside: setAside, carried: &carried)
                    }
                    if let failed = applied.failure {
                        failure = failed
                        return .rollback
                    }
                    try ReadModelFile.moveCheckpoint(db, to: applied.last, lastEventAt: applied.lastAt)
                    reached = applied.last
                    return .commit
                }
            } catch let failed as BatchEndFailed {
                onePositionUntil = failed.through
                carried = nil
                continue
            }
            if let failure {
                // Keep everything before the failing event, and say where it stopped.
                do {
                    try file.queue.inTransaction(.immediate) { db in
                        let checkpoint = try ReadModelFile.readCheckpoint(db)
                        if failure.position > checkpoint.position + 1 {
                            let applied = try BatchStatements.$current.withValue(BatchStatements(db)) {
                                try apply(projector, reader: &reader, db: db, after: checkpoint.position, through: failure.position - 1,
                                          setAside: setAside, carried: &carried)
                            }
                            if applied.failure == nil { try ReadModelFile.moveCheckpoint(db, to: applied.last, lastEventAt: applied.lastAt) }
                        }
                        try ReadModelFile.recordFailure(db, position: failure.position, type: failure.type, error: failure.cause)
                        return .commit
                    }
                } catch let failed as BatchEndFailed {
                    // The events before the failing one fail together at their batch's end: an earlier
                    // event is at fault. Find it an event at a time.
                    onePositionUntil = failed.through
                    carried = nil
                    continue
                }
                throw ProjectionError.failed(name: projector.name, position: failure.position, type: failure.type, cause: failure.cause)
            }
            progress?(projector.name, reached, limit)
            if reached >= limit { return reached }
        }
    }

    private struct Applied {
        var last: UInt64
        var lastAt: Int64?
        var failure: (position: UInt64, type: String, cause: String)?
        /// The last event the projector applied (not one it skips or one set aside).
        var lastApplied: (position: UInt64, type: String)?
    }

    /// The writes at a batch's end failed on what the batch's events hold (a constraint, a projector's
    /// own check): `advance` applies the batch again an event at a time to find which.
    private struct BatchEndFailed: Error {
        let through: UInt64
    }

    /// Whether an error while applying events is the machine's, not the events': the disk full or
    /// failing, the file locked, read-only or damaged, memory short, the key vault unreadable. Such an
    /// error stops nothing at an event: the batch is rolled back, nothing is recorded, and the same
    /// events are applied again at the next catch-up. Any other error (a constraint of the read
    /// model's schema, a projector's own refusal, an undecodable payload, a projector's bug) is the
    /// event's, and the read model stops there. (The log's own read errors never reach this: they end
    /// the catch-up as they are.)
    static func isOperational(_ error: any Error) -> Bool {
        if let database = error as? DatabaseError {
            return operationalCodes.contains(database.resultCode.primaryResultCode)
        }
        return error is VaultError
    }

    private static let operationalCodes: [ResultCode] = [
        .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_NOMEM, .SQLITE_READONLY, .SQLITE_CANTOPEN,
        .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_INTERRUPT, .SQLITE_PERM, .SQLITE_PROTOCOL, .SQLITE_NOLFS,
    ]

    /// Applies the events after `start` through `end`, but those in `setAside` (position → reason),
    /// which are noted in the read model instead.
    private func apply(_ projector: any Projector, reader: inout BatchReader, db: Database, after start: UInt64, through end: UInt64,
                       setAside: [UInt64: String], carried: inout (any ProjectionBatch)?) throws -> Applied {
        var result = Applied(last: start)
        let batch = BatchApplication(projector, after: carried)
        // Carried only from a batch that finished: one cut short is rolled back and made again.
        carried = nil
        let times = TimeTexts()  // The events below hold it unowned: it lives as long as the closure that makes them.
        try reader.forEach(first: start + 1, last: end) { record, handling in
            if handling.wanted, !setAside.isEmpty, let reason = setAside[record.position] {
                try ReadModelFile.recordSetAside(db, position: record.position, type: handling.name, reason: reason)
            } else if handling.wanted {
                let type = handling.name
                do {
                    if handling.needsUpcast(record) || handling.personal {
                        // Rules and projections see current shapes only: upcast an older schema.
                        try Upcasting.withCurrentPayload(type: type, schemaVersion: record.schemaVersion, payload: record.payloadBytes) { payload in
                            if handling.personal {
                                let opened = try PersonalData.reveal(type: type, payload: Data(payload), vault: vault)
                                try opened.withUnsafeBytes { try batch.apply(ProjectedEvent(record: record, type: type, payloadBytes: $0, times: times), db) }
                            } else {
                                try batch.apply(ProjectedEvent(record: record, type: type, payloadBytes: payload, times: times), db)
                            }
                        }
                    } else {
                        try batch.apply(ProjectedEvent(record: record, type: type, payloadBytes: record.payloadBytes, times: times), db)
                    }
                } catch where !Self.isOperational(error) {
                    result.failure = (record.position, type, "\(error)")
                    return false
                }
                result.lastApplied = (record.position, type)
            }
            result.last = record.position
            result.lastAt = record.recordedAt.microsecondsSinceEpoch
            return true
        }
        // Positions are dense: reaching less than `end` means the log is shorter than asked.
        if result.failure == nil && result.last < end {
            throw ProjectionError.positionBeyondHead(end, head: result.last)
        }
        // A failed batch is rolled back (and applied again up to the failing event), so only a whole one is finished.
        if result.failure == nil {
            do {
                try batch.finish(db)
                carried = batch.batch
            } catch where !Self.isOperational(error) {
                if end - start > 1 { throw BatchEndFailed(through: result.last) }
                // A batch of one position: its event is the one (with none applied, nothing to blame).
                guard let applied = result.lastApplied else { throw error }
                result.failure = (applied.position, applied.type, "\(error)")
            }
        }
        return result
    }

    // MARK: Locking

    /// Runs `body` holding an exclusive lock on `<name>.lock`, shared by every process on this store.
    func withLock<Result>(_ name: String, _ body: () throws -> Result) throws -> Result {
        let path = (directory as NSString).appendingPathComponent("\(name).lock")
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw ProjectionError.inconsistent("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ProjectionError.inconsistent("cannot lock \(path): \(String(cString: strerror(errno)))") }
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }
}

/// How one batch's events reach a projector: through its batch's state when it keeps one
/// (`BatchingProjector`), else one `apply` per event and nothing to finish.
private struct BatchApplication {
    let apply: (ProjectedEvent, Database) throws -> Void
    let finish: (Database) throws -> Void
    /// The projector's batch, if it keeps one: the next batch of the same file may carry from it.
    let batch: (any ProjectionBatch)?

    /// `previous`: the batch applied just before to the same file, if it finished.
    init(_ projector: any Projector, after previous: (any ProjectionBatch)?) {
        if let batching = projector as? any BatchingProjector {
            self = Self.batched(batching, after: previous)
        } else {
            apply = { try projector.apply($0, $1) }
            finish = { _ in }
            batch = nil
        }
    }

    private init(apply: @escaping (ProjectedEvent, Database) throws -> Void, finish: @escaping (Database) throws -> Void,
                 batch: (any ProjectionBatch)?) {
        self.apply = apply
        self.finish = finish
        self.batch = batch
    }

    private static func batched<P: BatchingProjector>(_ projector: P, after previous: (any ProjectionBatch)?) -> Self {
        let batch = projector.makeBatch(after: previous as? P.Batch)
        return Self(apply: { try projector.apply($0, $1, batch: batch) }, finish: { try batch.finish($0) }, batch: batch)
    }
}
