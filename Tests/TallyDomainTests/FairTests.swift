import Foundation
import Testing
import TallyLog
import TallyTestSupport
@testable import TallyDomain

let admin = Actor(.admin, "ana")
let lee = Actor(.operator, "lee")
func command(_ actor: Actor, _ command: Command, id: UUID = UUID()) -> CommandEnvelope { CommandEnvelope(id: id, actor: actor, command: command) }

/// The fair's rules, decided in memory: no store.
@Suite struct FairRuleTests {
    /// A fair with booth 3 (operator lee) and voucher 7 of $25.00.
    func fair() throws -> MemoryStreams {
        var streams = MemoryStreams()
        for setup in [command(admin, .registerBooth(boothID: "3", name: "Lemonade", location: "North gate")),
                      command(admin, .assignOperator(boothID: "3", operatorID: "lee", operatorName: "Lee Kim")),
                      command(admin, .issueVoucher(voucherID: "7", amount: cents(2500), buyerEmail: "kim@example.org"))] {
            streams.append(try Decide.decide(setup, streams: &streams))
        }
        return streams
    }

    func rejection(_ envelope: CommandEnvelope, in streams: inout MemoryStreams) -> RejectionCode? {
        do { _ = try Decide.decide(envelope, streams: &streams); return nil } catch let rejection as Rejection { return rejection.code } catch { return nil }
    }

    @Test func aVoucherIsRedeemedOnceAtABoothItsOperatorServes() throws {
        var streams = try fair()
        let redeem = command(lee, .redeemVoucher(voucherID: "7", boothID: "3", saleID: "s1", saleAmount: cents(1800)))
        let decision = try Decide.decide(redeem, streams: &streams)
        #expect(decision.events.map(\.type) == ["VoucherRedeemed", "SaleRecorded"])
        #expect(decision.events.map(\.stream) == ["voucher-7", "sale-s1"])
        let sale = try DomainCoding.decode(SaleRecorded.self, from: decision.events[1].payload)
        #expect(sale.amount == cents(1800) && sale.operatorID == "lee" && sale.voucherID == "7")
        #expect(decision.expectations == ["booth-3": .exact(2), "voucher-7": .exact(1), "sale-s1": .exact(0)])
        streams.append(decision)
        // A sale id is used once.
        streams.append(try Decide.decide(command(admin, .issueVoucher(voucherID: "8", amount: cents(500), buyerEmail: "x@example.org")), streams: &streams))
        #expect(rejection(command(lee, .redeemVoucher(voucherID: "8", boothID: "3", saleID: "s1", saleAmount: cents(100))), in: &streams) == .saleAlreadyRecorded)
        // Rule 1: at most once.
        #expect(rejection(command(lee, .redeemVoucher(voucherID: "7", boothID: "3", saleID: "s2", saleAmount: cents(100))), in: &streams) == .voucherAlreadyRedeemed)
    }

    @Test(arguments: [
        (Actor(.operator, "max"), "3", "7", Int64(100), Currency.usd, RejectionCode.operatorNotAssigned),
        (Actor(.operator, "lee"), "9", "7", 100, .usd, .boothNotFound),
        (Actor(.operator, "lee"), "3", "8", 100, .usd, .voucherNotFound),
        (Actor(.operator, "lee"), "3", "7", 2501, .usd, .saleExceedsVoucher),
        (Actor(.operator, "lee"), "3", "7", 100, .kes, .currencyMismatch),
        (Actor(.operator, "lee"), "3", "7", 0, .usd, .nonPositiveAmount),
        (Actor(.member, "7"), "3", "7", 100, .usd, .notAuthorized),
    ])
    func redemptionsBreakingARuleAreRefused(actor: Actor, booth: String, voucher: String, amount: Int64, currency: Currency, code: RejectionCode) throws {
        var streams = try fair()
        let redeem = command(actor, .redeemVoucher(voucherID: voucher, boothID: booth, saleID: "s", saleAmount: Money(minor: amount, currency: currency)))
        #expect(rejection(redeem, in: &streams) == code)
    }

