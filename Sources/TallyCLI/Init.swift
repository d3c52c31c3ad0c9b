import ArgumentParser
import TallyLog

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new, empty store.",
        discussion: """
            Creates the store directory with an empty log. Refuses a directory that already holds a store.

            Example:
              tally init --store /var/lib/tally/fair
            """)

    @OptionGroup var store: StoreOptions

    func run() throws {
        let log = try EventLog.create(at: store.path)
        defer { log.close() }
        print("created a Tally store at \(store.path) (store id \(try log.storeID().uuidString.lowercased()))")
    }
}
