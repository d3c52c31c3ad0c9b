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

/// Runs the real `tally` binary, as a user would.
public struct TallyRun {
    public let status: Int32
    public let output: String
    public let error: String
    public init(status: Int32, output: String, error: String) {
        self.status = status
        self.output = output
        self.error = error
    }

    public var lines: [String] { output.split(separator: "\n").map(String.init) }
}

/// The `tally` executable SwiftPM built beside the tests ("tally" on the PATH if not found, so the
/// failure names it).
public func tallyPath() -> String { productPath("tally") ?? "tally" }

@discardableResult
public func tally(_ arguments: [String], store: String?, input: String? = nil, environment: [String: String] = [:]) throws -> TallyRun {
    try tally(arguments, store: store, bytes: input.map { Data($0.utf8) }, environment: environment)
}

/// `tally` given `bytes` on standard input, which need not be UTF-8; its standard output goes to
/// `standardOutput` if given (`output` is then empty), else it is captured.
public func tally(_ arguments: [String], store: String?, bytes input: Data?, environment: [String: String] = [:],
                  standardOutput: FileHandle? = nil) throws -> TallyRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tallyPath())
    process.arguments = arguments + (store.map { ["--store", $0] } ?? [])
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "TALLY_STORE")
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let (output, error, stdin) = (Pipe(), Pipe(), Pipe())
    process.standardOutput = standardOutput ?? output
    process.standardError = error
    process.standardInput = stdin
    try process.run()
    if standardOutput != nil { try output.fileHandleForWriting.close() }
    if let input { stdin.fileHandleForWriting.write(input) }
    try stdin.fileHandleForWriting.close()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let err = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return TallyRun(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self), error: String(decoding: err, as: UTF8.self))
}

/// Runs the independent Python verifier, `tools/verify-bundle.py`, on an audit bundle, as an auditor would.
public func pythonVerifyBundle(_ bundle: String, key: String? = nil) throws -> TallyRun {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("tools/verify-bundle.py").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script, bundle] + (key.map { ["--key", $0] } ?? [])
    let (output, error) = (Pipe(), Pipe())
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let out = output.fileHandleForReading.readDataToEndOfFile(), err = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return TallyRun(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self), error: String(decoding: err, as: UTF8.self))
}
