import Foundation
import Synchronization
import Testing
import TallyLMDB
import TallyMerkle
import TallyTestSupport
@testable import TallyLog

/// A store as Tally wrote store format 1 (before 2026-12), built from the format's description, not
/// from the old code: records with a u16 schema version and a u64 stream version (the body at byte 36),
/// `stream-events` entries of version u64 ‖ position u64, 8-byte positions in `type-events` and
/// `event-ids`, u64 stream numbers, and Merkle nodes from 16 leaves up.
struct FormatOneStore {
    let path: String
    let events: [(stream: String, type: String, payload: String)]
    let hashes: [Hash]
    let versions: [UInt64]

    /// `altered`: that record's payload is changed after its hash was computed. `gapAt`: that record's
    /// stream version skips one, with a hash that matches (a chain intact over a wrong history).
    init(events: [(stream: String, type: String, payload: String)], alter altered: UInt64? = nil, gapAt: UInt64? = nil) throws {
        path = temporaryStorePath()
        self.events = events
        let log = try EventLog.create(at: path)
        var hashes: [Hash] = [], versions: [UInt64] = []
        let tables = log.tables
        try log.environment.write { txn in
            var one = UInt32(1).littleEndian
            try withUnsafeBytes(of: &one) { try txn.put(tables.meta, key: MetaKey.format, value: $0) }
            var streams: [String: (number: UInt64, version: UInt64)] = [:]
            var chain = Hash.zero
            var frontier = MerkleFrontier()
            for (index, event) in events.enumerated() {
                let position = UInt64(index + 1)
                var state = streams[event.stream] ?? (UInt64(streams.count + 1), 0)
                state.version += position == gapAt ? 2 : 1
                streams[event.stream] = state
                let time = Timestamp(microsecondsSinceEpoch: 1_790_000_000_000_000 + Int64(position))
                let id = [UInt8](repeating: 0, count: 8) + withUnsafeBytes(of: position.bigEndian) { Array($0) }
                var body: [UInt8] = []
                for field in [event.stream, event.type, "test"] { body += [UInt8(field.utf8.count)] + Array(field.utf8) }
                body += [0, UInt8(event.payload.utf8.count)] + Array(event.payload.utf8)
                let header: [UInt8] = [1, 0, 1, 0] + withUnsafeBytes(of: state.version.littleEndian) { Array($0) }
                    + withUnsafeBytes(of: time.microsecondsSinceEpoch.littleEndian) { Array($0) } + id
                let hash = id.withUnsafeBytes { idBytes in
                    RecordCodec.hash(format: 1, flags: 0, schemaVersion: 1, position: position, version: state.version, recordedAt: time,
                                     id: idBytes, bodyDigest: body.withUnsafeBytes { sha256($0) }, previous: chain)
                }
                var record = header + body + hash.bytes
                if position == altered { record[record.count - 40] ^= 1 }  // a payload byte
                chain = hash
                hashes.append(hash)
                versions.append(state.version)
                func bigEndian(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
                try bigEndian(position).withUnsafeBytes { key in try record.withUnsafeBytes { try txn.put(tables.events, key: key, value: $0, flags: .append) } }
                if state.version == 1 {
                    let number = withUnsafeBytes(of: state.number.littleEndian) { Array($0) }
                    try Array(event.stream.utf8).withUnsafeBytes { key in try number.withUnsafeBytes { try txn.put(tables.streams, key: key, value: $0) } }
                }
                try bigEndian(state.number).withUnsafeBytes { key in
                    try (bigEndian(state.version) + bigEndian(position)).withUnsafeBytes { try txn.put(tables.streamEvents, key: key, value: $0) }
                }
                try Array(event.type.utf8).withUnsafeBytes { key in try bigEndian(position).withUnsafeBytes { try txn.put(tables.typeEvents, key: key, value: $0) } }
                try id.withUnsafeBytes { key in try bigEndian(position).withUnsafeBytes { try txn.put(tables.eventIDs, key: key, value: $0) } }
                try frontier.append(leaf: hash) { level, index, node in
                    guard level >= 4 else { return }
                    try MerkleNodeKey.with(level: level, index: index) { key in try node.withUnsafeBytes { try txn.put(tables.merkle, key: key, value: $0) } }
                }
            }
            let head = LogHead(position: UInt64(events.count), chainHash: chain,
                               lastRecordedAt: Timestamp(microsecondsSinceEpoch: 1_790_000_000_000_000 + Int64(events.count)),
                               streamCount: UInt64(streams.count), frontier: frontier)
            try head.encoded().withUnsafeBytes { try txn.put(tables.meta, key: MetaKey.head, value: $0) }
            var indexed = UInt64(events.count).littleEndian
            try withUnsafeBytes(of: &indexed) { try txn.put(tables.meta, key: MetaKey.indexed, value: $0) }
        }
        log.close()
        self.hashes = hashes
        self.versions = versions
    }

    static func sample(count: Int = 300) -> [(stream: String, type: String, payload: String)] {
        (0..<count).map { index in ("stream-\(index % 7 == 0 ? 0 : index % 23)", ["Sold", "Paid", "Redeemed"][index % 3], #"{"n":\#(index)}"#) }
    }
}

@Suite struct UpgradeTests {
    @Test func aFormatOneStoreIsRefusedThenUpgradedWithItsRecordsUntouched() throws {
        let old = try FormatOneStore(events: FormatOneStore.sample())
        #expect(throws: LogError.olderFormat(path: old.path, found: 1, supported: EventLog.formatVersion)) { try EventLog.open(at: old.path) }
        let message = LogError.olderFormat(path: old.path, found: 1, supported: 2).description
        #expect(message.contains("tally upgrade"))

        let calls = Mutex<[(UInt64, UInt64)]>([])
        let report = try EventLog.upgrade(at: old.path) { done, total in calls.withLock { $0.append((done, total)) } }
        #expect(report == UpgradeReport(path: old.path, fromFormat: 1, toFormat: 2, events: 300, streams: 23))
        #expect(calls.withLock { $0.last.map { $0 == (300, 300) } } == true, "progress ends at every record")

        let log = try EventLog.open(at: old.path)
        #expect(try log.verify().isSound)
        var reader = log.read(ReadQuery())
        var read: [RecordedEvent] = []
        try reader.forEach { read.append($0) }
        #expect(read.map(\.stream) == old.events.map(\.stream))
        #expect(read.map(\.type) == old.events.map(\.type))
        #expect(read.map { String(decoding: $0.payload, as: UTF8.self) } == old.events.map(\.payload))
        #expect(read.map(\.version) == old.versions)
        #expect(read.map(\.hash) == old.hashes, "the records' hashes are what format 1 wrote")
        // The rebuilt indexes answer: a stream read, a type read, an event id.
        var streamReader = log.read(ReadQuery(.stream("stream-0")))
        var streamVersions: [UInt64] = []
        try streamReader.forEach { streamVersions.append($0.version) }
        #expect(streamVersions == Array(1...UInt64(old.events.filter { $0.stream == "stream-0" }.count)))
        var typeReader = log.read(ReadQuery(.type("Paid")))
        var paid = 0
        try typeReader.forEach { _ in paid += 1 }
        #expect(paid == 100)
        #expect(try log.withSnapshot { try $0.position(ofEventID: read[122].id) } == 123)

        // Appending goes on from the upgraded head, in record format 2.
        let appended = try log.append(AppendRequest(stream: "stream-0", expected: .exact(UInt64(streamVersions.count)),
                                                    events: [ProposedEvent(id: UUID(), stream: "stream-0", type: "Sold", actor: "test", payload: Data("{}".utf8))]))
        #expect(appended.positions == [301])
        #expect(try log.withSnapshot { try $0.record(at: 301)!.format } == 2)
        #expect(try log.withSnapshot { try $0.record(at: 300)!.format } == 1)
        #expect(try log.verify().isSound)
        log.close()

        let again = try EventLog.upgrade(at: old.path)
        #expect(again.fromFormat == 2 && again.toFormat == 2 && again.events == 301)
    }

    /// What an admin does: the CLI names the way out, upgrades, and the audit trail then covers the old
    /// records and the new ones, which the independent Python verifier checks from a bundle.
    @Test func theCLIUpgradesAndBothRecordFormatsVerifyOffline() throws {
        let old = try FormatOneStore(events: FormatOneStore.sample(count: 50))
        let refused = try tally(["read"], store: old.path)
        #expect(refused.status != 0)
        #expect(refused.error.contains("has store format 1") && refused.error.contains("tally upgrade --store \(old.path)"), "\(refused.error)")
        let upgraded = try tally(["upgrade"], store: old.path)
        #expect(upgraded.status == 0 && upgraded.output.contains("upgraded from store format 1 to 2: 50 events and 23 streams kept"), "\(upgraded.error)")
        #expect(try tally(["upgrade"], store: old.path).output.contains("already store format 2"))
        let appended = try tally(["append", "--stream", "stream-1", "--type", "Sold", "--data", #"{"n":50}"#], store: old.path)
        #expect(appended.status == 0, "\(appended.error)")
        let key = testPath("signing.key")
        #expect(try tally(["audit", "keygen", "--name", "upgrade.test", "--out", key], store: nil).status == 0)
        #expect(try tally(["audit", "checkpoint", "--key", key], store: old.path).status == 0)
        let bundle = testPath("bundle")
        let export = try tally(["audit", "export", "--out", bundle], store: old.path)
        #expect(export.status == 0, "\(export.error)")
        let verified = try pythonVerifyBundle(bundle)
        #expect(verified.status == 0, "\(verified.error)")
        let lines = try String(contentsOfFile: bundle + "/events.jsonl", encoding: .utf8).split(separator: "\n")
        let formats = lines.compactMap { line -> UInt8? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let record = (object["record"] as? String).flatMap({ Data(base64Encoded: $0) }) else { return nil }
            return record.first
        }
        #expect(formats == Array(repeating: 1, count: 50) + [2], "the bundle holds both record formats")
    }

    /// An upgrade checks every record against its hash first: a store with an altered record is left
    /// as it was, still format 1, and the error names the record.
    @Test func anUpgradeOfAnAlteredStoreChangesNothing() throws {
        let old = try FormatOneStore(events: FormatOneStore.sample(count: 40), alter: 17)
        #expect(throws: LogError.corruptRecord(position: 17, reason: "its bytes do not give the hash it carries")) { try EventLog.upgrade(at: old.path) }
        #expect(throws: LogError.olderFormat(path: old.path, found: 1, supported: EventLog.formatVersion)) { try EventLog.open(at: old.path) }
        // A history whose hashes are intact but whose stream versions skip one is refused too.
        let gapped = try FormatOneStore(events: FormatOneStore.sample(count: 40), gapAt: 24)
        #expect(throws: LogError.corruptRecord(position: 24, reason: "version 6 of \"stream-0\" follows its version 4")) { try EventLog.upgrade(at: gapped.path) }
        #expect(throws: LogError.olderFormat(path: gapped.path, found: 1, supported: EventLog.formatVersion)) { try EventLog.open(at: gapped.path) }
    }

    /// The limits format 2's smaller entries bring are refusals that name them, with nothing written.
    /// The log is made to stand at the limits by writing its head and a stream's index entry directly.
    @Test func theLogsAndTheStreamsLimitsAreClearRefusals() throws {
        let fixture = try Fixture()
        // A stream's version is never above the log's position: the head stands past 2^32 events.
        let size = Limits.streamVersionMax + 5
        try fixture.log.environment.write { txn in
            let tables = fixture.log.tables
            try Array("full".utf8).withUnsafeBytes { key in try StreamNumberValue.with(1) { try txn.put(tables.streams, key: key, value: $0) } }
            try withBigEndian(1) { key in
                try StreamEntry.with(version: Limits.streamVersionMax - 1, position: size) { try txn.put(tables.streamEvents, key: key, value: $0) }
            }
            let frontier = MerkleFrontier(size: size, subtreeHashes: Array(repeating: Hash.zero, count: size.nonzeroBitCount))!
            let head = LogHead(position: size, chainHash: .zero, lastRecordedAt: Timestamp(microsecondsSinceEpoch: 0), streamCount: 1, frontier: frontier)
            try head.encoded().withUnsafeBytes { try txn.put(tables.meta, key: MetaKey.head, value: $0) }
            var indexed = size.littleEndian
            try withUnsafeBytes(of: &indexed) { try txn.put(tables.meta, key: MetaKey.indexed, value: $0) }
        }
        let twoMore = AppendRequest(events: [fixture.event("full"), fixture.event("full")])
        #expect(throws: LogError.streamFull(stream: "full", versionMax: Limits.streamVersionMax)) { try fixture.log.append(twoMore) }
        #expect(try fixture.log.head().position == size)
        let last = try fixture.log.append(AppendRequest(events: [fixture.event("other"), fixture.event("full")]))
        #expect(last.versions == [1, Limits.streamVersionMax])
        #expect(try fixture.log.withSnapshot { try $0.record(at: size + 2)!.version } == Limits.streamVersionMax)
        #expect(LogError.streamFull(stream: "s", versionMax: Limits.streamVersionMax).description
                == "stream \"s\" is full: a stream holds at most 4294967295 events")

        let nearlyFull = try Fixture()
        try nearlyFull.log.environment.write { txn in
            let size = Limits.positionMax - 1
            let frontier = MerkleFrontier(size: size, subtreeHashes: Array(repeating: Hash.zero, count: size.nonzeroBitCount))!
            let head = LogHead(position: size, chainHash: .zero, lastRecordedAt: Timestamp(microsecondsSinceEpoch: 0), streamCount: 0, frontier: frontier)
            try head.encoded().withUnsafeBytes { try txn.put(nearlyFull.log.tables.meta, key: MetaKey.head, value: $0) }
            var indexed = size.littleEndian
            try withUnsafeBytes(of: &indexed) { try txn.put(nearlyFull.log.tables.meta, key: MetaKey.indexed, value: $0) }
        }
        #expect(throws: LogError.logFull(positionMax: Limits.positionMax)) {
            try nearlyFull.log.append(AppendRequest(events: [nearlyFull.event("a"), nearlyFull.event("b")]))
        }
        #expect(try nearlyFull.log.append(AppendRequest(events: [nearlyFull.event("a")])).positions == [Limits.positionMax])
        #expect(LogError.logFull(positionMax: Limits.positionMax).description == "the log is full: it holds at most 281474976710655 events")
        // Entries at the limits round-trip through their encodings.
        StreamEntry.with(version: Limits.streamVersionMax, position: Limits.positionMax) { bytes in
            #expect(bytes.count == 10)
            #expect(StreamEntry.decode(bytes) == (Limits.streamVersionMax, Limits.positionMax))
        }
        for number: UInt64 in [0, 1, 255, 256, 65_535, 1 << 40, .max] {
            StreamNumberValue.with(number) { bytes in
                #expect(bytes.count == max(1, 8 - number.leadingZeroBitCount / 8))
                #expect(StreamNumberValue.decode(bytes) == number)
            }
        }
    }
}
