import Foundation
import Testing
@testable import TallyLog

/// The stream and type indexes are split between the B-trees (up to the indexed watermark) and the
/// tail (after it). These tests read across that boundary, with merges at several intervals.
@Suite struct IndexTailTests {
    /// 2,500 events in batches of 100 over 4 streams and 2 types.
    static func fixture(tail: UInt64) throws -> Fixture {
        let fixture = try Fixture(indexTailEventsMax: tail)
        for batch in 0..<25 {
            let events = (0..<100).map { index in
                let number = batch * 100 + index
                return fixture.event("s-\(number % 4)", number % 2 == 0 ? "Even" : "Odd", "{\"i\":\(number)}")
            }
            try fixture.log.append(AppendRequest(events: events))
        }
        return fixture
    }

    /// The merge's radix sort gives the order a comparison sort by (stream, version) gives: for
    /// entries in position order (each stream's versions rising), with numbers past every 11-bit pass,
    /// and for entries that break that premise (then it sorts by comparison).
    @Test(arguments: [UInt64(1), 3])
    func mergeEntriesSortLikeAComparisonSort(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for (count, numberRange) in [(0, UInt64(1)), (1, 5), (2, 1), (500, 7), (5_000, 3_000), (40_000, 1 << 40), (3_000, UInt64.max)] {
            var versions: [UInt64: UInt64] = [:]
            var entries: [(number: UInt64, version: UInt64, position: UInt64)] = []
            for position in 0..<UInt64(count) {
                let number = 1 + random.next() % numberRange
                versions[number, default: 0] += 1
                entries.append((number, versions[number]!, position + 1))
            }
            let expected = entries.sorted { ($0.number, $0.version) < ($1.number, $1.version) }
            var sorted = entries
            LogTables.sortByStreamAndVersion(&sorted)
            #expect(sorted.map { [$0.number, $0.version, $0.position] } == expected.map { [$0.number, $0.version, $0.position] }, "\(count)")
            // Versions that do not rise along the positions: still sorted by (stream, version).
            if count > 2 {
                entries.swapAt(0, count - 1)
                entries[1].version = 0
                var shuffled = entries
                LogTables.sortByStreamAndVersion(&shuffled)
                let byComparison = entries.sorted { ($0.number, $0.version) < ($1.number, $1.version) }
                #expect(shuffled.map { [$0.number, $0.version] } == byComparison.map { [$0.number, $0.version] }, "\(count), premise broken")
            }
        }
    }

    /// `tally info`'s counts per type: the B-tree's count of each type's entries plus the tail's,
    /// whatever the split, against a count of the events themselves.
    @Test(arguments: [UInt64(1), 7, 1000, LogTables.indexTailEventsMaxDefault])
    func typeCountsAddTheBTreeAndTheTail(tail: UInt64) throws {
        let fixture = try Self.fixture(tail: tail)
        try fixture.log.append(AppendRequest(events: (0..<3).map { fixture.event("r-\($0)", "Rare") }))
        var counted: [String: UInt64] = [:]
        for event in try fixture.readAll() { counted[event.type, default: 0] += 1 }
        let counts = try fixture.log.withSnapshot { try $0.eventTypeCounts() }
        #expect(counts.map(\.type) == ["Even", "Odd", "Rare"])
        #expect(Dictionary(uniqueKeysWithValues: counts.map { ($0.type, $0.events) }) == counted)
        #expect(counted == ["Even": 1250, "Odd": 1250, "Rare": 3])
    }

