import Foundation
import Synchronization
import Testing
@testable import TallyLog
import TallyLMDB
import TallyMerkle

/// The log's API contract: what every caller may rely on.
@Suite struct AppendAndReadContract {
    @Test func appendedEventsReadBackExactly() throws {
        let fixture = try Fixture()
        let correlation = UUID()
        var event = fixture.event("cart-1", "ItemAdded", #"{"sku":"000123","qty":2}"#, actor: "member:7")
        event.correlationID = correlation
        event.causationID = UUID()
        event.metadata = Data(#"{"client":"kiosk-3"}"#.utf8)
        event.schemaVersion = 3
        let result = try fixture.log.append(AppendRequest(events: [event]))
        #expect(result.positions == [1])
        #expect(result.streamVersions == ["cart-1": 1])
        #expect(!result.wasAlreadyAppended)
        let read = try fixture.readAll()
        #expect(read.count == 1)
        let recorded = try #require(read.first)
        #expect(recorded.hasSameContent(as: event))
        #expect(recorded.position == 1 && recorded.version == 1)
        #expect(recorded.recordedAt == fixture.clock.now())
        #expect(recorded.correlationID == correlation)
        #expect(recorded.schemaVersion == 3)
    }

    @Test func positionsAreGaplessAndVersionsCountPerStream() throws {
        let fixture = try Fixture()
        for index in 0..<30 { try fixture.append("s-\(index % 3)") }
        let events = try fixture.readAll()
        #expect(events.map(\.position) == Array(1...30))
        for stream in 0..<3 {
            #expect(events.filter { $0.stream == "s-\(stream)" }.map(\.version) == Array(1...10))
        }
        let head = try fixture.log.head()
        #expect(head.position == 30 && head.streamCount == 3 && head.eventCount == 30)
        #expect(head.chainHash == events.last!.hash)
    }

    /// Streams are their UTF-8 bytes (event types are ASCII). Swift's `==` takes "café" written with
    /// "é" (NFC) and with "e" and a combining accent (NFD, as macOS file names come) as equal; the log
    /// must not: they are two streams, each with its own versions, whether read from the index tail,
    /// after a merge into the B-trees, or after the log is reopened.
    @Test(arguments: [UInt64(7), 4096])
    func streamsAreTheirBytesNotCanonicalEquivalents(indexTailEventsMax: UInt64) throws {
        let fixture = try Fixture(indexTailEventsMax: indexTailEventsMax)
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        #expect(composed == decomposed && Array(composed.utf8) != Array(decomposed.utf8))
        func versions(_ log: EventLog, _ stream: String) throws -> [UInt64] {
            var reader = log.read(ReadQuery(.stream(stream)))
            var found: [UInt64] = []
            try reader.forEach { event in
                #expect(Array(event.stream.utf8) == Array(stream.utf8))
                found.append(event.version)
            }
            return found
        }
        #expect(try fixture.append(composed).versions == [1])
        #expect(try fixture.append(decomposed).versions == [1])
        #expect(try fixture.append(composed, expected: .exact(1)).versions == [2])
        #expect(try fixture.append(decomposed, expected: .exact(1)).versions == [2])
        // One batch writing both: two streams again.
        let both = try fixture.log.append(AppendRequest(events: [fixture.event(composed), fixture.event(decomposed)]))
        #expect(both.versions == [3, 3])
        for log in [fixture.log, try EventLog.open(at: fixture.path)] {
            #expect(try versions(log, composed) == [1, 2, 3] && versions(log, decomposed) == [1, 2, 3])
            #expect(try log.head().streamCount == 2)
            #expect(try log.verify().isSound)
        }
    }

    @Test func recordedTimeNeverGoesBackward() throws {
        let fixture = try Fixture()
        try fixture.append("a")
        fixture.clock.advance(microseconds: -5_000_000)  // The wall clock jumps back.
        try fixture.append("a")
        let events = try fixture.readAll()
        #expect(events[1].recordedAt == events[0].recordedAt)
    }

    @Test func aBatchAcrossStreamsIsAllOrNothing() throws {
        let fixture = try Fixture()
        try fixture.append("order-1")
        let request = AppendRequest(events: [fixture.event("order-2"), fixture.event("order-1"), fixture.event("payment-1")],
                                    expectations: ["order-1": .exact(5)])
        let error = #expect(throws: LogError.self) { try fixture.log.append(request) }
        #expect(error == .wrongExpectedVersion(stream: "order-1", expected: .exact(5), actual: 1))
        #expect(error?.description == #"stream "order-1" is at version 1, but the append expected 5"#)
        #expect(try fixture.log.head().position == 1)
        #expect(try fixture.readAll().count == 1)
        // The same batch with the right expectation goes in whole, positions in request order.
        let accepted = try fixture.log.append(AppendRequest(events: request.events, expectations: ["order-1": .exact(1)]))
        #expect(accepted.positions == [2, 3, 4])
        #expect(accepted.streamVersions == ["order-2": 1, "order-1": 2, "payment-1": 1])
    }

    @Test(arguments: [
        (ExpectedVersion.any, UInt64(0), true), (.any, 3, true),
        (.noStream, 0, true), (.noStream, 1, false),
        (.streamExists, 0, false), (.streamExists, 2, true),
        (.exact(0), 0, true), (.exact(2), 2, true), (.exact(2), 3, false), (.exact(3), 2, false),
    ])
    func expectedVersions(expected: ExpectedVersion, current: UInt64, admitted: Bool) throws {
        let fixture = try Fixture()
        for _ in 0..<current { try fixture.append("s") }
        if admitted {
            let result = try fixture.append("s", expected: expected)
            #expect(result.streamVersions["s"] == current + 1)
        } else {
            let error = #expect(throws: LogError.self) { try fixture.append("s", expected: expected) }
            #expect(error == .wrongExpectedVersion(stream: "s", expected: expected, actual: current))
            #expect(try fixture.log.head().position == current)
        }
    }

    @Test func expectationsMayNameStreamsOutsideTheBatch() throws {
        let fixture = try Fixture()
        try fixture.append("price-list")
        let guarded = AppendRequest(events: [fixture.event("cart-1")], expectations: ["price-list": .exact(1)])
        try fixture.log.append(guarded)
        try fixture.append("price-list")
        let stale = AppendRequest(events: [fixture.event("cart-2")], expectations: ["price-list": .exact(1)])
        #expect(throws: LogError.wrongExpectedVersion(stream: "price-list", expected: .exact(1), actual: 2)) { try fixture.log.append(stale) }
    }
}

@Suite struct IdempotencyContract {
    @Test func reappendingTheSameEventsReturnsTheOriginalPositions() throws {
        let fixture = try Fixture()
        let events = [fixture.event("voucher-1", "VoucherIssued"), fixture.event("voucher-1", "VoucherRedeemed")]
        let first = try fixture.log.append(AppendRequest(stream: "voucher-1", expected: .noStream, events: events))
        try fixture.append("other")
        fixture.clock.advance(microseconds: 1_000_000)
        // A retry: same ids and content, same (now stale) expectation.
        let retry = try fixture.log.append(AppendRequest(stream: "voucher-1", expected: .noStream, events: events))
        #expect(retry.positions == first.positions)
        #expect(retry.wasAlreadyAppended)
        #expect(retry.streamVersions == ["voucher-1": 2])
        #expect(try fixture.log.head().position == 3)
    }

    @Test func theSameIdWithOtherContentIsRefused() throws {
        let fixture = try Fixture()
        let original = fixture.event("payment-1", "PaymentSucceeded", #"{"amount":500}"#)
        try fixture.log.append(AppendRequest(events: [original]))
        var altered = original
        altered.payload = Data(#"{"amount":900}"#.utf8)
        let error = #expect(throws: LogError.self) { try fixture.log.append(AppendRequest(events: [altered])) }
        #expect(error == .eventIDConflict(id: original.id, position: 1, reason: "with another payload"))
        var moved = original
        moved.stream = "payment-2"
        #expect(throws: LogError.eventIDConflict(id: original.id, position: 1, reason: #"in stream "payment-1", not "payment-2""#)) {
            try fixture.log.append(AppendRequest(events: [moved]))
        }
        // A stream name Swift's == calls equal but with other bytes (NFC "é", NFD "e" + accent) is another stream.
        let composed = fixture.event("caf\u{E9}")
        try fixture.log.append(AppendRequest(events: [composed]))
        var decomposed = composed
        decomposed.stream = "cafe\u{301}"
        let recorded = try #require(try fixture.readAll().last)
        #expect(!recorded.hasSameContent(as: decomposed) && recorded.hasSameContent(as: composed))
        let conflict = #expect(throws: LogError.self) { try fixture.log.append(AppendRequest(events: [decomposed])) }
        guard case .eventIDConflict(_, 2, let reason) = conflict else { Issue.record("\(String(describing: conflict))"); return }
        #expect(reason.hasPrefix("in stream "))
        #expect(try fixture.log.head().position == 2)
    }

    @Test func aBatchThatRepeatsOnlyPartOfAnEarlierOneIsRefused() throws {
        let fixture = try Fixture()
        let known = fixture.event("s")
        try fixture.log.append(AppendRequest(events: [known]))
        let error = #expect(throws: LogError.self) { try fixture.log.append(AppendRequest(events: [fixture.event("s"), known])) }
        guard case .eventIDConflict(let id, let position, _) = error else { Issue.record("expected a conflict, got \(String(describing: error))"); return }
        #expect(id == known.id && position == 1)
        #expect(try fixture.log.head().position == 1)
    }

    @Test func idempotencySurvivesReopeningWithRandomIDs() throws {
        let fixture = try Fixture()
        // Version-4 ids are not time-ordered: they take the look-up path, not the append fast path.
        let events = (0..<50).map { ProposedEvent(id: UUID(), stream: "s-\($0 % 5)", type: "T", payload: Data("\($0)".utf8)) }
        let first = try fixture.log.append(AppendRequest(events: events))
        fixture.log.close()
        let reopened = try EventLog.open(at: fixture.path)
        let retry = try reopened.append(AppendRequest(events: events))
        #expect(retry.positions == first.positions && retry.wasAlreadyAppended)
        #expect(try reopened.verify().isSound)
    }
}

@Suite struct BadInputContract {
    static let cases: [(String, @Sendable (inout ProposedEvent) -> Void, String)] = [
        ("empty stream", { $0.stream = "" }, "invalid stream id \"\": it is empty"),
        ("long stream", { $0.stream = String(repeating: "s", count: 201) }, "it is 201 bytes; the limit is 200"),
        // The message shows the name with its control characters escaped, on one line.
        ("control character", { $0.stream = "a\nb" }, #"invalid stream id "a\nb": it contains a control character"#),
        ("spaced stream", { $0.stream = "cart-1 " }, #"invalid stream id "cart-1 ": it begins or ends with a space"#),
        ("blank stream", { $0.stream = "\u{3000}" }, "it begins or ends with a space"),
        ("leading space", { $0.stream = " cart-1" }, "it begins or ends with a space"),
        ("non-breaking space", { $0.stream = "café-1\u{A0}" }, "it begins or ends with a space"),
        ("delete", { $0.stream = "cart\u{7F}1" }, "it contains a control character"),
        ("nul and quote", { $0.actor = "a\u{0}\"" }, #"invalid actor "a\u{0}\"": it contains a control character"#),
        ("empty type", { $0.type = "" }, "invalid event type \"\": it is empty"),
        ("long type", { $0.type = "T" + String(repeating: "t", count: 100) }, "it is 101 bytes; the limit is 100"),
        ("bad type", { $0.type = "9lives" }, "it must start with a letter"),
        ("schema 0", { $0.schemaVersion = 0 }, "invalid schema version 0"),
        ("long actor", { $0.actor = String(repeating: "a", count: 201) }, "invalid actor"),
        ("big metadata", { $0.metadata = Data(count: Limits.metadataBytesMax + 1) }, "invalid metadata"),
        ("big payload", { $0.payload = Data(count: Limits.payloadBytesMax + 1) }, "the limit is 1048576"),
    ]

    @Test(arguments: 0..<cases.count)
    func badEventsAreRefusedAndNothingIsWritten(index: Int) throws {
        let (_, mutate, message) = Self.cases[index]
        let fixture = try Fixture()
        var bad = fixture.event("s")
        mutate(&bad)
        let error = #expect(throws: LogError.self) { try fixture.log.append(AppendRequest(events: [fixture.event("s"), bad])) }
        #expect(error?.description.contains(message) == true, "\(String(describing: error))")
        #expect(try fixture.log.head().position == 0)
    }

    /// A batch long enough to be prepared on two threads names the first bad event in event order,
    /// whichever half it is in, and writes nothing.
    @Test func aLongBatchNamesItsFirstBadEvent() throws {
        let fixture = try Fixture()
        func batch(badAt bad: [Int]) -> [ProposedEvent] {
            (0..<600).map { index in
                var event = fixture.event("s-\(index % 7)")
                if bad.contains(index) { event.stream = "bad \(index) " }
                return event
            }
        }
        for (bad, named) in [([100, 450], 100), ([450], 450), ([599], 599), ([0, 599], 0)] {
            let error = #expect(throws: LogError.self) { try fixture.log.append(AppendRequest(events: batch(badAt: bad))) }
            #expect(error == .invalidStreamID("bad \(named) ", reason: "it begins or ends with a space"), "\(bad)")
        }
        #expect(try fixture.log.head().position == 0)
        #expect(try fixture.log.append(AppendRequest(events: batch(badAt: []))).positions.count == 600)
    }

    @Test func emptyAndSelfDuplicatingBatchesAreRefused() throws {
        let fixture = try Fixture()
        #expect(throws: LogError.emptyBatch) { try fixture.log.append(AppendRequest(events: [])) }
        let event = fixture.event("s")
        #expect(throws: LogError.duplicateEventIDInBatch(event.id)) { try fixture.log.append(AppendRequest(events: [event, event])) }
        // Time-ordered ids in order until the repeat, and random ids: the repeated one is named either way.
        let (first, second) = (fixture.event("s"), fixture.event("t"))
        #expect(throws: LogError.duplicateEventIDInBatch(first.id)) {
            try fixture.log.append(AppendRequest(events: [first, second, fixture.event("u"), first]))
        }
        var random = (0..<20).map { ProposedEvent(id: UUID(), stream: "s-\($0)", type: "T", payload: Data()) }
        random.append(random[7])
        #expect(throws: LogError.duplicateEventIDInBatch(random[7].id)) { try fixture.log.append(AppendRequest(events: random)) }
        #expect(try fixture.log.head().position == 0)
        // Non-ASCII ids and actors pass the same rules as ASCII ones.
        var accented = fixture.event("café-1")
        accented.actor = "Zoë"
        #expect(try fixture.log.append(AppendRequest(events: [accented])).positions == [1])
    }

    /// A batch over either limit is refused whole, before any event of it is written, and the message
    /// says which limit and what to do.
    @Test func aBatchOverItsLimitsIsRefusedWhole() throws {
        let fixture = try Fixture()
        let tooMany = (0...Limits.batchEventsMax).map { _ in fixture.event("s") }
        let counted = #expect(throws: LogError.self) { try fixture.log.append(AppendRequest(events: tooMany)) }
        #expect(counted == .batchTooLarge(events: Limits.batchEventsMax + 1, bytes: nil))
        #expect(counted?.description == "the batch has 100001 events; one append takes at most 100000 (split it into several appends: each is all or nothing on its own)")
        // 65 payloads of 1 MiB: each within its own limit, 65 MiB together.
        let payload = Data(repeating: UInt8(ascii: "x"), count: Limits.payloadBytesMax)
        let tooBig = (0..<65).map { _ in ProposedEvent(id: fixture.ids.next(), stream: "s", type: "Blob", payload: payload) }
        let weighed = #expect(throws: LogError.self) { try fixture.log.append(AppendRequest(events: tooBig)) }
        guard case .batchTooLarge(65, let bytes?) = weighed else { Issue.record("\(String(describing: weighed))"); return }
        #expect(bytes > Limits.batchBytesMax)
        #expect(weighed?.description.contains("the batch's 65 events come to \(bytes) bytes as records; one append takes at most 67108864 bytes") == true)
        #expect(try fixture.log.head().position == 0)
    }

    @Test func storesAreCheckedOnOpen() throws {
        let missing = temporaryStorePath()
        #expect(throws: LogError.self) { try EventLog.open(at: missing) }
        let plain = temporaryStorePath()
        try FileManager.default.createDirectory(atPath: plain, withIntermediateDirectories: true)
        let error = #expect(throws: LogError.self) { try EventLog.open(at: plain) }
        #expect(error == .notAStore(path: plain, reason: "it has no log/data.mdb"))
        let fixture = try Fixture()
        #expect(throws: LogError.storeExists(path: fixture.path)) { try EventLog.create(at: fixture.path) }
    }

    @Test func aStoreFromANewerFormatIsRefused() throws {
        let fixture = try Fixture()
        try fixture.log.environment.write { txn in
            var newer = (EventLog.formatVersion + 1).littleEndian
            try withUnsafeBytes(of: &newer) { try txn.put(fixture.log.tables.meta, key: MetaKey.format, value: $0) }
        }
        fixture.log.close()
        #expect(throws: LogError.newerFormat(path: fixture.path, found: EventLog.formatVersion + 1, supported: EventLog.formatVersion)) {
            try EventLog.open(at: fixture.path)
        }
    }

    @Test func aReadOnlyLogRefusesAppends() throws {
        let fixture = try Fixture()
        try fixture.append("s")
        let path = temporaryStorePath()
        _ = try EventLog.create(at: path)
        var options = LogOptions()
        options.readOnly = true
        let readOnly = try EventLog.open(at: temporaryStoreWithOneEvent(), options: options)
        #expect(throws: LogError.self) { try readOnly.append(AppendRequest(events: [fixture.event("s")])) }
    }

    func temporaryStoreWithOneEvent() throws -> String {
        let path = temporaryStorePath()
        let log = try EventLog.create(at: path)
        try log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "s", type: "T", payload: Data())]))
        log.close()
        return path
    }
}

