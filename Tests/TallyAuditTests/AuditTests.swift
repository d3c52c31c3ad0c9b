import Foundation
import Crypto
import TallyAudit
@testable import TallyDomain
import TallyLog
import TallyMerkle
import Synchronization
import TallyTestSupport
import Testing

/// A store with a history recorded through the domain (personal fields sealed), and a signing key.
struct AuditStore {
    let path: String
    let log: EventLog
    let commerce: CommerceService
    let clock: ManualClock
    let key: NoteSignerKey
    var trail: AuditTrail { AuditTrail(log: log) }

    init(events: UInt64 = 600, seed: UInt64 = 5) throws {
        path = testPath("audit")
        clock = ManualClock(Timestamp(iso8601: "2026-11-20T08:00:00Z")!)
        var options = LogOptions()
        options.durability = .noSync
        options.clock = clock
        log = try EventLog.create(at: path, options: options)
        commerce = CommerceService(log: log, vault: FileKeyVault(store: path))
        key = try NoteSignerKey.generate(name: "shop.example")
        var driver = DemoDriver(commerce: commerce, seed: seed, clock: clock)
        try driver.run(untilEvents: events)
    }

    func more(_ events: UInt64, seed: UInt64) throws {
        var driver = DemoDriver(commerce: commerce, seed: seed, clock: clock)
        try driver.run(untilEvents: events)
    }
}

func write(_ text: String, _ name: String) throws -> String {
    let path = testPath(name)
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    return path
}

@Suite struct CheckpointTests {
    @Test func aSignedCheckpointRoundTripsAndAnyChangeFails() throws {
        let store = try AuditStore(events: 200)
        let signed = try store.trail.checkpoint(key: store.key, origin: "shop.example/log")
        let text = signed.serialized
        #expect(text.hasPrefix("shop.example/log\n\(signed.checkpoint.size)\n"))
        #expect(text.contains("\n\n— shop.example "))
        let parsed = try SignedCheckpoint(parsing: Data(text.utf8), key: store.key.verifier, origin: "shop.example/log")
        #expect(parsed.checkpoint == signed.checkpoint)
        // Another key of the same name, another name, another origin.
        let impostor = try NoteSignerKey.generate(name: "shop.example")
        #expect(throws: AuditError.unknownKey(signedBy: ["shop.example"], expected: "shop.example")) {
            _ = try SignedCheckpoint(parsing: Data(text.utf8), key: impostor.verifier)
        }
        #expect(throws: AuditError.wrongOrigin(expected: "other.example/log", found: "shop.example/log")) {
            _ = try SignedCheckpoint(parsing: Data(text.utf8), key: store.key.verifier, origin: "other.example/log")
        }
        // A changed size, with the signature kept, fails the signature.
        let forged = text.replacingOccurrences(of: "\n\(signed.checkpoint.size)\n", with: "\n\(signed.checkpoint.size + 1)\n")
        #expect(throws: AuditError.badSignature("shop.example")) { _ = try SignedCheckpoint(parsing: Data(forged.utf8), key: store.key.verifier) }
        // Keys round-trip through their text forms.
        #expect(try NoteVerifierKey(parsing: store.key.verifier.encoded) == store.key.verifier)
        #expect(try NoteSignerKey(parsing: store.key.encoded).verifier == store.key.verifier)
    }

    @Test func theHistoryKeepsEveryCheckpointAndItsKeyAndOrigin() throws {
        let store = try AuditStore(events: 200)
        let first = try store.trail.checkpoint(key: store.key)
        try store.more(400, seed: 6)
        let second = try store.trail.checkpoint(key: store.key)
        #expect(try store.trail.history().map(\.checkpoint) == [first.checkpoint, second.checkpoint])
        #expect(first.checkpoint.origin.hasPrefix("tally.local/"))
        #expect(throws: AuditError.self) { try store.trail.checkpoint(key: try NoteSignerKey.generate(name: "other")) }
        #expect(throws: AuditError.self) { try store.trail.checkpoint(key: store.key, origin: "renamed.example") }
        // Consistency between the two, and inclusion of events in each.
        let consistency = try store.trail.consistencyProof(from: first.checkpoint.size, to: second.checkpoint.size)
        try consistency.verify(old: first.checkpoint, new: second.checkpoint)
        for position in [1, first.checkpoint.size / 2, first.checkpoint.size] {
            try store.trail.inclusionProof(position: position, treeSize: first.checkpoint.size).verify(against: first.checkpoint)
            try store.trail.inclusionProof(position: position, treeSize: second.checkpoint.size).verify(against: second.checkpoint)
        }
    }

    @Test func proofsFailWhenAnythingInThemChanges() throws {
        let store = try AuditStore(events: 300)
        let checkpoint = try store.trail.checkpoint(key: store.key).checkpoint
        let proof = try store.trail.inclusionProof(position: 77, treeSize: checkpoint.size)
        let reparsed = try InclusionProof(parsing: Data(proof.serialized.utf8))
        #expect(reparsed == proof)
        try reparsed.verify(against: checkpoint)
        var moved = proof
        moved.position = 78
        #expect(throws: AuditError.self) { try moved.verify(against: checkpoint) }
        var altered = proof
        altered.record[60] ^= 0x01
        #expect(throws: AuditError.self) { try altered.verify(against: checkpoint) }
        var shortened = proof
        shortened.path.removeLast()
        #expect(throws: AuditError.self) { try shortened.verify(against: checkpoint) }
        var resized = proof
        resized.treeSize -= 1
        #expect(throws: AuditError.self) { try resized.verify(against: checkpoint) }
    }

    @Test func parsersRefuseEveryMalformedInputWithoutCrashingOrVerifying() throws {
        let store = try AuditStore(events: 200)
        let signed = try store.trail.checkpoint(key: store.key)
        let old = try store.trail.checkpoint(key: store.key)  // Same size: a consistency proof with no hashes.
        // Each parser with what it accepted, rendered: an accepted change must mean the same thing.
        let inputs: [(String, (Data) throws -> String)] = [
            (signed.serialized, { try SignedCheckpoint(parsing: $0, key: store.key.verifier).serialized }),
            (try store.trail.inclusionProof(position: 9, treeSize: signed.checkpoint.size).serialized, { data in
                let proof = try InclusionProof(parsing: data)
                try proof.verify(against: signed.checkpoint)
                return proof.serialized
            }),
            (try store.trail.consistencyProof(from: 100, to: signed.checkpoint.size).serialized, { data in
                let proof = try ConsistencyProof(parsing: data)
                try proof.verify(old: Checkpoint(origin: signed.checkpoint.origin, size: 100, rootHash: try store.trail.recomputedRoot(size: 100)),
                                 new: old.checkpoint)
                return proof.serialized
            }),
        ]
        var random = SplitMix64(seed: 2026)
        for (text, check) in inputs {
            let data = Data(text.utf8)
            #expect(try check(data) == text)  // The original verifies.
            // Every truncation fails; a random byte change fails or, if accepted, changes nothing it says.
            for cut in 0..<data.count { #expect(throws: (any Error).self) { _ = try check(data.prefix(cut)) } }
            for _ in 0..<400 {
                var bytes = [UInt8](data)
                let index = Int(random.next() % UInt64(bytes.count))
                let value = UInt8(truncatingIfNeeded: random.next())
                guard bytes[index] != value else { continue }
                bytes[index] = value
                if let accepted = try? check(Data(bytes)) {
                    #expect(accepted == text, "byte \(index) changed to \(value) was accepted with another meaning")
                }
            }
        }
        #expect(throws: AuditError.self) { _ = try SignedCheckpoint(parsing: Data(repeating: 0x41, count: SignedNote.bytesMax + 1), key: store.key.verifier) }
        #expect(throws: AuditError.self) { _ = try NoteVerifierKey(parsing: "nonsense") }
        #expect(throws: AuditError.self) { _ = try NoteSignerKey(parsing: store.key.verifier.encoded) }
    }

    @Test func aRolledBackStoreIsCaught() throws {
        let store = try AuditStore(events: 300)
        try store.log.sync()
        let copy = testPath("rollback-copy")
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: store.path + "/log", toPath: copy + "/log")
        try store.more(800, seed: 8)
        let kept = try store.trail.checkpoint(key: store.key).serialized
        let keptFile = try write(kept, "kept.checkpoint")
        // The store as it is matches the checkpoint.
        let ok = try tally(["verify", "--against", keptFile, "--key", store.key.verifier.encoded], store: store.path)
        #expect(ok.status == 0, "\(ok.error)")
        // The operator restores yesterday's copy: every record still chains, but the checkpoint kept catches it.
        store.log.close()
        try FileManager.default.removeItem(atPath: store.path + "/log")
        try FileManager.default.copyItem(atPath: copy + "/log", toPath: store.path + "/log")
        let rolledBack = try tally(["verify", "--against", keptFile, "--key", store.key.verifier.encoded], store: store.path)
        #expect(rolledBack.status == 1)
        #expect(rolledBack.error.contains("rolled back to an earlier copy"), "\(rolledBack.error)")
    }
}

