import ArgumentParser
import Foundation
import TallyLog

struct Upgrade: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring a store written by an earlier Tally to this build's store format.",
        discussion: """
            Store format 2 (2026-12) keeps every event as it was written, bytes and hashes, and rebuilds \
            the indexes and the stored Merkle nodes in its smaller shape. Every record's hash is checked \
            against its bytes, every stream's versions must run 1, 2, 3…, and the rebuilt tree must give \
            the head. One transaction: the store \
            is upgraded whole or, on any error, left exactly as it was. Stop every process using the \
            store first. A store already in this format is left alone. Read models need no rebuild.

            To keep a copy in the old format, copy the store's directory while every process is stopped \
            (`cp -a`): `tally backup` reads only stores of this build's format.

            Example:
              tally upgrade --store ./booth-data && tally verify --store ./booth-data
            """)

    @OptionGroup var store: StoreOptions

    func run() throws {
        let progress = ProgressBar(label: "upgrade")
        let report = try EventLog.upgrade(at: store.path) { done, total in progress.update(done: done, total: total) }
        progress.finish()
        if report.fromFormat == report.toFormat {
            print("ok: \(store.path) is already store format \(report.toFormat); nothing to do")
        } else {
            print("ok: \(store.path) upgraded from store format \(report.fromFormat) to \(report.toFormat): "
                  + "\(report.events) events and \(report.streams) streams kept, their indexes rebuilt")
        }
    }
}
