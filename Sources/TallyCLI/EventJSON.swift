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

    static func parse(line: String, number: Int?, ids: EventIDGenerator) throws -> Input {
        let place = number.map { "line \($0): " } ?? ""
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed]) else {
            throw CLIError("\(place)malformed JSON")
        }
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
        var bytes: [UInt8] = []
        write(event, vault: vault, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `line(_:vault:)`, appended to `out` as UTF-8 without the newline. Written byte by byte: `tally
    /// read` writes one per event, and building them as interpolated strings cost more than reading.
    static func write(_ event: RecordedEvent, vault: (any PersonalDataVault)?, into out: inout [UInt8]) {
        var payload = event.payload
        if let vault, PersonalData.isPersonal(event.type), let opened = try? PersonalData.reveal(type: event.type, payload: payload, vault: vault) {
            payload = opened
        }
        out.append(ascii: "{\"position\":"); out.append(decimal: event.position)
        out.append(ascii: ",\"id\":"); out.append(quotedUUID: event.id)
        out.append(ascii: ",\"stream\":"); out.append(quoted: event.stream)
        out.append(ascii: ",\"version\":"); out.append(decimal: event.version)
        out.append(ascii: ",\"type\":"); out.append(quoted: event.type)
        out.append(ascii: ",\"schemaVersion\":"); out.append(decimal: UInt64(event.schemaVersion))
        out.append(ascii: ",\"recordedAt\":\""); out.append(contentsOf: event.recordedAt.iso8601.utf8); out.append(UInt8(ascii: "\""))
        out.append(ascii: ",\"actor\":"); out.append(quoted: event.actor)
        if let correlation = event.correlationID { out.append(ascii: ",\"correlationId\":"); out.append(quotedUUID: correlation) }
        if let causation = event.causationID { out.append(ascii: ",\"causationId\":"); out.append(quotedUUID: causation) }
        if !event.metadata.isEmpty {
            if !appendJSON(event.metadata, to: &out) {
                out.append(ascii: ",\"metadataBase64\":\""); out.append(contentsOf: event.metadata.base64EncodedString().utf8); out.append(UInt8(ascii: "\""))
            }
        }
        if !appendJSON(payload, to: &out, field: ",\"data\":") {
            out.append(ascii: ",\"dataBase64\":\""); out.append(contentsOf: payload.base64EncodedString().utf8); out.append(UInt8(ascii: "\""))
        }
        out.append(ascii: ",\"hash\":\""); out.append(hex: event.hash.bytes); out.append(ascii: "\"}")
    }

    /// Appends `field` and `data` if `data` is JSON (`jsonText`'s rule); false, appending nothing, if not.
    private static func appendJSON(_ data: Data, to out: inout [UInt8], field: StaticString = ",\"metadata\":") -> Bool {
        data.withUnsafeBytes { bytes in
            guard (try? JSONView(document: bytes)) != nil else { return false }
            let isLineBreak = { (byte: UInt8) in byte == 0x0A || byte == 0x0D }
            if bytes.allSatisfy({ $0 < 0x80 && !isLineBreak($0) }) {
                out.append(ascii: field)
                out.append(contentsOf: bytes)
                return true
            }
            let kept = bytes.filter { !isLineBreak($0) }
            guard String(validating: kept, as: UTF8.self) != nil else { return false }
            out.append(ascii: field)
            out.append(contentsOf: kept)
            return true
        }
    }

    static func quote(_ text: String) -> String { JSONView.quoted(text) }
}

extension [UInt8] {
    fileprivate static let hexDigits = Array("0123456789abcdef".utf8)

    mutating func append(ascii text: StaticString) {
        text.withUTF8Buffer { append(contentsOf: $0) }
    }

    mutating func append(decimal value: UInt64) {
        let start = count
        var rest = value
        repeat {
            append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        self[start...].reverse()
    }

    mutating func append(hex bytes: some Sequence<UInt8>) {
        for byte in bytes {
            append(Self.hexDigits[Int(byte >> 4)])
            append(Self.hexDigits[Int(byte & 0x0f)])
        }
    }

    /// A UUID in lowercase 8-4-4-4-12 form, in quotes.
    mutating func append(quotedUUID id: UUID) {
        append(UInt8(ascii: "\""))
        Swift.withUnsafeBytes(of: id.uuid) { raw in
            for (index, byte) in raw.enumerated() {
                if index == 4 || index == 6 || index == 8 || index == 10 { append(UInt8(ascii: "-")) }
                append(Self.hexDigits[Int(byte >> 4)])
                append(Self.hexDigits[Int(byte & 0x0f)])
            }
        }
        append(UInt8(ascii: "\""))
    }

    /// `text` as a JSON string literal, escaped as `JSONView.quoted` escapes it.
    mutating func append(quoted text: String) {
        append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): append(ascii: "\\\"")
            case UInt8(ascii: "\\"): append(ascii: "\\\\")
            case UInt8(ascii: "\n"): append(ascii: "\\n")
            case UInt8(ascii: "\r"): append(ascii: "\\r")
            case UInt8(ascii: "\t"): append(ascii: "\\t")
            case 0..<0x20:
                append(ascii: "\\u00")
                append(Self.hexDigits[Int(byte >> 4)])
                append(Self.hexDigits[Int(byte & 0x0f)])
            default: append(byte)
            }
        }
        append(UInt8(ascii: "\""))
    }
}
