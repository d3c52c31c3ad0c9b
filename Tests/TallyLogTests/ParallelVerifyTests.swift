import Foundation
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
