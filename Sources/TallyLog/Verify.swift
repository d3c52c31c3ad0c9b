import Foundation
import Synchronization
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
    ///
    /// The records are checked in parallel, one perfect subtree of `2^verifySegmentLevel` records at a time:
    /// a record's hash needs only its own bytes and the hash stored in the record before it, so every
    /// link is checked against the stored previous hash and, link by link, the whole chain is the one
    /// the bytes make. Each segment's subtree root then joins a frontier in position order.
    public func verify(checkIndexes: Bool = true, progress: ((UInt64, UInt64) -> Void)? = nil) throws -> VerifyReport {
        try verify(checkIndexes: checkIndexes, segmentLevel: Self.verifySegmentLevel, progress: progress)
    }

    /// `verify` with segments of `2^segmentLevel` records (tests use small ones to cross many boundaries).
    func verify(checkIndexes: Bool, segmentLevel: Int, progress: ((UInt64, UInt64) -> Void)?) throws -> VerifyReport {
        // The head, the watermark and every table's count come from one snapshot; the checks after it
        // read in snapshots of their own (in parallel, a chunk at a time), which may hold later appends
        // and merges. Each of those judges a record against its own watermark (the log only grows, so a
        // record's bytes and entries never change once written), and the counts are compared to this head.
        let (head, watermark, counts) = try withSnapshot { snapshot in
            let head = try snapshot.head()
            let txn = snapshot.txn
            let counts = TableCounts(events: try txn.count(tables.events), eventIDs: try txn.count(tables.eventIDs),
                                     streamEvents: try txn.count(tables.streamEvents), typeEvents: try txn.count(tables.typeEvents),
                                     streams: try txn.count(tables.streams), merkle: try txn.count(tables.merkle))
            return (head, try tables.indexedWatermark(txn, head: head.position), counts)
        }
        var report = VerifyReport(head: head)
        func fail(_ position: UInt64, _ reason: String) -> VerifyReport {
            report.problem = VerifyProblem(position: position, reason: reason)
            return report
        }
        guard watermark <= head.position else {
            return fail(0, "the indexed watermark \(watermark) is past the last position \(head.position)")
        }
        let total = head.position * (checkIndexes ? 2 : 1)
        let records = try checkRecords(head: head, segmentLevel: segmentLevel, progress: SerialProgress { done in progress?(done, total) })
        if let problem = records.problem { report.problem = problem; return report }
        report.eventsChecked = head.position
        if records.chain != head.chainHash { return fail(head.position, "the hash of the last record differs from the head's") }
        if records.frontier != head.frontier { return fail(head.position, "the Merkle tree recomputed from the records differs from the head's") }
        guard checkIndexes else { return report }
        if let problem = try checkIndexEntries(head: head, watermark: watermark, counts: counts, segmentLevel: segmentLevel,
                                               progress: SerialProgress { done in progress?(head.position + done, total) }) {
            report.problem = problem
        }
        return report
    }

    /// Records per parallel segment of the record check, as a power of two: a segment is a perfect
    /// subtree, so segments' roots combine into the log's tree.
    static let verifySegmentLevel = 16

    /// The caller's progress callback, called only under the check's lock, so one thread at a time.
    private final class SerialProgress: @unchecked Sendable {
        let report: (UInt64) -> Void
        init(_ report: @escaping (UInt64) -> Void) { self.report = report }
    }

    private struct Segment: Sendable {
        var problem: VerifyProblem?
        var frontier = MerkleFrontier()
        var lastHash = Hash.zero
    }

    /// Runs `check` over the positions 1...`last`, in segments of `size`, on all cores, segments taken
    /// in position order; no segment starts past the first problem found. Returns each segment's
    /// result, in order: nil for a segment after a problem that was never checked.
    private func checkInSegments<Result: Sendable>(through last: UInt64, size: UInt64, progress: SerialProgress,
                                                   problem: @escaping @Sendable (Result) -> VerifyProblem?,
                                                   _ check: @escaping @Sendable (UInt64, UInt64, (UInt64) -> Void) throws -> Result) throws -> [Result?] {
        let segmentCount = Int((last + size - 1) / size)
        let state = Mutex((next: 0, done: UInt64(0), firstProblem: UInt64.max, results: [Result?](repeating: nil, count: segmentCount),
                           error: (any Error)?.none))
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, segmentCount))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let index: Int? = state.withLock { s in
                    guard s.next < segmentCount, s.error == nil, UInt64(s.next) * size < s.firstProblem else { return nil }
                    defer { s.next += 1 }
                    return s.next
                }
                guard let index else { return }
                let first = UInt64(index) * size + 1
                do {
                    let result = try check(first, min(last, first + size - 1)) { count in
                        state.withLock { s in
                            s.done += count
                            progress.report(s.done)
                        }
                    }
                    state.withLock { s in
                        s.results[index] = result
                        if let found = problem(result) { s.firstProblem = min(s.firstProblem, found.position) }
                    }
                } catch {
                    state.withLock { s in if s.error == nil { s.error = error } }
                }
            }
        }
        let outcome = state.withLock { s in (s.results, s.error) }
        if let error = outcome.1 { throw error }
        return outcome.0
    }

    /// Checks every record's bytes, hash, chain link and time order, and the stored Merkle nodes, on
    /// all cores; returns the first problem by position, or the last hash and the recomputed tree.
    private func checkRecords(head: LogHead, segmentLevel: Int, progress: SerialProgress) throws
        -> (problem: VerifyProblem?, chain: Hash, frontier: MerkleFrontier) {
        let size = UInt64(1) << UInt64(segmentLevel)
        let segments = try checkInSegments(through: head.position, size: size, progress: progress, problem: \.problem) { first, last, report in
            try self.checkSegment(first: first, last: last, progress: report)
        }
        // The first problem by position (a segment stops at its first; segments after one with a
        // problem may not have run).
        if let problem = segments.compactMap({ $0?.problem }).min(by: { $0.position < $1.position }) {
            return (problem, .zero, MerkleFrontier())
        }
        var top = MerkleFrontier()
        var storedNodeProblem: VerifyProblem?
        var chain = Hash.zero
        for (index, segment) in segments.enumerated() {
            guard let segment else { preconditionFailure("verify: segment \(index) was not checked, and no segment before it found a problem") }
            chain = segment.lastHash
            if segment.frontier.size == size {
                try top.append(leaf: segment.frontier.root) { level, nodeIndex, hash in
                    guard storedNodeProblem == nil else { return }
                    let global = level + segmentLevel
                    if let reason = try storedNodeMismatch(level: global, index: nodeIndex, hash: hash) {
                        storedNodeProblem = VerifyProblem(position: (nodeIndex + 1) << UInt64(global), reason: reason)
                    }
                }
                if let storedNodeProblem { return (storedNodeProblem, chain, MerkleFrontier()) }
            } else {
                // The last segment, partial: its subtrees follow the full segments' in the frontier.
                return (nil, chain, Self.frontier(size: head.position, top.subtrees.map(\.hash) + segment.frontier.subtrees.map(\.hash)))
            }
        }
        // Every segment full: `top` counts segments, a leaf each; the log's frontier has their subtrees
        // at the log's size.
        return (nil, chain, Self.frontier(size: head.position, top.subtrees.map(\.hash)))
    }

    private static func frontier(size: UInt64, _ hashes: [Hash]) -> MerkleFrontier {
        guard let frontier = MerkleFrontier(size: size, subtreeHashes: hashes) else {
            preconditionFailure("verify: \(hashes.count) subtrees cannot make a frontier of size \(size)")
        }
        return frontier
    }

    private func storedNodeMismatch(level: Int, index: UInt64, hash: Hash) throws -> String? {
        guard level >= LogTables.merkleStoredLevelMin else { return nil }
        let stored = try withSnapshot { snapshot in
            try MerkleNodeKey.with(level: level, index: index) { try snapshot.txn.get(tables.merkle, key: $0).map { Hash(loadingFrom: $0) } }
        }
        return stored == hash ? nil : "the stored Merkle node at level \(level), index \(index) does not match the records"
    }

    /// One segment of the record check: positions `first...last`, where `first − 1` is a multiple of
    /// the segment size, so the segment's Merkle subtrees are the log's.
    private func checkSegment(first: UInt64, last: UInt64, progress: (UInt64) -> Void) throws -> Segment {
        var segment = Segment()
        let leafOffset = first - 1
        // The link into this segment: the hash and time stored in the record before it. Whether that
        // record itself is sound is the previous segment's check.
        var chain = Hash.zero
        var lastTime = Timestamp(microsecondsSinceEpoch: .min)
        if first > 1 {
            let previous: (Hash, Timestamp)? = try withSnapshot { snapshot in
                try withBigEndian(first - 1) { key in
                    guard let bytes = try snapshot.txn.get(tables.events, key: key),
                          let record = try? RecordView(bytes: bytes, position: first - 1) else { return nil }
                    return (record.hash, record.recordedAt)
                }
            }
            guard let previous else {
                segment.problem = VerifyProblem(position: first - 1, reason: "the record is missing or unreadable")
                return segment
            }
            (chain, lastTime) = previous
        }
        var next = first
        while next <= last {
            let chunkEnd = min(last, next + 16 * UInt64(Limits.readChunkEvents) - 1)
            let found: VerifyProblem? = try withSnapshot { snapshot in
                let txn = snapshot.txn
                var problem: VerifyProblem?
                var expected = next
                try txn.withCursor(tables.events) { cursor in
                    var entry = try withBigEndian(next) { try cursor.seek($0) }
                    var readAhead = ReadAhead()
                    while let current = entry, expected <= chunkEnd {
                        readAhead.note(current.value)
                        prefetchBelow(current.value, bytes: ReadAhead.nextValueBytes)
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
                        try segment.frontier.append(leaf: leaf) { level, index, hash in
                            guard level >= LogTables.merkleStoredLevelMin, storedNodeProblem == nil else { return }
                            let global = (leafOffset >> UInt64(level)) + index
                            let stored = try MerkleNodeKey.with(level: level, index: global) { try txn.get(tables.merkle, key: $0).map { Hash(loadingFrom: $0) } }
                            if stored != hash { storedNodeProblem = "the stored Merkle node at level \(level), index \(global) does not match the records" }
                        }
                        if let storedNodeProblem { problem = VerifyProblem(position: position, reason: storedNodeProblem); return }
                        expected += 1
                        entry = try cursor.next()
                    }
                    if problem == nil && expected <= chunkEnd {
                        problem = VerifyProblem(position: expected, reason: "the record is missing")
                    }
                }
                return problem
            }
            if let found { segment.problem = found; return segment }
            progress(chunkEnd + 1 - next)
            next = chunkEnd + 1
        }
        segment.lastHash = chain
        return segment
    }

    private struct IndexSegment: Sendable {
        var problem: VerifyProblem?
        /// The segment's first record that starts a stream (its version 1): where, the stream, and the
        /// number the `streams` table gives it.
        var firstStart: (position: UInt64, stream: String, number: UInt64)?
        /// How many streams start in the segment.
        var starts: UInt64 = 0
    }

    /// The index pass, after the records are known sound: every record's entries, then the counts.
    ///
    /// The records up to the watermark are checked in parallel segments: each entry stands on its own,
    /// but streams must be numbered 1, 2, 3… in the order they start. A segment checks that from its
    /// first start's number on; once all are back, each segment's first start is checked against the
    /// streams started before it, and the first problem by position is the one a reading in order
    /// would have met first. The records after the watermark, at most a tail's worth, follow one by
    /// one: their versions run on from the B-tree's. (One core did all of it: 0.35–0.52 M events/s.)
    private func checkIndexEntries(head: LogHead, watermark: UInt64, counts: TableCounts, segmentLevel: Int,
                                   progress: SerialProgress) throws -> VerifyProblem? {
        var streamsSeen: UInt64 = 0
        if watermark > 0 {
            let segments = try checkInSegments(through: watermark, size: UInt64(1) << UInt64(segmentLevel), progress: progress,
                                               problem: \.problem) { first, last, report in
                try self.checkIndexSegment(first: first, last: last, progress: report)
            }
            var firstProblem = segments.compactMap { $0?.problem }.min { $0.position < $1.position }
            for segment in segments {
                guard let segment else { break }  // After a problem: never checked.
                if let start = segment.firstStart, start.number != streamsSeen + 1 {
                    // At the same position as the segment's own finding, this one knows the right number.
                    if start.position <= firstProblem?.position ?? .max {
                        firstProblem = VerifyProblem(position: start.position,
                                                     reason: Self.streamNumberProblem(start.stream, number: start.number, expected: streamsSeen + 1))
                    }
                    break
                }
                streamsSeen += segment.starts
            }
            if let firstProblem { return firstProblem }
        }
        var tailVersions: [UInt64: UInt64] = [:]
        var next = watermark + 1
        while next <= head.position {
            let chunkEnd = min(head.position, next + 16 * UInt64(Limits.readChunkEvents) - 1)
            let found = try checkIndexEntries(from: next, through: chunkEnd, streamsSeen: &streamsSeen, tailVersions: &tailVersions) { _, _ in nil }
            if let found { return found }
            progress.report(chunkEnd)
            next = chunkEnd + 1
        }
        return countProblem(head: head, watermark: watermark, counts: counts, streamsSeen: streamsSeen).map { VerifyProblem(position: 0, reason: $0) }
    }

    /// One segment of the index pass, all of it at or before the watermark.
    private func checkIndexSegment(first: UInt64, last: UInt64, progress: (UInt64) -> Void) throws -> IndexSegment {
        var segment = IndexSegment()
        var streamsSeen: UInt64 = 0
        var tailVersions: [UInt64: UInt64] = [:]  // Stays empty: no record here is after the watermark.
        var next = first
        while next <= last {
            let chunkEnd = min(last, next + 16 * UInt64(Limits.readChunkEvents) - 1)
            let found = try checkIndexEntries(from: next, through: chunkEnd, streamsSeen: &streamsSeen, tailVersions: &tailVersions) { txn, record in
                guard record.version == 1 else { return nil }
                segment.starts += 1
                guard segment.firstStart == nil, let number = try tables.streamNumber(txn, streamUTF8: record.streamBytes) else { return nil }
                // Numbered on from here; the join checks this number against the segments before.
                segment.firstStart = (record.position, record.stream, number)
                return number == 0 ? 0 : number - 1
            }
            if let found { segment.problem = found; return segment }
            progress(chunkEnd + 1 - next)
            next = chunkEnd + 1
        }
        return segment
    }

    /// Checks the entries of the records in first...last in one snapshot, in order, against that
    /// snapshot's watermark; the first problem, or nil. `before` sees each record first, and may return
    /// how many streams started before it.
    private func checkIndexEntries(from first: UInt64, through last: UInt64, streamsSeen: inout UInt64,
                                   tailVersions: inout [UInt64: UInt64],
                                   before: (ReadTransaction, RecordView) throws -> UInt64?) throws -> VerifyProblem? {
        try withSnapshot { snapshot in
            let txn = snapshot.txn
            let watermark = try tables.indexedWatermark(txn, head: try snapshot.head().position)
            var problem: VerifyProblem?
            try txn.withCursor(tables.events) { cursor in
                var entry = try withBigEndian(first) { try cursor.seek($0) }
                var readAhead = ReadAhead()
                while let current = entry {
                    readAhead.note(current.value)
                    prefetchBelow(current.value, bytes: ReadAhead.nextValueBytes)
                    let position = LogReading.keyPosition(current.key)
                    guard position <= last else { return }
                    let record = try RecordView(bytes: current.value, position: position)
                    if let started = try before(txn, record) { streamsSeen = started }
                    if let reason = try indexProblem(txn, record: record, watermark: watermark, streamsSeen: &streamsSeen, tailVersions: &tailVersions) {
                        problem = VerifyProblem(position: position, reason: reason)
                        return
                    }
                    entry = try cursor.next()
                }
            }
            return problem
        }
    }

    static func streamNumberProblem(_ stream: String, number: UInt64, expected: UInt64) -> String {
        "stream \(quoted(stream)) starts here but has stream number \(number), not \(expected)"
    }

    /// Checks the index entries of one record: up to the watermark they must be in the B-trees, after it
    /// they must not be (the tail holds them); either way the stream's versions must run without gaps.
    private func indexProblem(_ txn: ReadTransaction, record: RecordView, watermark: UInt64, streamsSeen: inout UInt64,
                              tailVersions: inout [UInt64: UInt64]) throws -> String? {
        let position = record.position
        guard try tables.position(txn, ofEventID: record.id) == position else {
            return "the event-ids index does not map its id \(record.id) to it"
        }
        guard let number = try tables.streamNumber(txn, streamUTF8: record.streamBytes) else {
            return "its stream \(quoted(record.stream)) is missing from the streams table"
        }
        if record.version == 1 {
            streamsSeen += 1
            guard number == streamsSeen else { return Self.streamNumberProblem(record.stream, number: number, expected: streamsSeen) }
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
            let last = try tables.lastIndexed(txn, streamNumber: number)
            if let last, last.position > watermark {
                return "the stream-events index holds position \(last.position) of \(quoted(record.stream)), after the indexed watermark \(watermark)"
            }
            // The stream's last version before this record: in the B-tree, or among the tail records
            // checked before (in an earlier snapshot, perhaps merged since: then the B-tree's is later).
            let previous = max(tailVersions[number] ?? 0, last?.version ?? 0)
            guard record.version == previous + 1 else {
                return "it is version \(record.version) of \(quoted(record.stream)), but the version before it is \(previous)"
            }
            tailVersions[number] = record.version
        }
        let typeFound = try PositionValue.with(position) { value in
            try txn.withCursor(tables.typeEvents) { cursor in
                try cursor.seek(record.typeBytes, duplicateAtLeast: value).map { PositionValue.decode($0.value) == position } ?? false
            }
        }
        if indexed && !typeFound { return "the type-events index has no entry for it under \(quoted(record.type))" }
        if !indexed && typeFound { return "the type-events index has an entry for it, but it is after the indexed watermark \(watermark)" }
        return nil
    }

    /// The tables' entry counts, taken in the snapshot the head came from.
    struct TableCounts {
        var events, eventIDs, streamEvents, typeEvents, streams, merkle: Int
    }

    private func countProblem(head: LogHead, watermark: UInt64, counts: TableCounts, streamsSeen: UInt64) -> String? {
        let n = Int(head.position)
        if counts.events != n { return "the events table holds \(counts.events) records; the head says \(n)" }
        if counts.eventIDs != n { return "the event-ids index has \(counts.eventIDs) entries for \(n) events" }
        let indexed = Int(watermark)
        if counts.streamEvents != indexed {
            return "the stream-events index has \(counts.streamEvents) entries for the \(indexed) events up to the watermark"
        }
        if counts.typeEvents != indexed {
            return "the type-events index has \(counts.typeEvents) entries for the \(indexed) events up to the watermark"
        }
        if counts.streams != Int(head.streamCount) || streamsSeen != head.streamCount {
            return "the streams table has \(counts.streams) streams, the records start \(streamsSeen), and the head says \(head.streamCount)"
        }
        var nodes = 0
        for level in LogTables.merkleStoredLevelMin..<64 { nodes += Int(head.position >> UInt64(level)) }
        if counts.merkle != nodes { return "the merkle table has \(counts.merkle) nodes; \(n) events make \(nodes)" }
        return nil
    }
}
