import Foundation
import Testing
import TallyLog
import TallyTestSupport
@testable import TallyDomain

/// One text in two canonically equivalent forms names one thing: commands are taken in NFC.
@Suite struct TextNormalizationTests {
    /// "café" precomposed (U+00E9) and decomposed ("e" + U+0301): `==` in Swift, different bytes.
    static let composed = "caf\u{E9}", decomposed = "cafe\u{301}"

    static func events(_ log: EventLog, _ query: ReadQuery = ReadQuery()) throws -> [RecordedEvent] {
        var reader = log.read(query)
        var events: [RecordedEvent] = []
        try reader.forEach { events.append($0) }
        return events
    }

    @Test func theFormsDifferInBytesOnly() {
        #expect(Self.composed == Self.decomposed)
        #expect(!Self.composed.utf8.elementsEqual(Self.decomposed.utf8))
        #expect(Self.decomposed.nfc.utf8.elementsEqual(Self.composed.utf8))
        #expect(Self.composed.nfc.utf8.elementsEqual(Self.composed.utf8))
        #expect("m-042".nfc == "m-042")
    }

    @Test func aMemberIdInEitherFormIsOneMemberAndItsEventsRecordNFC() throws {
        let commerce = CommerceService(log: try EventLog.create(at: testPath("nfc-members")))
        let first = try commerce.execute(command(admin, .registerMember(memberID: Self.decomposed, firstName: "Zo\u{308}e", lastName: nil,
                                                                       email: nil, phone: nil)))
        guard case .accepted = first else { Issue.record("registering was refused: \(first)"); return }
        // The other form is the same member: already registered, and nothing appended.
        let again = try commerce.execute(command(admin, .registerMember(memberID: Self.composed, firstName: nil, lastName: nil,
                                                                       email: nil, phone: nil)))
        #expect(again == .rejected(Rejection(.memberAlreadyRegistered, "member \(Self.composed) is already registered")))
        // The member acting for themselves, their id in the other form, is themselves.
        let changed = try commerce.execute(command(Actor(.member, Self.composed), .changeMemberProfile(memberID: Self.decomposed, firstName: "Zoe",
                                                                                                     lastName: nil, phone: nil)))
        guard case .accepted = changed else { Issue.record("the member was refused their own change: \(changed)"); return }

        let events = try Self.events(commerce.log)
        #expect(events.count == 2)
        let stream = CheckoutStreams.member(Self.composed)
        for event in events {
            #expect(event.stream.utf8.elementsEqual(stream.utf8), "the stream is named in NFC")
            let memberID = try JSONDecoder().decode([String: String?].self, from: event.payload)["memberID"]
            #expect(memberID??.utf8.elementsEqual(Self.composed.utf8) == true, "the payload holds the id in NFC")
        }
        #expect(events.first?.actor.utf8.elementsEqual("admin:ana".utf8) == true)
        #expect(events.last?.actor.utf8.elementsEqual("member:\(Self.composed)".utf8) == true, "the actor's id is in NFC")
        let firstName = try JSONDecoder().decode([String: String?].self, from: events[0].payload)["firstName"]
        #expect(firstName??.utf8.elementsEqual("Z\u{F6}e".utf8) == true, "names are stored in NFC too")
        // One stream, found by the NFC bytes; the decomposed bytes name no stream.
        #expect(try Self.events(commerce.log, ReadQuery(.stream(stream))).count == 2)
        #expect(try Self.events(commerce.log, ReadQuery(.stream(CheckoutStreams.member(Self.decomposed)))).isEmpty)
    }

    @Test func anEmailAddressCannotBeClaimedTwiceThroughItsOtherForm() throws {
        let commerce = CommerceService(log: try EventLog.create(at: testPath("nfc-claims")))
        let email = "jos\u{E9}@example.org", decomposedEmail = "jose\u{301}@example.org"
        let first = try commerce.execute(command(admin, .registerUser(userID: "u1", username: "jos\u{E9}", email: email, isAdmin: false)))
        guard case .accepted = first else { Issue.record("registering was refused: \(first)"); return }
        let sameEmail = try commerce.execute(command(admin, .registerUser(userID: "u2", username: "other", email: decomposedEmail, isAdmin: false)))
        guard case .rejected(let emailRefusal) = sameEmail else { Issue.record("the same address in its other form was accepted"); return }
        #expect(emailRefusal.code == .emailTaken)
        let sameName = try commerce.execute(command(admin, .registerUser(userID: "u3", username: "JOSE\u{301}", email: "x@example.org", isAdmin: false)))
        guard case .rejected(let nameRefusal) = sameName else { Issue.record("the same username in its other form was accepted"); return }
        #expect(nameRefusal.code == .usernameTaken)
    }

    @Test func thePureRulesTakeTheCommandInNFCToo() throws {
        var streams = MemoryStreams()
        let decision = try Decide.decide(command(admin, .registerBooth(boothID: Self.decomposed, name: "Cr\u{EA}pes", location: "North")),
                                         streams: &streams)
        #expect(decision.events.count == 1)
        #expect(decision.events[0].stream.utf8.elementsEqual("booth-\(Self.composed)".utf8))
        #expect(decision.expectations.keys.allSatisfy { $0.utf8.elementsEqual("booth-\(Self.composed)".utf8) })
    }
}
