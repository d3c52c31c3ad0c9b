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

    /// JSON given on the command line or standard input, checked as RFC 8259 writes it before
    /// Foundation reads it: Foundation also takes what other readers of the same file (jq, DuckDB)
    /// refuse, such as a comma before a closing brace. A mistake is named by its byte and what comes
    /// before it, so a long line can be mended.
    static func value(_ text: String, place: String) throws -> Any {
        var bytes = text
        do {
            _ = try bytes.withUTF8 { try JSONView(document: UnsafeRawBufferPointer($0)) }
        } catch JSONViewError.malformed(_, let offset) {
            let utf8 = Array(text.utf8)
            let before = String(decoding: utf8[max(0, offset - 24)..<min(offset, utf8.count)], as: UTF8.self)
            let at = offset >= utf8.count ? "the end" : "byte \(offset + 1) of \(utf8.count)"
            throw CLIError("\(place)malformed JSON at \(at)\(offset == 0 ? "" : ", after \"\(offset > 24 ? "…" : "")\(before)\"")")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
            throw CLIError("\(place)malformed JSON")
        }
        return object
    }

    static func parse(line: String, number: Int?, ids: EventIDGenerator) throws -> Input {
        let place = number.map { "line \($0): " } ?? ""
        let object = try value(line, place: place)
        guard let fields = object as? [String: Any] else { throw CLIError("\(place)an event must be a JSON object") }
        let known: Set<String> = ["stream", "type", "data", "id", "schemaVersion", "actor", "correlationId", "causationId", "metadata", "expectedVersion"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw CLIError("\(place)unknown field \"\(unknown)\" (fields: \(known.sorted().joined(separator: ", ")))")
        }
        func string(_ name: String, required: Bool) throws -> String? {
            guard let value = fields[name], !(value is NSNull) else {
                if required { throw CLIError("\(place)missing field \"\(name)\"") }
                return nil
            }
            guard let text = value as? String else { throw CLIError("\(place)field \"\(name)\" must be a string") }
            return text
        }
        func uuid(_ name: String) throws -> UUID? {
            guard let text = try string(name, required: false) else { return nil }
            guard let id = UUID(uuidString: text) else { throw CLIError("\(place)field \"\(name)\" must be a UUID, not \"\(text)\"") }
            return id
        }
        let stream = try string("stream", required: true)!
        let type = try string("type", required: true)!
        guard let data = fields["data"] else { throw CLIError("\(place)missing field \"data\"") }
        var event = ProposedEvent(id: try uuid("id") ?? ids.next(), stream: stream, type: type,
                                  payload: try canonical(data, place: place, field: "data"))
        event.actor = try string("actor", required: false) ?? ""
        event.correlationID = try uuid("correlationId")
        event.causationID = try uuid("causationId")
        if let metadata = fields["metadata"], !(metadata is NSNull) {
            guard metadata is [String: Any] else { throw CLIError("\(place)field \"metadata\" must be a JSON object") }
            event.metadata = try canonical(metadata, place: place, field: "metadata")
        }
        if let version = fields["schemaVersion"] {
            guard let number = version as? NSNumber, let value = UInt16(exactly: number.doubleValue), value >= 1, !(version is Bool) else {
                throw CLIError("\(place)field \"schemaVersion\" must be a whole number from 1 to \(UInt16.max)")
            }
            event.schemaVersion = value
        }
        var expected: ExpectedVersion?
        if let value = fields["expectedVersion"] {
            if let text = value as? String {
                expected = try parseExpectedVersion(text, place: place)
            } else if let number = value as? NSNumber, let version = UInt64(exactly: number.doubleValue) {
                expected = .exact(version)
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

    static func canonical(_ value: Any, place: String, field: String) throws -> Data {
        guard JSONSerialization.isValidJSONObject([value]) else { throw CLIError("\(place)field \"\(field)\" is not valid JSON") }
        return try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
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
