import Foundation

/// Starts a thread that the operating system knows by `name` (at most 15 bytes on Linux), so
/// `top -H`, `perf` and debuggers tell the log's writer and acknowledger from callers' threads.
func startNamedThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
    precondition(name.utf8.count <= 15, "thread names are at most 15 bytes")
    let thread = Thread {
        if let setName = ThreadNaming.set { _ = setName(pthread_self(), name) }
        body()
    }
    thread.name = name
    thread.start()
}

/// The operating system's name of the calling thread ("" where it cannot be read).
func currentThreadName() -> String {
    guard let getName = ThreadNaming.get else { return "" }
    var buffer = [CChar](repeating: 0, count: 16)
    guard getName(pthread_self(), &buffer, buffer.count) == 0 else { return "" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// glibc's `pthread_setname_np` and `pthread_getname_np`, looked up at run time: Swift's Glibc
/// module does not import them (they need `_GNU_SOURCE`).
private enum ThreadNaming {
    typealias Set = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
    typealias Get = @convention(c) (pthread_t, UnsafeMutablePointer<CChar>, Int) -> Int32
    static let set: Set? = dlsym(nil, "pthread_setname_np").map { unsafeBitCast($0, to: Set.self) }
    static let get: Get? = dlsym(nil, "pthread_getname_np").map { unsafeBitCast($0, to: Get.self) }
}

/// One result per iteration of a `DispatchQueue.concurrentPerform`: iteration i writes slot i, and
/// only it, through that slot's own address (an array's subscript would be a simultaneous access to
/// the whole array from several threads); the slots are read once `concurrentPerform` has returned.
final class ParallelSlots<Value>: @unchecked Sendable {
    // @unchecked: see above; nothing else touches the slots while the iterations run.
    private let slots: UnsafeMutableBufferPointer<Value>

    init(count: Int, initial: Value) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: initial)
    }

    deinit {
        slots.deinitialize()
        slots.deallocate()
    }

    /// The slot's value, moved out (no copy kept), `leaving` in its place.
    func take(_ slot: Int, leaving: Value) -> Value {
        let value = (slots.baseAddress! + slot).move()
        (slots.baseAddress! + slot).initialize(to: leaving)
        return value
    }

    subscript(slot: Int) -> Value {
        get { slots[slot] }
        set { slots[slot] = newValue }
    }
}
