import Foundation
import GRDB
import Testing
import TallyProjection

/// `Database.run` / `Database.text`: the C-API binding the projectors use on their hot paths.
@Suite struct FastSQLTests {
    func database() throws -> DatabaseQueue {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, flag INTEGER, note TEXT) WITHOUT ROWID")
        }
        return queue
    }

    @Test func valuesAndNullsArriveAsGRDBWouldStoreThem() throws {
        let queue = try database()
        try queue.write { db in
            try db.run("INSERT INTO t (id, n, flag, note) VALUES (?, ?, ?, ?)") { $0.bind("a"); $0.bind(Int64(-7)); $0.bind(true); $0.bind("") }
            try db.run("INSERT INTO t (id, n, flag, note) VALUES (?, ?, ?, ?)") { $0.bind("b"); $0.bind(nil as Int64?); $0.bind(nil as Bool?); $0.bind(nil as String?) }
            try db.run("INSERT INTO t (id, n, flag, note) VALUES (?, ?, ?, ?)") { $0.bind("ünï ✓"); $0.bind(Int.max); $0.bind(false); $0.bind("0042") }
            try db.execute(sql: "INSERT INTO t (id, n, flag, note) VALUES (?, ?, ?, ?)", arguments: ["c", -7, true, ""])
        }
        try queue.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT id, n, flag, note, typeof(note) AS kind FROM t ORDER BY id")
            #expect(rows.map { $0["id"] as String } == ["a", "b", "c", "ünï ✓"])
            #expect(rows[0]["n"] as Int64 == -7 && rows[0]["flag"] as Bool == true && rows[0]["note"] as String == "" && rows[0]["kind"] as String == "text")
            // The same values bound by GRDB are stored identically.
            #expect(rows[0]["n"] as Int64 == rows[2]["n"] as Int64 && rows[0]["flag"] as Int64 == rows[2]["flag"] as Int64)
            #expect(rows[1]["n"] as Int64? == nil && rows[1]["flag"] as Int64? == nil && rows[1]["kind"] as String == "null")
            #expect(rows[3]["n"] as Int64 == Int64(Int.max) && rows[3]["flag"] as Int64 == 0 && rows[3]["note"] as String == "0042")
        }
    }

    @Test func aBatchPreparesEachStatementOnceAndOnlyForItsOwnConnection() throws {
        let queue = try database(), other = try database()
        try queue.write { db in
            let batch = BatchStatements(db)
            try BatchStatements.$current.withValue(batch) {
                for i in 0..<3 { try db.run("INSERT INTO t (id, n) VALUES (?, ?)") { $0.bind("a\(i)"); $0.bind(i) } }
                // SQL built at run time is found by its text, whatever its address.
                let column = ["n", "note"][0]
                for _ in 0..<2 { #expect(try db.text("SELECT " + column + " FROM t WHERE id = ?", { $0.bind("a2") }) == "2") }
                #expect(batch.count == 2)
                // Another connection inside the same batch uses its own (GRDB's) statements.
                try other.write { db in try db.run("INSERT INTO t (id, n) VALUES (?, ?)") { $0.bind("x"); $0.bind(1) } }
                #expect(batch.count == 2)
                // Strings are copied into the batch's arena for each run, or by SQLite when they do not fit.
                let long = String(repeating: "ü", count: 6_000)
                for (id, note) in [("s1", "first"), ("s2", long), ("s3", "third ✓"), ("s4", "")] {
                    try db.run("INSERT INTO t (id, note) VALUES (?, ?)") { $0.bind(id); $0.bind(note) }
                }
                let notes = try String.fetchAll(db, sql: "SELECT note FROM t WHERE id LIKE 's%' ORDER BY id")
                #expect(notes == ["first", long, "third ✓", ""])
                // Past its capacity, statements still run, through GRDB's cache.
                for i in 0..<40 { try db.run("INSERT INTO t (id, n) VALUES (?, \(i + 100))") { $0.bind("c\(i)") } }
                #expect(batch.count == BatchStatements.capacity)
            }
        }
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 47)
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT SUM(n) FROM t WHERE id LIKE 'c%'") } == (100..<140).reduce(0, +))
        #expect(try other.read { try String.fetchAll($0, sql: "SELECT id FROM t") } == ["x"])
    }

    @Test func textReadsOneValueAndReturningAppliesTheUpdate() throws {
        let queue = try database()
        try queue.write { db in
            try db.run("INSERT INTO t (id, n, note) VALUES (?, ?, ?)") { $0.bind("k"); $0.bind(1); $0.bind("member-1") }
            #expect(try db.text("SELECT note FROM t WHERE id = ?", { $0.bind("k") }) == "member-1")
            #expect(try db.text("SELECT note FROM t WHERE id = ?", { $0.bind("missing") }) == nil)
            #expect(try db.text("UPDATE t SET n = n + 1 WHERE id = ? RETURNING note", { $0.bind("k") }) == "member-1")
            #expect(try Int.fetchOne(db, sql: "SELECT n FROM t WHERE id = 'k'") == 2)
            // The cached statement is reset: the next call sees fresh bindings.
            #expect(try db.text("UPDATE t SET n = n + 1 WHERE id = ? RETURNING note", { $0.bind("other") }) == nil)
            #expect(try Int.fetchOne(db, sql: "SELECT n FROM t WHERE id = 'k'") == 2)
        }
    }

    @Test func refusalsAreNamedAndWriteNothing() throws {
        let queue = try database()
        try queue.write { db in
            try db.run("INSERT INTO t (id, n) VALUES (?, ?)") { $0.bind("dup"); $0.bind(1) }
            do {
                try db.run("INSERT INTO t (id, n) VALUES (?, ?)") { $0.bind("dup"); $0.bind(2) }
                Issue.record("a duplicate key was accepted")
            } catch let error as DatabaseError {
                #expect(error.resultCode == .SQLITE_CONSTRAINT)
                #expect(error.sql == "INSERT INTO t (id, n) VALUES (?, ?)")
            }
            do {
                try db.run("INSERT INTO t (id, n) VALUES (?, ?)") { $0.bind("short") }
                Issue.record("a statement with a parameter left unbound ran")
            } catch let error as DatabaseError {
                #expect(error.message?.contains("1 values bound for 2 parameters") == true, "\(error)")
            }
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") == 1)
            #expect(try Int.fetchOne(db, sql: "SELECT n FROM t WHERE id = 'dup'") == 1)
        }
    }

    /// A row inserter's statements resolve a refused row with FAIL: the statement stops there and keeps
    /// the rows before it (so SQLite keeps no statement journal to take them out again), and the
    /// batch's transaction, rolled back, keeps none of them.
    @Test func aRefusedRowStopsItsInsertAndTheRolledBackBatchKeepsNothing() throws {
        struct Line { var position: Int64; var text: String? }
        let statements = RowInserter<Line>.Statements(table: "lines", columns: ["position", "text"])
        let queue = try DatabaseQueue()
        try queue.write { try $0.execute(sql: "CREATE TABLE lines (position INTEGER PRIMARY KEY, text TEXT NOT NULL)") }
        #expect(throws: DatabaseError.self) {
            try queue.inTransaction { db in
                var inserter = RowInserter<Line>(statements) { line, bindings in bindings.bind(line.position); bindings.bind(line.text) }
                for position in 1...16 { try inserter.add(Line(position: Int64(position), text: "line"), db) }
                do {
                    // The second statement's tenth row is refused.
                    for position in 17...32 { try inserter.add(Line(position: Int64(position), text: position == 26 ? nil : "line"), db) }
                    Issue.record("a NULL text was accepted")
                } catch let error as DatabaseError {
                    #expect(error.resultCode == .SQLITE_CONSTRAINT)
                    #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM lines") == 16 + 9, "the rows before the refused one stay until the rollback")
                    throw error
                }
                return .commit
            }
        }
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM lines") } == 0)
    }

    /// Rows go in sixteen to a statement as they come and the rest one by one at the flush: whatever
    /// their number, the table holds exactly those rows, inside a batch (strings from its arena) and
    /// outside one.
    @Test func aRowInserterInsertsEveryRowOnceWhateverTheirNumber() throws {
        struct Line { var position: Int64; var text: String; var note: String? }
        let statements = RowInserter<Line>.Statements(table: "lines", columns: ["position", "text", "note"])
        for count in [0, 1, 15, 16, 17, 33, 160] {
            for inBatch in [false, true] {
                let queue = try DatabaseQueue()
                try queue.write { db in
                    try db.execute(sql: "CREATE TABLE lines (position INTEGER PRIMARY KEY, text TEXT NOT NULL, note TEXT)")
                    var inserter = RowInserter<Line>(statements) { line, bindings in
                        bindings.bind(line.position); bindings.bind(line.text); bindings.bind(line.note)
                    }
                    let lines = (0..<count).map { Line(position: Int64($0 + 1), text: "line \($0) " + String(repeating: "ü", count: $0 % 40),
                                                       note: $0 % 3 == 0 ? nil : "n\($0)") }
                    func insertAll() throws {
                        for line in lines { try inserter.add(line, db) }
                        // Before the flush, only whole groups of sixteen are in.
                        #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM lines") == count / 16 * 16)
                        try inserter.flush(db)
                    }
                    if inBatch {
                        try BatchStatements.$current.withValue(BatchStatements(db)) { try insertAll() }
                    } else {
                        try insertAll()
                    }
                    let rows = try Row.fetchAll(db, sql: "SELECT position, text, note FROM lines ORDER BY position")
                    #expect(rows.map { $0["position"] as Int64 } == lines.map(\.position), "\(count) rows, in a batch: \(inBatch)")
                    #expect(rows.map { $0["text"] as String } == lines.map(\.text) && rows.map { $0["note"] as String? } == lines.map(\.note))
                }
            }
        }
    }

    /// `firstRow` reads the first row's columns as text and whole numbers, NULL as nil; no row is nil.
    @Test func firstRowReadsColumnsAndNullsAndNoRowIsNil() throws {
        let queue = try database()
        try queue.write { db in
            try db.run("INSERT INTO t (id, n, flag, note) VALUES (?, ?, ?, ?)") { $0.bind("a"); $0.bind(Int64(-7)); $0.bind(true); $0.bind("ünï") }
            try db.run("INSERT INTO t (id, n, flag, note) VALUES (?, ?, ?, ?)") { $0.bind("b"); $0.bind(nil as Int64?); $0.bind(false); $0.bind(nil as String?) }
            let a = try db.firstRow("SELECT id, n, note FROM t WHERE id = ?", { $0.bind("a") }) { ($0.text(0), $0.int64(1), $0.text(2)) }
            #expect(a?.0 == "a" && a?.1 == -7 && a?.2 == "ünï")
            let b = try db.firstRow("SELECT id, n, note FROM t WHERE id = ?", { $0.bind("b") }) { ($0.text(0), $0.int64(1), $0.text(2)) }
            #expect(b?.0 == "b" && b?.1 == nil && b?.2 == nil)
            #expect(try db.firstRow("SELECT id FROM t WHERE id = ?", { $0.bind("c") }) { $0.text(0) } == nil)
            // Several rows: the first, and the statement still runs to its end (the next call reuses it).
            #expect(try db.firstRow("SELECT id FROM t ORDER BY id DESC", { _ in }) { $0.text(0) } == "b")
            #expect(try db.firstRow("SELECT id FROM t ORDER BY id DESC", { _ in }) { $0.text(0) } == "b")
            struct Refused: Error {}
            #expect(throws: Refused.self) { _ = try db.firstRow("SELECT id FROM t", { _ in }) { _ -> Int in throw Refused() } }
        }
    }
}
