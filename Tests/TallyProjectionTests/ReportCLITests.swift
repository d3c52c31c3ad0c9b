import Foundation
import TallyDomain
import TallyLog
import TallyTestSupport
import Testing

@Suite struct ReportCLITests {
    func scenarioStore() throws -> TestStore {
        let store = try TestStore()
        try HandScenario.record(store)
        return store
    }

    func listing(_ path: String) -> [String] {
        ((try? FileManager.default.subpathsOfDirectory(atPath: path + "/projections")) ?? []).sorted()
    }

    @Test func reportsComeInTablesCSVAndJSONWithExactAmounts() throws {
        let store = try scenarioStore()
        let table = try tally(["report", "sales", "--booth", "b1"], store: store.path)
        #expect(table.status == 0, "\(table.error)")
        #expect(table.lines.count == 3 && table.lines[0].hasPrefix("position") && table.lines[1].contains("12.50") && table.lines[2].contains("4.00"))

        let csv = try tally(["report", "transactions", "--member", "m1", "--format", "csv"], store: store.path)
        #expect(csv.status == 0, "\(csv.error)")
        #expect(csv.lines.count == 3)
        #expect(csv.lines[1].contains(",000000004048,000000004048,Lime,each,0.34,4,0.02,1.34,USD,"))

        let json = try tally(["report", "sales", "--view", "revenue", "--format", "json"], store: store.path)
        #expect(json.status == 0, "\(json.error)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]])
        #expect(rows.count == 5)
        #expect(rows.first?["revenue"] as? String == "12.50" && rows.first?["sales"] as? Int == 1)

        let vouchers = try tally(["report", "sales", "--view", "vouchers", "--format", "csv"], store: store.path)
        #expect(vouchers.lines == ["currency,issued,issued_value,redeemed,redeemed_sales,outstanding,outstanding_value", "USD,4,47.00,3,26.50,1,7.00"])

        let summary = try tally(["report", "member", "--view", "summary", "--member", "m1", "--format", "json"], store: store.path)
        let member = try #require((try JSONSerialization.jsonObject(with: Data(summary.output.utf8)) as? [[String: Any]])?.first)
        #expect(member["abandoned_carts"] as? Int == 1 && member["total_spent"] as? String == "3.83")
    }

