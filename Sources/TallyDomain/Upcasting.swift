import Foundation
import TallyLog

/// Event schema evolution. The log is never rewritten: an event keeps the schema version it was
/// written with, and the upcasters here turn an old payload into the current shape as it is read,
/// one version step at a time. Rules and projections only ever see current shapes.
///
/// To change an event's shape: freeze the old shape here as a private `…V<n>` type, raise the
/// event's `schemaVersion`, and register the step from n to n + 1 in `steps`.
public enum Upcasting {
    /// One step: a payload of version n (the key) in, the payload of version n + 1 out.
    typealias Step = @Sendable (Data) throws -> Data

    static let steps: [String: [UInt16: Step]] = [
        PriceScheduled.eventType: [1: priceScheduled1to2],
    ]

    /// The current schema version of every event type that has had more than one.
    public static let currentVersions: [String: UInt16] = [
        PriceScheduled.eventType: PriceScheduled.schemaVersion,
    ]

    /// Whether an event of `type` written with `schemaVersion` must be upcast before it is decoded.
    @inline(__always)
    public static func needsUpcast(type: String, schemaVersion: UInt16) -> Bool {
        guard let current = currentVersions[type] else { return false }
        return schemaVersion != current
    }

    /// The payload in the current shape. Throws `UpcastError` for a version newer than this code
    /// knows (written by a newer Tally) or a payload that is not the shape its version says.
    public static func upcast(type: String, schemaVersion: UInt16, payload: Data) throws -> Data {
        let current = currentVersions[type] ?? 1
        if schemaVersion == current { return payload }
        guard schemaVersion < current else { throw UpcastError.newerThanKnown(type: type, version: schemaVersion, known: current) }
        var payload = payload
        for version in schemaVersion..<current {
            guard let step = steps[type]?[version] else { throw UpcastError.noStep(type: type, from: version) }
            do { payload = try step(payload) } catch let error as DecodingError {
                throw UpcastError.malformed(type: type, version: version, reason: DomainCoding.describe(error))
            }
        }
        return payload
    }

    /// `upcast` for a payload viewed in the log's memory: copies only when there is work to do.
    public static func withCurrentPayload<Result>(type: String, schemaVersion: UInt16, payload: UnsafeRawBufferPointer,
                                                  _ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result {
        guard needsUpcast(type: type, schemaVersion: schemaVersion) else { return try body(payload) }
        let upcast = try upcast(type: type, schemaVersion: schemaVersion, payload: Data(payload))
        return try upcast.withUnsafeBytes(body)
    }

    // MARK: PriceScheduled 1 → 2: the price record gained `label`.

    private struct PriceScheduledV1: Decodable {
        var storeID: String
        var price: PriceRecordV1
    }

    private struct PriceRecordV1: Decodable {
        var sku: SKU
        var start: Timestamp?
        var end: Timestamp?
        var priceType: Int
        var price: Money
        var quantity: Int
        var taxable: Bool
        var bogo: Bool
    }

    private static let priceScheduled1to2: Step = { payload in
        let old = try JSONDecoder().decode(PriceScheduledV1.self, from: payload)
        let record = old.price
        // The label a version 1 record never had: the standard one for its shape.
        return DomainCoding.encode(PriceScheduled(storeID: old.storeID, price: PriceRecord(
            sku: record.sku, start: record.start, end: record.end, priceType: record.priceType, price: record.price,
            quantity: record.quantity, taxable: record.taxable, bogo: record.bogo, label: nil)))
    }
}

public enum UpcastError: Error, Equatable, CustomStringConvertible {
    case newerThanKnown(type: String, version: UInt16, known: UInt16)
    case noStep(type: String, from: UInt16)
    case malformed(type: String, version: UInt16, reason: String)

    public var description: String {
        switch self {
        case .newerThanKnown(let type, let version, let known):
            "\(type) schema version \(version) is newer than this Tally knows (\(known)): upgrade Tally to read it"
        case .noStep(let type, let from): "no upcaster for \(type) from schema version \(from)"
        case .malformed(let type, let version, let reason): "\(type) payload is not schema version \(version): \(reason)"
        }
    }
}
