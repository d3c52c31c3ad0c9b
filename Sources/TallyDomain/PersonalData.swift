import Crypto
import Foundation
import Synchronization
import TallyLog

/// Where the keys of personal data live: outside the hashed log, one AES-256 key per data subject,
/// and one secret for naming claims of personal values. Destroying a subject's key erases their data
/// everywhere it was written (crypto-shredding) without changing a byte of the log.
public protocol PersonalDataVault: Sendable {
    /// The subject's key; created when missing and `create` is set. Nil when there is none (never
    /// created, or forgotten).
    func key(for subject: String, create: Bool) throws -> SymmetricKey?
    /// Destroys the subject's key. Returns false when there was none.
    func forget(_ subject: String) throws -> Bool
    /// The secret claim streams of personal values are named with (HMAC), so a stream name does not
    /// reveal the value to a dictionary.
    func claimSecret() throws -> SymmetricKey
}

/// Which fields of which events are personal, whose they are, and how they are sealed.
///
/// A personal field is stored as the string `enc:v1:<subject>:<base64(nonce ‖ ciphertext ‖ tag)>`,
/// AES-256-GCM under the subject's key, with `tally/personal/v1|<subject>|<field>` as associated data
/// (so a sealed value cannot be moved to another subject or field). The log's hashes commit to these
/// strings, never to the plaintext or an unsalted hash of it. Reading with the key gives the value;
/// without it (forgotten) the value reads as `PersonalData.erased`.
public enum PersonalData {
    public static let erased = "[erased]"
    static let prefix = "enc:v1:"

    /// The personal fields of each event type that has some, the field holding their subject's id,
    /// and the subject's kind.
    static let subjects: [String: (fields: Set<String>, idField: String, kind: String)] = [
        OperatorAssigned.eventType: (OperatorAssigned.personalFields, "operatorID", "operator"),
        UserRegistered.eventType: (UserRegistered.personalFields, "userID", "customer"),
        UserEmailChanged.eventType: (UserEmailChanged.personalFields, "userID", "customer"),
        MemberRegistered.eventType: (MemberRegistered.personalFields, "memberID", "member"),
        SocialAccountLinked.eventType: (SocialAccountLinked.personalFields, "memberID", "member"),
        MemberProfileChanged.eventType: (MemberProfileChanged.personalFields, "memberID", "member"),
        // A voucher's buyer is known only by their email: the subject is its keyed digest.
        VoucherIssued.eventType: (VoucherIssued.personalFields, "buyerEmail", "email"),
    ]

    public static func isPersonal(_ type: String) -> Bool { subjects[type] != nil }

    /// The subject of a voucher buyer's email: `email:<keyed digest>`, what `tally forget --email` computes.
    public static func emailSubject(_ email: String, vault: any PersonalDataVault) throws -> String {
        "email:" + Claims.keyedDigest("subject/email", email.lowercased(), secret: try vault.claimSecret())
    }

    /// The payload with its personal fields sealed under their subject's key (created if needed).
    public static func seal(type: String, payload: Data, vault: any PersonalDataVault) throws -> Data {
        guard let entry = subjects[type], var object = try JSONSerialization.jsonObject(with: payload) as? [String: Any] else { return payload }
        guard let id = object[entry.idField] as? String else { return payload }
        let subject = entry.kind == "email" ? try emailSubject(id, vault: vault) : "\(entry.kind):\(id)"
        guard let key = try vault.key(for: subject, create: true) else { return payload }
        for field in entry.fields.sorted() {
            guard let value = object[field] as? String else { continue }  // Absent or null: nothing to hide.
            let sealed = try AES.GCM.seal(Data(value.utf8), using: key, authenticating: associatedData(subject, field))
            guard let combined = sealed.combined else { continue }
            object[field] = prefix + subject + ":" + combined.base64EncodedString()
        }
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// The payload with its sealed fields opened, or `erased` where the key is gone. Payloads of
    /// types without personal fields are returned as they are.
    public static func reveal(type: String, payload: Data, vault: (any PersonalDataVault)?) throws -> Data {
        guard let entry = subjects[type], var object = try JSONSerialization.jsonObject(with: payload) as? [String: Any] else { return payload }
        var changed = false
        for field in entry.fields {
            guard let value = object[field] as? String, value.hasPrefix(prefix) else { continue }
            object[field] = try open(value, field: field, vault: vault)
            changed = true
        }
        return changed ? try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) : payload
    }

