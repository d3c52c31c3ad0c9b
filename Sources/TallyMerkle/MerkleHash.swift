import CTallySHA256
import Crypto

/// A SHA-256 digest: exactly 32 bytes, compared by value.
public struct Hash: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    // Four words rather than an array: no allocation, and cheap to copy and compare.
    public var a: UInt64, b: UInt64, c: UInt64, d: UInt64

    public static let zero = Hash(a: 0, b: 0, c: 0, d: 0)

    public init(a: UInt64, b: UInt64, c: UInt64, d: UInt64) {
        (self.a, self.b, self.c, self.d) = (a, b, c, d)
    }

    /// The hash in `bytes`, which must be exactly 32 bytes long.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Hash.byteCount else { return nil }
        var words = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &words) { raw in raw.copyBytes(from: bytes) }
        (a, b, c, d) = words
    }

    /// The hash stored at the start of `buffer`, which must hold at least 32 bytes.
    @inlinable
    public init(loadingFrom buffer: UnsafeRawBufferPointer) {
        precondition(buffer.count >= Hash.byteCount, "a hash needs 32 bytes")
        a = buffer.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        b = buffer.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        c = buffer.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        d = buffer.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
    }

    public init?(hex: String) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var high: UInt8?
        for scalar in hex.unicodeScalars {
            guard let nibble = hexValue(scalar) else { return nil }
            if let h = high { bytes.append(h << 4 | nibble); high = nil } else { high = nibble }
        }
        guard high == nil else { return nil }
        self.init(bytes: bytes)
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = (a, b, c, d)
        return try Swift.withUnsafeBytes(of: &copy) { try body($0) }
    }

    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }
}

private func hexValue(_ scalar: Unicode.Scalar) -> UInt8? {
    switch scalar {
    case "0"..."9": return UInt8(scalar.value - 48)
    case "a"..."f": return UInt8(scalar.value - 87)
    case "A"..."F": return UInt8(scalar.value - 55)
    default: return nil
    }
}

extension Hash {
    @inlinable
    init(digest: SHA256.Digest) {
        self = digest.withUnsafeBytes { Hash(loadingFrom: $0) }
    }
}

/// RFC 9162 §2.1 hashing: leaves and interior nodes are hashed with distinct one-byte prefixes, so
/// no leaf can pose as an interior node.
public enum MerkleHash {
    /// `MTH({}) = SHA-256("")`.
    public static let emptyTree = [UInt8]().withUnsafeBytes { sha256($0) }

    /// `SHA-256(0x00 || data)`.
    public static func leaf(_ data: UnsafeRawBufferPointer) -> Hash {
        withUnsafeBytes(of: UInt8(0)) { prefix in sha256(prefix, data) }
    }

    public static func leaf(_ data: some Collection<UInt8>) -> Hash {
        let bytes = Array(data)
        return bytes.withUnsafeBytes { leaf($0) }
    }

    /// `SHA-256(0x01 || left || right)`.
    public static func node(_ left: Hash, _ right: Hash) -> Hash {
        withUnsafeBytes(of: UInt8(1)) { prefix in
            left.withUnsafeBytes { l in right.withUnsafeBytes { r in sha256(prefix, l, r) } }
        }
    }

    /// `SHA-256(first || second)`: the step of Tally's hash chain (not a Merkle node: no prefix).
    public static func chain(_ previous: Hash, _ leaf: Hash) -> Hash {
        var pair = (previous, leaf)
        return withUnsafeBytes(of: &pair) { raw in (sha256(raw)) }
    }
}

/// The largest power of two strictly less than `n` (`n` ≥ 2): RFC 9162's split point `k`.
@inlinable
public func largestPowerOfTwoBelow(_ n: UInt64) -> UInt64 {
    precondition(n >= 2, "split point of a tree with fewer than two leaves")
    return UInt64(1) << (63 - (n - 1).leadingZeroBitCount)
}

/// SHA-256 of `bytes`.
public func sha256(_ bytes: UnsafeRawBufferPointer) -> Hash {
    sha256(bytes, UnsafeRawBufferPointer(start: nil, count: 0))
}

/// SHA-256 of the concatenation of up to three byte ranges, without copying them together. Through
/// libcrypto with a stack context (`CTallySHA256`): swift-crypto's `SHA256` allocates a context object
/// per hash, which cost more than the hashing of the log's 65- to 200-byte inputs.
public func sha256(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer,
                   _ c: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> Hash {
    var out = Hash.zero
    withUnsafeMutableBytes(of: &out) { digest in
        tally_sha256(a.baseAddress, a.count, b.baseAddress, b.count, c.baseAddress, c.count,
                     digest.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }
    return out
}
