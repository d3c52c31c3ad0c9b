/// Where proof generation gets the hashes of perfect subtrees: the subtree at `level` and `index` covers
/// leaves `index << level ..< (index + 1) << level`. Level 0 is a leaf hash.
public protocol SubtreeHashSource {
    func perfectSubtreeHash(level: Int, index: UInt64) throws -> Hash
}

/// Why a proof did not verify. Each reason is its own case so callers can tell them apart.
public enum ProofFailure: Error, Equatable, Sendable, CustomStringConvertible {
    case leafIndexOutOfRange(index: UInt64, size: UInt64)
    case wrongProofLength(actual: Int, expected: Int)
    case rootMismatch
    case firstRootMismatch
    case secondRootMismatch
    case sizesDecrease(first: UInt64, second: UInt64)
    case emptyTreeHasNoProof
    case equalSizesNeedEmptyProof

    public var description: String {
        switch self {
        case .leafIndexOutOfRange(let index, let size): "leaf index \(index) is not below the tree size \(size)"
        case .wrongProofLength(let actual, let expected): "the proof has \(actual) hashes; one for these sizes has \(expected)"
        case .rootMismatch: "the proof does not lead to the expected root hash"
        case .firstRootMismatch: "the proof does not lead to the first tree's root hash"
        case .secondRootMismatch: "the proof does not lead to the second tree's root hash"
        case .sizesDecrease(let first, let second): "the second tree (size \(second)) is smaller than the first (size \(first))"
        case .emptyTreeHasNoProof: "a consistency proof from the empty tree means nothing: size 0 is rejected"
        case .equalSizesNeedEmptyProof: "trees of equal size are consistent only with an empty proof and equal roots"
        }
    }
}

/// RFC 9162 §2.1: tree heads, inclusion and consistency proofs.
public enum Merkle {
    /// `MTH(D[start..<end])` for a range that is a node of the RFC's recursion: its start is a multiple
    /// of the largest power of two not above its size. Costs O(log size) subtree look-ups.
    public static func rangeHash(start: UInt64, end: UInt64, source: some SubtreeHashSource) throws -> Hash {
        precondition(start < end, "an empty range has no node hash")
        let size = end - start
        if size & (size - 1) == 0 {
            let level = size.trailingZeroBitCount
            return try source.perfectSubtreeHash(level: level, index: start >> level)
        }
        let k = largestPowerOfTwoBelow(size)
        return MerkleHash.node(
            try rangeHash(start: start, end: start + k, source: source),
            try rangeHash(start: start + k, end: end, source: source))
    }

    /// The root of the tree of the first `size` leaves.
    public static func root(size: UInt64, source: some SubtreeHashSource) throws -> Hash {
        size == 0 ? MerkleHash.emptyTree : try rangeHash(start: 0, end: size, source: source)
    }

    /// `PATH(m, D[n])`: sibling hashes from the leaf upwards.
    public static func inclusionPath(leafIndex: UInt64, treeSize: UInt64, source: some SubtreeHashSource) throws -> [Hash] {
        guard leafIndex < treeSize else { throw ProofFailure.leafIndexOutOfRange(index: leafIndex, size: treeSize) }
        var path: [Hash] = []
        // Iterative form of the recursion: walk down from the root, collecting siblings, then reverse.
        var start: UInt64 = 0, end = treeSize, m = leafIndex
        while end - start > 1 {
            let k = largestPowerOfTwoBelow(end - start)
            if m < k {
                path.append(try rangeHash(start: start + k, end: end, source: source))
                end = start + k
            } else {
                path.append(try rangeHash(start: start, end: start + k, source: source))
                start += k
                m -= k
            }
        }
        return path.reversed()
    }

    /// `PROOF(m, D[n])` for `0 < m ≤ n`.
    public static func consistencyPath(from first: UInt64, to second: UInt64, source: some SubtreeHashSource) throws -> [Hash] {
        guard first > 0 else { throw ProofFailure.emptyTreeHasNoProof }
        guard first <= second else { throw ProofFailure.sizesDecrease(first: first, second: second) }
        var path: [Hash] = []
        var start: UInt64 = 0, end = second, m = first, complete = true
        while m != end - start {
            let k = largestPowerOfTwoBelow(end - start)
            if m <= k {
                path.append(try rangeHash(start: start + k, end: end, source: source))
                end = start + k
            } else {
                path.append(try rangeHash(start: start, end: start + k, source: source))
                start += k
                m -= k
                complete = false
            }
        }
        if !complete { path.append(try rangeHash(start: start, end: end, source: source)) }
        return path.reversed()
    }

    /// The number of hashes in an inclusion proof for `(index, size)`.
    public static func inclusionPathLength(leafIndex: UInt64, treeSize: UInt64) -> Int {
        let inner = 64 - (leafIndex ^ (treeSize - 1)).leadingZeroBitCount
        let border = (leafIndex >> UInt64(inner)).nonzeroBitCount
        return inner + border
    }

