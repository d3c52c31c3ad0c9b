import Crypto
import Foundation
import Testing
@testable import TallyMerkle

/// Leaves held in memory: the reference source of subtree hashes for the tests.
struct MemoryLeaves: SubtreeHashSource {
    let leaves: [Hash]
    func perfectSubtreeHash(level: Int, index: UInt64) throws -> Hash {
        if level == 0 { return leaves[Int(index)] }
        return MerkleHash.node(try perfectSubtreeHash(level: level - 1, index: index * 2),
                               try perfectSubtreeHash(level: level - 1, index: index * 2 + 1))
    }
}

/// The standard 8-leaf set of transparency-dev/merkle's tests.
let standardLeafData: [[UInt8]] = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map { hex in
    stride(from: 0, to: hex.count, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16)! }
}

/// Straight from the RFC's recursive definition, for cross-checking the iterative code.
func referenceRoot(_ leaves: ArraySlice<Hash>) -> Hash {
    if leaves.isEmpty { return MerkleHash.emptyTree }
    if leaves.count == 1 { return leaves.first! }
    let k = Int(largestPowerOfTwoBelow(UInt64(leaves.count)))
    return MerkleHash.node(referenceRoot(leaves.prefix(k)), referenceRoot(leaves.dropFirst(k)))
}

@Suite struct MerkleHashingTests {
    @Test func knownAnswerHashes() {
        #expect(MerkleHash.emptyTree.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(MerkleHash.leaf([UInt8]()).hex == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        #expect(MerkleHash.leaf(Array("L123456".utf8)).hex == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
        // node("N123", "N456") hashes raw bytes that are not 32 long: check it through the same prefix rule.
        var hasherInput: [UInt8] = [1]
        hasherInput += Array("N123".utf8) + Array("N456".utf8)
        #expect(hasherInput.withUnsafeBytes { sha256($0) }.hex == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb")
    }

    /// The hot-path SHA-256 (libcrypto through `CTallySHA256`) against swift-crypto's, for every length
    /// across the block boundaries and for split inputs, so the two can never disagree.
    @Test func hotPathDigestsEqualSwiftCrypto() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for length in 0...bytes.count {
            let input = Array(bytes.prefix(length))
            let reference = Array(SHA256.hash(data: input))
            #expect(input.withUnsafeBytes { sha256($0) }.bytes == reference, "length \(length)")
            let cut1 = length / 3, cut2 = 2 * length / 3
            let split = input.withUnsafeBytes { raw in
                sha256(UnsafeRawBufferPointer(rebasing: raw[0..<cut1]), UnsafeRawBufferPointer(rebasing: raw[cut1..<cut2]),
                       UnsafeRawBufferPointer(rebasing: raw[cut2...]))
            }
            #expect(split.bytes == reference, "length \(length) in three parts")
        }
        let left = MerkleHash.leaf(Array("left".utf8)), right = MerkleHash.leaf(Array("right".utf8))
        #expect(MerkleHash.node(left, right).bytes == Array(SHA256.hash(data: [1] + left.bytes + right.bytes)))
        #expect(MerkleHash.leaf(Array("x".utf8)).bytes == Array(SHA256.hash(data: [0] + Array("x".utf8))))
    }

    @Test func rootsOfTheStandardSet() throws {
        let expected = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
                        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
                        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
                        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
                        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
        let leaves = standardLeafData.map { MerkleHash.leaf($0) }
        var frontier = MerkleFrontier()
        for (index, leaf) in leaves.enumerated() {
            frontier.append(leaf: leaf) { _, _, _ in }
            #expect(frontier.root.hex == expected[index])
            #expect(try Merkle.root(size: UInt64(index + 1), source: MemoryLeaves(leaves: leaves)).hex == expected[index])
        }
    }

    @Test func frontierReportsEveryCompletedSubtree() throws {
        let leaves = (0..<37).map { MerkleHash.leaf([UInt8($0)]) }
        var frontier = MerkleFrontier()
        var completed: [String: Hash] = [:]
        for leaf in leaves { frontier.append(leaf: leaf) { level, index, hash in completed["\(level)/\(index)"] = hash } }
        let source = MemoryLeaves(leaves: leaves)
        #expect(completed.count == 18 + 9 + 4 + 2 + 1)
        for (key, hash) in completed {
            let parts = key.split(separator: "/").map { Int($0)! }
            #expect(try source.perfectSubtreeHash(level: parts[0], index: UInt64(parts[1])) == hash)
        }
        #expect(MerkleFrontier(size: frontier.size, subtreeHashes: frontier.subtrees.map(\.hash)) == frontier)
        #expect(MerkleFrontier(size: 5, subtreeHashes: [leaves[0]]) == nil)
    }

    @Test func rfcSevenLeafExample() throws {
        // RFC 9162 §2.1.5: a…f, j are leaves 0…6; g = (a,b), h = (c,d), i = (e,f), k = (g,h), l = (i,j).
        let leaf = (0..<7).map { MerkleHash.leaf([UInt8($0)]) }
        let (a, b, c, d, e, f, j) = (leaf[0], leaf[1], leaf[2], leaf[3], leaf[4], leaf[5], leaf[6])
        let g = MerkleHash.node(a, b), h = MerkleHash.node(c, d), i = MerkleHash.node(e, f)
        let k = MerkleHash.node(g, h), l = MerkleHash.node(i, j)
        let source = MemoryLeaves(leaves: leaf)
        #expect(try Merkle.inclusionPath(leafIndex: 0, treeSize: 7, source: source) == [b, h, l])
        #expect(try Merkle.inclusionPath(leafIndex: 3, treeSize: 7, source: source) == [c, g, l])
        #expect(try Merkle.inclusionPath(leafIndex: 4, treeSize: 7, source: source) == [f, j, k])
        #expect(try Merkle.inclusionPath(leafIndex: 6, treeSize: 7, source: source) == [i, k])
        #expect(try Merkle.consistencyPath(from: 3, to: 7, source: source) == [c, d, g, l])
        #expect(try Merkle.consistencyPath(from: 4, to: 7, source: source) == [l])
        #expect(try Merkle.consistencyPath(from: 6, to: 7, source: source) == [i, j, k])
    }
}

