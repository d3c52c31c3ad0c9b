// The benchmark: Tally's throughput, latency and memory beside raw LMDB and SQLite, on the same
// generated events, in one run. `tools/bench` builds it in release mode and runs it; BENCHMARKS.md
// explains each scenario and records the latest figures.
//
//   tally-bench [--events N] [--json FILE] [--dir DIR] [--only NAME,NAME] [--smoke]
import Foundation
import Synchronization
import GRDB
import MemberActivityProjection
import SalesLogProjection
import TallyAudit
import TallyDomain
import TallyLMDB
import TallyLog
import TallyMerkle
import TallyProjection
import TransactionsProjection

struct Options {
    var events = 1_000_000
    var jsonPath: String?
    var directory = FileManager.default.temporaryDirectory.appendingPathComponent("tally-bench-\(getpid())").path
    var only: Set<String>?
    var smoke = false
    /// Keep the stores afterwards, for mdb_stat and friends.
    var keep = false
    var seed: UInt64 = 20261122

    init(_ arguments: [String]) {
        var rest = arguments.dropFirst()[...]
        func value(_ flag: String) -> String {
            guard let next = rest.popFirst() else { fail("\(flag) needs a value") }
            return next
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--events": guard let n = Int(value(argument).replacingOccurrences(of: "_", with: "")), n > 0 else { fail("--events takes a positive number") }; events = n
            case "--json": jsonPath = value(argument)
            case "--dir": directory = value(argument)
            case "--only": only = Set(value(argument).split(separator: ",").map(String.init))
            case "--seed": guard let n = UInt64(value(argument)) else { fail("--seed takes a number") }; seed = n
            case "--smoke": smoke = true; events = 3000
            case "--keep": keep = true
            case "--help", "-h":
                print("usage: tally-bench [--events N (default 1000000)] [--json FILE] [--dir DIR] [--only append,pipelined,group,domain,replay,streams,verify,proofs,projections,raw,chain,naive,sqlite] [--smoke]")
                exit(0)
            default: fail("unknown argument \(argument) (try --help)")
            }
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("tally-bench: \(message)\n".utf8))
    exit(2)
}

let options = Options(CommandLine.arguments)
// The allocator as the `tally` executable sets it, before anything allocates in earnest.
let allocator = AllocatorTuning.applyOnce()
try? FileManager.default.removeItem(atPath: options.directory)
try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
let machine = Machine(directory: options.directory, allocator: allocator)
var results: [Figure] = []
func wanted(_ name: String) -> Bool { options.only?.contains(name) ?? true }
func progress(_ text: String) { FileHandle.standardError.write(Data("… \(text)\n".utf8)) }
let batchSize = 1000

// MARK: Tally, batched durable append (the store is kept for the read scenarios)

let rawScenario = "raw LMDB: position → record, MDB_APPEND (the ceiling)"
let rawBeforeScenario = "raw LMDB again, the same events just before Tally's batched append"
// The disk's sync time drifts by tens of percent within minutes on these machines, and the raw LMDB
// baseline runs at the end: the batched append's ratio is also taken against a raw LMDB run of the
// same events made just before it, and the two raw runs show how far the machine moved in between.
if wanted("append") && wanted("raw") {
    let path = try rawLMDBBaseline(rawBeforeScenario, directoryName: "raw-before")
    try? FileManager.default.removeItem(atPath: path)
}

let tallyPath = options.directory + "/tally"
var workload = Workload(seed: options.seed)
var sampleStreams: [String] = []
var appendedEvents = 0
if wanted("append") || wanted("replay") || wanted("streams") || wanted("verify") || wanted("proofs") || wanted("projections") {
    progress("tally: batched durable append of \(options.events) events")
    let log = try EventLog.create(at: tallyPath)
    let probe = MemoryProbe()
    var timed: UInt64 = 0
    var remaining = options.events
    // Each batch's wait, so the percentiles show what a transaction that merges the index tail costs its caller.
    var batchLatencies: [UInt64] = []
    batchLatencies.reserveCapacity(options.events / batchSize + 1)
    while remaining > 0 {
        let batch = workload.batch(min(batchSize, remaining))
        let start = now()
        try log.append(AppendRequest(events: batch))
        let waited = now() - start
        timed += waited
        batchLatencies.append(waited)
        remaining -= batch.count
    }
    let memory = probe.stop()
    let (batchP50, batchP99, batchP999) = percentiles(batchLatencies)
    appendedEvents = options.events
    sampleStreams = workload.sampleStreams
    let storage = try log.storageInfo()
    let rate = Double(options.events) / (Double(timed) / 1e9)
    results.append(Figure(scenario: "tally: batched durable append (1,000/batch, all indexes, chain, Merkle)", events: options.events,
                          seconds: Double(timed) / 1e9, rate: rate,
                          latencyP50Milliseconds: batchP50, latencyP99Milliseconds: batchP99, latencyP999Milliseconds: batchP999,
                          bytesOnDiskPerEvent: Double(storage.usedBytes) / Double(options.events),
                          peakAnonymousMegabytes: memory.anonymousMB, peakResidentMegabytes: memory.residentMB,
                          target: "≥ 600,000 events/s", targetMet: rate >= 600_000))
    if options.smoke {
        // The workload must be a history the domain's rules could have written, or the rebuilds and
        // the audit measure something no store holds. Checked where CI runs it, not timed.
        let (checked, violations) = try Invariants.check(log)
        if let first = violations.first {
            fail("the workload breaks the domain's invariants (\(violations.count) in \(checked) events), first at position \(first.position): \(first.rule): \(first.message)")
        }
    }
    log.close()
}

