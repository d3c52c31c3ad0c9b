import CLMDB
import Foundation
import Synchronization
import Testing
import TallyTestSupport
@testable import TallyLMDB

func temporaryDirectory(_ name: String = "lmdb") -> String {
    let path = testPath(name)
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

extension String {
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = self
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}

@Suite struct LMDBLayerTests {
    @Test func flagValuesAreLMDBs() {
        #expect(TableFlags.duplicateSort.rawValue == 0x04 && TableFlags.duplicateSort.rawValue == UInt32(MDB_DUPSORT))
        #expect(TableFlags.duplicateFixed.rawValue == 0x10 && TableFlags.duplicateFixed.rawValue == UInt32(MDB_DUPFIXED))
        #expect(PutFlags.noOverwrite.rawValue == 0x10 && PutFlags.noOverwrite.rawValue == UInt32(MDB_NOOVERWRITE))
        #expect(PutFlags.noDuplicateData.rawValue == 0x20 && PutFlags.noDuplicateData.rawValue == UInt32(MDB_NODUPDATA))
        #expect(PutFlags.append.rawValue == 0x20000 && PutFlags.append.rawValue == UInt32(MDB_APPEND))
        #expect(PutFlags.appendDuplicate.rawValue == 0x40000 && PutFlags.appendDuplicate.rawValue == UInt32(MDB_APPENDDUP))
        #expect(LMDBError.keyExistsCode == -30799 && LMDBError.notFoundCode == -30798)
        #expect(LMDBError.mapFullCode == -30792 && LMDBError.mapResizedCode == -30785)
        #expect(LMDBError.readersFullCode == -30790)
        #expect(MDB_LAST_ERRCODE == MDB_BAD_DBI)  // Debian's 0.9.24: the codes above are all it has.
    }

    @Test func errorsCarryLMDBsText() {
        let error = LMDBError(code: MDB_MAP_FULL, operation: "put into table x")
        #expect(error.description.contains("MDB_MAP_FULL"))
        #expect(error.description.contains("put into table x"))
        #expect(error.isMapFull)
    }

    /// LMDB reports a short write as EIO: with little space left on the file system the message says
    /// the disk is probably full (checked by hand on a 6 MB tmpfs: the store stayed at its last
    /// commit, and appends went on once a file was removed), otherwise it is LMDB's word alone.
    @Test func aCommitThatFailsOnAFullDiskSaysSo() {
        let full = Environment.commitFailure(EIO, freeBytes: 0, path: "/s/log")
        #expect(full == "commit a write transaction (the file system holding /s/log has 0 bytes free: it is probably full; "
                + "the store stays as it was before this transaction, and appends go on once there is room)")
        #expect(Environment.commitFailure(ENOSPC, freeBytes: 4096, path: "/s/log").contains("probably full"))
        #expect(Environment.commitFailure(EIO, freeBytes: 10 << 30, path: "/s/log") == "commit a write transaction")
        #expect(Environment.commitFailure(EIO, freeBytes: nil, path: "/s/log") == "commit a write transaction")
        #expect(LMDBError(code: EIO, operation: full).description.hasSuffix("failed: Input/output error (code 5)"))
    }

    @Test func writeCommitsOnReturnAndAbortsOnThrow() throws {
        let environment = try Environment.open(path: temporaryDirectory())
        let table = try environment.openTable("t")
        try environment.write { txn in try "k1".withBytes { key in try "v1".withBytes { try txn.put(table, key: key, value: $0) } } }
        struct Refused: Error {}
        #expect(throws: Refused.self) {
            try environment.write { txn in
                try "k2".withBytes { key in try "v2".withBytes { try txn.put(table, key: key, value: $0) } }
                throw Refused()
            }
        }
        try environment.read { txn in
            let first = try "k1".withBytes { try txn.get(table, key: $0).map { String(decoding: $0, as: UTF8.self) } }
            let second = try "k2".withBytes { try txn.get(table, key: $0) }
            let count = try txn.count(table)
            #expect(first == "v1")
            #expect(second == nil)
            #expect(count == 1)
        }
    }

    @Test func insertRefusesAPresentKey() throws {
        let environment = try Environment.open(path: temporaryDirectory())
        let table = try environment.openTable("t")
        try environment.write { txn in
            let inserted = try "k".withBytes { key in try "a".withBytes { try txn.insert(table, key: key, value: $0) } }
            let insertedAgain = try "k".withBytes { key in try "b".withBytes { try txn.insert(table, key: key, value: $0) } }
            let stored = try "k".withBytes { try txn.get(table, key: $0).map { String(decoding: $0, as: UTF8.self) } }
            #expect(inserted)
            #expect(!insertedAgain)
            #expect(stored == "a")
        }
    }

    @Test func cursorsWalkDuplicatesInOrder() throws {
        let environment = try Environment.open(path: temporaryDirectory())
        let table = try environment.openTable("d", flags: [.duplicateSort, .duplicateFixed])
        try environment.write { txn in
            for key in ["a", "b"] {
                for value in [UInt64(3), 1, 2] {
                    var big = value.bigEndian
                    try key.withBytes { k in try withUnsafeBytes(of: &big) { try txn.put(table, key: k, value: $0) } }
                }
            }
        }
        try environment.read { txn in
            try txn.withCursor(table) { cursor in
                var values: [UInt64] = []
                var entry = try "a".withBytes { try cursor.find($0) }
                while let current = entry {
                    values.append(UInt64(bigEndian: current.value.loadUnaligned(as: UInt64.self)))
                    entry = try cursor.nextDuplicate()
                }
                #expect(values == [1, 2, 3])
                let duplicates = try cursor.duplicateCount()
                #expect(duplicates == 3)
                var two = UInt64(2).bigEndian
                let found = try "b".withBytes { key in try withUnsafeBytes(of: &two) { try cursor.seek(key, duplicateAtLeast: $0) } }
                #expect(found.map { UInt64(bigEndian: $0.value.loadUnaligned(as: UInt64.self)) } == 2)
                let last = try cursor.lastDuplicate().map { UInt64(bigEndian: $0.value.loadUnaligned(as: UInt64.self)) }
                #expect(last == 3)
            }
        }
    }

    /// The index merge's way of writing: one cursor, keys in order, each key's new duplicates in one
    /// call, new keys at the end. In a map small enough to grow under it, and with a duplicate out of
    /// order refused whole.
    @Test func duplicatesPutManyAtOnceThroughOneCursorLandInOrder() throws {
        var options = EnvironmentOptions()
        options.mapSizeInitialBytes = 64 << 10
        let environment = try Environment.open(path: temporaryDirectory(), options: options)
        let table = try environment.openTable("d", flags: [.duplicateSort, .duplicateFixed])
        func value(_ key: UInt64, _ n: UInt64) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: 10)
            withUnsafeBytes(of: (key << 16 | n).bigEndian) { bytes.replaceSubrange(2..<10, with: $0) }
            return bytes
        }
        var expected: [UInt64: [[UInt8]]] = [:]
        // Two rounds: new keys appended with 1–5 duplicates each, then more duplicates for every third key.
        // (The map fills and the transaction runs again, so its body only writes what was planned.)
        for round in 0..<2 {
            var planned: [(key: UInt64, values: [UInt8])] = []
            for key in UInt64(1)...3_000 where round == 0 || key % 3 == 0 {
                let first = UInt64(expected[key]?.count ?? 0)
                let values = (first..<first + 1 + key % 5).map { value(key, $0) }
                expected[key, default: []] += values
                planned.append((key, values.flatMap { $0 }))
            }
            try environment.write { txn in
                try txn.withWriteCursor(table) { cursor in
                    for (key, flat) in planned {
                        var bigKey = key.bigEndian
                        try withUnsafeBytes(of: &bigKey) { k in
                            try flat.withUnsafeBytes {
                                try cursor.putDuplicates(key: k, values: $0, valueSize: 10, flags: round == 0 ? [.append, .appendDuplicate] : .appendDuplicate)
                            }
                        }
                    }
                }
            }
        }
        #expect(environment.info().mapSizeBytes > 64 << 10)
        try environment.read { txn in
            try txn.withCursor(table) { cursor in
                var found: [UInt64: [[UInt8]]] = [:]
                var entry = try cursor.first()
                while let current = entry {
                    found[UInt64(bigEndian: current.key.loadUnaligned(as: UInt64.self)), default: []].append(Array(current.value))
                    entry = try cursor.next()
                }
                let wrongKeys = expected.keys.filter { found[$0] != expected[$0] }.sorted()
                #expect(found.count == expected.count)
                #expect(wrongKeys.isEmpty, "keys whose duplicates differ: \(wrongKeys.prefix(10))")
            }
        }
        let refused = #expect(throws: LMDBError.self) {
            try environment.write { txn in
                try txn.withWriteCursor(table) { cursor in
                    var key = UInt64(3).bigEndian
                    let flat = value(3, 100) + value(3, 0)  // the second is below the key's last duplicate
                    try withUnsafeBytes(of: &key) { k in try flat.withUnsafeBytes { try cursor.putDuplicates(key: k, values: $0, valueSize: 10, flags: .appendDuplicate) } }
                }
            }
        }
        #expect(refused?.isKeyExists == true)
        let count = try environment.read { txn in try txn.count(table) }
        #expect(count == expected.values.reduce(0) { $0 + $1.count })
    }

    @Test func appendRefusesAKeyThatIsNotGreatest() throws {
        let environment = try Environment.open(path: temporaryDirectory())
        let table = try environment.openTable("t")
        let error = #expect(throws: LMDBError.self) {
            try environment.write { txn in
                try "b".withBytes { k in try "1".withBytes { try txn.put(table, key: k, value: $0, flags: .append) } }
                try "a".withBytes { k in try "2".withBytes { try txn.put(table, key: k, value: $0, flags: .append) } }
            }
        }
        #expect(error?.isKeyExists == true)
        let count = try environment.read { txn in try txn.count(table) }
        #expect(count == 0)
    }

    @Test func theSamePathOpensTheSameEnvironment() throws {
        let path = temporaryDirectory()
        let first = try Environment.open(path: path)
        let second = try Environment.open(path: path + "/.")
        #expect(first === second)
    }

    @Test func theMapGrowsWhenItFillsAndKeepsEverything() throws {
        var options = EnvironmentOptions()
        options.mapSizeInitialBytes = 256 << 10
        let environment = try Environment.open(path: temporaryDirectory(), options: options)
        let table = try environment.openTable("t")
        let value = [UInt8](repeating: 7, count: 1000)
        for batch in 0..<20 {
            try environment.write { txn in
                for index in 0..<500 {
                    var key = UInt64(batch * 500 + index).bigEndian
                    try withUnsafeBytes(of: &key) { k in try value.withUnsafeBytes { try txn.put(table, key: k, value: $0, flags: .append) } }
                }
            }
        }
        #expect(environment.info().mapSizeBytes > 256 << 10)
        let count = try environment.read { txn in try txn.count(table) }
        #expect(count == 10_000)
    }

    /// Growing the map needs every transaction of the process ended. Readers that always overlap (as
    /// many threads reading do) must not keep it, and every write behind it, waiting: new transactions
    /// wait while a resize is pending, and one nested in another on the same thread does not.
    @Test func theMapGrowsWhileOtherThreadsReadWithoutPause() throws {
        var options = EnvironmentOptions()
        options.mapSizeInitialBytes = 256 << 10
        let environment = try Environment.open(path: temporaryDirectory(), options: options)
        let table = try environment.openTable("t")
        let stop = Atomic<Bool>(false)
        let readersDone = DispatchGroup()
        for reader in 0..<4 {
            readersDone.enter()
            Thread {
                usleep(UInt32(reader) * 500)  // Staggered: some reader always holds a transaction.
                while !stop.load(ordering: .relaxed) {
                    _ = try? environment.read { _ in
                        usleep(2_000)
                        // A transaction begun inside another on the same thread never waits for the resize.
                        _ = try? environment.read { txn in try txn.count(table) }
                    }
                }
                readersDone.leave()
            }.start()
        }
        let written = DispatchSemaphore(value: 0)
        Thread {
            let value = [UInt8](repeating: 7, count: 1000)
            for batch in 0..<8 {
                _ = try? environment.write { txn in
                    for index in 0..<500 {
                        var key = UInt64(batch * 500 + index).bigEndian
                        try withUnsafeBytes(of: &key) { k in try value.withUnsafeBytes { try txn.put(table, key: k, value: $0, flags: .append) } }
                    }
                }
            }
            written.signal()
        }.start()
        let finished = written.wait(timeout: .now() + 10) == .success
        stop.store(true, ordering: .relaxed)
        if !finished { written.wait() }  // Let the writer finish once the readers stop, then fail.
        readersDone.wait()
        #expect(finished, "the writer waited more than 10 s for readers to let the map grow")
        #expect(environment.info().mapSizeBytes >= 4 << 20)
        #expect(try environment.read { txn in try txn.count(table) } == 4_000)
    }

    @Test func aFullMapAtItsMaximumIsAClearError() throws {
        var options = EnvironmentOptions()
        options.mapSizeInitialBytes = 256 << 10
        options.mapSizeMaxBytes = 1 << 20
        let environment = try Environment.open(path: temporaryDirectory(), options: options)
        let table = try environment.openTable("t")
        let value = [UInt8](repeating: 1, count: 4000)
        let error = #expect(throws: LMDBMapFullError.self) {
            try environment.write { txn in
                for index in 0..<1000 {
                    var key = UInt64(index).bigEndian
                    try withUnsafeBytes(of: &key) { k in try value.withUnsafeBytes { try txn.put(table, key: k, value: $0) } }
                }
            }
        }
        #expect(error?.description.contains("maximum") == true)
        let count = try environment.read { txn in try txn.count(table) }
        #expect(count == 0)
    }
}