@Suite struct BundleTests {
    /// Both verifiers on a bundle: the result must agree.
    func bothVerify(_ bundle: String, _ key: NoteVerifierKey) throws -> (swift: Bool, python: Bool, message: String) {
        let swift: Bool
        var message = ""
        do { _ = try AuditBundle.verify(bundle, trustedKey: key); swift = true } catch { swift = false; message = "\(error)" }
        let python = try pythonVerifyBundle(bundle, key: key.encoded)
        return (swift, python.status == 0, message + " | " + python.error)
    }

    @Test func anExportedBundleVerifiesOfflineAndEveryTamperingIsCaught() throws {
        let store = try AuditStore(events: 400)
        try store.trail.checkpoint(key: store.key)
        try store.more(900, seed: 9)
        try store.trail.checkpoint(key: store.key)
        try store.more(1500, seed: 10)
        try store.trail.checkpoint(key: store.key)
        let bundle = testPath("bundle")
        let summary = try AuditBundle.export(store.trail, to: bundle)
        #expect(summary.checkpoints == 3)
        let files = try FileManager.default.contentsOfDirectory(atPath: bundle).sorted()
        #expect(files == ["FORMAT.md", "checkpoints", "events.jsonl", "manifest.json", "proofs", "verifier.key"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: bundle + "/proofs").count == 2)
        let good = try bothVerify(bundle, store.key.verifier)
        #expect(good.swift && good.python, "\(good.message)")
        let cli = try tally(["audit", "verify", "--key", store.key.verifier.encoded, bundle], store: nil)
        #expect(cli.status == 0 && cli.output.contains("verified: bundle of \(summary.events) events"), "\(cli.error)")

        func tampered(_ name: String, _ change: (String) throws -> Void) throws {
            let copy = testPath("tampered-\(name)")
            try FileManager.default.copyItem(atPath: bundle, toPath: copy)
            try change(copy)
            let result = try bothVerify(copy, store.key.verifier)
            #expect(!result.swift && !result.python, "\(name) was not caught: \(result.message)")
        }
        func editEvents(_ copy: String, _ edit: (inout [String]) throws -> Void) throws {
            var lines = try String(contentsOfFile: copy + "/events.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
            try edit(&lines)
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: copy + "/events.jsonl"))
        }
        try tampered("altered record") { copy in
            try editEvents(copy) { lines in
                var object = try #require(try JSONSerialization.jsonObject(with: Data(lines[500].utf8)) as? [String: Any])
                var record = try #require(Data(base64Encoded: object["record"] as! String))
                record[70] ^= 0x20
                object["record"] = record.base64EncodedString()
                lines[500] = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
            }
        }
        try tampered("removed event") { copy in try editEvents(copy) { lines in lines.remove(at: 321) } }
        try tampered("reordered events") { copy in try editEvents(copy) { lines in lines.swapAt(10, 11) } }
        try tampered("truncated log") { copy in try editEvents(copy) { lines in lines.removeLast(3) } }
        try tampered("readable copy lies") { copy in
            try editEvents(copy) { lines in lines[40] = lines[40].replacingOccurrences(of: "\"type\":\"", with: "\"type\":\"X") }
        }
        try tampered("forged checkpoint") { copy in
            let checkpoints = try FileManager.default.contentsOfDirectory(atPath: copy + "/checkpoints").sorted()
            let path = copy + "/checkpoints/" + checkpoints[1]
            var text = try String(contentsOfFile: path, encoding: .utf8)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            text = text.replacingOccurrences(of: "\n\(lines[1])\n", with: "\n\(Int(lines[1])! - 1)\n")
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }
        try tampered("another key") { copy in
            let other = try NoteSignerKey.generate(name: "shop.example")
            try Data((other.verifier.encoded + "\n").utf8).write(to: URL(fileURLWithPath: copy + "/verifier.key"))
        }
        try tampered("broken manifest") { copy in try Data("{".utf8).write(to: URL(fileURLWithPath: copy + "/manifest.json")) }
    }
}