// MARK: Tally, batched durable append with batches in flight (an importer's way)

if wanted("pipelined") {
    let inFlight = 4
    progress("tally: batched durable append of \(options.events) events, \(inFlight) batches in flight")
    let path = options.directory + "/pipelined"
    let log = try EventLog.create(at: path)
    var own = Workload(seed: options.seed)
    let probe = MemoryProbe()
    var timed: UInt64 = 0
    var remaining = options.events
    let slots = DispatchSemaphore(value: inFlight)
    let failure = Mutex<String?>(nil)
    while remaining > 0 {
        // 32 batches generated untimed, then submitted with at most `inFlight` unacknowledged, and
        // drained: the clock runs from the first submission to the last acknowledgement.
        var chunk: [[ProposedEvent]] = []
        while chunk.count < 32 && remaining > 0 {
            let batch = own.batch(min(batchSize, remaining))
            remaining -= batch.count
            chunk.append(batch)
        }
        let start = now()
        for batch in chunk {
            slots.wait()
            try log.append(AppendRequest(events: batch)) { outcome in
                if case .failure(let error) = outcome { failure.withLock { $0 = "\(error)" } }
                slots.signal()
            }
        }
        for _ in 0..<inFlight { slots.wait() }
        for _ in 0..<inFlight { slots.signal() }
        timed += now() - start
    }
    let memory = probe.stop()
    if let message = failure.withLock({ $0 }) { fail("pipelined append failed: \(message)") }
    let rate = Double(options.events) / (Double(timed) / 1e9)
    results.append(Figure(scenario: "tally: batched durable append, \(inFlight) batches of 1,000 in flight (each acknowledged once durable)",
                          events: options.events, seconds: Double(timed) / 1e9, rate: rate,
                          peakAnonymousMegabytes: memory.anonymousMB, peakResidentMegabytes: memory.residentMB,
                          target: "≥ 600,000 events/s", targetMet: rate >= 600_000))
    log.close()
    try? FileManager.default.removeItem(atPath: path)
}

// MARK: Tally, group commit

