import CLMDB
import Glibc

/// Asks the kernel to read the map ahead of a sequential scan.
///
/// Environments are opened with `MDB_NORDAHEAD` (the map is `MADV_RANDOM`): right for point reads,
/// which would otherwise pull 128 KiB around every page they touch. But a scan of a store that is not
/// in the page cache (after a reboot, or on a store larger than memory) then waits for the disk once
/// per 4 KiB page. A scan notes each value it reads; when one falls outside the window already advised,
/// or past its middle, the next `windowBytes` of the map in the scan's direction are advised
/// `MADV_WILLNEED`, which starts reading them in the background. Pages appended in order (`MDB_APPEND`)
/// mostly lie in file order, so the window is mostly the scan's next pages. The advice is a hint:
/// errors are ignored. Advising cached pages costs a page-cache lookup per page, so a window whose two
/// ends are resident (`mincore`) is taken to be cached and not advised. Nothing is advised until the
/// scan has gone `startBytes` from where it began: the short scans on hot paths (a reader's index tail,
/// the writer's own events) make no system call.
public struct ReadAhead {
    public static let windowBytes = 2 << 20
    /// How far below each value a forward scan has the processor fetch: the next value, on the same
    /// leaf page, lies there (`prefetchBelow`). 512 bytes (about one record) doubled a warm scan's rate
    /// over 1 M events; 1,024 did no better.
    @inlinable public static var nextValueBytes: Int { 512 }
    public static let startBytes = 16 << 10
    public static let pageBytes = UInt(sysconf(Int32(_SC_PAGESIZE)))

    /// Receives each window: its first address (page-aligned) and its length in bytes.
    public typealias Advise = (_ start: UInt, _ length: Int) -> Void

    private let backward: Bool
    private let advise: Advise
    /// The advised window, [low, high), and the address past which the next is advised.
    private var low: UInt = 0
    private var high: UInt = 0
    private var trigger: UInt = 0
    private var started = false

    public init(backward: Bool = false, advise: @escaping Advise = ReadAhead.willNeedUnlessCached) {
        self.backward = backward
        self.advise = advise
    }

    @inline(__always)
    public mutating func note(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        let address = UInt(bitPattern: base)
        if address >= low && address < high && (backward ? address >= trigger : address < trigger) { return }
        if started { moveWindow(to: address) } else { start(at: address) }
    }

    /// The first window: `startBytes` from where the scan begins, not advised.
    private mutating func start(at address: UInt) {
        started = true
        let span = UInt(Self.startBytes), page = address & ~(Self.pageBytes - 1)
        if backward {
            high = page + Self.pageBytes
            low = high >= span ? high - span : 0
            trigger = low
        } else {
            low = page
            high = page + span
            trigger = high
        }
    }

    private mutating func moveWindow(to address: UInt) {
        let window = UInt(Self.windowBytes)
        let page = address & ~(Self.pageBytes - 1)
        if backward {
            low = page >= window - Self.pageBytes ? page - (window - Self.pageBytes) : 0
            high = page + Self.pageBytes
            trigger = high - window / 2
        } else {
            low = page
            high = page + window
            trigger = page + window / 2
        }
        advise(low, Int(high - low))
    }

    /// `MADV_WILLNEED` over the window, unless its first and last pages are resident already (one is
    /// where the scan is, the other where it is going).
    public static func willNeedUnlessCached(start: UInt, length: Int) {
        func resident(_ address: UInt) -> Bool {
            var vector: UInt8 = 0
            return mincore(UnsafeMutableRawPointer(bitPattern: address), Int(pageBytes), &vector) == 0 && vector & 1 != 0
        }
        if resident(start) && resident(start + UInt(length) - pageBytes) { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), length, MADV_WILLNEED)
    }
}

/// Asks the processor to bring in the `bytes` just below `value`, a value on a leaf page. LMDB lays a
/// page's nodes out from its end down, in key order, so in a forward scan of values appended in order
/// the next value lies just below this one: its cache lines arrive while this one is read. A hint:
/// nothing changes but the timing (a prefetch never faults, whatever the address).
@inlinable
public func prefetchBelow(_ value: UnsafeRawBufferPointer, bytes: Int) {
    guard let base = value.baseAddress else { return }
    var offset = 64
    while offset <= bytes {
        tally_prefetch(base - offset)
        offset += 64
    }
}
