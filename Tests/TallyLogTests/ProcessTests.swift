import Foundation
import Testing
@testable import TallyLog

/// Tests that need a second process: crash safety, a full disk, cross-process following and map growth.
@Suite(.serialized) struct ProcessTests {
    @Test func killedAppendersLoseNoAcknowledgedEventAndLeaveNoPartialBatch() throws {
        let path = temporaryStorePath("crash")
        try EventLog.create(at: path).close()
        var acknowledged: [(first: UInt64, last: UInt64, batch: Int, count: Int)] = []
        var random = SplitMix64(seed: 7)
        for round in 0..<12 {
            let child = try Child(productPath("tally-test-helper"), ["append-loop", path, String(round + 1)])
            // Let it run a random while, then kill it without warning.
            let acks = Int(random.next() % 40) + 1
            var seen = 0
            var lines: [String] = []
            while seen < acks, let line = child.readLine() { lines.append(line); seen += 1 }
            Thread.sleep(forTimeInterval: Double(random.next() % 20) / 1000)
            child.kill()
            lines += child.readRemainingLines()
            for line in lines {
                let parts = line.split(separator: " ")
                guard parts.count == 5, parts[0] == "ack" else { Issue.record("unexpected line \(line)"); continue }
                acknowledged.append((UInt64(parts[1])!, UInt64(parts[2])!, Int(parts[3])!, Int(parts[4])!))
            }
        }
        #expect(acknowledged.count >= 12)
        let log = try EventLog.open(at: path)
        let report = try log.verify()
        #expect(report.isSound, "\(String(describing: report.problem))")
        var reader = log.read()
        var events: [RecordedEvent] = []
        try reader.forEach { events.append($0) }
        // Every acknowledged batch is there whole, at the positions it was told.
        for ack in acknowledged {
            let slice = events[Int(ack.first - 1)...Int(ack.last - 1)]
            #expect(slice.count == ack.count)
        }
        // No batch is partly there: group the log by the batch payloads' (batch, of) and check counts.
        var position = 0
        while position < events.count {
            let payload = try JSONSerialization.jsonObject(with: events[position].payload) as! [String: Int]
            let count = payload["of"]!
            #expect(payload["index"] == 0, "a batch starts mid-way at position \(position + 1)")
            let batch = events[position..<min(events.count, position + count)]
            #expect(batch.count == count, "the batch at position \(position + 1) is cut short")
            position += count
        }
    }

