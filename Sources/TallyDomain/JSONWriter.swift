import Foundation

/// Writes JSON text as UTF-8 bytes, for the lines written once per event (`tally read`'s JSON Lines,
/// the audit bundle's `events.jsonl`): built as interpolated strings or through `JSONSerialization`,
/// those lines cost several times more than reading the events. The caller writes the structure
/// (`raw`), and the writer writes values. Inlinable, so the callers' loops are specialized.
public struct JSONWriter {
    public var bytes: [UInt8]

    @inlinable public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @usableFromInline static let hexDigits = Array("0123456789abcdef".utf8)
    @usableFromInline static let base64Digits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Text written as it is: punctuation and keys (`{"position":`).
    @inlinable public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Bytes written as they are: a value already known to be JSON.
    @inlinable public mutating func raw(_ value: some Sequence<UInt8>) {
        bytes.append(contentsOf: value)
    }

    @inlinable public mutating func number(_ value: UInt64) {
        let start = bytes.count
        var rest = value
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        bytes[start...].reverse()
    }

    /// `text` as a JSON string literal, escaped as RFC 8259 requires: quote, backslash and control
    /// characters (`\n`, `\r`, `\t`, else `\u00xx`); everything else as its UTF-8.
    @inlinable public mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case UInt8(ascii: "\n"): raw("\\n")
            case UInt8(ascii: "\r"): raw("\\r")
            case UInt8(ascii: "\t"): raw("\\t")
            case 0..<0x20:
                raw("\\u00")
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0x0f)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A UUID as a JSON string, lowercase 8-4-4-4-12.
    @inlinable public mutating func string(_ id: UUID) {
        bytes.append(UInt8(ascii: "\""))
        withUnsafeBytes(of: id.uuid) { raw in
            for (index, byte) in raw.enumerated() {
                if index == 4 || index == 6 || index == 8 || index == 10 { bytes.append(UInt8(ascii: "-")) }
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0x0f)])
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `value` as a JSON string of lowercase hex digits.
    @inlinable public mutating func hexString(_ value: some Sequence<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value {
            bytes.append(Self.hexDigits[Int(byte >> 4)])
            bytes.append(Self.hexDigits[Int(byte & 0x0f)])
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `value` as a JSON string in base64 (RFC 4648, padded), as `Data.base64EncodedString()` writes it.
    @inlinable public mutating func base64String(_ value: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        var index = 0
        while index + 3 <= value.count {
            let group = UInt32(value[index]) << 16 | UInt32(value[index + 1]) << 8 | UInt32(value[index + 2])
            for shift in [18, 12, 6, 0] { bytes.append(Self.base64Digits[Int((group >> UInt32(shift)) & 0x3f)]) }
            index += 3
        }
        let rest = value.count - index
        if rest > 0 {
            let group = UInt32(value[index]) << 16 | (rest == 2 ? UInt32(value[index + 1]) << 8 : 0)
            bytes.append(Self.base64Digits[Int((group >> 18) & 0x3f)])
            bytes.append(Self.base64Digits[Int((group >> 12) & 0x3f)])
            bytes.append(rest == 2 ? Self.base64Digits[Int((group >> 6) & 0x3f)] : UInt8(ascii: "="))
            bytes.append(UInt8(ascii: "="))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `value` as JSON, if it is one JSON value (RFC 8259, UTF-8, checked by `JSONView`), and true; line
    /// breaks, which can only be whitespace between its tokens, are left out so the line stays one.
    /// False, writing nothing, if it is not JSON.
    @inlinable public mutating func json(_ value: UnsafeRawBufferPointer) -> Bool {
        guard (try? JSONView(document: value)) != nil else { return false }
        let isLineBreak = { (byte: UInt8) in byte == 0x0A || byte == 0x0D }
        if value.allSatisfy({ $0 < 0x80 && !isLineBreak($0) }) {
            bytes.append(contentsOf: value)
            return true
        }
        let kept = value.filter { !isLineBreak($0) }
        guard String(validating: kept, as: UTF8.self) != nil else { return false }
        bytes.append(contentsOf: kept)
        return true
    }
}