if wanted("group") {
    let levels = options.smoke ? [(1, 20), (8, 80)] : [(1, 3_000), (8, 16_000), (64, 64_000), (256, 128_000)]
    // Each level twice: callers as threads blocked in `append` (a thread per request), and as Swift
    // tasks awaiting it (what an async server's request handlers are).
    for (callers, total) in levels {
        for asTasks in [false, true] where !(asTasks && callers == 1) {
            let count = min(total, max(callers, options.events))
            let kind = asTasks ? "tasks" : "threads"
            progress("tally: group commit, \(callers) callers (\(kind)), \(count) events")
            let path = options.directory + "/group-\(callers)-\(kind)"
            let log = try EventLog.create(at: path)
            // Filled first with a full index tail (not timed), so the writer merges tail slices while
            // the callers wait, as it does in a store past its first minute, instead of never.
            if !options.smoke {
                var filler = Workload(seed: options.seed &+ 0x5EED)
                var filled: UInt64 = 0
                while filled < LogTables.indexTailEventsMaxDefault {
                    let batch = filler.batch(Int(min(UInt64(batchSize), LogTables.indexTailEventsMaxDefault - filled)))
                    try log.append(AppendRequest(events: batch))
                    filled += UInt64(batch.count)
                }
            }
            let perCaller = max(1, count / callers)
            let latencies = LatencySlots(count: perCaller * callers)
            // Each caller's events are generated before the clock starts: on two cores, generating them in
            // the callers took a quarter of the CPU the run was measuring.
            let work: [[ProposedEvent]] = (0..<callers).map { caller in
                var own = Workload(seed: options.seed &+ UInt64(caller) &* 7919)
                return (0..<perCaller).map { _ in own.next() }
            }
            let probe = MemoryProbe()
            let start = now()
            if asTasks {
                runTasks(callers) { caller in
                    for index in 0..<perCaller {
                        let begin = now()
                        do { try await log.append(AppendRequest(events: [work[caller][index]])) } catch { fail("group commit append failed: \(error)") }
                        latencies.set(caller * perCaller + index, now() - begin)
                    }
                }
            } else {
                runCallers(callers) { caller in
                    for index in 0..<perCaller {
                        let begin = now()
                        do { try log.append(AppendRequest(events: [work[caller][index]])) } catch { fail("group commit append failed: \(error)") }
                        latencies.set(caller * perCaller + index, now() - begin)
                    }
                }
            }
            let elapsed = seconds(since: start)
            let memory = probe.stop()
            let done = perCaller * callers
            let (p50, p99, p999) = percentiles(latencies.all)
            let rate = Double(done) / elapsed
            var target: String?, met: Bool?
            if callers == 64 { target = "≥ 40,000 events/s, p99 ≤ 5 ms"; met = rate >= 40_000 && p99 <= 5 }
            if callers == 256 { target = "≥ 100,000 events/s, p99 ≤ 5 ms"; met = rate >= 100_000 && p99 <= 5 }
            let who = callers == 1 ? "1 caller" : "\(callers) \(kind)"
            results.append(Figure(scenario: "tally: group commit, \(who) × 1 event, durable", events: done, seconds: elapsed, rate: rate,
                                  latencyP50Milliseconds: p50, latencyP99Milliseconds: p99, latencyP999Milliseconds: p999,
                                  peakAnonymousMegabytes: memory.anonymousMB, peakResidentMegabytes: memory.residentMB, target: target, targetMet: met))
            log.close()
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}

// MARK: Domain commands end to end, concurrently

if wanted("domain") {
    let callers = options.smoke ? 4 : 64
    let vouchers = options.smoke ? 200 : min(100_000, max(2_000, options.events / 20))
    progress("domain: \(callers) callers redeeming \(vouchers) vouchers, durable, through the rules")
    let log = try EventLog.create(at: options.directory + "/domain")
    let commerce = CommerceService(log: log)
    let admin = Actor(.admin, "ana")
    var setup: [CommandEnvelope] = []
    for booth in 0..<12 {
        setup.append(CommandEnvelope(id: UUID(), actor: admin, command: .registerBooth(boothID: "\(booth)", name: "Booth", location: "Hall")))
        setup.append(CommandEnvelope(id: UUID(), actor: admin, command: .assignOperator(boothID: "\(booth)", operatorID: "op\(booth)", operatorName: "Operator")))
    }
    for voucher in 0..<vouchers {
        setup.append(CommandEnvelope(id: UUID(), actor: admin, command: .issueVoucher(voucherID: "v\(voucher)", amount: Money(minor: 2500, currency: .usd),
                                                                                       buyerEmail: "b\(voucher)@example.org")))
    }
    for start in stride(from: 0, to: setup.count, by: 512) { _ = try commerce.executeInOrder(Array(setup[start..<min(setup.count, start + 512)])) }
    let perCaller = vouchers / callers
    let latencies = LatencySlots(count: perCaller * callers)
    let refusals = LatencySlots(count: callers)
    let probe = MemoryProbe()
    let start = now()
    runCallers(callers) { caller in
        var random = SplitMix64(seed: UInt64(caller))
        var refused: UInt64 = 0
        for index in 0..<perCaller {
            // Mostly a new voucher; one time in eight, one that another caller may already have redeemed.
            let voucher = random.next() % 8 == 0 ? Int(random.next() % UInt64(vouchers)) : caller * perCaller + index
            let booth = Int(random.next() % 12)
            let envelope = CommandEnvelope(id: UUID(), actor: Actor(.operator, "op\(booth)"),
                                           command: .redeemVoucher(voucherID: "v\(voucher)", boothID: "\(booth)", saleID: "\(caller)-\(index)",
                                                                   saleAmount: Money(minor: 1000, currency: .usd)))
            let begin = now()
            do {
                if case .rejected = try commerce.execute(envelope) { refused += 1 }
            } catch { fail("domain command failed: \(error)") }
            latencies.set(caller * perCaller + index, now() - begin)
        }
        refusals.set(caller, refused)
    }
    let elapsed = seconds(since: start)
    let memory = probe.stop()
    let (p50, p99, p999) = percentiles(latencies.all)
    let refused = refusals.all.reduce(0, +)
    results.append(Figure(scenario: "domain: \(callers) callers redeeming vouchers (decided ahead, confirmed in the writer), durable", events: perCaller * callers,
                          seconds: elapsed, rate: Double(perCaller * callers) / elapsed, unit: "commands/s",
                          latencyP50Milliseconds: p50, latencyP99Milliseconds: p99, latencyP999Milliseconds: p999,
                          peakAnonymousMegabytes: memory.anonymousMB, peakResidentMegabytes: memory.residentMB,
                          note: "\(refused) refused as already redeemed"))
    guard try log.verify().isSound else { fail("verify failed after the domain scenario") }
    log.close()
    try? FileManager.default.removeItem(atPath: options.directory + "/domain")
}

// MARK: Tally, reads over the store written above

if appendedEvents > 0 {
    var readOptions = LogOptions()
    readOptions.readOnly = true
    // The store's pages leave the page cache first (nothing maps them: the writer has closed), so the
    // first scan reads from the disk, as after a reboot; every scan after it finds them cached.
    let residentBefore = wanted("replay") ? evictFromPageCache(tallyPath + "/log/data.mdb") : nil
    let log = try EventLog.open(at: tallyPath, options: readOptions)

    /// Every record through zero-copy views, in transactions of 65,536 events: what projectors read.
    func zeroCopyScan() throws -> (count: Int, checksum: Int) {
        var count = 0, checksum = 0
        var next: UInt64 = 1
        while true {
            var seen = 0
            try log.withSnapshot { snapshot in
                try snapshot.forEach(ReadQuery(from: next, limit: 65_536)) { record in
                    seen += 1
                    checksum &+= Int(record.version) &+ record.payloadBytes.count &+ record.typeBytes.count &+ record.streamBytes.count
                    return true
                }
            }
            if seen == 0 { break }
            count += seen
            next += UInt64(seen)
        }
        return (count, checksum)
    }

    if let residentBefore {
        progress("tally: full replay from the disk (page cache emptied)")
        let probe = MemoryProbe()
        let start = now()
        let (count, checksum) = try zeroCopyScan()
        let elapsed = seconds(since: start)
        let memory = probe.stop()
        results.append(Figure(scenario: "tally: full replay from the disk, zero-copy views (data.mdb evicted from the page cache first)", events: count,
                              seconds: elapsed, rate: Double(count) / elapsed,
                              peakAnonymousMegabytes: memory.anonymousMB, peakResidentMegabytes: memory.residentMB,
                              note: String(format: "%.0f%% of data.mdb still cached when it began; checksum %d", residentBefore * 100, checksum)))
    }

    if wanted("replay") {
        // A warm pass over 1 M events takes a fraction of a second, at the mercy of the scheduler on two
        // shared cores: each scenario runs `passes` times and reports the median pass, the spread beside it.
        let passes = options.smoke ? 1 : 5
        func medianPass(_ pass: () throws -> (count: Int, note: String)) rethrows -> (count: Int, seconds: Double, memory: (anonymousMB: Double, residentMB: Double), note: String) {
            var timings: [(seconds: Double, count: Int, note: String)] = []
            let probe = MemoryProbe()
            for _ in 0..<passes {
                let start = now()
                let (count, note) = try pass()
                timings.append((seconds(since: start), count, note))
            }
            let memory = probe.stop()
            let sorted = timings.sorted { $0.seconds < $1.seconds }
            let median = sorted[sorted.count / 2]
            let spread = passes == 1 ? "" : String(format: "median of %d passes (%.2f–%.2f M events/s); ", passes,
                                                   Double(median.count) / sorted[sorted.count - 1].seconds / 1e6, Double(median.count) / sorted[0].seconds / 1e6)
            return (median.count, median.seconds, memory, spread + median.note)
        }

        progress("tally: full replay, decoding every event")
        let decoded = try medianPass {
            var reader = log.read()
            var count = 0, payloadBytes = 0
            try reader.forEach { event in count += 1; payloadBytes &+= event.payload.count }
            return (count, "\(payloadBytes) payload bytes")
        }
        var rate = Double(decoded.count) / decoded.seconds
        results.append(Figure(scenario: "tally: full replay, decoded to RecordedEvent (chunked reader)", events: decoded.count, seconds: decoded.seconds,
                              rate: rate, peakAnonymousMegabytes: decoded.memory.anonymousMB, peakResidentMegabytes: decoded.memory.residentMB,
                              target: "≥ 5,000,000 events/s", targetMet: rate >= 5_000_000, note: decoded.note))

        progress("tally: full replay, zero-copy record views")
        let viewed = try medianPass {
            let (count, checksum) = try zeroCopyScan()
            return (count, "checksum \(checksum)")
        }
        rate = Double(viewed.count) / viewed.seconds
        results.append(Figure(scenario: "tally: full replay, zero-copy record views (every field parsed and checked)", events: viewed.count,
                              seconds: viewed.seconds, rate: rate, peakAnonymousMegabytes: viewed.memory.anonymousMB,
                              peakResidentMegabytes: viewed.memory.residentMB, target: "≥ 5,000,000 events/s", targetMet: rate >= 5_000_000,
                              note: viewed.note))
    }

    if wanted("streams") && !sampleStreams.isEmpty {
        let loads = options.smoke ? 100 : 20_000
        progress("tally: \(loads) random stream loads")
        var random = SplitMix64(seed: options.seed)
        var latencies: [UInt64] = []
        latencies.reserveCapacity(loads)
        var events = 0
        let probe = MemoryProbe()
        let start = now()
        for _ in 0..<loads {
            let stream = sampleStreams[Int(random.next() % UInt64(sampleStreams.count))]
            let begin = now()
            var reader = log.read(ReadQuery(.stream(stream)))
            try reader.forEach { _ in events += 1 }
            latencies.append(now() - begin)
        }
        let elapsed = seconds(since: start)
        let memory = probe.stop()
        let (p50, p99, p999) = percentiles(latencies)
        results.append(Figure(scenario: "tally: random stream loads (whole stream, decoded)", events: events, seconds: elapsed, rate: Double(loads) / elapsed,
                              unit: "loads/s", latencyP50Milliseconds: p50, latencyP99Milliseconds: p99, latencyP999Milliseconds: p999,
                              peakAnonymousMegabytes: memory.anonymousMB, peakResidentMegabytes: memory.residentMB,
                              note: String(format: "%.1f events per stream", Double(events) / Double(loads))))
    }

    if wanted("verify") {
        for checkIndexes in [false, true] {
            progress("tally: verify\(checkIndexes ? " with indexes" : " (chain and Merkle root)")")
            let probe = MemoryProbe()
            let start = now()
            let report = try log.verify(checkIndexes: checkIndexes)
            let elapsed = seconds(since: start)
            let memory = probe.stop()
            guard report.isSound else { fail("verify found a problem: \(report.problem!)") }
            let rate = Double(report.eventsChecked) / elapsed
            results.append(Figure(scenario: checkIndexes ? "tally: verify, chain + Merkle + every index entry" : "tally: verify, chain + Merkle root",
                                  events: Int(report.eventsChecked), seconds: elapsed, rate: rate,
                                  peakAnonymousMegabytes: memory.anonymousMB, peakResidentMegabytes: memory.residentMB,
                                  target: checkIndexes ? nil : "≥ 1,500,000 events/s", targetMet: checkIndexes ? nil : rate >= 1_500_000))
        }
    }

    if wanted("proofs") {
        let head = try log.head()
        let count = options.smoke ? 200 : 10_000
        progress("tally: \(count) inclusion and consistency proofs in a \(head.position)-event log")
        var random = SplitMix64(seed: options.seed &+ 3)
        var generation: [UInt64] = [], verification: [UInt64] = []
        var consistencyGeneration: [UInt64] = [], consistencyVerification: [UInt64] = []
        let probe = MemoryProbe()
        try log.withSnapshot { snapshot in
            for _ in 0..<count {
                let position = random.next() % head.position + 1
                var start = now()
                let path = try snapshot.inclusionPath(position: position, treeSize: head.position)
                generation.append(now() - start)
                let leaf = try snapshot.record(at: position)!.hash
                start = now()
                try Merkle.verifyInclusion(leafIndex: position - 1, treeSize: head.position, leafHash: leaf, path: path, root: head.merkleRoot)
                verification.append(now() - start)

                let first = random.next() % head.position + 1
                start = now()
                let consistency = try snapshot.consistencyPath(from: first, to: head.position)
                let firstRoot = try snapshot.merkleRoot(size: first)
                consistencyGeneration.append(now() - start)
                start = now()
                try Merkle.verifyConsistency(first: first, second: head.position, path: consistency, firstRoot: firstRoot, secondRoot: head.merkleRoot)
                consistencyVerification.append(now() - start)
            }
        }
        let memory = probe.stop()
        func row(_ name: String, _ samples: [UInt64], target: String?, limitMicroseconds: Double?) {
            let (p50, p99, p999) = percentiles(samples)
            let mean = Double(samples.reduce(0, +)) / Double(samples.count) / 1000
            results.append(Figure(scenario: name, events: samples.count, seconds: mean * Double(samples.count) / 1e6, rate: 1e6 / mean, unit: "proofs/s",
                                  latencyP50Milliseconds: p50, latencyP99Milliseconds: p99, latencyP999Milliseconds: p999,
                                  peakAnonymousMegabytes: memory.anonymousMB, peakResidentMegabytes: memory.residentMB,
                                  target: target, targetMet: limitMicroseconds.map { mean <= $0 }, note: String(format: "mean %.1f µs", mean)))
        }
        row("tally: inclusion proof, generate (log of \(head.position))", generation, target: "≤ 50 µs", limitMicroseconds: 50)
        row("tally: inclusion proof, verify", verification, target: "≤ 20 µs", limitMicroseconds: 20)
        row("tally: consistency proof + old root, generate", consistencyGeneration, target: nil, limitMicroseconds: nil)
        row("tally: consistency proof, verify", consistencyVerification, target: nil, limitMicroseconds: nil)
    }
    if wanted("projections") {
        // Scenario 6: each read model rebuilt from position 0 on its own, then all three at once (one
        // thread per read model, two cores). Each rebuild writes a new SQLite file and switches it in.
        let projectionDirectory = options.directory + "/projections"
        let projectors: [any Projector] = [SalesLog(), MemberActivity(), Transactions()]
        let runner = try ProjectionRunner(log: log, projectors: projectors, directory: projectionDirectory)
        let head = try log.head().position
        func measure(_ name: String, target: String?, _ body: () throws -> Void) throws {
            progress("projections: rebuild \(name)")
            let probe = MemoryProbe()
            let start = now()
            try body()
            let elapsed = seconds(since: start)
            let memory = probe.stop()
            let rate = Double(head) / elapsed
            results.append(Figure(scenario: "projections: rebuild \(name) from position 0", events: Int(head), seconds: elapsed, rate: rate,
                                  bytesOnDiskPerEvent: Double(directorySize(projectionDirectory)) / Double(head),
                                  peakAnonymousMegabytes: memory.anonymousMB, peakResidentMegabytes: memory.residentMB,
                                  target: target, targetMet: target == nil ? nil : rate >= 300_000,
                                  note: target == nil ? nil : "B/event: all three SQLite files"))
        }
        for projector in projectors {
            try measure(projector.name, target: nil) { _ = try runner.rebuild(projector, discardingUnfinished: true) }
        }
        try measure("all three together", target: "≥ 300,000 events/s") {
            for (name, result) in runner.rebuildAll(discardingUnfinished: true) {
                if case .failure(let error) = result { fail("rebuilding \(name) failed: \(error)") }
            }
        }
        if !options.keep { try? FileManager.default.removeItem(atPath: projectionDirectory) }
        for name in ["members", nil] {
            if let figure = try measureCLIRebuild(name, head: head) { results.append(figure) }
        }
    }

    log.close()
    let tallyBytes = directorySize(tallyPath + "/log")
    results.append(Figure(scenario: "tally: data.mdb size on disk", events: appendedEvents, seconds: 0, rate: 0, unit: "-",
                          bytesOnDiskPerEvent: Double(tallyBytes) / Double(appendedEvents), peakAnonymousMegabytes: 0, peakResidentMegabytes: 0))
}

/// A read model (or with nil, all of them) rebuilt the way users do it: `tally projections rebuild` in a
/// fresh process. The rebuilds above run in a process whose earlier scenarios have shaped its heap; a
/// fresh process once spent a third of the `members` rebuild growing and shrinking the heap, which they
/// did not show (BENCHMARKS.md, "The allocator"). The `tally` executable is the one built beside this
/// program (`tools/bench` builds it).
func measureCLIRebuild(_ name: String?, head: UInt64) throws -> Figure? {
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("tally").path
    guard FileManager.default.isExecutableFile(atPath: executable) else {
        print("note: \(executable) is not built, so the rebuild through the CLI is not measured (tools/bench builds it)")
        return nil
    }
    let arguments = ["projections", "rebuild"] + (name.map { [$0] } ?? [])
    let command = "tally " + arguments.joined(separator: " ")
    progress("projections: \(command)")
    let errorsPath = options.directory + "/tally-cli.stderr"
    _ = FileManager.default.createFile(atPath: errorsPath, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments + ["--store", tallyPath]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorsPath))
    let start = now()
    try process.run()
    process.waitUntilExit()
    let elapsed = seconds(since: start)
    guard process.terminationStatus == 0 else {
        fail("\(command) exited with \(process.terminationStatus): \((try? String(contentsOfFile: errorsPath, encoding: .utf8)) ?? "")")
    }
    if !options.keep { try? FileManager.default.removeItem(atPath: tallyPath + "/projections") }
    // Its memory is not sampled: the probe watches this process, and a child's maximum resident set
    // from getrusage starts from this process's own, which the child's mapping inherited until exec.
    return Figure(scenario: "projections: rebuild \(name ?? "all three") with `\(command)` (a fresh process)", events: Int(head),
                  seconds: elapsed, rate: Double(head) / elapsed, peakAnonymousMegabytes: 0, peakResidentMegabytes: 0, memorySampled: false)
}

// MARK: Baselines, on the same generated events

/// Runs `write` over the workload's events in batches of 1,000, timing only `write`.
@MainActor
func baseline(_ name: String, path: String, target: String? = nil, _ write: ([ProposedEvent], [[UInt8]]) throws -> Void) throws {
    progress("baseline: \(name)")
    var events = Workload(seed: options.seed)
    var remaining = options.events
    var timed: UInt64 = 0
    let probe = MemoryProbe()
    while remaining > 0 {
        let batch = events.batch(min(batchSize, remaining))
        let records = batch.map(baselineRecord)
        let start = now()
        try write(batch, records)
        timed += now() - start
        remaining -= batch.count
    }
    let memory = probe.stop()
    let bytes = directorySize(path)
    results.append(Figure(scenario: name, events: options.events, seconds: Double(timed) / 1e9, rate: Double(options.events) / (Double(timed) / 1e9),
                          bytesOnDiskPerEvent: Double(bytes) / Double(options.events),
                          peakAnonymousMegabytes: memory.anonymousMB, peakResidentMegabytes: memory.residentMB, target: target,
                          isBaseline: true))
}

func rawEnvironment(_ name: String) throws -> (Environment, String) {
    let path = options.directory + "/" + name
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    var environmentOptions = EnvironmentOptions()
    environmentOptions.mapSizeInitialBytes = 256 << 20
    return (try Environment.open(path: path, options: environmentOptions), path)
}

/// Raw LMDB: position → record with `MDB_APPEND`, batches of 1,000, durable. Returns its directory.
@MainActor @discardableResult
func rawLMDBBaseline(_ name: String, directoryName: String) throws -> String {
    let (environment, path) = try rawEnvironment(directoryName)
    let table = try environment.openTable("events")
    var position: UInt64 = 0
    try baseline(name, path: path) { _, records in
        try environment.write { txn in
            for record in records {
                position += 1
                var key = position.bigEndian
                try withUnsafeBytes(of: &key) { k in try record.withUnsafeBytes { try txn.put(table, key: k, value: $0, flags: .append) } }
            }
        }
    }
    return path
}

if wanted("raw") {
    try rawLMDBBaseline(rawScenario, directoryName: "raw")
}

if wanted("chain") {
    let (environment, path) = try rawEnvironment("chain")
    let table = try environment.openTable("events")
    var position: UInt64 = 0
    var chain = Hash.zero
    try baseline("raw LMDB + SHA-256 chain", path: path) { _, records in
        try environment.write { txn in
            for record in records {
                position += 1
                chain = MerkleHash.chain(chain, record.withUnsafeBytes { sha256($0) })
                var key = position.bigEndian
                try withUnsafeBytes(of: &key) { k in
                    try txn.reserve(table, key: k, count: record.count + 32, flags: .append) { out in
                        record.withUnsafeBytes { out.copyMemory(from: $0) }
                        chain.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: out[record.count...]).copyMemory(from: $0) }
                    }
                }
            }
        }
    }
}

