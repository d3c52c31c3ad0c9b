import ArgumentParser
import Foundation
import GRDB
import TallyDomain
import TallyLog
import TallyProjection

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Query a read model: sales, member activity or historic transactions.",
        discussion: """
            A report first brings its read model up to the log's head (--no-catch-up reads it as it \
            is). --as-of a position or a time builds the read model as the log stood then, into its \
            own file under projections/as-of/, and reports from it. Amounts are exact decimals.

            Example:
              tally report sales --booth 3
              tally report sales --view revenue --from 2026-11-01 --format csv
              tally report member --member m7 --format json
              tally report transactions --store-id s1 --as-of 2026-11-20T18:00:00Z
            """,
        subcommands: [SalesReport.self, MemberReport.self, TransactionsReport.self]
    )
}

enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case table, csv, json
}

/// What every report takes: the store, the output format, the moment, the time range.
struct ReportOptions: ParsableArguments {
    @OptionGroup var store: StoreOptions
    @Option(help: "table, csv or json.") var format: ReportFormat = .table
    @Option(help: ArgumentHelp("Report the read model as of a log position or an RFC 3339 time or date.", valueName: "position|time"))
    var asOf: String?
    @Option(help: ArgumentHelp("Only rows at or after this RFC 3339 time or date.", valueName: "time")) var from: String?
    @Option(help: ArgumentHelp("Only rows before this RFC 3339 time or date.", valueName: "time")) var to: String?
    @Option(help: "At most this many rows.") var limit: Int?
    @Option(name: .customLong("time-zone"),
            help: ArgumentHelp("Read the dates of --from, --to and --as-of, and add up revenue per day, in this IANA time zone "
                               + "(Africa/Nairobi, Europe/Berlin) instead of UTC.", valueName: "zone"))
    var timeZoneName: String?
    @Flag(help: "Read the read model as it is, without bringing it up to the log's head first.") var noCatchUp = false

