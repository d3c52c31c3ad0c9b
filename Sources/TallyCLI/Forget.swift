import ArgumentParser
import Foundation
import TallyDomain
import TallyLog
import TallyProjection

struct Forget: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Erase a data subject's personal data by destroying their key (crypto-shredding).",
        discussion: """
            Subjects: member:<id> (self-checkout member), customer:<id> (web-shop user), operator:<id> \
            (booth operator), or --email for a voucher buyer. Records a PersonalDataErased event, \
            releases the unique values the subject held (email, username, linked accounts) so the \
            same person may register again, destroys the subject's key in <store>/keys, and rebuilds \
            the read models that hold personal values. Afterwards their fields read as "[erased]" \
            everywhere; no event is changed, so verify and every proof still pass. A subject without \
            a key is named as erased before (at that position; the read models are rebuilt again) or \
            as never having had anything sealed here (the request is recorded; read models unchanged).

            What it does not do: copies of the key in backups taken before now keep it readable until \
            those backups are rotated away; values someone already read or exported in clear are \
            outside Tally's reach.

            Example:
              tally forget member:m7 --reason "GDPR request 2026-118"
              tally forget --email ann@example.org
            """)

    @OptionGroup var store: StoreOptions
    @Argument(help: "The subject: member:<id>, customer:<id> or operator:<id>.") var subject: String?
    @Option(help: "The voucher buyer's email, instead of a subject.") var email: String?
    @Option(help: "Why: recorded in the erasure event (no personal data here).") var reason = "erasure request"
    @Option(help: ArgumentHelp("Who asks (an admin): recorded as the events' actor (default: admin:privacy).", valueName: "role:id"), transform: { text in
        guard let actor = Actor(text) else { throw ValidationError("--actor \"\(text)\" must be role:id, e.g. admin:privacy") }
        return actor
    })
    var actor = Actor(.admin, "privacy")

    func validate() throws {
        guard (subject == nil) != (email == nil) else { throw ValidationError("give a subject or --email") }
        if let subject {
            let parts = subject.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, ["member", "customer", "operator"].contains(String(parts[0])), !parts[1].isEmpty else {
                throw ValidationError("subject \"\(subject)\" must be member:<id>, customer:<id> or operator:<id>")
            }
        }
    }

    func run() throws {
        let log = try store.open()
        let vault = store.vault
        let subject = try self.subject ?? PersonalData.emailSubject(email ?? "", vault: vault)
        let hadKey = try vault.key(for: subject, create: false) != nil
        // Without a key: an earlier erasure destroyed it, or nothing of this subject was ever sealed here.
        let earlier = hadKey ? nil : try Self.earlierErasure(of: subject, in: log)
        let command = Command.erasePersonalData(subject: subject, reason: reason)
        let positions: [UInt64]
        switch try CommerceService(log: log, vault: vault).execute(CommandEnvelope(id: UUID(), actor: actor, command: command)) {
        case .accepted(let appended, _): positions = appended
        case .rejected(let rejection): throw CLIError("refused: \(rejection)")
        }
        // The batch is the releases, then the erasure.
        let released = positions.count - 1
        let key = hadKey ? "key destroyed"
            : earlier.map { "its key was destroyed by the erasure at position \($0)" }
            ?? "no key was held for it: nothing of theirs is sealed in this store"
        print("\(subject): erasure recorded at position \(positions.last ?? 0)"
              + (released > 0 ? ", \(released) unique value\(released == 1 ? "" : "s") released" : "") + "; \(key)")
        // Read models hold clear values only of subjects with a key. After an earlier erasure they are
        // rebuilt again, which finishes one cut short between destroying its key and its rebuilds.
        if hadKey || earlier != nil {
            try ReadModels.dropErasedValues(log) { print($0) }
        } else {
            print("read models unchanged: they held nothing of it")
        }
    }

    /// The position of an erasure of `subject` already in the log, if any.
    static func earlierErasure(of subject: String, in log: EventLog) throws -> UInt64? {
        var reader = log.read(ReadQuery(.stream(PersonalDataErased.stream)))
        while let event = try reader.next() {
            if (try? JSONDecoder().decode(PersonalDataErased.self, from: event.payload))?.subject == subject { return event.position }
        }
        return nil
    }
}
