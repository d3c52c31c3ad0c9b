import Foundation
import GRDB
import GRDBSQLite

/// Positional parameters bound straight through SQLite's C API. Projectors run a handful of
/// statements once per event during a rebuild; GRDB's `StatementArguments` boxes every value in an
/// existential and an array, which profiled at more than half of a rebuild's time (SQLite itself was
/// under a third). Inside a batch (`BatchStatements`) strings are copied into the batch's arena and
/// bound in place (`SQLITE_STATIC`); the bindings are cleared when the statement has run, before the
/// arena is written again. Elsewhere SQLite copies them (`SQLITE_TRANSIENT`). Either way nothing
/// borrowed outlives a call.
public struct SQLBindings: ~Copyable {
    fileprivate let statement: SQLiteStatement
    fileprivate var index: Int32 = 0
    fileprivate var failure: Int32 = SQLITE_OK
    /// Where strings are copied for the statement's run, if anywhere.
    fileprivate let arena: UnsafeMutableRawBufferPointer?
    fileprivate var arenaUsed = 0

    fileprivate init(_ statement: SQLiteStatement, arena: UnsafeMutableRawBufferPointer?) {
        self.statement = statement
        self.arena = arena
    }

    private mutating func check(_ code: Int32) { if code != SQLITE_OK && failure == SQLITE_OK { failure = code } }

    public mutating func bind(_ value: Int64) {
        index += 1
        check(sqlite3_bind_int64(statement, index, value))
    }

    public mutating func bind(_ value: Int) { bind(Int64(value)) }

    public mutating func bind(_ value: String) {
        index += 1
        var text = value
        let code = text.withUTF8 { utf8 in
            guard let base = utf8.baseAddress, !utf8.isEmpty else { return sqlite3_bind_text(statement, index, "", 0, sqliteTransient) }
            if let arena, let start = arena.baseAddress, arenaUsed + utf8.count <= arena.count {
                let copy = start + arenaUsed
                copy.copyMemory(from: base, byteCount: utf8.count)
                arenaUsed += utf8.count
                return sqlite3_bind_text(statement, index, copy.assumingMemoryBound(to: CChar.self), Int32(utf8.count), nil)  // SQLITE_STATIC
            }
            return UnsafeRawPointer(base).withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                sqlite3_bind_text(statement, index, $0, Int32(utf8.count), sqliteTransient)
            }
        }
        check(code)
    }

    /// As GRDB stores it: 1 or 0.
    public mutating func bind(_ value: Bool) { bind(Int64(value ? 1 : 0)) }

    public mutating func bind(_ value: Bool?) {
        guard let value else { return bindNull() }
        bind(value)
    }

    public mutating func bind(_ value: Int64?) {
        guard let value else { return bindNull() }
        bind(value)
    }

    public mutating func bind(_ value: String?) {
        guard let value else { return bindNull() }
        bind(value)
    }

    public mutating func bindNull() {
        index += 1
        check(sqlite3_bind_null(statement, index))
    }
}

/// SQLite's "copy the bytes now" destructor.
private let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

extension Database {
    /// Runs `sql` (a statement GRDB prepares once and caches) with the parameters `bind` sets, in order;
    /// every parameter must be bound. Throws a `DatabaseError` naming the statement if SQLite refuses.
    public func run(_ sql: String, _ bind: (inout SQLBindings) -> Void) throws {
        try step(sql, bind)
    }

    /// Runs `sql` and returns the first column of its first row as text (nil without a row or for NULL):
    /// a `SELECT` of one value, or an `UPDATE … RETURNING`. The statement runs to completion.
    public func text(_ sql: String, _ bind: (inout SQLBindings) -> Void) throws -> String? {
        var text: String?
        try step(sql, bind) { text = $0.text(0) }
        return text
    }