if wanted("naive") {
    let (environment, path) = try rawEnvironment("naive")
    let table = try environment.openTable("events")
    let index = try environment.openTable("stream-version")
    var position: UInt64 = 0
    var versions: [String: UInt64] = [:]
    try baseline("raw LMDB + naive (stream, version) → position table", path: path) { events, records in
        try environment.write { txn in
            for (event, record) in zip(events, records) {
                position += 1
                var key = position.bigEndian
                try withUnsafeBytes(of: &key) { k in try record.withUnsafeBytes { try txn.put(table, key: k, value: $0, flags: .append) } }
                let version = (versions[event.stream] ?? 0) + 1
                versions[event.stream] = version
                var indexKey = Array(event.stream.utf8)
                indexKey.append(0)
                withUnsafeBytes(of: version.bigEndian) { indexKey.append(contentsOf: $0) }
                try indexKey.withUnsafeBytes { k in try withUnsafeBytes(of: &key) { try txn.put(index, key: k, value: $0) } }
            }
        }
    }
}

if wanted("sqlite") {
    let path = options.directory + "/sqlite"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    var configuration = Configuration()
    configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    let queue = try DatabaseQueue(path: path + "/events.sqlite", configuration: configuration)
    _ = try queue.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
    try queue.write { db in
        try db.execute(sql: """
            CREATE TABLE events(position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL,
                                ts INTEGER NOT NULL, data BLOB NOT NULL, UNIQUE(stream, version))
            """)
    }
    var position: Int64 = 0
    var versions: [String: Int64] = [:]
    var time: Int64 = 1_790_000_000_000_000
    try baseline("SQLite (GRDB): WAL, synchronous=FULL, UNIQUE(stream, version)", path: path) { events, _ in
        try queue.write { db in
            let statement = try db.cachedStatement(sql: "INSERT INTO events(position, stream, version, type, ts, data) VALUES (?, ?, ?, ?, ?, ?)")
            for event in events {
                position += 1
                time += 250
                let version = (versions[event.stream] ?? 0) + 1
                versions[event.stream] = version
                try statement.execute(arguments: [position, event.stream, version, event.type, time, event.payload])
            }
        }
    }
}

