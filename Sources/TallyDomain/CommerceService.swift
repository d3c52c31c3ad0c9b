import Foundation
import TallyLog
import Crypto

/// What executing a command did.
public enum CommandOutcome: Sendable, Equatable {
    /// The events were appended at these positions (or, for a retried command, had been).
    case accepted(positions: [UInt64], wasRetry: Bool)
    /// The command was refused; nothing was appended.
    case rejected(Rejection)
}

/// Runs commands against an event log: each is decided inside the log's writer transaction, after
/// every append queued before it, so its rules hold however many booths, tills or servers send
/// commands at once. The Swift API for applications that embed Tally.
public final class CommerceService: Sendable {
    public let log: EventLog
    /// Folded states at committed versions, so a long stream (a product's stock) is not refolded from
    /// its first event by every command.
    let states = StateCache()

    /// Where personal data's keys are: with one, personal fields are sealed per data subject before
    /// they are appended (and can be erased by destroying the key). Without one they are stored as given.
    public let vault: (any PersonalDataVault)?

    public init(log: EventLog, vault: (any PersonalDataVault)? = nil) {
        self.log = log
        self.vault = vault
    }

    /// Executes `envelope` and returns once its events are durable (or it was refused).
    ///
    /// The command is decided first on this thread, against a snapshot of the log; the writer then only
    /// confirms that nothing the decision read has changed (see `confirm`) and appends its events (or
    /// returns its refusal), so the folding, rule checks and encoding run on the callers' cores and not
    /// one at a time in the writer. A decision that went stale or read the clock is made again in the writer.
    ///
    /// Every text of the command is taken in NFC: an id in another form of the same text names the same
    /// thing (see `CommandEnvelope.normalized`).
    public func execute(_ envelope: CommandEnvelope) async throws -> CommandOutcome {
        let envelope = envelope.normalized
        let digest = try CommandDigest.of(envelope, secret: prepareKeys(envelope) ?? vault?.claimSecret())
        let ahead = decideAhead(envelope, digest: digest)
        let result: Result<AppendResult?, any Error>
        do {
            result = .success(try await log.appendDecided { [states, vault] view in
                try Self.confirm(ahead, for: envelope, digest: digest, view: &view, states: states, vault: vault)
            })
        } catch {
            result = .failure(error)
        }
        return try finish(envelope, Self.outcome(result))
    }

    public func execute(_ envelope: CommandEnvelope) throws -> CommandOutcome {
        let envelope = envelope.normalized
        let digest = try CommandDigest.of(envelope, secret: prepareKeys(envelope) ?? vault?.claimSecret())
        let ahead = decideAhead(envelope, digest: digest)
        return try finish(envelope, Self.outcome(Result {
            try log.appendDecided { [states, vault] view in
                try Self.confirm(ahead, for: envelope, digest: digest, view: &view, states: states, vault: vault)
            }
        }))
    }

    /// Submits `envelope` without waiting; `completion` gets the outcome on one of the log's threads. Commands
    /// submitted one after another from one thread are decided in that order, in the writer (a later one
    /// may depend on an earlier one still in flight, so deciding it ahead would mostly be wasted).
    public func submit(_ envelope: CommandEnvelope, completion: @escaping @Sendable (Result<CommandOutcome, any Error>) -> Void) {
        let envelope = envelope.normalized
        let digest: String
        do {
            digest = try CommandDigest.of(envelope, secret: prepareKeys(envelope) ?? vault?.claimSecret())
        } catch { completion(.failure(error)); return }
        log.appendDecided({ [states, vault] view in try Self.request(for: envelope, digest: digest, view: &view, states: states, vault: vault) }) { [self] result in
            completion(Result { try finish(envelope, Self.outcome(result)) })
        }
    }

    /// Makes the key of the data subject a command may write about, on the caller's thread: creating
    /// a key (and syncing it) inside the writer would stall every other command. Returns it, if the
    /// command has a subject.
    @discardableResult
    func prepareKeys(_ envelope: CommandEnvelope) throws -> SymmetricKey? {
        guard let vault else {
            // Without a vault personal fields were stored as given: there is no key whose loss erases them.
            if case .erasePersonalData = envelope.command { throw VaultError("erasing personal data needs the store's key vault") }
            return nil
        }
        let subject: String?
        switch envelope.command {
        case .registerMember(let id, _, _, _, _), .linkSocialAccount(let id, _, _), .recordMemberDevice(let id, _, _), .changeMemberProfile(let id, _, _, _):
            subject = "member:\(id)"
        case .registerUser(let id, _, _, _), .changeUserEmail(let id, _): subject = "customer:\(id)"
        case .assignOperator(_, let id, _): subject = "operator:\(id)"
        case .issueVoucher(_, _, let email): subject = try PersonalData.emailSubject(email, vault: vault)
        default: subject = nil
        }
        guard let subject else { return nil }
        return try vault.key(for: subject, create: true)
    }

