#if canImport(Glibc)
import Glibc
#endif
import RivetCPU

/// Linux signal numbers (the same on RISC-V and the hosts Rivet runs on).
enum Sig {
    static let ill: Int = 4, trap = 5, abrt = 6, bus = 7, fpe = 8, kill = 9, segv = 11, pipe = 13
    static let chld = 17, cont = 18, stop = 19, tstp = 20, ttin = 21, ttou = 22, urg = 23, winch = 28
    @inline(__always) static func bit(_ s: Int) -> UInt64 { 1 << UInt64(s - 1) }
    static let unblockable = bit(kill) | bit(stop)
    /// Signals whose default action is to do nothing (stop signals are treated the same: no job control).
    static let ignoredByDefault = bit(chld) | bit(cont) | bit(urg) | bit(winch) | bit(stop) | bit(tstp) | bit(ttin) | bit(ttou)
    /// Raised by the guest's own faults: never mirrored to host handlers.
    static let synchronous = bit(ill) | bit(trap) | bit(bus) | bit(fpe) | bit(segv)
}

/// A guest sigaction (RISC-V has no sa_restorer).
struct SigAction {
    var handler: UInt64 = 0  // SIG_DFL 0, SIG_IGN 1
    var flags: UInt64 = 0
    var mask: UInt64 = 0
    static let saSiginfo: UInt64 = 4, saOnstack: UInt64 = 0x0800_0000, saRestart: UInt64 = 0x1000_0000
    static let saNodefer: UInt64 = 0x4000_0000, saResethand: UInt64 = 0x8000_0000
}

/// Why a signal is pending (fills siginfo).
struct SigSource { var code: Int32 = 0; var pid: Int32 = 0; var uid: UInt32 = 0; var addr: UInt64 = 0 }

// Host signals the guest handles are caught into these flags (written by the async-signal handler).
nonisolated(unsafe) let hostSignalFlags: UnsafeMutablePointer<UInt8> = {
    let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 66)
    p.initialize(repeating: 0, count: 66)
    return p
}()

private let hostCatcher: @convention(c) (Int32) -> Void = { sig in
    if sig > 0 && sig <= 64 { hostSignalFlags[Int(sig)] = 1; hostSignalFlags[65] = 1 }
}

@inline(__always) func hostSignalsArrived() -> Bool { hostSignalFlags[65] != 0 }

extension UserProcess {
    // rt_sigframe layout for riscv64: siginfo (128) then ucontext; mcontext at ucontext+176.
    static let frameSize = 1088
    static let ucOffset = 128
    static let mcOffset = 128 + 176
    static let fpOffset = 128 + 176 + 256

    /// Takes over the guest-visible dispositions the host process inherited (SIG_IGN survives exec).
    func installHostSignalMirror() {
        _ = hostSignalFlags.pointee
        for s in 1...64 where s != Sig.kill && s != Sig.stop {
            var old = sigaction()
            if sigaction(Int32(s), nil, &old) == 0, unsafeBitCast(old.__sigaction_handler.sa_handler, to: Int.self) == 1 {
                actions[s].handler = 1
            }
        }
    }

    /// Makes the host's disposition for `s` follow the guest's: default and ignore are the host's own
    /// (so an external signal ends rivet exactly as it would end the program); a guest handler is caught into
    /// the flags and delivered between blocks.
    func mirrorToHost(_ s: Int) {
        guard s >= 1, s <= 64, Sig.bit(s) & (Sig.synchronous | Sig.unblockable) == 0 else { return }
        guard s < 32 || s > 34 else { return }  // glibc's own real-time signals in the host
        var sa = sigaction()
        sigemptyset(&sa.sa_mask)
        switch actions[s].handler {
        case 0: sa.__sigaction_handler.sa_handler = SIG_DFL
        case 1: sa.__sigaction_handler.sa_handler = SIG_IGN
        default: sa.__sigaction_handler.sa_handler = hostCatcher
        }
        sigaction(Int32(s), &sa, nil)
    }

    /// Moves host-caught signals into the process's pending set (lock held).
    func collectHostSignals() {
        guard hostSignalFlags[65] != 0 else { return }
        hostSignalFlags[65] = 0
        for s in 1...64 where hostSignalFlags[s] != 0 {
            hostSignalFlags[s] = 0
            if pendingWakes[s] > 0 { pendingWakes[s] -= 1; continue }
            processPending |= Sig.bit(s)
            processSources[s] = SigSource(code: 0)
        }
    }

