import ArgumentParser
import Foundation
import TallyAudit
import TallyLog

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the store, while it is in use, into a new directory that is itself a store.",
        discussion: """
            The log is copied as one consistent snapshot while appends go on (later ones are not in the \
            copy), compacted and synced. The audit trail (signed checkpoints, origin, verifier key) is \
            copied first, so every checkpoint in the copy is within its log, and the copy is then checked \
            against its latest checkpoint from its own bytes. Read models are not copied: `tally \
            projections rebuild` makes them from the log, with the events an admin set aside for them \
            (projections/set-aside.json, copied). The directory appears whole or not at all.

            Personal-data keys (<store>/keys) are copied only with --with-keys. Keep them apart from the \
            log and as private as the data they protect: without them the copy's personal values read \
            as erased; with them, a key that `tally forget` destroys later stays in this copy until the \
            copy is deleted.

            To restore, use the copy as the store (or move it into place) and check it:
              tally verify --store /backups/fair-2026-12-01

            Example:
              tally backup --out /backups/fair-2026-12-01
              tally backup --out /backups/fair-2026-12-01-keys --with-keys
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: ArgumentHelp("The new directory to write the copy to (it must not exist).", valueName: "path")) var out: String
    @Flag(help: "Copy the personal-data keys too (see above).") var withKeys = false

    func validate() throws {
        guard !out.isEmpty else { throw ValidationError("--out needs a directory to write the copy to") }
    }

    func run() throws {
        let manager = FileManager.default
        // "/backups/monday/" names the same directory as "/backups/monday": the copy is built beside it.
        let out = (self.out as NSString).standardizingPath
        if manager.fileExists(atPath: out) { throw CLIError("\(out) already exists: a backup goes to a new directory") }
        let log = try store.open(readOnly: true)
        let partial = out + ".partial-" + UUID().uuidString.prefix(8).lowercased()
        do {
            do {
                try manager.createDirectory(atPath: partial, withIntermediateDirectories: true)
            } catch {
                throw CLIError("cannot create \(partial): \(error.localizedDescription)")
            }
            let audit = store.path + "/audit"
            if manager.fileExists(atPath: audit) { _ = try copyTree(audit, to: partial + "/audit") }
            // Rebuilding the read models from the copy needs the events an admin set aside (not the read models).
            let setAside = store.path + "/projections/set-aside.json"
            var copiedSetAside = false
            if let decisions = manager.contents(atPath: setAside) {
                try manager.createDirectory(atPath: partial + "/projections", withIntermediateDirectories: true)
                guard manager.createFile(atPath: partial + "/projections/set-aside.json", contents: decisions) else {
                    throw CLIError("cannot write \(partial)/projections/set-aside.json")
                }
                try syncFile(partial + "/projections/set-aside.json")
                try syncFile(partial + "/projections")
                copiedSetAside = true
            }
            let head = try log.backup(into: partial)
            var keys = 0
            let keyDirectory = store.vault.directory
            if withKeys, manager.fileExists(atPath: keyDirectory) { keys = try copyTree(keyDirectory, to: partial + "/keys") }

            var options = LogOptions()
            options.readOnly = true
            let copy = try EventLog.open(at: partial, options: options)
            let trail = AuditTrail(log: copy)
            let history = try trail.history()
            if let latest = history.last { try trail.check(against: latest.checkpoint) }
            copy.close()
            try syncFile(partial)
            guard rename(partial, out) == 0 else { throw CLIError("cannot move the backup to \(out): \(String(cString: strerror(errno)))") }
            try syncFile((out as NSString).deletingLastPathComponent.isEmpty ? "." : (out as NSString).deletingLastPathComponent)

            let bytes = (try? manager.attributesOfItem(atPath: out + "/log/data.mdb")[.size] as? Int) ?? 0
            print("ok: backup of \(head.position) events in \(out) (\(bytes / 1_000_000) MB, compacted); chain hash \(head.chainHash.hex), merkle root \(head.merkleRoot.hex)")
            print(history.last.map { "ok: signed checkpoints copied: \(history.count); the copy matches the latest (\($0.checkpoint.size) events)" }
                ?? "note: the store has no signed checkpoint (`tally audit checkpoint`), so none was copied")
            if withKeys {
                print("note: personal-data key files copied: \(keys); keep this copy as private as the data, and delete it when its keys must be gone")
            } else {
                print("note: personal-data keys not copied (--with-keys): back up \(keyDirectory) separately")
            }
            print("note: read models are not copied; `tally projections rebuild --store \(out)` makes them from the log"
                  + (copiedSetAside ? " (the events set aside for them are copied: projections/set-aside.json)" : ""))
        } catch {
            try? manager.removeItem(atPath: partial)
            throw error
        }
    }

    /// Copies the regular files under `source` (not temporary ones being written: `*.tmp-*`) to
    /// `destination`, syncing every file and directory. Returns how many files were copied.
    func copyTree(_ source: String, to destination: String) throws -> Int {
        let manager = FileManager.default
        // Directories keep their permissions (the keys' directory is owner-only); files keep theirs in the copy.
        func permissions(_ path: String) -> [FileAttributeKey: Any] {
            (try? manager.attributesOfItem(atPath: path)[.posixPermissions]).map { [.posixPermissions: $0 as Any] } ?? [:]
        }
        try manager.createDirectory(atPath: destination, withIntermediateDirectories: true, attributes: permissions(source))
        var copied = 0
        var directories = [destination]
        guard let names = manager.enumerator(atPath: source) else { throw CLIError("cannot read \(source)") }
        while let name = names.nextObject() as? String {
            let from = source + "/" + name, to = destination + "/" + name
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: from, isDirectory: &isDirectory) else { continue }  // removed meanwhile
            if isDirectory.boolValue {
                try manager.createDirectory(atPath: to, withIntermediateDirectories: true, attributes: permissions(from))
                directories.append(to)
            } else if !(name as NSString).lastPathComponent.contains(".tmp-") {
                try manager.copyItem(atPath: from, toPath: to)
                try syncFile(to)
                copied += 1
            }
        }
        for directory in directories.reversed() { try syncFile(directory) }
        return copied
    }
}
