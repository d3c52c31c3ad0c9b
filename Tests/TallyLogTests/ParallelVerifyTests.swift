import Foundation
import Synchronization
import Testing
import TallyLMDB
import TallyMerkle
@testable import TallyLog

/// `verify` checks the records in parallel segments (perfect subtrees) and joins their roots. With
/// segments of 16 and 64 records, a log of 1,000 crosses many boundaries, ends in a partial segment and
/// has stored Merkle nodes both inside segments and above them.
@Suite(.serialized) struct ParallelVerifyTests {
    static let events = 1_000

    func makeLog() throws -> Fixture {
        let fixture = try Fixture(indexTailEventsMax: 64)
        for index in 0..<Self.events { try fixture.append("s-\(index % 37)", [fixture.event("s-\(index % 37)", "T", "{\"n\":\(index)}")]) }
        return fixture
    }

    func verifyAllWays(_ log: EventLog) throws -> [VerifyReport] {
        try [4, 6, 30].flatMap { level in
            try [false, true].map { try log.verify(checkIndexes: $0, segmentLevel: level, progress: nil) }
        }
    }

    /// Changes an index behind the log's back, then checks that a full verify, whatever its segments,
    /// names `reason` at `position`, and that the quick one (records only) still passes.
    func expectIndexProblem(at position: UInt64, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation,
                            _ change: (EventLog, WriteTransaction) throws -> Void) throws {
        try expectIndexProblem(at: position, { _ in reason }, sourceLocation: sourceLocation, change)
    }

    /// The same, with the reason made from the store's indexed watermark.
    func expectIndexProblem(at position: UInt64, _ reason: (_ watermark: UInt64) -> String, sourceLocation: SourceLocation = #_sourceLocation,
                            _ change: (EventLog, WriteTransaction) throws -> Void) throws {
        let fixture = try makeLog()
        let log = fixture.log
        let watermark = try log.withSnapshot { try log.tables.indexedWatermark($0.txn, head: try $0.head().position) }
        #expect(watermark > 900, "the changed entries must be below the watermark", sourceLocation: sourceLocation)
        let reason = reason(watermark)
        try log.environment.write { txn in try change(log, txn) }
        for level in [4, 6, 30] {
            let report = try log.verify(checkIndexes: true, segmentLevel: level, progress: nil)
            #expect(report.problem?.position == position, "\(String(describing: report.problem))", sourceLocation: sourceLocation)
            #expect(report.problem?.reason.contains(reason) == true, "\(String(describing: report.problem))", sourceLocation: sourceLocation)
            #expect(try log.verify(checkIndexes: false, segmentLevel: level, progress: nil).isSound, sourceLocation: sourceLocation)
        }
    }

    /// A log that ends exactly at a segment's end has no partial segment: its frontier is the full
    /// segments' roots at the log's size. (This failed as "the Merkle tree recomputed from the records
    /// differs" for every log of a multiple of 65,536 events.)
    @Test(arguments: [UInt64(16), 64, 256])
    func aLogEndingAtASegmentsEndVerifies(events: UInt64) throws {
        let fixture = try Fixture(indexTailEventsMax: 64)
        for index in 0..<Int(events) { try fixture.append("s-\(index % 5)") }
        for level in [2, 4] {
            #expect(events % (1 << UInt64(level)) == 0)
            for checkIndexes in [false, true] {
                let report = try fixture.log.verify(checkIndexes: checkIndexes, segmentLevel: level, progress: nil)
                #expect(report.isSound, "level \(level): \(String(describing: report.problem))")
            }
        }
    }

