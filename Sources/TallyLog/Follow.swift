import Foundation

extension EventLog {
    /// Delivers every event `query` selects from its start, then each new one as it commits, in order
    /// and once each, until `body` returns false. New events appended by this process wake the follower
    /// at once; those appended by other processes are seen within `options.followPollInterval`. With
    /// `query.untilPosition`, it returns once everything up to that position was delivered (waiting
    /// for the log to reach it, if it has not yet).
    public func follow(_ query: ReadQuery, _ body: (RecordedEvent) throws -> Bool) throws {
        try follow(query, isStopped: { Task.isCancelled }, body)
    }

    /// `follow`, also ending when `isStopped` says so while it waits for new events.
    public func follow(_ query: ReadQuery, isStopped: () -> Bool, _ body: (RecordedEvent) throws -> Bool) throws {
        precondition(!query.backward, "a backward read cannot be followed")
        var next = query.from
        var remaining = query.limit ?? .max
        while remaining > 0 {
            let seenHead = try head().position
            var delivered = 0
            var stop = false
            var batch: [RecordedEvent] = []
            batch.reserveCapacity(Limits.readChunkEvents)
            try withSnapshot { snapshot in
                try LogReading.scan(snapshot.txn, tables: tables, tail: snapshot.tail, query: query, from: next) { record in
                    batch.append(record.decode())
                    return batch.count < Limits.readChunkEvents
                }
            }
            for event in batch {
                switch query.selection {
                case .stream: next = event.version + 1
                case .all, .type: next = event.position + 1
                }
                delivered += 1
                remaining -= 1
                if try !body(event) || remaining == 0 { stop = true; break }
            }
            if stop { return }
            if delivered == 0 {
                // Everything up to the bound was in that snapshot: nothing selected can come any more.
                if let until = query.untilPosition, seenHead >= until { return }
                if isStopped() { return }
                signal.wait(after: seenHead, timeout: options.followPollInterval)
            }
        }
    }

    /// Waits until the log's head passes `position`: woken at once by this process's commits, and
    /// returning after `timeout` (default: the follow poll interval) so the caller can look for other
    /// processes' commits. Returns the head position then.
    @discardableResult
    public func waitForCommit(after position: UInt64, timeout: Duration? = nil) throws -> UInt64 {
        let head = try head().position
        if head > position { return head }
        signal.wait(after: position, timeout: timeout ?? options.followPollInterval)
        return try self.head().position
    }

    /// `follow` as an asynchronous sequence, run on its own thread. Ends when the consumer stops
    /// iterating (the stream is terminated) or an error occurs.
    public func subscribe(_ query: ReadQuery) -> AsyncThrowingStream<RecordedEvent, any Error> {
        AsyncThrowingStream(bufferingPolicy: .bufferingOldest(Limits.readChunkEvents)) { continuation in
            let stopped = StopFlag()
            continuation.onTermination = { _ in stopped.set() }
            startNamedThread("tally-follow") {
                do {
                    try self.follow(query, isStopped: { stopped.isSet }) { event in
                        while true {
                            if stopped.isSet { return false }
                            switch continuation.yield(event) {
                            case .enqueued: return true
                            case .terminated: return false
                            case .dropped: Thread.sleep(forTimeInterval: 0.001)  // Consumer is behind: wait for room.
                            @unknown default: return false
                            }
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
        }
    }
}

final class StopFlag: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
