import Foundation
import Testing
import TallyTestSupport
@testable import TallyLog

func temporaryStorePath(_ name: String = "store") -> String { testPath(name) }

/// A new store with a manual clock and seeded ids, so every run records the same history.
struct Fixture {
    let path: String
    let clock: ManualClock
    let ids: EventIDGenerator
    let log: EventLog

    /// `indexTailEventsMax` defaults to a tiny 7 so that merges of the index tail happen in every test;
    /// suites that matter run with the product default too.
    init(mapSizeInitialBytes: Int? = nil, indexTailEventsMax: UInt64 = 7, streamCacheEntriesMax: Int? = nil) throws {
        path = temporaryStorePath()
        clock = ManualClock()
        ids = EventIDGenerator(clock: clock, seed: 42)
        var options = LogOptions()
        options.clock = clock
        options.followPollInterval = .milliseconds(5)
        options.indexTailEventsMax = indexTailEventsMax
        if let mapSizeInitialBytes { options.mapSizeInitialBytes = mapSizeInitialBytes }
        if let streamCacheEntriesMax { options.streamCacheEntriesMax = streamCacheEntriesMax }
        log = try EventLog.create(at: path, options: options)
    }

    func event(_ stream: String, _ type: String = "ItemAdded", _ payload: String = "{}", actor: String = "test") -> ProposedEvent {
        ProposedEvent(id: ids.next(), stream: stream, type: type, actor: actor, payload: Data(payload.utf8))
    }

    @discardableResult
    func append(_ stream: String, _ events: [ProposedEvent]? = nil, expected: ExpectedVersion = .any) throws -> AppendResult {
        try log.append(AppendRequest(stream: stream, expected: expected, events: events ?? [event(stream)]))
    }

    func readAll(_ query: ReadQuery = ReadQuery()) throws -> [RecordedEvent] {
        var reader = log.read(query)
        var events: [RecordedEvent] = []
        try reader.forEach { events.append($0) }
        return events
    }
}

/// Where SwiftPM put the products this test bundle was built with.
func productPath(_ name: String) -> String {
    guard let path = TallyTestSupport.productPath(name) else {
        Issue.record("cannot find the \(name) executable next to the tests")
        return name
    }
    return path
}

/// A child process whose standard output is read line by line.
final class Child: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    private var buffer = Data()

    init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
    }

    /// The next full line, or nil once the child closed its output.
    func readLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }

    /// Every line the child writes until it ends.
    func readRemainingLines() -> [String] {
        var lines: [String] = []
        while let line = readLine() { lines.append(line) }
        return lines
    }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Rewrites the record at `position` with `change` applied to its bytes, behind the log's back.
func alterRecord(_ log: EventLog, _ position: UInt64, _ change: (inout [UInt8]) -> Void) throws {
    try log.environment.write { txn in
        try withBigEndian(position) { key in
            var bytes = Array(try #require(try txn.get(log.tables.events, key: key)))
            change(&bytes)
            try bytes.withUnsafeBytes { try txn.put(log.tables.events, key: key, value: $0) }
        }
    }
}
