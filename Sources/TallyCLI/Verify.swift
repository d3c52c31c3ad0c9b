import ArgumentParser
import Foundation
import TallyAudit
import TallyDomain
import TallyLog

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the whole store: hash chain, Merkle tree and every index.",
        discussion: """
            Recomputes every record's chain hash and Merkle leaf, compares them with the stored ones and \
            the head, and checks each index entry against the log. Then checks the store against the \
            latest signed checkpoint of its history (signature, and the root recomputed from the \
            records), and against --against, a checkpoint an auditor kept, with the key they trust: a \
            store rolled back to an earlier copy, or with events altered, removed or reordered, fails. \
            Without --quick, also that every subject with personal data sealed in the log still has its \
            key in keys/, and that it opens their values, unless an erasure on record forgot it: keys \
            lost from a vault, or another store's, would otherwise read as erased (with no keys/ at \
            all, a copy kept apart from its keys, it only says so). Exits 1 and names the first problem.

            Example:
              tally verify
              tally verify --quick    # chain and Merkle tree only
              tally verify --against checkpoint-monday.txt --key shop.example+1a2b3c4d+AeW…
            """)

    @OptionGroup var store: StoreOptions
    @Flag(help: "Check the chain and the Merkle tree only, not the indexes.") var quick = false
    @Option(help: "A signed checkpoint file the store must still match.") var against: String?
    @Option(help: "The verifier key for --against (a file or the key itself; default: the store's).") var key: String?

    func run() throws {
        let log = try store.open(readOnly: true)
        let progress = ProgressBar(label: "verify")
        let report = try log.verify(checkIndexes: !quick) { done, total in progress.update(done: done, total: total) }
        progress.finish()
        if let problem = report.problem {
            printError("verify failed at \(problem)")
            throw ExitCode(1)
        }
        print("ok: \(report.eventsChecked) events, chain hash \(report.head.chainHash.hex), merkle root \(report.head.merkleRoot.hex)")
        if !quick {
            let keys = try PersonalData.checkKeys(log, vault: store.vault)
            let vault = store.vault.directory
            func some(_ subjects: [String]) -> String {
                subjects.prefix(5).joined(separator: ", ") + (subjects.count > 5 ? " and \(subjects.count - 5) more" : "")
            }
            if keys.sealedSubjects > 0 && !FileManager.default.fileExists(atPath: vault) {
                // No vault at all: a copy kept apart from its keys (`tally backup` without --with-keys).
                writeStandardError("note: \(vault) is not here: the keys of the \(keys.sealedSubjects) subjects with "
                                   + "personal data sealed in the log were not checked\n")
            } else if !keys.missing.isEmpty {
                printError("verify failed: the keys of \(keys.missing.count) of the \(keys.sealedSubjects) subjects with personal data "
                           + "sealed in the log are missing from \(vault), and no erasure records them (their values "
                           + "read \(PersonalData.erased)): restore keys/ from its backup. \(some(keys.missing))")
                throw ExitCode(1)
            } else if !keys.wrong.isEmpty {
                printError("verify failed: the keys of \(keys.wrong.count) of the \(keys.sealedSubjects) subjects with personal data "
                           + "sealed in the log do not open their values (is \(vault) another store's?). \(some(keys.wrong))")
                throw ExitCode(1)
            } else if keys.sealedSubjects > 0 {
                print("ok: the keys of all \(keys.sealedSubjects - keys.erasedOnRecord) subjects with personal data are there "
                      + "(\(keys.erasedOnRecord) erased on record)")
            }
        }
        let trail = AuditTrail(log: log)
        do {
            if let latest = try trail.history().last {
                try trail.check(against: latest.checkpoint, storedTreeVerified: true)
                print("ok: matches the latest signed checkpoint (\(latest.checkpoint.size) events)")
            }
            if let against {
                let verifier: NoteVerifierKey
                if let key { verifier = try NoteVerifierKey(parsing: try keyText(key)) } else {
                    guard let stored = try trail.verifierKey() else { throw CLIError("give --key: the store has no verifier key") }
                    verifier = stored
                }
                let checkpoint = try SignedCheckpoint(parsing: try readFile(against, "checkpoint"), key: verifier).checkpoint
                try trail.check(against: checkpoint, storedTreeVerified: true)
                print("ok: matches \(against) (\(checkpoint.size) events of \(checkpoint.origin))")
            }
        } catch let error as AuditError {
            printError("verify failed: \(error)")
            throw ExitCode(1)
        }
    }
}

/// A one-line progress bar on standard error, shown only on a terminal.
final class ProgressBar {
    private let label: String
    private let enabled = isatty(2) == 1
    private let start = DispatchTime.now()
    private var lastDraw = DispatchTime.now()

    init(label: String) { self.label = label }

    func update(done: UInt64, total: UInt64) {
        guard enabled else { return }
        let now = DispatchTime.now()
        guard now.uptimeNanoseconds - lastDraw.uptimeNanoseconds > 100_000_000 || done == total else { return }
        lastDraw = now
        let elapsed = Double(now.uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let fraction = total == 0 ? 1 : Double(done) / Double(total)
        let width = 30
        let filled = Int(fraction * Double(width))
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let line = String(format: "\r%@ %@ %3.0f%%  %llu/%llu  %.0f/s  ETA %.0fs ", label, bar, fraction * 100, done, total, rate, eta)
        writeStandardError(line)
    }

    func finish() {
        guard enabled else { return }
        writeStandardError("\n")
    }
}
