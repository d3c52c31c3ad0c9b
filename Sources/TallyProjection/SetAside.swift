import Foundation
import GRDB
import TallyLog

/// An event an admin chose to leave out of one read model, because its projector cannot apply it.
///
/// The log is never changed, so an event its projector refuses (a payload of another shape, appended
/// by a client that skipped the domain's commands) would stop that read model at its position for
/// good. An admin who has looked at it may set it aside: that read model's builds then pass over it and
/// say so in their own `tally_set_aside` table, and `tally projections status` lists it. Only the event
/// a read model stopped at can be set aside, one at a time, so nothing is left out that its projector
/// could apply. The decisions are kept beside the read models, in `<store>/projections/set-aside.json`
/// (copied by `tally backup`), not in the log.
public struct SetAsideEvent: Codable, Sendable, Equatable {
    public var projection: String
    public var position: UInt64
    public var type: String
    /// Why, in the admin's words.
    public var reason: String
    /// Who decided, e.g. `admin:ana`.
    public var actor: String
    /// When, as RFC 3339.
    public var decidedAt: String
    /// The projector's error at that event.
    public var error: String
}

extension ProjectionRunner {
    /// The file the decisions are kept in.
    public var setAsidePath: String { (directory as NSString).appendingPathComponent("set-aside.json") }

    /// Every event set aside, for every read model, in the order they were set aside.
    public func setAsideEvents() throws -> [SetAsideEvent] {
        guard let data = FileManager.default.contents(atPath: setAsidePath) else { return [] }
        do {
            return try JSONDecoder().decode([SetAsideEvent].self, from: data)
        } catch {
            throw ProjectionError.inconsistent("\(setAsidePath) is not a list of set-aside events: \(error)")
        }
    }

    /// Changes whenever the decisions are replaced (each write is a new file: a new inode).
    func setAsideStamp() -> [UInt64] {
        var info = stat()
        guard stat(setAsidePath, &info) == 0 else { return [] }
        return [UInt64(info.st_ino), UInt64(bitPattern: Int64(info.st_size)), UInt64(bitPattern: Int64(info.st_mtim.tv_sec)),
                UInt64(bitPattern: Int64(info.st_mtim.tv_nsec))]
    }

    /// Sets aside the event at `position` for the read model `name`: refused unless its serving file or
    /// its build stopped there. Catching up or rebuilding then goes on past it.
    @discardableResult
    public func setAside(_ name: String, position: UInt64, reason: String, actor: String, at time: Timestamp) throws -> SetAsideEvent {
        let projector = try projector(named: name)
        guard !reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ProjectionError.inconsistent("say why the event is set aside (a reason)")
        }
        return try withLock(projector.name) {
            let status = try status().first { $0.name == name }
            guard let stop = status?.stop else {
                throw ProjectionError.inconsistent("read model \(name) has not stopped at an event: only the event a read model stopped at can be set aside")
            }
            guard stop.position == position else {
                throw ProjectionError.inconsistent("read model \(name) stopped at position \(stop.position), not \(position): only that event can be set aside")
            }
            let decision = SetAsideEvent(projection: name, position: position, type: stop.type, reason: reason, actor: actor,
                                         decidedAt: time.iso8601, error: stop.error)
            try withLock(Self.setAsideLock) { try writeSetAside(try setAsideEvents() + [decision]) }
            return decision
        }
    }

    /// Takes back an event set aside for `name`: rebuilds apply it again, and the as-of builds that
    /// passed over it are deleted (they are caches). The serving file keeps leaving it out until it is
    /// rebuilt. False if it was not set aside.
    @discardableResult
    public func takeBack(_ name: String, position: UInt64) throws -> Bool {
        let projector = try projector(named: name)
        let taken = try withLock(projector.name) {
            try withLock(Self.setAsideLock) {
                let events = try setAsideEvents()
                let kept = events.filter { !($0.projection == name && $0.position == position) }
                guard kept.count < events.count else { return false }
                try writeSetAside(kept)
                return true
            }
        }
        guard taken else { return false }
        try removeAsOfBuilds(projector.name, atOrAfter: position)
        return true
    }

    /// Held (after the read model's own lock) while the file is read and replaced: decisions for two
    /// read models may be made at once, by two processes, and neither may lose the other's.
    static let setAsideLock = "set-aside.json"  // `set-aside.json.lock`: no projector's name has a dot.

    /// Replaces the file whole: written beside it, synced, then renamed over it.
    private func writeSetAside(_ events: [SetAsideEvent]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let temporary = setAsidePath + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: try encoder.encode(events)) else {
            throw ProjectionError.inconsistent("cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        try syncFile(temporary)
        guard rename(temporary, setAsidePath) == 0 else {
            unlink(temporary)
            throw ProjectionError.inconsistent("cannot replace \(setAsidePath): \(String(cString: strerror(errno)))")
        }
        try syncFile(directory)
    }
}

extension ReadModelFile {
    /// Notes in the read model that the event at `position` was left out of it.
    static func recordSetAside(_ db: Database, position: UInt64, type: String, reason: String) throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS tally_set_aside (position INTEGER PRIMARY KEY, type TEXT NOT NULL, reason TEXT NOT NULL);
            INSERT OR REPLACE INTO tally_set_aside (position, type, reason) VALUES (?, ?, ?)
            """, arguments: [Int64(position), type, reason])
    }
}
