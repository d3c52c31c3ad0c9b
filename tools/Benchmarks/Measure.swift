import Foundation
import TallyLog
#if canImport(Glibc)
import Glibc
#endif

/// One row of the benchmark's table.
struct Figure: Encodable {
    var scenario: String
    var events: Int
    var seconds: Double
    /// Events (or operations, see `unit`) per second.
    var rate: Double
    var unit = "events/s"
    var latencyP50Milliseconds: Double?
    var latencyP99Milliseconds: Double?
    var latencyP999Milliseconds: Double?
    var bytesOnDiskPerEvent: Double?
    /// The process's own memory (anonymous pages), sampled while the scenario ran.
    var peakAnonymousMegabytes: Double
    /// Everything resident, the memory map's file pages included (page cache, shared, reclaimable).
    var peakResidentMegabytes: Double
    var target: String?
    var targetMet: Bool?
    var note: String?
    /// A baseline's figure (the benchmark's own code, not Tally's).
    var isBaseline = false
    /// False where this process could not sample the memory (a child process ran the scenario): the
    /// two memory figures are then 0 and printed blank.
    var memorySampled = true
}

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
func seconds(since start: UInt64) -> Double { Double(now() - start) / 1e9 }

/// Latency percentiles, in milliseconds, from nanosecond samples.
func percentiles(_ samples: [UInt64]) -> (p50: Double, p99: Double, p999: Double) {
    guard !samples.isEmpty else { return (0, 0, 0) }
    let sorted = samples.sorted()
    func at(_ q: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) / 1e6 }
    return (at(0.50), at(0.99), at(0.999))
}

/// Peak memory of one scenario: resets the kernel's high-water mark, and samples anonymous memory on
/// a background thread (the kernel keeps no peak for it).
final class MemoryProbe: @unchecked Sendable {
    // @unchecked: `peakAnonymousKB` and `running` are guarded by `lock`.
    private let lock = NSLock()
    private var peakAnonymousKB = 0
    private var running = true

    init() {
        // Earlier scenarios' freed heap stays mapped in malloc's arenas and would count against this
        // one: hand it back first, so the peak is what this scenario holds.
        Self.trimHeap()
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)  // Resets VmHWM.
        let thread = Thread { [self] in
            while lock.withLock({ running }) {
                let anonymous = Self.statusKB("RssAnon")
                lock.withLock { peakAnonymousKB = max(peakAnonymousKB, anonymous) }
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
        thread.start()
    }

    func stop() -> (anonymousMB: Double, residentMB: Double) {
        let anonymous = Self.statusKB("RssAnon")
        return lock.withLock {
            running = false
            peakAnonymousKB = max(peakAnonymousKB, anonymous)
            return (Double(peakAnonymousKB) / 1024, Double(Self.statusKB("VmHWM")) / 1024)
        }
    }

    /// glibc's `malloc_trim(0)` (not in Swift's Glibc module, so looked up by name).
    static func trimHeap() {
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }

    static func statusKB(_ field: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
}

/// The machine the figures were taken on.
struct Machine: Encodable {
    var cores = ProcessInfo.processInfo.activeProcessorCount
    var memoryGiB = Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30)
    var cpu = Machine.cpuModel()
    var fileSystem: String
    var kernel = ProcessInfo.processInfo.operatingSystemVersionString
    /// glibc malloc's thresholds in this run: `AllocatorTuning`'s, or the environment's.
    var malloc: String

    init(directory: String, allocator: AllocatorTuning.Settings?) {
        fileSystem = Machine.fileSystem(of: directory)
        malloc = allocator.map { "trim threshold \($0.trimThreshold >> 10) KiB, mmap threshold \($0.mmapThreshold >> 10) KiB (AllocatorTuning)" }
            ?? "as the environment sets it"
    }

    static func cpuModel() -> String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
        return line.map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
    }

    /// The type and device of the mount holding `directory`, from /proc/mounts.
    static func fileSystem(of directory: String) -> String {
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        let real = (try? FileManager.default.destinationOfSymbolicLink(atPath: directory)) ?? directory
        var best = (length: -1, description: "unknown")
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            let mountPoint = String(fields[1])
            if real.hasPrefix(mountPoint), mountPoint.count > best.length {
                best = (mountPoint.count, "\(fields[2]) on \(fields[0]) (\(mountPoint))")
            }
        }
        return best.description
    }
}

func directorySize(_ path: String) -> Int {
    guard let enumerator = FileManager.default.enumerator(atPath: path) else { return 0 }
    var total = 0
    while let name = enumerator.nextObject() as? String {
        var info = stat()
        if stat(path + "/" + name, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG { total += Int(info.st_blocks) * 512 }
    }
    return total
}

/// One latency slot per append, each written by exactly one thread.
final class LatencySlots: @unchecked Sendable {
    // @unchecked: every thread writes only its own indexes; `all` is read after they are joined.
    private let storage: UnsafeMutableBufferPointer<UInt64>
    init(count: Int) { storage = .allocate(capacity: count); storage.initialize(repeating: 0) }
    deinit { storage.deallocate() }
    func set(_ index: Int, _ value: UInt64) { storage[index] = value }
    var all: [UInt64] { Array(storage) }
}

/// Runs `body(caller)` on `count` threads at once and waits for all: each thread is one caller that
/// waits for its own appends, as an application's request handlers would.
func runCallers(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let finished = DispatchGroup()
    for caller in 0..<count {
        finished.enter()
        let thread = Thread {
            body(caller)
            finished.leave()
        }
        thread.stackSize = 256 << 10
        thread.start()
    }
    finished.wait()
}

/// Runs `body(caller)` as `count` Swift tasks at once and waits for all: each task is one caller that
/// awaits its own appends, as an async server's request handlers would. The tasks share the
/// cooperative pool (one thread per core) instead of a thread each.
func runTasks(_ count: Int, _ body: @escaping @Sendable (Int) async -> Void) {
    let finished = DispatchSemaphore(value: 0)
    Task.detached {
        await withTaskGroup(of: Void.self) { group in
            for caller in 0..<count { group.addTask { await body(caller) } }
        }
        finished.signal()
    }
    finished.wait()
}

/// Asks the kernel to drop `path`'s pages from the page cache (`POSIX_FADV_DONTNEED`: clean pages no
/// process maps), and returns the fraction still resident afterwards (from `mincore`), so a figure read
/// "from the disk" says how cold it really was. Nil if the file cannot be opened or mapped.
func evictFromPageCache(_ path: String) -> Double? {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var info = stat()
    guard fstat(descriptor, &info) == 0, info.st_size > 0 else { return nil }
    _ = fdatasync(descriptor)
    _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED)
    let length = Int(info.st_size)
    guard let map = mmap(nil, length, PROT_READ, MAP_SHARED, descriptor, 0), map != MAP_FAILED else { return nil }
    defer { munmap(map, length) }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    var vector = [UInt8](repeating: 0, count: (length + page - 1) / page)
    guard mincore(map, length, &vector) == 0 else { return nil }
    return Double(vector.reduce(0) { $0 + Int($1 & 1) }) / Double(vector.count)
}
