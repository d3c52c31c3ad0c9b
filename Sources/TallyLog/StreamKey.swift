import Foundation

/// A stream's name as a dictionary key: its UTF-8 bytes, compared and hashed as bytes, with the hash
/// worked out once.
///
/// A stream is its bytes, in the `streams` table and in every record. A `String` key would not do:
/// Swift's `==` and hashing follow Unicode canonical equivalence, so "café" written with "é" (NFC)
/// and with "e" and a combining accent (NFD, as macOS file names come) would be one key, and the
/// second stream would have been given the first one's number and versions. (Event types are ASCII,
/// where equivalence is identity.) Computing the hash once also saves the writer, which looks each
/// event's stream up twice, from hashing the name each time: it is done where the event is prepared.
struct StreamKey: Hashable, Sendable {
    let name: String
    let hash: Int

    init(_ name: String) {
        self.name = name
        var hasher = Hasher()
        var utf8 = name
        utf8.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        hash = hasher.finalize()
    }

    static func == (left: StreamKey, right: StreamKey) -> Bool {
        guard left.hash == right.hash else { return false }
        var (a, b) = (left.name, right.name)
        return a.withUTF8 { a in
            b.withUTF8 { b in a.count == b.count && (a.isEmpty || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0) }
        }
    }

    func hash(into hasher: inout Hasher) { hasher.combine(hash) }
}
