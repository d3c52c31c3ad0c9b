import ArgumentParser
import Foundation
import TallyLog

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the whole store: hash chain, Merkle tree and every index.",
        discussion: """
            Recomputes every record's chain hash and Merkle leaf, compares them with the stored ones and
            the head, and checks each index entry against the log. Exits 1 and names the first bad
            position if anything is wrong.

            Example:
              tally verify
              tally verify --quick    # chain and Merkle tree only
            """)

    @OptionGroup var store: StoreOptions
    @Flag(help: "Check the chain and the Merkle tree only, not the indexes.") var quick = false

    func run() throws {
        let log = try store.open(readOnly: true)
        let progress = ProgressBar(label: "verify")
        let report = try log.verify(checkIndexes: !quick) { done, total in progress.update(done: done, total: total) }
        progress.finish()
        if let problem = report.problem {
            printError("verify failed at \(problem)")
            throw ExitCode(1)
        }
        print("ok: \(report.eventsChecked) events, chain hash \(report.head.chainHash.hex), merkle root \(report.head.merkleRoot.hex)")
    }
}

/// A one-line progress bar on standard error, shown only on a terminal.
final class ProgressBar {
    private let label: String
    private let enabled = isatty(2) == 1
    private let start = DispatchTime.now()
    private var lastDraw = DispatchTime.now()

    init(label: String) { self.label = label }

    func update(done: UInt64, total: UInt64) {
        guard enabled else { return }
        let now = DispatchTime.now()
        guard now.uptimeNanoseconds - lastDraw.uptimeNanoseconds > 100_000_000 || done == total else { return }
        lastDraw = now
        let elapsed = Double(now.uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let fraction = total == 0 ? 1 : Double(done) / Double(total)
        let width = 30
        let filled = Int(fraction * Double(width))
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let line = String(format: "\r%@ %@ %3.0f%%  %llu/%llu  %.0f/s  ETA %.0fs ", label, bar, fraction * 100, done, total, rate, eta)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