    @Test(arguments: [UInt64(1), 7, 1000, LogTables.indexTailEventsMaxDefault])
    func readsAcrossTheWatermarkMatchTheLog(tail: UInt64) throws {
        let fixture = try Self.fixture(tail: tail)
        let watermark = try fixture.log.withSnapshot { try fixture.log.tables.indexedWatermark($0.txn, head: 2500) }
        // Merges start once the tail reaches its size and then keep it about that size.
        if tail == LogTables.indexTailEventsMaxDefault {
            #expect(watermark == 0)
        } else {
            #expect(watermark > 0 && 2500 - watermark < tail + 100, "watermark \(watermark)")
        }
        let all = try fixture.readAll()
        for stream in 0..<4 {
            let expected = all.filter { $0.stream == "s-\(stream)" }
            #expect(try fixture.readAll(ReadQuery(.stream("s-\(stream)"))) == expected)
            #expect(try fixture.readAll(ReadQuery(.stream("s-\(stream)"), backward: true)) == expected.reversed())
            #expect(try fixture.readAll(ReadQuery(.stream("s-\(stream)"), from: 480, limit: 40)).map(\.version) == Array(480..<520))
            #expect(try fixture.readAll(ReadQuery(.stream("s-\(stream)"), from: 520, backward: true, limit: 40)).map(\.version) == Array((481...520).reversed()))
            #expect(try fixture.readAll(ReadQuery(.stream("s-\(stream)"), untilPosition: 2100)) == expected.filter { $0.position <= 2100 })
            #expect(try fixture.log.withSnapshot { try $0.version(of: "s-\(stream)") } == 625)
        }
        for type in ["Even", "Odd"] {
            let expected = all.filter { $0.type == type }
            #expect(try fixture.readAll(ReadQuery(.type(type))) == expected)
            #expect(try fixture.readAll(ReadQuery(.type(type), backward: true)) == expected.reversed())
            #expect(try fixture.readAll(ReadQuery(.type(type), from: 1990, limit: 20)) == Array(expected.filter { $0.position >= 1990 }.prefix(20)))
            #expect(try fixture.readAll(ReadQuery(.type(type), from: 2010, backward: true, limit: 20))
                    == Array(expected.filter { $0.position <= 2010 }.reversed().prefix(20)))
        }
        #expect(try fixture.log.verify().isSound)
        // Expected-version checks see the tail too.
        #expect(throws: LogError.wrongExpectedVersion(stream: "s-1", expected: .exact(624), actual: 625)) {
            try fixture.append("s-1", expected: .exact(624))
        }
    }

    @Test func aSnapshotOlderThanAMergeStillSeesItsOwnTail() throws {
        let fixture = try Fixture(indexTailEventsMax: 10)
        for _ in 0..<5 { try fixture.append("s") }
        try fixture.log.withSnapshot { old in
            #expect(try old.version(of: "s") == 5)
            // Meanwhile the log grows past a merge, and a newer snapshot moves the shared tail on.
            for _ in 0..<20 { try fixture.append("s") }
            let newer = try fixture.log.withSnapshot { try $0.version(of: "s") }
            #expect(newer == 25)
            // The old snapshot still answers as of its own moment.
            #expect(try old.version(of: "s") == 5)
            var versions: [UInt64] = []
            try old.forEach(ReadQuery(.stream("s"))) { versions.append($0.version); return true }
            #expect(versions == [1, 2, 3, 4, 5])
        }
    }

    /// With many threads reading, snapshots begun just before a merge are common: the shared tail keeps
    /// the last merged slice for them instead of sending each to scan the records on its own. Older
    /// ones still get their own, and every answer is as of the snapshot's moment.
    @Test func aSnapshotJustBeforeAMergeIsServedFromTheSharedTail() throws {
        let fixture = try Fixture(indexTailEventsMax: 16)  // Merges of 8 events (half) once 16 are waiting.
        func appendAndRead(_ count: Int) throws {
            for _ in 0..<count {
                try fixture.append("s")
                _ = try fixture.log.withSnapshot { try $0.version(of: "s") }  // Moves the shared tail on.
            }
        }
        try appendAndRead(80)
        try fixture.log.withSnapshot { old in
            let watermark = try fixture.log.tables.indexedWatermark(old.txn, head: 80)
            #expect(watermark > 0)
            try appendAndRead(8)  // One more merge, seen by newer snapshots.
            let newer = try fixture.log.withSnapshot { try fixture.log.tables.indexedWatermark($0.txn, head: 88) }
            #expect(newer > watermark)
            var versions: [UInt64] = []
            try old.forEach(ReadQuery(.stream("s"))) { versions.append($0.version); return true }
            #expect(versions == Array(1...80))
            #expect(try old.version(of: "s") == 80)
            #expect(fixture.log.tail.privateBuilds == 0)
            try appendAndRead(24)  // Three more merges: the old snapshot's entries are no longer kept.
            versions = []
            try old.forEach(ReadQuery(.stream("s"))) { versions.append($0.version); return true }
            #expect(versions == Array(1...80))
            #expect(fixture.log.tail.privateBuilds == 1)
        }
        #expect(try fixture.readAll(ReadQuery(.stream("s"))).map(\.version) == Array(1...112))
        #expect(try fixture.log.verify().isSound)
    }

    /// Views stay what they were when taken, whatever the tail does after: with a fold every 5 records
    /// and a merge every 8, each of 60 views, all kept alive, still gives exactly its snapshot's
    /// (watermark, head] entries. A view shares the tail's maps; the tail must copy a map a view holds
    /// before changing it.
    @Test(arguments: [1, 5, 4_096])
    func everyViewKeepsItsOwnEntriesWhileTheTailMovesOn(recentEntriesMax: Int) throws {
        let fixture = try Fixture(indexTailEventsMax: 16)
        let tail = IndexTail(recentEntriesMax: recentEntriesMax)
        var views: [TailView] = []
        var records: [(stream: String, type: String, version: UInt64, position: UInt64)] = []
        for index in 0..<60 {
            let stream = "s-\(index % 4)", type = index % 3 == 0 ? "Even" : "Odd"
            let result = try fixture.append(stream, [fixture.event(stream, type)])
            records.append((stream, type, result.versions[0], result.positions[0]))
            views.append(try fixture.log.withSnapshot { try tail.view($0.txn, tables: fixture.log.tables) })
        }
        #expect(views.contains { $0.watermark > 16 })
        for view in views {
            let seen = records.filter { $0.position > view.watermark && $0.position <= view.head }
            for stream in 0..<4 {
                let expected = seen.filter { $0.stream == "s-\(stream)" }.map { StreamVersionPosition(version: $0.version, position: $0.position) }
                #expect(Array(view.entries(stream: "s-\(stream)")) == expected, "view at \(view.head), watermark \(view.watermark)")
            }
            for type in ["Even", "Odd"] {
                #expect(Array(view.positions(type: type)) == seen.filter { $0.type == type }.map(\.position), "view at \(view.head)")
            }
        }
    }

    @Test func reopeningRebuildsTheTailFromTheRecords() throws {
        let fixture = try Fixture(indexTailEventsMax: 1000)
        for index in 0..<30 { try fixture.append("s-\(index % 3)") }
        fixture.log.close()
        var options = LogOptions()
        options.readOnly = true
        // The merge has not happened (30 < 1,000): a fresh instance knows the streams from the records alone.
        let reopened = try EventLog.open(at: fixture.path, options: options)
        var reader = reopened.read(ReadQuery(.stream("s-2")))
        var versions: [UInt64] = []
        try reader.forEach { versions.append($0.version) }
        #expect(versions == Array(1...10))
        #expect(try reopened.verify().isSound)
    }

    /// A record in the tail that cannot be read stops a view's scan part-way: the query fails, and
    /// what the scan had added is dropped with it, so once the record reads again (here, restored)
    /// every stream and type has each of its entries once.
    @Test func aScanStoppedByAnUnreadableRecordLeavesNothingHalfDone() throws {
        let fixture = try Fixture(indexTailEventsMax: 1000)
        for index in 0..<20 { try fixture.append("s-\(index % 3)", [fixture.event("s-\(index % 3)", index % 2 == 0 ? "Even" : "Odd")]) }
        var original: [UInt8] = []
        try alterRecord(fixture.log, 10) { bytes in
            original = bytes
            bytes[0] = 9  // No record format 9.
        }
        func positions(_ selection: ReadQuery.Selection) throws -> [UInt64] {
            var reader = fixture.log.read(ReadQuery(selection))
            var found: [UInt64] = []
            try reader.forEach { found.append($0.position) }
            return found
        }
        #expect(throws: LogError.self) { _ = try positions(.stream("s-0")) }
        try alterRecord(fixture.log, 10) { $0 = original }
        for stream in 0..<3 {
            #expect(try positions(.stream("s-\(stream)")) == (1...20).filter { ($0 - 1) % 3 == stream }.map(UInt64.init))
        }
        #expect(try positions(.type("Even")) == (1...20).filter { $0 % 2 == 1 }.map(UInt64.init))
        #expect(try positions(.type("Odd")) == (1...20).filter { $0 % 2 == 0 }.map(UInt64.init))
    }

    @Test func verifyFindsAnIndexEntryThatShouldStillBeInTheTail() throws {
        let fixture = try Fixture(indexTailEventsMax: 1000)
        for _ in 0..<3 { try fixture.append("s") }
        // Forge a B-tree entry for an event after the watermark.
        try fixture.log.environment.write { txn in
            try withBigEndian(1) { key in
                try StreamEntry.with(version: 3, position: 3) { try txn.put(fixture.log.tables.streamEvents, key: key, value: $0) }
            }
        }
        let report = try fixture.log.verify()
        #expect(!report.isSound)
        #expect(report.problem?.reason.contains("position 3 of \"s\", after the indexed watermark 0") == true, "\(String(describing: report.problem))")
    }
}

