import Foundation

/// A zero-copy view of one JSON value inside an event's payload bytes, for projectors.
///
/// Decoding a whole payload with `JSONDecoder` costs more than everything else a rebuild does
/// (BENCHMARKS.md, "What the profile showed"); a projector usually wants four or five fields. This
/// reads them straight from the log's memory: a lookup scans the object's members, skipping the
/// values it does not want, and only the fields asked for become Swift values. It is strict: a
/// malformed document, a missing field or one of another type is an error naming the field.
///
/// Valid only while the bytes it views are (inside `Projector.apply`).
public struct JSONView {
    let bytes: UnsafeRawBufferPointer
    /// Where this value starts (its first byte, whitespace skipped) and ends (exclusive).
    let start: Int
    let end: Int
    /// Where the value sits in the document; made into text ("lines[0].sku") only for an error.
    let location: Location
    /// For an object checked in one pass (the document, an array's elements): where each member's
    /// key and value are, so a lookup compares keys instead of scanning the object again. A projector
    /// reads several fields of each: rescanning from the first member for every one profiled at nearly
    /// half of a rebuild's own time. nil: a lookup scans.
    let members: [MemberSpan]?

    init(bytes: UnsafeRawBufferPointer, start: Int, end: Int, location: Location, members: [MemberSpan]? = nil) {
        self.bytes = bytes
        self.start = start
        self.end = end
        self.location = location
        self.members = members
    }

    /// The whole document: the bytes must hold exactly one JSON value.
    public init(document bytes: UnsafeRawBufferPointer) throws {
        var scanner = Scanner(bytes: bytes, offset: 0)
        scanner.skipWhitespace()
        let start = scanner.offset
        let members = try scanner.skipValueIndexingObject()
        let end = scanner.offset
        scanner.skipWhitespace()
        guard scanner.offset == bytes.count, start < end else { throw JSONViewError.malformed(path: "", offset: scanner.offset) }
        self.init(bytes: bytes, start: start, end: end, location: Location(), members: members)
    }

    /// The field path, for error messages ("price.price.minor").
    var path: String { location.text(bytes) }

    var first: UInt8 { bytes[start] }
    public var isNull: Bool { first == UInt8(ascii: "n") }
    public var isObject: Bool { first == UInt8(ascii: "{") }
    public var isArray: Bool { first == UInt8(ascii: "[") }
    public var isString: Bool { first == UInt8(ascii: "\"") }

    private func child(_ name: String) -> String {
        let path = self.path
        return path.isEmpty ? name : path + "." + name
    }

    /// The member `key` of this object, or nil when there is none (or this is not an object).
    public func member(_ key: String) throws -> JSONView? {
        guard isObject else { return nil }
        var key = key
        if let members {
            return key.withUTF8 { wanted -> JSONView? in
                for member in members where !member.keyHasEscape && member.keyEnd - member.keyStart == wanted.count
                    && (wanted.isEmpty || memcmp(bytes.baseAddress! + member.keyStart, wanted.baseAddress!, wanted.count) == 0) {
                    return JSONView(bytes: bytes, start: member.valueStart, end: member.valueEnd,
                                    location: location.member(key: member.keyStart..<member.keyEnd, in: bytes))
                }
                return nil
            }
        }
        var scanner = Scanner(bytes: bytes, offset: start + 1)
        return try key.withUTF8 { wanted -> JSONView? in
            scanner.skipWhitespace()
            if scanner.peek == UInt8(ascii: "}") { return nil }
            while true {
                scanner.skipWhitespace()
                guard scanner.peek == UInt8(ascii: "\"") else { throw JSONViewError.malformed(path: path, offset: scanner.offset) }
                let keyStart = scanner.offset + 1
                let hasEscape = try scanner.skipString()
                let keyEnd = scanner.offset - 1
                scanner.skipWhitespace()
                guard scanner.peek == UInt8(ascii: ":") else { throw JSONViewError.malformed(path: path, offset: scanner.offset) }
                scanner.offset += 1
                scanner.skipWhitespace()
                let valueStart = scanner.offset
                try scanner.skipValue()
                let matches = !hasEscape && keyEnd - keyStart == wanted.count
                    && (wanted.isEmpty || memcmp(bytes.baseAddress! + keyStart, wanted.baseAddress!, wanted.count) == 0)
                if matches { return JSONView(bytes: bytes, start: valueStart, end: scanner.offset, location: location.member(key: keyStart..<keyEnd, in: bytes)) }
                scanner.skipWhitespace()
                switch scanner.peek {
                case UInt8(ascii: ","): scanner.offset += 1
                case UInt8(ascii: "}"): return nil
                default: throw JSONViewError.malformed(path: path, offset: scanner.offset)
                }
            }
        }
    }