    @Test func aSaleMayUseTheWholeVoucher() throws {
        var streams = try fair()
        #expect(throws: Never.self) { try Decide.decide(command(lee, .redeemVoucher(voucherID: "7", boothID: "3", saleID: "s", saleAmount: cents(2500))), streams: &streams) }
    }

    @Test func onlyAdminsSetUpTheFair() throws {
        var streams = MemoryStreams()
        #expect(rejection(command(lee, .registerBooth(boothID: "1", name: "x", location: "y")), in: &streams) == .notAuthorized)
        #expect(rejection(command(lee, .issueVoucher(voucherID: "1", amount: cents(100), buyerEmail: "a@b")), in: &streams) == .notAuthorized)
        #expect(rejection(command(admin, .issueVoucher(voucherID: "1", amount: cents(-5), buyerEmail: "a@b")), in: &streams) == .nonPositiveAmount)
        #expect(rejection(command(admin, .issueVoucher(voucherID: "", amount: cents(5), buyerEmail: "a@b")), in: &streams) == .invalidField)
        // A voucher "7 " would be another voucher than the "7" printed on it; a booth named by spaces has no name.
        let spaced = #expect(throws: Rejection.self) {
            try Decide.decide(command(admin, .issueVoucher(voucherID: "7 ", amount: cents(5), buyerEmail: "a@b")), streams: &streams)
        }
        #expect(spaced == Rejection(.invalidField, #"voucherID "7 " must not begin or end with a space"#))
        #expect(rejection(command(admin, .registerBooth(boothID: "1", name: "  ", location: "y")), in: &streams) == .invalidField)
        #expect(rejection(command(admin, .registerBooth(boothID: "1", name: "Lemonade", location: "")), in: &streams) == .invalidField)
        #expect(rejection(command(admin, .registerBooth(boothID: "\u{A0}1", name: "Lemonade", location: "y")), in: &streams) == .invalidField)
        #expect(rejection(command(admin, .registerBooth(boothID: "1", name: "Lemonade stand", location: "North gate")), in: &streams) == nil)
        // An email address is a name, one "@" and a domain: not a name or a phone number typed in its field.
        for email in ["kim", "kim@", "@example.org", "kim@@example.org", "kim @example.org", "kim@example.org.", "+1 555 0100"] {
            #expect(rejection(command(admin, .issueVoucher(voucherID: "1", amount: cents(5), buyerEmail: email)), in: &streams) == .invalidField, "\(email)")
        }
        #expect(rejection(command(admin, .assignOperator(boothID: "1", operatorID: "lee", operatorName: "Lee")), in: &streams) == .boothNotFound)
        var fair = try fair()
        #expect(rejection(command(admin, .registerBooth(boothID: "3", name: "again", location: "y")), in: &fair) == .boothAlreadyRegistered)
        // Lee already serves booth 3: a second OperatorAssigned would record nothing new.
        let again = #expect(throws: Rejection.self) {
            try Decide.decide(command(admin, .assignOperator(boothID: "3", operatorID: "lee", operatorName: "Lee Kim")), streams: &fair)
        }
        #expect(again == Rejection(.invalidField, "operator lee already serves booth 3: nothing to change"))
        #expect(rejection(command(admin, .assignOperator(boothID: "3", operatorID: "max", operatorName: " ")), in: &fair) == .invalidField)
        #expect(rejection(command(admin, .assignOperator(boothID: "3", operatorID: "max", operatorName: "Max Roe")), in: &fair) == nil)
        #expect(rejection(command(admin, .issueVoucher(voucherID: "7", amount: cents(100), buyerEmail: "a@b")), in: &fair) == .voucherAlreadyIssued)
    }

    /// The seed's booths table holds each operator's username once: an operator serves one booth at a
    /// time, and moves by being unassigned first.
    @Test func anOperatorServesOneBoothAtATime() throws {
        var streams = try fair()
        streams.append(try Decide.decide(command(admin, .registerBooth(boothID: "4", name: "Tea", location: "South gate")), streams: &streams))
        let elsewhere = #expect(throws: Rejection.self) {
            try Decide.decide(command(admin, .assignOperator(boothID: "4", operatorID: "lee", operatorName: "Lee Kim")), streams: &streams)
        }
        #expect(elsewhere == Rejection(.operatorServesAnotherBooth, "operator lee serves booth 3: an operator serves one booth at a time (unassign them there first)"))
        #expect(rejection(command(lee, .unassignOperator(boothID: "3", operatorID: "lee")), in: &streams) == .notAuthorized)
        #expect(rejection(command(admin, .unassignOperator(boothID: "4", operatorID: "lee")), in: &streams) == .operatorNotAssigned)
        #expect(rejection(command(admin, .unassignOperator(boothID: "9", operatorID: "lee")), in: &streams) == .boothNotFound)
        let unassign = try Decide.decide(command(admin, .unassignOperator(boothID: "3", operatorID: "lee")), streams: &streams)
        #expect(unassign.events.map(\.type) == ["OperatorUnassigned", "ValueReleased"])
        streams.append(unassign)
        // No longer at booth 3: a redemption there is refused; at booth 4, once assigned, accepted.
        #expect(rejection(command(lee, .redeemVoucher(voucherID: "7", boothID: "3", saleID: "s1", saleAmount: cents(100))), in: &streams) == .operatorNotAssigned)
        streams.append(try Decide.decide(command(admin, .assignOperator(boothID: "4", operatorID: "lee", operatorName: "Lee Kim")), streams: &streams))
        #expect(rejection(command(lee, .redeemVoucher(voucherID: "7", boothID: "4", saleID: "s1", saleAmount: cents(100))), in: &streams) == nil)
        // Back at booth 3 while serving booth 4: refused again.
        #expect(rejection(command(admin, .assignOperator(boothID: "3", operatorID: "lee", operatorName: "Lee Kim")), in: &streams) == .operatorServesAnotherBooth)
    }

    /// An operator assigned before operators were claimed (a history written by an earlier Tally, or by
    /// hand) holds no claim: unassigning them releases nothing, and they may then be assigned elsewhere.
    @Test func anOperatorAssignedBeforeTheRuleCanStillMove() throws {
        var streams = MemoryStreams()
        streams.append(Decision(events: [Emitted(stream: "booth-1", BoothRegistered(boothID: "1", name: "A", location: "North")),
                                         Emitted(stream: "booth-1", OperatorAssigned(boothID: "1", operatorID: "kim", operatorName: "Kim")),
                                         Emitted(stream: "booth-2", BoothRegistered(boothID: "2", name: "B", location: "South"))],
                                expectations: [:]))
        let unassign = try Decide.decide(command(admin, .unassignOperator(boothID: "1", operatorID: "kim")), streams: &streams)
        #expect(unassign.events.map(\.type) == ["OperatorUnassigned"])
        streams.append(unassign)
        #expect(rejection(command(admin, .assignOperator(boothID: "2", operatorID: "kim", operatorName: "Kim")), in: &streams) == nil)
    }

    @Test func personalFieldsAreMarked() {
        #expect(VoucherIssued.personalFields == ["buyerEmail"])
        #expect(OperatorAssigned.personalFields == ["operatorName"])
        #expect(SaleRecorded.personalFields.isEmpty)
    }

    @Test func commandEventIDsAreDeterministicAndDistinct() {
        let id = UUID()
        #expect(CommandEventIDs.id(command: id, index: 0) == CommandEventIDs.id(command: id, index: 0))
        #expect(CommandEventIDs.id(command: id, index: 0) != CommandEventIDs.id(command: id, index: 1))
        #expect(CommandEventIDs.id(command: id, index: 0) != CommandEventIDs.id(command: UUID(), index: 0))
    }
}

