import ArgumentParser
import Foundation
import TallyDomain
import TallyLog

struct Append: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append events, atomically.",
        discussion: """
            One event from the options, or JSON Lines on standard input (one event per line; every line \
            is checked before anything is written, and all lines are appended as one atomic batch). \
            Prints one JSON line per event with its position and stream version.

            A line: {"stream": "cart-1", "type": "ItemAdded", "data": {...}} with optional "id" (a UUID; \
            re-appending the same id with the same content is a no-op that returns the first positions), \
            "schemaVersion", "actor", "correlationId", "causationId", "metadata" (an object) and \
            "expectedVersion" ("any", "no-stream", "exists" or a number).

            Event types of the commerce domain (VoucherIssued, CartCheckedOut, PaymentSucceeded…) are \
            refused: they are recorded by commands through `tally exec`, which check the rules, pick \
            the stream and seal personal data. The log holds events of your own types beside them.

            Examples:
              tally append --stream ticket-7 --type TicketScanned --data '{"gate":"north"}' --expected-version no-stream
              printf '%s\\n' '{"stream":"survey-1","type":"AnswerGiven","data":{"score":4}}' | tally append
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: "The stream to append to (without it, events are read from standard input).") var stream: String?
    @Option(help: "The event type, e.g. TicketScanned (one of your own, not the commerce domain's).") var type: String?
    @Option(help: "The payload: a JSON value.") var data: String?
    @Option(help: "The event id (a UUID; default: a new time-ordered one).") var id: String?
    @Option(help: "Who caused it, e.g. admin:ana.") var actor: String?
    @Option(help: "The stream's version before this append: any, no-stream, exists or a number.") var expectedVersion: String?
    @Option(help: "Context as a JSON object.") var metadata: String?

    func validate() throws {
        if stream == nil {
            guard type == nil, data == nil, id == nil, actor == nil, expectedVersion == nil, metadata == nil else {
                throw ValidationError("--type, --data and the other event options need --stream")
            }
        } else {
            guard type != nil else { throw ValidationError("--stream needs --type") }
            guard data != nil else { throw ValidationError("--stream needs --data (a JSON value, e.g. '{}')") }
        }
    }

    /// `input`, unless its type is one of the commerce domain's (`DomainEvents`): those are written by
    /// its commands only.
    static func ownType(_ input: EventJSON.Input, place: String) throws -> EventJSON.Input {
        let type = input.event.type
        guard DomainEvents.isDomainType(type) else { return input }
        throw CLIError("\(place)\"\(type)\" is an event type of the commerce domain: record it with its command through `tally exec`, "
                       + "which checks the rules, picks the stream and seals personal data (`tally exec --catalog` shows every command). "
                       + "`tally append` takes event types of your own.")
    }

    func run() throws {
        let ids = EventIDGenerator()
        var inputs: [EventJSON.Input] = []
        if let stream, let type, let data {
            var line = JSONWriter()
            line.raw("{\"stream\":"); line.string(stream)
            line.raw(",\"type\":"); line.string(type)
            line.raw(",\"data\":"); line.raw(try EventJSON.canonical(Array(data.utf8), place: "--data: "))
            if let id { line.raw(",\"id\":"); line.string(id) }
            if let actor { line.raw(",\"actor\":"); line.string(actor) }
            if let metadata { line.raw(",\"metadata\":"); line.raw(try EventJSON.canonical(Array(metadata.utf8), place: "--metadata: ")) }
            if let expectedVersion { line.raw(",\"expectedVersion\":"); line.string(expectedVersion) }
            line.raw("}")
            inputs.append(try Self.ownType(EventJSON.parse(line: line.bytes, number: nil, ids: ids), place: ""))
        } else {
            var number = 0
            var lines = InputLines()
            while let line = try lines.next() {
                number += 1
                if InputLines.isBlank(line) { continue }
                // One append is one batch: refuse at the first event past its limit rather than read the rest.
                guard inputs.count < Limits.batchEventsMax else {
                    throw CLIError("line \(number): more than \(Limits.batchEventsMax) events on standard input; one append takes at most "
                                   + "\(Limits.batchEventsMax) (split the input into several appends: each is all or nothing on its own)")
                }
                inputs.append(try Self.ownType(EventJSON.parse(line: line, number: number, ids: ids), place: "line \(number): "))
            }
            guard !inputs.isEmpty else { throw CLIError("no events on standard input (give JSON Lines, or use --stream, --type and --data)") }
        }
        var expectations: [String: ExpectedVersion] = [:]
        for input in inputs {
            guard let expected = input.expected else { continue }
            if let earlier = expectations[input.event.stream], earlier != expected {
                throw CLIError("stream \"\(input.event.stream)\" has two different expected versions (\(earlier) and \(expected)) in one batch")
            }
            expectations[input.event.stream] = expected
        }
        let log = try store.open()
        defer { log.close() }
        let result = try log.append(AppendRequest(events: inputs.map(\.event), expectations: expectations))
        var versions: [String: UInt64] = [:]
        let output = OutputBuffer()
        let records = try log.withSnapshot { snapshot in
            try result.positions.map { position -> (UInt64, UInt64, String) in
                let record = try snapshot.record(at: position)!
                return (position, record.version, record.stream)
            }
        }
        for ((position, version, stream), input) in zip(records, inputs) {
            versions[stream] = version
            try output.line("{\"position\":\(position),\"stream\":\(EventJSON.quote(stream)),\"version\":\(version),\"id\":\"\(input.event.id.uuidString.lowercased())\""
                            + (result.wasAlreadyAppended ? ",\"alreadyAppended\":true}" : "}"))
        }
        try output.flush()
    }
}