    /// An operator verifies a store while it is in use: every check must judge the log as it stood when
    /// the check began, though its parallel segments and chunks read in later snapshots, where more
    /// events were appended and the index tail merged (here every 32 events). New streams and old ones
    /// both grow meanwhile.
    @Test func aStoreBeingAppendedToVerifiesAsItStoodWhenTheCheckBegan() throws {
        let fixture = try makeLog()
        let log = fixture.log
        let stop = Atomic<Bool>(false)
        let appended = DispatchSemaphore(value: 0)
        let ids = fixture.ids
        startNamedThread("test-appender") {  // Its own thread: verify's workers may fill the global queue.
            var round = 0
            while !stop.load(ordering: .relaxed) {
                round += 1
                let events = (0..<7).map { index in
                    let stream = index % 2 == 0 ? "s-\(index % 37)" : "new-\(round)-\(index)"
                    return ProposedEvent(id: ids.next(), stream: stream, type: "T", payload: Data("{\"round\":\(round)}".utf8))
                }
                _ = try? log.append(AppendRequest(events: events))
            }
            appended.signal()
        }
        var heads: [UInt64] = []
        for pass in 0..<12 {
            // Each pass begins after more was appended, so the passes see different logs.
            let waitedFrom = ContinuousClock.now
            while try log.head().position <= heads.last ?? UInt64(Self.events), ContinuousClock.now - waitedFrom < .seconds(10) {
                Thread.sleep(forTimeInterval: 0.001)
            }
            let report = try log.verify(checkIndexes: true, segmentLevel: pass % 2 == 0 ? 4 : 6, progress: nil)
            #expect(report.isSound, "pass \(pass): \(String(describing: report.problem))")
            heads.append(report.head.position)
        }
        stop.store(true, ordering: .relaxed)
        appended.wait()
        #expect(Set(heads).count == heads.count, "the log must have grown between the checks: \(heads)")
        #expect(try log.verify().isSound)
    }

    /// The record at 500: stream `s-{499 % 37}` (`s-18`), its 14th event (versions count from 1).
    static let probed: (position: UInt64, stream: String, number: UInt64, version: UInt64) = (500, "s-18", 19, 14)

    @Test func aMissingStreamEntryIsFoundAtItsRecord() throws {
        let probed = Self.probed
        try expectIndexProblem(at: probed.position, "the stream-events index has no entry for version \(probed.version) of \"\(probed.stream)\"") { log, txn in
            let deleted = try withBigEndian(probed.number) { key in
                try StreamEntry.with(version: probed.version, position: probed.position) { try txn.delete(log.tables.streamEvents, key: key, value: $0) }
            }
            #expect(deleted)
        }
    }

    @Test func aMissingTypeEntryIsFoundAtItsRecord() throws {
        try expectIndexProblem(at: Self.probed.position, "the type-events index has no entry for it under \"T\"") { log, txn in
            let deleted = try PositionValue.with(Self.probed.position) { value in
                try txn.delete(log.tables.typeEvents, key: UnsafeRawBufferPointer(staticBytes: "T"), value: value)
            }
            #expect(deleted)
        }
    }