/// The same rules through the log: decided inside the writer's transaction.
@Suite struct FairServiceTests {
    func service() throws -> CommerceService {
        var options = LogOptions()
        options.indexTailEventsMax = 16
        return CommerceService(log: try EventLog.create(at: testPath("fair"), options: options))
    }

    /// How many vouchers the log says were redeemed.
    func redemptions(_ commerce: CommerceService) throws -> Int {
        var reader = commerce.log.read(ReadQuery(.type(VoucherRedeemed.eventType)))
        var redeemed = 0
        try reader.forEach { _ in redeemed += 1 }
        return redeemed
    }

    @Test func manyBoothsRacingToRedeemTheSameVouchersRedeemEachOnce() async throws {
        let commerce = try service()
        for booth in 0..<12 {
            _ = try await commerce.execute(command(admin, .registerBooth(boothID: "\(booth)", name: "Booth \(booth)", location: "Hall")))
            _ = try await commerce.execute(command(admin, .assignOperator(boothID: "\(booth)", operatorID: "op\(booth)", operatorName: "Operator \(booth)")))
        }
        for voucher in 0..<20 {
            _ = try await commerce.execute(command(admin, .issueVoucher(voucherID: "\(voucher)", amount: cents(1000), buyerEmail: "b\(voucher)@example.org")))
        }
        // Every booth tries to redeem every voucher at once.
        let outcomes = await withTaskGroup(of: (String, CommandOutcome?).self) { group in
            for booth in 0..<12 {
                for voucher in 0..<20 {
                    group.addTask {
                        let redeem = command(Actor(.operator, "op\(booth)"), .redeemVoucher(voucherID: "\(voucher)", boothID: "\(booth)", saleID: "\(booth)-\(voucher)", saleAmount: cents(500)))
                        return ("\(voucher)", try? await commerce.execute(redeem))
                    }
                }
            }
            return await group.reduce(into: [(String, CommandOutcome?)]()) { $0.append($1) }
        }
        for voucher in 0..<20 {
            let mine = outcomes.filter { $0.0 == "\(voucher)" }.map(\.1)
            let accepted = mine.filter { if case .accepted = $0 { true } else { false } }
            let refused = mine.filter { if case .rejected(let rejection) = $0 { rejection.code == .voucherAlreadyRedeemed } else { false } }
            #expect(accepted.count == 1, "voucher \(voucher)")
            #expect(refused.count == 11, "voucher \(voucher)")
        }
        #expect(try redemptions(commerce) == 20)
        #expect(try commerce.log.verify().isSound)
    }

