import ArgumentParser
import Foundation
import TallyAudit
import TallyLog

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Signed checkpoints, proofs and offline bundles, for auditors who do not trust the operator.",
        discussion: """
            The operator signs checkpoints (C2SP signed-note over the log's size and RFC 9162 root, \
            Ed25519) and hands out proofs and bundles; an auditor checks them with `tally audit verify` \
            (no store needed) or tools/verify-bundle.py (no Tally needed).

            Example:
              tally audit keygen --name shop.example --out ./signing.key
              tally audit checkpoint --key ./signing.key
              tally audit prove --position 42 > proof-42.txt
              tally audit verify --key ./signing.key.pub checkpoint.txt proof-42.txt
              tally audit export --out ./bundle
            """,
        subcommands: [AuditKeygen.self, AuditCheckpoint.self, AuditProve.self, AuditConsistency.self, AuditVerify.self, AuditExport.self,
                      AuditInvariants.self]
    )
}

/// Reads a key given as a file path or as the key text itself.
func keyText(_ argument: String) throws -> String {
    if FileManager.default.fileExists(atPath: argument) {
        guard let text = try? String(contentsOfFile: argument, encoding: .utf8) else { throw CLIError("cannot read the key file \(argument)") }
        return text
    }
    guard argument.contains("+") else { throw CLIError("\(argument) is neither a key file nor a key") }
    return argument
}

/// The bytes of a file the user named; if it cannot be read, an error that says why (no such file,
/// a directory, permission denied).
func readFile(_ path: String, _ what: String) throws -> Data {
    if let data = FileManager.default.contents(atPath: path) { return data }
    // Why not: asked only once reading failed.
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
        throw CLIError("cannot read \(what) \(path): it is a directory")
    }
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw CLIError("cannot read \(what) \(path): \(String(cString: strerror(errno)))") }
    close(descriptor)
    throw CLIError("cannot read \(what) \(path)")
}

func writeOutput(_ text: String, to path: String?) throws {
    guard let path else { print(text, terminator: ""); return }
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else { throw CLIError("cannot write \(path)") }
}

struct AuditKeygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make an Ed25519 signing key for checkpoints; print its verifier key.",
        discussion: """
            Writes the private key to --out, readable by its owner only (mode 0600), and the verifier key \
            to <out>.pub. Refuses to overwrite either. Give the verifier key to auditors out of band.

            Example:
              tally audit keygen --name shop.example --out ~/.tally/shop.key
            """)

    @Option(help: "The key's name, shown in signatures: e.g. the log's domain.") var name: String
    @Option(help: "Where to write the private key.") var out = "./tally-signing.key"

    func run() throws {
        let key = try NoteSignerKey.generate(name: name)
        for path in [out, out + ".pub"] where FileManager.default.fileExists(atPath: path) {
            throw CLIError("\(path) already exists: a key is never overwritten")
        }
        let descriptor = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CLIError("cannot create \(out): \(String(cString: strerror(errno)))") }
        let text = key.encoded + "\n"
        let written = text.withCString { write(descriptor, $0, strlen($0)) }
        fsync(descriptor)
        close(descriptor)
        guard written == text.utf8.count else { unlink(out); throw CLIError("cannot write \(out)") }
        guard FileManager.default.createFile(atPath: out + ".pub", contents: Data((key.verifier.encoded + "\n").utf8),
                                             attributes: [.posixPermissions: 0o644]) else { throw CLIError("cannot write \(out).pub") }
        writeStandardError("private key: \(out) (owner only); verifier key: \(out).pub\n")
        print(key.verifier.encoded)
    }
}

