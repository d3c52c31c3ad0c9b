import Foundation
import TallyLog
import TallyMerkle

/// The operator's side of the audit trail, over one store: signed checkpoints and their history,
/// proofs served from the store, checks of the store against a checkpoint, and the offline bundle.
///
/// Files, in `<store>/audit/`: `origin` (the log's name in its checkpoints), `verifier.key` (the
/// public key its checkpoints are signed with) and `checkpoints/<size, 20 digits>.checkpoint`, one
/// signed note per checkpoint ever signed. None of them is part of the hashed log.
public struct AuditTrail: Sendable {
    public let log: EventLog
    public let directory: String

    public init(log: EventLog) {
        self.log = log
        directory = (log.path as NSString).appendingPathComponent("audit")
    }

    var checkpointsDirectory: String { (directory as NSString).appendingPathComponent("checkpoints") }
    var originPath: String { (directory as NSString).appendingPathComponent("origin") }
    var verifierPath: String { (directory as NSString).appendingPathComponent("verifier.key") }

    /// The log's origin: the one its checkpoints carry, else `tally.local/<store id>`.
    public func origin() throws -> String {
        if let text = try? String(contentsOfFile: originPath, encoding: .utf8) {
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return "tally.local/\(try log.storeID().uuidString.lowercased())"
    }

    /// The verifier key the store's checkpoints are signed with, if any were.
    public func verifierKey() throws -> NoteVerifierKey? {
        guard let text = try? String(contentsOfFile: verifierPath, encoding: .utf8) else { return nil }
        return try NoteVerifierKey(parsing: text)
    }

    /// Signs a checkpoint of the log as it is now, after making it durable, and adds it to the
    /// history. `origin` names the log the first time (later checkpoints must keep it); the key must
    /// be the one earlier checkpoints were signed with.
    @discardableResult
    public func checkpoint(key: NoteSignerKey, origin requested: String? = nil) throws -> SignedCheckpoint {
        let existingOrigin = FileManager.default.fileExists(atPath: originPath) ? try origin() : nil
        if let requested, let existingOrigin, requested != existingOrigin {
            throw AuditError.mismatch("this log's checkpoints name it \(existingOrigin); a log keeps its origin")
        }
        if let requested, !Checkpoint.isValidOrigin(requested) {
            throw AuditError.malformed("origin", "\"\(requested)\" must be printable, without spaces")
        }
        if let known = try verifierKey(), known != key.verifier {
            throw AuditError.mismatch("this log's checkpoints are signed by \(known.encoded); sign with that key")
        }
        let origin = try requested ?? existingOrigin ?? origin()
        // Only what is on disk is vouched for.
        try log.sync()
        let head = try log.head()
        let checkpoint = Checkpoint(origin: origin, size: head.position, rootHash: head.merkleRoot)
        let signed = SignedCheckpoint(checkpoint: checkpoint, note: try key.sign(checkpoint.text))
        try FileManager.default.createDirectory(atPath: checkpointsDirectory, withIntermediateDirectories: true)
        if existingOrigin == nil { try Self.writeAtomically(originPath, origin + "\n") }
        if !FileManager.default.fileExists(atPath: verifierPath) { try Self.writeAtomically(verifierPath, key.verifier.encoded + "\n") }
        try Self.writeAtomically(path(ofCheckpoint: checkpoint.size), signed.serialized)
        return signed
    }

    func path(ofCheckpoint size: UInt64) -> String {
        (checkpointsDirectory as NSString).appendingPathComponent(String(format: "%020llu.checkpoint", size))
    }

    /// The checkpoints signed so far, oldest first, checked with the store's verifier key.
    public func history() throws -> [SignedCheckpoint] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: checkpointsDirectory)) ?? []).filter { $0.hasSuffix(".checkpoint") }.sorted()
        guard !names.isEmpty else { return [] }
        guard let key = try verifierKey() else { throw AuditError.io("\(directory) has checkpoints but no verifier.key") }
        let origin = try origin()
        return try names.map { name in
            let path = (checkpointsDirectory as NSString).appendingPathComponent(name)
            do { return try SignedCheckpoint(parsing: try Data(contentsOf: URL(fileURLWithPath: path)), key: key, origin: origin) } catch let error as AuditError {
                throw AuditError.mismatch("\(path): \(error)")
            }
        }
    }

    /// A proof that the event at `position` is in the log of `treeSize` events.
    public func inclusionProof(position: UInt64, treeSize: UInt64) throws -> InclusionProof {
        let origin = try origin()
        return try log.withSnapshot { snapshot in
            let head = try snapshot.head().position
            guard treeSize <= head else { throw AuditError.mismatch("the log holds \(head) events, fewer than the tree size \(treeSize)") }
            guard position >= 1, position <= treeSize else { throw AuditError.mismatch("position \(position) is not in a log of \(treeSize) event\(treeSize == 1 ? "" : "s")") }
            guard let record = try snapshot.record(at: position) else { throw AuditError.mismatch("no event at position \(position)") }
            let previous = position == 1 ? Hash.zero : try snapshot.record(at: position - 1)?.hash ?? Hash.zero
            return InclusionProof(origin: origin, treeSize: treeSize, position: position, previousHash: previous, record: Data(record.bytes),
                                  path: try snapshot.inclusionPath(position: position, treeSize: treeSize))
        }
    }

    /// A proof that the log of `newSize` events extends the log of `oldSize`.
    public func consistencyProof(from oldSize: UInt64, to newSize: UInt64) throws -> ConsistencyProof {
        guard oldSize <= newSize else { throw AuditError.mismatch("the old size \(oldSize) is larger than the new size \(newSize)") }
        let origin = try origin()
        return try log.withSnapshot { snapshot in
            let head = try snapshot.head().position
            guard newSize <= head else { throw AuditError.mismatch("the log holds \(head) events, fewer than \(newSize)") }
            let path = oldSize == 0 || oldSize == newSize ? [] : try snapshot.consistencyPath(from: oldSize, to: newSize)
            return ConsistencyProof(origin: origin, oldSize: oldSize, newSize: newSize, path: path)
        }
    }

    /// Checks the store against a checkpoint an auditor kept: the store must hold at least its
    /// events, and their root must be the checkpoint's. The root is recomputed from every record's
    /// bytes, unless `storedTreeVerified` says a full `verify` just checked the stored tree against
    /// the records (then the stored nodes give it in O(log n)).
    public func check(against checkpoint: Checkpoint, storedTreeVerified: Bool = false) throws {
        let origin = try origin()
        guard checkpoint.origin == origin else { throw AuditError.wrongOrigin(expected: origin, found: checkpoint.origin) }
        let head = try log.head().position
        guard head >= checkpoint.size else { throw AuditError.rolledBack(storeSize: head, checkpointSize: checkpoint.size) }
        let root = storedTreeVerified && checkpoint.size > 0
            ? try log.withSnapshot { try $0.merkleRoot(size: checkpoint.size) }
            : try recomputedRoot(size: checkpoint.size)
        guard root == checkpoint.rootHash else { throw AuditError.rootMismatch(size: checkpoint.size, expected: checkpoint.rootHash, found: root) }
    }

    /// The Merkle root of the first `size` events, recomputed from their bytes (not the stored tree).
    public func recomputedRoot(size: UInt64) throws -> Hash {
        var frontier = MerkleFrontier()
        var previous = Hash.zero
        var problem: AuditError?
        try log.withSnapshot { snapshot in
            try snapshot.forEach(ReadQuery(.all, untilPosition: size)) { record in
                let leaf = record.computedHash(previous: previous)
                guard leaf == record.hash else {
                    problem = .mismatch("position \(record.position): its bytes do not give the hash it carries: the record was altered")
                    return false
                }
                frontier.append(leaf: leaf) { _, _, _ in }
                previous = leaf
                return true
            }
        }
        if let problem { throw problem }
        guard frontier.size == size else { throw AuditError.rolledBack(storeSize: frontier.size, checkpointSize: size) }
        return size == 0 ? MerkleHash.emptyTree : frontier.root
    }

    static func writeAtomically(_ path: String, _ text: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else { throw AuditError.io("cannot write \(temporary)") }
        let descriptor = open(temporary, O_RDONLY)
        if descriptor >= 0 { fsync(descriptor); close(descriptor) }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw AuditError.io("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
