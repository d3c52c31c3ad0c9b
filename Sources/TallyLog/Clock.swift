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
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let fraction = String(micros)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 6 - fraction.count) + fraction + "Z"
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
