// A child process for the log's crash-safety and cross-process tests. Not a user tool.
//
//   tally-test-helper append-loop STORE SEED      append random batches forever, printing "ack FIRST LAST BATCH" per durable append
//   tally-test-helper append STORE COUNT PREFIX [MAP_BYTES]   append COUNT one-event batches to streams PREFIX-0…PREFIX-9
//   tally-test-helper follow STORE COUNT          print "event POSITION STREAM" for the first COUNT events, following new ones
//   tally-test-helper disk-full STORE             append under a file size limit until a commit fails, then lift it and append on,
//                                                 printing "ack FIRST LAST VERSION", "refused ERROR" and "done"
import Foundation
import TallyLog

/// Unbuffered: a line is out of the process the moment it is written, before any kill.
func emit(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
let arguments = CommandLine.arguments
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}
guard arguments.count >= 3 else { fail("usage: tally-test-helper append-loop|append|follow STORE …") }
let store = arguments[2]

do {
    switch arguments[1] {
    case "append-loop":
        var random = SplitMix64(seed: UInt64(arguments[3]) ?? 1)
        // A small index tail, so merges happen (and get killed) during the crash test.
        var options = LogOptions()
        options.indexTailEventsMax = 97
        let log = try EventLog.open(at: store, options: options)
        let ids = EventIDGenerator(seed: random.next())
        var batch: UInt64 = 0
        while true {
            batch += 1
            let count = Int(random.next() % 20) + 1
            let events = (0..<count).map { index in
                ProposedEvent(id: ids.next(), stream: "s-\(random.next() % 50)", type: "Tick",
                              payload: Data("{\"batch\":\(batch),\"index\":\(index),\"of\":\(count)}".utf8))
            }
            let result = try log.append(AppendRequest(events: events))
            emit("ack \(result.positions.first!) \(result.positions.last!) \(batch) \(count)")
        }
    case "append":
        var options = LogOptions()
        if arguments.count > 5, let bytes = Int(arguments[5]) { options.mapSizeInitialBytes = bytes }
        let log = try EventLog.open(at: store, options: options)
        let count = Int(arguments[3])!
        let prefix = arguments[4]
        let payload = Data(String(repeating: "x", count: 2000).utf8)
        for index in 0..<count {
            try log.append(AppendRequest(events: [ProposedEvent(id: UUID(), stream: "\(prefix)-\(index % 10)", type: "Tick", payload: payload)]))
        }
        log.close()
        emit("done")
    case "follow":
        let log = try EventLog.open(at: store, options: { var o = LogOptions(); o.readOnly = true; return o }())
        let count = Int(arguments[3])!
        var seen = 0
        try log.follow(ReadQuery()) { event in
            emit("event \(event.position) \(event.stream)")
            seen += 1
            return seen < count
        }
    case "disk-full":
        // The data file may not grow past a limit set just above its size, as on a full disk: each
        // commit that needs a page past it fails (EFBIG, SIGXFSZ ignored). Then the limit is lifted and
        // the same process appends on, each batch expecting the version the last acknowledged one left.
        // Small tails, so merges fall among the refused commits.
        var options = LogOptions()
        options.indexTailEventsMax = 64
        let log = try EventLog.open(at: store, options: options)
        signal(SIGXFSZ, SIG_IGN)
        let dataFile = store + "/log/data.mdb"
        var version: UInt64 = try log.withSnapshot { try $0.version(of: "account") }
        var batch = 0
        func appendOne() throws {
            batch += 1
            var events = [ProposedEvent(id: UUID(), stream: "account", type: "Posted", payload: Data("{\"batch\":\(batch)}".utf8))]
            // Fillers: the file grows a few pages a batch, new streams and old ones.
            events += (0..<12).map { index in
                ProposedEvent(id: UUID(), stream: "fill-\((batch * 12 + index) % 40)", type: "Filler", payload: Data(count: 900))
            }
            let result = try log.append(AppendRequest(events: events, expectations: ["account": .exact(version)]))
            version += 1
            emit("ack \(result.positions.first!) \(result.positions.last!) \(version)")
        }
        let size = try FileManager.default.attributesOfItem(atPath: dataFile)[.size] as! UInt64
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit)
        let lifted = limit
        limit.rlim_cur = rlim_t(size + (256 << 10))
        setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit)
        var refusals = 0
        while refusals < 3 && batch < 10_000 {
            do { try appendOne() } catch {
                refusals += 1
                emit("refused \(error)")
            }
        }
        limit = lifted
        setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit)
        for _ in 0..<200 { try appendOne() }
        log.close()
        emit("done")
    default:
        fail("unknown command \(arguments[1])")
    }
} catch {
    fail("error: \(error)")
}
