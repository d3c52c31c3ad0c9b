import Foundation
import TallyMerkle

/// A checkpoint (C2SP `tlog-checkpoint`): the log's origin, its size, and the RFC 9162 root hash of
/// its first `size` leaves, one per line, then optional extension lines.
///
///     tally.local/4f0c…
///     1234
///     q2Xu…base64…=
public struct Checkpoint: Equatable, Sendable {
    public var origin: String
    public var size: UInt64
    public var rootHash: Hash
    public var extensions: [String]

    public init(origin: String, size: UInt64, rootHash: Hash, extensions: [String] = []) {
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
        self.extensions = extensions
    }

    /// The note text a signer signs.
    public var text: String {
        ([origin, String(size), Data(rootHash.bytes).base64EncodedString()] + extensions).joined(separator: "\n") + "\n"
    }

    public init(parsing text: String) throws {
        guard text.hasSuffix("\n") else { throw AuditError.malformed("checkpoint", "does not end with a newline") }
        let lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3 else { throw AuditError.malformed("checkpoint", "has \(lines.count) lines, not origin, size and root hash") }
        guard Self.isValidOrigin(lines[0]) else { throw AuditError.malformed("checkpoint", "origin \"\(lines[0].prefix(60))\" is empty or has spaces") }
        guard let size = UInt64(lines[1]), lines[1] == String(size) else {
            throw AuditError.malformed("checkpoint", "size \"\(lines[1].prefix(30))\" is not a decimal number without leading zeros")
        }
        guard let rootBytes = Data(base64Encoded: lines[2]), let root = Hash(bytes: rootBytes), rootBytes.base64EncodedString() == lines[2] else {
            throw AuditError.malformed("checkpoint", "root hash \"\(lines[2].prefix(60))\" is not the base64 of 32 bytes")
        }
        guard lines.dropFirst(3).allSatisfy({ !$0.isEmpty }) else { throw AuditError.malformed("checkpoint", "has an empty extension line") }
        self.init(origin: lines[0], size: size, rootHash: root, extensions: Array(lines.dropFirst(3)))
    }

    static func isValidOrigin(_ origin: String) -> Bool {
        !origin.isEmpty && origin.utf8.count <= 256 && origin.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7f }
    }
}

/// A checkpoint and the note that signs it.
public struct SignedCheckpoint: Equatable, Sendable {
    public let checkpoint: Checkpoint
    public let note: SignedNote

    /// Parses a signed checkpoint and checks it: signed by `key`, for `origin` when given.
    public init(parsing data: Data, key: NoteVerifierKey, origin: String? = nil) throws {
        let note = try SignedNote(parsing: data)
        let checkpoint = try Checkpoint(parsing: note.text)
        try note.verify(with: key)
        if let origin, checkpoint.origin != origin { throw AuditError.wrongOrigin(expected: origin, found: checkpoint.origin) }
        self.checkpoint = checkpoint
        self.note = note
    }

    init(checkpoint: Checkpoint, note: SignedNote) {
        self.checkpoint = checkpoint
        self.note = note
    }

    public var serialized: String { note.serialized }
}

/// What went wrong in an audit, in words an auditor can act on.
public enum AuditError: Error, Equatable, CustomStringConvertible {
    case malformed(String, String)
    case badSignature(String)
    case unknownKey(signedBy: [String], expected: String)
    case wrongOrigin(expected: String, found: String)
    case rootMismatch(size: UInt64, expected: Hash, found: Hash)
    case rolledBack(storeSize: UInt64, checkpointSize: UInt64)
    case proofFailed(String)
    case mismatch(String)
    case io(String)

    public var description: String {
        switch self {
        case .malformed(let what, let reason): "\(what) \(reason)"
        case .badSignature(let name): "the signature by \(name) does not verify: the note was altered or signed by another key of that name"
        case .unknownKey(let signedBy, let expected):
            "not signed by the key \(expected) (signed by: \(signedBy.isEmpty ? "nobody" : signedBy.joined(separator: ", ")))"
        case .wrongOrigin(let expected, let found): "the checkpoint is for log \(found), not \(expected)"
        case .rootMismatch(let size, let expected, let found):
            "the log's first \(size) events have root \(found.hex), but the checkpoint says \(expected.hex): events were altered, removed or reordered"
        case .rolledBack(let storeSize, let checkpointSize):
            "the store holds \(storeSize) events but a checkpoint covers \(checkpointSize): it was rolled back to an earlier copy or truncated"
        case .proofFailed(let reason): "the proof does not verify: \(reason)"
        case .mismatch(let reason): reason
        case .io(let reason): reason
        }
    }

    /// The system's words for a failed file operation ("No space left on device"), not Foundation's
    /// ("There isn’t enough space.", with its error domain and code).
    static func reason(_ error: any Error) -> String {
        let error = error as NSError
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return error.domain == NSPOSIXErrorDomain ? String(cString: strerror(Int32(error.code))) : error.localizedDescription
    }
}
