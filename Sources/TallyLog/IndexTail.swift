import Foundation
import TallyLMDB

/// The stream and type index entries of the events after the indexed watermark, derived from the
/// records themselves.
///
/// Writing a `stream-events` entry per event dirties a random B-tree page per event whenever the
/// streams being appended to are spread out (open carts, unredeemed vouchers): the trap that costs a
/// copy-on-write B-tree 10–20×. Instead the writer leaves the newest events unindexed and merges their
/// entries in sorted bulk every `LogOptions.indexTailEventsMax` events, moving the watermark in the same
/// transaction. Until then every reader, in any process, gets those entries from this tail: it scans
/// each record after the watermark once and keeps what it found. A query combines the B-tree (events up
/// to its snapshot's watermark) with the tail (events after it, up to its snapshot's head), so an event
/// and its index entries always become visible together, and after a crash there is nothing to repair:
/// the tail is rebuilt from the records.
final class IndexTail: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    private let lock = NSLock()
    /// Entries cover positions in (base, through].
    private var base: UInt64 = 0
    private var through: UInt64 = 0
    /// The entries, in two maps that views share: `recent` takes each newly scanned record, and is
    /// folded into `main` once it holds `recentEntriesMax`. A map a view still holds is copied before
    /// it changes, as Swift's copy-on-write would, but now a map of at most `recentEntriesMax` entries
    /// at almost every commit, and the whole tail once per fold. With one map, every commit that found
    /// views alive copied the whole tail: with 64 threads deciding commands, a quarter of the CPU.
    private var main = TailMaps()
    private var recent = TailMaps()
    private let recentEntriesMax: Int

    /// The stream of each entry, in position order from `orderStart` (position `base + 1`): when the
    /// writer merges a slice, exactly its streams' first entries are dropped. Filtering every stream's
    /// entries instead cost time in proportion to the whole tail at every merge (9% of the writer
    /// thread's samples at 1,000-event batches; dropping the slice, 6%).
    private var order: [StreamKey] = []
    private var orderStart = 0

    /// The newest watermark a view has seen. Entries are kept back to the one before it (`base`), so a
    /// snapshot begun just before a merge is still served from here: with many threads reading, each
    /// merge otherwise sent every such snapshot to scan tens of thousands of records on its own.
    private var latestWatermark: UInt64 = 0
    /// Views built apart from the shared entries (snapshots older than `base`): for tests.
    private(set) var privateBuilds = 0

    /// `recentEntriesMax`: how many records' entries the small map takes before it is folded into the
    /// main one (tests make it tiny, to fold often).
    init(recentEntriesMax: Int = 4_096) {
        self.recentEntriesMax = max(1, recentEntriesMax)
    }

    /// The entries a snapshot sees: positions in (watermark, head].
    func view(_ txn: some TransactionReading, tables: LogTables) throws -> TailView {
        let head = try tables.head(txn).position
        let watermark = try tables.indexedWatermark(txn, head: head)
        if watermark == head { return TailView(watermark: watermark, head: head, main: TailMaps.empty, recent: TailMaps.empty) }
        let shared: TailView? = try lock.withLock {
            if watermark > latestWatermark {
                let previous = latestWatermark
                latestWatermark = watermark
                if through < watermark {
                    reset(to: watermark)  // Nothing kept is of use: start at this watermark.
                } else if previous > base {
                    dropMerged(through: previous)  // Keep one merge's entries for snapshots just before it.
                }
            }
            guard watermark >= base else { return nil }
            if through < head {
                if !isKnownUniquelyReferenced(&recent) { recent = recent.copy() }
                do {
                    try Self.scan(txn, tables: tables, after: through, through: head, into: &recent.streams, &recent.types, &order)
                } catch {
                    // A record that cannot be read stopped the scan part-way, after some of its entries
                    // went in: drop them all, so the next view scans from `base` again instead of adding
                    // the same records twice. Views already handed out keep the maps they hold.
                    reset(to: base)
                    throw error
                }
                recent.entries += Int(head - through)
                through = head
                if recent.entries >= recentEntriesMax { fold() }
            }
            return TailView(watermark: watermark, head: head, main: main, recent: recent)
        }
        if let shared { return shared }
        // A snapshot older than the entries kept: built apart, outside the lock, so other readers go on.
        lock.withLock { privateBuilds += 1 }
        let own = TailMaps()  // No view holds it yet: filled in place.
        var ownOrder: [StreamKey] = []
        try Self.scan(txn, tables: tables, after: watermark, through: head, into: &own.streams, &own.types, &ownOrder)
        own.entries = Int(head - watermark)
        return TailView(watermark: watermark, head: head, main: own, recent: TailMaps.empty)
    }

    /// Moves `recent`'s entries to the end of `main`'s (they are the newer), leaving `recent` empty.
    /// With `main` empty (a process's first query scans the whole tail into `recent`), `recent` becomes
    /// `main` as it is: appending its entries one by one to an empty map took a third of the time of
    /// that first query.
    private func fold() {
        guard recent.entries > 0 else { return }
        if main.entries == 0 && main.streams.isEmpty && main.types.isEmpty {
            main = recent
            recent = TailMaps()
            return
        }
        if !isKnownUniquelyReferenced(&main) { main = main.copy() }
        for (stream, entries) in recent.streams { main.streams[stream, default: []].append(contentsOf: entries) }
        for (type, positions) in recent.types { main.types[type, default: []].append(contentsOf: positions) }
        main.entries += recent.entries
        recent = TailMaps()
    }

    /// The writer merged the entries through `watermark` into the B-trees: drops them here. Each
    /// stream's and type's entries are in position order, so the merged ones are its first.
    private func dropMerged(through watermark: UInt64) {
        let merged = orderStart..<(orderStart + Int(watermark - base))
        guard watermark < through, merged.upperBound <= order.count else { return reset(to: watermark) }
        fold()
        if !isKnownUniquelyReferenced(&main) { main = main.copy() }
        var counts: [StreamKey: Int] = [:]
        for stream in order[merged] { counts[stream, default: 0] += 1 }
        // The counts and the maps were filled together; should they ever disagree, start over from the
        // records rather than trust either.
        guard counts.allSatisfy({ main.streams[$0.key]?.count ?? 0 >= $0.value }) else { return reset(to: watermark) }
        for (stream, count) in counts {
            if main.streams[stream]?.count == count { main.streams[stream] = nil } else { main.streams[stream]?.removeFirst(count) }
        }
        main.entries -= merged.count
        // Event types are few: each drops its positions up to the watermark.
        main.types = main.types.compactMapValues { positions in
            let kept = positions[positions.partitionPoint { $0 > watermark }...]
            return kept.isEmpty ? nil : Array(kept)
        }
        orderStart = merged.upperBound
        if orderStart * 2 > order.count {
            order.removeFirst(orderStart)
            orderStart = 0
        }
        base = watermark
    }

    /// Forgets every entry: the records after `watermark` are scanned again.
    private func reset(to watermark: UInt64) {
        main = TailMaps()  // New maps: views may hold the old ones.
        recent = TailMaps()
        order.removeAll(keepingCapacity: true)
        orderStart = 0
        base = watermark
        through = watermark
    }

    /// Adds the entries of records (after, through] to the maps, and their streams to `order`.
    ///
    /// A log has a few dozen event types at most: each record's position goes to its type's list in a
    /// small table found by the type's bytes (the one before, else a linear search), and `types` is
    /// touched once per type at the end. Making and hashing a `String` per record for it was a quarter
    /// of a process's first scan of a full tail (callgrind of `tally read --stream`).
    static func scan(_ txn: some TransactionReading, tables: LogTables, after: UInt64, through: UInt64,
                     into streams: inout [StreamKey: [StreamVersionPosition]], _ types: inout [String: [UInt64]],
                     _ order: inout [StreamKey]) throws {
        guard after < through else { return }
        var typeBytes: [[UInt8]] = []
        var typePositions: [[UInt64]] = []
        var last = -1
        func isType(_ index: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
            typeBytes[index].withUnsafeBytes { $0.count == bytes.count && memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
        }
        try LogReading.scanAll(txn, tables: tables, from: after + 1, backward: false, untilPosition: through) { record in
            let stream = StreamKey(record.stream)
            streams[stream, default: []].append(StreamVersionPosition(version: record.version, position: record.position))
            let bytes = record.typeBytes  // Never empty: `RecordView` refuses an empty type.
            if last < 0 || !isType(last, bytes) {
                if let known = typeBytes.indices.first(where: { isType($0, bytes) }) {
                    last = known
                } else {
                    typeBytes.append(Array(bytes))
                    typePositions.append([])
                    last = typeBytes.count - 1
                }
            }
            typePositions[last].append(record.position)
            order.append(stream)
            return true
        }
        for (bytes, positions) in zip(typeBytes, typePositions) {
            types[String(decoding: bytes, as: UTF8.self), default: []].append(contentsOf: positions)
        }
    }
}

