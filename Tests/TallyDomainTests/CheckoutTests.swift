import Foundation
import Testing
import TallyLog
import TallyTestSupport
@testable import TallyDomain

let member = Actor(.member, "m1")
let staff = Actor(.staff, "sam")
func sku(_ value: String) -> SKU { SKU(value)! }

/// The self-checkout's rules and pricing, in memory, with exact cents.
@Suite struct CheckoutRuleTests {
    static let lime = sku("000000004048"), beer = sku("000012345678"), deposit = sku("000000000010")
    static let oldSoap = sku("000777000001"), newSoap = sku("000777000002"), chips = sku("000555000001")

    /// Store s1 (USD): limes 3 for $1.00, beer $8.99 (restricted, with a $0.10 deposit), soap whose old
    /// SKU is superseded by a new one at $2.49, chips BOGO at $3.00, a deli item sold by variable-price
    /// codes; member m1 with cart k1.
    func store() throws -> MemoryStreams {
        var streams = MemoryStreams()
        let setup: [Command] = [
            .openStore(storeID: "s1", name: "Corner", currency: .usd),
            .createItem(storeID: "s1", sku: Self.deposit, details: ItemDetails(description: "Bottle deposit", departmentCode: "DEP")),
            .createItem(storeID: "s1", sku: Self.lime, details: ItemDetails(description: "Lime", size: "each", departmentCode: "PROD")),
            .createItem(storeID: "s1", sku: Self.beer, details: ItemDetails(description: "Lager 6-pack", size: "6 x 12 oz", posDescription: "LAGER 6PK",
                                                                          departmentCode: "BEER", restricted: true, linkedSKU: Self.deposit, taxable: true)),
            .createItem(storeID: "s1", sku: Self.newSoap, details: ItemDetails(description: "Soap (new look)", departmentCode: "HBA")),
            .createItem(storeID: "s1", sku: Self.oldSoap, details: ItemDetails(description: "Soap", departmentCode: "HBA", supersededBy: Self.newSoap)),
            .createItem(storeID: "s1", sku: Self.chips, details: ItemDetails(description: "Chips", departmentCode: "SNK")),
            .createItem(storeID: "s1", sku: sku("201234000006"), details: ItemDetails(description: "Deli ham", departmentCode: "DELI")),
            .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.lime, price: cents(100), quantity: 3)),
            .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.beer, price: cents(899), taxable: true)),
            .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.deposit, price: cents(10))),
            .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.newSoap, price: cents(249))),
            .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.oldSoap, price: cents(199))),
            .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.chips, price: cents(300), bogo: true)),
        ]
        for item in setup { streams.append(try Decide.decide(command(admin, item), streams: &streams)) }
        for item: Command in [.registerMember(memberID: "m1", firstName: "Ada", lastName: nil, email: "ada@example.org", phone: nil),
                              .openCart(cartID: "k1", storeID: "s1", memberID: "m1")] {
            streams.append(try Decide.decide(command(member, item), streams: &streams))
        }
        return streams
    }

    func scan(_ input: String, _ quantity: Int = 1, _ streams: inout MemoryStreams) throws {
        streams.append(try Decide.decide(command(member, .scanItem(cartID: "k1", scannedInput: input, quantity: quantity)), streams: &streams))
    }

    func code(_ actor: Actor, _ item: Command, _ streams: inout MemoryStreams) -> RejectionCode? {
        do { streams.append(try Decide.decide(command(actor, item), streams: &streams)); return nil } catch let rejection as Rejection { return rejection.code } catch { return nil }
    }

    func checkedOut(_ streams: inout MemoryStreams, transaction: String = "bt-1") throws -> CartCheckedOut {
        let decision = try Decide.decide(command(member, .checkout(cartID: "k1", paymentTransactionID: transaction)), streams: &streams)
        streams.append(decision)
        let event = try #require(decision.events.first { $0.type == CartCheckedOut.eventType })
        return try DomainCoding.decode(CartCheckedOut.self, from: event.payload)
    }

    @Test func aCheckoutRecordsEveryLineAsCharged() throws {
        var streams = try store()
        // Four limes scanned in two goes: one quantity, "3 for $1" plus a fourth at 0.34.
        try scan(Self.lime.value, 1, &streams)
        try scan(Self.lime.value, 3, &streams)
        try scan(Self.oldSoap.value, 1, &streams)
        try scan(Self.chips.value, 3, &streams)
        try scan("201234005995", 1, &streams)  // Deli ham, $5.99 in the code.
        let receipt = try checkedOut(&streams)
        let limes = try #require(receipt.lines.first { $0.sku == Self.lime })
        #expect(limes.quantity == 4)
        #expect(limes.preTaxTotal == cents(134))
        #expect(limes.unitPrice == cents(34))
        #expect(limes.appliedDiscounts == cents(2))
        #expect(limes.description == "Lime" && limes.size == "each" && limes.departmentCode == "PROD")
        // The superseded soap is sold and reported as its replacement, at the replacement's price; the scan is kept.
        let soap = try #require(receipt.lines.first { $0.scannedInput == Self.oldSoap.value })
        #expect(soap.sku == Self.newSoap && soap.preTaxTotal == cents(249))
        let chips = try #require(receipt.lines.first { $0.sku == Self.chips })
        #expect(chips.preTaxTotal == cents(600) && chips.appliedDiscounts == cents(300) && chips.bogo)
        let ham = try #require(receipt.lines.first { $0.scannedInput == "201234005995" })
        #expect(ham.sku.value == "201234000006" && ham.preTaxTotal == cents(599))
        #expect(receipt.total == cents(134 + 249 + 600 + 599))
        #expect(receipt.memberID == "m1" && receipt.paymentTransactionID == "bt-1")
        #expect(code(member, .scanItem(cartID: "k1", scannedInput: Self.lime.value, quantity: 1), &streams) == .cartAlreadyCheckedOut)
    }

    @Test func scanningALinkedItemAddsItsDeposit() throws {
        var streams = try store()
        try scan(Self.beer.value, 2, &streams)
        var cart = CartState()
        _ = try streams.fold("cart-k1") { try cart.apply($0, $1) }
        #expect(cart.lines.map(\.sku) == [Self.beer, Self.deposit])
        #expect(try cart.quantity(of: Self.deposit) == 2)
    }

    @Test func restrictedItemsNeedAStaffApproval() throws {
        var streams = try store()
        try scan(Self.beer.value, 1, &streams)
        #expect(code(member, .checkout(cartID: "k1", paymentTransactionID: "bt-9"), &streams) == .restrictedItemNeedsApproval)
        #expect(code(member, .approveRestrictedItems(cartID: "k1"), &streams) == .notAuthorized)
        #expect(code(staff, .approveRestrictedItems(cartID: "k1"), &streams) == nil)
        let receipt = try checkedOut(&streams, transaction: "bt-9")
        #expect(receipt.lines.map(\.preTaxTotal) == [cents(899), cents(10)])
        #expect(receipt.lines.first?.description == "LAGER 6PK")
    }

    @Test func pricesChangedDuringTheDayApplyFromTheirStart() throws {
        var streams = try store()
        let noon = Timestamp(microsecondsSinceEpoch: streams.now.microsecondsSinceEpoch + 3_600_000_000)
        #expect(code(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.newSoap, start: noon, priceType: 1, price: cents(199))), &streams) == nil)
        try scan(Self.newSoap.value, 1, &streams)
        #expect(try checkedOut(&streams).total == cents(249))  // Before noon.
        streams.append(try Decide.decide(command(member, .openCart(cartID: "k2", storeID: "s1", memberID: "m1")), streams: &streams))
        streams.append(try Decide.decide(command(member, .scanItem(cartID: "k2", scannedInput: Self.newSoap.value, quantity: 1)), streams: &streams))
        streams.now = noon
        let afternoon = try Decide.decide(command(member, .checkout(cartID: "k2", paymentTransactionID: "bt-2")), streams: &streams)
        let receipt = try DomainCoding.decode(CartCheckedOut.self, from: afternoon.events.last!.payload)
        #expect(receipt.total == cents(199))
    }

    /// Checkout prices each unit, so a cart holds at most `perItemMax` of one item; a cart whose lines
    /// were written behind the rules' back, past that or past 64 bits, is refused at checkout, neither
    /// priced unit by unit (a scan of 9 × 10^18 limes made checkout loop that many times) nor added up
    /// with a trap.
    @Test func aCartHoldsAtMostTenThousandOfAnItem() throws {
        var streams = try store()
        #expect(code(member, .scanItem(cartID: "k1", scannedInput: Self.lime.value, quantity: Quantities.perItemMax + 1), &streams) == .quantityTooLarge)
        #expect(code(member, .scanItem(cartID: "k1", scannedInput: Self.lime.value, quantity: 9_000_000_000_000_000_000), &streams) == .quantityTooLarge)
        try scan(Self.lime.value, Quantities.perItemMax - 1, &streams)
        #expect(code(member, .scanItem(cartID: "k1", scannedInput: Self.lime.value, quantity: 2), &streams) == .quantityTooLarge)
        try scan(Self.lime.value, 1, &streams)
        #expect(code(member, .removeItem(cartID: "k1", sku: Self.lime, quantity: Quantities.perItemMax + 1), &streams) == .quantityTooLarge)
        // 10,000 limes at 3 for $1.00: 3,333 groups of three and one lime at 34 cents.
        #expect(try checkedOut(&streams).total == cents(333_334))

        for (index, quantities) in [[Quantities.perItemMax, 1], [Int.max, 1]].enumerated() {
            let cart = "x\(index)"
            streams.append(try Decide.decide(command(member, .openCart(cartID: cart, storeID: "s1", memberID: "m1")), streams: &streams))
            for quantity in quantities {
                streams.append(stream: "cart-\(cart)", type: CartItemAdded.eventType, schemaVersion: 1, payload: DomainCoding.encode(
                    CartItemAdded(cartID: cart, scannedInput: Self.lime.value, sku: Self.lime, quantity: quantity, embeddedPrice: nil, linkedFrom: nil)))
            }
            #expect(code(member, .checkout(cartID: cart, paymentTransactionID: "bt-x\(index)"), &streams) == .quantityTooLarge)
            #expect(code(member, .removeItem(cartID: cart, sku: Self.lime, quantity: 1), &streams) == (index == 0 ? nil : .quantityTooLarge))
        }
        // And an item that does not exist in the store (checkout unwrapped it with a trap).
        streams.append(try Decide.decide(command(member, .openCart(cartID: "x2", storeID: "s1", memberID: "m1")), streams: &streams))
        streams.append(stream: "cart-x2", type: CartItemAdded.eventType, schemaVersion: 1, payload: DomainCoding.encode(
            CartItemAdded(cartID: "x2", scannedInput: "000000000999", sku: sku("000000000999"), quantity: 1, embeddedPrice: nil, linkedFrom: nil)))
        #expect(code(member, .checkout(cartID: "x2", paymentTransactionID: "bt-x2"), &streams) == .itemNotFound)
    }

    @Test func removalsAndBadScansAreChecked() throws {
        var streams = try store()
        try scan(Self.lime.value, 2, &streams)
        #expect(code(member, .removeItem(cartID: "k1", sku: Self.lime, quantity: 3), &streams) == .itemNotInCart)
        #expect(code(member, .removeItem(cartID: "k1", sku: Self.lime, quantity: 2), &streams) == nil)
        #expect(code(member, .checkout(cartID: "k1", paymentTransactionID: "bt-3"), &streams) == .cartEmpty)
        #expect(code(member, .scanItem(cartID: "k1", scannedInput: "999", quantity: 1), &streams) == .itemNotFound)
        #expect(code(member, .scanItem(cartID: "k1", scannedInput: "12-3", quantity: 1), &streams) == .invalidField)
        #expect(code(member, .scanItem(cartID: "k1", scannedInput: Self.lime.value, quantity: 0), &streams) == .invalidField)
        #expect(code(Actor(.member, "m2"), .scanItem(cartID: "k1", scannedInput: Self.lime.value, quantity: 1), &streams) == .notAuthorized)
        #expect(code(member, .scanItem(cartID: "nope", scannedInput: Self.lime.value, quantity: 1), &streams) == .cartNotFound)
    }

    /// A deposit comes with its bottles and goes with them. Removing the deposit alone charged two
    /// six-packs one deposit; removing a six-pack left its deposit charged.
    @Test func aLinkedItemGoesWithTheItemThatBroughtIt() throws {
        var streams = try store()
        try scan(Self.beer.value, 2, &streams)
        try scan(Self.deposit.value, 1, &streams)  // a deposit bought on its own (a crate's)
        let alone = #expect(throws: Rejection.self) {
            try Decide.decide(command(member, .removeItem(cartID: "k1", sku: Self.deposit, quantity: 2)), streams: &streams)
        }
        #expect(alone == Rejection(.linkedItemStaysWithItsItem, "2 of 000000000010 in cart k1 came with 000012345678 and go only with it: remove 000012345678"))
        // The deposit scanned on its own may go; then one six-pack takes its deposit with it.
        #expect(code(member, .removeItem(cartID: "k1", sku: Self.deposit, quantity: 1), &streams) == nil)
        let removal = try Decide.decide(command(member, .removeItem(cartID: "k1", sku: Self.beer, quantity: 1)), streams: &streams)
        #expect(removal.events.count == 2)
        #expect(try DomainCoding.decode(CartItemRemoved.self, from: removal.events[1].payload)
                    == CartItemRemoved(cartID: "k1", sku: Self.deposit, quantity: 1, linkedFrom: Self.beer))
        streams.append(removal)
        #expect(code(member, .removeItem(cartID: "k1", sku: Self.deposit, quantity: 1), &streams) == .linkedItemStaysWithItsItem)
        #expect(code(staff, .approveRestrictedItems(cartID: "k1"), &streams) == nil)
        let receipt = try checkedOut(&streams)
        #expect(receipt.lines.map { [$0.sku.value: $0.quantity] } == [[Self.beer.value: 1], [Self.deposit.value: 1]])
        #expect(receipt.total == cents(909))
    }

    /// Soap superseded by its new look, and the new look by the old: a loop was accepted, and a scan of
    /// either was sold as whichever SKU the walk stopped at.
    @Test func replacementsMakeNoLoop() throws {
        var streams = try store()
        let loop = #expect(throws: Rejection.self) {
            try Decide.decide(command(admin, .changeItem(storeID: "s1", sku: Self.newSoap, details: ItemDetails(description: "Soap", supersededBy: Self.oldSoap))),
                              streams: &streams)
        }
        #expect(loop == Rejection(.invalidField, "replacing 000777000002 by 000777000001 makes a loop: 000777000002 → 000777000001 → 000777000002"))
        // A scan follows the chain to its end, up to eight replacements; past them it is refused, not
        // sold as the item the walk stopped at. (Old soap → new soap → 1 → … → 7 is eight.)
        var previous = Self.newSoap
        for index in 1...8 {
            let next = sku("00077700010\(index)")
            #expect(code(admin, .createItem(storeID: "s1", sku: next, details: ItemDetails(description: "Soap \(index)")), &streams) == nil)
            #expect(code(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: next, price: cents(200 + Int64(index)))), &streams) == nil)
            #expect(code(admin, .changeItem(storeID: "s1", sku: previous, details: ItemDetails(description: "Soap", supersededBy: next)), &streams) == nil)
            previous = next
            let scanned = Result { try Decide.decide(command(member, .scanItem(cartID: "k1", scannedInput: Self.oldSoap.value, quantity: 1)), streams: &streams) }
            if index < 8 {
                let added = try DomainCoding.decode(CartItemAdded.self, from: try scanned.get().events[0].payload)
                #expect(added.sku == next && added.scannedInput == Self.oldSoap.value)
            } else {
                #expect(throws: Rejection(.invalidField, "item 000777000001 is replaced by 000777000002, and so on past 8 replacements: "
                                          + "give the items a shorter chain")) { try scanned.get() }
            }
        }
    }

    /// A checkout records every line in one event, which must fit the log's payload limit: a cart of
    /// more lines could never have been checked out (the log refused the event, and `exec` stopped).
    @Test func aCartHoldsAtMostLinesMaxLines() throws {
        var streams = try store()
        let skus = (0..<Quantities.linesMax).map { sku(String(format: "000888%06d", $0)) }
        for item in skus {
            #expect(code(admin, .createItem(storeID: "s1", sku: item, details: ItemDetails(description: "Item \(item.value)")), &streams) == nil)
            #expect(code(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: item, price: cents(100))), &streams) == nil)
        }
        for item in skus.dropLast() { try scan(item.value, 1, &streams) }
        // The last line: a beer would bring its deposit too, two lines; a lime is one.
        #expect(code(member, .scanItem(cartID: "k1", scannedInput: Self.beer.value, quantity: 1), &streams) == .quantityTooLarge)
        try scan(skus.last!.value, 1, &streams)
        let full = #expect(throws: Rejection.self) {
            try Decide.decide(command(member, .scanItem(cartID: "k1", scannedInput: Self.lime.value, quantity: 1)), streams: &streams)
        }
        #expect(full == Rejection(.quantityTooLarge, "cart k1 has 250 lines, the most a cart holds is 250: check it out and open another"))
        // More of an item already in it adds no line; a variable-price scan is a line of its own.
        try scan(skus[0].value, 2, &streams)
        #expect(code(member, .scanItem(cartID: "k1", scannedInput: "201234005995", quantity: 1), &streams) == .quantityTooLarge)
        #expect(try checkedOut(&streams).lines.count == Quantities.linesMax)
    }

    /// A deactivated member's open cart took more items; its checkout is still recorded (the payment may be taken).
    @Test func aDeactivatedMembersCartTakesNothingMore() throws {
        var streams = try store()
        try scan(Self.lime.value, 1, &streams)
        #expect(code(admin, .deactivateMember(memberID: "m1"), &streams) == nil)
        #expect(code(member, .scanItem(cartID: "k1", scannedInput: Self.lime.value, quantity: 1), &streams) == .memberInactive)
        #expect(try checkedOut(&streams).lines.map(\.quantity) == [1])
    }

    /// A log written before linked removals were told apart may hold a deposit removed on its own from
    /// the lines its bottles added: the fold still takes those units.
    @Test func anOlderRemovalOfALinkedItemStillFolds() throws {
        var streams = try store()
        try scan(Self.beer.value, 2, &streams)
        streams.append(stream: "cart-k1", type: CartItemRemoved.eventType, schemaVersion: 1,
                       payload: DomainCoding.encode(CartItemRemoved(cartID: "k1", sku: Self.deposit, quantity: 1)))
        var cart = CartState()
        _ = try streams.fold("cart-k1") { try cart.apply($0, $1) }
        #expect(try cart.quantity(of: Self.deposit) == 1 && cart.quantity(of: Self.beer) == 2)
    }

    @Test func onlyAdminsChangeItemsAndPrices() throws {
        var streams = try store()
        #expect(code(member, .createItem(storeID: "s1", sku: sku("1"), details: ItemDetails(description: "x")), &streams) == .notAuthorized)
        #expect(code(member, .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.lime, price: cents(1))), &streams) == .notAuthorized)
        #expect(code(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.lime, price: Money(minor: 1, currency: .kes))), &streams) == .currencyMismatch)
        #expect(code(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.lime, price: cents(100), quantity: 0)), &streams) == .invalidPrice)
        // BOGO of a group ("3 for $1, buy one get one") was accepted: 0.34, free, 0.32.
        #expect(code(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.lime, price: cents(100), quantity: 3, bogo: true)), &streams) == .invalidPrice)
        #expect(code(admin, .schedulePrice(storeID: "s1", price: PriceRecord(sku: Self.lime, priceType: -1, price: cents(100))), &streams) == .invalidPrice)
        #expect(code(admin, .createItem(storeID: "s1", sku: Self.lime, details: ItemDetails(description: "again")), &streams) == .itemAlreadyExists)
        #expect(code(admin, .createItem(storeID: "s1", sku: sku("9"), details: ItemDetails(description: "x", supersededBy: sku("8"))), &streams) == .itemNotFound)
        #expect(code(admin, .changeItem(storeID: "s1", sku: Self.lime, details: ItemDetails(description: "Key lime")), &streams) == nil)
        // As long as the seed's Item table holds them, without control characters or blanks.
        let aisle = #expect(throws: Rejection.self) {
            try Decide.decide(command(admin, .changeItem(storeID: "s1", sku: Self.lime, details: ItemDetails(description: "Lime", aisle: "Aisle 12 left"))),
                              streams: &streams)
        }
        #expect(aisle == Rejection(.invalidField, "aisle must be at most 10 characters without control characters"))
        #expect(code(admin, .changeItem(storeID: "s1", sku: Self.lime, details: ItemDetails(description: "Lime", size: "each\n")), &streams) == .invalidField)
        #expect(code(admin, .changeItem(storeID: "s1", sku: Self.lime, details: ItemDetails(description: "Lime", departmentCode: "")), &streams) == .invalidField)
        #expect(code(admin, .openStore(storeID: "s2", name: "  ", currency: .usd), &streams) == .invalidField)
        let long = String(repeating: "Persian lime, ", count: 14) + "sold each"
        #expect(code(admin, .changeItem(storeID: "s1", sku: Self.lime, details: ItemDetails(description: long)), &streams) == nil)
    }

    /// Every revision of a shopping list is recorded whole, numbered; the list is its first member's.
    @Test func aShoppingListIsRevisedWholeByItsMember() throws {
        var streams = try store()
        func revise(_ actor: Actor, _ lines: [ShoppingListLine], list: String = "l1", memberID: String = "m1") throws -> ShoppingListRevised {
            let decision = try Decide.decide(command(actor, .reviseShoppingList(listID: list, memberID: memberID, lines: lines)), streams: &streams)
            streams.append(decision)
            let event = try #require(decision.events.first)
            #expect(decision.events.count == 1 && event.type == ShoppingListRevised.eventType && event.stream == CheckoutStreams.shoppingList(list))
            return try DomainCoding.decode(ShoppingListRevised.self, from: event.payload)
        }
        func refusal(_ actor: Actor, _ lines: [ShoppingListLine], list: String = "l1", memberID: String = "m1") -> Rejection? {
            do { _ = try Decide.decide(command(actor, .reviseShoppingList(listID: list, memberID: memberID, lines: lines)), streams: &streams); return nil }
            catch { return error as? Rejection }
        }
        let first = try revise(member, [ShoppingListLine(sku: Self.lime, quantity: 6), ShoppingListLine(sku: Self.beer, quantity: 1)])
        #expect(first == ShoppingListRevised(memberID: "m1", listID: "l1", revision: 1,
                                             lines: [ShoppingListLine(sku: Self.lime, quantity: 6), ShoppingListLine(sku: Self.beer, quantity: 1)]))
        #expect(try revise(member, [ShoppingListLine(sku: Self.lime, quantity: 4)]).revision == 2)
        // An admin may revise it for the member; emptied, it is still the member's.
        #expect(try revise(admin, []).lines.isEmpty)
        #expect(refusal(member, []) == Rejection(.invalidField, "shopping list l1 already holds exactly these lines: nothing to change"))
        #expect(refusal(member, [], list: "l2", memberID: "m1") == Rejection(.invalidField, "shopping list l2 does not exist yet: give it at least one line"))
        #expect(try revise(member, [ShoppingListLine(sku: Self.chips, quantity: 2)]).revision == 4)

        // Another member may neither revise m1's list for m1 nor take the list id for themselves.
        streams.append(try Decide.decide(command(Actor(.member, "m2"), .registerMember(memberID: "m2", firstName: nil, lastName: nil, email: nil, phone: nil)),
                                         streams: &streams))
        let lines = [ShoppingListLine(sku: Self.lime, quantity: 1)]
        #expect(refusal(Actor(.member, "m2"), lines, list: "l1", memberID: "m1")?.code == .notAuthorized)
        #expect(refusal(Actor(.member, "m2"), lines, list: "l1", memberID: "m2") == Rejection(.notAuthorized, "shopping list l1 belongs to member m1, not m2"))
        #expect(refusal(Actor(.member, "m404"), lines, list: "l9", memberID: "m404")?.code == .memberNotFound)
        // Lines: each SKU once, counts as a cart's, at most as many lines as a cart.
        #expect(refusal(member, [ShoppingListLine(sku: Self.lime, quantity: 1), ShoppingListLine(sku: Self.lime, quantity: 2)])
                == Rejection(.invalidField, "\(Self.lime) is on the list twice: give it once, with the units of both"))
        #expect(refusal(member, [ShoppingListLine(sku: Self.lime, quantity: 0)])?.code == .invalidField)
        #expect(refusal(member, [ShoppingListLine(sku: Self.lime, quantity: Quantities.perItemMax + 1)])?.code == .quantityTooLarge)
        let many = (0...Quantities.linesMax).map { ShoppingListLine(sku: sku(String(format: "%012d", $0 + 1)), quantity: 1) }
        #expect(refusal(member, Array(many)) == Rejection(.quantityTooLarge, "a shopping list holds at most 250 lines, not 251"))
        #expect(try revise(member, Array(many.dropLast())).lines.count == Quantities.linesMax)
        #expect(refusal(member, lines, list: "", memberID: "m1")?.code == .invalidField)
        // A deactivated member's lists take no more revisions.
        streams.append(try Decide.decide(command(member, .deactivateMember(memberID: "m1")), streams: &streams))
        #expect(refusal(member, lines)?.code == .memberInactive)
    }

    @Test func membersSocialAccountsAndEmailsBelongToOneMember() throws {
        var streams = try store()
        let other = Actor(.member, "m2")
        #expect(code(other, .registerMember(memberID: "m2", firstName: nil, lastName: nil, email: "ADA@example.org", phone: nil), &streams) == .emailTaken)
        #expect(code(other, .registerMember(memberID: "m2", firstName: nil, lastName: nil, email: "555 0100", phone: nil), &streams) == .invalidField)
        // A name of spaces, a control character, a "phone number" of words: refused, as the seed's dirty data warns.
        let reasons: [(String?, String?, String?, String)] = [
            ("  ", nil, nil, #"firstName "  " must not begin or end with a space"#),
            ("Bo", "Ro\u{1}e", nil, "lastName must be at most 120 characters without control characters"),
            (String(repeating: "Å", count: 121), nil, nil, "firstName must be at most 120 characters without control characters"),
            ("Bo", nil, "call me maybe", #"phone "call me maybe" is not a phone number (+1 555 0100)"#),
            ("Bo", nil, "555", #"phone "555" is not a phone number (+1 555 0100)"#),
            ("Bo", nil, "1+555 0100", #"phone "1+555 0100" is not a phone number (+1 555 0100)"#),
        ]
        for (first, last, phone, reason) in reasons {
            let refused = #expect(throws: Rejection.self) {
                try Decide.decide(command(other, .registerMember(memberID: "m2", firstName: first, lastName: last, email: nil, phone: phone)), streams: &streams)
            }
            #expect(refused == Rejection(.invalidField, reason))
        }
        #expect(code(member, .changeMemberProfile(memberID: "m1", firstName: nil, lastName: nil, phone: "0800-FLOWERS"), &streams) == .invalidField)
        #expect(code(other, .registerMember(memberID: "m2", firstName: "Bo", lastName: "Åström", email: nil, phone: "+254 (0) 700-000.000"), &streams) == nil)
        #expect(code(member, .linkSocialAccount(memberID: "m1", provider: "facebook", accountID: "fb-1"), &streams) == nil)
        #expect(code(other, .linkSocialAccount(memberID: "m2", provider: "facebook", accountID: "fb-1"), &streams) == .socialAccountTaken)
        // Linked again by its own member: not "linked to another member", but nothing to change.
        let again = #expect(throws: Rejection.self) {
            try Decide.decide(command(member, .linkSocialAccount(memberID: "m1", provider: "facebook", accountID: "fb-1")), streams: &streams)
        }
        #expect(again == Rejection(.invalidField, "that facebook account is already linked to member m1: nothing to change"))
        #expect(code(member, .changeMemberProfile(memberID: "m1", firstName: nil, lastName: nil, phone: nil), &streams) == .invalidField)
        #expect(code(other, .linkSocialAccount(memberID: "m2", provider: "google", accountID: "fb-1"), &streams) == nil)
        #expect(code(other, .changeMemberProfile(memberID: "m1", firstName: "X", lastName: nil, phone: nil), &streams) == .notAuthorized)
        // A device: only its keyed digest is recorded, the same for every sighting of one fingerprint.
        let seen = try Decide.decide(command(member, .recordMemberDevice(memberID: "m1", deviceFingerprint: "android/Pixel 8/ab12")), streams: &streams)
        let sighting = try #require(seen.events.first)
        #expect(sighting.type == MemberDeviceSeen.eventType && sighting.stream == CheckoutStreams.member("m1"))
        let recorded = try JSONDecoder().decode(MemberDeviceSeen.self, from: sighting.payload)
        #expect(recorded.device == Claims.device("android/Pixel 8/ab12", secret: nil) && recorded.device.hasPrefix("device-"))
        #expect(recorded.device != Claims.device("android/Pixel 8/ab13", secret: nil))
        #expect(!String(decoding: sighting.payload, as: UTF8.self).contains("Pixel"))
        #expect(code(other, .recordMemberDevice(memberID: "m1", deviceFingerprint: "android/Pixel 8/ab12"), &streams) == .notAuthorized)
        #expect(code(Actor(.member, "m404"), .recordMemberDevice(memberID: "m404", deviceFingerprint: "x"), &streams) == .memberNotFound)
        #expect(code(member, .recordMemberDevice(memberID: "m1", deviceFingerprint: ""), &streams) == .invalidField)
        // Opened in a store: the store is recorded, and must exist. Without one the payload is as it always was.
        let inStore = try Decide.decide(command(member, .recordMemberDevice(memberID: "m1", deviceFingerprint: "android/Pixel 8/ab12", storeID: "s1")),
                                        streams: &streams)
        #expect(try JSONDecoder().decode(MemberDeviceSeen.self, from: try #require(inStore.events.first).payload).storeID == "s1")
        #expect(recorded.storeID == nil && !String(decoding: sighting.payload, as: UTF8.self).contains("storeID"))
        #expect(code(member, .recordMemberDevice(memberID: "m1", deviceFingerprint: "android/Pixel 8/ab12", storeID: "s9"), &streams) == .storeNotFound)
        #expect(code(other, .deactivateMember(memberID: "m2"), &streams) == nil)
        #expect(code(other, .openCart(cartID: "k9", storeID: "s1", memberID: "m2"), &streams) == .memberInactive)
    }
}

/// Every event type through the log: encoded, appended, read back, decoded equal.
@Suite struct EventRoundTripTests {
    @Test func everyEventTypeSurvivesTheLog() throws {
        let samples: [any DomainEvent] = [
            BoothRegistered(boothID: "3", name: "Lemonade", location: "North"), OperatorAssigned(boothID: "3", operatorID: "lee", operatorName: "Lee"),
            VoucherIssued(voucherID: "7", amount: cents(2500), buyerEmail: "k@example.org"),
            VoucherRedeemed(voucherID: "7", boothID: "3", operatorID: "lee", saleID: "s", saleAmount: cents(900)),
            SaleRecorded(saleID: "s", boothID: "3", voucherID: "7", operatorID: "lee", amount: cents(900)),
            UserRegistered(userID: "u", username: "n", email: "e@x", isAdmin: false), CategoryCreated(categoryID: "c", name: "n", slug: "s"),
            ProductCreated(productID: "p", name: "n", slug: "s", description: "d", price: cents(1), categoryID: "c"),
            ProductPriceChanged(productID: "p", price: cents(2)), StockReceived(productID: "p", quantity: 3),
            StockAdjusted(productID: "p", delta: -1, reason: "count"), StockReserved(productID: "p", orderID: "o", quantity: 1),
            StockReleased(productID: "p", orderID: "o", quantity: 1),
            OrderPlaced(orderID: "o", userID: "u", lines: [OrderLine(productID: "p", name: "n", categoryID: "c", quantity: 1, unitPrice: cents(2),
                                                                     appliedDiscounts: cents(0), preTaxTotal: cents(2))], total: cents(2)),
            CategoryChanged(categoryID: "c", name: "m", slug: "s"), UserEmailChanged(userID: "u", email: "f@x"), UserDeactivated(userID: "u"),
            ValueReleased(kind: "email", owner: "u"),
            OrderConfirmed(orderID: "o"), OrderPaid(orderID: "o", paymentID: "pay", transactionID: "MP1"), OrderShipped(orderID: "o"),
            OrderDelivered(orderID: "o"), OrderCancelled(orderID: "o", reason: "r"),
            PaymentInitiated(paymentID: "pay", orderID: "o", userID: "u", amount: cents(2), method: .mpesa),
            PaymentSucceeded(paymentID: "pay", orderID: "o", transactionID: "MP1", method: .mpesa, amount: cents(2)),
            PaymentFailed(paymentID: "pay", orderID: "o", reason: "declined"), ValueClaimed(kind: "username", owner: "u"),
            StoreOpened(storeID: "s", name: "n", currency: .usd),
            ItemCreated(storeID: "s", sku: sku("0001"), details: ItemDetails(description: "d", linkedSKU: sku("0002"), supersededBy: sku("0003"))),
            ItemChanged(storeID: "s", sku: sku("0001"), details: ItemDetails(description: "e")),
            PriceScheduled(storeID: "s", price: PriceRecord(sku: sku("0001"), start: Timestamp(microsecondsSinceEpoch: 5), price: cents(100), quantity: 3)),
            MemberRegistered(memberID: "m", firstName: "A", lastName: nil, email: "a@x", phone: nil),
            SocialAccountLinked(memberID: "m", provider: "google", accountID: "g"), MemberDeviceSeen(memberID: "m", device: "device-0f"),
            MemberProfileChanged(memberID: "m", firstName: "B", lastName: "C", phone: "1"), MemberDeactivated(memberID: "m"),
            ShoppingListRevised(memberID: "m", listID: "l", revision: 2, lines: [ShoppingListLine(sku: sku("0001"), quantity: 3)]),
            CartOpened(cartID: "k", storeID: "s", memberID: "m"),
            CartItemAdded(cartID: "k", scannedInput: "0001", sku: sku("0001"), quantity: 1, embeddedPrice: nil, linkedFrom: nil),
            CartItemRemoved(cartID: "k", sku: sku("0001"), quantity: 1), RestrictedItemsApproved(cartID: "k", staffID: "sam"),
            CartCheckedOut(cartID: "k", storeID: "s", memberID: "m", lines: [TransactionLine(scannedInput: "0001", sku: sku("0001"), description: "d", size: nil,
                           unitPrice: cents(34), quantity: 3, appliedDiscounts: cents(2), preTaxTotal: cents(100), taxable: false, departmentCode: nil, bogo: false)],
                           total: cents(100), paymentTransactionID: "bt"),
        ]
        let log = try EventLog.create(at: testPath("roundtrip"))
        let proposed = samples.map { sample in
            let emitted = Emitted(stream: "s", sample)
            return ProposedEvent(id: UUID(), stream: "s", type: emitted.type, schemaVersion: emitted.schemaVersion, payload: emitted.payload)
        }
        try log.append(AppendRequest(events: proposed))
        var reader = log.read()
        var index = 0
        try reader.forEach { recorded in
            let sample = samples[index]
            #expect(recorded.type == type(of: sample).eventType)
            let same = try Self.decodeSame(sample, recorded.payload)
            #expect(same, "\(recorded.type)")
            index += 1
        }
        #expect(index == samples.count)
        #expect(Set(samples.map { type(of: $0).eventType }).count == samples.count)  // Every type once.
    }

    static func decodeSame<Event: DomainEvent>(_ sample: Event, _ payload: Data) throws -> Bool {
        try DomainCoding.decode(Event.self, from: payload) == sample
    }
}
