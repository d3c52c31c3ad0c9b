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
        let wholeSeconds = microsecondsSinceEpoch.floorDivided(by: 1_000_000)
        // Wrapping: the product overflows near Int64.min, but the difference is exact (0 ..< 1_000_000).
        let micros = Int(microsecondsSinceEpoch &- wholeSeconds &* 1_000_000)
        var seconds = time_t(wholeSeconds)
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else {
            return "\(microsecondsSinceEpoch) µs since 1970-01-01T00:00:00Z (outside RFC 3339's years)"
        }
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

    /// Parses RFC 3339 (`2026-11-22T09:30:00Z`, `2026-11-22T10:30:00.000125+01:00`) or a bare date
    /// (`2026-11-22`, midnight UTC). A fraction keeps its first six digits, as the log does: the time
    /// `iso8601` prints for an event parses back to exactly that event's time. Nil for anything else,
    /// including impossible dates (`2026-02-30`) and leap seconds, which the log's clock never records.
    public init?(iso8601 text: String) {
        var scanner = DigitScanner(text)
        guard let year = scanner.digits(4), scanner.take("-"), let month = scanner.digits(2), scanner.take("-"),
              let day = scanner.digits(2), (1...12).contains(month), (1...Self.days(inMonth: month, year: year)).contains(day) else { return nil }
        var seconds = Self.daysSinceEpoch(year: year, month: month, day: day) * 86_400
        var micros: Int64 = 0
        if !scanner.atEnd {
            guard scanner.take("T") || scanner.take("t") || scanner.take(" "),
                  let hour = scanner.digits(2), scanner.take(":"), let minute = scanner.digits(2), scanner.take(":"),
                  let second = scanner.digits(2), hour < 24, minute < 60, second < 60 else { return nil }
            seconds += Int64(hour * 3600 + minute * 60 + second)
            if scanner.take(".") {
                var count = 0
                while let digit = scanner.digits(1) {
                    if count < 6 { micros = micros * 10 + Int64(digit) }
                    count += 1
                }
                guard count > 0 else { return nil }
                for _ in count..<max(count, 6) { micros *= 10 }
            }
            if !(scanner.take("Z") || scanner.take("z")) {
                guard let sign = scanner.take("+") ? 1 : scanner.take("-") ? -1 : nil,
                      let offsetHours = scanner.digits(2), scanner.take(":"), let offsetMinutes = scanner.digits(2),
                      offsetHours < 24, offsetMinutes < 60 else { return nil }
                seconds -= Int64(sign * (offsetHours * 3600 + offsetMinutes * 60))
            }
            guard scanner.atEnd else { return nil }
        }
        self.init(microsecondsSinceEpoch: seconds * 1_000_000 + micros)
    }

    static func days(inMonth month: Int, year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days from 1970-01-01 to the date in the proleptic Gregorian calendar (Howard Hinnant's
    /// `days_from_civil`).
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int64 {
        let shiftedYear = Int64(month <= 2 ? year - 1 : year)
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = Int64((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1)
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
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
/// Decoding also takes an RFC 3339 time or a date as text (`"2026-11-22T09:00:00Z"`), so people can
/// write the times of a command as they read them; it is encoded as microseconds either way.
extension Timestamp: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let microseconds = try? container.decode(Int64.self) {
            microsecondsSinceEpoch = microseconds
        } else if let text = try? container.decode(String.self) {
            guard let time = Timestamp(iso8601: text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription:
                    "\"\(text)\" is not an RFC 3339 time (2026-11-22T09:00:00Z) or a date (2026-11-22)")
            }
            self = time
        } else {
            throw DecodingError.typeMismatch(Timestamp.self, DecodingError.Context(codingPath: decoder.codingPath, debugDescription:
                "an RFC 3339 time or whole microseconds since 1970"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(microsecondsSinceEpoch)
    }
}

/// Reads ASCII digits and punctuation from the front of a string, for `Timestamp(iso8601:)`.
private struct DigitScanner {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ text: String) { bytes = Array(text.utf8) }

    var atEnd: Bool { offset == bytes.count }

    /// Exactly `count` digits as a number, or nil (consuming nothing) if fewer follow.
    mutating func digits(_ count: Int) -> Int? {
        guard offset + count <= bytes.count else { return nil }
        var value = 0
        for byte in bytes[offset..<(offset + count)] {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        offset += count
        return value
    }

    /// Consumes `character` if it comes next.
    mutating func take(_ character: Unicode.Scalar) -> Bool {
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: character) else { return false }
        offset += 1
        return true
    }
}