    /// A command is decided ahead on the caller's thread against a snapshot; the writer takes that
    /// decision (events or a refusal) only if nothing it read has changed. One that went stale is decided
    /// again in the writer.
    @Test func aDecisionMadeAheadIsTakenOnlyIfWhatItReadIsUnchanged() throws {
        let commerce = try service()
        for setup in [command(admin, .registerBooth(boothID: "3", name: "Lemonade", location: "North")),
                      command(admin, .assignOperator(boothID: "3", operatorID: "lee", operatorName: "Lee")),
                      command(admin, .issueVoucher(voucherID: "7", amount: cents(2500), buyerEmail: "kim@example.org")),
                      command(admin, .issueVoucher(voucherID: "8", amount: cents(2500), buyerEmail: "kim@example.org"))] {
            guard case .accepted = try commerce.execute(setup) else { Issue.record("setup refused"); return }
        }
        func confirm(_ ahead: CommerceService.DecidedAhead?, _ envelope: CommandEnvelope) throws -> CommandOutcome {
            try CommerceService.outcome(Result {
                try commerce.log.appendDecided { [states = commerce.states] view in
                    try CommerceService.confirm(ahead, for: envelope, digest: try CommandDigest.of(envelope, secret: nil), view: &view, states: states, vault: nil)
                }
            })
        }
        // Decided ahead, unchanged since: taken as decided.
        let fresh = command(lee, .redeemVoucher(voucherID: "8", boothID: "3", saleID: "s8", saleAmount: cents(100)))
        let freshAhead = try #require(commerce.decideAhead(fresh, digest: try CommandDigest.of(fresh, secret: nil)))
        #expect(freshAhead.reads == ["booth-3": 2, "voucher-8": 1, "sale-s8": 0])
        let freshBatch = try freshAhead.outcome.get()
        guard case .accepted(let positions, false) = try confirm(freshAhead, fresh) else { Issue.record("not accepted"); return }
        let appended = try commerce.log.withSnapshot { snapshot in try positions.map { try #require(try snapshot.record(at: $0)).payloadBytes } }
        #expect(appended.map { Data($0) } == freshBatch.events.map(\.payload))

        // Decided ahead, then another booth's redemption of the same voucher commits first.
        let late = command(lee, .redeemVoucher(voucherID: "7", boothID: "3", saleID: "s1", saleAmount: cents(900)))
        let lateAhead = try #require(commerce.decideAhead(late, digest: try CommandDigest.of(late, secret: nil)))
        guard case .accepted = try commerce.execute(command(lee, .redeemVoucher(voucherID: "7", boothID: "3", saleID: "s2", saleAmount: cents(500)))) else {
            Issue.record("the first redemption was refused"); return
        }
        guard case .rejected(let rejection) = try confirm(lateAhead, late) else { Issue.record("a stale decision was taken"); return }
        #expect(rejection.code == .voucherAlreadyRedeemed)
        // A refusal decided ahead stands while what it read is unchanged...
        let again = command(lee, .redeemVoucher(voucherID: "7", boothID: "3", saleID: "s3", saleAmount: cents(100)))
        let refusedAhead = try #require(commerce.decideAhead(again, digest: try CommandDigest.of(again, secret: nil)))
        #expect(refusedAhead.outcome.map { _ in "accepted" } == .failure(rejection))
        guard case .rejected(let refusal) = try confirm(refusedAhead, again) else { Issue.record("the refusal was not kept"); return }
        #expect(refusal.code == .voucherAlreadyRedeemed)
        // ...and is decided again once it is not: an operator not yet assigned, then assigned.
        let newcomer = command(Actor(.operator, "max"), .redeemVoucher(voucherID: "9", boothID: "3", saleID: "s9", saleAmount: cents(100)))
        _ = try commerce.execute(command(admin, .issueVoucher(voucherID: "9", amount: cents(500), buyerEmail: "x@example.org")))
        let notYet = try #require(commerce.decideAhead(newcomer, digest: try CommandDigest.of(newcomer, secret: nil)))
        guard case .failure(let early) = notYet.outcome, early.code == .operatorNotAssigned else { Issue.record("expected a refusal ahead"); return }
        _ = try commerce.execute(command(admin, .assignOperator(boothID: "3", operatorID: "max", operatorName: "Max")))
        guard case .accepted = try confirm(notYet, newcomer) else { Issue.record("a stale refusal was kept"); return }
        // A command already executed is not decided ahead: the writer returns its first result.
        #expect(commerce.decideAhead(fresh, digest: try CommandDigest.of(fresh, secret: nil)) == nil)
        #expect(try redemptions(commerce) == 3)
        #expect(try commerce.log.verify().isSound)
    }

    /// A checkout prices its lines as of the moment it is decided: that moment is the writer's, so a
    /// decision that reads the clock is never taken ahead.
    @Test func aDecisionThatReadsTheClockIsMadeInTheWriter() throws {
        let commerce = try service()
        let lime = sku("000000004048")
        for (actor, item): (Actor, Command) in [
            (admin, .openStore(storeID: "s1", name: "Corner", currency: .usd)),
            (admin, .createItem(storeID: "s1", sku: lime, details: ItemDetails(description: "Lime", size: "each", departmentCode: "PROD"))),
            (admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: lime, price: cents(100), quantity: 3))),
            (member, .registerMember(memberID: "m1", firstName: "Ada", lastName: nil, email: "ada@example.org", phone: nil)),
            (member, .openCart(cartID: "k1", storeID: "s1", memberID: "m1")),
        ] {
            guard case .accepted = try commerce.execute(command(actor, item)) else { Issue.record("setup refused: \(item.name)"); return }
        }
        let scan = command(member, .scanItem(cartID: "k1", scannedInput: lime.value, quantity: 3))
        #expect(commerce.decideAhead(scan, digest: try CommandDigest.of(scan, secret: nil)) != nil)
        guard case .accepted = try commerce.execute(scan) else { Issue.record("scan refused"); return }
        let checkout = command(member, .checkout(cartID: "k1", paymentTransactionID: "bt-1"))
        #expect(commerce.decideAhead(checkout, digest: try CommandDigest.of(checkout, secret: nil)) == nil)
        guard case .accepted = try commerce.execute(checkout) else { Issue.record("checkout refused"); return }
    }

