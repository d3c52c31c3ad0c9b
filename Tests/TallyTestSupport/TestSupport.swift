import Foundation

/// Every path a test makes lives under one directory per test process, removed when the process exits,
/// so a test leaves nothing behind even when it fails.
public let testRoot: String = {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("tally-tests-\(getpid())").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: FileManager.default.temporaryDirectory.appendingPathComponent("tally-tests-\(getpid())").path) }
    return path
}()

/// A new path under `testRoot` (not created).
public func testPath(_ name: String) -> String { testRoot + "/\(name)-\(UUID().uuidString)" }

/// The executable `name` that SwiftPM built beside the tests, or nil.
public func productPath(_ name: String) -> String? {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
        Bundle.main.bundleURL.deletingLastPathComponent(),
        Bundle.main.bundleURL,
    ]
    return candidates.map { $0.appendingPathComponent(name).path }.first { FileManager.default.isExecutableFile(atPath: $0) }
}