// MARK: Report

let raw = results.first { $0.scenario == rawScenario }
let rawBefore = results.first { $0.scenario == rawBeforeScenario }
let tallyAppend = results.first { $0.scenario.hasPrefix("tally: batched durable append (") }
if let rawBefore, let tallyAppend, let index = results.firstIndex(where: { $0.scenario == tallyAppend.scenario }) {
    results[index].note = String(format: "%.2f× the raw LMDB run just before it, %@ events/s", tallyAppend.rate / rawBefore.rate, formatRate(rawBefore.rate))
}
let tallyDisk = results.first { $0.scenario == "tally: data.mdb size on disk" }
if let raw, let tallyDisk, let rawBytes = raw.bytesOnDiskPerEvent, let tallyBytes = tallyDisk.bytesOnDiskPerEvent, rawBytes > 0 {
    if let index = results.firstIndex(where: { $0.scenario == "tally: data.mdb size on disk" }) {
        results[index].target = "≤ 1.6 × raw LMDB"
        results[index].targetMet = tallyBytes <= 1.6 * rawBytes
        results[index].note = String(format: "%.2f × raw LMDB's %.0f bytes/event", tallyBytes / rawBytes, rawBytes)
    }
}
/// The memory target is Tally's: the baselines are the benchmark's own code (the naive one keeps every
/// stream's version in a dictionary), reported apart.
let peakAnonymous = results.filter { !$0.isBaseline }.map(\.peakAnonymousMegabytes).max() ?? 0
let peakAnonymousBaselines = results.filter(\.isBaseline).map(\.peakAnonymousMegabytes).max()