    @Test func retryingACommandReturnsItsFirstResultAndAppendsNothing() throws {
        let commerce = try service()
        _ = try commerce.execute(command(admin, .registerBooth(boothID: "3", name: "Lemonade", location: "North")))
        _ = try commerce.execute(command(admin, .assignOperator(boothID: "3", operatorID: "lee", operatorName: "Lee")))
        _ = try commerce.execute(command(admin, .issueVoucher(voucherID: "7", amount: cents(2500), buyerEmail: "kim@example.org")))
        let redeem = command(lee, .redeemVoucher(voucherID: "7", boothID: "3", saleID: "s1", saleAmount: cents(900)))
        let first = try commerce.execute(redeem)
        guard case .accepted(let positions, false) = first else { Issue.record("expected acceptance, got \(first)"); return }
        // After the booth, the operator's claim on it and their assignment, and the voucher.
        #expect(positions == [5, 6])
        // The same command again (a booth's network retried it): the first result, nothing new.
        #expect(try commerce.execute(redeem) == .accepted(positions: [5, 6], wasRetry: true))
        #expect(try commerce.log.head().position == 6)
        // Another command for the same voucher is a second redemption: refused.
        let other = try commerce.execute(command(lee, .redeemVoucher(voucherID: "7", boothID: "3", saleID: "s2", saleAmount: cents(900))))
        guard case .rejected(let rejection) = other else { Issue.record("expected a rejection"); return }
        #expect(rejection.code == .voucherAlreadyRedeemed)
        #expect(try commerce.log.head().position == 6)
        // The events say who did it and which command produced them.
        let events = try { var reader = commerce.log.read(ReadQuery(from: 5)); var all: [RecordedEvent] = []; try reader.forEach { all.append($0) }; return all }()
        #expect(events.allSatisfy { $0.actor == "operator:lee" && $0.correlationID == redeem.id })
        #expect(String(decoding: events[0].metadata, as: UTF8.self).contains("\"command\":\"redeemVoucher\""))
    }