    /// This object with an index of its members, so that looking several of them up compares keys
    /// instead of scanning it again for each (a nested object is scanned by default: most, like a
    /// money value, have two members and are read once). Anything but an unindexed object is
    /// returned as it is.
    public func indexed() throws -> JSONView {
        guard isObject, members == nil else { return self }
        var scanner = Scanner(bytes: bytes, offset: start)
        let members = try scanner.skipValueIndexingObject()
        return JSONView(bytes: bytes, start: start, end: end, location: location, members: members)
    }

    /// The keys of this object's members in the order given, escapes decoded.
    public func keys() throws -> [String] {
        guard isObject else { throw JSONViewError.wrongType(path: path, expected: "an object") }
        guard let members = try indexed().members else { return [] }
        return try members.map { member in
            try JSONView(bytes: bytes, start: member.keyStart - 1, end: member.keyEnd + 1, location: location).string()
        }
    }

    /// The member `key`, which must be present.
    public func required(_ key: String) throws -> JSONView {
        guard let value = try member(key) else { throw JSONViewError.missing(path: child(key)) }
        return value
    }

    /// A string member; nil when absent or null.
    public func optionalString(_ key: String) throws -> String? {
        guard let value = try member(key), !value.isNull else { return nil }
        return try value.string()
    }

    public func string(_ key: String) throws -> String { try required(key).string() }
    public func int(_ key: String) throws -> Int { try required(key).int() }
    public func int64(_ key: String) throws -> Int64 { try required(key).int64() }
    public func bool(_ key: String) throws -> Bool { try required(key).bool() }
    public func money(_ key: String) throws -> Money { try required(key).money() }
    public func optionalMoney(_ key: String) throws -> Money? {
        guard let value = try member(key), !value.isNull else { return nil }
        return try value.money()
    }