    /// Runs `sql` and returns what `read` makes of its first row, or nil without a row. The statement
    /// runs to completion.
    public func firstRow<Value>(_ sql: String, _ bind: (inout SQLBindings) -> Void, _ read: (SQLRow) throws -> Value) throws -> Value? {
        var value: Value?
        try step(sql, bind) { value = try read($0) }
        return value
    }

    private func step(_ sql: String, _ bind: (inout SQLBindings) -> Void, readingTheFirstRow read: (SQLRow) throws -> Void = { _ in }) throws {
        let statement: Statement
        var arena: UnsafeMutableRawBufferPointer?
        let batch = BatchStatements.current.flatMap { $0.database == ObjectIdentifier(self) ? $0 : nil }
        if let batch {
            statement = try batch.statement(sql, self)
            // A statement run from inside another's bindings (never done here) copies its strings.
            if !batch.arenaInUse {
                arena = batch.arena
                batch.arenaInUse = true
            }
        } else {
            statement = try cachedStatement(sql: sql)
        }
        let raw = statement.sqliteStatement
        defer {
            if arena != nil {
                // Nothing may keep pointing into the arena once it is written again.
                sqlite3_clear_bindings(raw)
                batch?.arenaInUse = false
            }
        }
        sqlite3_reset(raw)
        var bindings = SQLBindings(raw, arena: arena)
        bind(&bindings)
        let expected = sqlite3_bind_parameter_count(raw)
        guard bindings.failure == SQLITE_OK, bindings.index == expected else {
            sqlite3_clear_bindings(raw)
            let message = bindings.failure != SQLITE_OK ? String(cString: sqlite3_errstr(bindings.failure))
                : "\(bindings.index) values bound for \(expected) parameters"
            throw DatabaseError(resultCode: ResultCode(rawValue: bindings.failure == SQLITE_OK ? SQLITE_MISUSE : bindings.failure),
                                message: message, sql: sql)
        }
        defer { sqlite3_reset(raw) }
        var code = sqlite3_step(raw)
        if code == SQLITE_ROW { try read(SQLRow(statement: raw)) }
        // Run to the end: an UPDATE … RETURNING applies its changes as it steps.
        while code == SQLITE_ROW { code = sqlite3_step(raw) }
        guard code == SQLITE_DONE else {
            let message = sqliteConnection.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
        }
    }
}

/// The current row of a statement `Database.firstRow` runs, read column by column (0 is the first);
/// valid only inside its `read` closure.
public struct SQLRow {
    fileprivate let statement: SQLiteStatement

    /// The column as text, or nil for NULL.
    public func text(_ column: Int32) -> String? {
        guard let text = sqlite3_column_text(statement, column) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: text, count: Int(sqlite3_column_bytes(statement, column))), as: UTF8.self)
    }

    /// The column as a whole number, or nil for NULL.
    public func int64(_ column: Int32) -> Int64? {
        sqlite3_column_type(statement, column) == SQLITE_NULL ? nil : sqlite3_column_int64(statement, column)
    }
}

/// The statements of one batch's transaction, found without hashing their SQL. GRDB's statement
/// cache hashes the whole SQL text on every call: 1,200 instructions for a projector's typical
/// statement, 3% of a rebuild (callgrind). The runner installs one for each batch
/// (`BatchStatements.$current`); `Database.run`, `text` and `firstRow` look a statement up here first,
/// by the address of its text's bytes (a string literal's never moves) and then by equality, which
/// is immediate for the same literal. Statements are prepared again for each batch, a few per
/// 65,536 positions, and finalized with it, before any connection closes.
public final class BatchStatements: @unchecked Sendable {  // Used only by the thread running its batch.
    @TaskLocal public static var current: BatchStatements?

    let database: ObjectIdentifier
    private var entries: [(start: UnsafeRawPointer?, sql: String, statement: Statement)] = []
    /// More distinct statements than this in one batch go to GRDB's cache (SQL built at run time).
    public static let capacity = 32

