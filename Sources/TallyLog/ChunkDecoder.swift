import Foundation

/// Decodes the records of a chunk into events whose payloads and metadata share an allocation with
/// those of the events beside them, `eventsPerBlock` at a time.
///
/// A `Data` made from a record's bytes costs two allocations (its storage object and the bytes), made
/// on the core that decodes and freed on the one that reads: for events of about 200 bytes that was
/// most of a decoded replay's time. Here the bytes are gathered in a scratch buffer as the records are
/// read; every `eventsPerBlock` events they are copied into one `Data` of their exact size, and each
/// event's `payload` and `metadata` become slices of it. An event kept keeps its block, as any `Data`
/// slice keeps its base: at most the payloads of the 63 events decoded beside it, however long the
/// read (with one block per chunk, one event kept in 1,024 kept every payload read). Blocks of 16
/// events decoded 10–15% slower; of 64, as fast as one per chunk.
struct ChunkDecoder: ~Copyable {
    static let eventsPerBlock = 64

    private var events: [RecordedEvent] = []
    private var recurring = RecurringText()
    /// The current block's bytes, reused from block to block.
    private var scratch: UnsafeMutableRawPointer?
    private var capacity = 0
    private var used = 0
    /// Where the current block's events' metadata and payloads lie in `scratch`, in order.
    private var ranges: [(metadata: Range<Int>, payload: Range<Int>)] = []
    /// The index in `events` of the current block's first event.
    private var blockStart = 0

    init(expectedEvents: Int) {
        events.reserveCapacity(expectedEvents)
        ranges.reserveCapacity(Self.eventsPerBlock)
    }

    deinit { free(scratch) }

    var count: Int { events.count }

    mutating func append(_ record: RecordView) {
        let metadata = copy(record.metadataBytes)
        let payload = copy(record.payloadBytes)
        events.append(record.decodeHeader(&recurring))
        ranges.append((metadata, payload))
        if ranges.count == Self.eventsPerBlock { sealBlock() }
    }

    /// The events, each payload and metadata a slice of its block (an empty one is `Data()`).
    consuming func finish() -> [RecordedEvent] {
        sealBlock()
        return events
    }

    /// Gives the current block's events their bytes, as slices of one `Data` of the block's size.
    private mutating func sealBlock() {
        defer {
            blockStart = events.count
            ranges.removeAll(keepingCapacity: true)
            used = 0
        }
        guard used > 0, let scratch else { return }
        let block = Data(bytes: scratch, count: used)
        let blockStart = self.blockStart
        events.withUnsafeMutableBufferPointer { events in
            for (offset, range) in ranges.enumerated() {
                if !range.metadata.isEmpty { events[blockStart + offset].metadata = block[range.metadata] }
                if !range.payload.isEmpty { events[blockStart + offset].payload = block[range.payload] }
            }
        }
    }

    private mutating func copy(_ bytes: UnsafeRawBufferPointer) -> Range<Int> {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return used..<used }
        if used + bytes.count > capacity {
            let grown = max(8 << 10, capacity * 2, used + bytes.count)
            guard let moved = realloc(scratch, grown) else { fatalError("out of memory for a block of \(grown) bytes") }
            scratch = moved
            capacity = grown
        }
        (scratch! + used).copyMemory(from: source, byteCount: bytes.count)
        used += bytes.count
        return (used - bytes.count)..<used
    }
}