struct AuditCheckpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Sign a checkpoint of the log as it is now, once it is on disk, and keep it in the history.",
        discussion: """
            Prints the signed note. The history is in <store>/audit/checkpoints/. The first checkpoint \
            names the log (--origin, default tally.local/<store id>); later ones keep that name and key.

            Example:
              tally audit checkpoint --key ./signing.key > checkpoint-today.txt
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: "The private key file (from keygen).") var key: String
    @Option(help: "The log's name in its checkpoints (first checkpoint only).") var origin: String?

    func run() throws {
        let signer = try NoteSignerKey(parsing: try keyText(key))
        let signed = try AuditTrail(log: try store.open()).checkpoint(key: signer, origin: origin)
        print(signed.serialized, terminator: "")
    }
}

struct AuditProve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prove",
        abstract: "Prove that an event is in the log of a checkpoint (RFC 9162 inclusion proof).",
        discussion: """
            The proof carries the event's stored bytes, so the auditor recomputes its hash. Against \
            --checkpoint (a signed checkpoint file), else the store's latest checkpoint.

            Example:
              tally audit prove --position 42 --checkpoint today.txt > proof-42.txt
              tally audit prove --event-id 0190f5c2-… > proof.txt
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: "The event's position.") var position: UInt64?
    @Option(help: "The event's id, instead of its position.") var eventID: String?
    @Option(help: "A signed checkpoint file: the proof is for its tree size.") var checkpoint: String?
    @Option(help: "Write the proof here instead of standard output.") var out: String?

    func validate() throws {
        guard (position == nil) != (eventID == nil) else { throw ValidationError("give --position or --event-id") }
        if let eventID, UUID(uuidString: eventID) == nil { throw ValidationError("--event-id \"\(eventID)\" is not a UUID") }
    }

    func run() throws {
        let log = try store.open(readOnly: true)
        let trail = AuditTrail(log: log)
        let size = try treeSize(trail)
        var at = position ?? 0
        if let eventID, let id = UUID(uuidString: eventID) {
            guard let found = try log.withSnapshot({ try $0.position(ofEventID: id) }) else { throw CLIError("no event with id \(eventID)") }
            at = found
        }
        try writeOutput(try trail.inclusionProof(position: at, treeSize: size).serialized, to: out)
    }

    func treeSize(_ trail: AuditTrail) throws -> UInt64 {
        if let checkpoint {
            guard let key = try trail.verifierKey() else { throw CLIError("the store has no verifier key: it has signed no checkpoint") }
            return try SignedCheckpoint(parsing: try readFile(checkpoint, "checkpoint"), key: key, origin: try trail.origin()).checkpoint.size
        }
        guard let latest = try trail.history().last else { throw CLIError("the store has no checkpoint: run `tally audit checkpoint --key …` or give --checkpoint") }
        return latest.checkpoint.size
    }
}

