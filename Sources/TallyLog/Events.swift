import Foundation
import TallyMerkle

/// A SHA-256 digest, re-exported so users of the log need not import TallyMerkle.
public typealias Hash = TallyMerkle.Hash

/// The stream version an append expects to find. Checked inside the writer's transaction, so the
/// check sees every append committed before it, from any process.
public enum ExpectedVersion: Sendable, Hashable, CustomStringConvertible {
    /// No check.
    case any
    /// The stream must not exist yet (its version is 0).
    case noStream
    /// The stream must have at least one event.
    case streamExists
    /// The stream's current version must be exactly this (0 means no stream).
    case exact(UInt64)

    public func admits(_ current: UInt64) -> Bool {
        switch self {
        case .any: true
        case .noStream: current == 0
        case .streamExists: current > 0
        case .exact(let version): current == version
        }
    }

    public var description: String {
        switch self {
        case .any: "any"
        case .noStream: "no stream"
        case .streamExists: "stream exists"
        case .exact(let version): String(version)
        }
    }
}

/// An event a caller wants appended. Position, version, time and hash are assigned by the log.
public struct ProposedEvent: Sendable, Hashable {
    /// Idempotency key: appending an event whose id is in the log, with the same content, is a no-op.
    public var id: UUID
    public var stream: String
    public var type: String
    public var schemaVersion: UInt16
    public var actor: String
    public var correlationID: UUID?
    public var causationID: UUID?
    /// A JSON object, or empty.
    public var metadata: Data
    public var payload: Data

    public init(id: UUID, stream: String, type: String, schemaVersion: UInt16 = 1, actor: String = "",
                correlationID: UUID? = nil, causationID: UUID? = nil, metadata: Data = Data(), payload: Data) {
        self.id = id
        self.stream = stream
        self.type = type
        self.schemaVersion = schemaVersion
        self.actor = actor
        self.correlationID = correlationID
        self.causationID = causationID
        self.metadata = metadata
        self.payload = payload
    }
}

/// A batch for one append call: its events in order, and what each stream's version must be before it.
public struct AppendRequest: Sendable {
    public var events: [ProposedEvent]
    /// Streams not named here expect `.any`.
    public var expectations: [String: ExpectedVersion]

    public init(events: [ProposedEvent], expectations: [String: ExpectedVersion] = [:]) {
        self.events = events
        self.expectations = expectations
    }

    /// A batch for one stream.
    public init(stream: String, expected: ExpectedVersion = .any, events: [ProposedEvent]) {
        self.events = events
        self.expectations = [stream: expected]
    }
}

/// What an append did.
public struct AppendResult: Sendable, Equatable {
    /// The position of each event of the request, in order.
    public var positions: [UInt64]
    /// The stream version of each event of the request, in order.
    public var versions: [UInt64]
    /// The stream of each event of the request, in order.
    public var streams: [String]
    /// True when every event was already in the log with the same content: nothing was written.
    public var wasAlreadyAppended: Bool

    /// Each stream's version after the append (for a repeated append, its events' last version).
    public var streamVersions: [String: UInt64] {
        var result: [String: UInt64] = [:]
        for (stream, version) in zip(streams, versions) { result[stream] = max(result[stream] ?? 0, version) }
        return result
    }
}

/// An event as stored, decoded.
public struct RecordedEvent: Sendable, Hashable {
    public var position: UInt64
    public var id: UUID
    public var stream: String
    /// 1 for a stream's first event.
    public var version: UInt64
    public var type: String
    public var schemaVersion: UInt16
    public var recordedAt: Timestamp
    public var actor: String
    public var correlationID: UUID?
    public var causationID: UUID?
    /// Read through an `EventReader`, `metadata` and `payload` are slices of one buffer that 64 events
    /// decoded together share (one allocation for them all, not two per event): as with any `Data`
    /// slice, index them from `startIndex`, not 0; an event kept keeps those 64 events' bytes, so copy
    /// the payload of one kept for long out of a long read.
    public var metadata: Data
    public var payload: Data
    /// The record's hash: its Merkle leaf hash, chained to the previous record's (see `RecordCodec`).
    public var hash: Hash

    /// The same content as `proposed`: what idempotent re-appends compare. Time, position, version and
    /// hash are the log's, not the caller's, so they are left out.
    public func hasSameContent(as proposed: ProposedEvent) -> Bool {
        // Text by its bytes, as the log stores it: Swift's == would take canonical equivalents as one.
        id == proposed.id && stream.utf8.elementsEqual(proposed.stream.utf8) && type.utf8.elementsEqual(proposed.type.utf8)
            && schemaVersion == proposed.schemaVersion && actor.utf8.elementsEqual(proposed.actor.utf8)
            && correlationID == proposed.correlationID && causationID == proposed.causationID
            && metadata == proposed.metadata && payload == proposed.payload
    }
}