    /// Strings bound while a statement runs, copied here and bound in place (see `SQLBindings`).
    let arena = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 8)
    var arenaInUse = false

    public init(_ db: Database) { database = ObjectIdentifier(db) }

    deinit { arena.deallocate() }

    /// How many statements it has prepared.
    public var count: Int { entries.count }

    func statement(_ sql: String, _ db: Database) throws -> Statement {
        let start = sql.utf8.withContiguousStorageIfAvailable { UnsafeRawPointer($0.baseAddress) } ?? nil
        if let start {
            for entry in entries where entry.start == start && entry.sql == sql { return entry.statement }
        }
        for entry in entries where entry.sql == sql { return entry.statement }
        guard entries.count < Self.capacity else { return try db.cachedStatement(sql: sql) }
        let statement = try db.makeStatement(sql: sql)
        entries.append((start, sql, statement))
        return statement
    }
}

/// Rows of one table that nothing reads back while a batch is applied, inserted `rowsPerInsert` to a
/// statement (`INSERT … VALUES (…), (…), …`): SQLite's work of starting and ending a statement
/// (opening the table, halting its program) is paid once for them instead of once per row (600 k
/// ten-column rows from C: 0.48 s against 0.69 s; in a rebuild about 600 of a row's 9,000
/// instructions, the binding and the insert itself costing the same either way). The rest go one by
/// one when the batch finishes. Rows keyed
/// by position end up as rows inserted one by one would. Only for rows no constraint can refuse (keys
/// from positions, values the projector makes): a refusal would surface at a later event's insert or
/// at the batch's end, and be reported against that event.
///
/// The statements are `INSERT OR FAIL`: a refused row stops its statement and leaves the rows before
/// it, where the default (`ABORT`) would take them out again. A batch is one transaction, rolled back
/// whole on any error, so nothing is kept either way; but to be able to take them out, SQLite copies
/// every already-dirty page such a statement touches into a statement journal first. With the
/// journals kept in memory (`ReadModelFile.open`), needing none took rebuilding all three read models
/// of a 100 k event store from 4.870 G instructions to 4.625 G.
public struct RowInserter<Row> {
    /// The two statements' text, made once (a `static let`), so that a batch finds its prepared
    /// statements by the text's address (`BatchStatements`).
    public struct Statements: Sendable {
        @usableFromInline let insertOne: String
        @usableFromInline let insertMany: String
        @usableFromInline let rowsPerInsert: Int

        public init(table: String, columns: [String], rowsPerInsert: Int = 16) {
            precondition(rowsPerInsert > 1 && !columns.isEmpty, "a row inserter needs columns and more than one row per insert")
            let head = "INSERT OR FAIL INTO \(table) (\(columns.joined(separator: ", "))) VALUES "
            let row = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
            insertOne = head + row
            insertMany = head + Array(repeating: row, count: rowsPerInsert).joined(separator: ", ")
            self.rowsPerInsert = rowsPerInsert
        }
    }

    @usableFromInline let statements: Statements
    @usableFromInline let bind: (Row, inout SQLBindings) -> Void
    @usableFromInline var rows: [Row] = []

    /// `bind` binds one row's columns, in the order `statements` names them.
    public init(_ statements: Statements, bind: @escaping (Row, inout SQLBindings) -> Void) {
        self.statements = statements
        self.bind = bind
    }

    /// Adds a row; inserts the pending ones once there are `rowsPerInsert`.
    @inlinable
    public mutating func add(_ row: Row, _ db: Database) throws {
        if rows.isEmpty { rows.reserveCapacity(statements.rowsPerInsert) }
        rows.append(row)
        guard rows.count == statements.rowsPerInsert else { return }
        try db.run(statements.insertMany) { bindings in
            for row in rows { bind(row, &bindings) }
        }
        rows.removeAll(keepingCapacity: true)
    }

    /// Inserts the rows still pending, one statement each. Call it when the batch finishes.
    @inlinable
    public mutating func flush(_ db: Database) throws {
        for row in rows {
            try db.run(statements.insertOne) { bind(row, &$0) }
        }
        rows.removeAll()
    }
}