@Suite struct ReadContract {
    static func fixtureWith(_ count: Int) throws -> Fixture {
        let fixture = try Fixture()
        var events: [ProposedEvent] = []
        for index in 0..<count {
            events.append(fixture.event("s-\(index % 4)", index % 2 == 0 ? "Even" : "Odd", "{\"i\":\(index)}"))
        }
        try fixture.log.append(AppendRequest(events: events))
        return fixture
    }

    @Test func theWholeLogForwardAndBackwardAcrossChunks() throws {
        let fixture = try Self.fixtureWith(2500)
        #expect(try fixture.readAll().map(\.position) == Array(1...2500))
        #expect(try fixture.readAll(ReadQuery(backward: true)).map(\.position) == Array((1...2500).reversed()))
        #expect(try fixture.readAll(ReadQuery(from: 2000, limit: 5)).map(\.position) == [2000, 2001, 2002, 2003, 2004])
        #expect(try fixture.readAll(ReadQuery(from: 3, backward: true)).map(\.position) == [3, 2, 1])
        #expect(try fixture.readAll(ReadQuery(from: 9999, backward: true, limit: 2)).map(\.position) == [2500, 2499])
        #expect(try fixture.readAll(ReadQuery(from: 2600)).isEmpty)
        #expect(try fixture.readAll(ReadQuery(limit: 0)).isEmpty)
        #expect(try fixture.readAll(ReadQuery(untilPosition: 10)).map(\.position) == Array(1...10))
        #expect(try fixture.readAll(ReadQuery(backward: true, untilPosition: 10)).map(\.position) == Array((1...10).reversed()))
    }