    func validate() throws {
        if let timeZoneName, TimeZone(identifier: timeZoneName) == nil {
            throw ValidationError("--time-zone \"\(timeZoneName)\" is not a time zone: give an IANA name such as Africa/Nairobi or Europe/Berlin, or UTC")
        }
        if let from, instant(from) == nil { throw ValidationError("--from \"\(from)\" is not an RFC 3339 time or a date") }
        if let to, instant(to) == nil { throw ValidationError("--to \"\(to)\" is not an RFC 3339 time or a date") }
        if let from, let to, let start = instant(from), let end = instant(to), start >= end {
            throw ValidationError("--from \"\(from)\" is not before --to \"\(to)\": rows from --from up to (not including) --to would be none")
        }
        if let asOf, UInt64(asOf) == nil, instant(asOf) == nil {
            throw ValidationError("--as-of \"\(asOf)\" is neither a log position nor an RFC 3339 time or date")
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    var fromMicroseconds: Int64? { from.flatMap { instant($0)?.microsecondsSinceEpoch } }
    var toMicroseconds: Int64? { to.flatMap { instant($0)?.microsecondsSinceEpoch } }
    /// `--from` and `--to` as the read models' text columns hold times (a date is the start of that day
    /// in `--time-zone`, as for the microsecond columns).
    var fromText: String? { from.flatMap { instant($0)?.iso8601 } }
    var toText: String? { to.flatMap { instant($0)?.iso8601 } }

    /// The days of --time-zone; UTC's without it.
    var days: LocalDays { LocalDays(zone: timeZoneName.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")!) }

    /// An RFC 3339 time as it says; a date, the first moment of that day in --time-zone (UTC without it).
    func instant(_ text: String) -> Timestamp? {
        guard let utc = Timestamp(iso8601: text) else { return nil }
        guard timeZoneName != nil, !text.contains(where: { $0 == "T" || $0 == "t" || $0 == " " }) else { return utc }
        return days.start(ofDay: text)
    }

    /// The database to report from: the serving read model brought up to date, or one as of a moment.
    func database(_ name: String) throws -> DatabaseQueue {
        // Projections only read the log: a user who may not append can still build reports.
        let log = try store.open(readOnly: true)
        let runner = try ReadModels.runner(log)
        let projector = try runner.projector(named: name)
        if let asOf {
            let position: UInt64
            if let number = UInt64(asOf) {
                position = number
            } else {
                guard let time = instant(asOf) else { throw CLIError("--as-of \"\(asOf)\" is not a position or a time") }
                position = try log.withSnapshot { try $0.position(atOrBefore: time) }
            }
            let progress = SharedProgress(label: "as of \(position)", names: [name])
            let path = try runner.buildAsOf(projector, position: position, progress: progress.update)
            progress.finishLine()
            return try noteSetAside(name, try runner.openFile(path))
        }
        if !noCatchUp {
            let progress = SharedProgress(label: "catch up", names: [name])
            do { try runner.catchUp(projector, progress: progress.update) } catch let error as ProjectionError {
                progress.finishLine()
                // A failed read model still answers, as of its last good event: say so, and go on.
                printError("\(error); reporting the read model as of its last good event")
            }
            progress.finishLine()
        }
        return try noteSetAside(name, try runner.openServing(name))
    }

    /// Says on standard error which events an admin left out of this read model, so a total is not
    /// taken for the log's whole.
    func noteSetAside(_ name: String, _ database: DatabaseQueue) throws -> DatabaseQueue {
        let positions = try database.read { db -> [Int64] in
            guard try db.tableExists("tally_set_aside") else { return [] }
            return try Int64.fetchAll(db, sql: "SELECT position FROM tally_set_aside ORDER BY position")
        }
        if !positions.isEmpty {
            let line = "note: \(positions.count) event\(positions.count == 1 ? " was" : "s were") set aside from \(name) (position\(positions.count == 1 ? "" : "s") "
                + "\(positions.map(String.init).joined(separator: ", "))): not in these figures; see `tally projections status`\n"
            writeStandardError(line)
        }
        return database
    }

    /// Runs `sql` and writes its rows. Columns named `*_minor` are shown as exact decimals of the
    /// row's `currency`, named without the suffix. When there are no rows, each of `filters`' id
    /// filters whose id the read model has never held is noted on standard error (the output stays the
    /// empty result it is).
    func write(_ database: DatabaseQueue, sql: String, arguments: [(any DatabaseValueConvertible)?], filters: Filters? = nil) throws {
        var sql = sql
        var arguments = arguments
        if let limit {
            sql += " LIMIT ?"
            arguments.append(limit)
        }
        try database.read { db in
            let statement = try db.makeStatement(sql: sql)
            let names = statement.columnNames
            let currencyIndex = names.firstIndex(of: "currency")
            let columns = names.map { $0.hasSuffix("_minor") ? String($0.dropLast(6)) : $0 }
            let rows = try Row.fetchCursor(statement, arguments: StatementArguments(arguments))
            let writer = try RowWriter(format: format, columns: columns)
            var count = 0
            defer {
                if count == 0, let filters, let notes = try? filters.unknownIDs(db) {
                    for note in notes { writeStandardError("note: \(note)\n") }
                }
            }
            while let row = try rows.next() {
                count += 1
                let currency = currencyIndex.flatMap { Currency(code: row[$0] as String? ?? "") }
                try writer.add(names.indices.map { index -> RowWriter.Cell in
                    let value = row[index] as DatabaseValue
                    switch value.storage {
                    case .null: return .null
                    case .int64(let number):
                        if names[index].hasSuffix("_minor"), let currency { return .decimal(Money(minor: number, currency: currency).decimalText) }
                        return .integer(number)
                    case .double(let number): return .text(String(number))
                    case .string(let text): return .text(text)
                    case .blob(let data): return .text(data.base64EncodedString())
                    }
                })
            }
            try writer.finish()
        }
    }
}

/// Days as a time zone has them: which day a moment falls on, and when a day starts (a clock change
/// moves the offset with it).
struct LocalDays {
    let calendar: Calendar

    init(zone: TimeZone) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        self.calendar = calendar
    }

    /// The day (YYYY-MM-DD) `time` falls on.
    func day(of time: Timestamp) -> String {
        let offset = Int64(calendar.timeZone.secondsFromGMT(for: date(time)))
        return String(Timestamp(microsecondsSinceEpoch: time.microsecondsSinceEpoch + offset * 1_000_000).iso8601.prefix(10))
    }

    /// Whether `time` is the first moment of its day.
    func isStartOfDay(_ time: Timestamp) -> Bool {
        time.microsecondsSinceEpoch % 1_000_000 == 0 && calendar.startOfDay(for: date(time)) == date(time)
    }

    /// The first moment of `text`, a date (YYYY-MM-DD).
    func start(ofDay text: String) -> Timestamp? {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        // Noon of that day, then back to its start: a day whose midnight a clock change skips still has a first moment.
        guard parts.count == 3, let noon = calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2], hour: 12)) else { return nil }
        return Timestamp(microsecondsSinceEpoch: Int64(calendar.startOfDay(for: noon).timeIntervalSince1970) * 1_000_000)
    }