@Suite struct MerklePropertyTests {
    static let leaves = (0..<70).map { MerkleHash.leaf(Array("leaf \($0)".utf8)) }

    @Test func everyInclusionProofVerifiesAndEveryCorruptionFails() throws {
        let source = MemoryLeaves(leaves: Self.leaves)
        for size in 1...UInt64(Self.leaves.count) {
            let root = referenceRoot(Self.leaves[0..<Int(size)])
            #expect(try Merkle.root(size: size, source: source) == root)
            for index in 0..<size {
                let leafHash = Self.leaves[Int(index)]
                let path = try Merkle.inclusionPath(leafIndex: index, treeSize: size, source: source)
                #expect(path.count == Merkle.inclusionPathLength(leafIndex: index, treeSize: size))
                #expect(throws: Never.self) { try Merkle.verifyInclusion(leafIndex: index, treeSize: size, leafHash: leafHash, path: path, root: root) }
                // Index moved by one.
                for moved in [index &- 1, index + 1] where moved < size && moved != index {
                    #expect(throws: ProofFailure.self) { try Merkle.verifyInclusion(leafIndex: moved, treeSize: size, leafHash: leafHash, path: path, root: root) }
                }
                // Size doubled or halved. (Size ± 1 may legitimately verify: for leaf 0 of sizes 6 and 7
                // the path and root computation are the same.)
                for other in [size * 2, size / 2] where other != size && index < other && other > 0 {
                    #expect(throws: ProofFailure.self) { try Merkle.verifyInclusion(leafIndex: index, treeSize: other, leafHash: leafHash, path: path, root: root) }
                }
                // Every bit of every proof hash flipped must fail (counted, then checked once: fast).
                var acceptedCorruptions = 0
                for element in path.indices {
                    for bit in [0, 7, 37, 64, 101, 128, 200, 255] {
                        var corrupted = path
                        corrupted[element] = flip(corrupted[element], bit: bit)
                        if (try? Merkle.verifyInclusion(leafIndex: index, treeSize: size, leafHash: leafHash, path: corrupted, root: root)) != nil {
                            acceptedCorruptions += 1
                        }
                    }
                }
                #expect(acceptedCorruptions == 0, "size \(size), index \(index)")
                #expect(throws: ProofFailure.self) { try Merkle.verifyInclusion(leafIndex: index, treeSize: size, leafHash: flip(leafHash, bit: 3), path: path, root: root) }
                #expect(throws: ProofFailure.self) { try Merkle.verifyInclusion(leafIndex: index, treeSize: size, leafHash: leafHash, path: path + [root], root: root) }
                if !path.isEmpty {
                    #expect(throws: ProofFailure.self) { try Merkle.verifyInclusion(leafIndex: index, treeSize: size, leafHash: leafHash, path: Array(path.dropLast()), root: root) }
                }
            }
        }
    }

