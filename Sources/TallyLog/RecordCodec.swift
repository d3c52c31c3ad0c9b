import Foundation
import TallyMerkle

/// The on-disk encoding of one event. Documented byte by byte in ARCHITECTURE.md; `theRecordEncodingIsPinned`
/// pins it. Fixed-width integers are little-endian; varints are minimal LEB128. The position is not
/// stored: it is the record's key. Format 2 (written since store format 2):
///
///     0   u8      record format (2)
///     1   u8      flags: bit 0 correlation id present, bit 1 causation id present, others 0
///     2   varint  event schema version (1…65,535)
///         varint  stream version (1…`Limits.streamVersionMax`)
///         i64     recorded at, µs since the Unix epoch
///         16      event id (RFC 4122 byte order)
///         …       the body: stream id, event type, actor (each a length then UTF-8), correlation id (16)
///                 and causation id (16) if flagged, metadata and payload (each a length then bytes)
///     end-32      the record's hash
///
/// Format 1 (store format 1, still read: an upgraded store keeps its records) had the schema version
/// as a u16 and the stream version as a u64, so its body always began at byte 36.
///
/// The record's hash is both its Merkle leaf hash (RFC 9162) and its link in the hash chain, over the
/// same 109 bytes whatever the format:
///
///     hash = SHA-256(0x00 ‖ format (u8) ‖ flags (u8) ‖ schema version (u16) ‖ position (u64) ‖
///                    stream version (u64) ‖ recorded at (i64) ‖ event id ‖ SHA-256(body) ‖ previous record's hash)
///
/// Two SHA-256 blocks whatever the payload size; the previous hash of position 1 is 32 zero bytes.
/// The body is hashed separately (by the appender's thread, before the writer sees it), so the leaf
/// commits to the payload through its digest, never to plaintext directly.
public enum RecordCodec {
    /// The record format this build writes.
    public static let formatVersion: UInt8 = 2
    static let flagCorrelation: UInt8 = 1
    static let flagCausation: UInt8 = 2
    /// The most bytes before the body: format 1's fixed header (format 2's is at most 34).
    static let headerBytesMax = 36
    static let leafDataBytes = 109

    static func varintSize(_ value: Int) -> Int { varintSize(UInt64(value)) }

    static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var rest = value >> 7
        while rest != 0 { size += 1; rest >>= 7 }
        return size
    }

    /// The bytes before the body of a format 2 record.
    static func headerSize(schemaVersion: UInt16, version: UInt64) -> Int {
        2 + varintSize(UInt64(schemaVersion)) + varintSize(version) + 8 + 16
    }

    static func flags(of event: ProposedEvent) -> UInt8 {
        (event.correlationID != nil ? flagCorrelation : 0) | (event.causationID != nil ? flagCausation : 0)
    }

    /// The size of `event`'s record body (everything but the header and the hash).
    static func bodySize(_ event: ProposedEvent) -> Int {
        let (stream, type, actor) = (event.stream.utf8.count, event.type.utf8.count, event.actor.utf8.count)
        return varintSize(stream) + stream + varintSize(type) + type + varintSize(actor) + actor
            + (event.correlationID != nil ? 16 : 0) + (event.causationID != nil ? 16 : 0)
            + varintSize(event.metadata.count) + event.metadata.count + varintSize(event.payload.count) + event.payload.count
    }

    /// Writes `event`'s record body into `out`, exactly `bodySize(event)` bytes, and returns where its
    /// event type lies in it.
    static func encodeBody(_ event: ProposedEvent, into out: UnsafeMutableRawBufferPointer) -> Range<Int> {
        var (stream, type, actor) = (event.stream, event.type, event.actor)
        var writer = ByteWriter(out)
        // Native strings are contiguous UTF-8: withUTF8 hands out their bytes without a copy.
        _ = stream.withUTF8 { writer.lengthPrefixed(UnsafeRawBufferPointer($0)) }
        let typeRange = type.withUTF8 { writer.lengthPrefixed(UnsafeRawBufferPointer($0)) }
        _ = actor.withUTF8 { writer.lengthPrefixed(UnsafeRawBufferPointer($0)) }
        if let correlation = event.correlationID { writer.uuid(correlation) }
        if let causation = event.causationID { writer.uuid(causation) }
        writer.lengthPrefixed(event.metadata)
        writer.lengthPrefixed(event.payload)
        precondition(writer.offset == out.count, "record body size mismatch")
        return typeRange
    }

    /// The record's hash (see the type's documentation). `id` is the event id's 16 bytes.
    static func hash(format: UInt8, flags: UInt8, schemaVersion: UInt16, position: UInt64, version: UInt64, recordedAt: Timestamp,
                     id: UnsafeRawBufferPointer, bodyDigest: Hash, previous: Hash) -> Hash {
        withUnsafeTemporaryAllocation(byteCount: leafDataBytes, alignment: 8) { leaf in
            leaf[0] = 0  // RFC 9162 leaf prefix.
            leaf[1] = format
            leaf[2] = flags
            leaf.storeBytes(of: schemaVersion.littleEndian, toByteOffset: 3, as: UInt16.self)
            leaf.storeBytes(of: position.littleEndian, toByteOffset: 5, as: UInt64.self)
            leaf.storeBytes(of: version.littleEndian, toByteOffset: 13, as: UInt64.self)
            leaf.storeBytes(of: recordedAt.microsecondsSinceEpoch.littleEndian, toByteOffset: 21, as: Int64.self)
            UnsafeMutableRawBufferPointer(rebasing: leaf[29..<45]).copyMemory(from: id)
            bodyDigest.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: leaf[45..<77]).copyMemory(from: $0) }
            previous.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: leaf[77..<109]).copyMemory(from: $0) }
            return sha256(UnsafeRawBufferPointer(leaf))
        }
    }

    /// Writes a whole format 2 record into `out` (exactly `headerSize` + body + 32 bytes) and returns its hash.
    static func write(schemaVersion: UInt16, flags: UInt8, position: UInt64, version: UInt64, recordedAt: Timestamp, id: UUID,
                      body: UnsafeRawBufferPointer, bodyDigest: Hash, previous: Hash, into out: UnsafeMutableRawBufferPointer) -> Hash {
        var writer = ByteWriter(out)
        writer.u8(formatVersion)
        writer.u8(flags)
        writer.varint(UInt64(schemaVersion))
        writer.varint(version)
        writer.u64(UInt64(bitPattern: recordedAt.microsecondsSinceEpoch))
        let idOffset = writer.offset
        writer.uuid(id)
        writer.bytes(body)
        let hash = Self.hash(format: formatVersion, flags: flags, schemaVersion: schemaVersion, position: position, version: version,
                             recordedAt: recordedAt, id: UnsafeRawBufferPointer(rebasing: out[idOffset..<(idOffset + 16)]),
                             bodyDigest: bodyDigest, previous: previous)
        hash.withUnsafeBytes { writer.bytes($0) }
        precondition(writer.offset == out.count, "record size mismatch")
        return hash
    }
}