    @Test func aFollowerInAnotherProcessSeesEveryEventOnceInOrder() throws {
        let path = temporaryStorePath("follow")
        let log = try EventLog.create(at: path)
        for index in 0..<50 { try log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "s-\(index % 3)", type: "T", payload: Data())])) }
        let follower = try Child(productPath("tally-test-helper"), ["follow", path, "300"])
        for index in 0..<250 {
            try log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "s-\(index % 3)", type: "T", payload: Data())]))
            if index % 50 == 0 { Thread.sleep(forTimeInterval: 0.03) }
        }
        let lines = follower.readRemainingLines()
        follower.process.waitUntilExit()
        #expect(lines.count == 300)
        #expect(lines.map { UInt64($0.split(separator: " ")[1])! } == Array(1...300))
    }

    @Test func aTinyMapGrowsAcrossProcessesWithNothingLost() throws {
        let path = temporaryStorePath("grow")
        var options = LogOptions()
        options.mapSizeInitialBytes = 128 << 10
        let log = try EventLog.create(at: path, options: options)
        try log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "here", type: "T", payload: Data())]))
        // Another process fills the store far beyond this process's map (2 KB payloads × 3000 ≈ 6 MB).
        let child = try Child(productPath("tally-test-helper"), ["append", path, "3000", "there", String(128 << 10)])
        #expect(child.readRemainingLines() == ["done"])
        child.process.waitUntilExit()
        // This process adopts the grown map on its next transaction, and writes past it too.
        #expect(try log.head().position == 3001)
        for _ in 0..<20 {
            try log.append(AppendRequest(events: (0..<100).map { _ in ProposedEvent(id: UUID(), stream: "here", type: "T", payload: Data(count: 2000)) }))
        }
        #expect(try log.head().position == 5001)
        #expect(try log.verify().isSound)
        #expect(log.environment.info().mapSizeBytes >= 8 << 20)
    }

    /// A full disk, as a file size limit on a child process: the commits that need room fail with an
    /// error and write nothing, and once there is room again the same process appends on from exactly
    /// what was acknowledged (its stream cache, index tail, chain and Merkle frontier rolled back).
    @Test func commitsRefusedForWantOfRoomLeaveNothingAndTheWriterGoesOn() throws {
        let path = temporaryStorePath("full")
        let log = try EventLog.create(at: path)
        try log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "account", type: "Opened", payload: Data())]))
        log.close()
        let child = try Child(productPath("tally-test-helper"), ["disk-full", path])
        let lines = child.readRemainingLines()
        child.process.waitUntilExit()
        let refusals = lines.filter { $0.hasPrefix("refused ") }
        let acks = lines.filter { $0.hasPrefix("ack ") }.map { $0.split(separator: " ").map { UInt64($0) ?? 0 } }
        #expect(refusals.count == 3, "\(lines.suffix(5))")
        // LMDB reports the short write as EIO; nothing names the limit, as nothing would name a full disk
        // but the free space `Environment.commitFailure` adds when it is low.
        #expect(refusals.allSatisfy { $0.contains("commit a write transaction failed: Input/output error") }, "\(refusals)")
        #expect(lines.last == "done", "\(lines.suffix(3))")
        // Acknowledged batches follow one another with no gap: a refused one took no position.
        var next: UInt64 = 2
        for ack in acks {
            #expect(ack[1] == next, "a batch acknowledged at \(ack[1]) where \(next) was next")
            next = ack[2] + 1
        }
        #expect(acks.count >= 200)
        let reopened = try EventLog.open(at: path)
        #expect(try reopened.head().position == next - 1)
        let report = try reopened.verify()
        #expect(report.isSound, "\(String(describing: report.problem))")
        #expect(try reopened.withSnapshot { try $0.version(of: "account") } == UInt64(acks.count) + 1)
        #expect(acks.last?[3] == UInt64(acks.count) + 1)
    }
}

@Suite struct TamperTests {
    /// Finds `needle` in the store's data file and flips one byte of it, as an attacker with the file would.
    func flipByte(in path: String, at needle: String, offset: Int = 0) throws {
        let file = path + "/log/data.mdb"
        var data = try Data(contentsOf: URL(fileURLWithPath: file))
        guard let range = data.range(of: Data(needle.utf8)) else { Issue.record("\(needle) not found in the data file"); return }
        data[range.lowerBound + offset] ^= 0x01
        try data.write(to: URL(fileURLWithPath: file))
    }

    @Test(arguments: [1, 17, 250, 499])
    func changingOneByteOfAStoredEventIsReportedAtItsPosition(target: Int) throws {
        let path = temporaryStorePath("tamper")
        let log = try EventLog.create(at: path)
        try log.append(AppendRequest(events: (1...500).map { ProposedEvent(id: UUID(), stream: "s-\($0 % 7)", type: "Sale", payload: Data(#"{"amount":100,"marker":"m\#($0)x"}"#.utf8)) }))
        #expect(try log.verify().isSound)
        log.close()
        try flipByte(in: path, at: "\"m\(target)x\"", offset: 2)
        let reopened = try EventLog.open(at: path)
        let report = try reopened.verify()
        #expect(report.problem?.position == UInt64(target), "\(String(describing: report.problem))")
        #expect(report.problem?.reason.contains("does not match its bytes") == true)
    }
}
