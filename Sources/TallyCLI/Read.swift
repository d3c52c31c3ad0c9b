import ArgumentParser
import Foundation
import TallyLog

/// What `read` and `follow` select.
struct SelectionOptions: ParsableArguments {
    @Option(help: "Only this stream (then --from is a stream version).") var stream: String?
    @Option(help: "Only events of this type.") var type: String?
    @Option(help: "Start here, inclusive: a position, or a version with --stream.") var from: UInt64?
    @Option(help: "At most this many events.") var limit: Int?
    @Option(help: "The log as it stood at this position: later events are left out.") var untilPosition: UInt64?
    @Option(help: "The log as it stood at this time (RFC 3339, e.g. 2026-11-22T12:00:00Z, or a date).") var asOf: String?
    @Option(help: "Only events recorded at or after this time (RFC 3339 or a date); with --as-of, a time window.") var since: String?
    @Flag(help: "Show personal fields sealed, as stored and hashed, instead of opened with the store's keys.") var sealed = false

    func validate() throws {
        if stream != nil && type != nil { throw ValidationError("give --stream or --type, not both") }
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
        if untilPosition != nil && asOf != nil { throw ValidationError("give --until-position or --as-of, not both") }
        if let asOf, Timestamp(iso8601: asOf) == nil { throw ValidationError("--as-of \"\(asOf)\" is not an RFC 3339 time or a date") }
        if let since, Timestamp(iso8601: since) == nil { throw ValidationError("--since \"\(since)\" is not an RFC 3339 time or a date") }
        if let since, let asOf, let start = Timestamp(iso8601: since), let end = Timestamp(iso8601: asOf), start > end {
            throw ValidationError("--since \"\(since)\" is after --as-of \"\(asOf)\": no event was recorded in that window")
        }
    }

    /// What the selection names that the log has never held (a misspelt type or stream reads as an
    /// empty history otherwise), with a hint, or nil.
    func nothingNamed(_ log: EventLog) throws -> (what: String, hint: String?)? {
        if let stream, try log.withSnapshot({ try $0.version(of: stream) }) == 0 {
            return ("the log has no stream \(EventJSON.quote(stream))", nil)
        }
        if let type {
            let types = try log.withSnapshot { try $0.eventTypeCounts() }.map(\.type)
            guard !types.contains(where: { $0.utf8.elementsEqual(type.utf8) }) else { return nil }
            let close = types.filter { $0.lowercased() == type.lowercased() }
            return ("the log has no event of type \(EventJSON.quote(type))",
                    close.isEmpty ? "tally info lists the types it has" : "did you mean \(close.map(EventJSON.quote).joined(separator: " or "))?")
        }
        return nil
    }

    func query(_ log: EventLog, backward: Bool) throws -> ReadQuery {
        let selection: ReadQuery.Selection = stream.map { .stream($0) } ?? type.map { .type($0) } ?? .all
        var until = untilPosition
        if let asOf, let time = Timestamp(iso8601: asOf) {
            until = try log.withSnapshot { try $0.position(atOrBefore: time) }
        }
        var first: UInt64?
        if let since, let time = Timestamp(iso8601: since) {
            // The first position recorded at or after `time`: recorded-at never decreases along the log.
            first = try log.withSnapshot { try $0.position(atOrBefore: Timestamp(microsecondsSinceEpoch: time.microsecondsSinceEpoch - 1)) } + 1
        }
        return ReadQuery(selection, from: from, backward: backward, limit: limit, untilPosition: until, sincePosition: first)
    }
}

struct Read: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print events as JSON Lines.",
        discussion: """
            One JSON object per line: position, id, stream, version, type, schemaVersion, recordedAt, actor, \
            correlationId, causationId, metadata, data and hash. Ready for jq and DuckDB.

            Examples:
              tally read --limit 10
              tally read --stream voucher-7
              tally read --type VoucherRedeemed --as-of 2026-11-22T12:00:00Z | jq .data
              tally read --since 2026-11-22T09:00:00Z --as-of 2026-11-22T10:00:00Z
              tally read --backward --limit 1
              tally read > events.jsonl && duckdb -c "select type, count(*) from 'events.jsonl' group by type"
            """)

    @OptionGroup var store: StoreOptions
    @OptionGroup var selection: SelectionOptions
    @Flag(help: "Newest first.") var backward = false

    func run() throws {
        let log = try store.open(readOnly: true)
        var reader = log.read(try selection.query(log, backward: backward))
        let output = OutputBuffer()
        let vault = selection.sealed ? nil : store.vault
        var printed = 0
        try reader.forEach { event in
            printed += 1
            try output.line { EventJSON.write(event, vault: vault, into: &$0) }
        }
        try output.flush()
        if printed == 0, let note = try selection.nothingNamed(log) {
            writeStandardError("note: \(note.what)\(note.hint.map { " (\($0))" } ?? "")\n")
        }
    }
}

struct Follow: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print events as JSON Lines, then keep printing new ones as they are appended.",
        discussion: """
            Like read, then waits for new events, also those appended by other processes, until \
            interrupted or --limit events were printed. With --until-position (or --as-of a past \
            moment) it ends once it has printed the log up to there, waiting for a position the log \
            has not reached yet.

            Example:
              tally follow --type PaymentSucceeded --from 1000
            """)

    @OptionGroup var store: StoreOptions
    @OptionGroup var selection: SelectionOptions

    func validate() throws {
        // The log as it stood at a moment still to come is not known yet: it would be taken as it stands now.
        if let asOf = selection.asOf, let time = Timestamp(iso8601: asOf), time > SystemClock().now() {
            throw ValidationError("--as-of \"\(asOf)\" is in the future: follow without it, or up to a position with --until-position")
        }
    }

    func run() throws {
        let log = try store.open(readOnly: true)
        let query = try selection.query(log, backward: false)
        let vault = selection.sealed ? nil : store.vault
        // A misspelt type or stream would wait in silence forever: say it is not in the log yet.
        if let note = try selection.nothingNamed(log) {
            writeStandardError("note: \(note.what) yet\(note.hint.map { " (\($0))" } ?? ""); waiting for one\n")
        }
        try log.follow(query) { event in
            let line = EventJSON.line(event, vault: vault) + "\n"
            try writeStandardOutput(line)
            return true
        }
    }
}
