import ArgumentParser
import Dispatch
import Foundation
import MemberActivityProjection
import SalesLogProjection
import Synchronization
import TallyDomain
import TallyLog
import TallyProjection
import TransactionsProjection

/// The read models this build of Tally knows.
public enum ReadModels {
    public static let all: [any Projector] = [SalesLog(), MemberActivity(), Transactions()]

    static func runner(_ log: EventLog, batchPositions: UInt64 = ProjectionRunner.batchPositionsDefault) throws -> ProjectionRunner {
        try ProjectionRunner(log: log, projectors: all, batchPositions: batchPositions, vault: FileKeyVault(store: log.path))
    }

    /// After an erasure, so the erased values leave every file: the read models that copied personal
    /// values are rebuilt (those never built are left alone), and their as-of builds, which are caches,
    /// are deleted. `report` gets a line per rebuilt read model. One whose rebuild stops at an event
    /// loses its serving file instead, which still holds the erased values, and the others go on; the
    /// error thrown at the end names it.
    static func dropErasedValues(_ log: EventLog, report: (String) -> Void) throws {
        let runner = try runner(log)
        var stopped: [String] = []
        for projector in runner.projectors where projector.holdsPersonalData {
            try runner.removeAsOfBuilds(projector.name)
            guard FileManager.default.fileExists(atPath: runner.servingLink(projector.name)) else { continue }
            do {
                let outcome = try runner.rebuild(projector, discardingUnfinished: true)
                report("\(outcome.name): rebuilt to position \(outcome.checkpoint)")
            } catch {
                try runner.removeServing(projector.name)
                stopped.append("\(projector.name): \(error); its serving file, which still held the erased values, was removed")
            }
        }
        if !stopped.isEmpty {
            throw CLIError((stopped + ["the erasure itself is recorded and its key destroyed; rebuild those read models once they can go on"])
                .joined(separator: "\n"))
        }
    }
}

struct Projections: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read models in SQLite: their status, rebuilding them, and keeping them up to date.",
        discussion: """
            Each read model is a SQLite database at <store>/projections/<name>.sqlite (a link to the \
            serving file), openable with sqlite3, DuckDB or pandas. The log is the truth: a read model \
            can be deleted and rebuilt at any time.

            Example:
              tally projections                # status of each
              tally projections rebuild sales  # rebuild while the old one serves
              tally projections run            # catch up, then follow new events
              tally projections set-aside sales 812 --reason "hand-written VoucherIssued of another shape"
              tally projections as-of --remove # delete the read models reports built --as-of a past moment
            """,
        subcommands: [ProjectionsStatus.self, ProjectionsRebuild.self, ProjectionsRun.self, ProjectionsSetAside.self, ProjectionsAsOf.self],
        defaultSubcommand: ProjectionsStatus.self
    )
}

struct ProjectionsStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Each read model's version, checkpoint, lag behind the log, state and file.",
        discussion: """
            States: current (at the head), behind (run or a report catches it up), building (a new \
            version or rebuild in progress; the old one serves meanwhile), stale (built by another \
            version), missing (never built), failed (stopped at an event it could not apply), \
            unreadable (the serving file is there but cannot be read now: a full disk, its \
            permissions; the note says why).

            Example:
              tally projections status --json
            """)

    @OptionGroup var store: StoreOptions
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        let log = try store.open(readOnly: true)
        let statuses = try ReadModels.runner(log).status()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(statuses), as: UTF8.self))
            return
        }
        let rows = statuses.map { status -> [String?] in
            [status.name, String(status.version), status.state.rawValue, status.servingVersion.map(String.init), status.checkpoint.map(String.init),
             String(status.head), status.lag.map(String.init), status.file, [status.failure
                ?? status.buildCheckpoint.map { "build at \($0) in \(status.buildFile ?? "")" },
              status.setAside.isEmpty ? nil : "set aside: \(status.setAside.map(String.init).joined(separator: ", "))"]
                .compactMap { $0 }.joined(separator: "; ")]
        }
        try TableWriter.write(columns: ["name", "version", "state", "serving", "checkpoint", "head", "lag", "file", "note"], rows: rows)
    }
}

