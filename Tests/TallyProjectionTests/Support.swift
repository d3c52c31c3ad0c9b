import Foundation
import Synchronization
import GRDB
import MemberActivityProjection
import SalesLogProjection
import TallyDomain
import TallyLog
import TallyProjection
import TallyTestSupport
import Testing
import TransactionsProjection

let allProjectors: [any Projector] = [SalesLog(), MemberActivity(), Transactions()]
let usd = Currency.usd
func cents(_ minor: Int64) -> Money { Money(minor: minor, currency: usd) }
func sku(_ value: String) -> SKU { SKU(value)! }
func time(_ text: String) -> Timestamp { Timestamp(iso8601: text)! }

/// A store in a temporary directory, with a manual clock and the commerce service over it.
struct TestStore {
    let path: String
    let clock: ManualClock
    let log: EventLog
    let commerce: CommerceService

    init(start: String = "2026-11-20T09:00:00Z") throws {
        path = testPath("projections")
        clock = ManualClock(time(start))
        var options = LogOptions()
        options.durability = .noSync
        options.clock = clock
        log = try EventLog.create(at: path, options: options)
        commerce = CommerceService(log: log)
    }

    /// Executes a command that must be accepted.
    @discardableResult
    func run(_ actor: Actor, _ command: Command, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt64] {
        let outcome = try commerce.execute(CommandEnvelope(id: UUID(), actor: actor, command: command))
        guard case .accepted(let positions, _) = outcome else {
            Issue.record("\(command) was not accepted: \(outcome)", sourceLocation: sourceLocation)
            return []
        }
        return positions
    }

    func runner(_ projectors: [any Projector] = allProjectors, directory: String? = nil, batch: UInt64 = ProjectionRunner.batchPositionsDefault) throws -> ProjectionRunner {
        try ProjectionRunner(log: log, projectors: projectors, directory: directory, batchPositions: batch)
    }
}

/// Every table of a read model (but the checkpoint row), each as its rows in a stable order, and under
/// "(schema)" every table, index and view with its SQL.
func dump(_ queue: DatabaseQueue) throws -> [String: [String]] {
    try queue.read { db in
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'tally_projection' ORDER BY name")
        var result: [String: [String]] = [:]
        result["(schema)"] = try Row.fetchAll(db, sql: "SELECT type, name, sql FROM sqlite_master ORDER BY type, name").map(\.description)
        for table in tables {
            result[table] = try Row.fetchAll(db, sql: "SELECT * FROM \"\(table)\"").map(\.description).sorted()
        }
        return result
    }
}

func count(_ queue: DatabaseQueue, _ sql: String) throws -> Int {
    try queue.read { try Int.fetchOne($0, sql: sql) ?? -1 }
}

/// Runs the `tally` binary in the background; `stop` sends a signal and waits.
final class Background: @unchecked Sendable {
    let process = Process()
    let output = Pipe()
    let errors = Pipe()
    /// Standard error as it comes, and a signal once it ended.
    private let collected = Collected()
    private final class Collected: Sendable { let data = Mutex(Data()) }
    private let errorsEnded = DispatchSemaphore(value: 0)

    /// `fileSizeLimitKiB`: the files it writes may grow no further (`ulimit -f`, SIGXFSZ ignored, so a
    /// write past it fails as on a full disk).
    init(_ arguments: [String], fileSizeLimitKiB: Int? = nil) throws {
        if let fileSizeLimitKiB {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", #"trap '' XFSZ; ulimit -f \#(fileSizeLimitKiB); exec "$0" "$@""#, tallyPath()] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: tallyPath())
            process.arguments = arguments
        }
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "TALLY_STORE")
        process.environment = environment
        process.standardOutput = output
        process.standardError = errors
        errors.fileHandleForReading.readabilityHandler = { [collected, errorsEnded] handle in
            let data = handle.availableData
            if data.isEmpty { errorsEnded.signal() } else { collected.data.withLock { $0.append(data) } }
        }
        try process.run()
    }

    /// What it has written to standard error so far.
    func errorsSoFar() -> String { String(decoding: collected.data.withLock { $0 }, as: UTF8.self) }

    private var ended: (status: Int32, output: String, error: String)?

    /// Sends `signal` and waits for the end; once ended, it returns what it returned then.
    func stop(_ signal: Int32) -> (status: Int32, output: String, error: String) {
        if let ended { return ended }
        kill(process.processIdentifier, signal)
        let out = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        _ = errorsEnded.wait(timeout: .now() + 30)
        errors.fileHandleForReading.readabilityHandler = nil
        ended = (process.terminationStatus, String(decoding: out, as: UTF8.self), errorsSoFar())
        return ended!
    }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
func eventually(seconds: Double = 60, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}