    /// A filter finds an id in whichever Unicode form it is typed: commands record NFC, an older event
    /// may hold NFD, and SQLite compares bytes.
    @Test func aFilterFindsAnIdTypedInEitherUnicodeForm() throws {
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        let store = try scenarioStore()
        try store.run(Actor(.member, composed), .registerMember(memberID: composed, firstName: nil, lastName: nil, email: nil, phone: nil))
        let opened = Data("{\"cartID\":\"kx1\",\"memberID\":\"\(decomposed)\",\"storeID\":\"s1\"}".utf8)
        try store.log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: CheckoutStreams.cart("kx1"), type: CartOpened.eventType,
                                                                  actor: "member:\(decomposed)", payload: opened)]))
        for typed in [composed, decomposed] {
            let report = try tally(["report", "member", "--member", typed, "--format", "csv"], store: store.path)
            #expect(report.status == 0, "\(report.error)")
            // Both people: the registration (NFC) and the cart an older writer recorded in NFD.
            #expect(report.lines.count == 3 && report.lines.dropFirst().map { $0.split(separator: ",")[4] } == ["MemberRegistered", "CartOpened"],
                    "\(report.output)")
        }
        let nobody = try tally(["report", "member", "--member", "cafe", "--format", "csv"], store: store.path)
        #expect(nobody.status == 0 && nobody.lines.count == 1, "\(nobody.output)")
    }

    @Test func fromAndToSelectATimeRange() throws {
        let store = try scenarioStore()
        let dayTwo = try tally(["report", "sales", "--from", "2026-11-21", "--format", "csv"], store: store.path)
        #expect(dayTwo.status == 0 && dayTwo.lines.count == 2 && dayTwo.lines[1].contains(",s3,"), "\(dayTwo.output)")
        let dayOne = try tally(["report", "sales", "--to", "2026-11-21", "--format", "csv"], store: store.path)
        #expect(dayOne.lines.count == 5)
        let lines = try tally(["report", "transactions", "--from", "2026-11-20T10:30:00Z", "--format", "csv"], store: store.path)
        #expect(lines.lines.count == 2 && lines.lines[1].contains(",web,o1,"))
        let actions = try tally(["report", "member", "--member", "m1", "--from", "2026-11-20T10:30:00Z", "--format", "csv"], store: store.path)
        #expect(actions.lines.count == 3)  // k2 opened, a lime added
        // Everyone's actions: grouped per person (member id, then kind), each in log order.
        let everyone = try tally(["report", "member", "--format", "csv"], store: store.path)
        let rows = everyone.lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let keys = rows.map { (member: String($0[2]), kind: String($0[1]), position: Int($0[0]) ?? -1) }
        #expect(everyone.status == 0 && keys.count > 5 && Set(keys.map(\.member)).count > 1, "\(everyone.output)")
        #expect(zip(keys, keys.dropFirst()).allSatisfy { ($0.member, $0.kind, $0.position) < ($1.member, $1.kind, $1.position) })
        // Revenue is per day: a date and its UTC midnight select the same days.
        let revenueByDate = try tally(["report", "sales", "--view", "revenue", "--from", "2026-11-21", "--format", "csv"], store: store.path)
        let revenueByMidnight = try tally(["report", "sales", "--view", "revenue", "--from", "2026-11-21T01:00:00+01:00", "--format", "csv"], store: store.path)
        #expect(revenueByDate.status == 0 && revenueByDate.lines.count > 1 && revenueByDate.lines.dropFirst().allSatisfy { $0.hasPrefix("2026-11-21,") })
        #expect(revenueByMidnight.status == 0 && revenueByMidnight.lines == revenueByDate.lines, "\(revenueByMidnight.error)")
    }

    /// Revenue per day was per UTC day only: a fair on Kiritimati (UTC+14) saw its evening's checkout on
    /// the day before. With --time-zone the days, and the dates of --from and --to, are the fair's.
    @Test func daysAreTheTimeZonesWhenOneIsGiven() throws {
        let store = try scenarioStore()
        let local = try tally(["report", "sales", "--view", "revenue", "--time-zone", "Pacific/Kiritimati", "--format", "csv"], store: store.path)
        #expect(local.status == 0, "\(local.error)")
        #expect(local.lines == ["day,channel,location,currency,sales,refunds,revenue", "2026-11-20,booth,b1,USD,1,0,12.50", "2026-11-20,booth,b2,USD,1,0,10.00",
                                "2026-11-21,checkout,s1,USD,1,0,3.83", "2026-11-21,web,web,USD,1,0,20.00", "2026-11-22,booth,b1,USD,1,0,4.00"], "\(local.output)")
        // UTC named is UTC unnamed (the figures kept per UTC day).
        let utc = try tally(["report", "sales", "--view", "revenue", "--format", "csv"], store: store.path)
        #expect(try tally(["report", "sales", "--view", "revenue", "--time-zone", "UTC", "--format", "csv"], store: store.path).lines == utc.lines)
        // A date is that day's first moment there: 2026-11-21 on Kiritimati began at 2026-11-20T10:00:00Z.
        let since = try tally(["report", "sales", "--from", "2026-11-21", "--time-zone", "Pacific/Kiritimati", "--format", "csv"], store: store.path)
        #expect(since.lines.dropFirst().map { $0.split(separator: ",")[3] } == ["k1", "o1", "s3"], "\(since.output)")
        let byChannel = try tally(["report", "sales", "--view", "revenue", "--channel", "booth", "--booth", "b1", "--from", "2026-11-21",
                                   "--time-zone", "Pacific/Kiritimati", "--format", "csv"], store: store.path)
        #expect(byChannel.lines.dropFirst() == ["2026-11-22,booth,b1,USD,1,0,4.00"], "\(byChannel.output)")
        // Whole days there: UTC midnight is 14:00 on Kiritimati.
        let partial = try tally(["report", "sales", "--view", "revenue", "--from", "2026-11-21T00:00:00Z", "--time-zone", "Pacific/Kiritimati"], store: store.path)
        #expect(partial.status != 0 && partial.error.contains(#"--view revenue adds up whole days (Pacific/Kiritimati): --from must be a date or a midnight there, not "2026-11-21T00:00:00Z""#),
                "\(partial.error)")
        let unknown = try tally(["report", "sales", "--time-zone", "Mars/Olympus"], store: store.path)
        #expect(unknown.status != 0 && unknown.error.contains(#"--time-zone "Mars/Olympus" is not a time zone"#))
    }

    /// The member views' first and last seen are text: a date in --from is still that day's start in
    /// --time-zone (they once took it as a UTC date, whatever the zone).
    @Test func memberViewsReadDatesInTheTimeZone() throws {
        let store = try scenarioStore()
        try store.run(Actor(.member, "m1"), .recordMemberDevice(memberID: "m1", deviceFingerprint: "phone-1"))
        try store.run(Actor(.admin, "ana"), .recordMemberDevice(memberID: "m1", deviceFingerprint: "phone-1"))
        try store.run(Actor(.member, "m1"), .reviseShoppingList(listID: "l1", memberID: "m1", lines: [ShoppingListLine(sku: sku("000000004048"), quantity: 2)]))
        for view in ["summary", "devices", "lists"] {
            // Everything happened on 2026-11-20 or 11-21 in UTC; in Kiritimati (UTC+14) 11-22 began at 11-21T10:00Z.
            let utc = try tally(["report", "member", "--view", view, "--member", "m1", "--from", "2026-11-23", "--format", "csv"], store: store.path)
            #expect(utc.status == 0 && utc.lines.count == 1, "\(view): \(utc.output)\(utc.error)")
            let local = try tally(["report", "member", "--view", view, "--member", "m1", "--from", "2026-11-22", "--to", "2026-11-23",
                                   "--time-zone", "Pacific/Kiritimati", "--format", "csv"], store: store.path)
            #expect(local.status == 0 && local.lines.count == 2, "\(view): \(local.output)\(local.error)")
            let before = try tally(["report", "member", "--view", view, "--member", "m1", "--to", "2026-11-20", "--time-zone", "Pacific/Kiritimati",
                                    "--format", "csv"], store: store.path)
            #expect(before.status == 0 && before.lines.count == 1, "\(view): \(before.output)")
        }
        let customers = try tally(["report", "member", "--view", "devices", "--kind", "customer"], store: store.path)
        #expect(customers.status != 0 && customers.error.contains("web-shop customers record no devices"), "\(customers.error)")
        let lists = try tally(["report", "member", "--view", "lists", "--member", "m1", "--format", "csv"], store: store.path)
        #expect(lists.lines == ["member_id,list_id,revision,sku,was,now", "m1,l1,1,000000004048,0,2"], "\(lists.output)\(lists.error)")
        let customerLists = try tally(["report", "member", "--view", "lists", "--kind", "customer"], store: store.path)
        #expect(customerLists.status != 0 && customerLists.error.contains("web-shop customers keep no shopping lists"), "\(customerLists.error)")
    }

    @Test func asOfReportsTheReadModelAsTheLogStoodThen() throws {
        let store = try scenarioStore()
        // Before day 2: two booth sales, no third.
        let early = try tally(["report", "sales", "--channel", "booth", "--as-of", "2026-11-20T23:59:59Z", "--format", "csv"], store: store.path)
        #expect(early.status == 0, "\(early.error)")
        #expect(early.lines.count == 3)
        let now = try tally(["report", "sales", "--channel", "booth", "--format", "csv"], store: store.path)
        #expect(now.lines.count == 4)
        // By position: as of position 0 nothing had happened.
        let empty = try tally(["report", "sales", "--as-of", "0", "--format", "csv"], store: store.path)
        #expect(empty.status == 0 && empty.lines.count == 1)
        let tooFar = try tally(["report", "sales", "--as-of", "99999"], store: store.path)
        #expect(tooFar.status != 0 && tooFar.error.contains("position 99999 is beyond the log's head"))
    }

    @Test(arguments: [
        (["projections", "rebuild", "nope"], "no projection named \"nope\" (projections: sales, members, transactions)"),
        (["report", "sales", "--as-of", "yesterday"], "--as-of \"yesterday\" is neither a log position nor an RFC 3339 time or date"),
        (["report", "sales", "--format", "xml"], "xml"),
        (["report", "sales", "--channel", "phone"], "--channel must be booth, web or checkout, not \"phone\""),
        (["report", "sales", "--view", "vouchers", "--booth", "b1"], "--view vouchers takes no filters"),
        (["report", "sales", "--view", "revenue", "--to", "2026-11-21T12:00:00Z"],
         "--view revenue adds up whole days (UTC): --to must be a date or a UTC midnight, not \"2026-11-21T12:00:00Z\""),
        (["report", "sales", "--view", "revenue", "--from", "2026-11-21T00:00:00+01:00"], "--from must be a date or a UTC midnight"),
        (["report", "member", "--from", "soon"], "--from \"soon\" is not an RFC 3339 time or a date"),
        (["report", "transactions", "--limit", "0"], "--limit must be at least 1"),
    ])
    func badInputIsNamedAndChangesNothing(arguments: [String], message: String) throws {
        let store = try scenarioStore()
        let before = listing(store.path)
        let run = try tally(arguments, store: store.path)
        #expect(run.status != 0)
        #expect(run.error.contains(message), "\(run.error)")
        #expect(listing(store.path) == before)
    }

    @Test func statusShowsEachReadModel() throws {
        let store = try scenarioStore()
        let before = try tally(["projections", "status", "--json"], store: store.path)
        let missing = try #require(try JSONSerialization.jsonObject(with: Data(before.output.utf8)) as? [[String: Any]])
        #expect(missing.map { $0["state"] as? String } == ["missing", "missing", "missing"])
        let rebuild = try tally(["projections", "rebuild"], store: store.path)
        #expect(rebuild.status == 0, "\(rebuild.error)")
        // Rebuilt at once, reported in the projectors' order.
        #expect(rebuild.lines.map { $0.prefix { $0 != ":" } } == ["sales", "members", "transactions"])
        let head = try store.log.head().position
        #expect(rebuild.lines.allSatisfy { $0.hasSuffix("rebuilt to position \(head) and switched in") })
        try store.run(admin, .issueVoucher(voucherID: "v10", amount: cents(100), buyerEmail: "z@example.org"))
        let after = try tally(["projections"], store: store.path)
        #expect(after.status == 0)
        #expect(after.lines.count == 4 && after.lines.dropFirst().allSatisfy { $0.contains(" behind ") && $0.contains(" 1  ") })
    }
}