/// A zero-copy view of an encoded record, valid only as long as the bytes it views (inside a read
/// closure). Parsing checks the whole structure; fields are sliced, not copied.
public struct RecordView {
    public let bytes: UnsafeRawBufferPointer
    public let schemaVersion: UInt16
    public let position: UInt64
    public let version: UInt64
    public let recordedAt: Timestamp
    /// The record format, 1 or 2: what the record's hash commits to first.
    public let format: UInt8
    let flags: UInt8
    /// Where the event id lies; the body begins 16 bytes later.
    let idOffset: Int
    let streamRange: Range<Int>
    let typeRange: Range<Int>
    let actorRange: Range<Int>
    let correlationOffset: Int?
    let causationOffset: Int?
    let metadataRange: Range<Int>
    let payloadRange: Range<Int>

    /// Parses the record stored at `position`, checking everything a decoder can check without the
    /// chain: format, flags, lengths, limits.
    public init(bytes: UnsafeRawBufferPointer, position: UInt64) throws {
        var reader = ByteReader(bytes, position: position)
        func corrupt(_ reason: String) -> LogError { .corruptRecord(position: position, reason: reason) }
        guard bytes.count >= 2 + 2 + 8 + 16 + 5 + Hash.byteCount else { throw corrupt("\(bytes.count) bytes is too short for a record") }
        format = try reader.u8()
        flags = try reader.u8()
        guard flags & ~(RecordCodec.flagCorrelation | RecordCodec.flagCausation) == 0 else { throw corrupt("unknown flags \(flags)") }
        switch format {
        case 2:
            schemaVersion = UInt16(try reader.varint(max: UInt64(UInt16.max), what: "schema version"))
            version = try reader.varint(max: Limits.streamVersionMax, what: "stream version")
        case 1:
            schemaVersion = try reader.u16()
            version = try reader.u64()
        default:
            throw corrupt("unknown record format \(format)")
        }
        guard schemaVersion >= 1 else { throw corrupt("schema version 0") }
        guard version >= 1 else { throw corrupt("stream version 0") }
        self.position = position
        recordedAt = Timestamp(microsecondsSinceEpoch: Int64(bitPattern: try reader.u64()))
        idOffset = try reader.skip(16)  // event id, read on demand
        streamRange = try reader.lengthPrefixedRange(max: Limits.streamIDBytesMax, what: "stream id")
        typeRange = try reader.lengthPrefixedRange(max: Limits.eventTypeBytesMax, what: "event type")
        actorRange = try reader.lengthPrefixedRange(max: Limits.actorBytesMax, what: "actor")
        correlationOffset = flags & RecordCodec.flagCorrelation != 0 ? try reader.skip(16) : nil
        causationOffset = flags & RecordCodec.flagCausation != 0 ? try reader.skip(16) : nil
        metadataRange = try reader.lengthPrefixedRange(max: Limits.metadataBytesMax, what: "metadata")
        payloadRange = try reader.lengthPrefixedRange(max: Limits.payloadBytesMax, what: "payload")
        guard reader.offset + Hash.byteCount == bytes.count else {
            throw corrupt("\(bytes.count - reader.offset - Hash.byteCount) bytes after the payload where the hash should end the record")
        }
        self.bytes = bytes
        if streamRange.isEmpty { throw corrupt("empty stream id") }
        if typeRange.isEmpty { throw corrupt("empty event type") }
    }