    /// What a command does outside the log once its events are durable. An erasure destroys the
    /// subject's key, after the log records it, so a key is never destroyed without the log saying so;
    /// if destroying it fails, the error is thrown and executing the command again finishes the job
    /// (the retry appends nothing new).
    func finish(_ envelope: CommandEnvelope, _ outcome: CommandOutcome) throws -> CommandOutcome {
        if case .erasePersonalData(let subject, _) = envelope.command, case .accepted = outcome, let vault {
            _ = try vault.forget(subject)
        }
        return outcome
    }

    /// What the log's answer to a decided append means for the command.
    static func outcome(_ result: Result<AppendResult?, any Error>) throws -> CommandOutcome {
        switch result {
        case .success(let appended?): return .accepted(positions: appended.positions, wasRetry: appended.wasAlreadyAppended)
        case .success(nil): preconditionFailure("a decision always returns events or throws")
        case .failure(let rejection as Rejection): return .rejected(rejection)
        case .failure(let retry as AlreadyExecuted): return .accepted(positions: retry.positions, wasRetry: true)
        case .failure(let error): throw error
        }
    }

    /// Executes `envelopes` in order, all in flight at once (so they share writer transactions), and
    /// returns their outcomes in order.
    public func executeInOrder(_ envelopes: [CommandEnvelope]) throws -> [CommandOutcome] {
        try executeEachInOrder(envelopes).map { try $0.get() }
    }

    /// `executeInOrder`, with each command's own result: one that failed (its events refused by the
    /// log, say) leaves the others' outcomes to be told.
    public func executeEachInOrder(_ envelopes: [CommandEnvelope]) -> [Result<CommandOutcome, any Error>] {
        let outcomes = OutcomeSlots(count: envelopes.count)
        let done = DispatchGroup()
        for (index, envelope) in envelopes.enumerated() {
            done.enter()
            submit(envelope) { result in
                outcomes.set(index, result)
                done.leave()
            }
        }
        done.wait()
        return outcomes.values
    }

    /// A command whose first event is already in the log was executed before: its events' positions.
    struct AlreadyExecuted: Error {
        var positions: [UInt64]
    }

    /// A command decided against a snapshot, on the caller's thread, and what the decision read.
    struct DecidedAhead {
        /// The batch to append, or the refusal.
        var outcome: Result<AppendRequest, Rejection>
        /// Each stream the decision read, at the version it read: the decision is a function of these
        /// (and of the command), so it stands as long as they are unchanged.
        var reads: [String: UInt64]
    }

    /// The command decided against a snapshot, on the caller's thread: nil if it was executed before, read
    /// the clock (a price is taken as of the moment the writer decides), or failed other than by a
    /// refusal; the writer then decides it.
    func decideAhead(_ envelope: CommandEnvelope, digest: String) -> DecidedAhead? {
        do {
            return try log.withSnapshot { snapshot -> DecidedAhead? in
                guard try snapshot.position(ofEventID: CommandEventIDs.id(command: envelope.id, index: 0)) == nil else { return nil }
                var streams = SnapshotStreams(snapshot: snapshot, states: states, vault: vault, claimSecret: try vault?.claimSecret(),
                                              clock: log.options.clock)
                let outcome: Result<AppendRequest, Rejection>
                do {
                    outcome = .success(try Self.batch(for: envelope, digest: digest, try Decide.decide(envelope, streams: &streams), vault: vault))
                } catch let rejection as Rejection {
                    outcome = .failure(rejection)
                }
                guard !streams.clockRead.value else { return nil }
                return DecidedAhead(outcome: outcome, reads: streams.reads)
            }
        } catch {
            return nil
        }
    }

    /// In the writer: the outcome decided ahead (its batch, or its refusal) if what the decision read is
    /// unchanged (the command has not been executed meanwhile, and every stream it read is still at the
    /// version it read), otherwise the command decided here.
    static func confirm(_ ahead: DecidedAhead?, for envelope: CommandEnvelope, digest: String, view: inout WriterView, states: StateCache?,
                        vault: (any PersonalDataVault)?) throws -> AppendRequest {
        if let ahead, try view.position(ofEventID: CommandEventIDs.id(command: envelope.id, index: 0)) == nil,
           try ahead.reads.allSatisfy({ stream, version in try view.version(of: stream) == version }) {
            return try ahead.outcome.get()
        }
        return try request(for: envelope, digest: digest, view: &view, states: states, vault: vault)
    }

