import Crypto
import Foundation
import TallyMerkle

/// A signed note (C2SP `signed-note`): a UTF-8 text ending in a newline, a blank line, then one or
/// more signature lines `— <key name> <base64(key id ‖ signature)>`. The key id is the first four
/// bytes of SHA-256(key name ‖ "\n" ‖ 0x01 ‖ Ed25519 public key); the signature (Ed25519) is over
/// the text's bytes.
public struct SignedNote: Equatable, Sendable {
    public var text: String
    public var signatures: [NoteSignature]

    /// A note larger than this is refused before it is parsed.
    public static let bytesMax = 1 << 20
    public static let signaturesMax = 100

    public init(text: String, signatures: [NoteSignature]) {
        self.text = text
        self.signatures = signatures
    }

    /// The note as stored and sent.
    public var serialized: String {
        text + "\n" + signatures.map { "— \($0.name) \($0.encodedValue)\n" }.joined()
    }

    public init(parsing data: Data) throws {
        guard data.count <= Self.bytesMax else { throw AuditError.malformed("signed note", "is \(data.count) bytes, more than \(Self.bytesMax)") }
        guard let whole = String(data: data, encoding: .utf8) else { throw AuditError.malformed("signed note", "is not UTF-8") }
        guard !whole.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\n") || $0.value == 0x7f }) else {
            throw AuditError.malformed("signed note", "contains a control character")
        }
        // The text ends at the last blank line: signature lines never hold one.
        guard let split = whole.range(of: "\n\n", options: .backwards) else {
            throw AuditError.malformed("signed note", "has no blank line before its signatures")
        }
        text = String(whole[whole.startIndex..<whole.index(after: split.lowerBound)])
        let signatureBlock = whole[split.upperBound...]
        guard signatureBlock.hasSuffix("\n") else { throw AuditError.malformed("signed note", "does not end with a newline") }
        var signatures: [NoteSignature] = []
        for line in signatureBlock.dropLast().split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix("— ") else { throw AuditError.malformed("signed note", "signature line \"\(line.prefix(40))\" does not start with \"— \"") }
            let fields = line.dropFirst(2).split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 2, NoteKeys.isValidName(String(fields[0])) else {
                throw AuditError.malformed("signed note", "signature line \"\(line.prefix(40))\" is not \"— name signature\"")
            }
            guard let value = Data(base64Encoded: String(fields[1])), value.count > 4 else {
                throw AuditError.malformed("signed note", "the signature of \(fields[0]) is not base64 of a key id and a signature")
            }
            let keyID = value.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            signatures.append(NoteSignature(name: String(fields[0]), keyID: keyID, signature: Data(value.dropFirst(4))))
            guard signatures.count <= Self.signaturesMax else { throw AuditError.malformed("signed note", "has more than \(Self.signaturesMax) signatures") }
        }
        guard !signatures.isEmpty else { throw AuditError.malformed("signed note", "has no signature") }
        self.signatures = signatures
    }

    /// Checks that `key` signed the note: a signature with its name and id that verifies.
    public func verify(with key: NoteVerifierKey) throws {
        let candidates = signatures.filter { $0.name == key.name && $0.keyID == key.keyID }
        guard !candidates.isEmpty else {
            throw AuditError.unknownKey(signedBy: signatures.map(\.name), expected: key.name)
        }
        let message = Data(text.utf8)
        guard candidates.contains(where: { key.publicKey.isValidSignature($0.signature, for: message) }) else {
            throw AuditError.badSignature(key.name)
        }
    }
}

public struct NoteSignature: Equatable, Sendable {
    public var name: String
    public var keyID: UInt32
    public var signature: Data

    var encodedValue: String {
        var bytes = Data([UInt8(keyID >> 24), UInt8(keyID >> 16 & 0xff), UInt8(keyID >> 8 & 0xff), UInt8(keyID & 0xff)])
        bytes.append(signature)
        return bytes.base64EncodedString()
    }
}

enum NoteKeys {
    static let ed25519: UInt8 = 0x01

