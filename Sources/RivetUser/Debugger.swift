#if canImport(Glibc)
import Glibc
#endif
import RivetCPU

/// The process side of `rivet user -g PORT`: all-stop debugging of the guest threads.
///
/// Guest threads check `mustPark` once per run slice (200,000 instructions; nothing per instruction)
/// and park while the debugger holds the process stopped. A thread whose hart stops on a breakpoint,
/// step or watchpoint reports it and parks; the others park at their next slice. A thread blocked in a
/// system call parks when the call returns. The gdb stub's thread reads and writes registers and memory
/// only while the process is stopped.
public final class UserDebugger {
    let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    let cond: UnsafeMutablePointer<pthread_cond_t> = {
        let c = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        pthread_cond_init(c, nil)
        return c
    }()
    unowned(unsafe) var process: UserProcess! = nil
    // Under mutex.
    var stopped = true            // qemu-user -g: nothing runs until gdb continues
    var generation = 0            // bumps on every resume
    var stepThread: Int32? = nil
    var breakpoints: Set<UInt64> = []
    var watchpoints: [DebugHooks.Watchpoint] = []
    var pendingStop: (tid: Int32, stop: DebugHooks.Stop?, exitCode: Int32?)? = nil
    public var stopHandler: (() -> Void)? = nil
    /// Read without the lock once per slice; a stale value only delays parking by one slice.
    public private(set) var mustPark = true

    public init() {}

    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    // MARK: Guest threads

    /// Parks the calling guest thread while the process is stopped, then installs its debug hooks.
    func park(_ t: GuestThread) {
        pthread_mutex_lock(mutex)
        while stopped { pthread_cond_wait(cond, mutex) }
        let hooks = DebugHooks()
        hooks.breakpoints = breakpoints
        hooks.watchpoints = watchpoints
        hooks.singleStep = stepThread == t.tid
        pthread_mutex_unlock(mutex)
        t.hart.setDebugHooks(hooks.isEmpty ? nil : hooks)
    }

    /// A hook fired on `t`'s hart: report it (the first report wins) and stop everything.
    func reportStop(_ t: GuestThread, _ stop: DebugHooks.Stop?) {
        pthread_mutex_lock(mutex)
        var notify = false
        if !stopped {
            stopped = true
            mustPark = true
            pendingStop = (t.tid, stop, nil)
            notify = true
        }
        pthread_mutex_unlock(mutex)
        if notify { stopHandler?() }
        park(t)
    }

    /// The process is exiting with `code`: tell gdb (W packet) and give the stub a moment to send it.
    func reportExit(_ code: Int32) {
        pthread_mutex_lock(mutex)
        stopped = true
        pendingStop = (0, nil, code)
        pthread_mutex_unlock(mutex)
        stopHandler?()
        usleep(200_000)
    }

    // MARK: The gdb stub's thread

    public func resume(step: Int32?) {
        pthread_mutex_lock(mutex)
        stepThread = step
        pendingStop = nil
        stopped = false
        mustPark = false
        generation += 1
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Ctrl-C: threads park at their next slice; the first to park reports SIGINT.
    public func interrupt() {
        locked { mustPark = true }
    }

    public func takeStop() -> (tid: Int32, stop: DebugHooks.Stop?, exitCode: Int32?)? {
        locked { let s = pendingStop; pendingStop = nil; return s }
    }

    public func setPoints(breakpoints: Set<UInt64>, watchpoints: [DebugHooks.Watchpoint]) {
        locked { self.breakpoints = breakpoints; self.watchpoints = watchpoints }
    }

    /// Thread ids, ascending.
    public func threadIDs() -> [Int32] { process.lock.locked { process.threads.keys.sorted() } }

    func hart(_ tid: Int32) -> GuestThread? { process.lock.locked { process.threads[tid] } }

    /// Registers as gdb numbers them (x0-x31, pc = the user pc, f0-f31, fflags, frm, fcsr).
    public func readRegister(tid: Int32, number n: Int) -> UInt64? {
        guard let t = hart(tid) else { return nil }
        let h = t.hart
        switch n {
        case 0..<32: return h.x[n]
        case 32: return t.userPC
        case 33...64: return h.f[n - 33]
        case 66: return h.csr.fflags
        case 67: return h.csr.frm
        case 68: return (h.csr.frm << 5) | h.csr.fflags
        default: return nil
        }
    }

    public func writeRegister(tid: Int32, number n: Int, value: UInt64) -> Bool {
        guard let t = hart(tid) else { return false }
        let h = t.hart
        switch n {
        case 0: break
        case 1..<32: h.x[n] = value
        case 32: t.userPC = value
        case 33...64: h.f[n - 33] = value
        case 66: h.csr.fflags = value & 0x1f
        case 67: h.csr.frm = value & 7
        case 68: h.csr.fflags = value & 0x1f; h.csr.frm = (value >> 5) & 7
        default: return false
        }
        return true
    }

    public func readMemory(address: UInt64, length: Int) -> [UInt8] {
        // Page by page, so a read that runs into an unmapped page returns what precedes it.
        var out: [UInt8] = []
        var a = address
        var left = length
        while left > 0 {
            let chunk = min(left, Int(0x1000 - (a & 0xfff)))
            guard let bytes = process.copyIn(a, chunk) else { break }
            out += bytes
            a &+= UInt64(chunk); left -= chunk
        }
        return out
    }

    public func writeMemory(address: UInt64, bytes: [UInt8]) -> Bool {
        guard process.copyOut(address, bytes) else { return false }
        process.lock.locked { for (_, t) in process.threads { t.cache.flushAll(); t.hart.requestTLBFlush() } }
        return true
    }

    /// Removes all points and lets the process run on.
    public func detach() {
        locked { breakpoints = []; watchpoints = [] }
        resume(step: nil)
    }

    public func kill() -> Never { exit(137) }
}

extension UserProcess {
    /// Attaches a debugger before `run` (rivet user -g).
    public func attachDebugger(_ d: UserDebugger) {
        d.process = self
        debugger = d
        uncheckedLoads = nil  // watchpoints work through the TLB, which unchecked loads skip
        mm.giveUpHostProtection()
    }
}