struct ProjectionsRebuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Rebuild read models from position 0 without downtime.",
        discussion: """
            Builds into a new file while the serving one keeps answering queries, then switches it in \
            atomically and removes the old file. A rebuild that is interrupted leaves the old one \
            serving and resumes where it stopped when run again (--from-scratch discards it: use it \
            after fixing a projector's code without raising its version). With no name, rebuilds all, \
            one per core at a time.

            Example:
              tally projections rebuild
              tally projections rebuild transactions
            """)

    @OptionGroup var store: StoreOptions
    @Argument(help: "The read model to rebuild (default: all).") var name: String?
    @Option(help: "Log positions applied per SQLite transaction.") var batchPositions = ProjectionRunner.batchPositionsDefault
    @Flag(help: "Discard an unfinished rebuild instead of resuming it.") var fromScratch = false

    func validate() throws {
        guard batchPositions >= 1 else { throw ValidationError("--batch-positions must be at least 1") }
    }

    func run() throws {
        // Projections only read the log: a user who may not append can still build reports.
        let log = try store.open(readOnly: true)
        let runner = try ReadModels.runner(log, batchPositions: batchPositions)
        let projectors = try name.map { [try runner.projector(named: $0)] } ?? runner.projectors
        let progress = SharedProgress(label: "rebuild", names: projectors.map(\.name))
        // Several at once, one per core: they share only the log, so with two cores this takes
        // about half as long as one after another.
        let results = runner.rebuildAll(projectors, discardingUnfinished: fromScratch, progress: progress.update)
        progress.finishLine()
        var failed = false
        for name in projectors.map(\.name) {
            switch results[name] {
            case .success(let outcome)?:
                print("\(outcome.name): version \(outcome.version) rebuilt to position \(outcome.checkpoint) and switched in")
            case .failure(let error)?:
                printError("\(error)")
                failed = true
            case nil:
                printError("\(name): was not rebuilt")
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }
}

struct ProjectionsRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Catch every read model up, then follow the log as events commit.",
        discussion: """
            Runs until interrupted (Ctrl-C, SIGTERM), or with --once until the read models reach the \
            head. Other processes may append meanwhile. A read model whose version changed is rebuilt \
            beside the old one first. One that fails on an event stops at its last good event; the \
            others go on, and so does it once that event is set aside (`tally projections set-aside`). \
            One that fails for the machine's sake (a full disk, a locked or read-only file) stops at \
            no event: it is tried again two seconds later, then after twice as long each time (up to \
            about a minute). The exit status is 1 if a read model is still stopped at an event, or \
            behind after such an error, when it ends.

            Example:
              tally projections run
              tally projections run --once
            """)

    @OptionGroup var store: StoreOptions
    @Flag(help: "Catch up to the head once and exit.") var once = false

    func run() throws {
        // Projections only read the log: a user who may not append can still build reports.
        let log = try store.open(readOnly: true)
        let runner = try ReadModels.runner(log)
        if once {
            var failed = false
            let progress = SharedProgress(label: "catch up", names: runner.projectors.map(\.name))
            let results = runner.catchUpAll(progress: progress.update)
            progress.finishLine()
            for name in runner.projectors.map(\.name) {
                switch results[name] {
                case .success(let outcome)?:
                    print("\(name): position \(outcome.checkpoint), \(outcome.applied) applied\(outcome.switched ? ", version \(outcome.version) switched in" : "")")
                case .failure(let error)?: printError("\(error)"); failed = true
                case nil: break
                }
            }
            if failed { throw ExitCode(1) }
            return
        }
        let stop = StopSignal()
        // Read models stopped at an event and not gone on since (an event set aside lets one go on),
        // and those behind after an error of the machine's (tried again every few seconds).
        var stopped = Set<String>()
        var behind = Set<String>()
        try runner.run(isStopped: { stop.isSet }, onError: { name, error in
            printError("\(error)")
            if case ProjectionError.failed = error { stopped.insert(name) } else { behind.insert(name) }
        }, onProgress: { outcome in
            stopped.remove(outcome.name)
            behind.remove(outcome.name)
            let line = "\(outcome.name): position \(outcome.checkpoint) (+\(outcome.applied))\(outcome.switched ? ", version \(outcome.version) switched in" : "")\n"
            // A log line of a long-running follower: best effort, it must not stop the read models.
            try? writeStandardOutput(line)
        })
        if !stopped.isEmpty {
            printError("stopped at an event: \(stopped.sorted().joined(separator: ", ")) (see `tally projections status`)")
        }
        if !behind.isEmpty {
            printError("behind after an error (above): \(behind.sorted().joined(separator: ", "))")
        }
        if !stopped.isEmpty || !behind.isEmpty { throw ExitCode(1) }
    }
}

