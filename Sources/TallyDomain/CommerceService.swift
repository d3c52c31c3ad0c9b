import Foundation
import TallyLog

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

    public init(log: EventLog) { self.log = log }

    public func execute(_ envelope: CommandEnvelope) async throws -> CommandOutcome {
        do {
            let result = try await log.appendDecided { [states] view in try Self.request(for: envelope, view: &view, states: states) }
            guard let result else { preconditionFailure("a decision always returns events or throws") }
            return .accepted(positions: result.positions, wasRetry: result.wasAlreadyAppended)
        } catch let rejection as Rejection {
            return .rejected(rejection)
        } catch let retry as AlreadyExecuted {
            return .accepted(positions: retry.positions, wasRetry: true)
        }
    }

    public func execute(_ envelope: CommandEnvelope) throws -> CommandOutcome {
        do {
            let result = try log.appendDecided { [states] view in try Self.request(for: envelope, view: &view, states: states) }
            guard let result else { preconditionFailure("a decision always returns events or throws") }
            return .accepted(positions: result.positions, wasRetry: result.wasAlreadyAppended)
        } catch let rejection as Rejection {
            return .rejected(rejection)
        } catch let retry as AlreadyExecuted {
            return .accepted(positions: retry.positions, wasRetry: true)
        }
    }

    /// A command whose first event is already in the log was executed before: its events' positions.
    struct AlreadyExecuted: Error {
        var positions: [UInt64]
    }

    /// Decides `envelope` against the log as the writer sees it and turns the decision into a batch:
    /// ids derived from the command id, the actor, the command id as correlation id, and the command's
    /// name in the metadata.
    static func request(for envelope: CommandEnvelope, view: inout WriterView, states: StateCache?) throws -> AppendRequest {
        if let first = try view.position(ofEventID: CommandEventIDs.id(command: envelope.id, index: 0)) {
            var positions = [first]
            while let next = try view.position(ofEventID: CommandEventIDs.id(command: envelope.id, index: positions.count)) {
                positions.append(next)
            }
            throw AlreadyExecuted(positions: positions)
        }
        var streams = LogStreams(view: view, states: states)
        let decision = try Decide.decide(envelope, streams: &streams)
        view = streams.view
        let metadata = Data("{\"command\":\"\(envelope.command.name)\",\"commandId\":\"\(envelope.id.uuidString.lowercased())\"}".utf8)
        let events = decision.events.enumerated().map { index, emitted in
            ProposedEvent(id: CommandEventIDs.id(command: envelope.id, index: index), stream: emitted.stream, type: emitted.type,
                          schemaVersion: emitted.schemaVersion, actor: envelope.actor.description, correlationID: envelope.id,
                          metadata: metadata, payload: emitted.payload)
        }
        return AppendRequest(events: events, expectations: decision.expectations)
    }
}
