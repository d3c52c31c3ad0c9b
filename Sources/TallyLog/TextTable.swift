/// The writer's map from stream to state (and from event type to its number): open addressing with
/// linear probing, each slot holding the key (with its hash, worked out on the caller's thread) and
/// the value side by side.
///
/// A `Dictionary<ExactText, StreamState>` took a third of the writer's time in the batched append:
/// it hashes the precomputed hash again (SipHash per look-up), and a hit reads its occupancy bitmap,
/// its key array and its value array, three cache misses in a table of a few hundred thousand
/// streams. Here a look-up starts at the slot the key's hash names and usually finds key and state in
/// the same cache line. Removal shifts the following slots back (no tombstones), so a table that
/// promotes and drops streams for days never slows down.
///
/// A slot is free when its key is the empty text, which no stream id or event type can be.
final class TextTable<Value> {
    private struct Slot {
        var key: ExactText
        var value: Value
    }

    private var slots: UnsafeMutablePointer<Slot>
    private var mask: Int
    private(set) var count = 0
    private let freeSlot: Slot

    /// Room for `capacity` keys before the first growth; `filler` is what a free slot holds as its value.
    init(capacity: Int = 0, filler: Value) {
        freeSlot = Slot(key: ExactText(""), value: filler)
        let slotCount = Self.slotCount(for: capacity)
        slots = Self.allocate(slotCount, filledWith: freeSlot)
        mask = slotCount - 1
    }

    deinit {
        slots.deinitialize(count: mask + 1)
        slots.deallocate()
    }

    private static func allocate(_ count: Int, filledWith slot: Slot) -> UnsafeMutablePointer<Slot> {
        let slots = UnsafeMutablePointer<Slot>.allocate(capacity: count)
        slots.initialize(repeating: slot, count: count)
        return slots
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
    private func slot(of key: ExactText) -> Int? {
        var index = key.bytesHash & mask
        while true {
            let slot = slots + index
            if slot.pointee.key.text.isEmpty { return nil }
            if slot.pointee.key.bytesHash == key.bytesHash && slot.pointee.key == key { return index }
            index = (index + 1) & mask
        }
    }

    subscript(key: ExactText) -> Value? {
        get { slot(of: key).map { slots[$0].value } }
        set {
            if let newValue { set(key, newValue) } else { _ = remove(key) }
        }
    }

    /// Changes the value of `key`, if it is here, and returns the value before.
    @inline(__always)
    func update(_ key: ExactText, _ change: (inout Value) -> Void) -> Value? {
        guard let index = slot(of: key) else { return nil }
        let previous = slots[index].value
        change(&slots[index].value)
        return previous
    }

    /// Reads the slot where `key`'s search starts and returns something of it, so that a loop of
    /// these, all independent, has the processor fetch many slots at once (see `StreamCache.warm`).
    @inline(__always)
    func touch(_ key: ExactText) -> Int { slots[key.bytesHash & mask].key.bytesHash }

    func set(_ key: ExactText, _ value: Value) {
        precondition(!key.text.isEmpty, "a key is never empty")
        if let index = slot(of: key) {
            slots[index].value = value
            return
        }
        if (count + 1) > (mask + 1) / 4 * 3 { grow() }
        var index = key.bytesHash & mask
        while !isFree(index) { index = (index + 1) & mask }
        slots[index] = Slot(key: key, value: value)
        count += 1
    }

    /// Removes the key and returns its value, if it was here.
    func remove(_ key: ExactText) -> Value? {
        guard var hole = slot(of: key) else { return nil }
        let removed = slots[hole].value
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
        slots[hole] = freeSlot
        count -= 1
        return removed
    }

    /// Takes `other`'s keys and values, dropping this table's; `other` is left empty, with room for
    /// `capacity` keys. (The cache's two generations swap this way, so each stays a `let`: a call on a
    /// `var` property of an object retained and released the table, once per event.)
    func take(from other: TextTable, leaving capacity: Int = 0) {
        slots.deinitialize(count: mask + 1)
        slots.deallocate()
        (slots, mask, count) = (other.slots, other.mask, other.count)
        let slotCount = Self.slotCount(for: capacity)
        other.slots = Self.allocate(slotCount, filledWith: other.freeSlot)
        other.mask = slotCount - 1
        other.count = 0
    }

    /// Empties the table; without `keepingCapacity`, back to its smallest size.
    func removeAll(keepingCapacity: Bool = true) {
        if keepingCapacity {
            for index in 0...mask where !isFree(index) { slots[index] = freeSlot }
        } else {
            slots.deinitialize(count: mask + 1)
            slots.deallocate()
            let slotCount = Self.slotCount(for: 0)
            slots = Self.allocate(slotCount, filledWith: freeSlot)
            mask = slotCount - 1
        }
        count = 0
    }

    private func grow() {
        let (old, oldCount) = (slots, mask + 1)
        let slotCount = oldCount * 2
        slots = Self.allocate(slotCount, filledWith: freeSlot)
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

/// The writer's stream cache: each stream's number and version.
typealias StreamTable = TextTable<StreamState>

extension TextTable where Value == StreamState {
    convenience init(capacity: Int = 0) { self.init(capacity: capacity, filler: StreamState(number: 0, version: 0)) }

    /// Adds one to the stream's version, if the stream is here, and returns its state before.
    @inline(__always)
    func increment(_ key: ExactText) -> StreamState? { update(key) { $0.version += 1 } }
}