    static func open(_ value: String, field: String, vault: (any PersonalDataVault)?) throws -> String {
        let rest = value.dropFirst(prefix.count)
        guard let split = rest.lastIndex(of: ":") else { return erased }
        let subject = String(rest[rest.startIndex..<split])
        guard let vault, let key = try vault.key(for: subject, create: false),
              let combined = Data(base64Encoded: String(rest[rest.index(after: split)...])),
              let box = try? AES.GCM.SealedBox(combined: combined),
              let plain = try? AES.GCM.open(box, using: key, authenticating: associatedData(subject, field)) else {
            return erased
        }
        return String(decoding: plain, as: UTF8.self)
    }

    static func associatedData(_ subject: String, _ field: String) -> Data { Data("tally/personal/v1|\(subject)|\(field)".utf8) }
}

/// Keys in files: `<store>/keys/<SHA-256 of the subject>.key` (32 bytes, owner-only), and
/// `claims.key`. Forgetting overwrites the key file with zeros, syncs it, and unlinks it.
///
/// Back these up separately from the log, and keep them as private as the data they protect: losing
/// them erases every subject's personal data; copying them defeats erasure. A backup taken before a
/// `forget` still holds the key; erase it from backups by their rotation.
public final class FileKeyVault: PersonalDataVault {
    public let directory: String
    private let cache = Mutex<[String: SymmetricKey]>([:])

    public init(directory: String) {
        self.directory = directory
    }

    /// The vault of the store at `storePath`.
    public convenience init(store storePath: String) {
        self.init(directory: (storePath as NSString).appendingPathComponent("keys"))
    }

    func path(_ subject: String) -> String {
        let name = SHA256.hash(data: Data("tally/subject|\(subject)".utf8)).map { String(format: "%02x", $0) }.joined()
        return (directory as NSString).appendingPathComponent(name + ".key")
    }

    public func key(for subject: String, create: Bool) throws -> SymmetricKey? {
        if let cached = cache.withLock({ $0[subject] }) { return cached }
        let path = path(subject)
        if let data = FileManager.default.contents(atPath: path), data.count == 32 {
            let key = SymmetricKey(data: data)
            cache.withLock { $0[subject] = key }
            return key
        }
        guard create else { return nil }
        try write(SymmetricKey(size: .bits256), to: path)
        // Read back what is stored: another process may have written its key first.
        guard let data = FileManager.default.contents(atPath: path), data.count == 32 else { throw VaultError("cannot read the key file \(path)") }
        let key = SymmetricKey(data: data)
        cache.withLock { $0[subject] = key }
        return key
    }

    public func forget(_ subject: String) throws -> Bool {
        cache.withLock { _ = $0.removeValue(forKey: subject) }
        return try destroy(path(subject))
    }

    public func claimSecret() throws -> SymmetricKey {
        let name = "\u{0}claims"
        if let cached = cache.withLock({ $0[name] }) { return cached }
        let path = (directory as NSString).appendingPathComponent("claims.key")
        if FileManager.default.contents(atPath: path)?.count != 32 { try write(SymmetricKey(size: .bits256), to: path) }
        guard let data = FileManager.default.contents(atPath: path), data.count == 32 else { throw VaultError("cannot read the key file \(path)") }
        let key = SymmetricKey(data: data)
        cache.withLock { $0[name] = key }
        return key
    }

    private func write(_ key: SymmetricKey, to path: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let descriptor = Foundation.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw VaultError("cannot create the key file \(temporary): \(String(cString: strerror(errno)))") }
        let written = key.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
        fsync(descriptor)
        close(descriptor)
        guard written == 32 else { unlink(temporary); throw VaultError("cannot write the key file \(temporary)") }
        // Another process may have made the key meanwhile: keep the first (link fails if it exists).
        if link(temporary, path) != 0 {
            unlink(temporary)
            guard errno == EEXIST else { throw VaultError("cannot store the key file \(path): \(String(cString: strerror(errno)))") }
            return
        }
        unlink(temporary)
    }

    private func destroy(_ path: String) throws -> Bool {
        let descriptor = Foundation.open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        let zeros = [UInt8](repeating: 0, count: 32)
        _ = zeros.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, 32) }
        fsync(descriptor)
        close(descriptor)
        guard unlink(path) == 0 else { throw VaultError("cannot remove the key file \(path): \(String(cString: strerror(errno)))") }
        return true
    }
}

public struct VaultError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A data subject's personal data was erased: their key was destroyed, so every sealed field of
/// theirs now reads as `PersonalData.erased`. Recorded so the log says when and by whom.
public struct PersonalDataErased: DomainEvent {
    public static let eventType = "PersonalDataErased"
    public var subject: String
    public var reason: String

    public init(subject: String, reason: String) {
        self.subject = subject
        self.reason = reason
    }

    /// The stream erasures are recorded in.
    public static let stream = "privacy-erasures"
}
