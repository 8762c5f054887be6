#if canImport(Glibc)
import Glibc
#endif
import RivetDevices

/// A pthread mutex (the backends share queues between their thread and the machine thread).
final class Lock {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(mutex, nil) }
    deinit { pthread_mutex_destroy(mutex); mutex.deallocate() }
    @inline(__always) func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// A bounded FIFO of Ethernet frames between two threads. A full queue drops new frames, as a link does
/// when the receiver cannot keep up (TCP retransmits).
final class FrameQueue {
    private let lock = Lock()
    private var frames: [[UInt8]] = []
    private var head = 0
    private var bytes = 0
    let maxFrames: Int
    let maxBytes: Int
    private(set) var dropped: UInt64 = 0

    init(maxFrames: Int = 4096, maxBytes: Int = 8 << 20) {
        self.maxFrames = maxFrames
        self.maxBytes = maxBytes
    }

    enum PushResult { case queuedFirst, queued, dropped }

    /// Appends a frame; `.queuedFirst` when the queue was empty before (the consumer needs a wakeup).
    @discardableResult func push(_ frame: [UInt8]) -> PushResult {
        lock.locked {
            let count = frames.count - head
            guard count < maxFrames, bytes + frame.count <= maxBytes else { dropped &+= 1; return .dropped }
            frames.append(frame)
            bytes += frame.count
            return count == 0 ? .queuedFirst : .queued
        }
    }

    func peek() -> [UInt8]? {
        lock.locked { head < frames.count ? frames[head] : nil }
    }

    @discardableResult func pop() -> [UInt8]? {
        lock.locked {
            guard head < frames.count else { return nil }
            let f = frames[head]
            frames[head] = []
            head += 1
            bytes -= f.count
            if head == frames.count { frames.removeAll(keepingCapacity: true); head = 0 }
            else if head >= 1024 && head * 2 >= frames.count { frames.removeFirst(head); head = 0 }
            return f
        }
    }

    var isEmpty: Bool { lock.locked { head == frames.count } }

    func removeAll() { lock.locked { frames.removeAll(); head = 0; bytes = 0 } }
}

/// Common part of the backends: a host thread that serves the outside world, a queue of frames for the
/// guest (`incoming`) and one of frames from the guest (`outgoing`), and an eventfd that wakes the thread
/// when the guest sends or when it must stop.
public class ThreadedBackend: NetworkBackend {
    public let label: String
    public var mtu: Int? { nil }
    public var deliversValidChecksums: Bool { false }
    let incoming = FrameQueue()
    let outgoing = FrameQueue()
    /// Readable when the thread has work from the machine side (frames to send, a stop request): the read
    /// end of a non-blocking self-pipe (Swift's Glibc module has no eventfd).
    let wakeFD: Int32
    private let wakeWriteFD: Int32
    private let stateLock = Lock()
    private var stopRequested = false
    private var framesAvailable: (() -> Void)?
    private var thread: pthread_t?

    init(label: String) throws {
        self.label = label
        // libslirp writes to host sockets with plain send(2): a peer that went away must give EPIPE, not a
        // SIGPIPE that kills the whole machine (QEMU ignores SIGPIPE for the same reason).
        signal(SIGPIPE, SIG_IGN)
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw NetworkError("\(label): pipe: \(String(cString: strerror(errno)))") }
        for e in ends {
            _ = fcntl(e, F_SETFL, fcntl(e, F_GETFL) | O_NONBLOCK)
            _ = fcntl(e, F_SETFD, FD_CLOEXEC)
        }
        wakeFD = ends[0]
        wakeWriteFD = ends[1]
    }

    deinit { close(wakeFD); close(wakeWriteFD) }

    var stopping: Bool { stateLock.locked { stopRequested } }

    public func start(framesAvailable: @escaping () -> Void) {
        self.framesAvailable = framesAvailable
        let context = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        let r = pthread_create(&handle, nil, { raw in
            let backend = Unmanaged<ThreadedBackend>.fromOpaque(raw!).takeRetainedValue()
            backend.serve()
            return nil
        }, context)
        if r != 0 {
            Unmanaged<ThreadedBackend>.fromOpaque(context).release()
            fputs("rivet: \(label): cannot start its thread (\(String(cString: strerror(r)))); the network is down\n", stderr)
            return
        }
        thread = handle
    }

    /// The thread's loop; returns when `stopping` becomes true. Subclasses implement it.
    func serve() {}

    /// Called by subclasses with a frame for the guest.
    final func deliver(_ frame: [UInt8]) {
        if incoming.push(frame) == .queuedFirst { framesAvailable?() }
    }

    final func wakeThread() {
        var one: UInt8 = 1
        _ = write(wakeWriteFD, &one, 1)
    }

    final func drainWake() {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &buffer, { read(wakeFD, $0.baseAddress, $0.count) }) > 0 {}
    }

    public func transmit(_ frame: UnsafeRawBufferPointer) {
        if outgoing.push(Array(frame)) == .queuedFirst { wakeThread() }
    }

    public func peekReceived() -> [UInt8]? { incoming.peek() }
    public func dropReceived() { incoming.pop() }
    public var hasReceived: Bool { !incoming.isEmpty }

    public func shutdown() {
        let handle: pthread_t? = stateLock.locked {
            stopRequested = true
            defer { thread = nil }
            return thread
        }
        wakeThread()
        if let handle { pthread_join(handle, nil) }
        closeResources()
    }

    /// Closes sockets and devices once the thread has ended.
    func closeResources() {}
}

public struct NetworkError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

func errnoText() -> String { String(cString: strerror(errno)) }

/// Waits (at most `timeoutMs`, -1 = forever) for any of `fds` to be ready; EINTR counts as a timeout.
func pollFDs(_ fds: inout [pollfd], timeoutMs: Int32) -> Int32 {
    let r = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeoutMs) }
    return r < 0 && errno == EINTR ? 0 : r
}
