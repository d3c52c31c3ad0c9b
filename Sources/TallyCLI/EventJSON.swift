import Foundation
import TallyDomain
import TallyLog

/// The JSON shapes of events on the command line: what `append` reads and what `read` writes.
///
/// Input, one object per line (or per `append` call):
///   {"stream": "cart-1", "type": "ItemAdded", "data": {…}, "id": "<uuid>", "schemaVersion": 1,
///    "actor": "member:7", "correlationId": "<uuid>", "causationId": "<uuid>", "metadata": {…},
///    "expectedVersion": "any" | "no-stream" | "exists" | N}
/// Only stream, type and data are required. Payloads are stored as canonical JSON (keys sorted, no
/// spaces), so the same content always has the same bytes: what idempotent retries compare.
enum EventJSON {
    struct Input {
        var event: ProposedEvent
        var expected: ExpectedVersion?
    }

    /// JSON given on the command line or standard input, in its canonical form (`CanonicalJSON`: keys
    /// sorted, no spaces, numbers and text exactly as given). It is checked as RFC 8259 writes it:
    /// Foundation would also take what other readers of the same file (jq, DuckDB) refuse, such as a
    /// comma before a closing brace, and it would quietly keep one of a key given twice, put U+FFFD for
    /// a byte that is not UTF-8 and round a long number. A mistake is named by its byte and what comes
    /// before it, so a long line can be mended.
    static func canonical(_ bytes: [UInt8], place: String) throws -> [UInt8] {
        do {
            return try CanonicalJSON.canonical(bytes)
        } catch {
            let offset = error.offset
            let before = String(decoding: bytes[max(0, offset - 24)..<min(offset, bytes.count)], as: UTF8.self)
            let at = offset >= bytes.count ? "the end" : "byte \(offset + 1) of \(bytes.count)"
            throw CLIError("\(place)\(error.reason) at \(at)\(offset == 0 ? "" : ", after \"\(offset > 24 ? "…" : "")\(before)\"")")
        }
    }

    static let fields: Set<String> = ["stream", "type", "data", "id", "schemaVersion", "actor", "correlationId", "causationId", "metadata", "expectedVersion"]

    static func parse(line: [UInt8], number: Int?, ids: EventIDGenerator) throws -> Input {
        let place = number.map { "line \($0): " } ?? ""
        // Read from the canonical form: keys with escapes are spelt out, and `data` is already the payload's bytes.
        let canonicalLine = try canonical(line, place: place)
        return try canonicalLine.withUnsafeBytes { bytes in
            do {
                return try input(JSONView(document: bytes), place: place, ids: ids)
            } catch let error as JSONViewError {
                throw CLIError(place + error.description)
            }
        }
    }

    private static func input(_ object: JSONView, place: String, ids: EventIDGenerator) throws -> Input {
        guard object.isObject else { throw CLIError("\(place)an event must be a JSON object") }
        if let unknown = try object.keys().sorted().first(where: { !fields.contains($0) }) {
            throw CLIError("\(place)unknown field \"\(unknown)\" (fields: \(fields.sorted().joined(separator: ", ")))")
        }
        /// The field `name`, unless it is absent or null.
        func present(_ name: String) throws -> JSONView? {
            guard let value = try object.member(name), !value.isNull else { return nil }
            return value
        }
        func string(_ name: String, required: Bool) throws -> String? {
            guard let value = try present(name) else {
                if required { throw CLIError("\(place)missing field \"\(name)\"") }
                return nil
            }
            guard value.isString else { throw CLIError("\(place)field \"\(name)\" must be a string") }
            return try value.string()
        }
        func uuid(_ name: String) throws -> UUID? {
            guard let text = try string(name, required: false) else { return nil }
            guard let id = UUID(uuidString: text) else { throw CLIError("\(place)field \"\(name)\" must be a UUID, not \"\(text)\"") }
            return id
        }
        let stream = try string("stream", required: true)!
        let type = try string("type", required: true)!
        guard let data = try object.member("data") else { throw CLIError("\(place)missing field \"data\"") }
        var event = ProposedEvent(id: try uuid("id") ?? ids.next(), stream: stream, type: type, payload: Data(data.rawBytes))
        event.actor = try string("actor", required: false) ?? ""
        event.correlationID = try uuid("correlationId")
        event.causationID = try uuid("causationId")
        if let metadata = try present("metadata") {
            guard metadata.isObject else { throw CLIError("\(place)field \"metadata\" must be a JSON object") }
            event.metadata = Data(metadata.rawBytes)
        }
        if let version = try present("schemaVersion") {
            guard let value = try? version.int64(), let schemaVersion = UInt16(exactly: value), schemaVersion >= 1 else {
                throw CLIError("\(place)field \"schemaVersion\" must be a whole number from 1 to \(UInt16.max)")
            }
            event.schemaVersion = schemaVersion
        }
        var expected: ExpectedVersion?
        if let value = try present("expectedVersion") {
            if value.isString {
                expected = try parseExpectedVersion(value.string(), place: place)
            } else if let number = try? value.int64(), number >= 0 {
                expected = .exact(UInt64(number))
            } else {
                throw CLIError("\(place)field \"expectedVersion\" must be \"any\", \"no-stream\", \"exists\" or a whole number")
            }
        }
        return Input(event: event, expected: expected)
    }