func formatRate(_ value: Double) -> String {
    value >= 1e6 ? String(format: "%.2f M", value / 1e6) : value >= 1e3 ? String(format: "%.1f k", value / 1e3) : String(format: "%.0f", value)
}
func formatOptional(_ value: Double?, _ format: String) -> String { value.map { String(format: format, $0) } ?? "" }

print("\nTally benchmark — \(options.events) events, \(machine.cores) cores, \(String(format: "%.0f", machine.memoryGiB)) GiB, \(machine.cpu), \(machine.fileSystem); malloc: \(machine.malloc)\n")
let header = ["scenario", "rate", "vs raw", "p50 ms", "p99 ms", "p99.9 ms", "B/event", "anon MB", "target", "met"]
var rows: [[String]] = [header]
for result in results {
    let ratio = (raw != nil && result.unit == "events/s" && result.rate > 0) ? String(format: "%.2f×", result.rate / raw!.rate) : ""
    rows.append([result.scenario, result.unit == "-" ? "" : formatRate(result.rate) + " " + result.unit, ratio,
                 formatOptional(result.latencyP50Milliseconds, "%.3f"), formatOptional(result.latencyP99Milliseconds, "%.3f"),
                 formatOptional(result.latencyP999Milliseconds, "%.3f"), formatOptional(result.bytesOnDiskPerEvent, "%.0f"),
                 result.unit == "-" || !result.memorySampled ? "" : String(format: "%.0f", result.peakAnonymousMegabytes), result.target ?? "",
                 result.targetMet.map { $0 ? "yes" : "NO" } ?? ""])
}
let widths = header.indices.map { column in rows.map { $0[column].count }.max()! }
for (index, row) in rows.enumerated() {
    print(row.indices.map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
    if index == 0 { print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
}
for result in results where result.note != nil && !(result.note!.hasPrefix("checksum")) { print("  \(result.scenario): \(result.note!)") }
if let tallyAppend, let raw {
    let paired = rawBefore.map { String(format: " (%.2f× the raw LMDB run just before it; raw LMDB moved %.2f× between its two runs)", tallyAppend.rate / $0.rate, raw.rate / $0.rate) } ?? ""
    print(String(format: "\nbatched append: Tally %.2f× raw LMDB", tallyAppend.rate / raw.rate) + paired)
}
print(String(format: "peak anonymous memory of any Tally scenario: %.0f MB (target ≤ 200 MB)", peakAnonymous))
if let peakAnonymousBaselines { print(String(format: "peak anonymous memory of any baseline: %.0f MB", peakAnonymousBaselines)) }

struct Report: Encodable {
    var date: String
    var events: Int
    var smoke: Bool
    var machine: Machine
    var results: [Figure]
}
if let jsonPath = options.jsonPath {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let report = Report(date: Timestamp(Date()).iso8601, events: options.events, smoke: options.smoke, machine: machine, results: results)
    try encoder.encode(report).write(to: URL(fileURLWithPath: jsonPath))
    print("figures written to \(jsonPath)")
}
if options.keep { print("stores kept in \(options.directory)") } else { try? FileManager.default.removeItem(atPath: options.directory) }
