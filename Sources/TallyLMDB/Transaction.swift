import CLMDB

/// What both kinds of transaction can do: look up keys and walk tables with cursors.
///
/// Every `UnsafeRawBufferPointer` handed out points into the memory map. It is valid only until the
/// transaction ends (the closure returns) and, in a write transaction, until the next write to the
/// same table. Copy what must outlive that.
public protocol TransactionReading {
    var txn: OpaquePointer { get }
}

extension TransactionReading {
    /// The value stored under `key`, or `nil` if there is none.
    @inlinable
    public func get(_ table: Table, key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var keyValue = MDBValue.make(key)
        var value = MDB_val()
        let rc = mdb_get(txn, table.dbi, &keyValue, &value)
        if rc == MDB_NOTFOUND { return nil }
        if rc != 0 { throw LMDBError(code: rc, operation: "get from table \(table.name)") }
        return MDBValue.buffer(value)
    }

    /// Runs `body` with a cursor on `table`; the cursor is closed when `body` returns.
    @inlinable
    public func withCursor<Result>(_ table: Table, _ body: (Cursor) throws -> Result) throws -> Result {
        var cursor: OpaquePointer?
        let rc = mdb_cursor_open(txn, table.dbi, &cursor)
        guard rc == 0, let cursor else { throw LMDBError(code: rc, operation: "open a cursor on table \(table.name)") }
        defer { mdb_cursor_close(cursor) }
        return try body(Cursor(cursor: cursor, table: table))
    }

    /// The number of entries (key/value pairs, counting duplicates) in `table`.
    public func count(_ table: Table) throws -> Int {
        var stat = MDB_stat()
        let rc = mdb_stat(txn, table.dbi, &stat)
        if rc != 0 { throw LMDBError(code: rc, operation: "mdb_stat on table \(table.name)") }
        return stat.ms_entries
    }

    /// Page counts of `table`, for sizing reports.
    public func pageCount(_ table: Table) throws -> Int {
        var stat = MDB_stat()
        let rc = mdb_stat(txn, table.dbi, &stat)
        if rc != 0 { throw LMDBError(code: rc, operation: "mdb_stat on table \(table.name)") }
        return stat.ms_branch_pages + stat.ms_leaf_pages + stat.ms_overflow_pages
    }
}

/// A read-only snapshot. Only exists inside `Environment.read`.
public struct ReadTransaction: TransactionReading {
    public let txn: OpaquePointer
}

/// The write transaction. Only exists inside `Environment.write`.
public struct WriteTransaction: TransactionReading {
    public let txn: OpaquePointer
    @usableFromInline let mapFull: MapFullFlag

    /// Stores `value` under `key`.
    @inlinable
    public func put(_ table: Table, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: PutFlags = []) throws {
        var keyValue = MDBValue.make(key)
        var dataValue = MDBValue.make(value)
        let rc = mdb_put(txn, table.dbi, &keyValue, &dataValue, flags.rawValue)
        if rc != 0 { throw failure(rc, "put into table \(table.name)") }
    }

    /// Stores `key` → `value` unless the key is present; returns `false` (writing nothing) if it is.
    @inlinable
    public func insert(_ table: Table, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: PutFlags = []) throws -> Bool {
        var keyValue = MDBValue.make(key)
        var dataValue = MDBValue.make(value)
        let rc = mdb_put(txn, table.dbi, &keyValue, &dataValue, flags.union(.noOverwrite).rawValue)
        if rc == MDB_KEYEXIST { return false }
        if rc != 0 { throw failure(rc, "insert into table \(table.name)") }
        return true
    }

