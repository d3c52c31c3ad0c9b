import Foundation
import TallyLog
import TallyMerkle

/// An event of the commerce domain: a Codable payload with a stable type name and schema version.
public protocol DomainEvent: Codable, Sendable, Equatable {
    /// The log's event type ("VoucherRedeemed"): stable forever once events of it exist.
    static var eventType: String { get }
    /// Raised when the payload's shape changes; old versions are upcast when read.
    static var schemaVersion: UInt16 { get }
    /// Payload fields that hold personal data (names, emails, phone numbers, social ids): the audit
    /// trail encrypts them per data subject so they can be erased.
    static var personalFields: Set<String> { get }
}

extension DomainEvent {
    public static var schemaVersion: UInt16 { 1 }
    public static var personalFields: Set<String> { [] }
}

/// Who caused an event. Stored as the log's actor string: "admin:ana", "operator:lee@booth-3",
/// "member:7", "customer:42", "system:payments".
public struct Actor: Hashable, Sendable, Codable, CustomStringConvertible {
    public enum Role: String, Sendable, Codable, CaseIterable {
        case admin, `operator`, member, customer, staff, system
    }

    public var role: Role
    public var id: String

    public init(_ role: Role, _ id: String) {
        self.role = role
        self.id = id
    }

    public var description: String { "\(role.rawValue):\(id)" }

    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let role = Role(rawValue: String(parts[0])), !parts[1].isEmpty else { return nil }
        self.init(role, String(parts[1]))
    }

    /// On the wire an actor is its string: "operator:lee".
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let actor = Actor(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                "\"\(text)\" is not an actor: write role:id with role one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        self = actor
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The JSON every domain payload is stored as: keys sorted, so the same content has the same bytes.
public enum DomainCoding {
    public static func encode(_ event: some DomainEvent) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Domain events hold strings, integers, booleans and nested structs: encoding cannot fail.
        do { return try encoder.encode(event) } catch { preconditionFailure("encoding \(type(of: event)) failed: \(error)") }
    }

    /// A decoding error in words that name the field: "missing field \"command.redeemVoucher.saleID\"".
    public static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let names = fieldPath(context.codingPath)
            return names.isEmpty ? "the line" : "\"\(names)\""
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field \"\(fieldPath(context.codingPath + [key]))\""
        case .typeMismatch(let type, let context): return "field \(path(context)) must be \(describe(type))"
        case .valueNotFound(let type, let context): return "field \(path(context)) must be \(describe(type)), not null"
        case .dataCorrupted(let context) where context.codingPath.isEmpty && context.debugDescription == "The given data was not valid JSON.":
            // What Foundation's decoder also says of a number that a whole-number field cannot hold
            // (a quantity of 1.5), without naming the field.
            return "not valid JSON, or a number where a whole number is expected is not one (or is out of range)"
        case .dataCorrupted(let context):
            // Foundation's words for an enum's unknown value name the Swift type: name the choices.
            let words = context.debugDescription
            if words.hasPrefix("Cannot initialize PaymentMethod from invalid String value "),
               let value = words.split(separator: " ", omittingEmptySubsequences: false).last {
                return "field \(path(context)) must be one of \(PaymentMethod.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(value)\""
            }
            return "field \(path(context)): \(words)"
        @unknown default: return "\(error)"
        }
    }

    /// A coding path as people write it: `command.placeOrder.lines[1].quantity`. Synthesized enum
    /// coding adds "_0"-style keys: they are left out; an array's element is its index in brackets
    /// (Foundation names it "Index 1").
    static func fieldPath(_ keys: [any CodingKey]) -> String {
        var path = ""
        for key in keys where !key.stringValue.hasPrefix("_") {
            if let index = key.intValue {
                path += "[\(index)]"
            } else {
                path += (path.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return path
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is UInt64.Type: "a whole number"
        case is Bool.Type: "true or false"
        case is Timestamp.Type: "an RFC 3339 time (2026-11-22T09:00:00Z) or whole microseconds since 1970"
        // What Foundation's decoder reports for an object or an array found as something else.
        case is [String: Any].Type: "an object"
        case is [Any].Type: "an array"
        default: "\(type)"
        }
    }

    public static func decode<Event: DomainEvent>(_ type: Event.Type, from payload: some DataProtocol) throws -> Event {
        try JSONDecoder().decode(Event.self, from: Data(payload))
    }
}

/// An event the domain decided to append, with the stream it goes to.
public struct Emitted: Sendable {
    public var stream: String
    public var type: String
    public var schemaVersion: UInt16
    public var payload: Data

    public init(stream: String, _ event: some DomainEvent) {
        self.stream = stream
        type = Swift.type(of: event).eventType
        schemaVersion = Swift.type(of: event).schemaVersion
        payload = DomainCoding.encode(event)
    }
}

/// Deterministic event ids: the n-th event a command emits always gets the same id, so retrying a
/// command is recognised by the log (idempotency) instead of being applied twice.
public enum CommandEventIDs {
    public static func id(command: UUID, index: Int) -> UUID {
        var input = [UInt8]()
        withUnsafeBytes(of: command.uuid) { input.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(index).bigEndian) { input.append(contentsOf: $0) }
        input.append(contentsOf: Array("tally/command-event".utf8))
        var bytes = input.withUnsafeBytes { sha256($0) }.bytes
        // RFC 9562 version 8 (custom), variant 10.
        bytes[6] = (bytes[6] & 0x0f) | 0x80
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }
}