@Suite struct ErasureTests {
    /// Every file under `path`, recursively, as bytes.
    func contains(_ path: String, _ needle: String) throws -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: path)
        var hits: [String] = []
        let bytes = Array(needle.utf8)
        while let name = enumerator?.nextObject() as? String {
            let file = path + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue,
                  let data = FileManager.default.contents(atPath: file) else { continue }
            if data.withUnsafeBytes({ raw in raw.firstRange(of: bytes) != nil }) { hits.append(name) }
        }
        return hits
    }

    @Test func afterForgetTheSubjectsPlaintextIsNowhereAndEverythingStillVerifies() throws {
        let store = try AuditStore(events: 10)
        let member = Actor(.member, "m900"), customer = Actor(.customer, "u900")
        let secrets = ["Zelda", "Quux-Ostrowski", "zelda.q@example.org", "+254700123456", "zq-github-77"]
        func run(_ actor: Actor, _ command: Command) throws {
            let outcome = try store.commerce.execute(CommandEnvelope(id: UUID(), actor: actor, command: command))
            guard case .accepted = outcome else { Issue.record("\(command): \(outcome)"); return }
        }
        try run(member, .registerMember(memberID: "m900", firstName: "Zelda", lastName: "Quux-Ostrowski", email: "zelda.q@example.org", phone: "+254700123456"))
        try run(member, .linkSocialAccount(memberID: "m900", provider: "github", accountID: "zq-github-77"))
        // The same phone under a second member id (a reinstall): the device ties m901 to m900.
        let fingerprint = "ios/iPhone15,2/zq-phone-5521"
        try run(member, .recordMemberDevice(memberID: "m900", deviceFingerprint: fingerprint))
        try run(Actor(.member, "m901"), .registerMember(memberID: "m901", firstName: nil, lastName: nil, email: nil, phone: nil))
        try run(Actor(.member, "m901"), .recordMemberDevice(memberID: "m901", deviceFingerprint: fingerprint))
        try run(customer, .registerUser(userID: "u900", username: "zeldaq", email: "zelda.shop@example.org", isAdmin: false))
        try run(Actor(.admin, "ana"), .issueVoucher(voucherID: "v900", amount: Money(minor: 500, currency: .usd), buyerEmail: "zelda.buyer@example.org"))
        store.log.close()
        // The log never held the plaintext: only sealed fields and keyed claim names.
        // Nor the device's fingerprint, nor even its keyed digest: that is sealed under each member's key.
        let device = Claims.device(fingerprint, secret: try FileKeyVault(store: store.path).claimSecret())
        for secret in secrets + ["zeldaq", "zelda.shop@example.org", "zelda.buyer@example.org", fingerprint, device] {
            #expect(try contains(store.path + "/log", secret).isEmpty, "\(secret) in the log")
        }
        // Read models and reads show it while the keys exist.
        let rebuild = try tally(["projections", "rebuild"], store: store.path)
        #expect(rebuild.status == 0, "\(rebuild.error)")
        let before = try tally(["read", "--stream", "member-m900"], store: store.path)
        #expect(before.output.contains("Zelda") && before.output.contains("zelda.q@example.org"))
        let sales = try tally(["report", "sales", "--view", "log", "--format", "csv"], store: store.path)
        #expect(sales.status == 0)
        let tied = try tally(["report", "member", "--view", "devices", "--member", "m901", "--format", "csv"], store: store.path)
        #expect(tied.status == 0 && tied.lines.count == 3, "\(tied.output)\(tied.error)")
        #expect(tied.output.contains("\(device),m900,") && tied.output.contains("\(device),m901,"), "\(tied.output)")
        // A read model as of the past holds the buyer's email too, until the buyer is forgotten.
        let asOf = try tally(["report", "sales", "--as-of", "2099-01-01", "--format", "csv"], store: store.path)
        #expect(asOf.status == 0, "\(asOf.error)")
        let pastHits = try contains(store.path + "/projections/as-of", "zelda.buyer@example.org")
        #expect(!pastHits.isEmpty)
        let keyTrail = try NoteSignerKey.generate(name: "shop.example")
        let checkpoint = try write(try tally(["audit", "checkpoint", "--key", keyTrail.encoded], store: store.path).output, "before-forget.checkpoint")

        for (arguments, released) in [(["forget", "member:m900", "--reason", "request 17"], 2), (["forget", "customer:u900"], 2),
                                      (["forget", "--email", "zelda.buyer@example.org"], 0)] {
            let forget = try tally(arguments, store: store.path)
            #expect(forget.status == 0, "\(forget.error)")
            let summary = released > 0 ? ", \(released) unique values released; key destroyed" : "; key destroyed"
            #expect(forget.lines.first?.hasSuffix(summary) == true, "\(forget.output)")
        }
        let after = try tally(["read", "--stream", "member-m900"], store: store.path)
        #expect(!after.output.contains("Zelda") && after.output.contains("[erased]"))
        // The tie went with m900's key: m901's device now ties it to no one.
        let untied = try tally(["report", "member", "--view", "devices", "--member", "m901", "--format", "csv"], store: store.path)
        #expect(untied.status == 0 && untied.lines.count == 2 && !untied.output.contains("m900"), "\(untied.output)\(untied.error)")
        let shared = try tally(["report", "member", "--view", "devices", "--format", "csv"], store: store.path)
        #expect(shared.status == 0 && !shared.output.contains(device), "\(shared.output)")
        // Asked again, the erasure is recorded again and names the one that destroyed the key; the read
        // models are rebuilt again (finishing an erasure cut short before them). A subject nothing was
        // sealed for leaves them as they are.
        let servingBefore = try FileManager.default.destinationOfSymbolicLink(atPath: store.path + "/projections/sales.sqlite")
        let again = try tally(["forget", "member:m900"], store: store.path)
        #expect(again.status == 0 && again.lines.first?.contains("its key was destroyed by the erasure at position") == true, "\(again.output)")
        #expect(again.output.contains("sales: rebuilt to position"))
        let servingAgain = try FileManager.default.destinationOfSymbolicLink(atPath: store.path + "/projections/sales.sqlite")
        #expect(servingAgain != servingBefore)
        let stranger = try tally(["forget", "member:never-registered"], store: store.path)
        #expect(stranger.status == 0 && stranger.lines.first?.hasSuffix("no key was held for it: nothing of theirs is sealed in this store") == true,
                "\(stranger.output)")
        #expect(stranger.lines.last == "read models unchanged: they held nothing of it")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: store.path + "/projections/sales.sqlite") == servingAgain)
        let erasures = try tally(["read", "--type", "PersonalDataErased"], store: store.path)
        #expect(erasures.lines.count == 5 && erasures.output.contains("request 17"))

        // Verify, the checkpoint kept before, and proofs still pass: the log did not change.
        let verify = try tally(["verify", "--against", checkpoint, "--key", keyTrail.verifier.encoded], store: store.path)
        #expect(verify.status == 0, "\(verify.error)")
        let signed = try tally(["audit", "checkpoint", "--key", keyTrail.encoded], store: store.path)
        #expect(signed.status == 0)
        let bundle = testPath("erased-bundle")
        #expect(try tally(["audit", "export", "--out", bundle], store: store.path).status == 0)
        #expect(try tally(["audit", "verify", "--key", keyTrail.verifier.encoded, bundle], store: nil).status == 0)
        // The plaintext is nowhere: not in the store (log, keys, read models, audit) nor the export.
        let report = try tally(["report", "member", "--member", "m900", "--format", "csv"], store: store.path)
        #expect(report.status == 0)
        for secret in secrets + ["zelda.shop@example.org", "zelda.buyer@example.org"] {
            let hits = try contains(store.path, secret)
            #expect(hits.isEmpty, "\(secret) is still in \(hits)")
            #expect(try contains(bundle, secret).isEmpty, "\(secret) is in the export")
        }
    }

    @Test func anErasedSubjectsUniqueValuesCanBeTakenAgain() throws {
        let store = try AuditStore(events: 10)
        let admin = Actor(.admin, "ana"), member = Actor(.member, "m900"), customer = Actor(.customer, "u900")
        let vault = FileKeyVault(store: store.path)
        func run(_ actor: Actor, _ command: Command) throws -> CommandOutcome {
            try store.commerce.execute(CommandEnvelope(id: UUID(), actor: actor, command: command))
        }
        func accepted(_ outcome: CommandOutcome) -> Int? {
            if case .accepted(let positions, _) = outcome { positions.count } else { nil }
        }
        func rejection(_ outcome: CommandOutcome) -> RejectionCode? {
            if case .rejected(let rejection) = outcome { rejection.code } else { nil }
        }
        #expect(accepted(try run(member, .registerMember(memberID: "m900", firstName: "Zelda", lastName: nil, email: "zelda.q@example.org", phone: nil))) != nil)
        #expect(accepted(try run(member, .linkSocialAccount(memberID: "m900", provider: "github", accountID: "zq-github-77"))) != nil)
        #expect(accepted(try run(customer, .registerUser(userID: "u900", username: "zeldaq", email: "zelda.shop@example.org", isAdmin: false))) != nil)
        let again = Command.registerMember(memberID: "m901", firstName: nil, lastName: nil, email: "Zelda.Q@example.org", phone: nil)
        #expect(rejection(try run(Actor(.member, "m901"), again)) == .emailTaken)

        // Only an admin erases, and only a subject it can name; neither refusal touches the key.
        #expect(rejection(try run(member, .erasePersonalData(subject: "member:m900", reason: "mine"))) == .notAuthorized)
        #expect(rejection(try run(admin, .erasePersonalData(subject: "m900", reason: "typo"))) == .invalidField)
        #expect(try vault.key(for: "member:m900", create: false) != nil)

        // The email and the linked account are released in the erasure's batch, then the key goes.
        #expect(accepted(try run(admin, .erasePersonalData(subject: "member:m900", reason: "request 18"))) == 3)
        #expect(try vault.key(for: "member:m900", create: false) == nil)
        #expect(accepted(try run(Actor(.member, "m901"), again)) != nil)
        #expect(accepted(try run(Actor(.member, "m901"), .linkSocialAccount(memberID: "m901", provider: "github", accountID: "zq-github-77"))) != nil)
        // Erasing again records it again and releases nothing: the values now read as erased.
        #expect(accepted(try run(admin, .erasePersonalData(subject: "member:m900", reason: "request 18, again"))) == 1)
        // The new member's claim stands.
        #expect(rejection(try run(Actor(.member, "m902"), .registerMember(memberID: "m902", firstName: nil, lastName: nil, email: "zelda.q@example.org", phone: nil))) == .emailTaken)

        // A web-shop customer's username and email.
        #expect(accepted(try run(admin, .erasePersonalData(subject: "customer:u900", reason: "request 19"))) == 3)
        #expect(accepted(try run(Actor(.customer, "u901"), .registerUser(userID: "u901", username: "ZeldaQ", email: "zelda.shop@example.org", isAdmin: false))) != nil)
        // A voucher buyer holds no unique values: only the erasure is recorded.
        let buyer = try PersonalData.emailSubject("zelda.buyer@example.org", vault: vault)
        #expect(accepted(try run(admin, .erasePersonalData(subject: buyer, reason: "request 20"))) == 1)
        let result = try Invariants.check(store.log)
        #expect(result.violations == [])
    }

    @Test func anErasureThroughExecAlsoClearsTheReadModels() throws {
        let store = try AuditStore(events: 10)
        let email = "quintessa.buyer@example.org"
        let issued = try store.commerce.execute(CommandEnvelope(id: UUID(), actor: Actor(.admin, "ana"),
                                                                command: .issueVoucher(voucherID: "v901", amount: Money(minor: 700, currency: .usd), buyerEmail: email)))
        if case .rejected(let rejection) = issued { Issue.record("\(rejection)") }
        let subject = try PersonalData.emailSubject(email, vault: FileKeyVault(store: store.path))
        store.log.close()
        #expect(try tally(["projections", "rebuild"], store: store.path).status == 0)
        #expect(try !contains(store.path + "/projections", email).isEmpty)
        let line = #"{"id":"00000000-0000-4000-8000-000000000901","actor":"admin:ana","command":{"erasePersonalData":{"subject":"\#(subject)","reason":"r"}}}"#
        let exec = try tally(["exec"], store: store.path, input: line)
        #expect(exec.status == 0 && exec.output.contains("\"result\":\"accepted\""), "\(exec.output) \(exec.error)")
        #expect(exec.error.contains("note: sales: rebuilt to position"), "\(exec.error)")
        #expect(try contains(store.path + "/projections", email).isEmpty)
    }

    @Test func anErasureWhoseKeyCouldNotBeDestroyedIsFinishedByRetryingIt() throws {
        let path = testPath("flaky-vault")
        let log = try EventLog.create(at: path)
        let vault = FailingForgetVault(FileKeyVault(store: path))
        let commerce = CommerceService(log: log, vault: vault)
        let member = Actor(.member, "m1")
        _ = try commerce.execute(CommandEnvelope(id: UUID(), actor: member, command: .registerMember(memberID: "m1", firstName: "Ann", lastName: nil, email: nil, phone: nil)))
        let erasure = CommandEnvelope(id: UUID(), actor: Actor(.admin, "ana"), command: .erasePersonalData(subject: "member:m1", reason: "r"))
        #expect(throws: VaultError.self) { _ = try commerce.execute(erasure) }
        // Recorded, but the key is still there: the error said so.
        let head = try log.head().position
        var erasures = log.read(ReadQuery(.type(PersonalDataErased.eventType)))
        var positions: [UInt64] = []
        try erasures.forEach { positions.append($0.position) }
        #expect(positions == [head])
        #expect(try vault.key(for: "member:m1", create: false) != nil)
        // The same command again appends nothing and destroys the key.
        #expect(try commerce.execute(erasure) == .accepted(positions: [head], wasRetry: true))
        #expect(try vault.key(for: "member:m1", create: false) == nil)
        #expect(try log.head().position == head)
    }

    @Test func erasingWithoutAVaultIsRefused() throws {
        let log = try EventLog.create(at: testPath("no-vault"))
        let commerce = CommerceService(log: log)
        #expect(throws: VaultError.self) {
            _ = try commerce.execute(CommandEnvelope(id: UUID(), actor: Actor(.admin, "ana"), command: .erasePersonalData(subject: "member:m1", reason: "r")))
        }
        #expect(try log.head().position == 0)
    }

    @Test func sealedFieldsOpenOnlyWithTheirSubjectsKey() throws {
        let directory = testPath("vault")
        let vault = FileKeyVault(directory: directory)
        let payload = DomainCoding.encode(VoucherIssued(voucherID: "v1", amount: Money(minor: 100, currency: .usd), buyerEmail: "a@example.org"))
        let sealed = try PersonalData.seal(type: VoucherIssued.eventType, payload: payload, vault: vault)
        #expect(!String(decoding: sealed, as: UTF8.self).contains("a@example.org"))
        #expect(try PersonalData.reveal(type: VoucherIssued.eventType, payload: sealed, vault: vault) == payload)
        #expect(try PersonalData.reveal(type: VoucherIssued.eventType, payload: sealed, vault: nil) != payload)
        // The key file is the owner's only.
        let attributes = try FileManager.default.attributesOfItem(atPath: directory)
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
        let subject = try PersonalData.emailSubject("A@example.org", vault: vault)
        #expect(try vault.forget(subject))
        let erased = try PersonalData.reveal(type: VoucherIssued.eventType, payload: sealed, vault: vault)
        #expect(try DomainCoding.decode(VoucherIssued.self, from: erased).buyerEmail == PersonalData.erased)
        #expect(try !vault.forget(subject))
    }
}