    /// Decides `envelope` against the log as the writer sees it and turns the decision into a batch.
    static func request(for envelope: CommandEnvelope, digest: String, view: inout WriterView, states: StateCache?,
                        vault: (any PersonalDataVault)?) throws -> AppendRequest {
        if let first = try view.position(ofEventID: CommandEventIDs.id(command: envelope.id, index: 0)) {
            // A retry asks what the first call asked; an id used again for another command is refused, not
            // answered with the first one's positions as if it had run.
            guard let record = try view.record(at: first) else {
                throw LogError.corruptRecord(position: first, reason: "the event-ids index points at a missing record")
            }
            if let reused = CommandDigest.difference(envelope, digest: digest, firstEvent: record) {
                throw Rejection(.commandIDReused, "command id \(envelope.id.uuidString.lowercased()) was used at position \(first) for \(reused): "
                                + "a retry must repeat the command exactly, and another command needs an id of its own")
            }
            var positions = [first]
            while let next = try view.position(ofEventID: CommandEventIDs.id(command: envelope.id, index: positions.count)) {
                positions.append(next)
            }
            throw AlreadyExecuted(positions: positions)
        }
        var streams = LogStreams(view: view, states: states, vault: vault, claimSecret: try vault?.claimSecret())
        let decision = try Decide.decide(envelope, streams: &streams)
        view = streams.view
        return try batch(for: envelope, digest: digest, decision, vault: vault)
    }

    /// A decision as a batch: ids derived from the command id, the actor, the command id as
    /// correlation id, and the command's name in the metadata, with the digest of what it asked in the
    /// first event's (`CommandDigest`); personal fields sealed.
    static func batch(for envelope: CommandEnvelope, digest: String, _ decision: Decision, vault: (any PersonalDataVault)?) throws -> AppendRequest {
        let name = envelope.command.name, id = envelope.id.uuidString.lowercased()
        let metadata = Data("{\"command\":\"\(name)\",\"commandId\":\"\(id)\"}".utf8)
        let firstMetadata = Data("{\"command\":\"\(name)\",\"commandDigest\":\"\(digest)\",\"commandId\":\"\(id)\"}".utf8)
        let events = try decision.events.enumerated().map { index, emitted in
            // Personal fields are sealed here, after the rules saw them in clear and before any byte is hashed.
            let payload = try vault.map { try PersonalData.seal(type: emitted.type, payload: emitted.payload, vault: $0) } ?? emitted.payload
            return ProposedEvent(id: CommandEventIDs.id(command: envelope.id, index: index), stream: emitted.stream, type: emitted.type,
                                 schemaVersion: emitted.schemaVersion, actor: envelope.actor.description, correlationID: envelope.id,
                                 metadata: index == 0 ? firstMetadata : metadata, payload: payload)
        }
        return AppendRequest(events: events, expectations: decision.expectations)
    }
}

private final class OutcomeSlots: @unchecked Sendable {
    // @unchecked: slot i is written once by the writer thread before the group is left; read after waiting.
    var values: [Result<CommandOutcome, any Error>]
    init(count: Int) { values = Array(repeating: .failure(LogError.closed), count: count) }
    func set(_ index: Int, _ value: Result<CommandOutcome, any Error>) { values[index] = value }
}

/// What a command asks, in a few bytes: its actor and its command with every field, encoded as JSON
/// with sorted keys and hashed with HMAC-SHA-256 (after a version tag). The key is the data subject's
/// own, for a command about one (its names, email, phone): once the subject is forgotten, no one can
/// test a guess of them against the digest, as no one can open their sealed fields. Other commands use
/// the vault's claim secret, as claim names do; without a vault, whose commands store their values in
/// clear anyway, plain SHA-256. The first event of a command carries it in its metadata
/// (`commandDigest`), so using the command's id again for another command is told from a retry.
enum CommandDigest {
    static let version = "v1:"

    static func of(_ envelope: CommandEnvelope, secret: SymmetricKey?) throws -> String {
        struct Asked: Encodable {
            let actor: Actor
            let command: Command
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = try encoder.encode(Asked(actor: envelope.actor, command: envelope.command))
        return version + Claims.keyedDigest("command", String(decoding: json, as: UTF8.self), secret: secret)
    }

    /// How the command that wrote `firstEvent` differs from `envelope` ("issueVoucher by admin:ana"), or
    /// nil if it asked the same. Events from before the digest are compared by command name and actor.
    static func difference(_ envelope: CommandEnvelope, digest: String, firstEvent: RecordView) -> String? {
        let metadata = try? JSONView(document: firstEvent.metadataBytes)
        let storedName = (try? metadata?.optionalString("command")) ?? nil
        // An event no command wrote (appended with that id by hand) has no command name, and may have no actor.
        let described = (storedName ?? "an event of type \(firstEvent.type)") + (firstEvent.actor.isEmpty ? "" : " by \(firstEvent.actor)")
        if let stored = (try? metadata?.optionalString("commandDigest")) ?? nil, stored.hasPrefix(version) {
            return stored == digest ? nil : described
        }
        return storedName == envelope.command.name && firstEvent.actor == envelope.actor.description ? nil : described
    }
}