    /// Reserves `count` bytes under `key` and lets `fill` write them in place (`MDB_RESERVE`): one copy
    /// fewer than `put`. `fill` must write every byte.
    @inlinable
    public func reserve(_ table: Table, key: UnsafeRawBufferPointer, count: Int, flags: PutFlags = [],
                        fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        var keyValue = MDBValue.make(key)
        var dataValue = MDB_val(mv_size: count, mv_data: nil)
        let rc = mdb_put(txn, table.dbi, &keyValue, &dataValue, flags.rawValue | UInt32(MDB_RESERVE))
        if rc != 0 { throw failure(rc, "reserve in table \(table.name)") }
        try fill(UnsafeMutableRawBufferPointer(start: dataValue.mv_data, count: count))
    }

    /// Deletes `key` (every duplicate of it) or, with `value`, one duplicate. Returns whether it existed.
    @discardableResult
    public func delete(_ table: Table, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer? = nil) throws -> Bool {
        var keyValue = MDBValue.make(key)
        let rc: Int32
        if let value {
            var dataValue = MDBValue.make(value)
            rc = mdb_del(txn, table.dbi, &keyValue, &dataValue)
        } else {
            rc = mdb_del(txn, table.dbi, &keyValue, nil)
        }
        if rc == MDB_NOTFOUND { return false }
        if rc != 0 { throw failure(rc, "delete from table \(table.name)") }
        return true
    }

    /// Runs `body` with a cursor that writes to `table`; the cursor is closed when `body` returns. Puts
    /// through one cursor in key order find the next key from the page the cursor is on, where each
    /// `put` searches from the root.
    @inlinable
    public func withWriteCursor<Result>(_ table: Table, _ body: (WriteCursor) throws -> Result) throws -> Result {
        try withCursor(table) { try body(WriteCursor(cursor: $0, mapFull: mapFull)) }
    }

    /// Removes every entry of `table`, keeping the table.
    public func clear(_ table: Table) throws {
        let rc = mdb_drop(txn, table.dbi, 0)
        if rc != 0 { throw failure(rc, "clear table \(table.name)") }
    }

    @usableFromInline
    func failure(_ rc: Int32, _ operation: String) -> LMDBError {
        if rc == MDB_MAP_FULL { mapFull.isSet = true }
        return LMDBError(code: rc, operation: operation)
    }
}

/// A position in a table. Only exists inside `withCursor`. Every move returns the entry it lands on, or
/// `nil` when there is none (never an error for "not found").
public struct Cursor {
    @usableFromInline let cursor: OpaquePointer
    public let table: Table

    @usableFromInline
    init(cursor: OpaquePointer, table: Table) {
        self.cursor = cursor
        self.table = table
    }

    public typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)

    @inlinable
    func move(_ op: MDB_cursor_op, key: UnsafeRawBufferPointer? = nil, value: UnsafeRawBufferPointer? = nil) throws -> Entry? {
        var keyValue = key.map(MDBValue.make) ?? MDB_val()
        var dataValue = value.map(MDBValue.make) ?? MDB_val()
        let rc = mdb_cursor_get(cursor, &keyValue, &dataValue, op)
        if rc == MDB_NOTFOUND { return nil }
        if rc != 0 { throw LMDBError(code: rc, operation: "cursor move on table \(table.name)") }
        return (MDBValue.buffer(keyValue), MDBValue.buffer(dataValue))
    }

    @inlinable public func first() throws -> Entry? { try move(MDB_FIRST) }
    @inlinable public func last() throws -> Entry? { try move(MDB_LAST) }
    @inlinable public func next() throws -> Entry? { try move(MDB_NEXT) }
    @inlinable public func previous() throws -> Entry? { try move(MDB_PREV) }
    @inlinable public func current() throws -> Entry? { try move(MDB_GET_CURRENT) }
    /// The entry with exactly `key`.
    @inlinable public func find(_ key: UnsafeRawBufferPointer) throws -> Entry? { try move(MDB_SET_KEY, key: key) }
    /// The first entry whose key is at least `key`.
    @inlinable public func seek(_ key: UnsafeRawBufferPointer) throws -> Entry? { try move(MDB_SET_RANGE, key: key) }

    // Duplicate-sorted tables.
    @inlinable public func nextDuplicate() throws -> Entry? { try move(MDB_NEXT_DUP) }
    @inlinable public func previousDuplicate() throws -> Entry? { try move(MDB_PREV_DUP) }
    @inlinable public func firstDuplicate() throws -> Entry? { try move(MDB_FIRST_DUP) }
    @inlinable public func lastDuplicate() throws -> Entry? { try move(MDB_LAST_DUP) }
    @inlinable public func nextKey() throws -> Entry? { try move(MDB_NEXT_NODUP) }
    @inlinable public func previousKey() throws -> Entry? { try move(MDB_PREV_NODUP) }
    /// Under `key`, the first duplicate that is at least `value`.
    @inlinable public func seek(_ key: UnsafeRawBufferPointer, duplicateAtLeast value: UnsafeRawBufferPointer) throws -> Entry? {
        try move(MDB_GET_BOTH_RANGE, key: key, value: value)
    }
    /// How many duplicates the current key has.
    public func duplicateCount() throws -> Int {
        var count = 0
        let rc = mdb_cursor_count(cursor, &count)
        if rc != 0 { throw LMDBError(code: rc, operation: "count duplicates in table \(table.name)") }
        return count
    }
}