    private func date(_ time: Timestamp) -> Date { Date(timeIntervalSince1970: Double(time.microsecondsSinceEpoch) / 1_000_000) }
}

/// Writes rows as a table (buffered, for the widths), CSV (RFC 4180) or JSON (an array of objects).
final class RowWriter {
    enum Cell {
        case null, integer(Int64), decimal(String), text(String)
        var text: String? {
            switch self {
            case .null: nil
            case .integer(let number): String(number)
            case .decimal(let text), .text(let text): text
            }
        }
    }

    private let format: ReportFormat
    private let columns: [String]
    private let output = OutputBuffer()
    private var tableRows: [[String?]] = []
    private var count = 0

    init(format: ReportFormat, columns: [String]) throws {
        self.format = format
        self.columns = columns
        if format == .csv { try output.line(columns.map(Self.csvField).joined(separator: ",")) }
        if format == .json { try output.line("[") }
    }

    func add(_ cells: [Cell]) throws {
        switch format {
        case .table: tableRows.append(cells.map(\.text))
        case .csv: try output.line(cells.map { Self.csvField($0.text ?? "") }.joined(separator: ","))
        case .json:
            let fields = zip(columns, cells).map { column, cell -> String in
                let value: String
                switch cell {
                case .null: value = "null"
                case .integer(let number): value = String(number)
                // Decimal amounts stay strings: exact, never a binary float.
                case .decimal(let text), .text(let text): value = Self.jsonString(text)
                }
                return Self.jsonString(column) + ":" + value
            }
            try output.line((count == 0 ? "" : ",") + "{" + fields.joined(separator: ",") + "}")
        }
        count += 1
    }

    func finish() throws {
        switch format {
        case .table:
            try output.flush()
            try TableWriter.write(columns: columns, rows: tableRows)
            if tableRows.isEmpty { writeStandardError("(no rows)\n") }
        case .csv: try output.flush()
        case .json:
            try output.line("]")
            try output.flush()
        }
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func jsonString(_ text: String) -> String { JSONView.quoted(text) }
}

/// Builds a WHERE clause from optional filters.
struct Filters {
    private(set) var clauses: [String] = []
    private(set) var arguments: [(any DatabaseValueConvertible)?] = []
    /// The id filters, checked when a report finds no row: an id the read model has never held (a
    /// stream's name, "booth-3", for the booth id "3"; a typo) would read as a quiet period otherwise.
    private(set) var ids: [(option: String, table: String, column: String, scope: String, forms: [String])] = []

