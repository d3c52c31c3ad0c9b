import Foundation
import GRDB
import TallyLog

/// Where one read model stands.
public struct ProjectionStatus: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable {
        /// Serving, at the log's head.
        case current
        /// Serving, behind the head: `tally projections run` (or a report) catches it up.
        case behind
        /// Serving an older version (or nothing) while the current version is being built.
        case building
        /// The serving file is of another version or store, and no build has started.
        case stale
        /// Never built.
        case missing
        /// Stopped at an event it could not apply; it stays at its last good checkpoint.
        case failed
        /// The serving file is there but cannot be opened or read now (the disk full, its permissions,
        /// damage): `failure` says why. It was "missing" until 2026-12-02, as if never built.
        case unreadable
    }

    public var name: String
    /// The version of the projector in this build of Tally.
    public var version: Int
    public var state: State
    /// The version of the serving file, if any.
    public var servingVersion: Int?
    /// The serving file's checkpoint: the last log position it applied.
    public var checkpoint: UInt64?
    public var head: UInt64
    /// Events the serving file is behind the head.
    public var lag: UInt64?
    public var file: String?
    /// An unfinished build of the current version, and how far it got.
    public var buildFile: String?
    public var buildCheckpoint: UInt64?
    /// The failure that stopped it: position, type, cause.
    public var failure: String?
    /// The same, by field: what `setAside` takes.
    public var stop: Stop?
    /// Positions of the events an admin set aside for this read model (`SetAsideEvent`).
    public var setAside: [UInt64] = []

    public struct Stop: Sendable, Codable, Equatable {
        public var position: UInt64
        public var type: String
        public var error: String
    }

    mutating func stopped(at stop: Stop) {
        state = .failed
        self.stop = stop
        failure = "position \(stop.position) (\(stop.type)): \(stop.error)"
    }
}

extension ProjectionRunner {
    /// The status of every projector, read without locking or writing anything.
    public func status() throws -> [ProjectionStatus] {
        let head = try log.head().position
        let storeID = try log.storeID().uuidString
        let setAside = try setAsideEvents()
        return projectors.map { projector in
            var status = ProjectionStatus(name: projector.name, version: projector.version, state: .missing, head: head)
            status.setAside = setAside.filter { $0.projection == projector.name }.map(\.position).sorted()
            if let target = servingTarget(projector.name), FileManager.default.fileExists(atPath: target) {
                status.file = target
                do {
                    let checkpoint = try ReadModelFile.open(target, mode: .readOnly).checkpoint()
                    status.servingVersion = checkpoint.version
                    status.checkpoint = checkpoint.position
                    status.lag = head > checkpoint.position ? head - checkpoint.position : 0
                    if checkpoint.version != projector.version || checkpoint.storeID != storeID {
                        status.state = .stale
                    } else if let stop = checkpoint.stop {
                        status.stopped(at: stop)
                    } else {
                        status.state = checkpoint.position >= head ? .current : .behind
                    }
                } catch {
                    status.state = .unreadable
                    status.failure = "the serving file cannot be read: \(error)"
                }
            }
            if let build = pendingBuilds(projector).last, let file = try? ReadModelFile.open(build, mode: .readOnly),
               let checkpoint = try? file.checkpoint() {
                status.buildFile = build
                status.buildCheckpoint = checkpoint.position
                if let stop = checkpoint.stop {
                    status.stopped(at: stop)
                } else if status.state == .missing || status.state == .stale {
                    status.state = .building
                }
            }
            return status
        }
    }

    /// Opens the serving read model of `name` for reading.
    public func openServing(_ name: String) throws -> DatabaseQueue {
        let projector = try projector(named: name)
        guard let target = servingTarget(projector.name), FileManager.default.fileExists(atPath: target) else {
            if let build = pendingBuilds(projector).last, let checkpoint = try? ReadModelFile.open(build, mode: .readOnly).checkpoint(),
               let stop = checkpoint.stop {
                throw ProjectionError.buildStopped(name: name, position: stop.position, type: stop.type, cause: stop.error)
            }
            throw ProjectionError.notBuilt(name)
        }
        return try ReadModelFile.open(target, mode: .readOnly).queue
    }

    /// Opens a read model file (an as-of build) for reading.
    public func openFile(_ path: String) throws -> DatabaseQueue {
        try ReadModelFile.open(path, mode: .readOnly).queue
    }
}
