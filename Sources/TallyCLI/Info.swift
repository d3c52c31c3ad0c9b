import ArgumentParser
import Foundation
import TallyLog

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the store's head: positions, hashes, counts and sizes, and its event types.",
        discussion: """
            Example:
              tally info
              tally info --json | jq .merkleRoot
            """)

    @OptionGroup var store: StoreOptions
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let log = try store.open(readOnly: true)
        let head = try log.head()
        let storage = try log.storageInfo()
        let storeID = try log.storeID().uuidString.lowercased()
        let lastRecorded = head.position == 0 ? "" : head.lastRecordedAt.iso8601
        let types = try log.withSnapshot { try $0.eventTypeCounts() }
        if json {
            let typesJSON = types.map { "\(EventJSON.quote($0.type)):\($0.events)" }.joined(separator: ",")
            print("{\"store\":\(EventJSON.quote(store.path)),\"storeId\":\"\(storeID)\",\"format\":\(EventLog.formatVersion),"
                  + "\"lastPosition\":\(head.position),\"events\":\(head.eventCount),\"streams\":\(head.streamCount),"
                  + "\"lastRecordedAt\":\"\(lastRecorded)\",\"chainHash\":\"\(head.chainHash.hex)\",\"merkleRoot\":\"\(head.merkleRoot.hex)\","
                  + "\"usedBytes\":\(storage.usedBytes),\"mapBytes\":\(storage.mapSizeBytes),\"eventTypes\":{\(typesJSON)}}")
        } else {
            print("""
                store          \(store.path)
                store id       \(storeID)
                format         \(EventLog.formatVersion)
                last position  \(head.position)
                events         \(head.eventCount)
                streams        \(head.streamCount)
                last recorded  \(lastRecorded.isEmpty ? "-" : lastRecorded)
                chain hash     \(head.chainHash.hex)
                merkle root    \(head.merkleRoot.hex)
                used bytes     \(storage.usedBytes) (map \(storage.mapSizeBytes))
                """)
            if !types.isEmpty {
                let width = types.map(\.type.count).max()!
                print("event types    \(types.count)")
                for (type, events) in types { print("  \(type.padding(toLength: width, withPad: " ", startingAt: 0))  \(events)") }
            }
        }
    }
}