struct StreamVersionPosition: Sendable, Equatable {
    var version: UInt64
    var position: UInt64
}

/// One level of the tail's entries: each stream's and each type's, in position order. Changed only by
/// `IndexTail`, under its lock, and only while no view holds it.
final class TailMaps: @unchecked Sendable {
    var streams: [StreamKey: [StreamVersionPosition]] = [:]
    var types: [String: [UInt64]] = [:]
    /// How many records' entries it holds.
    var entries = 0

    static let empty = TailMaps()

    func copy() -> TailMaps {
        let copy = TailMaps()
        copy.streams = streams
        copy.types = types
        copy.entries = entries
        return copy
    }
}

/// The tail's entries as one snapshot sees them: positions in (watermark, head]. `recent`'s entries
/// of a stream or type all come after `main`'s.
struct TailView {
    let watermark: UInt64
    let head: UInt64
    fileprivate let main: TailMaps
    fileprivate let recent: TailMaps

    /// The stream's entries in (watermark, head], by version. (The shared entries may begin before this
    /// snapshot's watermark and run past its head.)
    func entries(stream: String) -> ArraySlice<StreamVersionPosition> {
        let key = StreamKey(stream)
        let older = main.streams[key], newer = recent.streams[key]
        let all: [StreamVersionPosition]
        switch (older, newer) {
        case (nil, nil): return []
        case (let older?, nil): all = older
        case (nil, let newer?): all = newer
        case (let older?, let newer?): all = older + newer
        }
        let start = all.partitionPoint { $0.position > watermark }
        let end = all.partitionPoint { $0.position > head }
        return all[start..<end]
    }

    /// How many events of each type lie in (watermark, head].
    func typeCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for type in Set(main.types.keys).union(recent.types.keys) {
            let count = positions(type: type).count
            if count > 0 { counts[type] = count }
        }
        return counts
    }

    /// The type's positions in (watermark, head].
    func positions(type: String) -> ArraySlice<UInt64> {
        func window(_ all: [UInt64]?) -> ArraySlice<UInt64> {
            guard let all else { return [] }
            return all[all.partitionPoint { $0 > watermark }..<all.partitionPoint { $0 > head }]
        }
        let older = window(main.types[type]), newer = window(recent.types[type])
        if newer.isEmpty { return older }
        if older.isEmpty { return newer }
        return ArraySlice(Array(older) + Array(newer))
    }
}

extension Collection {
    /// The index of the first element for which `belongs` is true, in a collection where every element
    /// for which it is true follows every one for which it is false.
    func partitionPoint(_ belongs: (Element) -> Bool) -> Index {
        var low = startIndex
        var count = self.count
        while count > 0 {
            let half = count / 2
            let middle = index(low, offsetBy: half)
            if belongs(self[middle]) { count = half } else { low = index(after: middle); count -= half + 1 }
        }
        return low
    }
}
