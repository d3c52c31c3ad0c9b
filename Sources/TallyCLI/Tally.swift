import ArgumentParser
import Foundation
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

/// Standard output, written in large chunks: reads print millions of lines.
final class OutputBuffer {
    private var writer = JSONWriter(capacity: 1 << 16)
    func line(_ text: String) {
        line { $0.raw(text.utf8) }
    }
    /// One line that `write` writes.
    func line(_ write: (inout JSONWriter) -> Void) {
        write(&writer)
        writer.bytes.append(UInt8(ascii: "\n"))
        if writer.bytes.count >= 1 << 16 { flush() }
    }
    func flush() {
        guard !writer.bytes.isEmpty else { return }
        writer.bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Foundation.write(1, raw.baseAddress! + offset, raw.count - offset)
                if written <= 0 { break }
                offset += written
            }
        }
        writer.bytes.removeAll(keepingCapacity: true)
    }
    deinit { flush() }
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
    FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
}