    /// Stream id through payload: what the record's hash commits to through `SHA-256(body)`.
    public var bodyBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[(idOffset + 16)..<(bytes.count - Hash.byteCount)]) }
    /// The stored hash: the record's Merkle leaf hash and chain link. `verify` recomputes it.
    public var hash: Hash { Hash(loadingFrom: UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - Hash.byteCount)...])) }
    /// The hash recomputed from the bytes and the previous record's hash.
    public func computedHash(previous: Hash) -> Hash {
        RecordCodec.hash(format: format, flags: flags, schemaVersion: schemaVersion, position: position, version: version, recordedAt: recordedAt,
                         id: idBytes, bodyDigest: sha256(bodyBytes), previous: previous)
    }
    /// The event id's 16 bytes, as `event-ids` keys them.
    var idBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[idOffset..<(idOffset + 16)]) }
    public var id: UUID { loadUUID(at: idOffset) }
    public var streamBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[streamRange]) }
    public var typeBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[typeRange]) }
    public var payloadBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[payloadRange]) }
    public var metadataBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[metadataRange]) }
    public var stream: String { String(decoding: streamBytes, as: UTF8.self) }
    public var type: String { String(decoding: typeBytes, as: UTF8.self) }
    public var actor: String { String(decoding: bytes[actorRange], as: UTF8.self) }
    public var correlationID: UUID? { correlationOffset.map(loadUUID) }
    public var causationID: UUID? { causationOffset.map(loadUUID) }

    func loadUUID(at offset: Int) -> UUID {
        var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 16)])) }
        return UUID(uuid: raw)
    }

    /// A copy that outlives the bytes.
    public func decode() -> RecordedEvent {
        decoded(type: type, actor: actor, metadata: metadataBytes.isEmpty ? Data() : Data(metadataBytes), payload: Data(payloadBytes))
    }

    /// Everything but the payload and metadata (left empty for `ChunkDecoder` to fill), its type and
    /// actor taken from `recurring` when it made them before.
    func decodeHeader(_ recurring: inout RecurringText) -> RecordedEvent {
        decoded(type: recurring.text(typeBytes), actor: recurring.text(UnsafeRawBufferPointer(rebasing: bytes[actorRange])),
                metadata: Data(), payload: Data())
    }

    @inline(__always)
    private func decoded(type: String, actor: String, metadata: Data, payload: Data) -> RecordedEvent {
        RecordedEvent(position: position, id: id, stream: stream, version: version, type: type, schemaVersion: schemaVersion,
                      recordedAt: recordedAt, actor: actor, correlationID: correlationID, causationID: causationID,
                      metadata: metadata, payload: payload, hash: hash)
    }

    /// Why the stored content differs from a new event with the same id (the idempotency check), or nil.
    func difference(from event: ProposedEvent, body: UnsafeRawBufferPointer) -> String? {
        if schemaVersion != event.schemaVersion { return "with schema version \(schemaVersion), not \(event.schemaVersion)" }
        if bodyBytes.elementsEqual(body) { return nil }
        // By bytes, as stored: Swift's != would take canonical equivalents ("café" NFC and NFD) as equal.
        if !streamBytes.elementsEqual(event.stream.utf8) { return "in stream \(quoted(stream)), not \(quoted(event.stream))" }
        if !typeBytes.elementsEqual(event.type.utf8) { return "with type \(quoted(type)), not \(quoted(event.type))" }
        if !bytes[actorRange].elementsEqual(event.actor.utf8) { return "with actor \(quoted(actor)), not \(quoted(event.actor))" }
        if correlationID != event.correlationID { return "with another correlation id" }
        if causationID != event.causationID { return "with another causation id" }
        if !metadataBytes.elementsEqual(event.metadata) { return "with other metadata" }
        return "with another payload"
    }
}