    /// A key name: non-empty, printable, no spaces, no "+".
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 256 && name.unicodeScalars.allSatisfy { $0.value > 0x20 && $0 != "+" && $0.value != 0x7f }
    }

    static func keyID(name: String, publicKey: Curve25519.Signing.PublicKey) -> UInt32 {
        var input = Data(name.utf8)
        input.append(0x0A)
        input.append(ed25519)
        input.append(publicKey.rawRepresentation)
        return SHA256.hash(data: input).prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }
}

/// The public half: `<name>+<key id, 8 hex digits>+<base64(0x01 ‖ Ed25519 public key)>`. An auditor
/// keeps it to check checkpoints.
public struct NoteVerifierKey: Equatable, Sendable {
    public let name: String
    public let keyID: UInt32
    public let publicKey: Curve25519.Signing.PublicKey

    public init(name: String, publicKey: Curve25519.Signing.PublicKey) {
        self.name = name
        self.publicKey = publicKey
        keyID = NoteKeys.keyID(name: name, publicKey: publicKey)
    }

    public init(parsing text: String) throws {
        // The base64 may itself hold "+": split off the name and id only.
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, NoteKeys.isValidName(String(parts[0])), parts[1].count == 8, let id = UInt32(parts[1], radix: 16),
              let key = Data(base64Encoded: String(parts[2])), key.count == 33, key.first == NoteKeys.ed25519,
              let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key.dropFirst()) else {
            throw AuditError.malformed("verifier key", "is not name+keyid+base64(0x01 ‖ 32-byte Ed25519 key)")
        }
        self.init(name: String(parts[0]), publicKey: publicKey)
        guard keyID == id else { throw AuditError.malformed("verifier key", "its key id \(parts[1]) does not match its name and key") }
    }

    public var encoded: String {
        "\(name)+\(String(format: "%08x", keyID))+\((Data([NoteKeys.ed25519]) + publicKey.rawRepresentation).base64EncodedString())"
    }

    public static func == (lhs: NoteVerifierKey, rhs: NoteVerifierKey) -> Bool { lhs.encoded == rhs.encoded }
}

/// The private half: `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ Ed25519 seed)>`. Kept by the operator,
/// readable by its owner only.
public struct NoteSignerKey: Sendable {
    public let name: String
    let privateKey: Curve25519.Signing.PrivateKey

    public static func generate(name: String) throws -> NoteSignerKey {
        guard NoteKeys.isValidName(name) else { throw AuditError.malformed("key name", "\"\(name)\" must be printable, without spaces or \"+\"") }
        return NoteSignerKey(name: name, privateKey: Curve25519.Signing.PrivateKey())
    }

    init(name: String, privateKey: Curve25519.Signing.PrivateKey) {
        self.name = name
        self.privateKey = privateKey
    }

    public init(parsing text: String) throws {
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "+", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY", NoteKeys.isValidName(String(parts[2])),
              let id = UInt32(parts[3], radix: 16), let seed = Data(base64Encoded: String(parts[4])), seed.count == 33,
              seed.first == NoteKeys.ed25519, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed.dropFirst()) else {
            throw AuditError.malformed("signing key", "is not PRIVATE+KEY+name+keyid+base64(0x01 ‖ 32-byte seed)")
        }
        self.init(name: String(parts[2]), privateKey: key)
        guard verifier.keyID == id else { throw AuditError.malformed("signing key", "its key id does not match its name and key") }
    }

    public var encoded: String {
        "PRIVATE+KEY+\(name)+\(String(format: "%08x", verifier.keyID))+\((Data([NoteKeys.ed25519]) + privateKey.rawRepresentation).base64EncodedString())"
    }

    public var verifier: NoteVerifierKey { NoteVerifierKey(name: name, publicKey: privateKey.publicKey) }

    public func sign(_ text: String) throws -> SignedNote {
        guard text.hasSuffix("\n"), !text.contains("\n\n") else { throw AuditError.malformed("note text", "must end with one newline and hold no blank line") }
        let signature = try privateKey.signature(for: Data(text.utf8))
        return SignedNote(text: text, signatures: [NoteSignature(name: name, keyID: verifier.keyID, signature: signature)])
    }
}
