import ArgumentParser
import Foundation
import Synchronization
import TallyDomain
import TallyLog

/// The `tally` command. Each subcommand is one file; each only parses, calls the library and prints.
public struct Tally: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "An event-sourced ledger: an append-only, hash-chained event log in LMDB.",
        discussion: """
            Every command works on one store: --store PATH, else $TALLY_STORE, else ./tally-data.

            Example:
              tally init
              echo '{"id":"00000000-0000-4000-8000-000000000001","actor":"admin:ana","command":{"issueVoucher":{"voucherID":"1","amount":{"minor":500,"currency":"USD"},"buyerEmail":"kim@example.org"}}}' | tally exec
              tally append --stream ticket-1 --type TicketScanned --data '{"gate":"north"}'
              tally read --stream voucher-1
            """,
        subcommands: [Init.self, Append.self, Read.self, Follow.self, Info.self, Verify.self, Exec.self, Demo.self, Projections.self, Report.self, Audit.self, Forget.self, Backup.self, Upgrade.self]
    )

    public init() {}

    /// Runs the command line, then exits 1 if a write to standard output failed on the way (see
    /// `print`): output cut short, by a full disk under a redirection, must not end as a success.
    public static func mainCheckingOutput() {
        main()
        if let failure = standardOutputFailure.withLock({ $0 }) {
            printError(failure)
            Foundation.exit(1)
        }
    }
}

/// The first failed write of `print`, if any.
let standardOutputFailure = Mutex<String?>(nil)

/// `print` for this module: straight to standard output, in order with `OutputBuffer`'s lines, not
/// through stdio's buffer, whose failed writes Swift's `print` drops. A failure is kept for
/// `Tally.mainCheckingOutput`, which exits 1 with it.
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    let text = items.map { "\($0)" }.joined(separator: separator) + terminator
    do {
        try writeStandardOutput(text)
    } catch {
        standardOutputFailure.withLock { $0 = $0 ?? "\(error)" }
    }
}

/// Where the store is. Shared by every subcommand.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The store directory (default: $TALLY_STORE, else ./tally-data).", valueName: "path"))
    var store: String?

    var path: String {
        if let store { return store }
        if let environment = ProcessInfo.processInfo.environment["TALLY_STORE"], !environment.isEmpty { return environment }
        return "./tally-data"
    }

    /// The store's vault of personal-data keys (`<store>/keys`).
    var vault: FileKeyVault { FileKeyVault(store: path) }

    func open(readOnly: Bool = false) throws -> EventLog {
        var options = LogOptions()
        options.readOnly = readOnly
        return try EventLog.open(at: path, options: options)
    }
}

/// A failure the CLI reports as `error: …` with a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Standard output, written in large chunks: reads print millions of lines. A write that fails (a full
/// disk under a redirected output) throws, so the command exits non-zero instead of leaving a file cut
/// short behind a success; `flush` at the end of a command, before it reports success.
final class OutputBuffer {
    private var writer = JSONWriter(capacity: 1 << 16)
    func line(_ text: String) throws {
        try line { $0.raw(text.utf8) }
    }
    /// One line that `write` writes.
    func line(_ write: (inout JSONWriter) -> Void) throws {
        write(&writer)
        writer.bytes.append(UInt8(ascii: "\n"))
        if writer.bytes.count >= 1 << 16 { try flush() }
    }
    func flush() throws {
        guard !writer.bytes.isEmpty else { return }
        defer { writer.bytes.removeAll(keepingCapacity: true) }
        try writer.bytes.withUnsafeBytes { try writeStandardOutput($0) }
    }
    /// What is left, when a command ends by an error: the error is what it reports.
    deinit { try? flush() }
}

/// Writes `bytes` to standard output whole, or throws saying why.
func writeStandardOutput(_ bytes: UnsafeRawBufferPointer) throws {
    var offset = 0
    while offset < bytes.count {
        let written = Foundation.write(1, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            throw CLIError("cannot write to standard output: \(String(cString: strerror(errno)))")
        }
        offset += written
    }
}

func writeStandardOutput(_ text: String) throws {
    var text = text
    try text.withUTF8 { try writeStandardOutput(UnsafeRawBufferPointer($0)) }
}

/// Writes to standard error, best effort: a failure there has nowhere left to be told (Foundation's
/// `FileHandle.write(_:)` stops the process instead).
func writeStandardError(_ text: String) {
    try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
}

/// Standard input's lines as bytes, without their line break ("\n" or "\r\n"). Taken as they are, so
/// a byte that is not UTF-8 is named where it stands: `readLine` would have put U+FFFD in its place
/// and the event would have recorded something other than what was sent.
struct InputLines {
    /// A line may hold an event of the largest payload (1 MiB) written with every byte escaped, and
    /// more; past this it is refused before it fills the memory.
    static let lineBytesMax = 16 << 20

    private var buffer: [UInt8] = []
    /// Lines handed out so far.
    private var number = 0
    /// Where the next line starts, and how far a line break has been looked for.
    private var start = 0
    private var searched = 0
    private var atEnd = false

    /// The next line; nil at the end of the input. A read error is thrown, never taken for the end.
    mutating func next() throws -> [UInt8]? {
        while true {
            if let newline = buffer[searched...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Self.withoutCarriageReturn(buffer[start..<newline])
                start = newline + 1
                searched = start
                number += 1
                return line
            }
            searched = buffer.count
            guard buffer.count - start <= Self.lineBytesMax else {
                throw CLIError("line \(number + 1) is longer than \(Self.lineBytesMax >> 20) MiB without a line break: "
                               + "give one JSON value per line (an event's payload is at most \(Limits.payloadBytesMax >> 20) MiB)")
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = Self.withoutCarriageReturn(buffer[start...])
                start = buffer.count
                number += 1
                return line
            }
            buffer.removeFirst(start)
            searched -= start
            start = 0
            let count = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: 1 << 16))
            let read = buffer.withUnsafeMutableBytes { Foundation.read(0, $0.baseAddress! + count, 1 << 16) }
            if read < 0 && errno == EINTR { buffer.removeLast(1 << 16); continue }
            guard read >= 0 else {
                let reason = String(cString: strerror(errno))
                throw CLIError("could not read standard input: \(reason)")
            }
            buffer.removeLast((1 << 16) - read)
            if read == 0 { atEnd = true }
        }
    }

    /// Whether the next line is already read, so `next()` will not wait for more input: a caller that
    /// gathers lines acts on what it has before it would block (a client may wait for each answer).
    var hasBufferedLine: Bool {
        buffer[searched...].contains(UInt8(ascii: "\n")) || (atEnd && start < buffer.count)
    }

    private static func withoutCarriageReturn(_ line: ArraySlice<UInt8>) -> [UInt8] {
        line.last == UInt8(ascii: "\r") ? Array(line.dropLast()) : Array(line)
    }

    /// Whether `line` holds nothing but spaces and tabs: skipped, as blank lines.
    static func isBlank(_ line: [UInt8]) -> Bool {
        line.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }
    }
}

func printError(_ message: String) {
    writeStandardError("error: " + message + "\n")
}