struct AuditConsistency: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consistency",
        abstract: "Prove that the log of a newer checkpoint extends the log of an older one.",
        discussion: """
            Example:
              tally audit consistency --from monday.txt --to today.txt > monday-today.proof
              tally audit consistency --from monday.txt   # to the store's latest checkpoint
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: "The older signed checkpoint file.") var from: String
    @Option(help: "The newer signed checkpoint file (default: the store's latest).") var to: String?
    @Option(help: "Write the proof here instead of standard output.") var out: String?

    func run() throws {
        let trail = AuditTrail(log: try store.open(readOnly: true))
        guard let key = try trail.verifierKey() else { throw CLIError("the store has no verifier key: it has signed no checkpoint") }
        let origin = try trail.origin()
        let old = try SignedCheckpoint(parsing: try readFile(from, "the checkpoint file given to --from"), key: key, origin: origin).checkpoint
        let new: Checkpoint
        if let to {
            new = try SignedCheckpoint(parsing: try readFile(to, "the checkpoint file given to --to"), key: key, origin: origin).checkpoint
        } else {
            guard let latest = try trail.history().last else { throw CLIError("the store has no checkpoint") }
            new = latest.checkpoint
        }
        try writeOutput(try trail.consistencyProof(from: old.size, to: new.size).serialized, to: out)
    }
}

struct AuditVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check checkpoints, proofs or a bundle from files, without the store.",
        discussion: """
            With a checkpoint: its format, origin and signature. With a checkpoint and an inclusion proof: \
            the event is in that log. With two checkpoints and a consistency proof: the newer log extends \
            the older. With a bundle folder: every event, checkpoint and proof in it. Exits 1 on any \
            failure, naming it.

            Example:
              tally audit verify --key shop.example+1a2b3c4d+AeW… checkpoint.txt proof-42.txt
              tally audit verify --key ./signing.key.pub monday.txt today.txt monday-today.proof
              tally audit verify --key ./signing.key.pub ./bundle
            """)

    @Option(help: "The verifier key you trust (a file or the key itself).") var key: String
    @Option(help: "The log's origin you expect (default: the first checkpoint's).") var origin: String?
    @Argument(help: "Checkpoint and proof files, or one bundle folder.") var files: [String]

    func run() throws {
        let verifier = try NoteVerifierKey(parsing: try keyText(key))
        var isDirectory: ObjCBool = false
        if files.count == 1, FileManager.default.fileExists(atPath: files[0], isDirectory: &isDirectory), isDirectory.boolValue {
            let summary = try AuditBundle.verify(files[0], trustedKey: verifier)
            print("verified: bundle of \(summary.events) event\(summary.events == 1 ? "" : "s") of \(summary.origin), \(summary.checkpoints) signed checkpoint\(summary.checkpoints == 1 ? "" : "s"), every proof")
            return
        }
        var checkpoints: [Checkpoint] = []
        var inclusion: [InclusionProof] = [], consistency: [ConsistencyProof] = []
        for path in files {
            let data = try readFile(path, "file")
            let head = String(decoding: data.prefix(40), as: UTF8.self)
            if head.hasPrefix(InclusionProof.header) { inclusion.append(try InclusionProof(parsing: data)); continue }
            if head.hasPrefix(ConsistencyProof.header) { consistency.append(try ConsistencyProof(parsing: data)); continue }
            let expected = origin ?? checkpoints.first?.origin
            do {
                checkpoints.append(try SignedCheckpoint(parsing: data, key: verifier, origin: expected).checkpoint)
            } catch let error as AuditError {
                throw CLIError("\(path): \(error)")
            }
        }
        guard !checkpoints.isEmpty else { throw CLIError("give at least one signed checkpoint: proofs are checked against one") }
        for proof in inclusion {
            guard let checkpoint = checkpoints.first(where: { $0.size == proof.treeSize }) ?? (checkpoints.count == 1 ? checkpoints[0] : nil) else {
                throw CLIError("no checkpoint of size \(proof.treeSize) for the inclusion proof of position \(proof.position)")
            }
            try proof.verify(against: checkpoint)
            print("verified: the event at position \(proof.position) is in \(checkpoint.origin) of size \(checkpoint.size)")
        }
        for proof in consistency {
            guard let old = checkpoints.first(where: { $0.size == proof.oldSize }), let new = checkpoints.first(where: { $0.size == proof.newSize }) else {
                throw CLIError("the consistency proof is between sizes \(proof.oldSize) and \(proof.newSize): give both checkpoints")
            }
            try proof.verify(old: old, new: new)
            print("verified: \(new.origin) of size \(new.size) extends its log of size \(old.size)")
        }
        if inclusion.isEmpty && consistency.isEmpty {
            for checkpoint in checkpoints { print("verified: checkpoint of \(checkpoint.origin) at size \(checkpoint.size), signed by \(verifier.name)") }
        }
    }
}

struct AuditExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an offline bundle: events, checkpoints, proofs and the verifier key, with its format.",
        discussion: """
            Covers the events up to the latest checkpoint. The folder must not exist; it is written whole \
            or not at all. Check it with `tally audit verify --key … DIR` or `python3 tools/verify-bundle.py DIR`.

            Example:
              tally audit export --out ./audit-2026-11-22
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: "The folder to create.") var out: String

    func run() throws {
        let summary = try AuditBundle.export(AuditTrail(log: try store.open(readOnly: true)), to: out)
        print("exported \(summary.events) event\(summary.events == 1 ? "" : "s") and \(summary.checkpoints) checkpoint\(summary.checkpoints == 1 ? "" : "s") of \(summary.origin) to \(out)")
    }
}

struct AuditInvariants: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invariants",
        abstract: "Replay the log and check the business rules as facts of the history.",
        discussion: """
            Each voucher redeemed at most once, stock never negative, each payment transaction id once, \
            paid orders backed by a successful payment of their total, each cart opened once and checked \
            out at most once by the member who opened it, each shopping list's revisions numbered in \
            turn and in its member's name. Prints every violation with its position and \
            exits 1 if there is any.

            Example:
              tally audit invariants
            """)

    @OptionGroup var store: StoreOptions

    func run() throws {
        let log = try store.open(readOnly: true)
        let bar = ProgressBar(label: "invariants")
        let result = try Invariants.check(log) { done, total in bar.update(done: done, total: total) }
        bar.finish()
        let output = OutputBuffer()
        for violation in result.violations { try output.line(violation.description) }
        try output.flush()
        if result.violations.isEmpty {
            print("ok: \(result.checked) events replayed; \(Invariants.rules.joined(separator: ", ")) hold")
        } else {
            printError("\(result.violations.count) violations in \(result.checked) events")
            throw ExitCode(1)
        }
    }
}