@Suite struct WriterCacheTests {
    /// Map growth aborts and reruns a transaction: the writer's stream cache and pending index entries
    /// must come back to the last commit, or later expected versions and merges would be wrong.
    @Test func growingTheMapManyTimesKeepsTheWritersStateExact() throws {
        let fixture = try Fixture(mapSizeInitialBytes: 64 << 10, indexTailEventsMax: 5)
        var versions: [String: UInt64] = [:]
        var random = SplitMix64(seed: 99)
        for _ in 0..<150 {
            let stream = "s-\(random.next() % 12)"
            let count = Int(random.next() % 6) + 1
            let events = (0..<count).map { _ in fixture.event(stream, "T", "{\"pad\":\"\(String(repeating: "x", count: 1500))\"}") }
            let result = try fixture.append(stream, events, expected: .exact(versions[stream] ?? 0))
            versions[stream, default: 0] += UInt64(count)
            #expect(result.streamVersions[stream] == versions[stream])
        }
        #expect(fixture.log.environment.info().mapSizeBytes > 64 << 10)
        let report = try fixture.log.verify()
        #expect(report.isSound, "\(String(describing: report.problem))")
        for (stream, version) in versions {
            #expect(try fixture.readAll(ReadQuery(.stream(stream))).map(\.version) == Array(1...version))
        }
    }
}

