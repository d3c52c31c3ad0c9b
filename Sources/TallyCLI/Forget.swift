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
            (booth operator), or --email for a voucher buyer. Destroys the subject's key in \
            <store>/keys, records a PersonalDataErased event, and rebuilds the read models that hold \
            personal values. Afterwards their fields read as "[erased]" everywhere; the log is not \
            changed, so verify and every proof still pass.

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
    @Option(help: "Who asks: recorded as the event's actor.") var actor = "admin:privacy"

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
        let existed = try vault.forget(subject)
        let event = PersonalDataErased(subject: subject, reason: reason)
        let appended = try log.append(AppendRequest(events: [ProposedEvent(
            id: UUID(), stream: PersonalDataErased.stream, type: PersonalDataErased.eventType, actor: actor, payload: DomainCoding.encode(event))]))
        print("\(subject): key \(existed ? "destroyed" : "was already gone"); erasure recorded at position \(appended.positions[0])")
        // Read models that copied personal values are rebuilt, so the erased values leave them.
        let runner = try ReadModels.runner(log)
        for projector in runner.projectors where projector.holdsPersonalData {
            // Read models built as of a past moment are caches: those holding personal values go.
            let asOf = (runner.directory as NSString).appendingPathComponent("as-of")
            for name in (try? FileManager.default.contentsOfDirectory(atPath: asOf)) ?? [] where name.hasPrefix(projector.name + ".v") {
                try? FileManager.default.removeItem(atPath: (asOf as NSString).appendingPathComponent(name))
            }
            guard FileManager.default.fileExists(atPath: runner.servingLink(projector.name)) else { continue }
            let outcome = try runner.rebuild(projector, discardingUnfinished: true)
            print("\(outcome.name): rebuilt to position \(outcome.checkpoint)")
        }
    }
}