    /// This value as a string, escapes decoded.
    public func string() throws -> String {
        guard first == UInt8(ascii: "\"") else { throw JSONViewError.wrongType(path: path, expected: "a string") }
        let content = UnsafeRawBufferPointer(rebasing: bytes[(start + 1)..<(end - 1)])
        if !content.contains(UInt8(ascii: "\\")) { return String(decoding: content, as: UTF8.self) }
        // Rare in payloads: let Foundation decode the escapes of this one string.
        let data = Data(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        guard let text = try? JSONDecoder().decode(String.self, from: data) else { throw JSONViewError.malformed(path: path, offset: start) }
        return text
    }

    public func int64() throws -> Int64 {
        var value: Int64 = 0
        var index = start
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        guard index < end else { throw JSONViewError.wrongType(path: path, expected: "a whole number") }
        while index < end {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { throw JSONViewError.wrongType(path: path, expected: "a whole number") }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (added, overflow2) = shifted.addingReportingOverflow(Int64(digit))
            guard !overflow1, !overflow2 else { throw JSONViewError.wrongType(path: path, expected: "a whole number that fits 64 bits") }
            value = added
            index += 1
        }
        return negative ? -value : value
    }

    public func int() throws -> Int { Int(try int64()) }

    public func bool() throws -> Bool {
        switch first {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: throw JSONViewError.wrongType(path: path, expected: "true or false")
        }
    }

    /// A `Money` object: `{"minor": 1250, "currency": "USD"}`.
    public func money() throws -> Money {
        if let money = canonicalMoney() { return money }
        let code = try required("currency")
        // A code is three capitals between quotes, read in place; anything else is checked as a string.
        var currency: Currency?
        if code.end - code.start == 5, code.first == UInt8(ascii: "\""), bytes[code.end - 1] == UInt8(ascii: "\"") {
            currency = Currency(codeBytes: UnsafeRawBufferPointer(rebasing: bytes[(code.start + 1)..<(code.end - 1)]))
        }
        if currency == nil { currency = Currency(code: try code.string()) }
        guard let currency else { throw JSONViewError.wrongType(path: child("currency"), expected: "a currency code") }
        return Money(minor: try int64("minor"), currency: currency)
    }

    /// A money value spelled compactly with its two members in either order, `{"currency":"USD","minor":-1250}`
    /// (canonical JSON, as the domain and `tally append` store it) or `{"minor":-1250,"currency":"USD"}`,
    /// read without looking its members up; nil for any other spelling, which `money()` then reads
    /// member by member.
    private func canonicalMoney() -> Money? {
        guard end - start >= 28, let base = bytes.baseAddress, bytes[end - 1] == UInt8(ascii: "}") else { return nil }
        let currencyFirst: StaticString = #"{"currency":""#, thenMinor: StaticString = #"","minor":"#
        let minorFirst: StaticString = #"{"minor":"#, thenCurrency: StaticString = #","currency":""#
        func matches(_ text: StaticString, at offset: Int) -> Bool {
            offset + text.utf8CodeUnitCount <= end && memcmp(base + offset, text.utf8Start, text.utf8CodeUnitCount) == 0
        }
        let codeStart: Int, digits: Range<Int>
        if matches(currencyFirst, at: start) {
            codeStart = start + currencyFirst.utf8CodeUnitCount
            guard matches(thenMinor, at: codeStart + 3) else { return nil }
            digits = (codeStart + 3 + thenMinor.utf8CodeUnitCount)..<(end - 1)
        } else if matches(minorFirst, at: start) {
            // `{"minor":` digits `,"currency":"` code `"}`
            codeStart = end - 5
            guard bytes[end - 2] == UInt8(ascii: "\""), matches(thenCurrency, at: codeStart - thenCurrency.utf8CodeUnitCount) else { return nil }
            digits = (start + minorFirst.utf8CodeUnitCount)..<(codeStart - thenCurrency.utf8CodeUnitCount)
        } else {
            return nil
        }
        guard let currency = Currency(codeBytes: UnsafeRawBufferPointer(rebasing: bytes[codeStart..<(codeStart + 3)])) else { return nil }
        var index = digits.lowerBound
        let negative = index < digits.upperBound && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        guard index < digits.upperBound else { return nil }
        var value: Int64 = 0
        while index < digits.upperBound {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (added, overflow2) = shifted.addingReportingOverflow(Int64(digit))
            guard !overflow1, !overflow2 else { return nil }
            value = added
            index += 1
        }
        return Money(minor: negative ? -value : value, currency: currency)
    }

    /// Calls `body` with each element of this array.
    public func forEachElement(_ body: (JSONView) throws -> Void) throws {
        guard isArray else { throw JSONViewError.wrongType(path: path, expected: "an array") }
        var scanner = Scanner(bytes: bytes, offset: start + 1)
        scanner.skipWhitespace()
        if scanner.peek == UInt8(ascii: "]") { return }
        var index = 0
        while true {
            scanner.skipWhitespace()
            let elementStart = scanner.offset
            let members = try scanner.skipValueIndexingObject()
            try body(JSONView(bytes: bytes, start: elementStart, end: scanner.offset, location: location.element(index, in: bytes), members: members))
            index += 1
            scanner.skipWhitespace()
            switch scanner.peek {
            case UInt8(ascii: ","): scanner.offset += 1
            case UInt8(ascii: "]"): return
            default: throw JSONViewError.malformed(path: path, offset: scanner.offset)
            }
        }
    }

    /// `text` as a JSON string literal, escaped as RFC 8259 requires.
    public static func quoted(_ text: String) -> String {
        var writer = JSONWriter(capacity: text.utf8.count + 2)
        writer.string(text)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    /// The value's exact bytes as text (for storing a nested value as it was written).
    /// The value's bytes as they stand in the document.
    public var rawBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[start..<end]) }
    public var rawText: String { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self) }
}

/// Where a value sits in its document: its last steps down from the document (a member's key, as
/// the key's bytes in the document, or an element's index) kept inline, so that looking fields up
/// builds no text and allocates nothing; `text` builds the path an error message names. Steps past
/// the inline ones are kept as text (payloads are rarely that deep).
struct Location {
    /// A member's key (`start..<end` in the document) or, with `end` negative, the element `start`.
    struct Step {
        var start: Int
        var end: Int
    }

