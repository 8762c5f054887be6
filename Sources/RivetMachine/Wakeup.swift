#if canImport(Glibc)
import Glibc
#endif

/// Wakes a thread sleeping in poll(2): an eventfd that any thread may signal.
///
/// The run loop polls `fd` beside the console while the harts idle or the machine is paused, so a request
/// posted from another thread (QMP, a backend) is served at once instead of at the next timer tick.
public final class Wakeup {
    public let fd: Int32

    public init() {
        // Glibc's Swift module does not export <sys/eventfd.h>; the flags equal O_NONBLOCK and O_CLOEXEC.
        typealias EventFD = @convention(c) (UInt32, Int32) -> Int32
        let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "eventfd")
        precondition(sym != nil, "libc has no eventfd")
        fd = unsafeBitCast(sym, to: EventFD.self)(0, O_NONBLOCK | O_CLOEXEC)
        precondition(fd >= 0, "eventfd failed")
    }

    deinit { close(fd) }

    /// Makes `fd` readable (safe from any thread).
    public func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
    }

    /// Clears the readable state after a poll saw it.
    public func drain() {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { read(fd, $0.baseAddress, 8) }
    }
}