    /// The number of hashes in a consistency proof between sizes `0 < first < second`.
    public static func consistencyPathLength(from first: UInt64, to second: UInt64) -> Int {
        let index = first - 1
        var inner = 64 - (index ^ (second - 1)).leadingZeroBitCount
        let border = (index >> UInt64(inner)).nonzeroBitCount
        let shift = first.trailingZeroBitCount
        inner -= shift
        let seed = first == UInt64(1) << UInt64(shift) ? 0 : 1
        return seed + inner + border
    }

    /// RFC 9162 §2.1.3.2, with the proof length checked first.
    public static func verifyInclusion(leafIndex: UInt64, treeSize: UInt64, leafHash: Hash, path: [Hash], root: Hash) throws(ProofFailure) {
        guard leafIndex < treeSize else { throw .leafIndexOutOfRange(index: leafIndex, size: treeSize) }
        let expected = inclusionPathLength(leafIndex: leafIndex, treeSize: treeSize)
        guard path.count == expected else { throw .wrongProofLength(actual: path.count, expected: expected) }
        var fn = leafIndex, sn = treeSize - 1
        var r = leafHash
        for p in path {
            guard sn != 0 else { throw .wrongProofLength(actual: path.count, expected: expected) }
            if fn & 1 == 1 || fn == sn {
                r = MerkleHash.node(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
                }
            } else {
                r = MerkleHash.node(r, p)
            }
            fn >>= 1; sn >>= 1
        }
        guard sn == 0 else { throw .wrongProofLength(actual: path.count, expected: expected) }
        guard r == root else { throw .rootMismatch }
    }

    /// RFC 9162 §2.1.4.2, with these decisions for the cases it leaves open: a first size of 0 is
    /// rejected; equal sizes verify only with an empty proof and equal roots; the proof length is
    /// checked exactly before any hashing.
    public static func verifyConsistency(first: UInt64, second: UInt64, path: [Hash], firstRoot: Hash, secondRoot: Hash) throws(ProofFailure) {
        guard first > 0 else { throw .emptyTreeHasNoProof }
        guard first <= second else { throw .sizesDecrease(first: first, second: second) }
        if first == second {
            guard path.isEmpty, firstRoot == secondRoot else { throw .equalSizesNeedEmptyProof }
            return
        }
        let expected = consistencyPathLength(from: first, to: second)
        guard path.count == expected else { throw .wrongProofLength(actual: path.count, expected: expected) }
        var nodes = path[...]
        if first & (first - 1) == 0 { nodes = ([firstRoot] + path)[...] }
        var fn = first - 1, sn = second - 1
        while fn & 1 == 1 { fn >>= 1; sn >>= 1 }
        var fr = nodes.first!, sr = nodes.first!
        for c in nodes.dropFirst() {
            guard sn != 0 else { throw .wrongProofLength(actual: path.count, expected: expected) }
            if fn & 1 == 1 || fn == sn {
                fr = MerkleHash.node(c, fr)
                sr = MerkleHash.node(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
                }
            } else {
                sr = MerkleHash.node(sr, c)
            }
            fn >>= 1; sn >>= 1
        }
        guard sn == 0 else { throw .wrongProofLength(actual: path.count, expected: expected) }
        guard fr == firstRoot else { throw .firstRootMismatch }
        guard sr == secondRoot else { throw .secondRootMismatch }
    }
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first (RFC 9162 §2.1.2's
/// stack). Appending a leaf and reading the root cost O(log n) hashes at most.
public struct MerkleFrontier: Sendable, Equatable {
    public private(set) var size: UInt64 = 0
    /// `(level, hash)` pairs with strictly decreasing levels; their sizes add up to `size`.
    public private(set) var subtrees: [(level: Int, hash: Hash)] = []

    public init() {}

    public init?(size: UInt64, subtreeHashes: [Hash]) {
        guard subtreeHashes.count == size.nonzeroBitCount else { return nil }
        self.size = size
        var hashes = subtreeHashes.makeIterator()
        for level in stride(from: 63, through: 0, by: -1) where size & (UInt64(1) << UInt64(level)) != 0 {
            subtrees.append((level, hashes.next()!))
        }
    }

    /// Adds the next leaf. `completed` is called with each perfect subtree that this leaf finishes,
    /// from level 1 upwards, so a store can keep the ones it wants.
    public mutating func append(leaf: Hash, completed: (_ level: Int, _ index: UInt64, _ hash: Hash) throws -> Void) rethrows {
        var level = 0
        var hash = leaf
        while let last = subtrees.last, last.level == level {
            subtrees.removeLast()
            hash = MerkleHash.node(last.hash, hash)
            level += 1
            try completed(level, size >> UInt64(level), hash)
        }
        subtrees.append((level, hash))
        size += 1
    }

    public var root: Hash {
        guard var r = subtrees.last?.hash else { return MerkleHash.emptyTree }
        for subtree in subtrees.dropLast().reversed() { r = MerkleHash.node(subtree.hash, r) }
        return r
    }

    public static func == (lhs: MerkleFrontier, rhs: MerkleFrontier) -> Bool {
        lhs.size == rhs.size && lhs.subtrees.map(\.hash) == rhs.subtrees.map(\.hash)
    }
}
