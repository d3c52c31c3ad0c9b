import Foundation
import Synchronization
import Testing
@testable import TallyLog

@Suite struct ConcurrencyTests {
    @Test func manyThreadsAppendingToSharedAndOwnStreams() throws {
        let fixture = try Fixture()
        let acknowledged = Mutex<[UUID: UInt64]>([:])
        let threads = 16, appendsPerThread = 60
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for index in 0..<appendsPerThread {
                let stream = index % 2 == 0 ? "shared-\(index % 3)" : "own-\(thread)"
                let events = (0..<(index % 3 + 1)).map { _ in ProposedEvent(id: UUID(), stream: stream, type: "T", payload: Data("\(thread)/\(index)".utf8)) }
                let result = try! fixture.log.append(AppendRequest(events: events))
                acknowledged.withLock { map in for (event, position) in zip(events, result.positions) { map[event.id] = position } }
            }
        }
        let events = try fixture.readAll()
        let acks = acknowledged.withLock { $0 }
        #expect(events.map(\.position) == Array(1...UInt64(events.count)))  // Gapless.
        #expect(events.count == acks.count)
        #expect(Set(events.map(\.id)).count == events.count)  // Each once.
        for event in events { #expect(acks[event.id] == event.position) }
        // Versions of every stream are gapless too.
        for (_, streamEvents) in Dictionary(grouping: events, by: \.stream) {
            #expect(streamEvents.map(\.version) == Array(1...UInt64(streamEvents.count)))
        }
        #expect(try fixture.log.verify().isSound)
    }

    /// Batches submitted without waiting are written in submission order, each all or nothing: a refused
    /// one in the middle costs only itself, and a malformed one throws before anything is queued.
    @Test func batchesAppendedWithoutWaitingKeepTheirOrder() throws {
        let fixture = try Fixture()
        let outcomes = Mutex<[Int: Result<AppendResult, any Error>]>([:])
        let done = DispatchGroup()
        for index in 0..<40 {
            let events = (0..<5).map { fixture.event("s-\(index % 4)", "T", "{\"batch\":\(index),\"n\":\($0)}") }
            // Batch 17 expects a version its stream cannot have: refused, alone.
            let expected: ExpectedVersion = index == 17 ? .exact(999) : .any
            done.enter()
            try fixture.log.append(AppendRequest(stream: "s-\(index % 4)", expected: expected, events: events)) { outcome in
                outcomes.withLock { $0[index] = outcome }
                done.leave()
            }
        }
        #expect(throws: LogError.emptyBatch) { try fixture.log.append(AppendRequest(events: [])) { _ in Issue.record("a refused batch was queued") } }
        done.wait()
        let results = outcomes.withLock { $0 }
        var previous: UInt64 = 0
        for index in 0..<40 {
            let outcome = try #require(results[index])
            if index == 17 {
                #expect(throws: LogError.self) { try outcome.get() }
                continue
            }
            let positions = try outcome.get().positions
            #expect(positions.first == previous + 1 && positions.count == 5, "batch \(index)")
            previous = positions.last ?? previous
        }
        let events = try fixture.readAll()
        #expect(events.count == 39 * 5)
        #expect(events.map { String(decoding: $0.payload, as: UTF8.self) } == (0..<40).filter { $0 != 17 }.flatMap { index in
            (0..<5).map { "{\"batch\":\(index),\"n\":\($0)}" }
        })
    }

    /// Large groups are acknowledged on their own thread while the writer goes on; small ones by the
    /// writer when nothing is waiting. Either way callers hear in commit order, and `close` returns
    /// only once every caller has heard.
    @Test func acknowledgementsArriveInCommitOrderAndAllBeforeCloseReturns() throws {
        let fixture = try Fixture()
        let heard = Mutex<(positions: [UInt64], refused: Int, threads: Set<String>)>(([], 0, []))
        let record: @Sendable (Result<AppendResult, any Error>) -> Void = { outcome in
            let thread = currentThreadName()
            heard.withLock { state in
                state.threads.insert(thread)
                switch outcome {
                case .success(let result): state.positions.append(contentsOf: result.positions)
                case .failure: state.refused += 1
                }
            }
        }
        // One at a time first: groups of one, told by the writer.
        for _ in 0..<3 {
            let done = DispatchSemaphore(value: 0)
            try fixture.log.append(AppendRequest(events: [fixture.event("lone")])) { record($0); done.signal() }
            done.wait()
        }
        // Then 3,000 without waiting: groups of hundreds, every 100th refused.
        for index in 0..<3_000 {
            let expected: ExpectedVersion = index % 100 == 99 ? .exact(999_999) : .any
            try fixture.log.append(AppendRequest(stream: "s-\(index % 7)", expected: expected, events: [fixture.event("s-\(index % 7)")]), completion: record)
        }
        fixture.log.close()
        let state = heard.withLock { $0 }
        #expect(state.refused == 30)
        #expect(state.positions == Array(1...UInt64(2_973)))
        #expect(state.threads.contains("tally-writer"))
        #expect(state.threads.contains("tally-acks"))
    }

    @Test func ofAppendsExpectingTheSameVersionExactlyOneSucceeds() async throws {
        let fixture = try Fixture()
        try fixture.append("voucher-9")
        for round in 0..<20 {
            let version = UInt64(round + 1)
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let request = AppendRequest(stream: "voucher-9", expected: .exact(version), events: [fixture.event("voucher-9")])
                        do { try await fixture.log.append(request); return true } catch { return false }
                    }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1, "round \(round)")
        }
        #expect(try fixture.log.withSnapshot { try $0.version(of: "voucher-9") } == 21)
    }

    @Test func aRefusedBatchFailsOnlyItsOwnCallerInAGroupCommit() async throws {
        let fixture = try Fixture()
        try fixture.append("s")
        let results = await withTaskGroup(of: (Int, Bool).self) { group in
            for caller in 0..<64 {
                group.addTask {
                    // Every eighth caller expects a version the stream never has.
                    let expected: ExpectedVersion = caller % 8 == 0 ? .exact(10_000) : .any
                    let request = AppendRequest(stream: "s", expected: expected, events: [fixture.event("s")])
                    do { try await fixture.log.append(request); return (caller, true) } catch { return (caller, false) }
                }
            }
            return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        for (caller, succeeded) in results { #expect(succeeded == (caller % 8 != 0)) }
        #expect(try fixture.log.head().position == 1 + 56)
    }

    @Test func decisionsInsideTheWriterSeeEveryEarlierAppend() async throws {
        let fixture = try Fixture()
        // 40 tasks race to claim 10 vouchers; the rule "a voucher is claimed once" is checked in the writer.
        let claims = await withTaskGroup(of: Bool.self) { group in
            for attempt in 0..<40 {
                group.addTask {
                    let stream = "voucher-\(attempt % 10)"
                    let event = fixture.event(stream, "VoucherRedeemed")
                    let result = try? await fixture.log.appendDecided { view in
                        try view.version(of: stream) == 0 ? AppendRequest(events: [event]) : nil
                    }
                    return result != nil
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(claims.filter { $0 }.count == 10)
        #expect(try fixture.log.head().position == 10)
    }
}