@Suite struct InvariantTests {
    @Test func aCleanHistoryHoldsEveryInvariant() throws {
        let store = try AuditStore(events: 3000)
        let result = try Invariants.check(store.log)
        let head = try store.log.head().position
        #expect(result.violations == [] && result.checked == head)
    }

    @Test func violationsAppendedBehindTheRulesBackAreReportedAtTheirPositions() throws {
        let store = try AuditStore(events: 10)
        func raw(_ stream: String, _ event: some DomainEvent) throws -> UInt64 {
            try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: stream, type: type(of: event).eventType,
                                                                      payload: DomainCoding.encode(event))])).positions[0]
        }
        let usd = Currency.usd
        for booth in ["1", "2"] { _ = try raw("booth-\(booth)", OperatorAssigned(boothID: booth, operatorID: "op", operatorName: "Op")) }
        _ = try raw("voucher-x1", VoucherIssued(voucherID: "x1", amount: Money(minor: 500, currency: usd), buyerEmail: "x@example.org"))
        _ = try raw("voucher-x1", VoucherRedeemed(voucherID: "x1", boothID: "1", operatorID: "op", saleID: "sx1", saleAmount: Money(minor: 100, currency: usd)))
        let second = try raw("voucher-x1", VoucherRedeemed(voucherID: "x1", boothID: "2", operatorID: "op", saleID: "sx2", saleAmount: Money(minor: 100, currency: usd)))
        _ = try raw("stock-px", StockReceived(productID: "px", quantity: 2))
        let negative = try raw("stock-px", StockReserved(productID: "px", orderID: "ox", quantity: 3))
        _ = try raw("payment-a", PaymentSucceeded(paymentID: "pa", orderID: "oa", transactionID: "MPX", method: .mpesa, amount: Money(minor: 100, currency: usd)))
        let duplicate = try raw("payment-b", PaymentSucceeded(paymentID: "pb", orderID: "ob", transactionID: "MPX", method: .mpesa, amount: Money(minor: 100, currency: usd)))
        let unpaid = try raw("order-oc", OrderPaid(orderID: "oc", paymentID: "nope", transactionID: "T"))
        // A second payment of one order that went through: the customer charged twice.
        let twice = try raw("payment-c", PaymentSucceeded(paymentID: "pc", orderID: "oa", transactionID: "MPY", method: .mpesa, amount: Money(minor: 100, currency: usd)))
        // A refund of a payment that never paid the order.
        let refund = try raw("order-ob", OrderCancelled(orderID: "ob", reason: "x", refundDue: RefundDue(paymentID: "pb", transactionID: "MPX",
                                                                                                        amount: Money(minor: 100, currency: usd))))
        // A refund paid for an order that owed none.
        let unowed = try raw("order-oc", RefundPaid(orderID: "oc", paymentID: "nope", refundTransactionID: "R", amount: Money(minor: 100, currency: usd)))
        // A redemption at a booth its operator no longer serves.
        _ = try raw("booth-2", OperatorUnassigned(boothID: "2", operatorID: "op"))
        _ = try raw("voucher-x2", VoucherIssued(voucherID: "x2", amount: Money(minor: 500, currency: usd), buyerEmail: "x@example.org"))
        let elsewhere = try raw("voucher-x2", VoucherRedeemed(voucherID: "x2", boothID: "2", operatorID: "op", saleID: "sx3", saleAmount: Money(minor: 100, currency: usd)))
        let result = try Invariants.check(store.log)
        #expect(result.violations.map(\.position) == [second, negative, duplicate, unpaid, twice, refund, unowed, elsewhere])
        #expect(result.violations.map(\.rule) == ["voucher-redeemed-once", "stock-never-negative", "payment-transaction-once", "paid-order-has-payment",
                                                  "order-charged-once", "refund-of-the-payment", "refund-of-the-payment", "operator-serves-the-booth"])
        #expect(result.violations[7].message == "voucher x2 redeemed at booth 2 by operator op, who did not serve it then")
        #expect(result.violations[4].message == "order oa charged again by payment pc (payment pa succeeded at position \(twice - 3))")
        #expect(result.violations[5].message == "order ob refunds payment pb, but it was never paid")
        let cli = try tally(["audit", "invariants"], store: store.path)
        #expect(result.violations[6].message == "order oc refunded without owing a refund")
        #expect(cli.status == 1 && cli.lines.count == 8 && cli.lines[0].hasPrefix("position \(second): voucher-redeemed-once"))
    }

    /// Counts that do not add up in 64 bits (written behind the rules' back) are a violation at the
    /// event that passed the range, and the check goes on: the auditor's tool stopped with a trap.
    @Test func aStockPastSixtyFourBitsIsReportedNotATrap() throws {
        let store = try AuditStore(events: 10)
        var positions: [UInt64] = []
        for event in [StockReceived(productID: "pz", quantity: 9_000_000_000_000_000_000), StockReceived(productID: "pz", quantity: 9_000_000_000_000_000_000)] {
            positions.append(try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "stock-pz", type: StockReceived.eventType,
                                                                                     payload: DomainCoding.encode(event))])).positions[0])
        }
        let negative = try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "stock-pz", type: StockReserved.eventType,
                                                                                payload: DomainCoding.encode(StockReserved(productID: "pz", orderID: "oz", quantity: Int.max)))])).positions[0]
        let result = try Invariants.check(store.log)
        #expect(result.violations.map(\.position) == [positions[1], negative], "\(result.violations)")
        #expect(result.violations.first?.message == "product pz's stock of 9000000000000000000 plus 9000000000000000000 passes the range of a 64-bit count")
        // The level stays at the last count that fitted, which the reservation then takes below zero.
        #expect(result.violations.last?.message == "product pz's stock falls to \(9_000_000_000_000_000_000 - Int64.max)")
    }

    /// An event whose payload does not decode as its type is reported where it is, and the rules go
    /// on with the events after it.
    @Test func anUndecodablePayloadIsReportedAtItsPosition() throws {
        let store = try AuditStore(events: 10)
        _ = try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "booth-1", type: OperatorAssigned.eventType,
                                                                      payload: DomainCoding.encode(OperatorAssigned(boothID: "1", operatorID: "op", operatorName: "Op")))]))
        let broken = try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "voucher-y1", type: VoucherIssued.eventType,
                                                                               payload: Data(#"{"voucherID":"y1"}"#.utf8))])).positions[0]
        let redeemedTwice = VoucherRedeemed(voucherID: "y2", boothID: "1", operatorID: "op", saleID: "sy", saleAmount: Money(minor: 100, currency: .usd))
        var positions: [UInt64] = []
        for event in [DomainCoding.encode(VoucherIssued(voucherID: "y2", amount: Money(minor: 500, currency: .usd), buyerEmail: "y@example.org")),
                      DomainCoding.encode(redeemedTwice), DomainCoding.encode(redeemedTwice)] {
            let type = positions.isEmpty ? VoucherIssued.eventType : VoucherRedeemed.eventType
            positions.append(try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "voucher-y2", type: type, payload: event)])).positions[0])
        }
        let result = try Invariants.check(store.log)
        #expect(result.violations.map(\.position) == [broken, positions[2]])
        #expect(result.violations.map(\.rule) == ["readable-events", "voucher-redeemed-once"])
        #expect(result.violations.first?.message.hasPrefix("VoucherIssued cannot be decoded") == true, "\(result.violations)")
    }

    /// A checkout credits a member's spending: it must be of a cart opened once, checked out once, in
    /// the name of the member (and at the store) that opened it.
    @Test func aCheckoutNotInTheNameOfItsCartsMemberIsReported() throws {
        let store = try AuditStore(events: 10)
        func raw(_ stream: String, _ event: some DomainEvent) throws -> UInt64 {
            try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: stream, type: type(of: event).eventType,
                                                                      payload: DomainCoding.encode(event))])).positions[0]
        }
        let total = Money(minor: 450, currency: .usd)
        func checkout(_ cart: String, member: String, store: String = "s1", transaction: String) -> CartCheckedOut {
            CartCheckedOut(cartID: cart, storeID: store, memberID: member, lines: [], total: total, paymentTransactionID: transaction)
        }
        _ = try raw("cart-x1", CartOpened(cartID: "x1", storeID: "s1", memberID: "m1"))
        _ = try raw("cart-x1", checkout("x1", member: "m1", transaction: "t1"))
        let again = try raw("cart-x1", checkout("x1", member: "m1", transaction: "t2"))
        _ = try raw("cart-x2", CartOpened(cartID: "x2", storeID: "s1", memberID: "m1"))
        let otherMember = try raw("cart-x2", checkout("x2", member: "m2", transaction: "t3"))
        _ = try raw("cart-x3", CartOpened(cartID: "x3", storeID: "s1", memberID: "m1"))
        let otherStore = try raw("cart-x3", checkout("x3", member: "m1", store: "s2", transaction: "t4"))
        let reopened = try raw("cart-x3", CartOpened(cartID: "x3", storeID: "s1", memberID: "m2"))
        let neverOpened = try raw("cart-x4", checkout("x4", member: "m1", transaction: "t5"))
        let result = try Invariants.check(store.log)
        #expect(result.violations.map(\.position) == [again, otherMember, otherStore, reopened, neverOpened])
        #expect(Set(result.violations.map(\.rule)) == ["cart-checked-out-by-its-member"])
        #expect(result.violations[1].message == "cart x2 of member m1 checked out in the name of member m2")
    }

    /// A shopping list's revisions are numbered without a gap or a repeat, all in its first member's name.
    @Test func aShoppingListRevisedOutOfTurnOrByAnotherMemberIsReported() throws {
        let store = try AuditStore(events: 10)
        func revise(_ list: String, _ member: String, _ revision: Int) throws -> UInt64 {
            let event = ShoppingListRevised(memberID: member, listID: list, revision: revision, lines: [])
            return try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "list-\(list)", type: ShoppingListRevised.eventType,
                                                                             payload: DomainCoding.encode(event))])).positions[0]
        }
        _ = try revise("l1", "m1", 1)
        _ = try revise("l1", "m1", 2)
        let repeated = try revise("l1", "m1", 2)
        let skipped = try revise("l1", "m1", 4)
        let otherMember = try revise("l1", "m2", 5)
        let notFirst = try revise("l2", "m1", 2)
        let result = try Invariants.check(store.log)
        #expect(result.violations.map(\.position) == [repeated, skipped, otherMember, notFirst])
        #expect(Set(result.violations.map(\.rule)) == ["shopping-list-of-its-member"])
        #expect(result.violations.map(\.message) == ["shopping list l1 revision 2 follows revision 2", "shopping list l1 revision 4 follows revision 2",
                                                     "shopping list l1 of member m1 revised in the name of member m2",
                                                     "shopping list l2 revision 2 follows revision 0"])
    }
}

