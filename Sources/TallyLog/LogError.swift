import Foundation

/// Why the log refused a request or a store. Each reason is its own case; every message names what
/// was wrong. A refused append wrote nothing.
public enum LogError: Error, Equatable, Sendable, CustomStringConvertible {
    // Bad requests: found before anything is written.
    case invalidStreamID(String, reason: String)
    case invalidEventType(String, reason: String)
    case invalidActor(String, reason: String)
    case invalidSchemaVersion(UInt16)
    case invalidMetadata(reason: String)
    case payloadTooLarge(eventID: UUID, bytes: Int, bytesMax: Int)
    case emptyBatch
    /// `bytes` is nil when the number of events alone is over the limit (the bytes were not counted).
    case batchTooLarge(events: Int, bytes: Int?)
    case duplicateEventIDInBatch(UUID)
    // Refused against the log's state, in the writer's transaction.
    case wrongExpectedVersion(stream: String, expected: ExpectedVersion, actual: UInt64)
    case eventIDConflict(id: UUID, position: UInt64, reason: String)
    case logFull(positionMax: UInt64)
    case streamFull(stream: String, versionMax: UInt64)
    // Stores.
    case notAStore(path: String, reason: String)
    case newerFormat(path: String, found: UInt32, supported: UInt32)
    case olderFormat(path: String, found: UInt32, supported: UInt32)
    case storeExists(path: String)
    case permissionDenied(path: String, operation: String)
    case readOnlyStore(path: String)
    case corruptRecord(position: UInt64, reason: String)
    case closed

    /// Whether the log refused one append for what it held (an event too large, a batch too big, a
    /// stream full), and will take others: the store itself is sound and open.
    public var refusesTheAppendOnly: Bool {
        switch self {
        case .invalidStreamID, .invalidEventType, .invalidActor, .invalidSchemaVersion, .invalidMetadata, .payloadTooLarge, .emptyBatch,
             .batchTooLarge, .duplicateEventIDInBatch, .wrongExpectedVersion, .eventIDConflict, .streamFull:
            true
        case .logFull, .notAStore, .newerFormat, .olderFormat, .storeExists, .permissionDenied, .readOnlyStore, .corruptRecord, .closed:
            false
        }
    }

    public var description: String {
        switch self {
        case .invalidStreamID(let id, let reason): "invalid stream id \(quoted(id)): \(reason)"
        case .invalidEventType(let type, let reason): "invalid event type \(quoted(type)): \(reason)"
        case .invalidActor(let actor, let reason): "invalid actor \(quoted(actor)): \(reason)"
        case .invalidSchemaVersion(let version): "invalid schema version \(version): it must be at least 1"
        case .invalidMetadata(let reason): "invalid metadata: \(reason)"
        case .payloadTooLarge(let id, let bytes, let max): "the payload of event \(id) is \(bytes) bytes; the limit is \(max)"
        case .emptyBatch: "an append needs at least one event"
        case .batchTooLarge(let events, let bytes):
            if let bytes {
                "the batch's \(events) events come to \(bytes) bytes as records; one append takes at most \(Limits.batchBytesMax) bytes "
                    + "(split it into several appends: each is all or nothing on its own)"
            } else {
                "the batch has \(events) events; one append takes at most \(Limits.batchEventsMax) "
                    + "(split it into several appends: each is all or nothing on its own)"
            }
        case .duplicateEventIDInBatch(let id): "event id \(id) appears twice in the batch"
        case .wrongExpectedVersion(let stream, let expected, let actual):
            "stream \(quoted(stream)) is at version \(actual), but the append expected \(expected)"
        case .eventIDConflict(let id, let position, let reason):
            "event id \(id) is already in the log at position \(position) \(reason)"
        case .logFull(let max): "the log is full: it holds at most \(max) events"
        case .streamFull(let stream, let max): "stream \(quoted(stream)) is full: a stream holds at most \(max) events"
        case .notAStore(let path, let reason): "\(path) is not a Tally store: \(reason)"
        case .newerFormat(let path, let found, let supported):
            "\(path) was written by a newer Tally (store format \(found)); this one reads formats up to \(supported)"
        case .olderFormat(let path, let found, let supported):
            "\(path) has store format \(found), and this Tally reads format \(supported): upgrade it first with `tally upgrade --store \(path)` (the events are kept as they are; the indexes are rebuilt)"
        case .storeExists(let path): "\(path) already holds a Tally store"
        case .permissionDenied(let path, let operation): "permission denied: cannot \(operation) \(path)"
        case .readOnlyStore(let path): "\(path) is open read-only: it cannot be appended to"
        case .corruptRecord(let position, let reason): "the record at position \(position) is corrupt: \(reason)"
        case .closed: "the event log is closed"
        }
    }
}

/// `text` in double quotes for a message, cut at 60 characters, with control characters, quotes and
/// backslashes escaped (`\n`, `\u{0}`, `\"`), so a name that holds them cannot break the message's line
/// or hide what it holds.
func quoted(_ text: String) -> String {
    let shown = text.count > 60 ? String(text.prefix(60)) + "…" : text
    var escaped = ""
    for scalar in shown.unicodeScalars {
        switch scalar {
        case "\n": escaped += "\\n"
        case "\t": escaped += "\\t"
        case "\r": escaped += "\\r"
        case "\"": escaped += "\\\""
        case "\\": escaped += "\\\\"
        case _ where scalar.value < 0x20 || scalar.value == 0x7f: escaped += "\\u{\(String(scalar.value, radix: 16))}"
        default: escaped.unicodeScalars.append(scalar)
        }
    }
    return "\"\(escaped)\""
}