@Suite(.serialized) struct IndexMergeTests {
    /// The tail merges its older half, once full: a merge dirties about one page per stream it touches
    /// however many of its entries are that stream's, so half a tail at once (32,768 events by default)
    /// writes far fewer pages per event than the eighths merged before (BENCHMARKS.md, session 11).
    /// A transaction bigger than half the tail merges as many events as it appended, so the tail
    /// cannot outgrow its merges.
    @Test func aFullTailMergesItsOlderHalf() throws {
        let fixture = try Fixture(indexTailEventsMax: 16)
        var watermarks: [UInt64] = []
        for index in 0..<40 {
            try fixture.append("s-\(index % 3)")
            watermarks.append(try fixture.log.withSnapshot { try fixture.log.tables.indexedWatermark($0.txn, head: $0.head().position) })
        }
        // Heads 1…40: nothing merged before 16 wait; at 16 the oldest 8, at 24 the next 8, and so on.
        let expected: [UInt64] = (1...40).map { head in head < 16 ? 0 : UInt64(8 * ((head - 8) / 8)) }
        #expect(watermarks == expected)
        try fixture.append("big", (0..<20).map { _ in fixture.event("big") })
        // Watermark 32, head 60: the 20 appended at once are merged from the watermark, through 52.
        #expect(try fixture.log.withSnapshot { try fixture.log.tables.indexedWatermark($0.txn, head: 60) } == 52)
        #expect(try fixture.readAll(ReadQuery(.stream("big"))).map(\.version) == Array(1...20))
        #expect(try fixture.log.verify().isSound)
    }