    mutating func add(_ clause: String, _ value: (any DatabaseValueConvertible)?) {
        guard let value else { return }
        clauses.append(clause)
        arguments.append(value)
    }

    /// `column` holding `value` in any of its canonically equivalent spellings: as typed, in NFC and in
    /// NFD. SQLite compares text by its bytes, and "café" has two: commands record ids in NFC (since
    /// 2026-12-01), events written before that hold them as they were typed, and a terminal may hand
    /// over either form.
    ///
    /// `option`, `table` and `idColumn` name the id for the check made when nothing matched (`idColumn`
    /// without a table alias; `column` by default), `scope` the rows of that table such ids are in.
    mutating func addText(_ column: String, _ value: String?, option: String? = nil, table: String? = nil, idColumn: String? = nil,
                          scope: String = "1") {
        guard let value else { return }
        var forms = [value]
        for form in [value.precomposedStringWithCanonicalMapping, value.decomposedStringWithCanonicalMapping]
        where !forms.contains(where: { $0.utf8.elementsEqual(form.utf8) }) {  // Bytes: `==` would call them all one.
            forms.append(form)
        }
        clauses.append(forms.count == 1 ? "\(column) = ?" : "\(column) IN (\(forms.map { _ in "?" }.joined(separator: ", ")))")
        arguments.append(contentsOf: forms)
        if let option, let table { ids.append((option, table, idColumn ?? column, scope, forms)) }
    }

    /// For each id filter whose id is nowhere in its table: a note naming it and a few ids the table
    /// does hold.
    func unknownIDs(_ db: Database) throws -> [String] {
        var notes: [String] = []
        for id in ids {
            let placeholders = id.forms.map { _ in "?" }.joined(separator: ", ")
            let known = try Int.fetchOne(db, sql: "SELECT 1 FROM \(id.table) WHERE \(id.column) IN (\(placeholders)) LIMIT 1",
                                         arguments: StatementArguments(id.forms)) != nil
            if known { continue }
            let examples = try String.fetchAll(db, sql: "SELECT DISTINCT \(id.column) FROM \(id.table) WHERE \(id.column) IS NOT NULL AND \(id.scope) ORDER BY \(id.column) LIMIT 3")
            notes.append("\(id.option) \(JSONView.quoted(id.forms[0])) matches nothing in \(id.table)"
                         + (examples.isEmpty ? " (it has no rows yet)" : " (ids there look like \(examples.map(JSONView.quoted).joined(separator: ", ")))"))
        }
        return notes
    }

    /// `--from` (inclusive) and `--to` (exclusive) on a microseconds column.
    mutating func addTimeRange(_ column: String, _ options: ReportOptions) {
        add("\(column) >= ?", options.fromMicroseconds)
        add("\(column) < ?", options.toMicroseconds)
    }

    var sql: String { clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ") }
}

struct SalesReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sales",
        abstract: "Every sale (booth, web, checkout), revenue per location and day, or the voucher liability.",
        discussion: """
            Views: log (each sale, and each refund of a paid order cancelled), revenue (per day, channel, booth or store, currency; net of refunds), vouchers \
            (issued, redeemed and outstanding, per currency).

            Example:
              tally report sales --booth 3
              tally report sales --view revenue --channel checkout
              tally report sales --view vouchers
            """)

    enum View: String, ExpressibleByArgument, CaseIterable { case log, revenue, vouchers }

    @OptionGroup var options: ReportOptions
    @Option(help: "log, revenue or vouchers.") var view: View = .log
    @Option(help: "Only this booth's sales.") var booth: String?
    @Option(name: .customLong("store-id"), help: "Only this self-checkout store's sales (--store is the Tally store).") var storeID: String?
    @Option(help: "Only this channel: booth, web or checkout.") var channel: String?