    @Test func anEventIDMappedElsewhereIsFoundAtItsRecord() throws {
        try expectIndexProblem(at: Self.probed.position, "the event-ids index does not map its id") { log, txn in
            // Copied out of the page first: the put below writes in the same transaction.
            let id = Array(try #require(try log.tables.record(txn, at: Self.probed.position)).idBytes)
            try id.withUnsafeBytes { key in
                try PositionValue.with(Self.probed.position + 1) { try txn.put(log.tables.eventIDs, key: key, value: $0) }
            }
        }
    }

    /// Stream `s-{n}` starts at position n + 1 and is stream n + 1; the `streams` table says otherwise.
    /// `s-5` starts inside a segment of 16; `s-16` starts the second, so only the join of the segments
    /// can tell its number wrong.
    @Test(arguments: [5, 16]) func aWrongStreamNumberIsFoundWhereTheStreamStarts(stream: Int) throws {
        try expectIndexProblem(at: UInt64(stream + 1), "stream \"s-\(stream)\" starts here but has stream number 999, not \(stream + 1)") { log, txn in
            try Array("s-\(stream)".utf8).withUnsafeBytes { key in
                try StreamNumberValue.with(999) { try txn.put(log.tables.streams, key: key, value: $0) }
            }
        }
    }

    /// An entry no record has (version 9,999 of `s-0`, the first stream) is found where the stream
    /// goes on after the watermark: its first event in the tail, at 963, follows no version 9,999.
    @Test func anEntryNoRecordHasIsFoundWhereItsStreamGoesOn() throws {
        try expectIndexProblem(at: 963, "it is version 27 of \"s-0\", but the version before it is 9999") { log, txn in
            try withBigEndian(1) { key in
                try StreamEntry.with(version: 9_999, position: 3) { try txn.put(log.tables.streamEvents, key: key, value: $0) }
            }
        }
    }

    /// An entry under a type no record has is seen by no record's check: the counts find it.
    @Test func anEntryUnderATypeNoRecordHasIsFoundByTheCounts() throws {
        try expectIndexProblem(at: 0, { "the type-events index has \($0 + 1) entries for the \($0) events up to the watermark" }) { log, txn in
            try PositionValue.with(3) { try txn.put(log.tables.typeEvents, key: UnsafeRawBufferPointer(staticBytes: "U"), value: $0) }
        }
    }

    @Test func aSoundLogIsSoundWhateverTheSegmentSize() throws {
        let fixture = try makeLog()
        var done: [UInt64] = []
        let report = try fixture.log.verify(checkIndexes: true, segmentLevel: 4) { finished, total in
            done.append(finished)
            #expect(total == 2 * UInt64(Self.events))
        }
        #expect(report.isSound, "\(String(describing: report.problem))")
        #expect(report.eventsChecked == UInt64(Self.events))
        #expect(done.last == 2 * UInt64(Self.events))
        for report in try verifyAllWays(fixture.log) { #expect(report.isSound, "\(String(describing: report.problem))") }
    }

    /// A changed payload byte at a segment's first record, its last, inside one, and at the log's end:
    /// every segmentation names that position.
    @Test(arguments: [1, 16, 17, 64, 65, 500, 999, 1_000] as [UInt64])
    func anAlteredRecordIsFoundAtItsPosition(position: UInt64) throws {
        let fixture = try makeLog()
        // Flip a bit of the payload's last byte (just before the stored hash).
        try alterRecord(fixture.log, position) { bytes in bytes[bytes.count - 33] ^= 0x20 }
        for report in try verifyAllWays(fixture.log) {
            #expect(report.problem?.position == position, "\(String(describing: report.problem))")
            #expect(report.problem?.reason.contains("altered") == true)
        }
    }

    /// A stored hash changed: that record no longer matches its bytes, whichever segment holds it.
    @Test func aChangedStoredHashIsFound() throws {
        let fixture = try makeLog()
        try alterRecord(fixture.log, 128) { bytes in bytes[bytes.count - 1] ^= 1 }
        for report in try verifyAllWays(fixture.log) { #expect(report.problem?.position == 128, "\(String(describing: report.problem))") }
    }

    /// Stored Merkle nodes inside a segment (level 5, the lowest stored, with segments of 64) and above
    /// every segment (level 8, joined from segments' roots) are both checked.
    @Test(arguments: [5, 8]) func aForgedStoredMerkleNodeIsFound(level: Int) throws {
        let fixture = try makeLog()
        try fixture.log.environment.write { txn in
            try MerkleNodeKey.with(level: level, index: 1) { key in
                #expect(try txn.get(fixture.log.tables.merkle, key: key) != nil)
                try Hash.zero.withUnsafeBytes { try txn.put(fixture.log.tables.merkle, key: key, value: $0) }
            }
        }
        for report in try verifyAllWays(fixture.log) {
            #expect(report.problem?.reason.contains("stored Merkle node at level \(level), index 1") == true, "\(String(describing: report.problem))")
        }
    }

    /// A removed record in the middle of a segment and at a segment's start.
    @Test(arguments: [33, 129] as [UInt64]) func aRemovedRecordIsFound(position: UInt64) throws {
        let fixture = try makeLog()
        try fixture.log.environment.write { txn in
            _ = try withBigEndian(position) { try txn.delete(fixture.log.tables.events, key: $0) }
        }
        for report in try verifyAllWays(fixture.log) {
            #expect(report.problem?.position == position, "\(String(describing: report.problem))")
        }
    }
}
