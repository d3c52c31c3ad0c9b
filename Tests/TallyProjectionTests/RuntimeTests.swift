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

/// Counts events per type: version 1 in one table; version 2 also records each event's stream, in a
/// new table, and can be told to fail at a position (a broken new version).
struct Counter: Projector {
    var name = "counter"
    let version: Int
    var failAt: UInt64?
    let eventTypes: Set<String> = [VoucherIssued.eventType, VoucherRedeemed.eventType, SaleRecorded.eventType, BoothRegistered.eventType]

    func createSchema(_ db: Database) throws {
        try db.execute(sql: "CREATE TABLE counts (type TEXT PRIMARY KEY, events INTEGER NOT NULL)")
        if version >= 2 { try db.execute(sql: "CREATE TABLE streams (position INTEGER PRIMARY KEY, stream TEXT NOT NULL)") }
    }

    func apply(_ event: ProjectedEvent, _ db: Database) throws {
        if event.position == failAt { throw ProjectionError.inconsistent("version \(version) cannot read this") }
        try db.execute(sql: "INSERT INTO counts VALUES (?, 1) ON CONFLICT (type) DO UPDATE SET events = events + 1", arguments: [event.type])
        if version >= 2 { try db.execute(sql: "INSERT INTO streams VALUES (?, ?)", arguments: [Int64(event.position), event.stream]) }
    }
}

@Suite struct RuntimeTests {
    @Test func aVersionBumpKeepsTheOldReadModelServingUntilTheNewOneSwitchesIn() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        let directory = testPath("bump")
        let v1 = try store.runner([Counter(version: 1)], directory: directory)
        try v1.catchUp(Counter(version: 1))
        let v1File = try #require(v1.status().first?.file)
        // An analyst has the read model open.
        let analyst = try v1.openServing("counter")
        let issued = { (db: DatabaseQueue) in try count(db, "SELECT events FROM counts WHERE type = 'VoucherIssued'") }
        #expect(try issued(analyst) == 4)

        // Version 2 is broken: its build fails half way; version 1 keeps serving, untouched.
        let bad = try #require(try store.log.read(ReadQuery(.type(SaleRecorded.eventType))).map(\.position).first)
        let broken = try store.runner([Counter(version: 2, failAt: bad)], directory: directory)
        #expect(throws: ProjectionError.self) { try broken.catchUp(Counter(version: 2, failAt: bad)) }
        var status = try #require(try broken.status().first)
        #expect(status.state == .failed && status.servingVersion == 1 && status.file == v1File)
        #expect(status.buildCheckpoint == bad - 1)
        #expect(try issued(try broken.openServing("counter")) == 4)

