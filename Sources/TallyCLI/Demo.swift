import ArgumentParser
import Foundation
import TallyDomain
import TallyLog

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record a realistic, seeded history of a fair, a web shop and a self-checkout.",
        discussion: """
            Runs thousands of commands through the same rules as `tally exec`: a fair with twelve booths \
            issuing and redeeming vouchers (three booths sometimes race for one voucher: one wins), a web \
            shop whose orders are confirmed against stock, paid (some payments fail, some reuse a \
            transaction id) and shipped or cancelled, and a grocery self-checkout with members, carts, \
            "3 for $1" limes, BOGO chips, beer that needs a staff approval and carries a bottle deposit, a \
            superseded soap SKU, deli codes with their price inside, and prices that change during the day. \
            Then prints what was recorded and what was refused, and verifies the store.

            The same seed gives the same history (the same commands, outcomes and events; personal fields are \
            sealed with fresh keys and nonces, so their bytes and the Merkle root differ). The store must be new. The demo writes with Durability.noSync and syncs once at the end: it is \
            data that can be generated again, so a power cut during it costs nothing.

            Example:
              tally demo --store ./demo-store --events 100000
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: "About how many events to record.") var events = 100_000
    @Option(help: "The seed of the history.") var seed: UInt64 = 2026

    func validate() throws {
        guard (1...100_000_000).contains(events) else { throw ValidationError("--events must be between 1 and 100,000,000") }
    }

    func run() throws {
        let clock = ManualClock(Timestamp(iso8601: "2026-11-20T08:00:00Z")!)
        var options = LogOptions()
        options.durability = .noSync
        options.clock = clock
        let log: EventLog
        if FileManager.default.fileExists(atPath: store.path + "/log/data.mdb") {
            log = try EventLog.open(at: store.path, options: options)
            let existing = try log.head().position
            guard existing == 0 else {
                throw CLIError("the demo writes a fresh history, but \(store.path) already holds \(existing) events: give a new --store")
            }
        } else {
            log = try EventLog.create(at: store.path, options: options)
        }
        // Keys follow the log's durability here: synced once at the end, with the log.
        let vault = FileKeyVault(store: store.path, durable: false)
        var driver = DemoDriver(commerce: CommerceService(log: log, vault: vault), seed: seed, clock: clock)
        let progress = ProgressBar(label: "demo")
        let started = DispatchTime.now()
        try driver.run(untilEvents: UInt64(events)) { appended in
            progress.update(done: min(appended, UInt64(events)), total: UInt64(events))
        }
        let (commands, rejections) = (driver.commands, driver.rejections)
        progress.update(done: UInt64(events), total: UInt64(events))
        progress.finish()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        log.close()
        try vault.syncAll()

        let head = try log.head()
        var byType: [String: Int] = [:]
        try log.withSnapshot { snapshot in
            try snapshot.forEach(ReadQuery()) { record in
                byType[record.type, default: 0] += 1
                return true
            }
        }
        print("Recorded \(head.position) events in \(head.streamCount) streams from \(commands) commands in "
              + String(format: "%.1f s (%.0f events/s), store %@.", seconds, Double(head.position) / max(seconds, 0.001), store.path))
        print("\nEvents by type:")
        for (type, count) in byType.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) {
            print("  " + type.padding(toLength: 26, withPad: " ", startingAt: 0) + String(count).leftPadded(9))
        }
        print("\nCommands refused by the rules (nothing appended for them):")
        for (code, count) in rejections.sorted(by: { ($0.value, $1.key.rawValue) > ($1.value, $0.key.rawValue) }) {
            print("  " + code.rawValue.padding(toLength: 30, withPad: " ", startingAt: 0) + String(count).leftPadded(7))
        }
        let verify = try EventLog.open(at: store.path).verify(checkIndexes: false)
        guard verify.isSound else { throw CLIError("verify failed: \(verify.problem!)") }
        print("\nverify: ok, \(verify.eventsChecked) events, merkle root \(verify.head.merkleRoot.hex)")
        print("Explore it: tally read --store \(store.path) --type VoucherRedeemed --limit 5 | jq .")
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
