import Foundation

/// glibc malloc's thresholds for a process that runs Tally: an application-wide choice, so the
/// executables (`tally`, `tally-bench`) make it at start, and an application embedding Tally may
/// call `applyOnce()` too. The library itself never changes them.
///
/// By default glibc hands the top of its heap back to the kernel (`brk`) whenever more than 128 KiB
/// of it is free, and serves blocks of 128 KiB or more with `mmap`, raising both limits only after
/// it has freed such a block. Whether a process pays for that depends on its pattern of allocations,
/// which it does not control: `tally projections rebuild members`, while it wrote each member's
/// summary once per action, made 621 k `brk` calls for 1 M events and spent a third of its time in
/// them and the page faults after them (2.4–2.9 s of system time; 0.3 s with these settings). Fixed
/// limits take that risk away, and bound what each of glibc's per-thread arenas keeps once a burst
/// of threads has passed (the benchmark's peak fell from 164–171 MB to 111 MB).
public enum AllocatorTuning {
    public struct Settings: Equatable, Sendable {
        /// Free memory at the top of a heap kept for reuse before it is handed back (bytes).
        public var trimThreshold: Int
        /// Blocks this large or larger get their own mapping, handed back when freed (bytes).
        public var mmapThreshold: Int
    }

    /// 2 MiB kept at a heap's top, blocks of 1 MiB and more mapped: what the benchmark measured
    /// (BENCHMARKS.md, "The allocator").
    public static let recommended = Settings(trimThreshold: 2 << 20, mmapThreshold: 1 << 20)

    /// The settings for a process with this environment, or nil when its operator already chose
    /// malloc's thresholds (`MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TOP_PAD_`, or
    /// those tunables in `GLIBC_TUNABLES`): theirs stand.
    public static func settings(environment: [String: String]) -> Settings? {
        let variables = ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"]
        if variables.contains(where: { environment[$0] != nil }) { return nil }
        let tunables = environment["GLIBC_TUNABLES"] ?? ""
        if ["trim_threshold", "mmap_threshold", "top_pad"].contains(where: tunables.contains) { return nil }
        return recommended
    }

    /// Applies `settings(environment:)` for this process's environment, once per process; what was
    /// applied, or nil when nothing was (the operator's choice, or no glibc `mallopt`).
    @discardableResult
    public static func applyOnce() -> Settings? { applied }

    private static let applied: Settings? = {
        guard let settings = settings(environment: ProcessInfo.processInfo.environment),
              let mallopt = Mallopt.function else { return nil }
        // mallopt returns 1 on success. M_TRIM_THRESHOLD is -1 and M_MMAP_THRESHOLD -3 in glibc's ABI.
        let trimmed = mallopt(-1, Int32(settings.trimThreshold))
        let mapped = mallopt(-3, Int32(settings.mmapThreshold))
        return trimmed == 1 && mapped == 1 ? settings : nil
    }()
}

/// glibc's `mallopt`, looked up at run time: Swift's Glibc module does not import `<malloc.h>`.
private enum Mallopt {
    typealias Function = @convention(c) (Int32, Int32) -> Int32
    static let function: Function? = dlsym(nil, "mallopt").map { unsafeBitCast($0, to: Function.self) }
}
