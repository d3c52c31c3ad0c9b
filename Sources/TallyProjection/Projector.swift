import Foundation
import GRDB
import TallyDomain
import TallyLog

/// A projector module: it turns the log's events into the tables of one read model, a SQLite
/// database an analyst can open with `sqlite3`, DuckDB or pandas.
///
/// A projector is a pure function of the events it is given: the same events in the same order give
/// the same tables. It never reads the clock or the network, so a rebuild reproduces the read model.
public protocol Projector: Sendable {
    /// The read model's name: its file is `projections/<name>.sqlite`. Letters, digits and "-".
    var name: String { get }
    /// Raised whenever the tables or what goes in them change: a new version is rebuilt from the
    /// log into a new file while the old one keeps serving, then switched in.
    var version: Int { get }
    /// The event types it consumes; the others are skipped without being decoded.
    var eventTypes: Set<String> { get }
    /// Creates the tables (with their primary keys and unique constraints), the views, and any index
    /// `apply` looks rows up by, in an empty database. A query index whose keys arrive in log order
    /// (a recorded-at time, or a handful of values then that time) belongs here too: each insert
    /// appends to it, which costs less than sorting it at the end.
    func createSchema(_ db: Database) throws
    /// Creates the secondary indexes that only queries use, with `CREATE INDEX IF NOT EXISTS`. A build
    /// creates them once it has reached the head, just before the file is switched in: one sort per
    /// index instead of a random insert into each per event (a rebuild's main cost in SQLite).
    func createQueryIndexes(_ db: Database) throws
    /// Applies one event, inside the transaction that also moves the checkpoint past it.
    func apply(_ event: ProjectedEvent, _ db: Database) throws
    /// Whether its tables hold personal values: such read models are rebuilt when a data subject is
    /// forgotten, so the erased values leave them.
    var holdsPersonalData: Bool { get }
}

extension Projector {
    public var holdsPersonalData: Bool { false }
    public func createQueryIndexes(_ db: Database) throws {}
}

/// A projector that keeps state over one batch of events (see `ProjectionBatch`). The runner makes a
/// `Batch` for each batch, passes it to every event's `apply(_:_:batch:)`, and finishes it before the
/// checkpoint moves; `apply(_:_:)`, for a single event, comes with it (a batch of one).
public protocol BatchingProjector: Projector {
    associatedtype Batch: ProjectionBatch
    func makeBatch() -> Batch
    /// The next batch of the same read model file, which may carry what `previous` (finished, its
    /// transaction committed or about to) learned from the log, e.g. who owns a cart. Only facts
    /// the log fixes may be carried: the file's rows are the truth. By default, `makeBatch()`.
    func makeBatch(after previous: Batch?) -> Batch
    /// Applies one event of the batch `batch` began.
    func apply(_ event: ProjectedEvent, _ db: Database, batch: Batch) throws
}

extension BatchingProjector {
    public func makeBatch(after previous: Batch?) -> Batch { makeBatch() }

    public func apply(_ event: ProjectedEvent, _ db: Database) throws {
        let batch = makeBatch()
        try apply(event, db, batch: batch)
        try batch.finish(db)
    }
}

/// What a projector gathers over one batch of events (one SQLite transaction, up to
/// `ProjectionRunner.batchPositions` log positions) and writes once at its end: a summary row that
/// many of the batch's events touch is written once, not once per event.
///
/// A batch never outlives its transaction: `finish` runs after the batch's last event and before
/// the checkpoint moves past it, so rows and checkpoint still commit together. A batch cut short by
/// a failing event is rolled back and applied again up to the event before it, with a new batch.
public protocol ProjectionBatch: AnyObject {
    /// Writes what the batch gathered, in the batch's transaction.
    func finish(_ db: Database) throws
}

/// An event as projectors see it: its payload in the current schema of its type (upcast if it was
/// written with an older one), viewed in place. Valid only during `Projector.apply`.
public struct ProjectedEvent {
    let record: RecordView
    /// The payload's bytes: JSON in the current shape of `type`.
    public let payloadBytes: UnsafeRawBufferPointer
    public let type: String
    /// The batch's texts of the last recorded-at time, held unowned (no reference counting per event):
    /// the runner keeps it for the whole batch, and an event never outlives its `apply`.
    unowned(unsafe) let times: TimeTexts

    init(record: RecordView, type: String, payloadBytes: UnsafeRawBufferPointer, times: TimeTexts) {
        self.record = record
        self.type = type
        self.payloadBytes = payloadBytes
        self.times = times
    }

