import Foundation
import TallyLMDB
import TallyMerkle

/// The outcome of `EventLog.verify`.
public struct VerifyReport: Sendable {
    /// Events whose records were read.
    public var eventsChecked: UInt64 = 0
    /// The head the check ran against.
    public var head: LogHead
    /// The first thing found wrong, or nil if the store is sound.
    public var problem: VerifyProblem?

    public var isSound: Bool { problem == nil }
}

public struct VerifyProblem: Sendable, Equatable, CustomStringConvertible {
    /// The first position found bad, or 0 for a problem of the store as a whole.
    public var position: UInt64
    public var reason: String
    public var description: String { position == 0 ? reason : "position \(position): \(reason)" }
}

extension EventLog {
    /// Recomputes the hash chain and the Merkle tree from every record and checks them against the head;
    /// with `checkIndexes`, also checks every index entry against the log and counts each index.
    /// Reads in chunks, so memory stays bounded; the check covers the log as of its start.
    public func verify(checkIndexes: Bool = true, progress: ((UInt64, UInt64) -> Void)? = nil) throws -> VerifyReport {
        let (head, watermark) = try withSnapshot { snapshot in
            let head = try snapshot.head()
            return (head, try tables.indexedWatermark(snapshot.txn, head: head.position))
        }
        var report = VerifyReport(head: head)
        guard watermark <= head.position else {
            report.problem = VerifyProblem(position: 0, reason: "the indexed watermark \(watermark) is past the last position \(head.position)")
            return report
        }
        /// Last versions of the streams seen after the watermark (at most the tail's size).
        var tailVersions: [String: UInt64] = [:]
        var chain = Hash.zero
        var frontier = MerkleFrontier()
        var lastTime = Timestamp(microsecondsSinceEpoch: .min)
        var streamsSeen: UInt64 = 0
        var next: UInt64 = 1
        func fail(_ position: UInt64, _ reason: String) -> VerifyReport {
            report.problem = VerifyProblem(position: position, reason: reason)
            return report
        }
        while next <= head.position {
            let chunkEnd = min(head.position, next + 16 * UInt64(Limits.readChunkEvents) - 1)
            let found: VerifyProblem? = try withSnapshot { snapshot in
                let txn = snapshot.txn
                var problem: VerifyProblem?
                var expected = next
                try txn.withCursor(tables.events) { cursor in
                    var entry = try withBigEndian(next) { try cursor.seek($0) }
                    while let current = entry, expected <= chunkEnd {
                        let position = LogReading.keyPosition(current.key)
                        guard position == expected else {
                            problem = VerifyProblem(position: expected, reason: position > expected ? "the record is missing (the next one is at \(position))" : "a record is out of order")
                            return
                        }
                        let record: RecordView
                        do {
                            record = try RecordView(bytes: current.value, position: position)
                        } catch let error as LogError {
                            if case .corruptRecord(_, let reason) = error { problem = VerifyProblem(position: position, reason: reason) } else { throw error }
                            return
                        }
                        let leaf = record.computedHash(previous: chain)
                        guard leaf == record.hash else {
                            problem = VerifyProblem(position: position, reason: "its hash does not match its bytes and the previous record's hash: the record was altered")
                            return
                        }
                        chain = leaf
                        guard record.recordedAt >= lastTime else {
                            problem = VerifyProblem(position: position, reason: "its recorded-at time is earlier than the previous record's")
                            return
                        }
                        lastTime = record.recordedAt
                        var storedNodeProblem: String?
                        try frontier.append(leaf: leaf) { level, index, hash in
                            guard level >= LogTables.merkleStoredLevelMin, storedNodeProblem == nil else { return }
                            let stored = try MerkleNodeKey.with(level: level, index: index) { try txn.get(tables.merkle, key: $0).map { Hash(loadingFrom: $0) } }
                            if stored != hash { storedNodeProblem = "the stored Merkle node at level \(level), index \(index) does not match the records" }
                        }
                        if let storedNodeProblem { problem = VerifyProblem(position: position, reason: storedNodeProblem); return }
                        if checkIndexes, let reason = try indexProblem(txn, record: record, watermark: watermark,
                                                                       streamsSeen: &streamsSeen, tailVersions: &tailVersions) {
                            problem = VerifyProblem(position: position, reason: reason)
                            return
                        }
                        report.eventsChecked += 1
                        expected += 1
                        entry = try cursor.next()
                    }
                    if problem == nil && expected <= chunkEnd {
                        problem = VerifyProblem(position: expected, reason: "the record is missing")
                    }
                }
                return problem
            }
            if let found { report.problem = found; return report }
            next = chunkEnd + 1
            progress?(chunkEnd, head.position)
        }
        if chain != head.chainHash { return fail(head.position, "the hash of the last record differs from the head's") }
        if frontier != head.frontier { return fail(head.position, "the Merkle tree recomputed from the records differs from the head's") }
        if checkIndexes, let reason = try countProblem(head: head, watermark: watermark, streamsSeen: streamsSeen) { return fail(0, reason) }
        return report
    }