    /// With a tail of 16 events, a transaction that finds 16 waiting merges the oldest 8: the watermark
    /// trails the head by 8 to 16, and another process's appends make the writer read the tail back
    /// from the records.
    @Test func slicedMergesAndAnotherWriterKeepTheIndexesExact() throws {
        let fixture = try Fixture(indexTailEventsMax: 16)
        for index in 0..<150 { try fixture.append("s-\(index % 5)") }
        let watermark = { try fixture.log.withSnapshot { try fixture.log.tables.indexedWatermark($0.txn, head: $0.head().position) } }
        let trailing = try watermark()
        #expect(trailing > 0 && trailing < 150)
        #expect(150 - trailing >= 8 && 150 - trailing <= 16)
        // Another process appends into the tail (its own writer, default settings).
        let child = try Child(productPath("tally-test-helper"), ["append", fixture.path, "40", "other"])
        #expect(child.readRemainingLines() == ["done"])
        child.process.waitUntilExit()
        for index in 0..<150 { try fixture.append("s-\(index % 5)") }
        #expect(try fixture.log.head().position == 340)
        let report = try fixture.log.verify()
        #expect(report.isSound, "\(String(describing: report.problem))")
        for stream in 0..<5 {
            #expect(try fixture.readAll(ReadQuery(.stream("s-\(stream)"))).map(\.version) == Array(1...60))
        }
        #expect(try fixture.readAll(ReadQuery(.type("ItemAdded"))).count == 300)
        #expect(try fixture.readAll(ReadQuery(.type("Tick"))).count == 40)
    }

    /// Reads between small merges: each read finds the tail already holding entries the writer has
    /// since merged, and must drop exactly those (a slice of it, not all of it) and keep the rest.
    @Test func readsBetweenSlicedMergesSeeEveryEntryOnce() throws {
        let fixture = try Fixture(indexTailEventsMax: 16)
        var random = SplitMix64(seed: 5)
        var streamPositions: [String: [UInt64]] = [:], typePositions: [String: [UInt64]] = [:]
        var mergesSeen = Set<UInt64>()
        for _ in 0..<400 {
            // A few busy streams and many quiet ones; three types.
            let stream = random.next() % 3 == 0 ? "busy-\(random.next() % 2)" : "quiet-\(random.next() % 40)"
            let type = ["A", "B", "C"][Int(random.next() % 3)]
            let count = 1 + Int(random.next() % 3)
            let result = try fixture.log.append(AppendRequest(events: (0..<count).map { _ in fixture.event(stream, type) }))
            streamPositions[stream, default: []] += result.positions
            typePositions[type, default: []] += result.positions
            let probe = random.next() % 2 == 0 ? stream : Array(streamPositions.keys)[Int(random.next() % UInt64(streamPositions.count))]
            #expect(try fixture.readAll(ReadQuery(.stream(probe))).map(\.position) == streamPositions[probe]!)
            #expect(try fixture.readAll(ReadQuery(.type(type))).map(\.position) == typePositions[type]!)
            mergesSeen.insert(try fixture.log.withSnapshot { try fixture.log.tables.indexedWatermark($0.txn, head: $0.head().position) })
        }
        #expect(mergesSeen.count > 50, "the watermark moved \(mergesSeen.count) times")
        for (stream, positions) in streamPositions {
            #expect(try fixture.readAll(ReadQuery(.stream(stream), backward: true)).map(\.position) == positions.reversed())
            #expect(try fixture.log.withSnapshot { try $0.version(of: stream) } == UInt64(positions.count))
        }
        #expect(try fixture.log.verify().isSound)
    }

    /// With room for 8 streams per generation, 60 streams appended to in a shifting order keep aging
    /// the writer's cache (streams dropped, promoted from the older generation, new ones added), with
    /// the index tail merging every few events and transactions abandoned by map growth. Every append
    /// states the exact version it expects, so a cached version that is wrong by one is refused.
    @Test func theWritersCacheAgesWithoutLosingAVersion() throws {
        let fixture = try Fixture(mapSizeInitialBytes: 64 << 10, indexTailEventsMax: 5, streamCacheEntriesMax: 8)
        var versions: [String: UInt64] = [:]
        var random = SplitMix64(seed: 12)
        for round in 0..<600 {
            // A window of hot streams sliding over the 60, and now and then any stream.
            let stream = random.next() % 4 == 0 ? "s-\(random.next() % 60)" : "s-\((round / 10 + Int(random.next() % 6)) % 60)"
            let current = versions[stream] ?? 0
            let result = try fixture.append(stream, expected: current == 0 ? .noStream : .exact(current))
            #expect(result.versions == [current + 1], "round \(round), \(stream)")
            versions[stream] = current + 1
        }
        for (stream, version) in versions {
            #expect(try fixture.log.withSnapshot { try $0.version(of: stream) } == version)
            #expect(try fixture.readAll(ReadQuery(.stream(stream))).map(\.version) == Array(1...version))
        }
        #expect(try fixture.log.verify().isSound)
    }
}