    @Test func everyConsistencyProofVerifiesAndEveryCorruptionFails() throws {
        let source = MemoryLeaves(leaves: Self.leaves)
        let roots = (0...Self.leaves.count).map { referenceRoot(Self.leaves[0..<$0]) }
        for second in 1...UInt64(Self.leaves.count) {
            for first in 1...second {
                let path = try Merkle.consistencyPath(from: first, to: second, source: source)
                let (firstRoot, secondRoot) = (roots[Int(first)], roots[Int(second)])
                #expect(throws: Never.self) { try Merkle.verifyConsistency(first: first, second: second, path: path, firstRoot: firstRoot, secondRoot: secondRoot) }
                if first == second { #expect(path.isEmpty); continue }
                for element in path.indices {
                    for bit in [0, 100, 255] {
                        var corrupted = path
                        corrupted[element] = flip(corrupted[element], bit: bit)
                        #expect(throws: ProofFailure.self) { try Merkle.verifyConsistency(first: first, second: second, path: corrupted, firstRoot: firstRoot, secondRoot: secondRoot) }
                    }
                }
                for (otherFirst, otherSecond) in [(first * 2, second), (first / 2, second), (first, second * 2), (first, second / 2)]
                where (otherFirst, otherSecond) != (first, second) && otherFirst <= otherSecond && otherFirst > 0 {
                    #expect(throws: ProofFailure.self) { try Merkle.verifyConsistency(first: otherFirst, second: otherSecond, path: path, firstRoot: firstRoot, secondRoot: secondRoot) }
                }
                #expect(throws: ProofFailure.self) { try Merkle.verifyConsistency(first: first, second: second, path: path, firstRoot: secondRoot, secondRoot: firstRoot) }
                #expect(throws: ProofFailure.self) { try Merkle.verifyConsistency(first: first, second: second, path: path + [firstRoot], firstRoot: firstRoot, secondRoot: secondRoot) }
            }
        }
    }

    func flip(_ hash: Hash, bit: Int) -> Hash {
        var bytes = hash.bytes
        bytes[bit / 8] ^= 1 << UInt8(bit % 8)
        return Hash(bytes: bytes)!
    }
}

/// The transparency-dev/merkle vectors (Tests/TallyMerkleTests/Fixtures/rfc9162, with their licence).
@Suite struct RFC9162VectorTests {
    struct InclusionVector: Decodable { let leafIdx: UInt64; let treeSize: UInt64; let root: String?; let leafHash: String?; let proof: [String]?; let desc: String; let wantErr: Bool }
    struct ConsistencyVector: Decodable { let size1: UInt64; let size2: UInt64; let root1: String?; let root2: String?; let proof: [String]?; let desc: String; let wantErr: Bool }

    /// The one vector that encodes a policy rather than the RFC: it expects equal sizes of one with
    /// placeholder roots that are not 32-byte hashes to verify. Tally rejects any root that is not a
    /// 32-byte hash, so it expects an error there.
    static let policyDifferences: Set<String> = ["consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"]

    static func files(_ kind: String) -> [URL] {
        let root = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/rfc9162/\(kind)")
        let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)!
        return enumerator.compactMap { $0 as? URL }.filter { $0.pathExtension == "json" }.sorted { $0.path < $1.path }
    }

    static func hash(_ base64: String?) -> Hash? { base64.flatMap { Data(base64Encoded: $0) }.flatMap { Hash(bytes: $0) } }
    static func name(_ url: URL) -> String { url.pathComponents.suffix(3).joined(separator: "/") }

    @Test func inclusionVectors() throws {
        let files = Self.files("inclusion")
        #expect(files.count == 98)
        for file in files {
            let vector = try JSONDecoder().decode(InclusionVector.self, from: Data(contentsOf: file))
            var verified = false
            if let root = Self.hash(vector.root), let leaf = Self.hash(vector.leafHash) {
                let path = (vector.proof ?? []).map(Self.hash)
                if !path.contains(where: { $0 == nil }) {
                    verified = (try? Merkle.verifyInclusion(leafIndex: vector.leafIdx, treeSize: vector.treeSize, leafHash: leaf, path: path.map { $0! }, root: root)) != nil
                }
            }
            #expect(verified == !vector.wantErr, "\(Self.name(file)): \(vector.desc)")
        }
    }

    @Test func consistencyVectors() throws {
        let files = Self.files("consistency")
        #expect(files.count == 98)
        for file in files {
            let vector = try JSONDecoder().decode(ConsistencyVector.self, from: Data(contentsOf: file))
            var verified = false
            if let first = Self.hash(vector.root1), let second = Self.hash(vector.root2) {
                let path = (vector.proof ?? []).map(Self.hash)
                if !path.contains(where: { $0 == nil }) {
                    verified = (try? Merkle.verifyConsistency(first: vector.size1, second: vector.size2, path: path.map { $0! }, firstRoot: first, secondRoot: second)) != nil
                }
            }
            let expected = Self.policyDifferences.contains(Self.name(file)) ? false : !vector.wantErr
            #expect(verified == expected, "\(Self.name(file)): \(vector.desc)")
        }
    }
}