@Suite struct ReadAheadTests {
    /// What `prefetchBelow` stands on: values appended in key order lie on a leaf page from its end
    /// down, so a forward scan's next value on the same page begins within a record's size below the
    /// one before it. And a prefetch never faults, whatever the address.
    @Test func theNextValueOfAForwardScanLiesJustBelow() throws {
        let environment = try Environment.open(path: temporaryDirectory())
        let table = try environment.openTable("t")
        let value = [UInt8](repeating: 7, count: 200)
        try environment.write { txn in
            for key in 1...2_000 as ClosedRange<UInt64> {
                try withUnsafeBytes(of: key.bigEndian) { key in try value.withUnsafeBytes { try txn.put(table, key: key, value: $0, flags: .append) } }
            }
        }
        let page = Int(ReadAhead.pageBytes)
        var samePage = 0, below = 0
        try environment.read { txn in
            try txn.withCursor(table) { cursor in
                var previous: UnsafeRawPointer?
                var entry = try cursor.first()
                while let current = entry {
                    let address = current.value.baseAddress!
                    prefetchBelow(current.value, bytes: ReadAhead.nextValueBytes)
                    if let previous, Int(bitPattern: previous) / page == Int(bitPattern: address) / page {
                        samePage += 1
                        let gap = previous - address
                        if gap > 0 && gap <= ReadAhead.nextValueBytes { below += 1 }
                    }
                    previous = address
                    entry = try cursor.next()
                }
            }
        }
        #expect(samePage > 1_500, "values of 200 bytes share pages: \(samePage) of 1,999 neighbours did")
        #expect(below == samePage, "\(below) of \(samePage) neighbours on a page lay within \(ReadAhead.nextValueBytes) bytes below")
        for address in [8, 64, 4_096, Int.max - 4_096] as [Int] {
            prefetchBelow(UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: address), count: 8), bytes: 4_096)
        }
    }

    /// Notes records of `size` bytes from `from` towards `to` (either way) and returns the windows advised.
    func windows(from: UInt, to: UInt, size: UInt, backward: Bool) -> [(start: UInt, length: Int)] {
        let advised = Mutex<[(start: UInt, length: Int)]>([])
        var readAhead = ReadAhead(backward: backward) { start, length in advised.withLock { $0.append((start, length)) } }
        var address = from
        while backward ? address >= to : address < to {
            readAhead.note(UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: address), count: Int(size)))
            address = backward ? address - size : address + size
        }
        return advised.withLock { $0 }
    }

    @Test(arguments: [false, true])
    func aScanIsAdvisedAheadOfItselfOnceEveryHalfWindow(backward: Bool) throws {
        let page = ReadAhead.pageBytes, window = UInt(ReadAhead.windowBytes)
        let start: UInt = 0x7000_0000_0000, span: UInt = 16 << 20
        let advised = backward ? windows(from: start + span - 300, to: start, size: 300, backward: true)
                               : windows(from: start + 123, to: start + span, size: 300, backward: false)
        // About one window per half window scanned, not one per record.
        #expect((Int(span / (window / 2)) - 1...Int(span / (window / 2)) + 1).contains(advised.count), "\(advised.count)")
        for (index, advice) in advised.enumerated() {
            #expect(advice.start % page == 0 && advice.length == Int(window))
            guard index > 0 else { continue }
            // Each window moves on by half a window, in the scan's direction, and overlaps the last.
            let previous = advised[index - 1].start
            #expect(backward ? advice.start < previous && previous - advice.start <= window / 2 + page
                             : advice.start > previous && advice.start - previous <= window / 2 + page)
        }
        // The first window is advised once the scan has gone `startBytes`, from where it then is.
        let first = try #require(advised.first)
        let firstAddress = backward ? start + span - 300 : start + 123
        let startBytes = UInt(ReadAhead.startBytes)
        #expect(backward ? first.start + UInt(first.length) <= firstAddress - startBytes + 2 * page
                         : first.start >= firstAddress + startBytes - page - 300)
        #expect(backward ? first.start + UInt(first.length) + startBytes + 2 * page >= firstAddress
                         : first.start <= firstAddress + startBytes + page)
    }

    @Test func aShortScanIsNotAdvisedAndAJumpBackIsAdvisedAtItsNewPlace() {
        let advised = Mutex<[UInt]>([])
        var readAhead = ReadAhead { start, _ in advised.withLock { $0.append(start) } }
        let base: UInt = 0x7000_0000_0000
        // Within the first `startBytes`: nothing (a reader's index tail, the writer's own events).
        for address in stride(from: base + 40_000, to: base + 40_000 + UInt(ReadAhead.startBytes) - 8_192, by: 300) {
            readAhead.note(UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: address), count: 300))
        }
        #expect(advised.withLock { $0 }.isEmpty)
        for address in [base + 8_192, base + 9_000] {
            readAhead.note(UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: address), count: 300))
        }
        #expect(advised.withLock { $0 } == [base + 8_192])
    }
}
