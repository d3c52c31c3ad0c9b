import Foundation
import TallyMerkle

/// The on-disk encoding of one event (record format 1). Documented byte by byte in ARCHITECTURE.md;
/// `RecordCodecTests` pins it. Fixed-width integers are little-endian; lengths are minimal LEB128.
///
///     0   u8   record format (1)
///     1   u8   flags: bit 0 correlation id present, bit 1 causation id present, others 0
///     2   u16  event schema version (≥ 1)
///     4   u64  position
///     12  u64  stream version
///     20  i64  recorded at, µs since the Unix epoch
///     28  16   event id (RFC 4122 byte order)
///     44  …    stream id, event type, actor: each a length then UTF-8 bytes
///          …    correlation id (16), causation id (16), each only if its flag is set
///          …    metadata, payload: each a length then bytes
///     end-32   chain hash: SHA-256(previous chain hash ‖ leaf hash)
///
/// The canonical bytes of a record are all but the chain hash; its Merkle leaf hash is
/// SHA-256(0x00 ‖ canonical bytes) (RFC 9162).
public enum RecordCodec {
    public static let formatVersion: UInt8 = 1
    static let flagCorrelation: UInt8 = 1
    static let flagCausation: UInt8 = 2
    static let fixedHeaderBytes = 44

    /// Encoded size of `event`, chain hash included.
    static func encodedSize(streamBytes: Int, typeBytes: Int, actorBytes: Int, hasCorrelation: Bool, hasCausation: Bool,
                            metadataBytes: Int, payloadBytes: Int) -> Int {
        fixedHeaderBytes + varintSize(streamBytes) + streamBytes + varintSize(typeBytes) + typeBytes
            + varintSize(actorBytes) + actorBytes + (hasCorrelation ? 16 : 0) + (hasCausation ? 16 : 0)
            + varintSize(metadataBytes) + metadataBytes + varintSize(payloadBytes) + payloadBytes + Hash.byteCount
    }

    static func varintSize(_ value: Int) -> Int {
        var size = 1
        var rest = UInt64(value) >> 7
        while rest != 0 { size += 1; rest >>= 7 }
        return size
    }

    /// The fields a record is encoded from; the log fills in what callers do not choose.
    struct Fields {
        var position: UInt64
        var version: UInt64
        var recordedAt: Timestamp
        var event: ProposedEvent
        var streamUTF8: ContiguousArray<UInt8>
        var typeUTF8: ContiguousArray<UInt8>
        var actorUTF8: ContiguousArray<UInt8>
    }

    static func size(of fields: Fields) -> Int {
        encodedSize(streamBytes: fields.streamUTF8.count, typeBytes: fields.typeUTF8.count, actorBytes: fields.actorUTF8.count,
                    hasCorrelation: fields.event.correlationID != nil, hasCausation: fields.event.causationID != nil,
                    metadataBytes: fields.event.metadata.count, payloadBytes: fields.event.payload.count)
    }

    /// Writes `fields` into `out` (exactly `size(of:)` bytes) and returns the leaf hash; the caller then
    /// stores the chain hash in the last 32 bytes with `storeChainHash`.
    static func encode(_ fields: Fields, into out: UnsafeMutableRawBufferPointer) -> Hash {
        var writer = ByteWriter(out)
        let event = fields.event
        writer.u8(formatVersion)
        writer.u8((event.correlationID != nil ? flagCorrelation : 0) | (event.causationID != nil ? flagCausation : 0))
        writer.u16(event.schemaVersion)
        writer.u64(fields.position)
        writer.u64(fields.version)
        writer.u64(UInt64(bitPattern: fields.recordedAt.microsecondsSinceEpoch))
        writer.uuid(event.id)
        writer.lengthPrefixed(fields.streamUTF8)
        writer.lengthPrefixed(fields.typeUTF8)
        writer.lengthPrefixed(fields.actorUTF8)
        if let correlation = event.correlationID { writer.uuid(correlation) }
        if let causation = event.causationID { writer.uuid(causation) }
        writer.lengthPrefixed(event.metadata)
        writer.lengthPrefixed(event.payload)
        precondition(writer.offset == out.count - Hash.byteCount, "record size mismatch")
        return MerkleHash.leaf(UnsafeRawBufferPointer(rebasing: out[0..<writer.offset]))
    }