    /// A command id is a retry key: used again for a command that asks anything else (another field,
    /// another actor, another command), it is refused, where it was answered with the first command's
    /// positions as if it had run. Events from before the digest are told apart by name and actor.
    @Test func aCommandIDUsedAgainForAnotherCommandIsRefused() throws {
        let commerce = try service()
        let issue = command(admin, .issueVoucher(voucherID: "7", amount: cents(2500), buyerEmail: "kim@example.org"))
        #expect(try commerce.execute(issue) == .accepted(positions: [1], wasRetry: false))
        #expect(try commerce.execute(issue) == .accepted(positions: [1], wasRetry: true))
        for other in [CommandEnvelope(id: issue.id, actor: admin, command: .issueVoucher(voucherID: "7", amount: cents(2501), buyerEmail: "kim@example.org")),
                      CommandEnvelope(id: issue.id, actor: Actor(.admin, "bo"), command: issue.command),
                      CommandEnvelope(id: issue.id, actor: admin, command: .registerBooth(boothID: "3", name: "Lemonade", location: "North"))] {
            guard case .rejected(let rejection) = try commerce.execute(other) else { Issue.record("\(other) was not refused"); continue }
            #expect(rejection == Rejection(.commandIDReused, "command id \(issue.id.uuidString.lowercased()) was used at position 1 for issueVoucher by admin:ana: "
                                           + "a retry must repeat the command exactly, and another command needs an id of its own"))
        }
        // Submitted without waiting, the same.
        let submitted = try commerce.executeInOrder([issue, CommandEnvelope(id: issue.id, actor: lee, command: issue.command)])
        #expect(submitted.first == .accepted(positions: [1], wasRetry: true))
        guard case .rejected(let late) = submitted.last else { Issue.record("\(submitted)"); return }
        #expect(late.code == .commandIDReused)
        #expect(try commerce.log.head().position == 1)

        // A command's first event written before its digest was kept: only its name and actor to go by.
        let old = UUID()
        let metadata = Data("{\"command\":\"registerBooth\",\"commandId\":\"\(old.uuidString.lowercased())\"}".utf8)
        _ = try commerce.log.append(AppendRequest(events: [ProposedEvent(
            id: CommandEventIDs.id(command: old, index: 0), stream: "booth-3", type: BoothRegistered.eventType, actor: admin.description,
            correlationID: old, metadata: metadata, payload: DomainCoding.encode(BoothRegistered(boothID: "3", name: "Lemonade", location: "North")))]))
        let retried = CommandEnvelope(id: old, actor: admin, command: .registerBooth(boothID: "3", name: "Lemonade", location: "North"))
        #expect(try commerce.execute(retried) == .accepted(positions: [2], wasRetry: true))
        guard case .rejected(let reused) = try commerce.execute(CommandEnvelope(id: old, actor: admin, command: issue.command)) else {
            Issue.record("a command unlike the old one was taken as its retry"); return
        }
        #expect(reused.code == .commandIDReused)
    }
}

