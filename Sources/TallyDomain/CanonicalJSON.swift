/// The canonical form of a JSON value given by a user: how `tally append` stores a payload, so the same
/// content always has the same bytes (what idempotent retries compare) and the bytes are what was sent.
///
/// - no whitespace between tokens;
/// - object members sorted by their keys' UTF-8 bytes (code point order, the same on every platform);
/// - numbers exactly as written: `12345678901234567890123` and `0.1` are kept digit for digit, never
///   passed through a `Double` or a `Decimal`;
/// - strings with their escapes decoded and written again as `JSONWriter.string` writes them (quote,
///   backslash and control characters escaped, everything else as UTF-8).
///
/// What a reader could take two ways is refused, naming its byte: a key given twice in one object
/// (compared by its bytes, so NFC and NFD "é" are two keys, as two streams are), a string that is not
/// UTF-8, and a `\u` escape of half a surrogate pair. The grammar is RFC 8259's, checked by `JSONView`.
public enum CanonicalJSON {
    /// Why a value has no canonical form: a byte offset into the value and what is wrong there.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        /// Counted from 0.
        public let offset: Int
        public let reason: String
        public var description: String { "\(reason) at byte \(offset + 1)" }
    }

    /// The canonical bytes of the one JSON value `bytes` hold (whitespace around it allowed).
    public static func canonical(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> [UInt8] {
        do {
            _ = try JSONView(document: bytes)
        } catch JSONViewError.malformed(_, let offset) {
            throw Failure(offset: offset, reason: "malformed JSON")
        } catch {
            throw Failure(offset: 0, reason: "malformed JSON")
        }
        var parser = Parser(bytes: bytes)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        try parser.value(into: &out)
        return out
    }

    /// `canonical(_:)` of a byte array.
    public static func canonical(_ bytes: [UInt8]) throws(Failure) -> [UInt8] {
        let result: Result<[UInt8], Failure> = bytes.withUnsafeBytes { buffer in Result { () throws(Failure) in try canonical(buffer) } }
        return try result.get()
    }

    /// The offset of the first byte of `bytes` that does not belong to well-formed UTF-8 (RFC 3629: no
    /// overlong forms, no surrogates, nothing past U+10FFFF), or nil.
    public static func firstInvalidUTF8(_ bytes: some Collection<UInt8>) -> Int? {
        var offset = 0
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    /// A value already checked against the grammar by `JSONView`, written out canonically.
    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        var peek: UInt8 { offset < bytes.count ? bytes[offset] : 0 }

        /// Whether `byte` ends a number or a literal: a delimiter or whitespace.
        static func endsToken(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), 0x20, 0x09, 0x0A, 0x0D: true
            default: false
            }
        }

        mutating func skipWhitespace() {
            while offset < bytes.count, bytes[offset] == 0x20 || bytes[offset] == 0x09 || bytes[offset] == 0x0A || bytes[offset] == 0x0D { offset += 1 }
        }

        mutating func value(into out: inout [UInt8]) throws(Failure) {
            skipWhitespace()
            switch peek {
            case UInt8(ascii: "{"): try object(into: &out)
            case UInt8(ascii: "["):
                offset += 1
                out.append(UInt8(ascii: "["))
                skipWhitespace()
                if peek == UInt8(ascii: "]") { offset += 1; out.append(UInt8(ascii: "]")); return }
                while true {
                    try value(into: &out)
                    skipWhitespace()
                    let byte = peek
                    offset += 1
                    out.append(byte)  // "," or "]", as the grammar check found
                    if byte == UInt8(ascii: "]") { return }
                }
            case UInt8(ascii: "\""):
                var writer = JSONWriter()
                writer.string(try string())
                out.append(contentsOf: writer.bytes)
            default:
                // A number or a literal: its bytes as given, up to the next delimiter.
                let start = offset
                while offset < bytes.count, !Self.endsToken(bytes[offset]) { offset += 1 }
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]))
            }
        }

        mutating func object(into out: inout [UInt8]) throws(Failure) {
            offset += 1
            // Each member written on its own, then put in order of their keys.
            var members: [(key: [UInt8], keyOffset: Int, text: [UInt8])] = []
            skipWhitespace()
            if peek != UInt8(ascii: "}") {
                while true {
                    skipWhitespace()
                    let keyOffset = offset
                    let key = try string()
                    skipWhitespace()
                    offset += 1  // ":"
                    var text = JSONWriter()
                    text.string(key)
                    text.bytes.append(UInt8(ascii: ":"))
                    try value(into: &text.bytes)
                    members.append((Array(key.utf8), keyOffset, text.bytes))
                    skipWhitespace()
                    if peek == UInt8(ascii: "}") { break }
                    offset += 1  // ","
                }
            }
            offset += 1
            members.sort { $0.key.lexicographicallyPrecedes($1.key) || ($0.key == $1.key && $0.keyOffset < $1.keyOffset) }
            out.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 {
                    let earlier = members[index - 1]
                    if earlier.key == member.key {
                        throw Failure(offset: member.keyOffset, reason: "a second key \(JSONView.quoted(String(decoding: member.key, as: UTF8.self))) "
                                      + "in one object (the first is at byte \(earlier.keyOffset + 1))")
                    }
                    out.append(UInt8(ascii: ","))
                }
                out.append(contentsOf: member.text)
            }
            out.append(UInt8(ascii: "}"))
        }

        /// The string starting at the opening quote, its escapes decoded; its bytes must be UTF-8 and its
        /// `\u` escapes whole code points.
        mutating func string() throws(Failure) -> String {
            offset += 1
            var decoded: [UInt8] = []
            var runStart = offset
            func flushRun(_ end: Int) throws(Failure) {
                let run = UnsafeRawBufferPointer(rebasing: bytes[runStart..<end])
                if let bad = CanonicalJSON.firstInvalidUTF8(run) {
                    throw Failure(offset: runStart + bad, reason: "a string that is not UTF-8 (byte 0x\(String(run[bad], radix: 16, uppercase: true)))")
                }
                decoded.append(contentsOf: run)
            }
            while true {
                let byte = bytes[offset]
                if byte == UInt8(ascii: "\"") {
                    try flushRun(offset)
                    offset += 1
                    return String(decoding: decoded, as: UTF8.self)
                }
                if byte != UInt8(ascii: "\\") { offset += 1; continue }
                try flushRun(offset)
                let escape = offset
                let kind = bytes[offset + 1]
                offset += 2
                switch kind {
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0C)
                case UInt8(ascii: "n"): decoded.append(0x0A)
                case UInt8(ascii: "r"): decoded.append(0x0D)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"):
                    var unit = hex4(at: offset)
                    offset += 4
                    if (0xDC00...0xDFFF).contains(unit) {
                        throw Failure(offset: escape, reason: "a \\u escape of half a surrogate pair (\\u\(hex(unit)) without the high half before it)")
                    }
                    if (0xD800...0xDBFF).contains(unit) {
                        let low = offset + 6 <= bytes.count && bytes[offset] == UInt8(ascii: "\\") && bytes[offset + 1] == UInt8(ascii: "u")
                            ? hex4(at: offset + 2) : nil
                        guard let low, (0xDC00...0xDFFF).contains(low) else {
                            throw Failure(offset: escape, reason: "a \\u escape of half a surrogate pair (\\u\(hex(unit)) without the low half after it)")
                        }
                        offset += 6
                        unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    decoded.append(contentsOf: Unicode.UTF8.encode(Unicode.Scalar(unit)!)!)
                default: decoded.append(kind)  // " \ /
                }
                runStart = offset
            }
        }

        func hex4(at index: Int) -> UInt32 {
            var value: UInt32 = 0
            for byte in bytes[index..<(index + 4)] {
                let digit = switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
                default: byte - UInt8(ascii: "A") + 10
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }

        func hex(_ unit: UInt32) -> String {
            let digits = String(unit, radix: 16)
            return String(repeating: "0", count: 4 - digits.count) + digits
        }
    }
}
