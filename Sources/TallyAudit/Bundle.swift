import Foundation
import TallyDomain
import TallyLog
import TallyMerkle

/// The offline audit bundle: a folder a third party verifies without Tally's store or LMDB.
///
///     manifest.json                     what is here, and the formats
///     FORMAT.md                         how to verify it, byte by byte
///     verifier.key                      the public key the checkpoints are signed with
///     events.jsonl                      every event 1…N: {"position", "record" (base64 of the stored bytes), and
///                                       readable copies of stream, type, recordedAt, payload}
///     checkpoints/<size>.checkpoint     the signed checkpoints of sizes ≤ N (N: the latest)
///     proofs/consistency-<m>-<n>.proof  between each checkpoint and the next
public enum AuditBundle {
    public static let format = "tally-audit-bundle"
    public static let version = 1

    public struct Summary: Sendable, Equatable {
        public var events: UInt64
        public var checkpoints: Int
        public var origin: String
    }

    /// Writes the bundle for the events up to the latest checkpoint into `directory` (which must not
    /// exist): built in a temporary folder beside it and renamed into place, so it is whole or absent.
    @discardableResult
    public static func export(_ trail: AuditTrail, to directory: String) throws -> Summary {
        guard !FileManager.default.fileExists(atPath: directory) else { throw AuditError.io("\(directory) already exists: give a new folder") }
        let history = try trail.history()
        guard let latest = history.last, let key = try trail.verifierKey() else {
            throw AuditError.mismatch("the store has no signed checkpoint: run `tally audit checkpoint --key …` first")
        }
        let origin = try trail.origin()
        let size = latest.checkpoint.size
        let temporary = directory + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: temporary)
        let manager = FileManager.default
        try manager.createDirectory(atPath: temporary + "/checkpoints", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: temporary + "/proofs", withIntermediateDirectories: true)
        do {
            // Events, streamed in chunks.
            guard manager.createFile(atPath: temporary + "/events.jsonl", contents: nil), let handle = FileHandle(forWritingAtPath: temporary + "/events.jsonl") else {
                throw AuditError.io("cannot write \(temporary)/events.jsonl")
            }
            var writer = JSONWriter(capacity: 1 << 20 + 4096)
            func writeOut() throws {
                // The throwing write: a full disk is an error to report, not a stop.
                do { try handle.write(contentsOf: writer.bytes) } catch {
                    throw AuditError.io("cannot write \(temporary)/events.jsonl: \(AuditError.reason(error))")
                }
                writer.bytes.removeAll(keepingCapacity: true)
            }
            try trail.log.withSnapshot { snapshot in
                try snapshot.forEach(ReadQuery(.all, untilPosition: size)) { record in
                    writeEventLine(record, into: &writer)
                    writer.bytes.append(0x0A)
                    if writer.bytes.count >= 1 << 20 { try writeOut() }
                    return true
                }
            }
            try writeOut()
            try handle.synchronize()
            try handle.close()
            var files = ["events.jsonl", "verifier.key", "FORMAT.md"]
            for signed in history where signed.checkpoint.size <= size {
                let name = String(format: "checkpoints/%020llu.checkpoint", signed.checkpoint.size)
                try write(Data(signed.serialized.utf8), to: temporary + "/" + name)
                files.append(name)
            }
            let sizes = history.map(\.checkpoint.size).filter { $0 <= size }
            var proofs: [String] = []
            for (old, new) in zip(sizes, sizes.dropFirst()) where old != new {
                let name = "proofs/consistency-\(old)-\(new).proof"
                try write(Data(try trail.consistencyProof(from: old, to: new).serialized.utf8), to: temporary + "/" + name)
                proofs.append(name)
            }
            try write(Data((key.encoded + "\n").utf8), to: temporary + "/verifier.key")
            try write(Data(formatText.utf8), to: temporary + "/FORMAT.md")
            let manifest: [String: Any] = [
                "format": format, "version": version, "origin": origin, "events": size, "verifierKey": key.encoded,
                "eventsFile": "events.jsonl", "checkpoints": files.filter { $0.hasPrefix("checkpoints/") }, "consistencyProofs": proofs,
                "recordFormats": [1, 2], "hash": "SHA-256", "tree": "RFC 9162 Merkle tree, leaf i = the hash of the event at position i + 1",
                "leafHash": "SHA-256(0x00 || format || flags || schema version u16 || position u64 || stream version u64 || recorded-at i64 || event id || SHA-256(body) || previous leaf hash (32 zero bytes for position 1)), integers little-endian (FORMAT.md)",
            ]
            try write(try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]),
                      to: temporary + "/manifest.json")
            guard rename(temporary, directory) == 0 else { throw AuditError.io("cannot move the bundle to \(directory): \(String(cString: strerror(errno)))") }
        } catch {
            try? manager.removeItem(atPath: temporary)
            throw error
        }
        return Summary(events: size, checkpoints: history.filter { $0.checkpoint.size <= size }.count, origin: origin)
    }

    /// Writes a bundle's file, naming it and the system's reason when that fails.
    private static func write(_ data: Data, to path: String) throws {
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw AuditError.io("cannot write \(path): \(AuditError.reason(error))")
        }
    }

    /// One line of `events.jsonl`, its keys in sorted order: the stored bytes in base64, and readable
    /// copies of what a reader wants without decoding them.
    static func writeEventLine(_ record: RecordView, into out: inout JSONWriter) {
        out.raw("{\"payload\":"); out.string(String(decoding: record.payloadBytes, as: UTF8.self))
        out.raw(",\"position\":"); out.number(record.position)
        out.raw(",\"record\":"); out.base64String(record.bytes)
        out.raw(",\"recordedAt\":"); out.string(record.recordedAt.iso8601)
        out.raw(",\"schemaVersion\":"); out.number(UInt64(record.schemaVersion))
        out.raw(",\"stream\":"); out.string(record.stream)
        out.raw(",\"type\":"); out.string(record.type)
        out.raw("}")
    }

    /// Verifies a bundle from its files alone. `trustedKey` is the verifier key the auditor already
    /// holds; without it the bundle's own key is used (and the result says so).
    public static func verify(_ directory: String, trustedKey: NoteVerifierKey?) throws -> Summary {
        func read(_ name: String) throws -> Data {
            do { return try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)) } catch {
                throw AuditError.malformed("bundle", "has no readable \(name)")
            }
        }
        guard let manifest = try? JSONSerialization.jsonObject(with: try read("manifest.json")) as? [String: Any] else {
            throw AuditError.malformed("bundle", "manifest.json is not a JSON object")
        }
        guard manifest["format"] as? String == format, manifest["version"] as? Int == version else {
            throw AuditError.malformed("bundle", "manifest.json is not \(format) version \(version)")
        }
        guard let origin = manifest["origin"] as? String, let count = manifest["events"] as? Int, count >= 0,
              let checkpointNames = manifest["checkpoints"] as? [String], let proofNames = manifest["consistencyProofs"] as? [String] else {
            throw AuditError.malformed("bundle", "manifest.json lacks origin, events, checkpoints or consistencyProofs")
        }
        let bundleKey = try NoteVerifierKey(parsing: String(decoding: try read("verifier.key"), as: UTF8.self))
        let key = trustedKey ?? bundleKey
        if let trustedKey, trustedKey != bundleKey {
            throw AuditError.mismatch("the bundle's verifier.key is not the key you trust (\(trustedKey.name))")
        }
        // Checkpoints: signed by the key, for this origin, within the events.
        var checkpoints: [Checkpoint] = []
        for name in checkpointNames {
            guard !name.contains(".."), name.hasPrefix("checkpoints/") else { throw AuditError.malformed("bundle", "checkpoint path \(name) is outside checkpoints/") }
            let signed: SignedCheckpoint
            do { signed = try SignedCheckpoint(parsing: try read(name), key: key, origin: origin) } catch let error as AuditError {
                throw AuditError.mismatch("\(name): \(error)")
            }
            guard signed.checkpoint.size <= UInt64(count) else { throw AuditError.mismatch("\(name) covers \(signed.checkpoint.size) events; the bundle has \(count)") }
            checkpoints.append(signed.checkpoint)
        }
        guard !checkpoints.isEmpty else { throw AuditError.malformed("bundle", "has no checkpoint") }
        let rootsWanted = Dictionary(checkpoints.map { ($0.size, $0.rootHash) }, uniquingKeysWith: { first, _ in first })
        // Events: positions in order, every leaf recomputed from its bytes, the readable copies true.
        var frontier = MerkleFrontier()
        var previous = Hash.zero
        var expected: UInt64 = 1
        func checkRoot() throws {
            if let root = rootsWanted[frontier.size] {
                let found = frontier.size == 0 ? MerkleHash.emptyTree : frontier.root
                guard found == root else { throw AuditError.rootMismatch(size: frontier.size, expected: root, found: found) }
            }
        }
        try checkRoot()
        let events = try read("events.jsonl")
        var lineStart = events.startIndex
        while lineStart < events.endIndex {
            let lineEnd = events[lineStart...].firstIndex(of: 0x0A) ?? events.endIndex
            let line = events[lineStart..<lineEnd]
            lineStart = lineEnd < events.endIndex ? events.index(after: lineEnd) : lineEnd
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let position = object["position"] as? Int, let encoded = object["record"] as? String, let bytes = Data(base64Encoded: encoded) else {
                throw AuditError.malformed("bundle", "events.jsonl line \(expected) is not {position, record}")
            }
            guard position == expected else { throw AuditError.mismatch("events.jsonl: position \(position) where \(expected) should be: an event was removed or reordered") }
            try bytes.withUnsafeBytes { raw in
                let record: RecordView
                do { record = try RecordView(bytes: raw, position: UInt64(position)) } catch {
                    throw AuditError.mismatch("position \(position): \(error)")
                }
                let leaf = record.computedHash(previous: previous)
                guard leaf == record.hash else { throw AuditError.mismatch("position \(position): its bytes do not give the hash it carries: the event was altered") }
                guard object["type"] as? String == record.type, object["stream"] as? String == record.stream,
                      object["payload"] as? String == String(decoding: record.payloadBytes, as: UTF8.self),
                      object["recordedAt"] as? String == record.recordedAt.iso8601 else {
                    throw AuditError.mismatch("position \(position): the readable fields differ from the record's bytes")
                }
                frontier.append(leaf: leaf) { _, _, _ in }
                previous = leaf
            }
            try checkRoot()
            expected += 1
        }
        guard frontier.size == UInt64(count) else { throw AuditError.mismatch("events.jsonl holds \(frontier.size) events; the manifest says \(count)") }
        // Consistency proofs between consecutive checkpoints.
        let bySize = Dictionary(checkpoints.map { ($0.size, $0) }, uniquingKeysWith: { first, _ in first })
        for name in proofNames {
            guard !name.contains(".."), name.hasPrefix("proofs/") else { throw AuditError.malformed("bundle", "proof path \(name) is outside proofs/") }
            let proof = try ConsistencyProof(parsing: try read(name))
            guard let old = bySize[proof.oldSize], let new = bySize[proof.newSize] else {
                throw AuditError.mismatch("\(name) is between sizes the bundle has no checkpoints for")
            }
            do { try proof.verify(old: old, new: new) } catch let error as AuditError { throw AuditError.mismatch("\(name): \(error)") }
        }
        return Summary(events: UInt64(count), checkpoints: checkpoints.count, origin: origin)
    }

    static let formatText = """
        # A Tally audit bundle

        This folder lets anyone check, without Tally and without its store, that a log of events was
        append-only: that the events here are exactly the ones its operator signed checkpoints for,
        unaltered, none removed, none reordered. `tools/verify-bundle.py` in Tally's repository is one
        independent verifier (Python, standard library only); this file is enough to write another.

        ## Files

        - `manifest.json`: `format` ("tally-audit-bundle"), `version` (1), `origin` (the log's name),
          `events` (N), `verifierKey`, `checkpoints` and `consistencyProofs` (paths in this folder).
        - `verifier.key`: `<name>+<key id as 8 hex digits>+<base64(0x01 || 32-byte Ed25519 public key)>`.
          Compare it with the key the operator gave you out of band: the bundle cannot vouch for itself.
        - `events.jsonl`: one JSON object per line for positions 1..N in order. `record` is the base64 of
          the event's stored bytes; `stream`, `type`, `schemaVersion`, `recordedAt` and `payload` are
          readable copies, which a verifier checks against the record.
        - `checkpoints/*.checkpoint`: signed notes (C2SP signed-note) whose text is a checkpoint (C2SP
          tlog-checkpoint): `<origin>\\n<size>\\n<base64 root hash>\\n`.
        - `proofs/consistency-<m>-<n>.proof`: RFC 9162 consistency proofs between consecutive checkpoints,
          as lines `tally consistency proof v1`, `origin …`, `old-size m`, `new-size n`, then `hash <base64>`.

        ## The record (formats 1 and 2)

        Fixed-width integers are little-endian; varints are minimal LEB128. A record begins with its
        format (1 byte) and flags (1 byte: bit 0 correlation id present, bit 1 causation id present).
        - Format 2: the schema version (varint, 1..65535), the stream version (varint, 1..2^32-1),
          recorded-at (i64, microseconds since 1970 UTC), the event id (16 bytes, UUID).
        - Format 1 (stores written before format 2; an upgraded store keeps them): the schema version
          (u16), the stream version (u64), recorded-at (i64), the event id: the body begins at byte 36.
        Then the body: stream id, type, actor, each as a varint length and UTF-8 bytes; the correlation
        id and causation id (16 bytes each) if flagged; metadata and payload, each varint-length-prefixed.
        The last 32 bytes are the record's hash.

        ## Checking

        1. For position p = 1..N: body = the bytes from the stream id's length up to the last 32;
           leaf(p) = SHA-256(0x00 || format || flags || schema version as u16 || p as u64 ||
           stream version as u64 || recorded-at as i64 || event id || SHA-256(body) || leaf(p-1)),
           109 bytes in all, with leaf(0) = 32 zero bytes. It must equal the record's last 32 bytes.
           (The leaf chains to the one before it: the leaves are a hash chain and the RFC 9162 leaves.)
        2. The Merkle tree is RFC 9162's over leaf(1)..leaf(N), with these leaf values used directly as
           the leaf hashes (their first input byte is already the 0x00 leaf prefix); interior nodes are
           SHA-256(0x01 || left || right). For each checkpoint of size n, the root of leaves 1..n must be
           its root hash (the empty tree's root is SHA-256 of nothing).
        3. Each checkpoint note's signature line `— <name> <base64(key id || signature)>` must carry the
           verifier key's name and id, and the Ed25519 signature must verify over the note's text (the
           checkpoint lines, up to and including the newline before the blank line).
        4. Each consistency proof must verify (RFC 9162, section 2.1.4.2) between its two checkpoints.

        A failure at any step means the log is not what its operator signed.
        """
}