    func validate() throws {
        if let channel, !["booth", "web", "checkout"].contains(channel) { throw ValidationError("--channel must be booth, web or checkout, not \"\(channel)\"") }
        if view == .vouchers, booth != nil || storeID != nil || channel != nil || options.from != nil || options.to != nil {
            throw ValidationError("--view vouchers takes no filters: the liability is fair-wide")
        }
        // Revenue is added up per day (UTC, or --time-zone's): a time within a day cannot be honoured,
        // so it is refused rather than widened or narrowed to the whole day.
        if view == .revenue {
            let (zone, midnight) = options.timeZoneName.map { ($0, "a midnight there") } ?? ("UTC", "a UTC midnight")
            for (name, value) in [("--from", options.from), ("--to", options.to)] {
                if let value, let time = options.instant(value), !options.days.isStartOfDay(time) {
                    throw ValidationError("--view revenue adds up whole days (\(zone)): \(name) must be a date or \(midnight), not \"\(value)\"")
                }
            }
        }
    }

    func run() throws {
        let database = try options.database("sales")
        var filters = Filters()
        switch view {
        case .log:
            filters.addText("booth_id", booth, option: "--booth", table: "sales")
            filters.addText("store_id", storeID, option: "--store-id", table: "sales")
            filters.add("channel = ?", channel)
            filters.addTimeRange("sold_at_us", options)
            try options.write(database, sql: """
                SELECT position, channel, kind, sale_id, voucher_id, buyer_email, booth_id, store_id, operator_id, member_id,
                       payment_transaction_id, amount_minor, currency, sold_at FROM sales\(filters.sql) ORDER BY position
                """, arguments: filters.arguments, filters: filters)
        case .revenue where options.timeZoneName != nil:
            try revenueInTimeZone(database)
        case .revenue:
            filters.addText("location", booth ?? storeID, option: booth != nil ? "--booth" : "--store-id", table: "revenue_daily",
                            scope: booth != nil ? "channel = 'booth'" : "channel <> 'booth'")
            filters.add("channel = ?", channel)
            filters.add("day >= ?", options.from.flatMap { Timestamp(iso8601: $0) }.map { String($0.iso8601.prefix(10)) })
            filters.add("day < ?", options.to.flatMap { Timestamp(iso8601: $0) }.map { String($0.iso8601.prefix(10)) })
            try options.write(database, sql: """
                SELECT day, channel, location, currency, sales, refunds, revenue_minor FROM revenue_daily\(filters.sql) ORDER BY day, channel, location, currency
                """, arguments: filters.arguments, filters: filters)
        case .vouchers:
            try options.write(database, sql: """
                SELECT currency, issued, issued_value_minor, redeemed, redeemed_sales_minor, outstanding, outstanding_value_minor
                FROM voucher_liability ORDER BY currency
                """, arguments: [])
        }
    }
}