struct ProjectionsSetAside: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set-aside",
        abstract: "Leave out of one read model the event it stopped at, then catch it up.",
        discussion: """
            The log never changes, so an event a projector cannot apply (a payload of another shape, \
            written by a client that went around the domain's commands) stops its read model there for \
            good. Once you have looked at it, set it aside: that read model's builds pass over it and \
            list it in their tally_set_aside table, and `tally projections status` shows it. Only the \
            event the read model stopped at can be set aside. The decisions are kept in \
            <store>/projections/set-aside.json, beside the read models (`tally backup` copies it); \
            a running `tally projections run` picks them up. --take-back undoes one and \
            rebuilds the read model with the event, beside the serving file, which keeps answering \
            (without it) if the rebuild stops there again.

            Example:
              tally projections status
              tally projections set-aside sales 812 --reason "VoucherIssued written by hand, without voucherID"
              tally projections set-aside sales 812 --take-back   # after fixing the projector instead
            """)

    @OptionGroup var store: StoreOptions
    @Argument(help: "The read model.") var name: String
    @Argument(help: "The log position of the event it stopped at.") var position: UInt64
    @Option(help: "Why it is left out (kept with the decision and in the read model).") var reason: String?
    @Option(help: ArgumentHelp("Who decides (an admin), e.g. admin:ana (default: admin:<login name>).", valueName: "role:id"), transform: { text in
        guard let actor = Actor(text), actor.role == .admin else { throw ValidationError("--actor \"\(text)\" must be an admin, e.g. admin:ana") }
        return actor
    })
    var actor: Actor?
    @Flag(help: "Take back an event set aside earlier instead, and rebuild the read model with it.") var takeBack = false

    func validate() throws {
        if takeBack {
            guard reason == nil else { throw ValidationError("--take-back needs no --reason") }
        } else {
            guard let reason, !reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ValidationError("--reason is required: say why the event is left out")
            }
        }
    }

    func run() throws {
        let log = try store.open(readOnly: true)
        let runner = try ReadModels.runner(log)
        let projector = try runner.projector(named: name)
        if takeBack {
            guard try runner.takeBack(name, position: position) else { throw CLIError("no event at position \(position) is set aside for \(name)") }
            print("\(name): position \(position) taken back; rebuilding")
            // Beside the serving file, which keeps answering (without the event) if the rebuild stops at it again.
            let outcome = try runner.rebuild(projector)
            print("\(name): rebuilt to position \(outcome.checkpoint) and switched in")
            return
        }
        let decision = try runner.setAside(name, position: position, reason: reason ?? "", actor: (actor ?? Self.loginAdmin()).description,
                                           at: log.options.clock.now())
        print("\(name): position \(position) (\(decision.type)) set aside by \(decision.actor)")
        // A rebuild that stopped there goes on (the old file serves meanwhile); else the serving file catches up.
        let rebuilding = try runner.status().first { $0.name == name }?.buildFile != nil
        let outcome = rebuilding ? try runner.rebuild(projector) : try runner.catchUp(projector)
        print("\(name): position \(outcome.checkpoint), \(outcome.applied) applied\(outcome.switched ? ", version \(outcome.version) switched in" : "")")
    }

    /// `admin:<the login name of this process's user>`.
    static func loginAdmin() -> Actor {
        guard let entry = getpwuid(getuid()), let name = entry.pointee.pw_name, let actor = Actor("admin:" + String(cString: name)) else {
            return Actor(.admin, "unknown")
        }
        return actor
    }
}

