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
        MemberDeviceSeen.eventType: (MemberDeviceSeen.personalFields, "memberID", "member"),
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
    /// The sealed strings are spliced into the payload's bytes: the rest of it stays as encoded.
    public static func seal(type: String, payload: Data, vault: any PersonalDataVault) throws -> Data {
        guard let entry = subjects[type] else { return payload }
        return try splice(payload, fields: entry.fields) { json in
            guard let id = try json.optionalString(entry.idField) else { return nil }
            let subject = entry.kind == "email" ? try emailSubject(id, vault: vault) : "\(entry.kind):\(id)"
            guard let key = try vault.key(for: subject, create: true) else { return nil }
            return { field, value in
                let sealed = try AES.GCM.seal(Data(value.utf8), using: key, authenticating: associatedData(subject, field))
                guard let combined = sealed.combined else { return value }
                return prefix + subject + ":" + combined.base64EncodedString()
            }
        }
    }

    /// What the vault holds for the log's sealed values: every subject with a value sealed in the log,
    /// those an erasure on record forgot, those whose key is gone with no erasure saying so (a vault
    /// lost, or a store restored without its `keys/`), and those whose key does not open their values
    /// (another store's `keys/`): either way their values read `[erased]` as if forgotten, and only
    /// this tells them apart.
    public struct KeyCheck: Sendable, Equatable {
        public var sealedSubjects: Int
        public var erasedOnRecord: Int
        /// Sorted.
        public var missing: [String]
        /// Keys there that do not open the subject's first sealed value. Sorted.
        public var wrong: [String]
    }

    public static func checkKeys(_ log: EventLog, vault: any PersonalDataVault) throws -> KeyCheck {
        // Each subject's first sealed value and its field: what its key must open.
        var sealed: [String: (value: SealedValue, field: String)] = [:]
        for (type, entry) in Self.subjects {
            var reader = log.read(ReadQuery(.type(type)))
            try reader.forEach { event in
                try event.payload.withUnsafeBytes { raw in
                    let json = try JSONView(document: raw)
                    for field in entry.fields {
                        guard let value = try json.member(field), value.first == UInt8(ascii: "\""),
                              let text = SealedValue(try value.string()), sealed[text.subject] == nil else { continue }
                        sealed[text.subject] = (text, field)
                    }
                }
            }
        }
        var erased = Set<String>()
        var reader = log.read(ReadQuery(.type(PersonalDataErased.eventType)))
        try reader.forEach { event in
            erased.insert(try DomainCoding.decode(PersonalDataErased.self, from: event.payload).subject)
        }
        var missing: [String] = [], wrong: [String] = []
        for (subject, sample) in sealed where !erased.contains(subject) {
            if let key = try vault.key(for: subject, create: false) {
                if sample.value.open(field: sample.field, key: key) == nil { wrong.append(subject) }
            } else {
                missing.append(subject)
            }
        }
        return KeyCheck(sealedSubjects: sealed.count, erasedOnRecord: erased.intersection(sealed.keys).count,
                        missing: missing.sorted(), wrong: wrong.sorted())
    }

    /// A sealed value's parts: `enc:v1:<subject>:<base64(nonce ‖ ciphertext ‖ tag)>`.
    struct SealedValue {
        let subject: String
        let box: Substring

        init?(_ text: String) {
            guard text.hasPrefix(PersonalData.prefix) else { return nil }
            let rest = text.dropFirst(PersonalData.prefix.count)
            guard let split = rest.lastIndex(of: ":") else { return nil }
            subject = String(rest[..<split])
            box = rest[rest.index(after: split)...]
        }

        /// The plaintext, if `key` opens it as the value of `field`.
        func open(field: String, key: SymmetricKey) -> Data? {
            guard let combined = Data(base64Encoded: String(box)), let sealed = try? AES.GCM.SealedBox(combined: combined) else { return nil }
            return try? AES.GCM.open(sealed, using: key, authenticating: PersonalData.associatedData(subject, field))
        }
    }

    /// The payload with its sealed fields opened, or `erased` where the key is gone. Payloads of
    /// types without personal fields are returned as they are.
    public static func reveal(type: String, payload: Data, vault: (any PersonalDataVault)?) throws -> Data {
        guard let entry = subjects[type] else { return payload }
        return try splice(payload, fields: entry.fields) { _ in
            { field, value in value.hasPrefix(prefix) ? try open(value, field: field, vault: vault) : value }
        }
    }

    /// Replaces the string values of `fields` at the payload's top level with what `transform` makes
    /// of them (`prepare` sees the document first and may decline by returning nil).
    static func splice(_ payload: Data, fields: Set<String>,
                       _ prepare: (JSONView) throws -> ((String, String) throws -> String)?) throws -> Data {
        try payload.withUnsafeBytes { raw -> Data in
            let json = try JSONView(document: raw)
            guard let transform = try prepare(json) else { return payload }
            var replacements: [(range: Range<Int>, text: String)] = []
            for field in fields {
                guard let value = try json.member(field), value.first == UInt8(ascii: "\"") else { continue }
                let current = try value.string()
                let replaced = try transform(field, current)
                if replaced != current { replacements.append((value.start..<value.end, JSONView.quoted(replaced))) }
            }
            guard !replacements.isEmpty else { return payload }
            var out = Data(capacity: payload.count + 128)
            var offset = 0
            for replacement in replacements.sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[offset..<replacement.range.lowerBound]))
                out.append(contentsOf: replacement.text.utf8)
                offset = replacement.range.upperBound
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[offset...]))
            return out
        }
    }

    /// Lowercase hex digits of `bytes`.
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes { out.append(digits[Int(byte >> 4)]); out.append(digits[Int(byte & 0x0f)]) }
        return String(decoding: out, as: UTF8.self)
    }


    static func open(_ value: String, field: String, vault: (any PersonalDataVault)?) throws -> String {
        guard let sealed = SealedValue(value), let vault, let key = try vault.key(for: sealed.subject, create: false),
              let plain = sealed.open(field: field, key: key) else {
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
    /// Whether each new key is synced before it is used. A store written without durability (a bulk
    /// load, the demo) may skip it, and must then call `syncAll()` when the log is synced.
    public let durable: Bool
    /// The claim secret, once read (it is never destroyed).
    private let cache = Mutex<[String: SymmetricKey]>([:])

    public init(directory: String, durable: Bool = true) {
        self.directory = directory
        self.durable = durable
    }

    /// The vault of the store at `storePath`.
    public convenience init(store storePath: String, durable: Bool = true) {
        self.init(directory: (storePath as NSString).appendingPathComponent("keys"), durable: durable)
    }

    /// Syncs every key file and the directory.
    public func syncAll() throws {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            let descriptor = Foundation.open((directory as NSString).appendingPathComponent(name), O_RDONLY | O_CLOEXEC)
            if descriptor >= 0 { fsync(descriptor); close(descriptor) }
        }
        let descriptor = Foundation.open(directory, O_RDONLY | O_CLOEXEC)
        if descriptor >= 0 { fsync(descriptor); close(descriptor) }
    }

    func path(_ subject: String) -> String {
        let name = PersonalData.hex(SHA256.hash(data: Data("tally/subject|\(subject)".utf8)))
        return (directory as NSString).appendingPathComponent(name + ".key")
    }

    /// Subject keys are read from their file each time, never cached: a key forgotten by another
    /// process must stop opening data here at once.
    public func key(for subject: String, create: Bool) throws -> SymmetricKey? {
        let path = path(subject)
        if let data = FileManager.default.contents(atPath: path), data.count == 32 { return SymmetricKey(data: data) }
        guard create else { return nil }
        try write(SymmetricKey(size: .bits256), to: path)
        // Read back what is stored: another process may have written its key first.
        guard let data = FileManager.default.contents(atPath: path), data.count == 32 else { throw VaultError("cannot read the key file \(path)") }
        return SymmetricKey(data: data)
    }

    public func forget(_ subject: String) throws -> Bool {
        try destroy(path(subject))
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
        if durable { fsync(descriptor) }
        close(descriptor)
        guard written == 32 else { unlink(temporary); throw VaultError("cannot write the key file \(temporary)") }
        // Another process may have made the key meanwhile: keep the first (link fails if it exists).
        if link(temporary, path) != 0 {
            unlink(temporary)
            guard errno == EEXIST else { throw VaultError("cannot store the key file \(path): \(String(cString: strerror(errno)))") }
            return
        }
        unlink(temporary)
        if durable {
            let directoryDescriptor = Foundation.open(directory, O_RDONLY | O_CLOEXEC)
            if directoryDescriptor >= 0 { fsync(directoryDescriptor); close(directoryDescriptor) }
        }
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