    /// The path of the steps before `s0`, as text.
    var base = ""
    var count = 0
    var s0 = Step(start: 0, end: 0), s1 = Step(start: 0, end: 0), s2 = Step(start: 0, end: 0), s3 = Step(start: 0, end: 0)

    func text(_ bytes: UnsafeRawBufferPointer) -> String {
        var text = base
        for index in 0..<count {
            let step = switch index { case 0: s0; case 1: s1; case 2: s2; default: s3 }
            if step.end < 0 {
                text += "[\(step.start)]"
            } else {
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[step.start..<step.end]), as: UTF8.self)
                text = text.isEmpty ? name : text + "." + name
            }
        }
        return text
    }

    private func appending(_ step: Step, _ bytes: UnsafeRawBufferPointer) -> Location {
        var next = self
        switch count {
        case 0: next.s0 = step
        case 1: next.s1 = step
        case 2: next.s2 = step
        case 3: next.s3 = step
        default:
            next = Location(base: text(bytes))
            next.s0 = step
        }
        next.count += 1
        return next
    }

    func member(key range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Location {
        appending(Step(start: range.lowerBound, end: range.upperBound), bytes)
    }

    func element(_ position: Int, in bytes: UnsafeRawBufferPointer) -> Location {
        appending(Step(start: position, end: -1), bytes)
    }
}

/// One member of an object: its key's bytes (inside the quotes) and its value's.
struct MemberSpan {
    var keyStart: Int
    var keyEnd: Int
    var keyHasEscape: Bool
    var valueStart: Int
    var valueEnd: Int
}

public enum JSONViewError: Error, Equatable, CustomStringConvertible {
    case malformed(path: String, offset: Int)
    case missing(path: String)
    case wrongType(path: String, expected: String)

    public var description: String {
        switch self {
        case .malformed(let path, let offset): "malformed JSON at byte \(offset)\(path.isEmpty ? "" : " in \"\(path)\"")"
        case .missing(let path): "missing field \"\(path)\""
        case .wrongType(let path, let expected): "field \"\(path)\" must be \(expected)"
        }
    }
}

/// Skips over JSON values, checking their structure.
private struct Scanner {
    let bytes: UnsafeRawBufferPointer
    var offset: Int

    var peek: UInt8 { offset < bytes.count ? bytes[offset] : 0 }

    mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            default: return
            }
        }
    }

    /// Skips a string starting at its opening quote; returns whether it held an escape.
    @inline(__always) mutating func skipString() throws -> Bool {
        offset += 1
        var escaped = false
        while offset < bytes.count {
            // Eight bytes at a time while none is a quote, a backslash or a control character; then
            // straight to the first that is.
            while offset + 8 <= bytes.count {
                let special = Self.specialBytes(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
                if special == 0 {
                    offset += 8
                } else {
                    offset += special.trailingZeroBitCount >> 3
                    break
                }
            }
            guard offset < bytes.count else { break }
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\"") { offset += 1; return escaped }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                try skipEscape()
                continue
            }
            if byte < 0x20 { throw JSONViewError.malformed(path: "", offset: offset) }
            offset += 1
        }
        throw JSONViewError.malformed(path: "", offset: offset)
    }

    /// Skips an escape starting at its backslash: one of `\" \\ \/ \b \f \n \r \t`, or `\u` and four hex digits.
    mutating func skipEscape() throws {
        guard offset + 1 < bytes.count else { throw JSONViewError.malformed(path: "", offset: offset) }
        switch bytes[offset + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            offset += 2
        case UInt8(ascii: "u"):
            guard offset + 6 <= bytes.count, bytes[(offset + 2)..<(offset + 6)].allSatisfy({ $0.isHexDigit }) else {
                throw JSONViewError.malformed(path: "", offset: offset)
            }
            offset += 6
        default:
            throw JSONViewError.malformed(path: "", offset: offset)
        }
    }

    /// Skips a number as RFC 8259 writes it: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?
    mutating func skipNumber() throws {
        func digits() -> Int {
            let start = offset
            while offset < bytes.count, bytes[offset].isDigit { offset += 1 }
            return offset - start
        }
        if peek == UInt8(ascii: "-") { offset += 1 }
        if peek == UInt8(ascii: "0") {
            offset += 1
        } else if digits() == 0 {
            throw JSONViewError.malformed(path: "", offset: offset)
        }
        if peek == UInt8(ascii: ".") {
            offset += 1
            guard digits() > 0 else { throw JSONViewError.malformed(path: "", offset: offset) }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            offset += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { offset += 1 }
            guard digits() > 0 else { throw JSONViewError.malformed(path: "", offset: offset) }
        }
    }

    /// Whether any of the word's eight bytes is `"`, `\\` or below 0x20 (the byte tests of "Bit
    /// Twiddling Hacks": exact about whether one exists, whichever byte it is).
    /// The high bit of each byte (little-endian) that is a quote, a backslash or a control character,
    /// and perhaps of bytes after the first such: a borrow can only mark bytes above a true match,
    /// so the lowest bit set always marks the first special byte.
    @inline(__always) static func specialBytes(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        let quote = word ^ (ones &* 0x22), backslash = word ^ (ones &* 0x5C)
        let hasQuote = (quote &- ones) & ~quote & highs
        let hasBackslash = (backslash &- ones) & ~backslash & highs
        let hasControl = (word &- ones &* 0x20) & ~word & highs
        return hasQuote | hasBackslash | hasControl
    }

    /// Skips one value; if it is an object, returns where each of its members is.
    mutating func skipValueIndexingObject() throws -> [MemberSpan]? {
        skipWhitespace()
        guard peek == UInt8(ascii: "{") else {
            try skipValue()
            return nil
        }
        var members: [MemberSpan] = []
        // Commerce payloads have up to about a dozen members: one allocation instead of one per doubling.
        members.reserveCapacity(16)
        offset += 1
        skipWhitespace()
        if peek == UInt8(ascii: "}") { offset += 1; return members }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw JSONViewError.malformed(path: "", offset: offset) }
            let keyStart = offset + 1
            let keyHasEscape = try skipString()
            let keyEnd = offset - 1
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw JSONViewError.malformed(path: "", offset: offset) }
            offset += 1
            skipWhitespace()
            let valueStart = offset
            try skipValue(depth: 1)
            members.append(MemberSpan(keyStart: keyStart, keyEnd: keyEnd, keyHasEscape: keyHasEscape, valueStart: valueStart, valueEnd: offset))
            skipWhitespace()
            if peek == UInt8(ascii: ",") { offset += 1; continue }
            guard peek == UInt8(ascii: "}") else { throw JSONViewError.malformed(path: "", offset: offset) }
            offset += 1
            return members
        }
    }

    mutating func skipLiteral(_ literal: StaticString) throws {
        let count = literal.utf8CodeUnitCount
        guard offset + count <= bytes.count, memcmp(bytes.baseAddress! + offset, literal.utf8Start, count) == 0 else {
            throw JSONViewError.malformed(path: "", offset: offset)
        }
        offset += count
    }

    /// Nesting deeper than this is refused rather than followed (a hostile payload could nest a
    /// million brackets).
    static let depthMax = 256

    /// Skips one value of any kind.
    mutating func skipValue(depth: Int = 0) throws {
        guard depth < Self.depthMax else { throw JSONViewError.malformed(path: "", offset: offset) }
        skipWhitespace()
        switch peek {
        case UInt8(ascii: "\""): _ = try skipString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = peek == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            let isObject = close == UInt8(ascii: "}")
            offset += 1
            skipWhitespace()
            if peek == close { offset += 1; return }
            while true {
                skipWhitespace()
                if isObject {
                    guard peek == UInt8(ascii: "\"") else { throw JSONViewError.malformed(path: "", offset: offset) }
                    _ = try skipString()
                    skipWhitespace()
                    guard peek == UInt8(ascii: ":") else { throw JSONViewError.malformed(path: "", offset: offset) }
                    offset += 1
                }
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek == UInt8(ascii: ",") { offset += 1; continue }
                guard peek == close else { throw JSONViewError.malformed(path: "", offset: offset) }
                offset += 1
                return
            }
        case UInt8(ascii: "t"): try skipLiteral("true")
        case UInt8(ascii: "f"): try skipLiteral("false")
        case UInt8(ascii: "n"): try skipLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try skipNumber()
        default:
            throw JSONViewError.malformed(path: "", offset: offset)
        }
    }
}

private extension UInt8 {
    var isDigit: Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) }
    var isHexDigit: Bool { isDigit || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self | 0x20) }
}