        // More events arrive while the fixed version 2 builds; it catches up past them, then switches in.
        try store.run(admin, .issueVoucher(voucherID: "v9", amount: cents(100), buyerEmail: "eve@example.org"))
        let fixed = try store.runner([Counter(version: 2)], directory: directory)
        let outcome = try fixed.catchUp(Counter(version: 2))
        let newHead = try store.log.head().position
        #expect(outcome.switched && outcome.checkpoint == newHead)
        status = try #require(try fixed.status().first)
        #expect(status.state == .current && status.servingVersion == 2 && status.file != v1File && status.buildFile == nil)
        let served = try fixed.openServing("counter")
        #expect(try issued(served) == 5)
        #expect(try count(served, "SELECT COUNT(*) FROM streams") > 0)
        // The old file is gone from the directory; the analyst's open connection still reads it.
        #expect(!FileManager.default.fileExists(atPath: v1File))
        #expect(try issued(analyst) == 4)
        // Files left: the link, the serving file, the lock.
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { !$0.hasSuffix("-wal") && !$0.hasSuffix("-shm") }.sorted()
        #expect(files.count == 3 && files.contains("counter.sqlite") && files.contains("counter.lock"), "\(files)")
    }

    @Test func aLogHoldingOldEventVersionsRebuildsThroughTheUpcasters() throws {
        let store = try TestStore()
        let lime = sku("000000004048")
        try store.run(admin, .openStore(storeID: "s1", name: "Corner", currency: usd))
        try store.run(admin, .createItem(storeID: "s1", sku: lime, details: ItemDetails(description: "Lime", departmentCode: "PROD")))
        // Written by Tally before PriceScheduled had a label: schema 1, no "label".
        let version1 = #"{"price":{"bogo":false,"price":{"currency":"USD","minor":100},"priceType":0,"quantity":3,"sku":"000000004048","taxable":false},"storeID":"s1"}"#
        #expect(throws: DecodingError.self) { _ = try DomainCoding.decode(PriceScheduled.self, from: Data(version1.utf8)) }
        try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: CheckoutStreams.item("s1", lime), type: PriceScheduled.eventType,
                                                                  schemaVersion: 1, actor: "admin:ana", payload: Data(version1.utf8))]))
        // The rules read it through the upcaster: four limes at "3 for $1" cost 1.34.
        let member = Actor(.member, "m1")
        try store.run(member, .registerMember(memberID: "m1", firstName: nil, lastName: nil, email: nil, phone: nil))
        try store.run(member, .openCart(cartID: "k1", storeID: "s1", memberID: "m1"))
        try store.run(member, .scanItem(cartID: "k1", scannedInput: lime.value, quantity: 4))
        try store.run(member, .checkout(cartID: "k1", paymentTransactionID: "bt-1"))
        // A schema 2 record, written now.
        try store.run(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: lime, priceType: 2, price: cents(25), label: "happy hour")))

        let runner = try store.runner([Transactions()])
        try runner.rebuild(Transactions())
        let db = try runner.openServing("transactions")
        let labels = try db.read { try String.fetchAll($0, sql: "SELECT label || ' ' || price_minor || '/' || quantity FROM item_prices ORDER BY position") }
        #expect(labels == ["3 for 1.00 USD 100/3", "happy hour 25/1"])
        #expect(try count(db, "SELECT pre_tax_total_minor FROM transaction_lines") == 134)
    }

    @Test func upcastingNamesVersionsItCannotRead() throws {
        #expect(Upcasting.needsUpcast(type: PriceScheduled.eventType, schemaVersion: 1))
        #expect(!Upcasting.needsUpcast(type: PriceScheduled.eventType, schemaVersion: 2))
        #expect(!Upcasting.needsUpcast(type: VoucherIssued.eventType, schemaVersion: 1))
        #expect(throws: UpcastError.newerThanKnown(type: "PriceScheduled", version: 3, known: 2)) {
            _ = try Upcasting.upcast(type: PriceScheduled.eventType, schemaVersion: 3, payload: Data("{}".utf8))
        }
        #expect {
            _ = try Upcasting.upcast(type: PriceScheduled.eventType, schemaVersion: 1, payload: Data(#"{"storeID":"s1"}"#.utf8))
        } throws: { error in
            (error as? UpcastError).map { "\($0)".contains("missing field \"price\"") } ?? false
        }
        // A bogo record's standard label.
        let upcast = try Upcasting.upcast(type: PriceScheduled.eventType, schemaVersion: 1, payload: Data(
            #"{"price":{"bogo":true,"price":{"currency":"USD","minor":300},"priceType":0,"quantity":1,"sku":"1","taxable":false},"storeID":"s1"}"#.utf8))
        #expect(try DomainCoding.decode(PriceScheduled.self, from: upcast).price.label == "buy one get one")
    }

    /// Query indexes that need a sort are made when a build reaches its end, not maintained event by
    /// event while it runs; those whose keys arrive in order come with the tables. The finished file
    /// (and an as-of file) has every one, and asking again changes nothing.
    @Test func queryIndexesAreBuiltOnceTheBuildIsComplete() throws {
        let store = try TestStore(start: "2026-11-20T08:00:00Z")
        var driver = DemoDriver(commerce: store.commerce, seed: 5, clock: store.clock)
        try driver.run(untilEvents: 2_000)
        let runner = try store.runner()
        let expected: [String: Set<String>] = [
            "sales": ["sales_by_booth", "sales_by_store", "sales_by_time", "sales_by_voucher"],
            "members": ["activity_by_member", "activity_by_time", "open_carts_by_member", "member_devices_by_device", "shopping_lists_by_member"],
            "transactions": ["lines_by_member", "lines_by_store", "lines_by_sku", "lines_by_time", "prices_by_item"],
        ]
        let withTheTables: [String: Set<String>] = [
            "sales": ["sales_by_booth", "sales_by_store", "sales_by_time"],
            "members": ["activity_by_time"],
            "transactions": [],
        ]
        func indexes(_ queue: DatabaseQueue) throws -> Set<String> {
            try queue.read { Set(try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")) }
        }
        for projector in allProjectors {
            // A schema alone (what a build applies events into) has only those that append.
            let bare = try DatabaseQueue()
            try bare.write { try projector.createSchema($0) }
            #expect(try indexes(bare) == withTheTables[projector.name], "\(projector.name)")
            try runner.rebuild(projector)
            let serving = try runner.openServing(projector.name)
            #expect(try indexes(serving) == expected[projector.name], "\(projector.name)")
            #expect(try serving.read { try Int.fetchOne($0, sql: "PRAGMA page_size") } == 16_384, "\(projector.name)")
            try bare.write { try projector.createQueryIndexes($0); try projector.createQueryIndexes($0) }
            #expect(try indexes(bare) == expected[projector.name], "\(projector.name)")
            let asOf = try DatabaseQueue(path: try runner.buildAsOf(projector, position: 1_000))
            #expect(try indexes(asOf) == expected[projector.name], "\(projector.name) as of 1,000")
        }
    }

    /// As-of builds are caches an admin can list and clear: exactly the ones selected go, and building
    /// a read model as of a moment clears that read model's builds of earlier versions.
    @Test func asOfBuildsAreListedRemovedAndSupersededVersionsCleared() throws {
        let store = try TestStore(start: "2026-11-20T08:00:00Z")
        var driver = DemoDriver(commerce: store.commerce, seed: 3, clock: store.clock)
        try driver.run(untilEvents: 800)
        let runner = try store.runner()
        let sales = SalesLog(), members = MemberActivity()
        for position: UInt64 in [100, 300] { _ = try runner.buildAsOf(sales, position: position) }
        _ = try runner.buildAsOf(members, position: 200)
        // A build an earlier version of `sales` left behind.
        let stale = (store.path as NSString).appendingPathComponent("projections/as-of/sales.v\(sales.version - 1).at-50.sqlite")
        #expect(FileManager.default.createFile(atPath: stale, contents: Data("old".utf8)))
        func listed() throws -> [String] { try runner.asOfBuilds().map { "\($0.name) v\($0.version) @\($0.position)" } }
        #expect(try listed() == ["members v\(members.version) @200", "sales v\(sales.version - 1) @50",
                                 "sales v\(sales.version) @100", "sales v\(sales.version) @300"])
        #expect(try runner.asOfBuilds().allSatisfy { $0.bytes > 0 })
        _ = try runner.buildAsOf(sales, position: 400)
        #expect(!FileManager.default.fileExists(atPath: stale))
        let before300 = try runner.asOfBuilds().filter { $0.position < 300 }
        #expect(try runner.removeAsOfBuilds(before300).map(\.position) == [200, 100])
        #expect(try listed() == ["sales v\(sales.version) @300", "sales v\(sales.version) @400"])
        #expect(try runner.removeAsOfBuilds(before300).isEmpty)
        // Through the CLI: the list, then everything removed.
        let list = try tally(["projections", "as-of"], store: store.path)
        #expect(list.status == 0 && list.lines.count == 3 && list.lines[1].hasPrefix("sales "), "\(list.output)")
        let removed = try tally(["projections", "as-of", "sales", "--remove"], store: store.path)
        #expect(removed.status == 0 && removed.output.hasPrefix("removed 2 as-of builds ("), "\(removed.output)")
        #expect(try runner.asOfBuilds().isEmpty)
        #expect(try tally(["projections", "as-of", "nope"], store: store.path).error.contains("no read model is named \"nope\""))
    }

    @Test func aKillDuringARebuildLosesAndDoublesNothing() throws {
        let store = try TestStore(start: "2026-11-20T08:00:00Z")
        var driver = DemoDriver(commerce: store.commerce, seed: 11, clock: store.clock)
        try driver.run(untilEvents: 12_000)
        let head = try store.log.head().position
        let runner = try store.runner()
        var rounds = 0, killedMidway = 0
        // Kill `tally projections rebuild` at different points; each run resumes the unfinished build.
        while rounds < 6 {
            rounds += 1
            let before = try runner.status().compactMap(\.buildCheckpoint).reduce(0, +)
            let child = try Background(["projections", "rebuild", "--store", store.path, "--batch-positions", "150"])
            _ = eventually(seconds: 30) {
                let now = (try? runner.status().compactMap(\.buildCheckpoint).reduce(0, +)) ?? 0
                return now > before + 300 || child.process.isRunning == false
            }
            let wasRunning = child.process.isRunning
            let result = child.stop(SIGKILL)
            if wasRunning && result.status != 0 { killedMidway += 1 } else { break }
        }
        #expect(killedMidway >= 1)
        // The same command, run to the end, resumes and switches in.
        let finish = try tally(["projections", "run", "--once"], store: store.path)
        #expect(finish.status == 0, "\(finish.error)")
        let reference = try store.runner(directory: testPath("reference"))
        for projector in allProjectors {
            try reference.rebuild(projector)
            let status = try #require(try runner.status().first { $0.name == projector.name })
            #expect(status.state == .current && status.checkpoint == head)
            #expect(try dump(try runner.openServing(projector.name)) == (try dump(try reference.openServing(projector.name))), "\(projector.name)")
        }
    }

    @Test func aSecondProcessFollowsWhileThisOneAppends() throws {
        let store = try TestStore()
        try store.run(admin, .registerBooth(boothID: "b1", name: "Pies", location: "Hall A"))
        let follower = try Background(["projections", "run", "--store", store.path])
        let runner = try store.runner()
        #expect(eventually { (try? runner.status().first { $0.name == "sales" }?.state) == .current })
        for index in 1...40 {
            try store.run(admin, .issueVoucher(voucherID: "v\(index)", amount: cents(100), buyerEmail: "b\(index)@example.org"))
        }
        let sales = try runner.openServing("sales")
        #expect(eventually { (try? count(sales, "SELECT COUNT(*) FROM vouchers")) == 40 })
        #expect(eventually { (try? runner.status().allSatisfy { $0.state == .current }) == true })
        let result = follower.stop(SIGTERM)
        #expect(result.status == 0, "\(result.error)")
    }

    /// An event its projector cannot apply stops that read model, and only it; once an admin sets it
    /// aside, a running `tally projections run` goes on past it without a new commit, the read model
    /// lists it, and a rebuild from scratch passes over it the same way.
    @Test func anEventSetAsideLetsAStoppedReadModelGoOnAndIsListedInIt() throws {
        let store = try TestStore()
        try store.run(admin, .registerBooth(boothID: "b1", name: "Pies", location: "Hall A"))
        let bad = try store.log.append(AppendRequest(events: [ProposedEvent(
            id: UUID(), stream: "voucher-x", type: VoucherIssued.eventType, payload: Data(#"{"amount":{"currency":"USD","minor":500}}"#.utf8))])).positions[0]
        for index in 1...3 {
            try store.run(admin, .issueVoucher(voucherID: "v\(index)", amount: cents(100), buyerEmail: "b\(index)@example.org"))
        }
        let runner = try store.runner()
        #expect(throws: (any Error).self) { try runner.setAside("sales", position: bad, reason: "by hand", actor: "admin:ana", at: store.clock.now()) }

        let follower = try Background(["projections", "run", "--store", store.path])
        defer { _ = follower.stop(SIGTERM) }
        #expect(eventually { (try? runner.status().first { $0.name == "sales" }?.stop?.position) == bad })
        #expect(eventually { (try? runner.status().first { $0.name == "members" }?.state) == .current })
        #expect(throws: (any Error).self) { try runner.setAside("sales", position: bad + 1, reason: "by hand", actor: "admin:ana", at: store.clock.now()) }
        #expect(throws: (any Error).self) { try runner.setAside("sales", position: bad, reason: " ", actor: "admin:ana", at: store.clock.now()) }
        #expect(try runner.setAsideEvents().isEmpty)

        let decision = try runner.setAside("sales", position: bad, reason: "by hand", actor: "admin:ana", at: store.clock.now())
        #expect(decision.type == VoucherIssued.eventType && decision.error.contains("voucherID"))
        #expect(eventually { (try? runner.status().first { $0.name == "sales" }?.state) == .current })
        #expect(try runner.status().first { $0.name == "sales" }?.setAside == [bad])
        let sales = try runner.openServing("sales")
        #expect(try count(sales, "SELECT COUNT(*) FROM vouchers") == 3)
        #expect(try count(sales, "SELECT COUNT(*) FROM tally_set_aside WHERE position = \(bad) AND type = 'VoucherIssued' AND reason = 'by hand'") == 1)
        let caughtUp = try dump(sales)

        let ended = follower.stop(SIGTERM)
        #expect(ended.status == 0, "it went on past the event set aside: \(ended.error)")
        #expect(ended.error.contains("failed at position \(bad)"))
        try runner.rebuild(SalesLog(), discardingUnfinished: true)
        #expect(try dump(try runner.openServing("sales")) == caughtUp)
        #expect(try count(try runner.openServing("sales"), "SELECT COUNT(*) FROM tally_set_aside") == 1)

        #expect(try runner.takeBack("sales", position: bad))
        #expect(try !runner.takeBack("sales", position: bad))
        #expect(throws: ProjectionError.self) { try runner.rebuild(SalesLog(), discardingUnfinished: true) }
    }

    /// A full disk is the machine's fault, not an event's: SQLite's `SQLITE_FULL` (here thrown by the
    /// projector's write, where SQLite would raise it) records no failure at the event, rolls the batch
    /// back, and `run` tries again on its own, with no new event, until the read model is current. A
    /// read model stopped by an event's own fault beside it is tried once and left stopped. Before,
    /// the full disk was recorded as the event's fault and `run` never tried that read model again.
    @Test func aFullDiskStopsNoReadModelAtAnEventAndRunTriesAgain() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        let head = try store.log.head().position
        let full = DiskFull()
        let bad = try #require(try store.log.read(ReadQuery(.type(SaleRecorded.eventType))).map(\.position).first)
        let runner = try store.runner([DiskBound(full: full), Counter(version: 1, failAt: bad)])

        let first = runner.catchUpAll()
        #expect { _ = try first["disk"]?.get() } throws: { ($0 as? DatabaseError)?.resultCode == .SQLITE_FULL }
        var disk = try #require(try runner.status().first { $0.name == "disk" })
        #expect(disk.failure == nil && disk.stop == nil && disk.state != .failed, "\(disk)")
        #expect(disk.buildCheckpoint == 0, "the batch the full disk cut short is rolled back whole")

        let stopped = Mutex(false)
        let errors = Mutex<[String: Int]>([:])
        let ended = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            try? runner.run(isStopped: { stopped.withLock { $0 } }, retryInterval: .milliseconds(10),
                            onError: { name, _ in errors.withLock { $0[name, default: 0] += 1 } })
            ended.signal()
        }
        // Tried again and again while the disk stays full, with no event appended meanwhile.
        #expect(eventually { errors.withLock { $0["disk"] ?? 0 } >= 3 })
        full.now.store(false, ordering: .relaxed)
        #expect(eventually { (try? runner.status().first { $0.name == "disk" }?.state) == .current })
        disk = try #require(try runner.status().first { $0.name == "disk" })
        #expect(disk.checkpoint == head)
        let wanted = try store.log.read().map(\.type).filter { DiskBound(full: full).eventTypes.contains($0) }
        #expect(wanted.count > 2)
        #expect(try count(try runner.openServing("disk"), "SELECT COUNT(*) FROM seen") == wanted.count)
        stopped.withLock { $0 = true }
        #expect(ended.wait(timeout: .now() + 60) == .success)
        #expect(errors.withLock { $0["counter"] } == 1, "stopped at its event, it is not tried again")
        #expect(try runner.status().first { $0.name == "counter" }?.stop?.position == bad)
    }

    /// `tally projections run` on a disk with no room (a file size limit): the read models cannot be
    /// built, each error is printed and tried again (every two seconds), none is recorded as an event's
    /// fault, and the run ends with status 1 naming the read models still behind, not "stopped at an
    /// event".
    @Test func projectionsRunOnAFullDiskRetriesAndSaysWhichAreBehind() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        let runner = try store.runner()
        let follower = try Background(["projections", "run", "--store", store.path], fileSizeLimitKiB: 16)
        defer { _ = follower.stop(SIGKILL) }
        // Three read models fail at once; a retry of each two seconds later: at least six errors.
        let deadline = Date(timeIntervalSinceNow: 60)
        var failures = 0
        while Date() < deadline, failures < 6 {
            usleep(200_000)
            failures = follower.errorsSoFar().components(separatedBy: "error: ").count - 1
        }
        #expect(failures >= 6, "\(follower.errorsSoFar())")
        for status in try runner.status() {
            #expect(status.stop == nil && status.state != .failed, "\(status)")
        }
        let ended = follower.stop(SIGTERM)
        #expect(ended.status == 1, "\(ended.error)")
        #expect(ended.error.contains("behind after an error (above): members, sales, transactions"), "\(ended.error)")
        #expect(!ended.error.contains("stopped at an event"), "\(ended.error)")
        #expect(ended.error.contains("disk is full") || ended.error.contains("disk I/O error"), "\(ended.error)")
    }

    /// A serving file that is there but cannot be read (here its header overwritten; a full disk or
    /// its permissions do the same) is not "missing", as if never built: status says "unreadable" and
    /// why, and a catch-up stops with that error rather than build over it.
    @Test func aServingFileThatCannotBeReadIsReportedAsSuch() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        try store.runner([Counter(version: 1)]).catchUp(Counter(version: 1))
        let runner = try store.runner([Counter(version: 1)])
        let file = try #require(try runner.status().first?.file)
        let handle = try #require(FileHandle(forWritingAtPath: file))
        try handle.write(contentsOf: Data(repeating: UInt8(ascii: "x"), count: 100))
        try handle.close()
        let status = try #require(try runner.status().first)
        #expect(status.state == .unreadable && status.file == file)
        #expect(status.failure?.hasPrefix("the serving file cannot be read: ") == true, "\(String(describing: status.failure))")
        #expect(throws: DatabaseError.self) { try runner.catchUp(Counter(version: 1)) }
        #expect(try runner.status().first?.file == file)
    }

    /// Decisions for two read models made at the same moment both stay: the file is read and
    /// replaced under its own lock, not only each read model's.
    @Test func eventsSetAsideAtOnceForTwoReadModelsAreAllKept() throws {
        let store = try TestStore()
        try HandScenario.record(store)
        let bad = try #require(try store.log.read(ReadQuery(.type(SaleRecorded.eventType))).map(\.position).first)
        let names = (1...4).map { "counter-\($0)" }
        let projectors = names.map { Counter(name: $0, version: 1, failAt: bad) }
        let runner = try store.runner(projectors)
        for result in runner.catchUpAll().values { #expect(throws: ProjectionError.self) { try result.get() } }
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: names.count) { index in
            do { try runner.setAside(names[index], position: bad, reason: "test", actor: "admin:ana", at: store.clock.now()) } catch {
                errors.withLock { $0.append("\(error)") }
            }
        }
        #expect(errors.withLock { $0 }.isEmpty)
        #expect(Set(try runner.setAsideEvents().map(\.projection)) == Set(names))
        for result in runner.catchUpAll().values { #expect(try result.get().checkpoint == store.log.head().position) }
    }
}

/// A projector whose every write meets a full disk while `full` holds, from its second event on.
struct DiskBound: Projector {
    let name = "disk"
    let version = 1
    let eventTypes: Set<String> = [VoucherIssued.eventType, VoucherRedeemed.eventType, SaleRecorded.eventType]
    let full: DiskFull

    func createSchema(_ db: Database) throws { try db.execute(sql: "CREATE TABLE seen (position INTEGER PRIMARY KEY)") }

    func apply(_ event: ProjectedEvent, _ db: Database) throws {
        if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM seen")! > 0, full.now.load(ordering: .relaxed) {
            throw DatabaseError(resultCode: .SQLITE_FULL, message: "database or disk is full")
        }
        try db.execute(sql: "INSERT INTO seen VALUES (?)", arguments: [Int64(event.position)])
    }
}

final class DiskFull: Sendable {
    let now = Atomic(true)
}
