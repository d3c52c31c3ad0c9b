import Foundation
import TallyMerkle

/// The on-disk encoding of one event (record format 1). Documented byte by byte in ARCHITECTURE.md;
/// `theRecordEncodingIsPinned` pins it. Fixed-width integers are little-endian; lengths are minimal
/// LEB128. The position is not stored: it is the record's key.
///
///     0   u8   record format (1)
///     1   u8   flags: bit 0 correlation id present, bit 1 causation id present, others 0
///     2   u16  event schema version (≥ 1)
///     4   u64  stream version
///     12  i64  recorded at, µs since the Unix epoch
///     20  16   event id (RFC 4122 byte order)
///     36  …    the body: stream id, event type, actor (each a length then UTF-8), correlation id (16)
///              and causation id (16) if flagged, metadata and payload (each a length then bytes)
///     end-32   the record's hash
///
/// The record's hash is both its Merkle leaf hash (RFC 9162) and its link in the hash chain:
///
///     hash = SHA-256(0x00 ‖ format ‖ flags ‖ schema version ‖ position (u64 LE) ‖ stream version ‖
///                    recorded at ‖ event id ‖ SHA-256(body) ‖ previous record's hash)
///
/// 109 bytes, two SHA-256 blocks, whatever the payload size; the previous hash of position 1 is 32
/// zero bytes. The body is hashed separately (by the appender's thread, before the writer sees it),
/// so the leaf commits to the payload through its digest, never to plaintext directly.
public enum RecordCodec {
    public static let formatVersion: UInt8 = 1
    static let flagCorrelation: UInt8 = 1
    static let flagCausation: UInt8 = 2
    /// Format, flags, schema version, stream version, recorded-at, event id.
    static let headerBytes = 36
    static let leafDataBytes = 109

    static func varintSize(_ value: Int) -> Int {
        var size = 1
        var rest = UInt64(value) >> 7
        while rest != 0 { size += 1; rest >>= 7 }
        return size
    }

    static func flags(of event: ProposedEvent) -> UInt8 {
        (event.correlationID != nil ? flagCorrelation : 0) | (event.causationID != nil ? flagCausation : 0)
    }

