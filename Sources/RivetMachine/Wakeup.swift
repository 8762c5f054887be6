#if canImport(Glibc)
import Glibc
#endif

/// Wakes the machine's run loop from another thread (a network backend with frames, a management
/// command): `VirtMachine.idle()` polls `fd` beside the console.
///
/// A non-blocking self-pipe: Swift's Glibc module does not export eventfd(2), and a pipe behaves the same
/// for one reader (it stays readable until drained; a full pipe is still readable, so `signal` never
/// blocks and never loses a wakeup).
public final class Wakeup {
    /// The end to poll for POLLIN.
    public let fd: Int32
    private let writeFD: Int32

    public init() {
        var ends: [Int32] = [-1, -1]
        let r = pipe(&ends)
        precondition(r == 0, "pipe failed: \(String(cString: strerror(errno)))")
        for e in ends {
            _ = fcntl(e, F_SETFL, fcntl(e, F_GETFL) | O_NONBLOCK)
            _ = fcntl(e, F_SETFD, FD_CLOEXEC)
        }
        fd = ends[0]
        writeFD = ends[1]
    }

    deinit { close(fd); close(writeFD) }

    /// Makes `fd` readable (safe from any thread).
    public func signal() {
        var one: UInt8 = 1
        _ = write(writeFD, &one, 1)
    }

    /// Clears the readable state (the run loop, after waking).
    public func drain() {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &buffer, { read(fd, $0.baseAddress, $0.count) }) > 0 {}
    }
}