@Suite struct CommandNameTests {
    @Test func everyCommandsNameIsItsJSONKey() throws {
        for example in CommandCatalog.examples {
            let data = try JSONEncoder().encode(example.command)
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(object.keys.first == example.command.name)
            #expect(Command.names.contains(example.command.name))
        }
        #expect(Set(CommandCatalog.examples.map(\.command.name)) == Set(Command.names))
    }
}

@Suite struct DomainEventsTests {
    /// Every event the domain's commands write is of a type `DomainEvents` lists, so `tally append`
    /// refuses it; and the list names each type once.
    @Test func everyTypeTheCommandsWriteIsListed() throws {
        let path = testPath("domain-events")
        let commerce = CommerceService(log: try EventLog.create(at: path), vault: FileKeyVault(store: path))
        for example in CommandCatalog.examples {
            guard case .accepted = try commerce.execute(example) else { Issue.record("\(example.command.name) was not accepted"); continue }
        }
        var written: Set<String> = []
        var reader = commerce.log.read()
        try reader.forEach { written.insert($0.type) }
        #expect(written.count >= 30, "\(written.sorted())")
        for type in written.sorted() { #expect(DomainEvents.isDomainType(type), "\(type) is written by a command but not listed") }
        let names = DomainEvents.types.map { $0.eventType }
        #expect(Set(names).count == names.count)
        #expect(!DomainEvents.isDomainType("TicketScanned"))
        #expect(!DomainEvents.isDomainType("voucherissued"))
    }
}