struct ByteWriter {
    let out: UnsafeMutableRawBufferPointer
    var offset = 0

    init(_ out: UnsafeMutableRawBufferPointer) { self.out = out }

    @inline(__always) mutating func u8(_ value: UInt8) { out[offset] = value; offset += 1 }
    @inline(__always) mutating func u64(_ value: UInt64) { out.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self); offset += 8 }
    mutating func uuid(_ id: UUID) {
        var raw = id.uuid
        withUnsafeBytes(of: &raw) { bytes(UnsafeRawBufferPointer($0)) }
    }
    mutating func varint(_ value: Int) { varint(UInt64(value)) }
    mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 { u8(UInt8(rest & 0x7f) | 0x80); rest >>= 7 }
        u8(UInt8(rest))
    }
    mutating func bytes(_ source: UnsafeRawBufferPointer) {
        guard source.count > 0 else { return }
        UnsafeMutableRawBufferPointer(rebasing: out[offset..<(offset + source.count)]).copyMemory(from: source)
        offset += source.count
    }
    /// Writes a length and the bytes; returns where the bytes went.
    @discardableResult
    mutating func lengthPrefixed(_ source: UnsafeRawBufferPointer) -> Range<Int> {
        varint(source.count)
        let start = offset
        bytes(source)
        return start..<offset
    }
    mutating func lengthPrefixed(_ source: Data) {
        varint(source.count)
        source.withUnsafeBytes { bytes($0) }
    }
}

struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    /// The record's position, for error messages.
    let position: UInt64
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer, position: UInt64) {
        self.bytes = bytes
        self.position = position
    }

    func corrupt(_ reason: String) -> LogError { .corruptRecord(position: position, reason: reason) }

    @inline(__always) mutating func u8() throws -> UInt8 {
        guard offset < bytes.count else { throw corrupt("truncated") }
        defer { offset += 1 }
        return bytes[offset]
    }
    @inline(__always) mutating func u16() throws -> UInt16 {
        guard offset + 2 <= bytes.count else { throw corrupt("truncated") }
        defer { offset += 2 }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) mutating func u64() throws -> UInt64 {
        guard offset + 8 <= bytes.count else { throw corrupt("truncated") }
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    mutating func skip(_ count: Int) throws -> Int {
        guard offset + count <= bytes.count else { throw corrupt("truncated") }
        defer { offset += count }
        return offset
    }
    /// A minimal LEB128 length, at most `max`, followed by that many bytes.
    mutating func lengthPrefixedRange(max: Int, what: String) throws -> Range<Int> {
        let value = try varint(max: .max, what: "\(what) length")
        guard value <= UInt64(max) else { throw corrupt("the \(what) is \(value) bytes, over the limit of \(max)") }
        let start = offset
        _ = try skip(Int(value))
        return start..<offset
    }

    /// A minimal LEB128 number, at most `max`. Limits are named in bytes for lengths.
    @inline(__always)
    mutating func varint(max: UInt64, what: @autoclosure () -> String) throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try u8()
            guard shift < 63 else { throw corrupt("the \(what()) is too long") }
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 { throw corrupt("the \(what()) is not minimally encoded") }
                break
            }
            shift += 7
        }
        guard value <= max else { throw corrupt("the \(what()) is \(value), over the limit of \(max)") }
        return value
    }
}

/// Short texts that recur along a log (event types, actors), each made into a `String` once per reader
/// instead of once per event: a direct-mapped table of 16 slots keyed by the bytes themselves (up to
/// 16 of them, zero-padded, and their count), so a hit costs two loads and three comparisons. Longer
/// texts are made each time.
struct RecurringText {
    private var keys = [(low: UInt64, high: UInt64, count: Int)](repeating: (0, 0, -1), count: 16)
    private var texts = [String](repeating: "", count: 16)

    mutating func text(_ bytes: UnsafeRawBufferPointer) -> String {
        let count = bytes.count
        guard count <= 16, let base = bytes.baseAddress else { return String(decoding: bytes, as: UTF8.self) }
        var low: UInt64 = 0, high: UInt64 = 0
        withUnsafeMutableBytes(of: &low) { $0.baseAddress!.copyMemory(from: base, byteCount: min(count, 8)) }
        if count > 8 { withUnsafeMutableBytes(of: &high) { $0.baseAddress!.copyMemory(from: base + 8, byteCount: count - 8) } }
        let slot = Int(truncatingIfNeeded: ((low ^ (high &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(count)) &* 0xBF58_476D_1CE4_E5B9) >> 60)
        let key = keys[slot]
        if key.low == low && key.high == high && key.count == count { return texts[slot] }
        let text = String(decoding: bytes, as: UTF8.self)
        keys[slot] = (low, high, count)
        texts[slot] = text
        return text
    }
}
