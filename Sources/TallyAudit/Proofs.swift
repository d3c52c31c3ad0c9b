import Foundation
import TallyLog
import TallyMerkle

/// Plain-text proof files an auditor can keep. Each starts with a header line naming its kind, then
/// `key value` lines in a fixed order; hashes are base64 of 32 bytes.
///
///     tally inclusion proof v1           tally consistency proof v1
///     origin <origin>                    origin <origin>
///     tree-size <n>                      old-size <m>
///     position <p>                       new-size <n>
///     previous-hash <base64>             hash <base64>   (one per line, in order)
///     record <base64 of the record>
///     hash <base64>   (one per line, in order)
///
/// An inclusion proof carries the event's stored record and the hash of the record before it, so
/// the verifier recomputes the leaf hash from the bytes (ARCHITECTURE.md, "The record") instead of
/// trusting one.
public struct InclusionProof: Equatable, Sendable {
    public static let header = "tally inclusion proof v1"
    public var origin: String
    public var treeSize: UInt64
    public var position: UInt64
    public var previousHash: Hash
    public var record: Data
    public var path: [Hash]

    public init(origin: String, treeSize: UInt64, position: UInt64, previousHash: Hash, record: Data, path: [Hash]) {
        self.origin = origin
        self.treeSize = treeSize
        self.position = position
        self.previousHash = previousHash
        self.record = record
        self.path = path
    }

    public var serialized: String {
        ([Self.header, "origin \(origin)", "tree-size \(treeSize)", "position \(position)",
          "previous-hash \(Data(previousHash.bytes).base64EncodedString())", "record \(record.base64EncodedString())"]
         + path.map { "hash \(Data($0.bytes).base64EncodedString())" }).joined(separator: "\n") + "\n"
    }

    public init(parsing data: Data) throws {
        var lines = try ProofText(data, header: Self.header, what: "inclusion proof")
        origin = try lines.value("origin")
        treeSize = try lines.number("tree-size")
        position = try lines.number("position")
        previousHash = try lines.hash("previous-hash")
        guard let record = Data(base64Encoded: try lines.value("record")) else { throw AuditError.malformed("inclusion proof", "record is not base64") }
        self.record = record
        path = try lines.remainingHashes()
        guard position >= 1, position <= treeSize else { throw AuditError.malformed("inclusion proof", "position \(position) is not within tree size \(treeSize)") }
    }

    /// The leaf hash recomputed from the record bytes and the previous hash (checked against the
    /// hash the record carries).
    public func leafHash() throws -> Hash {
        try record.withUnsafeBytes { raw in
            let view: RecordView
            do { view = try RecordView(bytes: raw, position: position) } catch {
                throw AuditError.malformed("inclusion proof", "record: \(error)")
            }
            let computed = view.computedHash(previous: previousHash)
            guard computed == view.hash else {
                throw AuditError.proofFailed("the record's bytes and previous hash give leaf \(computed.hex), not the \(view.hash.hex) it carries")
            }
            return computed
        }
    }

    /// Verifies the proof against a checkpoint the auditor trusts.
    public func verify(against checkpoint: Checkpoint) throws {
        guard origin == checkpoint.origin else { throw AuditError.wrongOrigin(expected: checkpoint.origin, found: origin) }
        guard treeSize == checkpoint.size else {
            throw AuditError.mismatch("the proof is for a tree of \(treeSize) events, the checkpoint covers \(checkpoint.size)")
        }
        do {
            try Merkle.verifyInclusion(leafIndex: position - 1, treeSize: treeSize, leafHash: try leafHash(), path: path, root: checkpoint.rootHash)
        } catch let failure as ProofFailure {
            throw AuditError.proofFailed(failure.description)
        }
    }
}

public struct ConsistencyProof: Equatable, Sendable {
    public static let header = "tally consistency proof v1"
    public var origin: String
    public var oldSize: UInt64
    public var newSize: UInt64
    public var path: [Hash]

    public init(origin: String, oldSize: UInt64, newSize: UInt64, path: [Hash]) {
        self.origin = origin
        self.oldSize = oldSize
        self.newSize = newSize
        self.path = path
    }

    public var serialized: String {
        ([Self.header, "origin \(origin)", "old-size \(oldSize)", "new-size \(newSize)"]
         + path.map { "hash \(Data($0.bytes).base64EncodedString())" }).joined(separator: "\n") + "\n"
    }

    public init(parsing data: Data) throws {
        var lines = try ProofText(data, header: Self.header, what: "consistency proof")
        origin = try lines.value("origin")
        oldSize = try lines.number("old-size")
        newSize = try lines.number("new-size")
        path = try lines.remainingHashes()
    }

    /// Verifies that the log of the newer checkpoint extends the log of the older one.
    public func verify(old: Checkpoint, new: Checkpoint) throws {
        for checkpoint in [old, new] where checkpoint.origin != origin {
            throw AuditError.wrongOrigin(expected: origin, found: checkpoint.origin)
        }
        guard old.size == oldSize, new.size == newSize else {
            throw AuditError.mismatch("the proof is between sizes \(oldSize) and \(newSize), the checkpoints cover \(old.size) and \(new.size)")
        }
        if oldSize == 0 { return }  // Every log extends the empty one.
        do throws(ProofFailure) {
            try Merkle.verifyConsistency(first: oldSize, second: newSize, path: path, firstRoot: old.rootHash, secondRoot: new.rootHash)
        } catch {
            throw AuditError.proofFailed(error.description)
        }
    }
}

/// The `key value` lines of a proof file, read in order.
struct ProofText {
    private var lines: ArraySlice<Substring>
    private let what: String
    static let bytesMax = 4 << 20

    init(_ data: Data, header: String, what: String) throws {
        self.what = what
        guard data.count <= Self.bytesMax else { throw AuditError.malformed(what, "is larger than \(Self.bytesMax) bytes") }
        guard let text = String(data: data, encoding: .utf8) else { throw AuditError.malformed(what, "is not UTF-8") }
        guard text.hasSuffix("\n") else { throw AuditError.malformed(what, "is truncated (no final newline)") }
        let all = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false)
        guard all.first == Substring(header) else { throw AuditError.malformed(what, "does not start with \"\(header)\"") }
        lines = all.dropFirst()
    }

    mutating func value(_ key: String) throws -> String {
        guard let line = lines.first else { throw AuditError.malformed(what, "is truncated before \"\(key)\"") }
        guard line.hasPrefix(key + " "), line.count > key.count + 1 else { throw AuditError.malformed(what, "has \"\(line.prefix(30))\" where \"\(key)\" should be") }
        lines = lines.dropFirst()
        return String(line.dropFirst(key.count + 1))
    }

    mutating func number(_ key: String) throws -> UInt64 {
        let text = try value(key)
        guard let number = UInt64(text), String(number) == text else { throw AuditError.malformed(what, "\(key) \"\(text.prefix(30))\" is not a number") }
        return number
    }

    mutating func hash(_ key: String) throws -> Hash {
        let text = try value(key)
        guard let bytes = Data(base64Encoded: text), let hash = Hash(bytes: bytes) else { throw AuditError.malformed(what, "\(key) is not the base64 of 32 bytes") }
        return hash
    }

    mutating func remainingHashes() throws -> [Hash] {
        var hashes: [Hash] = []
        while !lines.isEmpty {
            guard hashes.count < 128 else { throw AuditError.malformed(what, "has more hashes than any tree of 2^64 leaves needs") }
            hashes.append(try hash("hash"))
        }
        return hashes
    }
}