    /// Ends rivet with signal `s`, the way the signal ends the program (no core file).
    func die(_ s: Int) -> Never {
        var rl = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &rl)
        signal(Int32(s), SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, Int32(s))
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        kill(getpid(), Int32(s))
        exit(128 + Int32(s))
    }

    /// A fault raised by the guest's own instruction: delivered now; if blocked or ignored, it kills (as Linux).
    func forceSignal(_ t: GuestThread, _ s: Int, code: Int32, addr: UInt64) {
        lock.lock()
        if t.sigmask & Sig.bit(s) != 0 || actions[s].handler == 1 {
            actions[s] = SigAction()
            t.sigmask &= ~Sig.bit(s)
        }
        let act = actions[s]
        lock.unlock()
        if act.handler == 0 { die(s) }
        setupFrame(t, s, act, SigSource(code: code, addr: addr))
    }

    /// Queues a signal for a thread (tgkill) or the process (kill).
    func queueSignal(_ s: Int, to t: GuestThread?, source: SigSource) {
        lock.locked {
            let h = actions[s].handler
            if h == 1 || (h == 0 && Sig.bit(s) & Sig.ignoredByDefault != 0) { return }  // discarded at generation
            if let t {
                t.pending |= Sig.bit(s); t.sources[s] = source
            } else {
                processPending |= Sig.bit(s); processSources[s] = source
            }
        }
    }

    /// Delivers every pending, unblocked signal to `t`: runs default actions or builds handler frames.
    func deliverPendingSignals(_ t: GuestThread) {
        while true {
            lock.lock()
            collectHostSignals()
            let ready = (t.pending | processPending) & ~t.sigmask
            if ready == 0 {
                if let m = t.suspendedMask { t.sigmask = m; t.suspendedMask = nil }
                lock.unlock(); return
            }
            let s = ready.trailingZeroBitCount + 1
            let source: SigSource
            if t.pending & Sig.bit(s) != 0 {
                t.pending &= ~Sig.bit(s); source = t.sources[s]
            } else {
                processPending &= ~Sig.bit(s); source = processSources[s]
            }
            let act = actions[s]
            lock.unlock()
            if act.handler == 1 { continue }
            if act.handler == 0 {
                if Sig.bit(s) & Sig.ignoredByDefault != 0 { continue }
                die(s)
            }
            setupFrame(t, s, act, source)
        }
    }

    /// Builds an rt_sigframe on the guest stack and enters the handler.
    func setupFrame(_ t: GuestThread, _ s: Int, _ act: SigAction, _ src: SigSource) {
        let hart = t.hart
        var sp = hart.x[2]
        let alt = t.altStack
        if act.flags & SigAction.saOnstack != 0 && alt.flags == 0 && !(sp > alt.sp && sp <= alt.sp &+ alt.size) {
            sp = alt.sp &+ alt.size
        }
        let frame = (sp &- UInt64(UserProcess.frameSize)) & ~15
        var b = [UInt8](repeating: 0, count: UserProcess.frameSize)
        func put<T>(_ off: Int, _ v: T) { withUnsafeBytes(of: v) { for (i, x) in $0.enumerated() { b[off + i] = x } } }
        put(0, Int32(s)); put(8, src.code)
        if Sig.bit(s) & Sig.synchronous != 0 && src.code > 0 { put(16, src.addr) } else { put(16, src.pid); put(20, src.uid) }
        let uc = UserProcess.ucOffset
        put(uc + 16, alt.sp); put(uc + 24, alt.flags); put(uc + 32, alt.size)
        put(uc + 40, t.suspendedMask ?? t.sigmask)
        let mc = UserProcess.mcOffset
        put(mc, t.userPC)
        for i in 1..<32 { put(mc + 8 * i, hart.x[i]) }
        let fp = UserProcess.fpOffset
        for i in 0..<32 { put(fp + 8 * i, hart.f[i]) }
        put(fp + 256, UInt32(truncatingIfNeeded: (hart.csr.frm << 5) | hart.csr.fflags))
        let ok = lock.locked { mm.write(frame, b) }
        guard ok else { die(Sig.segv) }
        hart.x[2] = frame
        hart.x[10] = UInt64(s)
        hart.x[11] = frame
        hart.x[12] = frame + UInt64(uc)
        hart.x[1] = AddressSpace.trampolineVA
        t.userPC = act.handler
        lock.locked {
            t.sigmask = (t.suspendedMask ?? t.sigmask)
            t.suspendedMask = nil
            t.sigmask |= act.mask
            if act.flags & SigAction.saNodefer == 0 { t.sigmask |= Sig.bit(s) }
            t.sigmask &= ~Sig.unblockable
            if act.flags & SigAction.saResethand != 0 { actions[s] = SigAction(); mirrorToHost(s) }
        }
    }

    /// rt_sigreturn: restores registers and mask from the frame at sp.
    func sigreturn(_ t: GuestThread) {
        let hart = t.hart
        let frame = hart.x[2]
        guard let b = lock.locked({ mm.read(frame, UserProcess.frameSize) }) else {
            forceSignal(t, Sig.segv, code: 1, addr: frame); return
        }
        func get64(_ o: Int) -> UInt64 { b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt64.self) } }
        let mc = UserProcess.mcOffset
        t.userPC = get64(mc)
        for i in 1..<32 { hart.x[i] = get64(mc + 8 * i) }
        let fp = UserProcess.fpOffset
        for i in 0..<32 { hart.f[i] = get64(fp + 8 * i) }
        let fcsr = b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: fp + 256, as: UInt32.self) }
        hart.csr.fflags = UInt64(fcsr & 0x1f); hart.csr.frm = UInt64((fcsr >> 5) & 7)
        let mask = get64(UserProcess.ucOffset + 40)
        lock.locked { t.sigmask = mask & ~Sig.unblockable }
    }
}

/// The host signal mask of the calling thread, as a guest-style bit set (bit n-1 for signal n). Only
/// signals the guest may block are mirrored: not the synchronous ones (faults), SIGKILL/SIGSTOP, or glibc's
/// internal 32-34 (rivet's own threads need them).
enum HostMask {
    static let mirrorable: UInt64 = ~(Sig.synchronous | Sig.unblockable | Sig.bit(32) | Sig.bit(33) | Sig.bit(34))

    static func sigset(_ bits: UInt64) -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        withUnsafeMutableBytes(of: &set) { $0.storeBytes(of: bits & mirrorable, as: UInt64.self) }
        return set
    }

    static func set(_ bits: UInt64) {
        var s = sigset(bits)
        pthread_sigmask(SIG_SETMASK, &s, nil)
    }

    static func current() -> UInt64 {
        var s = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &s)
        return withUnsafeBytes(of: &s) { $0.load(as: UInt64.self) } & mirrorable
    }

    /// Signals pending for the calling thread or the process in the host (blocked ones from outside).
    static func pending() -> UInt64 {
        var s = sigset_t()
        sigpending(&s)
        return withUnsafeBytes(of: &s) { $0.load(as: UInt64.self) } & mirrorable
    }
}