    /// A long forward read of the whole log decodes its chunks ahead, one snapshot each: whatever
    /// the slice, it hands out what one snapshot holds, in order, each event once.
    @Test func aLongReadDecodedAheadIsWhatOneSnapshotHolds() throws {
        let fixture = try Self.fixtureWith(10_000)
        let chunk = Limits.readChunkEvents
        let queries = [
            ReadQuery(), ReadQuery(from: 700), ReadQuery(limit: 5_000), ReadQuery(limit: 4 * chunk), ReadQuery(limit: chunk + 1),
            ReadQuery(limit: chunk), ReadQuery(limit: 2 * chunk), ReadQuery(limit: 9 * chunk + 5), ReadQuery(from: 3, untilPosition: UInt64(2 * chunk + 2)),
            ReadQuery(untilPosition: 6_000), ReadQuery(from: 2, limit: 7_777, untilPosition: 9_000, sincePosition: 1_500),
            ReadQuery(from: 9_000), ReadQuery(from: 10_000 - UInt64(chunk) + 1), ReadQuery(untilPosition: 20_000),
        ]
        for query in queries {
            var expected: [RecordedEvent] = []
            try fixture.log.withSnapshot { snapshot in try snapshot.forEach(query) { expected.append($0.decode()); return true } }
            #expect(try fixture.readAll(query) == expected, "\(query)")
            var reader = fixture.log.read(query)
            var one: [RecordedEvent] = []
            while let event = try reader.next() { one.append(event) }
            #expect(one == expected, "next(): \(query)")
        }
        // next() and forEach take turns on one reader.
        var reader = fixture.log.read()
        var positions: [UInt64] = []
        for _ in 0..<(chunk + 3) { positions.append(try #require(try reader.next()).position) }
        var count = 0
        try reader.forEach { event in
            positions.append(event.position)
            count += 1
        }
        #expect(positions == Array(1...10_000))
        #expect(try reader.next() == nil)
    }

    /// Chunks decoding ahead belong to no one copy of a reader: a copy taken mid-read hands out the
    /// same events as the reader it was copied from, each on its own; readers dropped with chunks still
    /// decoding, and their log with them, leave nothing behind that fails.
    @Test func readersCopiedOrDroppedMidReadStayWhole() throws {
        let chunk = Limits.readChunkEvents
        var expected: [UInt64] = []
        do {
            let fixture = try Self.fixtureWith(6 * chunk)
            var reader = fixture.log.read()
            for _ in 0..<(chunk + 10) { expected.append(try #require(try reader.next()).position) }
            var copy = reader
            var fromCopy: [UInt64] = [], fromReader: [UInt64] = []
            try copy.forEach { fromCopy.append($0.position) }
            try reader.forEach { fromReader.append($0.position) }
            #expect(fromCopy == Array(UInt64(chunk + 11)...UInt64(6 * chunk)))
            #expect(fromReader == fromCopy)
            for _ in 0..<20 {
                var dropped = fixture.log.read()
                for _ in 0..<(chunk + 1) { _ = try dropped.next() }
            }
        }
        #expect(expected == Array(1...UInt64(chunk + 10)))
    }

    /// A long read while every thread of the global queue is taken (by jobs that wait for the read to
    /// end): the reader decodes the chunks no thread has started itself, so it ends. Waiting on its
    /// chunk jobs alone, it waited for the queue to grow a thread per blocked job, about a second
    /// each (16 reads inside `concurrentPerform` took 1.1 s where they now take a tenth); here, behind
    /// 64 such jobs, it would not end within the minute this test allows.
    @Test func aLongReadEndsWhileEveryThreadOfTheGlobalQueueIsTaken() throws {
        let fixture = try Self.fixtureWith(6 * Limits.readChunkEvents)
        let release = DispatchSemaphore(value: 0), blockers = DispatchGroup()
        for _ in 0..<64 { DispatchQueue.global().async(group: blockers) { release.wait() } }
        let done = DispatchSemaphore(value: 0)
        let count = Mutex(-1)
        let reading = Thread { [log = fixture.log] in
            var reader = log.read()
            var events = 0
            let finished = (try? reader.forEach { _ in events += 1 }) != nil
            count.withLock { $0 = finished ? events : -2 }
            done.signal()
        }
        reading.start()
        let ended = done.wait(timeout: .now() + 60) == .success
        for _ in 0..<64 { release.signal() }
        blockers.wait()
        if !ended { done.wait() }
        #expect(ended, "the read did not end while the global queue's threads were taken")
        #expect(count.withLock { $0 } == 6 * Limits.readChunkEvents)
    }

    /// The reader's table of recurring short texts gives back exactly the bytes it is given, whatever
    /// shares a slot: texts of 0 to 17 bytes, ones differing only in their last byte or their length,
    /// NFC and NFD forms, asked for in an order that makes them evict each other.
    @Test func recurringTextsComeBackAsTheirOwnBytes() {
        var texts = ["", "a", "a\0", "ItemAdded", "ItemAddee", "VoucherRedeemed", "PaymentSucceeded", "PaymentSucceedee",
                     "PaymentSucceeded1", "admin:ana", "member:3379", "caf\u{E9}", "cafe\u{301}", "12345678", "123456789"]
        // Seventeen texts of zero bytes, alike but for their length, in sixteen slots: two share one.
        texts += (0...16).map { String(repeating: "\0", count: $0) }
        var random = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            texts.append(String((0..<Int.random(in: 0...17, using: &random)).map { _ in "ab\u{E9}".randomElement(using: &random)! }))
        }
        var recurring = RecurringText()
        for round in 0..<3 {
            for text in (round == 1 ? texts.reversed() : texts) {
                var utf8 = text
                let made = utf8.withUTF8 { recurring.text(UnsafeRawBufferPointer($0)) }
                #expect(made.utf8.elementsEqual(text.utf8), "\(Array(text.utf8)) came back as \(Array(made.utf8))")
            }
        }
    }

    /// Events appended while a long read runs: it goes on past the head it started from, and never
    /// skips a position (a lane that found the end of the log ends the read, even if a later lane's
    /// snapshot found more).
    @Test func aLongReadWhileTheLogGrowsHandsOutEveryPositionOnceInOrder() throws {
        let fixture = try Self.fixtureWith(3_000)
        var reader = fixture.log.read()
        #expect(try reader.next()?.position == 1)
        try fixture.log.append(AppendRequest(events: (0..<2_000).map { fixture.event("late-\($0 % 3)") }))
        var positions: [UInt64] = [1]
        try reader.forEach { positions.append($0.position) }
        #expect(positions == Array(1...5_000))

        let appending = Thread { [log = fixture.log] in
            for round in 0..<40 { _ = try? log.append(AppendRequest(events: (0..<97).map { fixture.event("busy-\(round)-\($0 % 5)") })) }
        }
        appending.start()
        for _ in 0..<20 {
            var positions: [UInt64] = []
            var reader = fixture.log.read()
            try reader.forEach { positions.append($0.position) }
            #expect(positions.first == 1 && positions.count >= 5_000)
            #expect(zip(positions, positions.dropFirst()).allSatisfy { $1 == $0 + 1 }, "a position was skipped or repeated")
        }
        while appending.isExecuting || !appending.isFinished { usleep(1_000) }
        #expect(try fixture.readAll().map(\.position) == Array(1...(5_000 + 40 * 97)))
    }

    /// Decoded events share their chunk's buffer: whatever their sizes (empty, inline-sized, a buffer's
    /// growth, the payload limit), each payload and metadata is its own bytes, read in a long read
    /// (chunks decoded ahead) and a stream's, and stays so after the reader and its log are gone.
    @Test func decodedPayloadsAndMetadataAreTheirOwnBytesWhateverTheirSizes() throws {
        let fixture = try Fixture()
        let sizes = [0, 1, 13, 14, 15, 16, 200, 4_095, 16 << 10, 40_000]
        var proposed: [ProposedEvent] = []
        for index in 0..<3_000 {
            var event = fixture.event("s-\(index % 3)")
            let size = index == 2_500 ? Limits.payloadBytesMax : index % 50 == 0 ? sizes[index / 50 % sizes.count] : sizes[index % 7]
            var payload = [UInt8](repeating: 0, count: size)
            for offset in stride(from: 0, to: size, by: 61) { payload[offset] = UInt8(truncatingIfNeeded: offset / 61 &+ index) }
            event.payload = Data(payload)
            let metadataSize = [0, 9, 300][index % 3]
            event.metadata = Data((0..<metadataSize).map { UInt8(truncatingIfNeeded: $0 &+ index &* 7) })
            proposed.append(event)
        }
        for batch in stride(from: 0, to: proposed.count, by: 200) {
            try fixture.log.append(AppendRequest(events: Array(proposed[batch..<min(proposed.count, batch + 200)])))
        }
        var kept: [RecordedEvent] = []
        do {
            var reader = fixture.log.read()
            var index = 0
            try reader.forEach { event in
                #expect(event.hasSameContent(as: proposed[index]), "position \(event.position)")
                index += 1
                if index % 97 == 0 { kept.append(event) }
            }
            #expect(index == proposed.count)
            let stream = try fixture.readAll(ReadQuery(.stream("s-1")))
            #expect(stream.count == 1_000)
            for event in stream { #expect(event.hasSameContent(as: proposed[Int(event.position) - 1]), "position \(event.position)") }
        }
        for event in kept {
            let expected = proposed[Int(event.position) - 1]
            #expect(Array(event.payload) == Array(expected.payload))
            #expect(event.metadata.withUnsafeBytes { Array($0) } == Array(expected.metadata))
        }
    }

    /// Positions have no gaps: a read of a store missing a record throws, naming the position, rather
    /// than stepping over it, whether the record falls in a chunk decoded ahead, the first chunk, or a
    /// zero-copy scan; asked again, the read throws again at the same place.
    @Test(arguments: [5_000, 700, 1_025] as [UInt64]) func aReadOfAStoreMissingARecordThrowsAtIt(missing: UInt64) throws {
        let fixture = try Self.fixtureWith(10_000)
        try fixture.log.environment.write { txn in
            _ = try withBigEndian(missing) { try txn.delete(fixture.log.tables.events, key: $0) }
        }
        let problem = LogError.corruptRecord(position: missing,
                                             reason: "the record is missing: the log steps from position \(missing - 1) to \(missing + 1)")
        var reader = fixture.log.read()
        var positions: [UInt64] = []
        #expect(throws: problem) { try reader.forEach { positions.append($0.position) } }
        #expect(positions.count < missing && positions == Array(1..<UInt64(positions.count + 1)), "handed out \(positions.count) events in order")
        #expect(throws: problem) { while try reader.next() != nil {} }
        #expect(throws: problem) { try fixture.log.withSnapshot { try $0.forEach(ReadQuery(from: 2)) { _ in true } } }
        let backward = LogError.corruptRecord(position: missing,
                                              reason: "the record is missing: the log steps from position \(missing + 1) to \(missing - 1)")
        #expect(throws: backward) { try fixture.readAll(ReadQuery(backward: true)) }
        // Reads that do not cross it are whole.
        #expect(try fixture.readAll(ReadQuery(untilPosition: missing - 1)).count == Int(missing - 1))
        #expect(try fixture.readAll(ReadQuery(from: missing + 1)).count == 10_000 - Int(missing))
    }

    @Test func oneStreamByVersion() throws {
        let fixture = try Self.fixtureWith(2500)
        let stream = try fixture.readAll(ReadQuery(.stream("s-1")))
        #expect(stream.map(\.version) == Array(1...625))
        #expect(stream.allSatisfy { $0.stream == "s-1" })
        #expect(stream.map(\.position) == Array(stride(from: 2, through: 2500, by: 4)))
        #expect(try fixture.readAll(ReadQuery(.stream("s-1"), from: 600, limit: 3)).map(\.version) == [600, 601, 602])
        #expect(try fixture.readAll(ReadQuery(.stream("s-1"), from: 3, backward: true)).map(\.version) == [3, 2, 1])
        #expect(try fixture.readAll(ReadQuery(.stream("s-1"), backward: true, limit: 2)).map(\.version) == [625, 624])
        #expect(try fixture.readAll(ReadQuery(.stream("s-1"), untilPosition: 10)).map(\.position) == [2, 6, 10])
        #expect(try fixture.readAll(ReadQuery(.stream("nope"))).isEmpty)
        try fixture.log.withSnapshot { (snapshot) throws in
            #expect(try snapshot.version(of: "s-1") == 625)
            #expect(try snapshot.version(of: "nope") == 0)
        }
    }

    @Test func byEventType() throws {
        let fixture = try Self.fixtureWith(2500)
        #expect(try fixture.readAll(ReadQuery(.type("Odd"))).map(\.position) == Array(stride(from: 2, through: 2500, by: 2)))
        #expect(try fixture.readAll(ReadQuery(.type("Even"), from: 100, limit: 2)).map(\.position) == [101, 103])
        #expect(try fixture.readAll(ReadQuery(.type("Even"), from: 100, backward: true, limit: 2)).map(\.position) == [99, 97])
        #expect(try fixture.readAll(ReadQuery(.type("Even"), backward: true, limit: 1)).map(\.position) == [2499])
        #expect(try fixture.readAll(ReadQuery(.type("Missing"))).isEmpty)
    }

    @Test func aSliceFromAPositionInEverySelectionAndDirection() throws {
        let fixture = try Self.fixtureWith(2500)
        // The whole log: a position scan starts there, a backward one ends there; across chunks.
        #expect(try fixture.readAll(ReadQuery(limit: 3, sincePosition: 2400)).map(\.position) == [2400, 2401, 2402])
        #expect(try fixture.readAll(ReadQuery(backward: true, sincePosition: 2498)).map(\.position) == [2500, 2499, 2498])
        #expect(try fixture.readAll(ReadQuery(sincePosition: 500)).map(\.position) == Array(500...2500))
        #expect(try fixture.readAll(ReadQuery(from: 10, untilPosition: 22, sincePosition: 20)).map(\.position) == [20, 21, 22])
        #expect(try fixture.readAll(ReadQuery(from: 30, limit: 1, sincePosition: 20)).map(\.position) == [30])
        // A stream (s-1 holds positions 2, 6, 10, …) by version, and a type (Odd: the even positions).
        #expect(try fixture.readAll(ReadQuery(.stream("s-1"), sincePosition: 2480)).map(\.position) == [2482, 2486, 2490, 2494, 2498])
        #expect(try fixture.readAll(ReadQuery(.stream("s-1"), backward: true, sincePosition: 2490)).map(\.position) == [2498, 2494, 2490])
        #expect(try fixture.readAll(ReadQuery(.stream("s-1"), limit: 2, sincePosition: 1000)).map(\.version) == [251, 252])  // version v is at 4v − 2
        #expect(try fixture.readAll(ReadQuery(.type("Odd"), sincePosition: 2491)).map(\.position) == [2492, 2494, 2496, 2498, 2500])
        #expect(try fixture.readAll(ReadQuery(.type("Odd"), backward: true, sincePosition: 2495)).map(\.position) == [2500, 2498, 2496])
        #expect(try fixture.readAll(ReadQuery(sincePosition: 2501)).isEmpty)
    }

    @Test func positionsAsOfATime() throws {
        let fixture = try Fixture()
        for _ in 0..<10 {
            try fixture.append("s")
            fixture.clock.advance(microseconds: 1_000_000)
        }
        let events = try fixture.readAll()
        try fixture.log.withSnapshot { (snapshot) throws in
            #expect(try snapshot.position(atOrBefore: events[4].recordedAt) == 5)
            #expect(try snapshot.position(atOrBefore: Timestamp(microsecondsSinceEpoch: events[4].recordedAt.microsecondsSinceEpoch + 500_000)) == 5)
            #expect(try snapshot.position(atOrBefore: Timestamp(microsecondsSinceEpoch: 0)) == 0)
            #expect(try snapshot.position(atOrBefore: fixture.clock.now()) == 10)
        }
    }

    @Test func followDeliversTheBacklogThenNewEvents() async throws {
        let fixture = try Fixture()
        for _ in 0..<5 { try fixture.append("s") }
        let received = Task {
            var positions: [UInt64] = []
            for try await event in fixture.log.subscribe(ReadQuery(from: 3)) {
                positions.append(event.position)
                if positions.count == 8 { break }
            }
            return positions
        }
        for _ in 0..<5 { try await fixture.log.append(AppendRequest(events: [fixture.event("s")])) }
        #expect(try await received.value == Array(3...10))
    }

    /// A follow up to a position ends there: at once when the log is past it, else once it gets there.
    /// (Each follow would also end at a deadline, so a follow that never ends fails instead of hanging.)
    @Test func followUpToAPositionEndsThere() throws {
        let fixture = try Fixture()
        for index in 0..<5 { try fixture.append(index % 2 == 0 ? "even" : "odd") }
        let log = fixture.log
        let deadline = ContinuousClock.now + .seconds(20)
        @Sendable func follow(_ query: ReadQuery) throws -> (positions: [UInt64], endedByDeadline: Bool) {
            var positions: [UInt64] = [], late = false
            try log.follow(query, isStopped: { late = ContinuousClock.now > deadline; return late }) { positions.append($0.position); return true }
            return (positions, late)
        }
        let past = try follow(ReadQuery(.stream("even"), untilPosition: 4))
        #expect(past.positions == [1, 3] && !past.endedByDeadline)
        let ahead = ParallelSlots<Result<(positions: [UInt64], endedByDeadline: Bool), any Error>>(count: 1, initial: .success(([], false)))
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            ahead[0] = Result { try follow(ReadQuery(.stream("odd"), untilPosition: 9)) }
            done.signal()
        }
        for index in 5..<12 { try fixture.log.append(AppendRequest(events: [fixture.event(index % 2 == 0 ? "even" : "odd")])) }
        done.wait()
        let followed = try ahead[0].get()
        #expect(followed.positions == [2, 4, 6, 8] && !followed.endedByDeadline)
    }
}

@Suite struct MerkleAndVerifyContract {
    @Test func theHeadsMerkleRootMatchesTheRecordsAndProofsVerify() throws {
        let fixture = try Fixture()
        for batch in 0..<7 {
            try fixture.log.append(AppendRequest(events: (0..<(batch * 13 + 1)).map { _ in fixture.event("s-\(batch)") }))
        }
        let events = try fixture.readAll()
        let leaves = try fixture.log.withSnapshot { snapshot in try events.map { try snapshot.record(at: $0.position)!.hash } }
        var frontier = MerkleFrontier()
        for leaf in leaves { frontier.append(leaf: leaf) { _, _, _ in } }
        let head = try fixture.log.head()
        #expect(head.merkleRoot == frontier.root)
        try fixture.log.withSnapshot { (snapshot) throws in
            for size in [UInt64(1), 16, 17, 100, head.position] {
                var partial = MerkleFrontier()
                for leaf in leaves.prefix(Int(size)) { partial.append(leaf: leaf) { _, _, _ in } }
                let root = try snapshot.merkleRoot(size: size)
                #expect(root == partial.root)
                for position in [UInt64(1), size / 2 + 1, size] {
                    let path = try snapshot.inclusionPath(position: position, treeSize: size)
                    #expect(throws: Never.self) { try Merkle.verifyInclusion(leafIndex: position - 1, treeSize: size, leafHash: leaves[Int(position - 1)], path: path, root: root) }
                }
                if size < head.position {
                    let path = try snapshot.consistencyPath(from: size, to: head.position)
                    #expect(throws: Never.self) { try Merkle.verifyConsistency(first: size, second: head.position, path: path, firstRoot: root, secondRoot: head.merkleRoot) }
                }
            }
        }
        #expect(try fixture.log.verify().isSound)
    }

    @Test func theRecordEncodingIsPinned() throws {
        let fixture = try Fixture()
        var event = ProposedEvent(id: UUID(uuidString: "01890a5d-ac96-774b-bcce-b302099a8057")!, stream: "cart-1", type: "ItemAdded",
                                  schemaVersion: 2, actor: "member:7", payload: Data(#"{"sku":"000123"}"#.utf8))
        event.correlationID = UUID(uuidString: "00000000-0000-0000-0000-000000000001")
        fixture.clock.set(Timestamp(microsecondsSinceEpoch: 1_790_000_000_123_456))
        try fixture.log.append(AppendRequest(events: [event]))
        let bytes = try fixture.log.withSnapshot { try Array($0.record(at: 1)!.bytes) }
        // Format 2, flags 1 (correlation id), schema version 2 and stream version 1 as varints, the time, the id.
        let header = "02" + "01" + "02" + "01" + "40c227dafe5b0600" + "01890a5dac96774bbcceb302099a8057"
        let body = "06" + Array("cart-1".utf8).hex + "09" + Array("ItemAdded".utf8).hex + "08" + Array("member:7".utf8).hex
            + "00000000000000000000000000000001" + "00" + "10" + Array(#"{"sku":"000123"}"#.utf8).hex
        #expect(bytes.dropLast(32).hex == header + body)
        // The record's hash, recomputed by hand: SHA-256(0x00 ‖ format ‖ flags ‖ schema (u16) ‖ position (u64) ‖
        // version (u64) ‖ time ‖ id ‖ SHA-256(body) ‖ previous hash (zero for position 1)).
        let bodyBytes = Array(bytes[28..<(bytes.count - 32)])
        let bodyDigest = bodyBytes.withUnsafeBytes { sha256($0) }
        var leaf: [UInt8] = [0, 2, 1, 2, 0] + [1, 0, 0, 0, 0, 0, 0, 0] + [1, 0, 0, 0, 0, 0, 0, 0] + Array(bytes[4..<28])
        leaf += bodyDigest.bytes + [UInt8](repeating: 0, count: 32)
        #expect(leaf.count == 109)
        #expect(Array(bytes.suffix(32)).hex == leaf.withUnsafeBytes { sha256($0) }.hex)
        let view = try bytes.withUnsafeBytes { try RecordView(bytes: $0, position: 1).decode() }
        #expect(view.hash.hex == Array(bytes.suffix(32)).hex)
        #expect(view.schemaVersion == 2 && view.version == 1 && view.recordedAt.microsecondsSinceEpoch == 1_790_000_000_123_456)
    }

    /// A store upgraded from format 1 keeps its records: format 1 records (fixed u16 schema and u64
    /// version, the body at byte 36) must still read, and their hashes still check.
    @Test func aFormatOneRecordStillReadsAndItsHashChecks() throws {
        let header: [UInt8] = [1, 0, 3, 0] + [200, 1, 0, 0, 0, 0, 0, 0] + [0x40, 0xc2, 0x27, 0xda, 0xfe, 0x5b, 0x06, 0x00]
            + Array(repeating: 0xab, count: 16)
        let body: [UInt8] = [4] + Array("s-42".utf8) + [3] + Array("Hit".utf8) + [1] + Array("a".utf8) + [0] + [2] + Array("{}".utf8)
        let previous = Hash(bytes: Array(repeating: 7, count: 32))!
        // The leaf data of format 1 is the record's first 4 bytes, the position, then bytes 4..<36.
        var leaf: [UInt8] = [0] + header[0..<4] + [9, 0, 0, 0, 0, 0, 0, 0] + header[4..<36]
        leaf += body.withUnsafeBytes { sha256($0) }.bytes + previous.bytes
        let hash = leaf.withUnsafeBytes { sha256($0) }
        let record = header + body + hash.bytes
        try record.withUnsafeBytes { raw in
            let view = try RecordView(bytes: raw, position: 9)
            #expect(view.format == 1 && view.schemaVersion == 3 && view.version == 456)
            #expect(view.stream == "s-42" && view.type == "Hit" && view.actor == "a")
            #expect(view.id == UUID(uuid: (0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab)))
            #expect(view.computedHash(previous: previous) == hash)
            #expect(view.computedHash(previous: .zero) != hash)
        }
        // Format 2's varints are held to what the writer writes: minimal, and within the field's range.
        let wellFormed = [UInt8]([2, 0, 3, 0x80, 0x01]) + header[12..<36] + body + hash.bytes
        #expect(try wellFormed.withUnsafeBytes { try RecordView(bytes: $0, position: 9).version } == 128)
        let refused: [(prefix: [UInt8], reason: String)] = [
            ([2, 0, 0x83, 0x00, 1], "the schema version is not minimally encoded"),
            ([2, 0, 0x80, 0x80, 0x04, 1], "the schema version is 65536, over the limit of 65535"),
            ([2, 0, 3, 0x80, 0x80, 0x80, 0x80, 0x10], "the stream version is 4294967296, over the limit of 4294967295"),
            ([2, 0, 3, 0], "stream version 0"),
            ([3, 0, 3, 1], "unknown record format 3"),
        ]
        for (prefix, reason) in refused {
            let bytes = prefix + header[12..<36] + body + hash.bytes
            #expect(throws: LogError.corruptRecord(position: 9, reason: reason)) { try bytes.withUnsafeBytes { _ = try RecordView(bytes: $0, position: 9) } }
        }
    }
}

extension Collection<UInt8> {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}

@Suite struct TimestampTextContract {
    /// The RFC 3339 text read models store, against Foundation's formatter, across leap days, the epoch,
    /// before it, and every microsecond width.
    @Test func iso8601MatchesFoundationsFormatter() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        var random = SplitMix64(seed: 7)
        let samples: [Int64] = [0, 1, 999_999, 1_000_000, -1, -1_000_001, 951_782_400_000_000, 1_795_348_800_123_456, 253_402_300_799_999_999]
            // From 1600 (Foundation's calendar is Julian before 1582; gmtime's is proleptic Gregorian) to 9999.
            + (0..<500).map { _ in Int64(random.next() % 265_000_000_000_000_000) - 11_676_096_000_000_000 }
        for micros in samples {
            let timestamp = Timestamp(microsecondsSinceEpoch: micros)
            let seconds = micros.floorDivided(by: 1_000_000)
            let fraction = micros - seconds * 1_000_000
            let expected = formatter.string(from: Date(timeIntervalSince1970: Double(seconds))) + "." + String(format: "%06lld", fraction) + "Z"
            #expect(timestamp.iso8601 == expected, "\(micros)")
            // And back, to the microsecond: a time printed for an event selects that event.
            #expect(Timestamp(iso8601: expected) == timestamp, "\(expected)")
        }
    }

    /// Any recorded time prints, whatever a record or an injected clock holds: outside RFC 3339's years
    /// as a plain count, never a crash (Int64.min overflowed on the way to whole seconds).
    @Test func everyTimestampPrintsEvenOutsideRFC3339sYears() {
        for micros in [Int64.min, .min + 1, -62_167_219_200_000_001, .max - 1, .max] {
            let text = Timestamp(microsecondsSinceEpoch: micros).iso8601
            #expect(text.hasSuffix("(outside RFC 3339's years)"), "\(micros): \(text)")
            #expect(Timestamp(iso8601: text) == nil)
        }
        #expect(Timestamp(microsecondsSinceEpoch: -62_167_219_200_000_000).iso8601 == "0000-01-01T00:00:00.000000Z")
    }

    @Test(arguments: [
        ("2026-11-22", 1_795_305_600_000_000),
        ("2026-11-22T09:30:00Z", 1_795_339_800_000_000),
        ("2026-11-22t09:30:00z", 1_795_339_800_000_000),
        ("2026-11-22 09:30:00Z", 1_795_339_800_000_000),
        ("2026-11-22T09:30:00.1Z", 1_795_339_800_100_000),
        ("2026-11-22T09:30:00.000125Z", 1_795_339_800_000_125),
        ("2026-11-22T09:30:00.0001259Z", 1_795_339_800_000_125),  // beyond the microsecond: dropped
        ("2026-11-22T10:30:00.000125+01:00", 1_795_339_800_000_125),
        ("2026-11-22T04:00:00-05:30", 1_795_339_800_000_000),
        ("2026-11-22T09:30:00-00:00", 1_795_339_800_000_000),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000_000),
        ("2000-02-29", 951_782_400_000_000),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("0001-01-01", -62_135_596_800_000_000),
    ] as [(String, Int64)])
    func rfc3339TimesAndDatesParse(text: String, micros: Int64) {
        #expect(Timestamp(iso8601: text)?.microsecondsSinceEpoch == micros)
    }

    @Test(arguments: [
        "", "yesterday", "2026-11-22T09:30:00", "2026-11-22T09:30Z", "2026-11-22T09:30:00.Z", "2026-11-22T09:30:00ZZ",
        "2026-02-29", "1900-02-29", "2026-13-01", "2026-00-10", "2026-11-31", "2026-11-22T24:00:00Z", "2026-11-22T09:60:00Z",
        "2026-11-22T23:59:60Z", "2026-11-22T09:30:00+1:00", "2026-11-22T09:30:00+24:00", "26-11-22", "2026-11-22T", "2026-11-22 ",
        "+2026-11-22", "２０２６-11-22",
    ])
    func otherTextIsRefused(text: String) {
        #expect(Timestamp(iso8601: text) == nil)
    }
}
