import Foundation
import Testing
import TallyDomain
import TallyTestSupport

@Suite struct ExecTests {
    @Test func theCatalogueCoversEveryCommandAndANewStoreAcceptsItAll() throws {
        let catalog = try tally(["exec", "--catalog"], store: nil)
        #expect(catalog.status == 0)
        let names = Set(try catalog.lines.map { try #require((json($0)["command"] as? [String: Any])?.keys.first) })
        let known = ["registerBooth", "assignOperator", "unassignOperator", "issueVoucher", "redeemVoucher", "registerUser", "changeUserEmail", "deactivateUser",
                     "createCategory", "changeCategory", "createProduct",
                     "changeProductPrice", "receiveStock", "adjustStock", "placeOrder", "confirmOrder", "initiatePayment", "recordPaymentSucceeded",
                     "recordPaymentFailed", "markOrderPaid", "shipOrder", "deliverOrder", "cancelOrder", "recordRefund", "openStore", "createItem", "changeItem",
                     "schedulePrice", "registerMember", "linkSocialAccount", "recordMemberDevice", "changeMemberProfile", "reviseShoppingList", "deactivateMember", "openCart", "scanItem",
                     "removeItem", "approveRestrictedItems", "checkout", "erasePersonalData"]
        #expect(names == Set(known))
        let store = try newStore()
        let run = try tally(["exec"], store: store, input: catalog.output)
        #expect(run.status == 0, "\(run.error)")
        #expect(run.lines.count == catalog.lines.count)
        for line in run.lines { #expect(try json(line)["result"] as? String == "accepted", "\(line)") }
        #expect(try tally(["verify"], store: store).status == 0)
    }

    /// `exec` executes the commands it has read together, but answers each before it waits for more
    /// input: a client that writes one command and waits for its answer is not left waiting.
    @Test func aClientWaitingForEachAnswerGetsIt() throws {
        let store = try newStore()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tallyPath())
        process.arguments = ["exec", "--store", store]
        let (input, output) = (Pipe(), Pipe())
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        var pending = Data()
        for index in 1...3 {
            let line = #"{"id":"00000000-0000-4000-8000-00000000f0\#(index)0","actor":"admin:ana","command":{"registerBooth":{"boothID":"b\#(index)","name":"Pies","location":"Hall A"}}}"#
            input.fileHandleForWriting.write(Data((line + "\n").utf8))
            // The answer, read with a deadline: a hang is a failure, not a stuck test run.
            let answered = DispatchSemaphore(value: 0)
            let reader = output.fileHandleForReading
            nonisolated(unsafe) var received = pending
            DispatchQueue.global().async {
                while !received.contains(UInt8(ascii: "\n")) {
                    let chunk = reader.availableData
                    if chunk.isEmpty { break }
                    received.append(chunk)
                }
                answered.signal()
            }
            #expect(answered.wait(timeout: .now() + 30) == .success, "no answer to line \(index)")
            let newline = try #require(received.firstIndex(of: UInt8(ascii: "\n")))
            let answer = String(decoding: received[..<newline], as: UTF8.self)
            pending = Data(received[(newline + 1)...])
            #expect(answer.contains(#""line":\#(index),"#) && answer.contains(#""result":"accepted""#), "\(answer)")
        }
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    /// A command whose events the log refuses (here the id of its second event was taken by hand) got
    /// no result line and stopped `exec`: the lines after it never ran. It is answered and they run.
    @Test func aCommandTheLogRefusesIsAnsweredAndTheRestRun() throws {
        let store = try newStore()
        let command = UUID(uuidString: "00000000-0000-4000-8000-0000000000e1")!
        let taken = CommandEventIDs.id(command: command, index: 1)
        let append = try tally(["append", "--stream", "mine", "--type", "Mine", "--data", "{}", "--id", taken.uuidString], store: store)
        #expect(append.status == 0, "\(append.error)")
        let lines = [#"{"id":"00000000-0000-4000-8000-0000000000e1","actor":"customer:u1","command":{"registerUser":{"userID":"u1","username":"una","email":"una@example.org","isAdmin":false}}}"#,
                     #"{"id":"00000000-0000-4000-8000-0000000000e2","actor":"admin:ana","command":{"registerBooth":{"boothID":"1","name":"Pies","location":"Hall A"}}}"#]
        let run = try tally(["exec"], store: store, input: lines.joined(separator: "\n"))
        #expect(run.status == 1 && run.lines.count == 2, "\(run.output)\(run.error)")
        #expect(run.lines[0].contains(#""result":"error","code":"refusedByTheLog""#) && run.lines[0].contains("already in the log at position 1"), "\(run.lines[0])")
        #expect(run.lines[1].contains(#""command":"registerBooth","result":"accepted""#), "\(run.lines[1])")
        // Nothing of the refused command was appended: the log holds the event by hand and the booth.
        #expect(try tally(["read"], store: store).lines.count == 2)
    }

    @Test func aScriptedScenarioGetsOneResultPerLine() throws {
        let store = try newStore()
        let script = """
            {"id":"00000000-0000-4000-8000-000000000001","actor":"admin:ana","command":{"registerBooth":{"boothID":"3","name":"Lemonade","location":"North"}}}
            {"id":"00000000-0000-4000-8000-000000000002","actor":"admin:ana","command":{"assignOperator":{"boothID":"3","operatorID":"lee","operatorName":"Lee"}}}
            {"id":"00000000-0000-4000-8000-000000000003","actor":"admin:ana","command":{"issueVoucher":{"voucherID":"7","amount":{"minor":2500,"currency":"USD"},"buyerEmail":"k@example.org"}}}
            {"id":"00000000-0000-4000-8000-000000000004","actor":"operator:lee","command":{"redeemVoucher":{"voucherID":"7","boothID":"3","saleID":"s1","saleAmount":{"minor":3000,"currency":"USD"}}}}
            {"id":"00000000-0000-4000-8000-000000000005","actor":"operator:lee","command":{"redeemVoucher":{"voucherID":"7","boothID":"3","saleID":"s1","saleAmount":{"minor":1800,"currency":"USD"}}}}
            {"id":"00000000-0000-4000-8000-000000000005","actor":"operator:lee","command":{"redeemVoucher":{"voucherID":"7","boothID":"3","saleID":"s1","saleAmount":{"minor":1800,"currency":"USD"}}}}
            {"id":"00000000-0000-4000-8000-000000000006","actor":"operator:lee","command":{"redeemVoucher":{"voucherID":"7","boothID":"3","saleID":"s2","saleAmount":{"minor":100,"currency":"USD"}}}}
            {"id":"00000000-0000-4000-8000-000000000007","actor":"operator:lee","command":{"redeemVoucher":{"voucherID":"99","boothID":"3","saleID":"s3","saleAmount":{"minor":100,"currency":"USD"}}}}
            {"id":"00000000-0000-4000-8000-000000000008","actor":"operator:lee","command":{"redeemVoucher":{"voucherID":"7","boothID":"3","saleID":"s4","saleAmount":{"minor":-5,"currency":"USD"}}}}
            {"id":"00000000-0000-4000-8000-000000000009","actor":"operator:lee","command":{"refund":{"voucherID":"7"}}}
            {"id":"00000000-0000-4000-8000-00000000000a","actor":"operator:lee","command":{"redeemVoucher":{"voucherID":"7","boothID":"3","saleAmount":{"minor":1,"currency":"USD"}}}}
            {"id":"00000000-0000-4000-8000-00000000000b","actor":"admin:ana","command":{"issueVoucher":{"voucherID":"8","amount":{"minor":100,"currency":"USD"},"buyerEmail":"x@example.org"}}}
            {oops
            """
        let run = try tally(["exec"], store: store, input: script)
        #expect(run.status == 1)  // Two lines were not commands.
        let results = try run.lines.map(json)
        #expect(results.count == 13)
        func field(_ index: Int, _ name: String) -> String? { results[index][name] as? String }
        #expect((0..<3).allSatisfy { field($0, "result") == "accepted" })
        #expect(field(3, "code") == "saleExceedsVoucher")
        #expect(field(4, "result") == "accepted")
        #expect(field(5, "result") == "accepted" && results[5]["retry"] as? Bool == true)
        #expect(results[5]["positions"] as? [Int] == results[4]["positions"] as? [Int])
        #expect(field(6, "code") == "voucherAlreadyRedeemed")
        #expect(field(7, "code") == "voucherNotFound")
        #expect(field(8, "code") == "nonPositiveAmount")
        #expect(field(9, "code") == "malformedCommand" && field(9, "message")?.contains("unknown command \"refund\"") == true)
        #expect(field(10, "code") == "malformedCommand" && field(10, "message")?.contains("missing field \"command.redeemVoucher.saleID\"") == true)
        #expect(field(11, "result") == "accepted")
        #expect(field(12, "message") == #"line 13: malformed JSON at byte 2 of 5, after "{""#)
        #expect(run.error.contains("line 13: malformed JSON at byte 2"))
        // Only accepted commands appended: 4 set-up events (the operator's claim on their booth among
        // them), a redemption and its sale, one voucher.
        #expect(try tally(["info", "--json"], store: store).lines.first.map(json)?["events"] as? Int == 7)

        // Reports by booth: the booth's id, not its stream's name. A filter the read model has never
        // heard of says so on stderr, with ids it does hold; one that is merely quiet in a window says nothing.
        let booth = try tally(["report", "sales", "--booth", "3", "--format", "csv"], store: store)
        #expect(booth.status == 0 && booth.lines.count == 2 && booth.lines[1].contains(",s1,7,"), "\(booth.output)")
        let stream = try tally(["report", "sales", "--booth", "booth-3", "--format", "csv"], store: store)
        #expect(stream.status == 0 && stream.lines.count == 1)
        #expect(stream.error.contains(#"note: --booth "booth-3" matches nothing in sales (ids there look like "3")"#), "\(stream.error)")
        let zoned = try tally(["report", "sales", "--view", "revenue", "--time-zone", "Europe/Paris", "--booth", "booth-3"], store: store)
        #expect(zoned.status == 0 && zoned.error.contains(#"note: --booth "booth-3" matches nothing in sales"#), "\(zoned.error)")
        let quiet = try tally(["report", "sales", "--booth", "3", "--from", "2099-01-01", "--format", "csv"], store: store)
        #expect(quiet.status == 0 && quiet.lines.count == 1 && !quiet.error.contains("note:"), "\(quiet.error)")
        #expect(try tally(["report", "member", "--member", "nobody"], store: store).error.contains("(it has no rows yet)"))
    }
}

@Suite struct DemoTests {
    @Test func theDemoRecordsAVerifiedHistoryThroughTheRules() throws {
        let store = testPath("demo")
        let run = try tally(["demo", "--events", "3000"], store: store)
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("verify: ok"))
        for type in ["VoucherRedeemed", "SaleRecorded", "OrderPaid", "PaymentFailed", "CartCheckedOut", "PriceScheduled", "RestrictedItemsApproved"] {
            #expect(run.output.contains(type), "no \(type) in the summary")
        }
        #expect(run.output.contains("voucherAlreadyRedeemed"))
        let info = try json(try tally(["info", "--json"], store: store).lines[0])
        #expect((info["events"] as? Int ?? 0) >= 3000)
        #expect(try tally(["verify"], store: store).status == 0)
        // A store with events is refused: the demo writes a fresh history.
        let again = try tally(["demo", "--events", "10"], store: store)
        #expect(again.status != 0 && again.error.contains("already holds"))
    }
}
