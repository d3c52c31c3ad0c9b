// swift-tools-version: 6.1
import PackageDescription

// Dependencies point one way: CLMDB ← TallyLMDB ← TallyLog ← (TallyDomain, TallyAudit) ← projections ← TallyCLI ← tally.
// TallyMerkle is pure hashing and proof code with no storage, so an auditor's verifier can use it alone.
let package = Package(
    name: "Tally",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "TallyLMDB", targets: ["TallyLMDB"]),
        .library(name: "TallyMerkle", targets: ["TallyMerkle"]),
        .library(name: "TallyLog", targets: ["TallyLog"]),
        .library(name: "TallyDomain", targets: ["TallyDomain"]),
        .executable(name: "tally", targets: ["tally"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLMDB",
            path: "Sources/CLMDB",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .target(name: "TallyLMDB", dependencies: ["CLMDB"]),
        // SHA-256 for the hot paths through libcrypto (libssl-dev): a stack context, no allocation per hash.
        .target(name: "CTallySHA256", linkerSettings: [.linkedLibrary("crypto")]),
        // sqlite3_config (variadic, so not callable from Swift) to turn off SQLite's global memory statistics mutex.
        .target(name: "CTallySQLite", linkerSettings: [.linkedLibrary("sqlite3")]),
        .target(name: "TallyMerkle", dependencies: ["CTallySHA256", .product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "TallyLog",
            dependencies: ["TallyLMDB", "TallyMerkle", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The commerce domain: money, SKUs, pricing, and (growing) the events and rules of the seeds.
        // Pure: its rules are tested without a disk.
        .target(name: "TallyDomain", dependencies: ["TallyLog", .product(name: "Crypto", package: "swift-crypto")]),
        // The audit trail: signed checkpoints (C2SP signed-note, Ed25519), proof files, the offline
        // bundle, replayed business invariants.
        .target(name: "TallyAudit", dependencies: ["TallyLog", "TallyMerkle", "TallyDomain", .product(name: "Crypto", package: "swift-crypto")]),
        // The projector runtime: checkpoints, catch-up, follow, versioned rebuilds, time travel.
        .target(name: "TallyProjection", dependencies: ["TallyLog", "TallyDomain", "CTallySQLite", .product(name: "GRDB", package: "GRDB.swift"),
                                                        .product(name: "GRDBSQLite", package: "GRDB.swift")]),
        // One target per projector module and its read model.
        .target(name: "SalesLogProjection", dependencies: ["TallyProjection", "TallyDomain", "TallyLog", .product(name: "OrderedCollections", package: "swift-collections")],
                path: "Projections/SalesLog"),
        .target(name: "MemberActivityProjection", dependencies: ["TallyProjection", "TallyDomain", "TallyLog", .product(name: "OrderedCollections", package: "swift-collections")],
                path: "Projections/MemberActivity"),
        .target(name: "TransactionsProjection", dependencies: ["TallyProjection", "TallyDomain", "TallyLog"], path: "Projections/Transactions"),
        .target(
            name: "TallyCLI",
            dependencies: ["TallyLog", "TallyDomain", "TallyAudit", "TallyProjection", "SalesLogProjection", "MemberActivityProjection", "TransactionsProjection",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .executableTarget(name: "tally", dependencies: ["TallyCLI", "TallyLog"]),
        .executableTarget(
            name: "tally-bench",
            dependencies: ["TallyLog", "TallyLMDB", "TallyMerkle", "TallyDomain", "TallyAudit", "TallyProjection", "SalesLogProjection",
                           "MemberActivityProjection", "TransactionsProjection", .product(name: "GRDB", package: "GRDB.swift")],
            path: "tools/Benchmarks"
        ),
        .executableTarget(name: "tally-test-helper", dependencies: ["TallyLog"], path: "Tests/Helper"),
        // Helpers shared by the test targets: per-process temporary paths, built products.
        .target(name: "TallyTestSupport", path: "Tests/TallyTestSupport"),
        .testTarget(name: "TallyLMDBTests", dependencies: ["TallyLMDB", "CLMDB", "TallyTestSupport"]),
        .testTarget(name: "TallyMerkleTests", dependencies: ["TallyMerkle", .product(name: "Crypto", package: "swift-crypto")], resources: [.copy("Fixtures")]),
        .testTarget(name: "TallyLogTests", dependencies: ["TallyLog", "tally-test-helper", "TallyTestSupport"]),
        .testTarget(name: "TallyCLITests", dependencies: ["TallyCLI", "tally", "TallyTestSupport"]),
        .testTarget(name: "TallyDomainTests", dependencies: ["TallyDomain", "TallyTestSupport"]),
        .testTarget(name: "TallyAuditTests", dependencies: ["TallyAudit", "TallyLog", "TallyMerkle", "TallyDomain", "TallyTestSupport", "tally"]),
        .testTarget(
            name: "TallyProjectionTests",
            dependencies: ["TallyProjection", "SalesLogProjection", "MemberActivityProjection", "TransactionsProjection", "TallyDomain",
                           "TallyTestSupport", "tally", .product(name: "GRDB", package: "GRDB.swift")]
        ),
    ]
)
