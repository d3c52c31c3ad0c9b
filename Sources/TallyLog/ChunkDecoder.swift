import Foundation

/// Decodes the records of one chunk into events whose payloads and metadata share one allocation.
///
/// A `Data` made from a record's bytes costs two allocations (its storage object and the bytes), made
/// on the core that decodes and freed on the one that reads: for events of about 200 bytes that was
/// most of a decoded replay's time. Here the bytes are copied into one buffer as the records are read,
/// and when the chunk is complete each event's `payload` and `metadata` become slices of it. An event
/// kept keeps its chunk's buffer, as any `Data` slice keeps its base.
struct ChunkDecoder: ~Copyable {
    private(set) var events: [RecordedEvent] = []
    private var recurring = RecurringText()
    private var buffer: UnsafeMutableRawPointer?
    private var capacity = 0
    private var used = 0
    /// Where each event's metadata and payload lie in `buffer`, by its index in `events`.
    private var ranges: [(metadata: Range<Int>, payload: Range<Int>)] = []

    private let expectedEvents: Int

    init(expectedEvents: Int) {
        self.expectedEvents = expectedEvents
        events.reserveCapacity(expectedEvents)
        ranges.reserveCapacity(expectedEvents)
    }

    var count: Int { events.count }

    mutating func append(_ record: RecordView) {
        let metadata = copy(record.metadataBytes)
        let payload = copy(record.payloadBytes)
        events.append(record.decodeHeader(&recurring))
        ranges.append((metadata, payload))
    }

    /// The events, each payload and metadata a slice of the chunk's buffer (an empty one is `Data()`);
    /// the decoder is then empty, ready for the next chunk.
    mutating func finish() -> [RecordedEvent] {
        defer {
            events = []
            events.reserveCapacity(expectedEvents)
            ranges.removeAll(keepingCapacity: true)
            capacity = 0
            used = 0
        }
        guard let buffer else { return events }
        self.buffer = nil
        let block = Data(bytesNoCopy: buffer, count: used, deallocator: .free)
        events.withUnsafeMutableBufferPointer { events in
            for (index, range) in ranges.enumerated() {
                if !range.metadata.isEmpty { events[index].metadata = block[range.metadata] }
                if !range.payload.isEmpty { events[index].payload = block[range.payload] }
            }
        }
        return events
    }

    private mutating func copy(_ bytes: UnsafeRawBufferPointer) -> Range<Int> {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return used..<used }
        if used + bytes.count > capacity {
            // Doubling from 16 KiB: a chunk of 1,024 events of about 200 bytes grows five times.
            let grown = max(16 << 10, capacity * 2, used + bytes.count)
            guard let moved = realloc(buffer, grown) else { fatalError("out of memory for a chunk of \(grown) bytes") }
            buffer = moved
            capacity = grown
        }
        (buffer! + used).copyMemory(from: source, byteCount: bytes.count)
        used += bytes.count
        return (used - bytes.count)..<used
    }

    /// A decoder dropped before `finish` (a read that threw) frees its buffer.
    deinit { free(buffer) }
}