    static func parseExpectedVersion(_ text: String, place: String = "") throws -> ExpectedVersion {
        switch text {
        case "any": return .any
        case "no-stream": return .noStream
        case "exists": return .streamExists
        default:
            guard let version = UInt64(text) else {
                throw CLIError("\(place)expected version \"\(text)\" must be \"any\", \"no-stream\", \"exists\" or a whole number")
            }
            return .exact(version)
        }
    }

    /// One event as a JSON line: envelope fields in a fixed order, then the payload. A payload that is
    /// not JSON is given as base64 in "dataBase64". With a vault, sealed personal fields are opened
    /// (or read "[erased]"); the hash is always the stored record's.
    static func line(_ event: RecordedEvent, vault: (any PersonalDataVault)? = nil) -> String {
        var writer = JSONWriter()
        write(event, vault: vault, into: &writer)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    /// `line(_:vault:)`, written into `out` (without the newline).
    static func write(_ event: RecordedEvent, vault: (any PersonalDataVault)?, into out: inout JSONWriter) {
        var payload = event.payload
        if let vault, PersonalData.isPersonal(event.type), let opened = try? PersonalData.reveal(type: event.type, payload: payload, vault: vault) {
            payload = opened
        }
        out.raw("{\"position\":"); out.number(event.position)
        out.raw(",\"id\":"); out.string(event.id)
        out.raw(",\"stream\":"); out.string(event.stream)
        out.raw(",\"version\":"); out.number(event.version)
        out.raw(",\"type\":"); out.string(event.type)
        out.raw(",\"schemaVersion\":"); out.number(UInt64(event.schemaVersion))
        out.raw(",\"recordedAt\":"); out.string(event.recordedAt.iso8601)
        out.raw(",\"actor\":"); out.string(event.actor)
        if let correlation = event.correlationID { out.raw(",\"correlationId\":"); out.string(correlation) }
        if let causation = event.causationID { out.raw(",\"causationId\":"); out.string(causation) }
        if !event.metadata.isEmpty { writeJSON(event.metadata, key: ",\"metadata\":", base64Key: ",\"metadataBase64\":", into: &out) }
        writeJSON(payload, key: ",\"data\":", base64Key: ",\"dataBase64\":", into: &out)
        out.raw(",\"hash\":"); out.hexString(event.hash.bytes)
        out.raw("}")
    }

    /// `key` and `value` as JSON if it is JSON, else `base64Key` and its base64.
    private static func writeJSON(_ value: Data, key: StaticString, base64Key: StaticString, into out: inout JSONWriter) {
        value.withUnsafeBytes { bytes in
            let mark = out.bytes.count
            out.raw(key)
            if !out.json(bytes) {
                out.bytes.removeSubrange(mark...)
                out.raw(base64Key)
                out.base64String(bytes)
            }
        }
    }

    /// A JSON string literal.
    static func quote(_ text: String) -> String { JSONView.quoted(text) }
}
