import Foundation

/// Text as a dictionary key by its UTF-8 bytes, compared and hashed as bytes, with the hash worked
/// out once.
///
/// A stream is its bytes, in the `streams` table and in every record, and SQLite compares a read
/// model's text keys as bytes too. A `String` key would not do: Swift's `==` and hashing follow
/// Unicode canonical equivalence, so "café" written with "é" (NFC) and with "e" and a combining
/// accent (NFD, as macOS file names come) would be one key. In the writer's stream cache the second
/// stream took the first one's number and versions; in a projection's batch two people (or booths)
/// would be added up as one, differently depending on where the batches fell. (Event types are
/// ASCII, where equivalence is identity.)
public struct ExactText: Hashable, Sendable, CustomStringConvertible {
    public let text: String
    /// Of the bytes; computed once (the writer computes each event's where the event is prepared).
    let bytesHash: Int

    public init(_ text: String) {
        self.text = text
        var hasher = Hasher()
        var utf8 = text
        utf8.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        bytesHash = hasher.finalize()
    }

    public static func == (left: ExactText, right: ExactText) -> Bool {
        guard left.bytesHash == right.bytesHash else { return false }
        var (a, b) = (left.text, right.text)
        return a.withUTF8 { a in
            b.withUTF8 { b in a.count == b.count && (a.isEmpty || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0) }
        }
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(bytesHash) }

    public var description: String { text }
}

/// A stream's name as the writer, the index tail and `verify` key it.
typealias StreamKey = ExactText