    /// Checks the index entries of one record: up to the watermark they must be in the B-trees, after it
    /// they must not be (the tail holds them); either way the stream's versions must run without gaps.
    private func indexProblem(_ txn: ReadTransaction, record: RecordView, watermark: UInt64, streamsSeen: inout UInt64,
                              tailVersions: inout [String: UInt64]) throws -> String? {
        let position = record.position
        guard try tables.position(txn, ofEventID: record.id) == position else {
            return "the event-ids index does not map its id \(record.id) to it"
        }
        guard let number = try tables.streamNumber(txn, streamUTF8: record.streamBytes) else {
            return "its stream \(quoted(record.stream)) is missing from the streams table"
        }
        if record.version == 1 {
            streamsSeen += 1
            guard number == streamsSeen else { return "stream \(quoted(record.stream)) starts here but has stream number \(number), not \(streamsSeen)" }
        }
        let indexed = position <= watermark
        let streamProblem: String? = try withBigEndian(number) { key in
            try txn.withCursor(tables.streamEvents) { cursor in
                let entry = try StreamEntry.with(version: record.version, position: 0) { try cursor.seek(key, duplicateAtLeast: $0) }
                let found = entry.map { StreamEntry.decode($0.value) == (record.version, position) } ?? false
                if !indexed {
                    return found ? "the stream-events index has an entry for it, but it is after the indexed watermark \(watermark)" : nil
                }
                guard found else {
                    return "the stream-events index has no entry for version \(record.version) of \(quoted(record.stream)) at this position"
                }
                let previous = try cursor.previousDuplicate()
                if record.version == 1 {
                    if previous != nil { return "the stream-events index has entries before version 1 of \(quoted(record.stream))" }
                } else if previous.map({ StreamEntry.decode($0.value).version }) != record.version - 1 {
                    return "the stream-events index skips a version before \(record.version) of \(quoted(record.stream))"
                }
                return nil
            }
        }
        if let streamProblem { return streamProblem }
        if !indexed {
            if tailVersions[record.stream] == nil, let last = try tables.lastIndexed(txn, streamNumber: number), last.position > watermark {
                return "the stream-events index holds position \(last.position) of \(quoted(record.stream)), after the indexed watermark \(watermark)"
            }
            let previous = try tailVersions[record.stream] ?? tables.lastIndexed(txn, streamNumber: number)?.version ?? 0
            guard record.version == previous + 1 else {
                return "it is version \(record.version) of \(quoted(record.stream)), but the version before it is \(previous)"
            }
            tailVersions[record.stream] = record.version
        }
        let typeFound = try withBigEndian(position) { value in
            try txn.withCursor(tables.typeEvents) { cursor in
                try cursor.seek(record.typeBytes, duplicateAtLeast: value).map { LogReading.keyPosition($0.value) == position } ?? false
            }
        }
        if indexed && !typeFound { return "the type-events index has no entry for it under \(quoted(record.type))" }
        if !indexed && typeFound { return "the type-events index has an entry for it, but it is after the indexed watermark \(watermark)" }
        return nil
    }

    private func countProblem(head: LogHead, watermark: UInt64, streamsSeen: UInt64) throws -> String? {
        try withSnapshot { snapshot in
            let txn = snapshot.txn
            let n = Int(head.position)
            if try txn.count(tables.events) != n { return "the events table holds \(try txn.count(tables.events)) records; the head says \(n)" }
            if try txn.count(tables.eventIDs) != n { return "the event-ids index has \(try txn.count(tables.eventIDs)) entries for \(n) events" }
            let indexed = Int(watermark)
            if try txn.count(tables.streamEvents) != indexed {
                return "the stream-events index has \(try txn.count(tables.streamEvents)) entries for the \(indexed) events up to the watermark"
            }
            if try txn.count(tables.typeEvents) != indexed {
                return "the type-events index has \(try txn.count(tables.typeEvents)) entries for the \(indexed) events up to the watermark"
            }
            if try txn.count(tables.streams) != Int(head.streamCount) || streamsSeen != head.streamCount {
                return "the streams table has \(try txn.count(tables.streams)) streams, the records start \(streamsSeen), and the head says \(head.streamCount)"
            }
            var nodes = 0
            for level in LogTables.merkleStoredLevelMin..<64 { nodes += Int(head.position >> UInt64(level)) }
            if try txn.count(tables.merkle) != nodes { return "the merkle table has \(try txn.count(tables.merkle)) nodes; \(n) events make \(nodes)" }
            return nil
        }
    }
}
