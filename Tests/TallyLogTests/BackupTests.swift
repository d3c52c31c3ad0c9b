import Foundation
import Testing
import TallyTestSupport
@testable import TallyLog

@Suite struct BackupTests {
    /// A backup taken while another thread appends is one snapshot: a prefix of the log, whole (it
    /// verifies, its events and hashes are the original's), and no larger than the original.
    @Test func aBackupDuringAppendsIsAConsistentPrefix() throws {
        let fixture = try Fixture(indexTailEventsMax: 64)
        for batch in 0..<40 { try fixture.log.append(AppendRequest(events: (0..<50).map { fixture.event("s-\(($0 + batch) % 37)") })) }
        let appending = Thread {
            for batch in 0..<200 { _ = try? fixture.log.append(AppendRequest(events: (0..<20).map { fixture.event("late-\(($0 + batch) % 11)") })) }
        }
        appending.start()
        let copyPath = temporaryStorePath("backup")
        let copied = try fixture.log.backup(into: copyPath)
        while !appending.isFinished { usleep(1000) }
        let head = try fixture.log.head()
        #expect(copied.position >= 2000 && copied.position <= head.position)

        let copy = try EventLog.open(at: copyPath)
        #expect(try copy.head() == copied)
        #expect(try copy.verify().isSound)
        var original = fixture.log.read(ReadQuery(untilPosition: copied.position))
        var backedUp = copy.read(ReadQuery())
        var pairs = 0
        while let event = try original.next() {
            let other = try #require(try backedUp.next())
            #expect(event == other)
            pairs += 1
        }
        #expect(try backedUp.next() == nil)
        #expect(UInt64(pairs) == copied.position)
        // The copy is a store: it takes appends, and its streams go on from where the copy stands.
        let next = try copy.append(AppendRequest(events: [fixture.event("s-0")]))
        #expect(next.positions == [copied.position + 1])
        #expect(try copy.verify().isSound)
        copy.close()
        let size = { (path: String) in (try FileManager.default.attributesOfItem(atPath: path + "/log/data.mdb")[.size] as? Int) ?? 0 }
        #expect(try size(copyPath) <= size(fixture.path))
    }

    @Test func aBackupNeverOverwritesALog() throws {
        let fixture = try Fixture()
        try fixture.append("s")
        let other = try Fixture()
        #expect(throws: LogError.storeExists(path: other.path)) { _ = try fixture.log.backup(into: other.path) }
        #expect(try other.log.head().position == 0)
    }
}
