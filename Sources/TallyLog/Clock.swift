import Foundation
import Synchronization

/// A moment, in whole microseconds since 1970-01-01T00:00:00Z. Fixed width on disk (Int64).
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var microsecondsSinceEpoch: Int64

    public init(microsecondsSinceEpoch: Int64) { self.microsecondsSinceEpoch = microsecondsSinceEpoch }

    public init(_ date: Date) {
        microsecondsSinceEpoch = Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
    }

    public var date: Date { Date(timeIntervalSince1970: Double(microsecondsSinceEpoch) / 1_000_000) }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.microsecondsSinceEpoch < rhs.microsecondsSinceEpoch }

    /// RFC 3339 in UTC with microseconds: `2026-11-22T09:30:00.000125Z`.
    public var iso8601: String {
        var seconds = time_t(microsecondsSinceEpoch.floorDivided(by: 1_000_000))
        let micros = Int(microsecondsSinceEpoch - Int64(seconds) * 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let year = Int(parts.tm_year) + 1900
        guard (0...9999).contains(year) else {
            return "\(year)-\(parts.tm_mon + 1)-\(parts.tm_mday)T\(parts.tm_hour):\(parts.tm_min):\(parts.tm_sec).\(micros)Z (outside RFC 3339's years)"
        }
        // "YYYY-MM-DDTHH:MM:SS.ffffffZ", written as bytes: read models format one per event.
        return String(unsafeUninitializedCapacity: 27) { out in
            var offset = 0
            func digits(_ value: Int, _ width: Int) {
                var rest = value
                for place in stride(from: width - 1, through: 0, by: -1) {
                    out[offset + place] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                }
                offset += width
            }
            func byte(_ character: Unicode.Scalar) { out[offset] = UInt8(ascii: character); offset += 1 }
            digits(year, 4); byte("-"); digits(Int(parts.tm_mon) + 1, 2); byte("-"); digits(Int(parts.tm_mday), 2)
            byte("T"); digits(Int(parts.tm_hour), 2); byte(":"); digits(Int(parts.tm_min), 2); byte(":"); digits(Int(parts.tm_sec), 2)
            byte("."); digits(micros, 6); byte("Z")
            return offset
        }
    }

    /// Parses RFC 3339 (`2026-11-22T09:30:00Z`, with optional fraction and offset) or a bare date
    /// (`2026-11-22`, midnight UTC).
    public init?(iso8601 text: String) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { self.init(date); return }
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { self.init(date); return }
        formatter.formatOptions = [.withFullDate]
        if let date = formatter.date(from: text) { self.init(date); return }
        return nil
    }

    public var description: String { iso8601 }
}

extension Int64 {
    func floorDivided(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}

/// Where the log gets "now". Injected so tests and replays are deterministic.
public protocol TallyClock: Sendable {
    func now() -> Timestamp
}

/// The system's wall clock.
public struct SystemClock: TallyClock {
    public init() {}
    public func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(microsecondsSinceEpoch: Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec / 1000))
    }
}

/// A clock moved by hand, for tests and deterministic generators.
public final class ManualClock: TallyClock {
    private let current: Mutex<Timestamp>

    public init(_ start: Timestamp = Timestamp(microsecondsSinceEpoch: 1_790_000_000_000_000)) {
        current = Mutex(start)
    }

    public func now() -> Timestamp { current.withLock { $0 } }

    public func set(_ time: Timestamp) { current.withLock { $0 = time } }

    public func advance(microseconds: Int64) {
        current.withLock { $0.microsecondsSinceEpoch += microseconds }
    }
}

/// On the wire a timestamp is its whole microseconds since the epoch: exact, unlike a float of seconds.
extension Timestamp: Codable {
    public init(from decoder: any Decoder) throws {
        microsecondsSinceEpoch = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(microsecondsSinceEpoch)
    }
}