    /// The body of `event`'s record (everything but the header and the hash), and where its stream id and
    /// event type lie in it.
    static func encodeBody(_ event: ProposedEvent) -> (body: [UInt8], stream: Range<Int>, type: Range<Int>) {
        var (stream, type, actor) = (event.stream, event.type, event.actor)
        let size = varintSize(stream.utf8.count) + stream.utf8.count + varintSize(type.utf8.count) + type.utf8.count
            + varintSize(actor.utf8.count) + actor.utf8.count + (event.correlationID != nil ? 16 : 0) + (event.causationID != nil ? 16 : 0)
            + varintSize(event.metadata.count) + event.metadata.count + varintSize(event.payload.count) + event.payload.count
        var streamRange = 0..<0, typeRange = 0..<0
        let body = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var writer = ByteWriter(UnsafeMutableRawBufferPointer(buffer))
            // Native strings are contiguous UTF-8: withUTF8 hands out their bytes without a copy.
            streamRange = stream.withUTF8 { writer.lengthPrefixed(UnsafeRawBufferPointer($0)) }
            typeRange = type.withUTF8 { writer.lengthPrefixed(UnsafeRawBufferPointer($0)) }
            _ = actor.withUTF8 { writer.lengthPrefixed(UnsafeRawBufferPointer($0)) }
            if let correlation = event.correlationID { writer.uuid(correlation) }
            if let causation = event.causationID { writer.uuid(causation) }
            writer.lengthPrefixed(event.metadata)
            writer.lengthPrefixed(event.payload)
            precondition(writer.offset == size, "record body size mismatch")
            count = size
        }
        return (body, streamRange, typeRange)
    }

    /// The record's hash (see the type's documentation). `header` is the record's first 36 bytes.
    static func hash(header: UnsafeRawBufferPointer, position: UInt64, bodyDigest: Hash, previous: Hash) -> Hash {
        withUnsafeTemporaryAllocation(byteCount: leafDataBytes, alignment: 8) { leaf in
            leaf[0] = 0  // RFC 9162 leaf prefix.
            UnsafeMutableRawBufferPointer(rebasing: leaf[1..<5]).copyMemory(from: UnsafeRawBufferPointer(rebasing: header[0..<4]))
            leaf.storeBytes(of: position.littleEndian, toByteOffset: 5, as: UInt64.self)
            UnsafeMutableRawBufferPointer(rebasing: leaf[13..<45]).copyMemory(from: UnsafeRawBufferPointer(rebasing: header[4..<36]))
            bodyDigest.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: leaf[45..<77]).copyMemory(from: $0) }
            previous.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: leaf[77..<109]).copyMemory(from: $0) }
            return sha256(UnsafeRawBufferPointer(leaf))
        }
    }

    /// Writes a whole record into `out` (exactly header + body + 32 bytes) and returns its hash.
    static func write(schemaVersion: UInt16, flags: UInt8, position: UInt64, version: UInt64, recordedAt: Timestamp, id: UUID,
                      body: [UInt8], bodyDigest: Hash, previous: Hash, into out: UnsafeMutableRawBufferPointer) -> Hash {
        var writer = ByteWriter(out)
        writer.u8(formatVersion)
        writer.u8(flags)
        writer.u16(schemaVersion)
        writer.u64(version)
        writer.u64(UInt64(bitPattern: recordedAt.microsecondsSinceEpoch))
        writer.uuid(id)
        body.withUnsafeBytes { writer.bytes($0) }
        let hash = Self.hash(header: UnsafeRawBufferPointer(rebasing: out[0..<headerBytes]), position: position, bodyDigest: bodyDigest, previous: previous)
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
    let flags: UInt8
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
        guard bytes.count >= RecordCodec.headerBytes + 5 + Hash.byteCount else { throw corrupt("\(bytes.count) bytes is too short for a record") }
        let format = try reader.u8()
        guard format == RecordCodec.formatVersion else { throw corrupt("unknown record format \(format)") }
        flags = try reader.u8()
        guard flags & ~(RecordCodec.flagCorrelation | RecordCodec.flagCausation) == 0 else { throw corrupt("unknown flags \(flags)") }
        schemaVersion = try reader.u16()
        guard schemaVersion >= 1 else { throw corrupt("schema version 0") }
        self.position = position
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
            throw corrupt("\(bytes.count - reader.offset - Hash.byteCount) bytes after the payload where the hash should end the record")
        }
        self.bytes = bytes
        if streamRange.isEmpty { throw corrupt("empty stream id") }
        if typeRange.isEmpty { throw corrupt("empty event type") }
    }

    /// Stream id through payload: what the record's hash commits to through `SHA-256(body)`.
    public var bodyBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[RecordCodec.headerBytes..<(bytes.count - Hash.byteCount)]) }
    public var headerBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[0..<RecordCodec.headerBytes]) }
    /// The stored hash: the record's Merkle leaf hash and chain link. `verify` recomputes it.
    public var hash: Hash { Hash(loadingFrom: UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - Hash.byteCount)...])) }
    /// The hash recomputed from the bytes and the previous record's hash.
    public func computedHash(previous: Hash) -> Hash {
        RecordCodec.hash(header: headerBytes, position: position, bodyDigest: sha256(bodyBytes), previous: previous)
    }
    public var id: UUID { loadUUID(at: 20) }
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
            metadata: metadataBytes.isEmpty ? Data() : Data(metadataBytes), payload: Data(payloadBytes), hash: hash)
    }

    /// Why the stored content differs from a new event with the same id (the idempotency check), or nil.
    func difference(from prepared: PreparedEvent) -> String? {
        let event = prepared.event
        if schemaVersion != event.schemaVersion { return "with schema version \(schemaVersion), not \(event.schemaVersion)" }
        if bodyBytes.elementsEqual(prepared.body) { return nil }
        if stream != event.stream { return "in stream \(quoted(stream)), not \(quoted(event.stream))" }
        if type != event.type { return "with type \(quoted(type)), not \(quoted(event.type))" }
        if actor != event.actor { return "with actor \(quoted(actor)), not \(quoted(event.actor))" }
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