    static func storeChainHash(_ hash: Hash, into out: UnsafeMutableRawBufferPointer) {
        hash.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: out[(out.count - Hash.byteCount)...]).copyMemory(from: $0) }
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
    let flags: UInt8
    let streamRange: Range<Int>
    let typeRange: Range<Int>
    let actorRange: Range<Int>
    let correlationOffset: Int?
    let causationOffset: Int?
    let metadataRange: Range<Int>
    let payloadRange: Range<Int>

    /// Parses `bytes`, checking everything a decoder can check without the chain: format, flags,
    /// lengths, limits and UTF-8. `expectedPosition`, when given, must match the stored one.
    public init(bytes: UnsafeRawBufferPointer, expectedPosition: UInt64? = nil) throws {
        let claimed = expectedPosition ?? 0
        var reader = ByteReader(bytes, position: claimed)
        func corrupt(_ reason: String) -> LogError { .corruptRecord(position: claimed, reason: reason) }
        guard bytes.count >= RecordCodec.fixedHeaderBytes + 5 + Hash.byteCount else { throw corrupt("\(bytes.count) bytes is too short for a record") }
        let format = try reader.u8()
        guard format == RecordCodec.formatVersion else { throw corrupt("unknown record format \(format)") }
        flags = try reader.u8()
        guard flags & ~(RecordCodec.flagCorrelation | RecordCodec.flagCausation) == 0 else { throw corrupt("unknown flags \(flags)") }
        schemaVersion = try reader.u16()
        guard schemaVersion >= 1 else { throw corrupt("schema version 0") }
        position = try reader.u64()
        if let expectedPosition, position != expectedPosition {
            throw LogError.corruptRecord(position: expectedPosition, reason: "it claims position \(position)")
        }
        version = try reader.u64()
        guard version >= 1 else { throw corrupt("stream version 0") }
        recordedAt = Timestamp(microsecondsSinceEpoch: Int64(bitPattern: try reader.u64()))
        reader.offset += 16  // event id, read on demand
        streamRange = try reader.lengthPrefixedRange(max: Limits.streamIDBytesMax, what: "stream id")
        typeRange = try reader.lengthPrefixedRange(max: Limits.eventTypeBytesMax, what: "event type")
        actorRange = try reader.lengthPrefixedRange(max: Limits.actorBytesMax, what: "actor")
        correlationOffset = flags & RecordCodec.flagCorrelation != 0 ? try reader.skip(16) : nil
        causationOffset = flags & RecordCodec.flagCausation != 0 ? try reader.skip(16) : nil
        metadataRange = try reader.lengthPrefixedRange(max: Limits.metadataBytesMax, what: "metadata")
        payloadRange = try reader.lengthPrefixedRange(max: Limits.payloadBytesMax, what: "payload")
        guard reader.offset + Hash.byteCount == bytes.count else {
            throw corrupt("\(bytes.count - reader.offset - Hash.byteCount) bytes after the payload where the chain hash should end the record")
        }
        self.bytes = bytes
        if streamRange.isEmpty { throw corrupt("empty stream id") }
        if typeRange.isEmpty { throw corrupt("empty event type") }
    }

    public var canonicalBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - Hash.byteCount)]) }
    public var leafHash: Hash { MerkleHash.leaf(canonicalBytes) }
    public var chainHash: Hash { Hash(loadingFrom: UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - Hash.byteCount)...])) }
    public var id: UUID { loadUUID(at: 28) }
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
        RecordedEvent(
            position: position, id: id, stream: stream, version: version, type: type, schemaVersion: schemaVersion,
            recordedAt: recordedAt, actor: actor, correlationID: correlationID, causationID: causationID,
            metadata: Data(metadataBytes), payload: Data(payloadBytes), chainHash: chainHash)
    }

    /// Whether the stored content equals `event` (the idempotency check), without decoding.
    func hasSameContent(as event: ProposedEvent, streamUTF8: ContiguousArray<UInt8>, typeUTF8: ContiguousArray<UInt8>,
                        actorUTF8: ContiguousArray<UInt8>) -> String? {
        if !streamBytes.elementsEqual(streamUTF8) { return "in stream \(quoted(stream)), not \(quoted(event.stream))" }
        if !typeBytes.elementsEqual(typeUTF8) { return "with type \(quoted(type)), not \(quoted(event.type))" }
        if schemaVersion != event.schemaVersion { return "with schema version \(schemaVersion), not \(event.schemaVersion)" }
        if !bytes[actorRange].elementsEqual(actorUTF8) { return "with actor \(quoted(actor)), not \(quoted(event.actor))" }
        if correlationID != event.correlationID { return "with another correlation id" }
        if causationID != event.causationID { return "with another causation id" }
        if !metadataBytes.elementsEqual(event.metadata) { return "with other metadata" }
        if !payloadBytes.elementsEqual(event.payload) { return "with another payload" }
        return nil
    }
}

struct ByteWriter {
    let out: UnsafeMutableRawBufferPointer
    var offset = 0

    init(_ out: UnsafeMutableRawBufferPointer) { self.out = out }

    @inline(__always) mutating func u8(_ value: UInt8) { out[offset] = value; offset += 1 }
    @inline(__always) mutating func u16(_ value: UInt16) { out.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt16.self); offset += 2 }
    @inline(__always) mutating func u64(_ value: UInt64) { out.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self); offset += 8 }
    mutating func uuid(_ id: UUID) {
        var raw = id.uuid
        withUnsafeBytes(of: &raw) { bytes(UnsafeRawBufferPointer($0)) }
    }
    mutating func varint(_ value: Int) {
        var rest = UInt64(value)
        while rest >= 0x80 { u8(UInt8(rest & 0x7f) | 0x80); rest >>= 7 }
        u8(UInt8(rest))
    }
    mutating func bytes(_ source: UnsafeRawBufferPointer) {
        guard source.count > 0 else { return }
        UnsafeMutableRawBufferPointer(rebasing: out[offset..<(offset + source.count)]).copyMemory(from: source)
        offset += source.count
    }
    mutating func lengthPrefixed(_ source: ContiguousArray<UInt8>) {
        varint(source.count)
        source.withUnsafeBytes { bytes($0) }
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
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try u8()
            guard shift < 63 else { throw corrupt("the \(what) length is too long") }
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 { throw corrupt("the \(what) length is not minimally encoded") }
                break
            }
            shift += 7
        }
        guard value <= UInt64(max) else { throw corrupt("the \(what) is \(value) bytes, over the limit of \(max)") }
        let start = offset
        _ = try skip(Int(value))
        return start..<offset
    }
}
