import Foundation
import Synchronization

/// Makes event ids: UUID version 7 (RFC 9562), a 48-bit millisecond time then random bits. Ids made
/// close in time sort close together, so the `event-ids` index grows at its right edge (appended with
/// MDB_APPEND) instead of dirtying a random page per event. Any UUID is accepted by the log; ids of
/// other versions are only slower to index.
public final class EventIDGenerator: Sendable {
    private let clock: any TallyClock
    private let state: Mutex<(random: SplitMix64, lastMillis: Int64, counter: UInt16)>

    /// `seed` makes the random part repeatable (tests, the demo); nil seeds from the system.
    public init(clock: any TallyClock = SystemClock(), seed: UInt64? = nil) {
        self.clock = clock
        state = Mutex((SplitMix64(seed: seed ?? UInt64.random(in: .min ... .max)), 0, 0))
    }

    public func next() -> UUID {
        let millis = clock.now().microsecondsSinceEpoch / 1000
        return state.withLock { state in
            // Within one millisecond a 12-bit counter keeps ids increasing (RFC 9562 method 1).
            if millis <= state.lastMillis {
                state.counter &+= 1
            } else {
                state.lastMillis = millis
                state.counter = UInt16(truncatingIfNeeded: state.random.next() & 0x3ff)
            }
            let time = UInt64(bitPattern: state.lastMillis) & 0xffff_ffff_ffff
            let high = time << 16 | 0x7000 | UInt64(state.counter & 0x0fff)
            let low = (state.random.next() & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000
            var bytes = (high.bigEndian, low.bigEndian)
            return withUnsafeBytes(of: &bytes) { raw in
                var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                withUnsafeMutableBytes(of: &uuid) { $0.copyMemory(from: raw) }
                return UUID(uuid: uuid)
            }
        }
    }
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64): deterministic streams
/// for ids, the demo and the benchmark's workload.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