/// A cursor of the write transaction. Only exists inside `withWriteCursor`.
public struct WriteCursor {
    public let reading: Cursor
    @usableFromInline let mapFull: MapFullFlag

    @usableFromInline
    init(cursor: Cursor, mapFull: MapFullFlag) {
        reading = cursor
        self.mapFull = mapFull
    }

    /// Stores `value` under `key` and leaves the cursor on it.
    @inlinable
    public func put(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: PutFlags = []) throws {
        var keyValue = MDBValue.make(key)
        var dataValue = MDBValue.make(value)
        let rc = mdb_cursor_put(reading.cursor, &keyValue, &dataValue, flags.rawValue)
        if rc != 0 { throw failure(rc, "put into table \(reading.table.name)") }
    }

    /// For a table of fixed-size duplicates (`DUPFIXED`): stores the values laid end to end in
    /// `values`, each `valueSize` bytes, as duplicates of `key`, in one call (`MDB_MULTIPLE`).
    @inlinable
    public func putDuplicates(key: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, valueSize: Int, flags: PutFlags = []) throws {
        precondition(valueSize > 0 && values.count % valueSize == 0, "values must be whole multiples of valueSize")
        let count = values.count / valueSize
        guard count > 0 else { return }
        var keyValue = MDBValue.make(key)
        var data = (MDB_val(mv_size: valueSize, mv_data: UnsafeMutableRawPointer(mutating: values.baseAddress)),
                    MDB_val(mv_size: count, mv_data: nil))
        let rc = withUnsafeMutablePointer(to: &data) { pair in
            pair.withMemoryRebound(to: MDB_val.self, capacity: 2) { mdb_cursor_put(reading.cursor, &keyValue, $0, flags.rawValue | UInt32(MDB_MULTIPLE)) }
        }
        if rc != 0 { throw failure(rc, "put \(count) duplicates into table \(reading.table.name)") }
        // LMDB reports how many it stored in the second value's size: all of them when it succeeds.
        precondition(data.1.mv_size == count, "LMDB stored \(data.1.mv_size) of \(count) duplicates and reported success")
    }

    @usableFromInline
    func failure(_ rc: Int32, _ operation: String) -> LMDBError {
        if rc == MDB_MAP_FULL { mapFull.isSet = true }
        return LMDBError(code: rc, operation: operation)
    }
}

@usableFromInline
enum MDBValue {
    @inlinable @inline(__always)
    static func make(_ buffer: UnsafeRawBufferPointer) -> MDB_val {
        MDB_val(mv_size: buffer.count, mv_data: UnsafeMutableRawPointer(mutating: buffer.baseAddress))
    }

    @inlinable @inline(__always)
    static func buffer(_ value: MDB_val) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
    }
}
