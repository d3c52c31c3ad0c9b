import Foundation
import TallyLMDB

extension EventLog {
    /// Writes the log as it stands into `storeDirectory/log`, making that directory a store of its
    /// own: one consistent snapshot (appends go on meanwhile and are not in it), compacted (free pages
    /// left out), and synced before this returns. Returns the copy's head: what it holds.
    ///
    /// `storeDirectory` may exist (a backup puts the audit trail beside the log) but must hold no log.
    /// On an error the partial copy is removed.
    public func backup(into storeDirectory: String) throws -> LogHead {
        let logPath = Self.logDirectory(storeDirectory)
        if FileManager.default.fileExists(atPath: logPath) { throw LogError.storeExists(path: storeDirectory) }
        do {
            try FileManager.default.createDirectory(atPath: logPath, withIntermediateDirectories: true)
        } catch {
            throw LogError.permissionDenied(path: storeDirectory, operation: "create the backup directory")
        }
        do {
            try environment.copy(toDirectory: logPath)
            for path in [logPath + "/data.mdb", logPath, storeDirectory] { try syncFile(path) }
            var options = LogOptions()
            options.readOnly = true
            let copy = try EventLog.open(at: storeDirectory, options: options)
            defer { copy.close() }
            return try copy.head()
        } catch {
            try? FileManager.default.removeItem(atPath: logPath)
            throw error
        }
    }
}

/// A file or directory that could not be opened or synced.
public struct FileSyncError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "cannot sync \(path): \(reason)" }
}

/// fsync of a file or a directory, so what was written to it, or the names in it, survive a power loss.
public func syncFile(_ path: String) throws {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw FileSyncError(path: path, reason: String(cString: strerror(errno))) }
    defer { close(descriptor) }
    guard fsync(descriptor) == 0 else { throw FileSyncError(path: path, reason: String(cString: strerror(errno))) }
}