@Suite struct AuditCLITests {
    /// An export that runs out of room (a file size limit here, as a full disk would) says so and leaves
    /// no partial bundle: Foundation's non-throwing `FileHandle.write` stopped the process with a trap,
    /// past the code that removes the partial folder.
    @Test func anExportThatRunsOutOfRoomFailsAndLeavesNothing() throws {
        let store = try AuditStore(events: 3_000)
        try store.trail.checkpoint(key: store.key)
        store.log.close()
        let bundle = testPath("cut-bundle")
        // `ulimit -f` in blocks of 1 KiB: 256 KiB, far less than the bundle's events; SIGXFSZ ignored (an
        // ignored signal stays ignored across exec), so the write fails with EFBIG instead of a kill.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", #"trap '' XFSZ; ulimit -f 256; exec "$0" audit export --store "$1" --out "$2""#, tallyPath(), store.path, bundle]
        let error = Pipe()
        process.standardError = error
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 1, "\(process.terminationStatus) \(message)")
        #expect(message.contains("cannot write") && message.contains("events.jsonl") && message.contains("File too large"), "\(message)")
        let parent = (bundle as NSString).deletingLastPathComponent
        let left = try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.hasPrefix((bundle as NSString).lastPathComponent) }
        #expect(left.isEmpty, "\(left)")
    }

    /// A key gone without an erasure on record (a vault lost, a store restored without `keys/`), or one
    /// that does not open its values (another store's vault), reads like a forgotten subject
    /// everywhere: `verify` tells them apart and fails naming whose.
    @Test func verifyFindsAKeyLostWithoutAnErasure() throws {
        let path = testPath("keys")
        #expect(try tally(["init"], store: path).status == 0)
        let commands = (1...3).map { index in
            #"{"id":"00000000-0000-4000-8000-00000000000\#(index)","actor":"member:m\#(index)","command":{"registerMember":{"memberID":"m\#(index)","firstName":"Ada\#(index)"}}}"#
        }.joined(separator: "\n")
        #expect(try tally(["exec"], store: path, input: commands).status == 0)
        #expect(try tally(["forget", "member:m3", "--reason", "request 9"], store: path).status == 0)
        let sound = try tally(["verify"], store: path)
        #expect(sound.status == 0 && sound.output.contains("ok: the keys of all 2 subjects with personal data are there (1 erased on record)"),
                "\(sound.output)\(sound.error)")
        // The vault loses m2's key behind the log's back.
        #expect(try FileKeyVault(store: path).forget("member:m2"))
        let lost = try tally(["verify"], store: path)
        #expect(lost.status == 1, "\(lost.output)")
        #expect(lost.error.contains("the keys of 1 of the 3 subjects with personal data sealed in the log are missing"), "\(lost.error)")
        #expect(lost.error.hasSuffix("restore keys/ from its backup. member:m2\n"), "\(lost.error)")
        #expect(try tally(["verify", "--quick"], store: path).status == 0)
        // Another store's vault put in its place: the keys are there, but open nothing of this log.
        let other = testPath("other-keys")
        #expect(try tally(["init"], store: other).status == 0)
        #expect(try tally(["exec"], store: other, input: commands).status == 0)
        try FileManager.default.removeItem(atPath: path + "/keys")
        try FileManager.default.copyItem(atPath: other + "/keys", toPath: path + "/keys")
        let swapped = try tally(["verify"], store: path)
        #expect(swapped.status == 1, "\(swapped.output)")
        #expect(swapped.error.contains("the keys of 2 of the 3 subjects with personal data sealed in the log do not open their values"),
                "\(swapped.error)")
    }

    @Test func keygenWritesAnOwnerOnlyKeyAndNeverOverwrites() throws {
        let path = testPath("signing.key")
        let first = try tally(["audit", "keygen", "--name", "shop.example", "--out", path], store: nil)
        #expect(first.status == 0)
        let verifier = try NoteVerifierKey(parsing: first.output)
        #expect(verifier.name == "shop.example")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try NoteSignerKey(parsing: String(contentsOfFile: path, encoding: .utf8)).verifier == verifier)
        let again = try tally(["audit", "keygen", "--name", "shop.example", "--out", path], store: nil)
        #expect(again.status != 0 && again.error.contains("already exists"))
    }

    @Test func proveAndVerifyFromFilesAndNameEveryBadInput() throws {
        let store = try AuditStore(events: 300)
        store.log.close()
        let keyFile = testPath("k.key")
        try Data((store.key.encoded + "\n").utf8).write(to: URL(fileURLWithPath: keyFile))
        let first = try tally(["audit", "checkpoint", "--key", keyFile], store: store.path)
        #expect(first.status == 0, "\(first.error)")
        let checkpoint = try write(first.output, "cp1")
        let proof = try tally(["audit", "prove", "--position", "123", "--checkpoint", checkpoint], store: store.path)
        #expect(proof.status == 0, "\(proof.error)")
        let proofFile = try write(proof.output, "proof")
        let key = store.key.verifier.encoded
        let ok = try tally(["audit", "verify", "--key", key, checkpoint, proofFile], store: nil)
        #expect(ok.status == 0 && ok.output.contains("position 123"), "\(ok.error)")
        let consistency = try tally(["audit", "consistency", "--from", checkpoint], store: store.path)
        #expect(consistency.status == 0, "\(consistency.error)")
        // A file that cannot be read is named with the reason.
        for (path, reason) in [("no-such.checkpoint", "No such file or directory"), (testPath("a-directory"), "it is a directory")] {
            if reason.hasPrefix("it is") { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
            let missing = try tally(["audit", "consistency", "--from", path], store: store.path)
            #expect(missing.status != 0 && missing.error.contains("cannot read the checkpoint file given to --from \(path): \(reason)"), "\(missing.error)")
        }

        let other = try NoteSignerKey.generate(name: "other.example")
        let bad: [(String, [String], String)] = [
            ("truncated proof", [checkpoint, try write(String(proof.output.prefix(proof.output.count / 2)), "half")], "inclusion proof"),
            ("unknown key", [checkpoint], "not signed by the key other.example"),
            ("not a checkpoint", [try write("hello\n", "hello")], "has no blank line"),
            ("proof without checkpoint", [proofFile], "give at least one signed checkpoint"),
        ]
        for (name, files, message) in bad {
            let run = try tally(["audit", "verify", "--key", name == "unknown key" ? other.verifier.encoded : key] + files, store: nil)
            #expect(run.status != 0, "\(name)")
            #expect(run.error.contains(message), "\(name): \(run.error)")
        }
        let noCheckpoint = try tally(["audit", "prove", "--position", "1"], store: testPath("empty"))
        #expect(noCheckpoint.status != 0)
    }
}

