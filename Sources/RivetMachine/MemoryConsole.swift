#if canImport(Glibc)
import Glibc
#endif
import RivetDevices

/// A console kept in memory, for programs that embed machines and for tests: any thread may send input
/// and read, wait for or stream the output; the host's terminal and signals are never touched.
///
/// Output is kept whole (``output``, ``outputText``) and is also delivered in chunks to every
/// ``outputChunks()`` stream. Input sent before the guest reads it waits in order; an idle machine wakes
/// for it at once. Thread safety: everything public may be called from any thread; the
/// ``MachineConsole`` members are for the machine's run loop.
public final class MemoryConsole: MachineConsole {
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    let changed: UnsafeMutablePointer<pthread_cond_t>
    /// Readable while input waits in `incoming` (the run loop polls it when idle).
    let inputWakeup = Wakeup()
    // Shared (behind `mutex`).
    var incoming: [UInt8] = []
    var transcript: [UInt8] = []
    var streams: [Int: AsyncStream<[UInt8]>.Continuation] = [:]
    var nextStreamID = 0
    var finished = false
    // Run-loop thread only.
    var outBuffer: [UInt8] = []
    public var pendingInput: [UInt8] = []

    public init() {
        mutex = .allocate(capacity: 1)
        changed = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
        outBuffer.reserveCapacity(4096)
    }

    deinit {
        for c in streams.values { c.finish() }
        pthread_cond_destroy(changed); pthread_mutex_destroy(mutex)
        changed.deallocate(); mutex.deallocate()
    }

    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    // MARK: For the embedding program (any thread)

    /// Queues `bytes` as keyboard input for the guest.
    public func send(bytes: [UInt8]) {
        // Signalled under the lock: the wakeup is readable exactly while input waits.
        locked { incoming += bytes; inputWakeup.signal() }
    }

    /// Queues `text` (UTF-8) as keyboard input; a shell command needs its own "\n".
    public func send(_ text: String) { send(bytes: Array(text.utf8)) }

    /// Every byte the guest wrote so far.
    public var output: [UInt8] { locked { transcript } }

    /// ``output`` as text (invalid UTF-8 is repaired).
    public var outputText: String { String(decoding: output, as: UTF8.self) }

    /// How many bytes the guest wrote so far: an offset for ``waitForOutput(_:after:timeoutSeconds:)``.
    public var outputCount: Int { locked { transcript.count } }

    /// Blocks until the output from byte offset `after` on contains `text`, and returns the offset just
    /// past its first occurrence; nil when `timeoutSeconds` passed, or the machine stopped, without it.
    public func waitForOutput(_ text: String, after: Int = 0, timeoutSeconds: Double) -> Int? {
        let needle = Array(text.utf8)
        let deadline = hostNanoseconds() &+ UInt64(max(0, timeoutSeconds) * 1e9)
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        var searchFrom = max(0, after)
        while true {
            if let end = MemoryConsole.find(needle, in: transcript, from: searchFrom) { return end }
            // The next search need only look at what arrives, plus a needle's length of overlap.
            searchFrom = max(searchFrom, transcript.count - needle.count + 1)
            let now = hostNanoseconds()
            if finished || now >= deadline { return nil }
            let wait = deadline - now
            var until = timespec()
            clock_gettime(CLOCK_REALTIME, &until)
            let total = UInt64(until.tv_nsec) + min(wait, 1_000_000_000)
            until.tv_sec += Int(total / 1_000_000_000)
            until.tv_nsec = Int(total % 1_000_000_000)
            pthread_cond_timedwait(changed, mutex, &until)
        }
    }

    /// A stream of the guest's output from now on, in the chunks the run loop flushes; it finishes when
    /// the machine has stopped. Several streams may be open at once.
    public func outputChunks() -> AsyncStream<[UInt8]> {
        AsyncStream { continuation in
            let id: Int? = locked {
                if finished { return nil }
                nextStreamID += 1
                streams[nextStreamID] = continuation
                return nextStreamID
            }
            guard let id else { continuation.finish(); return }
            continuation.onTermination = { [weak self] _ in
                guard let self else { return }
                self.locked { _ = self.streams.removeValue(forKey: id) }
            }
        }
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty else { return from <= hay.count ? from : nil }
        guard hay.count >= needle.count, from <= hay.count - needle.count else { return nil }
        var i = from
        while i <= hay.count - needle.count {
            if hay[i] == needle[0] {
                var j = 1
                while j < needle.count && hay[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i + j }
            }
            i += 1
        }
        return nil
    }

    func hostNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    // MARK: MachineConsole (the run loop)

    public func start() {
        locked { finished = false }
    }

    public func serialWrite(_ byte: UInt8) {
        outBuffer.append(byte)
        if outBuffer.count >= 4096 { flush() }
    }

    public func flush() {
        guard !outBuffer.isEmpty else { return }
        let chunk = outBuffer
        outBuffer.removeAll(keepingCapacity: true)
        let listeners: [AsyncStream<[UInt8]>.Continuation] = locked {
            transcript += chunk
            pthread_cond_broadcast(changed)
            return Array(streams.values)
        }
        for c in listeners { c.yield(chunk) }
    }

    public func pump(into uart: UART16550) -> ConsoleEvent {
        let arrived: [UInt8] = locked {
            guard !incoming.isEmpty else { return [] }
            inputWakeup.drain()
            let bytes = incoming
            incoming.removeAll()
            return bytes
        }
        pendingInput += arrived
        var taken = 0
        while taken < pendingInput.count, uart.receive(pendingInput[taken]) { taken += 1 }
        if taken > 0 { pendingInput.removeFirst(taken) }
        return .none
    }

    /// The machine has stopped: output is complete, waiters return and the streams finish.
    public func restore() {
        flush()
        let listeners: [AsyncStream<[UInt8]>.Continuation] = locked {
            finished = true
            pthread_cond_broadcast(changed)
            let all = Array(streams.values)
            streams = [:]
            return all
        }
        for c in listeners { c.finish() }
    }

    public var inputReadyFD: Int32 { inputWakeup.fd }
    public var hasPendingInput: Bool { !pendingInput.isEmpty }
}