extension SalesReport {
    /// Revenue per day of --time-zone: `revenue_daily` holds UTC days, so the sales are added up again
    /// from `sales`, each on the day its time falls on there (a clock change moves the offset with it).
    func revenueInTimeZone(_ database: DatabaseQueue) throws {
        struct Key: Hashable { var day: String; var channel: String; var location: [UInt8]; var currency: String }
        var filters = Filters()
        let location = "COALESCE(booth_id, store_id, 'web')"
        filters.addText(location, booth ?? storeID, option: booth != nil ? "--booth" : "--store-id", table: "sales",
                        idColumn: booth != nil ? "booth_id" : "store_id")
        filters.add("channel = ?", channel)
        filters.addTimeRange("sold_at_us", options)
        var totals: [Key: (sales: Int64, refunds: Int64, revenue: Int64)] = [:]
        let days = options.days
        try database.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT channel, \(location), currency, sold_at_us, amount_minor, kind FROM sales\(filters.sql)",
                                           arguments: StatementArguments(filters.arguments))
            while let row = try rows.next() {
                // Location by its bytes, as SQLite keeps it: NFC and NFD "café" are two booths.
                let key = Key(day: days.day(of: Timestamp(microsecondsSinceEpoch: row[3])), channel: row[0],
                              location: Array((row[1] as String).utf8), currency: row[2])
                var total = totals[key] ?? (0, 0, 0)
                let (revenue, overflow) = total.revenue.addingReportingOverflow(row[4])
                guard !overflow else { throw CLIError("the revenue of \(JSONView.quoted(String(decoding: key.location, as: UTF8.self))) on \(key.day) passes 64 bits") }
                let refund = (row[5] as String) == "refund"
                total = (total.sales + (refund ? 0 : 1), total.refunds + (refund ? 1 : 0), revenue)
                totals[key] = total
            }
        }
        let ordered = totals.sorted { a, b in
            (a.key.day, a.key.channel) != (b.key.day, b.key.channel) ? (a.key.day, a.key.channel) < (b.key.day, b.key.channel)
                : a.key.location != b.key.location ? a.key.location.lexicographicallyPrecedes(b.key.location) : a.key.currency < b.key.currency
        }
        if totals.isEmpty {
            for note in try database.read({ try filters.unknownIDs($0) }) { writeStandardError("note: \(note)\n") }
        }
        let writer = try RowWriter(format: options.format, columns: ["day", "channel", "location", "currency", "sales", "refunds", "revenue"])
        for (key, total) in ordered.prefix(options.limit ?? .max) {
            let amount = Currency(code: key.currency).map { Money(minor: total.revenue, currency: $0).decimalText } ?? String(total.revenue)
            try writer.add([.text(key.day), .text(key.channel), .text(String(decoding: key.location, as: UTF8.self)), .text(key.currency),
                            .integer(total.sales), .integer(total.refunds), .decimal(amount)])
        }
        try writer.finish()
    }
}

