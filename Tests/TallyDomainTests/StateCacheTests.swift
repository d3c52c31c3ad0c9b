import Foundation
import Testing
@testable import TallyDomain

/// The folded-state cache: a state comes back only as the type it was stored as, at its version, and
/// the cache stays bounded however many streams pass through it.
@Suite struct StateCacheTests {
    @Test func aStateComesBackAsItsOwnTypeAtItsVersion() {
        let cache = StateCache()
        var booth = BoothState()
        booth.operators = ["op1"]
        cache.put("booth-1", version: 3, booth)
        #expect(cache.get("booth-1", BoothState.self)?.version == 3)
        #expect(cache.get("booth-1", BoothState.self)?.state == booth)
        // The same stream as another state type is another entry; an unknown stream has none.
        #expect(cache.get("booth-1", VoucherState.self) == nil)
        #expect(cache.get("booth-2", BoothState.self) == nil)
        cache.put("booth-1", version: 4, BoothState())
        #expect(cache.get("booth-1", BoothState.self)?.version == 4)
    }

    @Test func itStaysBoundedAndKeepsTheNewest() {
        let cache = StateCache()
        let streams = StateCache.entriesMax * 2
        for index in 0..<streams { cache.put("voucher-\(index)", version: UInt64(index + 1), VoucherState()) }
        let kept = (0..<streams).filter { cache.get("voucher-\($0)", VoucherState.self) != nil }
        #expect(kept.count <= StateCache.entriesMax && kept.count > StateCache.entriesMax / 4, "\(kept.count)")
        // The last stream put is always there, at its version.
        #expect(cache.get("voucher-\(streams - 1)", VoucherState.self)?.version == UInt64(streams))
        // Many threads at once (in a cache far from full): each finds its own puts.
        let shared = StateCache()
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for index in 0..<1_000 {
                shared.put("t\(thread)-\(index)", version: UInt64(index), BoothState())
                #expect(shared.get("t\(thread)-\(index)", BoothState.self)?.version == UInt64(index))
            }
        }
    }
}
