import Testing
@testable import TallyLog

/// The writer's stream table against a `Dictionary` doing the same operations: the table must hold
/// exactly what the dictionary holds after every step, whatever runs of occupied slots removals cut.
@Suite struct StreamTableTests {
    @Test(arguments: [1, 2, 3])
    func itHoldsWhatADictionaryHolds(seed: UInt64) {
        let table = StreamTable()
        var model: [StreamKey: StreamState] = [:]
        var random = SplitMix64(seed: seed)
        // 300 names over a table that starts at 16 slots: it grows several times, and its runs wrap
        // past the end while streams come and go.
        let names = (0..<300).map { StreamKey("s-\($0)") }
        for step in 0..<20_000 {
            let key = names[Int(random.next() % UInt64(step < 10_000 ? 40 : names.count))]
            switch random.next() % 4 {
            case 0:
                let state = StreamState(number: random.next() % 1_000, version: random.next() % 1_000)
                table.set(key, state)
                model[key] = state
            case 1:
                #expect(table.remove(key)?.version == model.removeValue(forKey: key)?.version, "step \(step)")
            case 2:
                let previous = table.increment(key)
                #expect(previous?.version == model[key]?.version && previous?.number == model[key]?.number, "step \(step)")
                if previous != nil { model[key]!.version += 1 }
            default:
                #expect(table[key]?.version == model[key]?.version, "step \(step)")
            }
            #expect(table.count == model.count)
        }
        for key in names {
            #expect(table[key]?.number == model[key]?.number && table[key]?.version == model[key]?.version)
        }
        table.removeAll()
        #expect(table.count == 0 && names.allSatisfy { table[$0] == nil })
        // Emptied back to its smallest size, it takes keys again (and grows again).
        for (index, key) in names.enumerated() { table.set(key, StreamState(number: UInt64(index), version: 1)) }
        table.removeAll(keepingCapacity: false)
        #expect(table.count == 0 && names.allSatisfy { table[$0] == nil })
        for (index, key) in names.enumerated() { table.set(key, StreamState(number: UInt64(index), version: 2)) }
        #expect(table.count == names.count && names.enumerated().allSatisfy { table[$1]?.number == UInt64($0) && table[$1]?.version == 2 })
    }

    /// Keys are their bytes: text Swift calls equal (NFC and NFD "é") are two streams.
    @Test func canonicallyEquivalentNamesAreTwoStreams() {
        let table = StreamTable()
        table.set(StreamKey("caf\u{E9}"), StreamState(number: 1, version: 5))
        table.set(StreamKey("cafe\u{301}"), StreamState(number: 2, version: 9))
        #expect(table.count == 2)
        #expect(table[StreamKey("caf\u{E9}")]?.number == 1 && table[StreamKey("cafe\u{301}")]?.number == 2)
    }
}