struct MemberReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member",
        abstract: "Each member's or customer's actions in time order, a summary per person, devices or shopping lists.",
        discussion: """
            Views: activity (each action), summary (first and last seen, carts, abandoned carts, \
            checkouts, orders, payments, total spent per currency), devices (the devices more than \
            one member id opened the app on, and those ids: the ids likely to be one person; with \
            --member, every id seen on a device that member was seen on). A device is known only by \
            a keyed digest of its fingerprint, and a forgotten member's devices leave the report. \
            lists (what each revision of each shopping list changed, SKU by SKU: the units it was and \
            is now, 0 for none; --from and --to keep the lists in use then: revised since --from, \
            made before --to).

            Example:
              tally report member --member m7
              tally report member --view summary --kind customer --format csv
              tally report member --view devices --member m7
              tally report member --view lists --member m7
            """)

    enum View: String, ExpressibleByArgument, CaseIterable { case activity, summary, devices, lists }

    @OptionGroup var options: ReportOptions
    @Option(help: "activity, summary, devices or lists.") var view: View = .activity
    @Option(help: "Only this member or customer id.") var member: String?
    @Option(help: "Only members (self-checkout) or customers (web shop).") var kind: String?

    func validate() throws {
        if let kind, !["member", "customer"].contains(kind) { throw ValidationError("--kind must be member or customer, not \"\(kind)\"") }
    }

    func run() throws {
        let database = try options.database("members")
        var filters = Filters()
        switch view {
        case .activity:
            filters.addText("member_id", member, option: "--member", table: "activity")
            filters.add("kind = ?", kind)
            filters.addTimeRange("at_us", options)
            try options.write(database, sql: """
                SELECT position, kind, member_id, at, action, subject, detail, amount_minor, currency FROM activity\(filters.sql)
                ORDER BY \(member == nil ? "member_id, kind, position" : "position")
                """, arguments: filters.arguments, filters: filters)
        case .summary:
            filters.addText("s.member_id", member, option: "--member", table: "member_summary", idColumn: "member_id")
            filters.add("s.kind = ?", kind)
            filters.add("s.last_seen >= ?", options.fromText)
            filters.add("s.first_seen < ?", options.toText)
            try options.write(database, sql: """
                SELECT s.kind, s.member_id, s.first_seen, s.last_seen, s.actions, s.carts, s.abandoned_carts, s.checkouts, s.orders,
                       s.payments, s.active, p.spent_minor AS total_spent_minor, p.currency
                FROM member_summary s LEFT JOIN member_spending p ON p.kind = s.kind AND p.member_id = s.member_id\(filters.sql)
                ORDER BY s.kind, s.member_id, p.currency
                """, arguments: filters.arguments, filters: filters)
        case .devices:
            if kind == "customer" { throw CLIError("--view devices is about self-checkout members: web-shop customers record no devices") }
            // With --member: each id seen on a device that member was seen on (`o`, the others, joined on the device).
            let alias = member == nil ? "" : "o."
            if let member { filters.addText("d.member_id", member, option: "--member", table: "member_devices", idColumn: "member_id") }
            filters.add("\(alias)last_seen >= ?", options.fromText)
            filters.add("\(alias)first_seen < ?", options.toText)
            if member != nil {
                try options.write(database, sql: """
                    SELECT o.device, o.member_id, o.first_seen, o.last_seen, o.sightings
                    FROM member_devices d JOIN member_devices o ON o.device = d.device\(filters.sql)
                    ORDER BY o.device, o.first_seen, o.member_id
                    """, arguments: filters.arguments, filters: filters)
            } else {
                try options.write(database, sql: """
                    SELECT device, members, member_ids, first_seen, last_seen, sightings FROM shared_devices\(filters.sql)
                    ORDER BY members DESC, first_seen, device
                    """, arguments: filters.arguments, filters: filters)
            }
        case .lists:
            if kind == "customer" { throw CLIError("--view lists is about self-checkout members: web-shop customers keep no shopping lists") }
            filters.addText("l.member_id", member, option: "--member", table: "shopping_lists", idColumn: "member_id")
            filters.add("l.revised >= ?", options.fromText)
            filters.add("l.created < ?", options.toText)
            try options.write(database, sql: """
                SELECT l.member_id, c.list_id, c.revision, c.sku, c.was, c.now
                FROM shopping_list_changes c JOIN shopping_lists l ON l.list_id = c.list_id\(filters.sql)
                ORDER BY l.member_id, c.list_id, c.revision, c.sku
                """, arguments: filters.arguments, filters: filters)
        }
    }
}

struct TransactionsReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transactions",
        abstract: "Historic transactions: one row per purchased line, at the price charged then.",
        discussion: """
            Self-checkouts and paid web orders (store "web"), with the seed's Transaction fields.

            Example:
              tally report transactions --member m7
              tally report transactions --store-id s1 --from 2026-11-20 --to 2026-11-21 --format csv
            """)

    @OptionGroup var options: ReportOptions
    @Option(help: "Only this member's or customer's lines.") var member: String?
    @Option(name: .customLong("store-id"), help: "Only this store's lines (\"web\" for the web shop; --store is the Tally store).") var storeID: String?
    @Option(help: "Only lines of this SKU (exactly as written, leading zeros included).") var sku: String?

    func run() throws {
        let database = try options.database("transactions")
        var filters = Filters()
        filters.addText("member_id", member, option: "--member", table: "transaction_lines")
        filters.addText("store_id", storeID, option: "--store-id", table: "transaction_lines")
        filters.addText("sku", sku, option: "--sku", table: "transaction_lines")
        filters.addTimeRange("purchase_date_us", options)
        try options.write(database, sql: """
            SELECT position, line, channel, transaction_id, member_id, store_id, scanned_input, sku, description, size,
                   unit_price_minor, quantity, applied_discounts_minor, pre_tax_total_minor, currency, taxable, department_code,
                   purchase_date, bogo, payment_transaction_id, refunded_at FROM transaction_lines\(filters.sql) ORDER BY position, line
            """, arguments: filters.arguments, filters: filters)
    }
}