    public var position: UInt64 { record.position }
    public var id: UUID { record.id }
    public var stream: String { record.stream }
    /// The event's version in its stream.
    public var version: UInt64 { record.version }
    public var recordedAt: Timestamp { record.recordedAt }
    public var actor: String { record.actor }
    public var payload: Data { Data(payloadBytes) }

    /// The payload as a JSON view: the fast way to read a few fields.
    public func json() throws -> JSONView {
        do { return try JSONView(document: payloadBytes) } catch let error as JSONViewError {
            throw ProjectionError.undecodable(type: type, reason: error.description)
        }
    }

    /// The payload decoded into its domain type (slower than `json()`; every field is decoded).
    public func decode<Event: DomainEvent>(_: Event.Type) throws -> Event {
        do { return try JSONDecoder().decode(Event.self, from: payload) } catch let error as DecodingError {
            throw ProjectionError.undecodable(type: type, reason: DomainCoding.describe(error))
        }
    }

    /// The recorded-at time as ISO 8601 in UTC with microseconds, for columns people read.
    public var recordedAtISO: String { times.iso8601(recordedAt) }
    /// The UTC day of `recordedAt`, "2026-11-22": what daily figures group by.
    public var day: String { times.day(recordedAt) }
}

/// The texts of the last recorded-at time asked for, one per batch being applied (so one thread):
/// the events of one transaction share their time, and a rebuild formats it once, not once per row
/// (about a thousand instructions each).
final class TimeTexts {
    /// The time the texts are of; nil before the first.
    private var microseconds: Int64?
    private var iso = ""
    private var utcDay = ""

    func iso8601(_ time: Timestamp) -> String {
        if time.microsecondsSinceEpoch != microseconds { refresh(time) }
        return iso
    }

    func day(_ time: Timestamp) -> String {
        if time.microsecondsSinceEpoch != microseconds { refresh(time) }
        return utcDay
    }

    private func refresh(_ time: Timestamp) {
        microseconds = time.microsecondsSinceEpoch
        iso = time.iso8601
        utcDay = String(iso.prefix(10))
    }
}

public enum ProjectionError: Error, Equatable, CustomStringConvertible {
    case undecodable(type: String, reason: String)
    case inconsistent(String)
    case unknownProjection(String, known: [String])
    case otherStore(path: String, expected: String, found: String)
    case notBuilt(String)
    /// Never built: its first build stopped at an event.
    case buildStopped(name: String, position: UInt64, type: String, cause: String)
    case failed(name: String, position: UInt64, type: String, cause: String)
    case positionBeyondHead(UInt64, head: UInt64)
    /// A total of minor units past what a 64-bit integer holds (about 9.2 × 10^18).
    case amountOverflow(String)

    /// `total + amount`, or `amountOverflow` naming `what`: a read model's sums stop it at the event
    /// that passes the range, where a plain `+` would stop the process.
    public static func adding(_ amount: Int64, to total: Int64, _ what: @autoclosure () -> String) throws -> Int64 {
        let (sum, overflow) = total.addingReportingOverflow(amount)
        guard !overflow else { throw amountOverflow(what()) }
        return sum
    }

    /// What an admin can do about a read model stopped at an event.
    private static func wayOn(_ name: String, _ position: UInt64) -> String {
        "fix the projector, or, if the event is at fault, `tally projections set-aside \(name) \(position) --reason …`"
    }

    public var description: String {
        switch self {
        case .undecodable(let type, let reason): "cannot decode \(type): \(reason)"
        case .inconsistent(let reason): reason
        case .unknownProjection(let name, let known): "no projection named \"\(name)\" (projections: \(known.joined(separator: ", ")))"
        case .otherStore(let path, let expected, let found):
            "\(path) was built from store \(found), not this store (\(expected)): rebuild it"
        case .notBuilt(let name): "projection \(name) has not been built: run `tally projections rebuild \(name)`"
        case .buildStopped(let name, let position, let type, let cause):
            "projection \(name) has not been built: its build stopped at position \(position) (\(type)): \(cause) (\(Self.wayOn(name, position)))"
        case .failed(let name, let position, let type, let cause):
            "projection \(name) failed at position \(position) (\(type)): \(cause) (\(Self.wayOn(name, position)))"
        case .positionBeyondHead(let position, let head): "position \(position) is beyond the log's head (\(head))"
        case .amountOverflow(let total): "\(total) passes \(Int64.max) minor units, the most a 64-bit integer holds"
        }
    }
}
