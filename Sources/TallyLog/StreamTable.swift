/// The writer's map from stream to state: open addressing with linear probing, each slot holding the
/// key (with its hash, worked out on the caller's thread) and the state side by side.
///
/// A `Dictionary<StreamKey, StreamState>` took a third of the writer's time in the batched append:
/// it hashes the precomputed hash again (SipHash per look-up), and a hit reads its occupancy bitmap,
/// its key array and its value array, three cache misses in a table of a few hundred thousand
/// streams. Here a look-up starts at the slot the key's hash names and usually finds key and state in
/// the same cache line. Removal shifts the following slots back (no tombstones), so a table that
/// promotes and drops streams for days never slows down.
///
/// A slot is free when its key is the empty text, which no stream id can be.
final class StreamTable {
    private struct Slot {
        var key: StreamKey
        var state: StreamState
    }

    private var slots: UnsafeMutablePointer<Slot>
    private var mask: Int
    private(set) var count = 0
    private static let free = StreamKey("")

    /// Room for `capacity` streams before the first growth.
    init(capacity: Int = 0) {
        let slotCount = Self.slotCount(for: capacity)
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: Slot(key: Self.free, state: StreamState(number: 0, version: 0)), count: slotCount)
        mask = slotCount - 1
    }

    deinit {
        slots.deinitialize(count: mask + 1)
        slots.deallocate()
    }

    /// At most three quarters full, and a power of two.
    private static func slotCount(for capacity: Int) -> Int {
        var slotCount = 16
        while slotCount / 4 * 3 < capacity { slotCount *= 2 }
        return slotCount
    }

    @inline(__always)
    private func isFree(_ index: Int) -> Bool { slots[index].key.text.isEmpty }

    /// The slot holding `key`, or nil.
    @inline(__always)
    private func slot(of key: StreamKey) -> Int? {
        var index = key.bytesHash & mask
        while true {
            let slot = slots + index
            if slot.pointee.key.text.isEmpty { return nil }
            if slot.pointee.key.bytesHash == key.bytesHash && slot.pointee.key == key { return index }
            index = (index + 1) & mask
        }
    }

    subscript(key: StreamKey) -> StreamState? {
        get { slot(of: key).map { slots[$0].state } }
        set {
            if let newValue { set(key, newValue) } else { _ = remove(key) }
        }
    }

    /// Adds one to the stream's version, if the stream is here, and returns its state before.
    func increment(_ key: StreamKey) -> StreamState? {
        guard let index = slot(of: key) else { return nil }
        let previous = slots[index].state
        slots[index].state.version += 1
        return previous
    }

    /// Reads the slot where `key`'s search starts and returns something of it, so that a loop of
    /// these, all independent, has the processor fetch many slots at once (see `StreamCache.warm`).
    @inline(__always)
    func touch(_ key: StreamKey) -> Int { Int(truncatingIfNeeded: slots[key.bytesHash & mask].state.version) }

    func set(_ key: StreamKey, _ state: StreamState) {
        precondition(!key.text.isEmpty, "a stream id is never empty")
        if let index = slot(of: key) {
            slots[index].state = state
            return
        }
        if (count + 1) > (mask + 1) / 4 * 3 { grow() }
        var index = key.bytesHash & mask
        while !isFree(index) { index = (index + 1) & mask }
        slots[index] = Slot(key: key, state: state)
        count += 1
    }

    /// Removes the stream and returns its state, if it was here.
    func remove(_ key: StreamKey) -> StreamState? {
        guard var hole = slot(of: key) else { return nil }
        let removed = slots[hole].state
        // Backward shift: each following slot of the run moves into the hole if the hole lies between
        // where its key hashes and where it sits (cyclically), so every key stays reachable.
        var index = (hole + 1) & mask
        while !isFree(index) {
            let home = slots[index].key.bytesHash & mask
            let distanceToIndex = (index - home) & mask
            let distanceToHole = (hole - home) & mask
            if distanceToHole < distanceToIndex {
                slots[hole] = slots[index]
                hole = index
            }
            index = (index + 1) & mask
        }
        slots[hole] = Slot(key: Self.free, state: StreamState(number: 0, version: 0))
        count -= 1
        return removed
    }

    func removeAll() {
        for index in 0...mask where !isFree(index) {
            slots[index] = Slot(key: Self.free, state: StreamState(number: 0, version: 0))
        }
        count = 0
    }

    private func grow() {
        let (old, oldCount) = (slots, mask + 1)
        let slotCount = oldCount * 2
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: Slot(key: Self.free, state: StreamState(number: 0, version: 0)), count: slotCount)
        mask = slotCount - 1
        for oldIndex in 0..<oldCount {
            let slot = (old + oldIndex).move()
            guard !slot.key.text.isEmpty else { continue }
            var index = slot.key.bytesHash & mask
            while !isFree(index) { index = (index + 1) & mask }
            slots[index] = slot
        }
        old.deallocate()
    }
}