@Suite struct TamperTests {
    /// Runs `tally` with a deadline: a process that hangs on a corrupted store is killed (and counts as a failure).
    func tallyWithin(_ seconds: Double, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tallyPath())
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = DispatchTime.now() + seconds
        DispatchQueue.global().asyncAfter(deadline: deadline) { if process.isRunning { process.terminate() } }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func randomByteChangesToARealStoreNeverPassVerifySilently() throws {
        let store = try AuditStore(events: 1200)
        let checkpoint = try write(try store.trail.checkpoint(key: store.key).serialized, "tamper.checkpoint")
        let key = store.key.verifier.encoded
        store.log.close()
        let original = try tallyWithin(60, ["read", "--sealed", "--store", store.path])
        #expect(original.status == 0 && !original.output.isEmpty)
        let data = try Data(contentsOf: URL(fileURLWithPath: store.path + "/log/data.mdb"))
        var random = SplitMix64(seed: 77)
        var caught = 0, harmless = 0
        for round in 0..<60 {
            let copy = testPath("tampered-store-\(round)")
            try FileManager.default.createDirectory(atPath: copy + "/log", withIntermediateDirectories: true)
            for name in ["audit"] { try FileManager.default.copyItem(atPath: store.path + "/" + name, toPath: copy + "/" + name) }
            var bytes = data
            let offset = Int(random.next() % UInt64(bytes.count))
            bytes[offset] ^= UInt8(1 + random.next() % 255)
            try bytes.write(to: URL(fileURLWithPath: copy + "/log/data.mdb"))
            let verify = try tallyWithin(30, ["verify", "--store", copy, "--against", checkpoint, "--key", key])
            if verify.status != 0 {
                caught += 1
                continue
            }
            // Verify passed: then the change must have hit a byte the log does not use (a free page, padding),
            // and every event must read exactly as before.
            let read = try tallyWithin(60, ["read", "--sealed", "--store", copy])
            #expect(read.status == 0 && read.output == original.output, "byte \(offset) changed what the log says, and verify passed")
            harmless += 1
        }
        #expect(caught > 0, "no change was caught (\(harmless) harmless)")
    }
}

/// A vault whose first `forget` fails, as a full or read-only disk would make it.
final class FailingForgetVault: PersonalDataVault {
    let inner: FileKeyVault
    let failed = Mutex(false)
    init(_ inner: FileKeyVault) { self.inner = inner }
    func key(for subject: String, create: Bool) throws -> SymmetricKey? { try inner.key(for: subject, create: create) }
    func claimSecret() throws -> SymmetricKey { try inner.claimSecret() }
    func forget(_ subject: String) throws -> Bool {
        let first = failed.withLock { failed in
            defer { failed = true }
            return !failed
        }
        if first { throw VaultError("no space left on device") }
        return try inner.forget(subject)
    }
}
