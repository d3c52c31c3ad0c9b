import Foundation
import Testing
import TallyLog
import TallyTestSupport

func newStore() throws -> String {
    let path = testPath("cli")
    let run = try tally(["init"], store: path)
    #expect(run.status == 0, "\(run.error)")
    return path
}

func json(_ line: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
}

@Suite struct CLITests {
    /// Output that cannot be written (a full disk under a redirection; `/dev/full` here, which refuses
    /// every write with ENOSPC) ends the command with an error that says so. Before, `read` and
    /// `report` exited 0 with the output cut short, and `follow` stopped the process with a trap.
    @Test func outputThatCannotBeWrittenIsAnErrorNotACutShortSuccess() throws {
        let store = try newStore()
        let events = (1...300).map { #"{"stream":"s-\#($0 % 3)","type":"Tick","data":{"n":\#($0)}}"# }.joined(separator: "\n")
        #expect(try tally(["append"], store: store, input: events).status == 0)
        let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        defer { try? full.close() }
        for arguments in [["read"], ["follow", "--limit", "300"], ["info"], ["verify"], ["report", "sales", "--format", "csv"]] {
            let run = try tally(arguments, store: store, bytes: nil, standardOutput: full)
            #expect(run.status == 1, "\(arguments): \(run.status) \(run.error)")
            #expect(run.error.contains("cannot write to standard output: No space left on device"), "\(arguments): \(run.error)")
        }
    }

    @Test func appendReadInfoAndVerify() throws {
        let store = try newStore()
        let first = try tally(["append", "--stream", "voucher-1", "--type", "GiftCardSold", "--data", #"{"amount":{"minor":500,"currency":"USD"}}"#,
                               "--expected-version", "no-stream", "--actor", "admin:ana"], store: store)
        #expect(first.status == 0, "\(first.error)")
        #expect(try json(first.lines[0])["position"] as? Int == 1)
        let lines = """
            {"stream":"cart-1","type":"BasketStarted","data":{"store":"s1"},"actor":"member:7"}
            {"stream":"cart-1","type":"ItemAdded","data":{"sku":"000123","qty":2},"expectedVersion":0}

            {"stream":"voucher-1","type":"GiftCardUsed","data":{"booth":3},"expectedVersion":1}
            """
        let batch = try tally(["append"], store: store, input: lines)
        #expect(batch.status == 0, "\(batch.error)")
        #expect(batch.lines.count == 3)
        #expect(try batch.lines.map { try json($0)["position"] as? Int } == [2, 3, 4])

        let all = try tally(["read"], store: store)
        #expect(all.lines.count == 4)
        let item = try json(all.lines[2])
        #expect(item["type"] as? String == "ItemAdded")
        #expect((item["data"] as? [String: Any])?["sku"] as? String == "000123")  // Leading zeros kept: SKUs are strings.
        #expect(item["version"] as? Int == 2)
        #expect(try tally(["read", "--stream", "cart-1"], store: store).lines.count == 2)
        #expect(try tally(["read", "--type", "GiftCardUsed"], store: store).lines.count == 1)
        let newest = try tally(["read", "--backward", "--limit", "1"], store: store)
        #expect(try json(newest.lines[0])["position"] as? Int == 4)
        #expect(try tally(["read", "--until-position", "2"], store: store).lines.count == 2)
        // The time printed for an event, given back to --as-of, selects the log up to that event (the
        // batch after it was appended by a later process, so at a later microsecond).
        let firstTime = try #require(try json(all.lines[0])["recordedAt"] as? String)
        let asOfFirst = try tally(["read", "--as-of", firstTime], store: store)
        #expect(asOfFirst.status == 0 && asOfFirst.lines.count == 1, "\(firstTime): \(asOfFirst.output)")
        // And --since starts there: the batch recorded after it, or everything from the first event.
        let secondTime = try #require(try json(all.lines[1])["recordedAt"] as? String)
        #expect(try tally(["read", "--since", secondTime], store: store).lines.map { try json($0)["position"] as? Int } == [2, 3, 4])
        #expect(try tally(["read", "--since", firstTime], store: store).lines.count == 4)
        #expect(try tally(["read", "--since", firstTime, "--as-of", firstTime], store: store).lines.count == 1)
        #expect(try tally(["read", "--since", "tomorrow"], store: store).error.contains("--since \"tomorrow\" is not an RFC 3339 time or a date"))

        let info = try tally(["info", "--json"], store: store)
        let head = try json(info.lines[0])
        #expect(head["events"] as? Int == 4 && head["streams"] as? Int == 2)
        #expect(head["eventTypes"] as? [String: Int] == ["BasketStarted": 1, "GiftCardSold": 1, "GiftCardUsed": 1, "ItemAdded": 1])
        #expect(try tally(["info"], store: store).output.contains("event types    4\n  BasketStarted  1\n"))
        // A misspelt type or stream reads as an empty history: the reader is told, and nothing is printed.
        let misspelt = try tally(["read", "--type", "itemadded"], store: store)
        #expect(misspelt.status == 0 && misspelt.lines.isEmpty)
        #expect(misspelt.error == "note: the log has no event of type \"itemadded\" (did you mean \"ItemAdded\"?)\n")
        #expect(try tally(["read", "--type", "Refund"], store: store).error.contains("no event of type \"Refund\" (tally info lists"))
        #expect(try tally(["read", "--stream", "cart-9"], store: store).error == "note: the log has no stream \"cart-9\"\n")
        // A stream or type the log has, outside the window asked for: no note, the window explains it.
        #expect(try tally(["read", "--stream", "cart-1", "--until-position", "1"], store: store).error.isEmpty)
        let verify = try tally(["verify"], store: store)
        #expect(verify.status == 0 && verify.output.hasPrefix("ok: 4 events"))
    }

    @Test func readWritesOneValidLinePerEventWhateverThePayloads() throws {
        let store = try newStore()
        // Payloads as the Swift API may append them: JSON with line breaks, not JSON, bad UTF-8, a bad number.
        let payloads: [[UInt8]] = [Array("{\"a\": 1,\n  \"b\": \"x\"}\r\n".utf8), Array("not json".utf8), Array(#"{"s":"café","e":"\u00e9\n"}"#.utf8),
                                   Array(#"{"s":""#.utf8) + [0xFF] + Array(#""}"#.utf8), Array(#"{"n":01}"#.utf8), Array(#"{"s":"\q"}"#.utf8)]
        let log = try EventLog.open(at: store)
        _ = try log.append(AppendRequest(events: payloads.map { ProposedEvent(id: UUID(), stream: "s", type: "T", payload: Data($0)) }))
        log.close()
        let read = try tally(["read", "--sealed"], store: store)
        #expect(read.status == 0 && read.lines.count == payloads.count, "\(read.output)")
        let objects = try read.lines.map { try json($0) }
        #expect((objects[0]["data"] as? [String: Any])?["a"] as? Int == 1 && (objects[0]["data"] as? [String: Any])?["b"] as? String == "x")
        #expect((objects[2]["data"] as? [String: Any])?["s"] as? String == "café" && (objects[2]["data"] as? [String: Any])?["e"] as? String == "é\n")
        for (index, payload) in payloads.enumerated() where [1, 3, 4, 5].contains(index) {
            #expect(objects[index]["data"] == nil && objects[index]["dataBase64"] as? String == Data(payload).base64EncodedString(), "\(index)")
        }
    }

    @Test func readWritesEveryEnvelopeFieldExactly() throws {
        let store = try newStore()
        let odd = "q\"b\\n/é€😀"  // a quote, a backslash, a slash and UTF-8 of 2 to 4 bytes (control characters are refused)
        var event = ProposedEvent(id: UUID(), stream: "s-" + odd, type: "Odd.type_1:v", schemaVersion: 3, actor: "member:" + odd,
                                  payload: Data(#"{"x":[1,2.5e3,"\u00e9"],"y":null}"#.utf8))
        event.correlationID = UUID()
        event.causationID = UUID()
        event.metadata = Data(#"{"command":"c"}"#.utf8)
        let log = try EventLog.open(at: store)
        let appended = try log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "first", type: "T", payload: Data("{}".utf8)), event]))
        var reader = log.read(ReadQuery(from: appended.positions[1]))
        let recorded = try #require(try reader.next())
        log.close()
        let read = try tally(["read", "--sealed", "--from", "2"], store: store)
        #expect(read.status == 0 && read.lines.count == 1, "\(read.error)")
        let line = try json(read.lines[0])
        #expect(line["position"] as? Int == 2 && line["version"] as? Int == 1 && line["schemaVersion"] as? Int == 3)
        #expect(line["id"] as? String == event.id.uuidString.lowercased())
        #expect(line["stream"] as? String == event.stream && line["type"] as? String == event.type && line["actor"] as? String == event.actor)
        #expect(line["correlationId"] as? String == event.correlationID?.uuidString.lowercased())
        #expect(line["causationId"] as? String == event.causationID?.uuidString.lowercased())
        #expect(line["recordedAt"] as? String == recorded.recordedAt.iso8601)
        #expect((line["metadata"] as? [String: Any])?["command"] as? String == "c")
        #expect(((line["data"] as? [String: Any])?["x"] as? [Any])?.count == 3)
        #expect(line["hash"] as? String == recorded.hash.hex)
        // The keys in their fixed order, as the line is written.
        let keys = ["position", "id", "stream", "version", "type", "schemaVersion", "recordedAt", "actor", "correlationId", "causationId", "metadata", "data", "hash"]
        let offsets = keys.map { read.lines[0].range(of: "\"\($0)\":")?.lowerBound }
        #expect(offsets.allSatisfy { $0 != nil } && offsets.map { $0! } == offsets.map { $0! }.sorted())
    }

    @Test func theStoreComesFromTheEnvironmentWhenNotGiven() throws {
        let store = try newStore()
        let run = try tally(["append", "--stream", "s", "--type", "T", "--data", "{}"], store: nil, environment: ["TALLY_STORE": store])
        #expect(run.status == 0, "\(run.error)")
        #expect(try tally(["read"], store: store).lines.count == 1)
    }

    @Test func retryingWithTheSameIdIsANoOp() throws {
        let store = try newStore()
        let id = UUID().uuidString
        let arguments = ["append", "--stream", "payment-1", "--type", "TerminalPaid", "--data", #"{"txn":"MP123"}"#, "--id", id]
        #expect(try tally(arguments, store: store).status == 0)
        let again = try tally(arguments, store: store)
        #expect(again.status == 0)
        #expect(try json(again.lines[0])["alreadyAppended"] as? Bool == true)
        let conflicting = try tally(["append", "--stream", "payment-1", "--type", "TerminalPaid", "--data", #"{"txn":"OTHER"}"#, "--id", id], store: store)
        #expect(conflicting.status != 0)
        #expect(conflicting.error.contains("already in the log at position 1 with another payload"))
        #expect(try tally(["read"], store: store).lines.count == 1)
    }

    static let badInputs: [(String, [String], String?, String)] = [
        ("malformed JSON", ["append"], "{\"stream\":\"a\"\n{oops\n", #"line 1: malformed JSON at the end, after "{"stream":"a"""#),
        ("malformed line", ["append"], "{\"stream\":\"a\",\"type\":\"T\",\"data\":{}}\n{oops\n", #"line 2: malformed JSON at byte 2 of 5, after "{""#),
        // Foundation would take a comma before a closing brace; jq and DuckDB, reading the same file, would not.
        ("trailing comma", ["append"], #"{"stream":"s","type":"T","data":{"a":1,}}"#, #"line 1: malformed JSON at byte 40 of 41, after "…type":"T","data":{"a":1,""#),
        // Foundation kept the last of a key given twice, without a word; which one did the sender mean?
        ("key given twice", ["append"], #"{"stream":"s","type":"T","data":{"sku":"0042","qty":1,"sku":"42"}}"#,
         #"line 1: a second key "sku" in one object (the first is at byte 34) at byte 55 of 66, after "…":{"sku":"0042","qty":1,""#),
        ("envelope key given twice", ["append"], #"{"stream":"s","type":"T","data":{},"stream":"t"}"#, #"line 1: a second key "stream" in one object (the first is at byte 2)"#),
        ("half a surrogate pair", ["append"], #"{"stream":"s","type":"T","data":"\ud800"}"#,
         #"line 1: a \u escape of half a surrogate pair (\ud800 without the low half after it) at byte 34"#),
        ("command key given twice", ["exec"], #"{"id":"00000000-0000-4000-8000-0000000000c4","actor":"admin:ana","command":{"registerBooth":{"boothID":"3","location":"N","name":"L","boothID":"4"}}}"#,
         #"line 1: a second key "boothID" in one object (the first is at byte 94) at byte 134 of 149"#),
        ("mistyped field", ["append"], #"{"stream":7,"type":"T","data":{}}"#, #"field "stream" must be a string"#),
        ("unknown field", ["append"], #"{"stream":"s","type":"T","data":{},"colour":1}"#, #"unknown field "colour""#),
        ("bad uuid", ["append"], #"{"stream":"s","type":"T","data":{},"id":"nope"}"#, "must be a UUID"),
        ("empty stream", ["append"], #"{"stream":"","type":"T","data":{}}"#, "it is empty"),
        ("long stream", ["append"], "{\"stream\":\"\(String(repeating: "x", count: 201))\",\"type\":\"T\",\"data\":{}}", "the limit is 200"),
        ("bad type", ["append", "--stream", "s", "--type", "has space", "--data", "{}"], nil, "invalid event type"),
        ("big payload", ["append"], "{\"stream\":\"s\",\"type\":\"T\",\"data\":\"\(String(repeating: "x", count: 1_100_000))\"}", "the limit is 1048576"),
        ("wrong version", ["append", "--stream", "s", "--type", "T", "--data", "{}", "--expected-version", "3"], nil, "is at version 0, but the append expected 3"),
        ("no input", ["append"], "", "no events on standard input"),
        ("two expectations", ["append"], #"{"stream":"s","type":"T","data":{},"expectedVersion":0}"# + "\n" + #"{"stream":"s","type":"T","data":{},"expectedVersion":1}"#, "two different expected versions"),
        ("bad data", ["append", "--stream", "s", "--type", "T", "--data", "{nope"], nil, "--data: malformed JSON at byte 2 of 5"),
        ("bad metadata", ["append", "--stream", "s", "--type", "T", "--data", "{}", "--metadata", #"{"a":01}"#], nil, #"--metadata: malformed JSON at byte 7 of 8, after "{"a":0""#),
        // The commerce domain's own types are written by its commands only (`DomainEvents`): a payload
        // that is not its type's shape would stop the read models at it for good.
        ("domain type", ["append", "--stream", "voucher-1", "--type", "VoucherIssued", "--data", #"{"amount":{"minor":500,"currency":"USD"}}"#], nil,
         #""VoucherIssued" is an event type of the commerce domain: record it with its command through `tally exec`"#),
        ("domain type in a batch", ["append"], #"{"stream":"s","type":"T","data":{}}"# + "\n" + #"{"stream":"cart-1","type":"CartOpened","data":{}}"#,
         #"line 2: "CartOpened" is an event type of the commerce domain"#),
        // A line without end was read whole into memory before anything was said.
        ("line too long", ["append"], String(repeating: "x", count: (16 << 20) + 100), "line 1 is longer than 16 MiB without a line break"),
        ("too many lines", ["append"], String(repeating: #"{"stream":"s","type":"T","data":{}}"# + "\n", count: Limits.batchEventsMax + 1),
         "line 100001: more than 100000 events on standard input; one append takes at most 100000"),
        // A misspelt optional field was passed over by the decoder: the beer lost its bottle deposit without a word.
        ("unknown command field", ["exec"], #"{"id":"00000000-0000-4000-8000-0000000000c3","actor":"admin:ana","command":{"createItem":{"details":{"departmentCode":"BEER","description":"Lager","restricted":true,"taxable":true,"linkedSku":"000000000010"},"sku":"000012345678","storeID":"s1"}}}"#,
         #"line 1: unknown field "command.createItem.details.linkedSku""#),
        // Foundation's words named Swift types: "must be Dictionary<String, Any>", "Cannot initialize PaymentMethod".
        ("amount not an object", ["exec"], #"{"id":"00000000-0000-4000-8000-0000000000c6","actor":"customer:u1","command":{"initiatePayment":{"paymentID":"p","orderID":"o","amount":5,"method":"card"}}}"#,
         #"line 1: field "command.initiatePayment.amount" must be an object"#),
        ("unknown payment method", ["exec"], #"{"id":"00000000-0000-4000-8000-0000000000c7","actor":"customer:u1","command":{"initiatePayment":{"paymentID":"p","orderID":"o","amount":{"minor":5,"currency":"USD"},"method":"cash"}}}"#,
         #"line 1: field "command.initiatePayment.method" must be one of mpesa, card, paypal, not "cash""#),
        ("lines not an array", ["exec"], #"{"id":"00000000-0000-4000-8000-0000000000c8","actor":"customer:u1","command":{"placeOrder":{"orderID":"o","userID":"u1","lines":{"productID":"p"}}}}"#,
         #"line 1: field "command.placeOrder.lines" must be an array"#),
        ("bad command id", ["exec"], #"{"id":"00000000-0000-4000-8000-0000000000111","actor":"admin:ana","command":{"registerBooth":{}}}"#,
         #"line 1: field "id" must be a UUID (32 hex digits as 8-4-4-4-12, e.g. "123e4567-e89b-12d3-a456-426614174000"), not "00000000-0000-4000-8000-0000000000111""#),
        ("bad erasure actor", ["forget", "member:m1", "--actor", "bogus"], nil, #"--actor "bogus" must be role:id, e.g. admin:privacy"#),
        ("erasure by a non-admin", ["forget", "member:m1", "--actor", "member:m1"], nil, "refused: notAuthorized: only an admin may erase personal data"),
        ("bad since", ["read", "--since", "2026-11-22T09:30"], nil, #"--since "2026-11-22T09:30" is not an RFC 3339 time or a date"#),
        ("window backward", ["read", "--since", "2026-11-22T10:00:00Z", "--as-of", "2026-11-22"], nil, #"--since "2026-11-22T10:00:00Z" is after --as-of "2026-11-22""#),
        ("follow into the future", ["follow", "--as-of", "2999-01-01"], nil, #"--as-of "2999-01-01" is in the future: follow without it, or up to a position with --until-position"#),
        ("report window backward", ["report", "sales", "--from", "2026-11-23", "--to", "2026-11-22"], nil, #"--from "2026-11-23" is not before --to "2026-11-22""#),
    ]

    @Test(arguments: 0..<badInputs.count)
    func badInputGetsAClearErrorAndWritesNothing(index: Int) throws {
        let (_, arguments, input, message) = Self.badInputs[index]
        let store = try newStore()
        let run = try tally(arguments, store: store, input: input)
        #expect(run.status != 0)
        #expect(run.error.contains(message), "\(run.error)")
        #expect(try tally(["info", "--json"], store: store).lines.first.map(json)?["events"] as? Int == 0)
    }

    /// Payloads went through Foundation on their way in: a 42-digit number came back with 39, "1.0" as
    /// "1", and of two keys NFC and NFD "é" one was dropped. They are stored as sent, in canonical form.
    @Test func aPayloadIsStoredAsSentDigitForDigit() throws {
        let store = try newStore()
        let id = "0190a000-0000-7000-8000-000000000001"
        let line = #"{"stream":"s","type":"Measured","id":"\#(id)","data":{ "total": 123456789012345678901234567890123456789012, "#
            + #""rate": 1.0, "b": 1, "B": 2, "\#u{E9}": "composed", "e\#u{301}": "decomposed", "note": "caf\u00e9 \/ \ud83d\ude00" }}"#
        let first = try tally(["append"], store: store, input: line)
        #expect(first.status == 0, "\(first.error)")
        let read = try tally(["read"], store: store)
        let data = try #require(read.lines.first.flatMap { line in line.range(of: #","data":"#).map { line[$0.upperBound...] } })
        let expected = #"{"B":2,"b":1,"e\#u{301}":"decomposed","note":"caf\#u{E9} / \#u{1F600}","rate":1.0,"#
            + #""total":123456789012345678901234567890123456789012,"\#u{E9}":"composed"},"hash""#
        // By bytes: Swift's == would take NFC and NFD "é" as one.
        #expect(Array(data.utf8.prefix(expected.utf8.count)) == Array(expected.utf8), "\(data)")
        // The same content written another way has the same canonical bytes: a retry, not a conflict.
        let reordered = #"{"id":"\#(id)","type":"Measured","stream":"s","data":{"\#u{E9}":"composed","note":"caf\#u{E9} / \#u{1F600}","#
            + #""rate":1.0,"total":123456789012345678901234567890123456789012,"B":2,"b":1,"e\#u{301}":"decomposed"}}"#
        let retry = try tally(["append"], store: store, input: reordered)
        #expect(retry.status == 0 && retry.output.contains(#""alreadyAppended":true"#), "\(retry.error)")
        // A number written otherwise is other content.
        let other = try tally(["append"], store: store, input: reordered.replacingOccurrences(of: "1.0", with: "1"))
        #expect(other.status != 0 && other.error.contains("with another payload"), "\(other.error)")
    }

    /// `readLine` put U+FFFD in place of a byte that is not UTF-8, and the event recorded that.
    @Test func aByteThatIsNotUTF8IsNamedNotReplaced() throws {
        let store = try newStore()
        let good = Data(#"{"stream":"s","type":"T","data":{}}"#.utf8) + Data([0x0D, 0x0A])
        let bad = Data(#"{"stream":"s","type":"T","data":{"name":"Zo"#.utf8) + Data([0xEB]) + Data(#""}}"#.utf8)
        let append = try tally(["append"], store: store, bytes: good + bad)
        #expect(append.status != 0)
        #expect(append.error.contains(#"line 2: a string that is not UTF-8 (byte 0xEB) at byte 44 of 47, after "…":"T","data":{"name":"Zo""#), "\(append.error)")
        #expect(try tally(["info", "--json"], store: store).lines.first.map(json)?["events"] as? Int == 0)
        let command = Data(#"{"id":"00000000-0000-4000-8000-0000000000c5","actor":"admin:ana","command":{"registerBooth":{"boothID":"3","location":"N"#.utf8)
            + Data([0xFF]) + Data(#"","name":"L"}}}"#.utf8)
        let exec = try tally(["exec"], store: store, bytes: command)
        #expect(exec.status != 0)
        #expect(exec.output.contains(#""code":"malformedCommand""#) && exec.error.contains("a string that is not UTF-8 (byte 0xFF)"), "\(exec.error)")
        #expect(try tally(["info", "--json"], store: store).lines.first.map(json)?["events"] as? Int == 0)
        // CRLF line ends and a last line without one are taken as before.
        let crlf = try tally(["append"], store: store, bytes: good + good + Data(#"{"stream":"s","type":"T","data":{}}"#.utf8))
        #expect(crlf.status == 0 && crlf.lines.count == 3, "\(crlf.error)")
    }

    /// A data file cut short (a copy that stopped on a full disk) was read past its end through the
    /// map, and `tally` died of SIGBUS; it is refused on open, naming both sizes. (A process of its own:
    /// one that has the store open keeps its map.)
    @Test func aTruncatedDataFileIsRefusedOnOpen() throws {
        let store = try newStore()
        let lines = (0..<2_000).map { #"{"stream":"s-\#($0 % 50)","type":"T","data":{"pad":"\#(String(repeating: "x", count: 200))"}}"# }
        #expect(try tally(["append"], store: store, input: lines.joined(separator: "\n")).status == 0)
        let data = store + "/log/data.mdb"
        let size = try #require(try FileManager.default.attributesOfItem(atPath: data)[.size] as? UInt64)
        #expect(truncate(data, off_t(size / 2)) == 0)
        for arguments in [["info"], ["read"], ["verify"]] {
            let run = try tally(arguments, store: store)
            #expect(run.status == 1 && run.error.contains("log/data.mdb is \(size / 2) bytes, but the pages it says are in use end at byte"), "\(run.error)")
        }
    }

    @Test func aPathThatIsNotAStoreIsNamed() throws {
        let directory = testPath("not-a-store")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let run = try tally(["read"], store: directory)
        #expect(run.status != 0)
        #expect(run.error.contains("is not a Tally store: it has no log/data.mdb"))
        let twice = try tally(["init"], store: try newStore())
        #expect(twice.status != 0 && twice.error.contains("already holds a Tally store"))
    }

    @Test func aStoreTheUserMayNotWriteIsRefusedClearly() throws {
        let store = try newStore()
        let process = Process()
        if getuid() == 0 {
            // Root may write anywhere: run the append as an unprivileged user instead.
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", "nobody", "--", tallyPath(), "append", "--store", store, "--stream", "s", "--type", "T", "--data", "{}"]
        } else {
            // Anyone else is refused by a store whose files are read-only.
            for file in ["/log/data.mdb", "/log/lock.mdb"] { try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: store + file) }
            try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: store + "/log")
            process.executableURL = URL(fileURLWithPath: tallyPath())
            process.arguments = ["append", "--store", store, "--stream", "s", "--type", "T", "--data", "{}"]
        }
        let error = Pipe()
        process.standardError = error
        process.standardOutput = Pipe()
        try process.run()
        let text = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if getuid() != 0 { try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: store + "/log") }
        #expect(process.terminationStatus != 0)
        #expect(text.contains("permission denied"), "\(text)")
        #expect(try tally(["info", "--json"], store: store).lines.first.map(json)?["events"] as? Int == 0)
    }

    @Test func verifyNamesTheAlteredPositionAndExitsNonZero() throws {
        let store = try newStore()
        let lines = (1...40).map { #"{"stream":"s","type":"Sale","data":{"marker":"mark\#($0)x","amount":100}}"# }.joined(separator: "\n")
        #expect(try tally(["append"], store: store, input: lines).status == 0)
        let file = URL(fileURLWithPath: store + "/log/data.mdb")
        var data = try Data(contentsOf: file)
        let range = try #require(data.range(of: Data("mark23x".utf8)))
        data[range.lowerBound + 4] = UInt8(ascii: "9")
        try data.write(to: file)
        let run = try tally(["verify"], store: store)
        #expect(run.status == 1)
        #expect(run.error.contains("position 23"), "\(run.error)")
    }

    @Test func followPrintsNewEventsFromAnotherProcess() throws {
        let store = try newStore()
        #expect(try tally(["append", "--stream", "s", "--type", "T", "--data", "{}"], store: store).status == 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tallyPath())
        process.arguments = ["follow", "--store", store, "--limit", "3"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        for _ in 0..<2 { #expect(try tally(["append", "--stream", "s", "--type", "T", "--data", "{}"], store: store).status == 0) }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(try text.split(separator: "\n").map { try json(String($0))["position"] as? Int } == [1, 2, 3])
    }

    /// Following a type the log has not seen says so once, then prints the first such event when it comes.
    @Test func followingATypeNotYetInTheLogSaysSoAndWaits() throws {
        let store = try newStore()
        #expect(try tally(["append", "--stream", "s", "--type", "T", "--data", "{}"], store: store).status == 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tallyPath())
        process.arguments = ["follow", "--store", store, "--type", "Late", "--limit", "1"]
        let (output, error) = (Pipe(), Pipe())
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let note = error.fileHandleForReading.availableData  // The note is written before the wait.
        #expect(String(decoding: note, as: UTF8.self) == "note: the log has no event of type \"Late\" yet (tally info lists the types it has); waiting for one\n")
        #expect(try tally(["append", "--stream", "s", "--type", "Late", "--data", "{}"], store: store).status == 0)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let event = try json(text.trimmingCharacters(in: .newlines))
        #expect(process.terminationStatus == 0 && event["position"] as? Int == 2)
    }

    /// What an admin does: a backup with the audit trail, checked, with or without the keys, never over
    /// an existing directory and never leaving a partial one.
    @Test func aBackupIsACheckedStoreOfItsOwn() throws {
        let store = testPath("backup-source")
        #expect(try tally(["demo", "--events", "2000"], store: store).status == 0)
        let key = testPath("signing.key")
        #expect(try tally(["audit", "keygen", "--name", "backup.test", "--out", key], store: nil).status == 0)
        #expect(try tally(["audit", "checkpoint", "--key", key], store: store).status == 0)
        let parent = testPath("backups")
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)

        let plain = parent + "/plain"
        let backup = try tally(["backup", "--out", plain], store: store)
        #expect(backup.status == 0, "\(backup.error)")
        let head = try json(try tally(["info", "--json"], store: store).lines[0])
        #expect(backup.output.contains("ok: backup of \(head["lastPosition"] as? Int ?? -1) events in \(plain)"), "\(backup.output)")
        #expect(backup.output.contains("ok: signed checkpoints copied: 1; the copy matches the latest"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: plain).sorted() == ["audit", "log"])
        let verified = try tally(["verify"], store: plain)
        #expect(verified.status == 0 && verified.output.contains("matches the latest signed checkpoint"), "\(verified.error)")
        // Its keys are kept apart: verify says it could not check them, and does not fail for it.
        #expect(verified.error.contains("/keys is not here: the keys of the") && verified.error.contains("were not checked"), "\(verified.error)")
        #expect(!verified.output.contains("ok: the keys"), "\(verified.output)")
        // Without the keys, the copy's personal values read as erased; everything else is the same.
        let original = try tally(["read"], store: store).output
        let withoutKeys = try tally(["read"], store: plain).output
        #expect(withoutKeys != original && withoutKeys.contains(#""operatorName":"[erased]""#) && !original.contains("[erased]"))
        #expect(withoutKeys.split(separator: "\n").map { $0.split(separator: ",\"hash\":").last } == original.split(separator: "\n").map { $0.split(separator: ",\"hash\":").last })

        let withKeys = parent + "/with-keys"
        #expect(try tally(["backup", "--out", withKeys + "/", "--with-keys"], store: store).status == 0)
        let keys = try FileManager.default.contentsOfDirectory(atPath: store + "/keys").sorted()
        let copiedKeys = try FileManager.default.contentsOfDirectory(atPath: withKeys + "/keys").sorted()
        #expect(!keys.isEmpty && copiedKeys == keys)
        #expect(try tally(["read"], store: withKeys).output == original)
        let permissions = try FileManager.default.attributesOfItem(atPath: withKeys + "/keys")[.posixPermissions] as? Int
        #expect(permissions == 0o700, "the keys' directory stays owner-only")

        let again = try tally(["backup", "--out", plain], store: store)
        #expect(again.status != 0 && again.error.contains("already exists"), "\(again.error)")
        let empty = try tally(["backup", "--out", ""], store: store)
        #expect(empty.status != 0 && empty.error.contains("--out needs a directory"), "\(empty.error)")
        let missing = try tally(["backup", "--out", parent + "/nowhere"], store: testPath("no-store"))
        #expect(missing.status != 0 && missing.error.contains("is not a Tally store"), "\(missing.error)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent).sorted() == ["plain", "with-keys"], "no partial copy is left")
    }

    @Test func everyCommandExplainsItselfWithAnExample() throws {
        for command in ["init", "append", "read", "follow", "info", "verify", "exec", "demo", "backup", "upgrade"] {
            let run = try tally([command, "--help"], store: nil)
            #expect(run.status == 0)
            #expect(run.output.contains("Example"), "\(command) --help has no example")
        }
    }
}

/// Appends, through the library and around the domain's commands (as `tally append` did before it
/// refused domain types), a `VoucherIssued` without a voucher id: `sales` cannot apply it.
func appendVoucherIssuedByHand(_ store: String) throws {
    let log = try EventLog.open(at: store)
    defer { log.close() }
    try log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "voucher-1", type: "VoucherIssued",
                                                        payload: Data(#"{"amount":{"currency":"USD","minor":500}}"#.utf8))]))
}

/// An event its projector cannot apply, written around the domain's commands (as `tally append` did
/// before it refused domain types), stops a read model until an admin sets it aside.
@Suite struct SetAsideCLITests {
    @Test func anAdminSetsAsideTheEventAReadModelStoppedAtAndBackupsKeepTheDecision() throws {
        let store = try newStore()
        try appendVoucherIssuedByHand(store)
        let commands = """
            {"id":"00000000-0000-4000-8000-000000000001","actor":"admin:ana","command":{"registerBooth":{"boothID":"3","name":"Lemonade","location":"North"}}}
            {"id":"00000000-0000-4000-8000-000000000002","actor":"admin:ana","command":{"issueVoucher":{"voucherID":"7","amount":{"minor":2500,"currency":"USD"},"buyerEmail":"k@example.org"}}}
            """
        #expect(try tally(["exec"], store: store, input: commands).status == 0)
        let failed = try tally(["projections", "rebuild", "sales"], store: store)
        #expect(failed.status != 0 && failed.error.contains("failed at position 1 (VoucherIssued)"), "\(failed.error)")
        // A report names why there is nothing to read, and the way on.
        let unbuilt = try tally(["report", "sales", "--no-catch-up"], store: store)
        #expect(unbuilt.status != 0 && unbuilt.error.contains("has not been built: its build stopped at position 1 (VoucherIssued)")
                && unbuilt.error.contains("tally projections set-aside sales 1 --reason"), "\(unbuilt.error)")

        let decisions = store + "/projections/set-aside.json"
        let wrong = try tally(["projections", "set-aside", "sales", "2", "--reason", "x"], store: store)
        #expect(wrong.status != 0 && wrong.error.contains("stopped at position 1, not 2"), "\(wrong.error)")
        let notStopped = try tally(["projections", "set-aside", "members", "1", "--reason", "x"], store: store)
        #expect(notStopped.status != 0 && notStopped.error.contains("has not stopped at an event"), "\(notStopped.error)")
        let noReason = try tally(["projections", "set-aside", "sales", "1"], store: store)
        #expect(noReason.status != 0 && noReason.error.contains("--reason is required"), "\(noReason.error)")
        #expect(!FileManager.default.fileExists(atPath: decisions), "a refused decision writes nothing")

        let set = try tally(["projections", "set-aside", "sales", "1", "--reason", "written by hand", "--actor", "admin:ana"], store: store)
        #expect(set.status == 0, "\(set.error)")
        #expect(set.output.contains("sales: position 1 (VoucherIssued) set aside by admin:ana") && set.output.contains("sales: position 3,"), "\(set.output)")
        func sales(_ store: String) throws -> [String: Any] {
            let statuses = try #require(try JSONSerialization.jsonObject(with: Data(try tally(["projections", "status", "--json"], store: store).output.utf8)) as? [[String: Any]])
            return try #require(statuses.first { $0["name"] as? String == "sales" })
        }
        #expect(try sales(store)["state"] as? String == "current")
        #expect(try sales(store)["setAside"] as? [Int] == [1])
        // The voucher issued through its command is in the read model; the one set aside is not.
        let vouchers = try tally(["report", "sales", "--view", "vouchers", "--format", "json"], store: store)
        #expect(vouchers.status == 0 && vouchers.output.contains(#""issued":1,"issued_value":"25.00""#), "\(vouchers.output)\(vouchers.error)")
        #expect(vouchers.error.contains("note: 1 event was set aside from sales (position 1): not in these figures"), "\(vouchers.error)")

        let copy = testPath("set-aside-backup")
        let backup = try tally(["backup", "--out", copy], store: store)
        #expect(backup.status == 0 && backup.output.contains("projections/set-aside.json"), "\(backup.output)")
        #expect(FileManager.default.contents(atPath: copy + "/projections/set-aside.json") == FileManager.default.contents(atPath: decisions))
        #expect(try tally(["projections", "rebuild", "sales"], store: copy).status == 0)

        // An as-of build that passed over the event is a cache of what the decision made: taking the
        // decision back deletes it. Taking back rebuilds, which stops at the event again, while the
        // file without it keeps serving.
        #expect(try tally(["report", "sales", "--view", "vouchers", "--as-of", "3"], store: store).status == 0)
        let asOf = store + "/projections/as-of"
        #expect(try FileManager.default.contentsOfDirectory(atPath: asOf).contains { $0.hasPrefix("sales.v") && $0.hasSuffix(".at-3.sqlite") })
        let taken = try tally(["projections", "set-aside", "sales", "1", "--take-back"], store: store)
        #expect(taken.status != 0 && taken.output.contains("sales: position 1 taken back") && taken.error.contains("failed at position 1"),
                "\(taken.output)\(taken.error)")
        #expect(try !FileManager.default.contentsOfDirectory(atPath: asOf).contains { $0.hasPrefix("sales.v") && $0.hasSuffix(".sqlite") })
        #expect(try tally(["projections", "set-aside", "sales", "1", "--take-back"], store: store).error.contains("no event at position 1 is set aside"))
        #expect(try sales(store)["setAside"] as? [Int] == [])
        #expect(try sales(store)["state"] as? String == "failed" && sales(store)["checkpoint"] as? Int == 3)
        let served = try tally(["report", "sales", "--view", "vouchers", "--format", "json", "--no-catch-up"], store: store)
        #expect(served.output.contains(#""issued":1,"issued_value":"25.00""#), "\(served.output)\(served.error)")
        // Set aside again: the rebuild that stopped there goes on and is switched in; the default actor is the login's.
        let resumed = try tally(["projections", "set-aside", "sales", "1", "--reason", "written by hand"], store: store)
        #expect(resumed.status == 0 && resumed.output.contains("set aside by admin:") && resumed.output.contains("switched in"), "\(resumed.output)\(resumed.error)")
        #expect(try sales(store)["state"] as? String == "current" && sales(store)["setAside"] as? [Int] == [1])
    }

    /// An erasure rebuilds the read models that copied personal values; one that stops at an event
    /// cannot be rebuilt, and its serving file, still holding the erased values, is removed instead.
    @Test func anErasureRemovesAReadModelItCannotRebuild() throws {
        let store = try newStore()
        let issue = #"{"id":"00000000-0000-4000-8000-000000000001","actor":"admin:ana","command":{"issueVoucher":{"voucherID":"7","amount":{"minor":2500,"currency":"USD"},"buyerEmail":"k@example.org"}}}"#
        #expect(try tally(["exec"], store: store, input: issue).status == 0)
        #expect(try tally(["projections", "rebuild"], store: store).status == 0)
        let sales = store + "/projections/sales.sqlite"
        #expect(FileManager.default.fileExists(atPath: sales))
        try appendVoucherIssuedByHand(store)
        let forget = try tally(["forget", "--email", "k@example.org", "--reason", "request 7"], store: store)
        #expect(forget.status != 0 && forget.output.contains("erasure recorded"), "\(forget.output)\(forget.error)")
        #expect(forget.error.contains("sales: projection sales failed at position")
                && forget.error.contains("its serving file, which still held the erased values, was removed"), "\(forget.error)")
        #expect(!FileManager.default.fileExists(atPath: sales))
        let files = try FileManager.default.subpathsOfDirectory(atPath: store + "/projections")
        for file in files {
            guard let bytes = FileManager.default.contents(atPath: store + "/projections/" + file) else { continue }
            #expect(bytes.range(of: Data("k@example.org".utf8)) == nil, "\(file) still holds the erased email")
        }
        #expect(try tally(["projections", "status"], store: store).output.contains("sales"))
    }
}