/// Set by SIGINT or SIGTERM: long-running commands stop cleanly between batches.
// @unchecked: `sources` is written once in init and only keeps the handlers alive; the flag is atomic.
final class StopSignal: @unchecked Sendable {
    private final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }
    private let flag = Flag()
    private let sources: [any DispatchSourceSignal]

    init() {
        let flag = self.flag
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { flag.value.store(true, ordering: .relaxed) }
            source.resume()
            return source
        }
    }

    var isSet: Bool { flag.value.load(ordering: .relaxed) }
}

/// One progress bar for several read models built at once: positions done over all of them.
final class SharedProgress: Sendable {
    private let state: Mutex<(bar: ProgressBar, done: [String: UInt64], head: UInt64)>
    private let count: UInt64

    init(label: String, names: [String]) {
        state = Mutex((ProgressBar(label: label), Dictionary(uniqueKeysWithValues: names.map { ($0, 0) }), 0))
        count = UInt64(max(1, names.count))
    }

    var update: ProjectionRunner.Progress {
        { [self] name, position, head in
            state.withLock { state in
                state.done[name] = position
                state.head = max(state.head, head)
                state.bar.update(done: state.done.values.reduce(0, +), total: state.head * count)
            }
        }
    }

    func finishLine() { state.withLock { $0.bar.finish() } }
}

/// A plain text table: a header, then rows, columns padded to their widest value.
enum TableWriter {
    static func write(columns: [String], rows: [[String?]]) throws {
        let cells = rows.map { $0.map { $0 ?? "" } }
        var widths = columns.map(\.count)
        for row in cells { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        let output = OutputBuffer()
        func line(_ values: [String]) throws {
            try output.line(values.enumerated().map { index, value in
                index == values.count - 1 ? value : value.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  "))
        }
        try line(columns)
        for row in cells { try line(row) }
        try output.flush()
    }
}

struct ProjectionsAsOf: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "as-of",
        abstract: "List the read models built as of past moments (report --as-of), or remove them.",
        discussion: """
            Each `tally report ... --as-of` keeps the read model it built under projections/as-of/, \
            so asking again about the same moment is instant; each takes room like a read model of the \
            log up to there. They are caches: removing one loses nothing, and the next report as of \
            that moment builds it again. Builds of an earlier version of a read model are removed \
            when a new one is built.

            Example:
              tally projections as-of                        # name, version, position and size of each
              tally projections as-of members --remove       # remove the members builds
              tally projections as-of --remove --before 5000 # remove those as of positions before 5000
            """)

    @OptionGroup var store: StoreOptions
    @Argument(help: "Only this read model's builds (sales, members or transactions).") var name: String?
    @Flag(help: "Remove the builds listed, instead of only listing them.") var remove = false
    @Option(help: "Only builds as of a position before this one.") var before: UInt64?

    func validate() throws {
        if let name, !ReadModels.all.contains(where: { $0.name == name }) {
            throw ValidationError("no read model is named \"\(name)\": \(ReadModels.all.map(\.name).joined(separator: ", "))")
        }
    }

    func run() throws {
        let log = try store.open(readOnly: true)
        let runner = try ReadModels.runner(log)
        let selected = try runner.asOfBuilds().filter { build in
            (name == nil || build.name == name) && (before == nil || build.position < before!)
        }
        if remove {
            let removed = try runner.removeAsOfBuilds(selected)
            print("removed \(removed.count) as-of build\(removed.count == 1 ? "" : "s") (\(removed.reduce(0) { $0 + $1.bytes }) bytes)")
            return
        }
        try TableWriter.write(columns: ["name", "version", "position", "bytes", "file"],
                          rows: selected.map { [$0.name, String($0.version), String($0.position), String($0.bytes), $0.path] })
        if selected.isEmpty { writeStandardError("(no as-of builds)\n") }
    }
}
