import CLMDB

/// An error returned by liblmdb, or by the system calls it makes, with the text of `mdb_strerror`.
///
/// `MDB_NOTFOUND` never surfaces as an error: lookups return `nil` instead. Misuse that can only be a bug
/// in Tally (a bad table handle, a transaction used after it ended) traps rather than throws.
public struct LMDBError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The LMDB or `errno` code.
    public let code: Int32
    /// What was being done when LMDB answered `code`, for the message.
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    public var description: String {
        "\(operation) failed: \(String(cString: mdb_strerror(code))) (code \(code))"
    }

    // The LMDB return codes Tally acts on. Their values are checked against lmdb.h in the tests.
    public static let keyExistsCode: Int32 = MDB_KEYEXIST
    public static let notFoundCode: Int32 = MDB_NOTFOUND
    public static let mapFullCode: Int32 = MDB_MAP_FULL
    public static let mapResizedCode: Int32 = MDB_MAP_RESIZED
    public static let readersFullCode: Int32 = MDB_READERS_FULL
    public static let incompatibleCode: Int32 = MDB_INCOMPATIBLE
    public static let invalidCode: Int32 = MDB_INVALID
    public static let versionMismatchCode: Int32 = MDB_VERSION_MISMATCH

    public var isMapFull: Bool { code == MDB_MAP_FULL }
    public var isKeyExists: Bool { code == MDB_KEYEXIST }
    /// The file is not an LMDB environment, or one from an incompatible LMDB build.
    public var isNotAnEnvironment: Bool { code == MDB_INVALID || code == MDB_VERSION_MISMATCH }
}

/// The data file ends before the last page its meta page says is in use: it was cut short.
public struct LMDBTruncatedFileError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let bytes: UInt64
    public let bytesNeeded: UInt64
    public var description: String {
        "\(path) is \(bytes) bytes, but the pages it says are in use end at byte \(bytesNeeded): the file was cut short "
            + "(a copy or transfer that stopped, or a full disk while copying); restore the store from a whole copy (`tally backup` makes one)"
    }
}

/// The map reached the configured maximum size: the store cannot grow any further.
public struct LMDBMapFullError: Error, Sendable, CustomStringConvertible {
    public let mapSizeBytes: Int
    public let mapSizeMaxBytes: Int
    public var description: String {
        "the store is full: its map has reached the configured maximum of \(mapSizeMaxBytes) bytes "
            + "(current map \(mapSizeBytes) bytes); raise the maximum map size to write more"
    }
}

@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if rc != 0 { throw LMDBError(code: rc, operation: operation()) }
}
