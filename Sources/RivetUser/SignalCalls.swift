#if canImport(Glibc)
import Glibc
#endif

extension UserProcess {
    func sigactionCall(_ sig: UInt64, _ act: UInt64, _ oact: UInt64, _ size: UInt64) -> Int64 {
        guard size == 8 else { return EINVALr }
        let s = i32(sig)
        guard s >= 1, s <= 64 else { return EINVALr }
        var new: SigAction? = nil
        if act != 0 {
            guard s != Sig.kill, s != Sig.stop else { return EINVALr }
            guard let b = copyIn(act, 24) else { return EFAULTr }
            b.withUnsafeBytes {
                new = SigAction(handler: $0.loadUnaligned(as: UInt64.self), flags: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                                mask: $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self) & ~Sig.unblockable)
            }
        }
        let old: SigAction = lock.locked {
            let o = actions[s]
            if let new {
                actions[s] = new
                mirrorToHost(s)
                // Setting SIG_IGN discards pending instances (as Linux does).
                if new.handler == 1 || (new.handler == 0 && Sig.bit(s) & Sig.ignoredByDefault != 0) {
                    processPending &= ~Sig.bit(s)
                    for th in threads.values { th.pending &= ~Sig.bit(s) }
                }
            }
            return o
        }
        if oact != 0 && !copyOut(oact, value: (old.handler, old.flags, old.mask)) { return EFAULTr }
        return 0
    }

    func sigprocmaskCall(_ t: GuestThread, _ how: UInt64, _ set: UInt64, _ oset: UInt64, _ size: UInt64) -> Int64 {
        guard size == 8 else { return EINVALr }
        var new: UInt64? = nil
        if set != 0 {
            guard let b = copyIn(set, 8) else { return EFAULTr }
            new = b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            guard how <= 2 else { return EINVALr }
        }
        let old = t.sigmask
        if let n = new {
            lock.locked {
                switch how {
                case 0: t.sigmask |= n
                case 1: t.sigmask &= ~n
                default: t.sigmask = n
                }
                t.sigmask &= ~Sig.unblockable
            }
        }
        if oset != 0 && !copyOut(oset, value: old) { return EFAULTr }
        return 0
    }

    /// Waits (polling host-caught signals) until something deliverable is pending.
    func sigsuspendCall(_ t: GuestThread, _ maskPtr: UInt64, _ size: UInt64) -> Int64 {
        guard size == 8 else { return EINVALr }
        guard let b = copyIn(maskPtr, 8) else { return EFAULTr }
        let mask = b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } & ~Sig.unblockable
        lock.locked { t.suspendedMask = t.sigmask; t.sigmask = mask }
        while true {
            let ready = lock.locked { () -> Bool in
                collectHostSignals()
                return (t.pending | processPending) & ~t.sigmask != 0
            }
            if ready { return -Int64(EINTR) }
            usleep(1000)
        }
    }

    func sigtimedwaitCall(_ t: GuestThread, _ setPtr: UInt64, _ infoPtr: UInt64, _ tsPtr: UInt64, _ size: UInt64) -> Int64 {
        guard size == 8 else { return EINVALr }
        guard let b = copyIn(setPtr, 8) else { return EFAULTr }
        let set = b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } & ~Sig.unblockable
        var deadline: UInt64? = nil
        if tsPtr != 0 {
            guard let tb = copyIn(tsPtr, 16) else { return EFAULTr }
            let ts = tb.withUnsafeBytes { $0.loadUnaligned(as: (Int64, Int64).self) }
            guard ts.0 >= 0, ts.1 >= 0, ts.1 < 1_000_000_000 else { return EINVALr }
            deadline = monotonicNs() &+ UInt64(ts.0) &* 1_000_000_000 &+ UInt64(ts.1)
        }
        while true {
            // A signal from outside that the guest blocks waits in the host's pending set.
            var hostInfo = siginfo_t()
            var zero = timespec()
            var hostSet = HostMask.sigset(set)
            let h = sigtimedwait(&hostSet, &hostInfo, &zero)
            if h > 0 {
                if infoPtr != 0 && !withUnsafeBytes(of: &hostInfo, { copyOut(infoPtr, UnsafeRawBufferPointer(rebasing: $0[0..<128])) }) {
                    return EFAULTr
                }
                return Int64(h)
            }
            let got: (Int, SigSource)? = lock.locked {
                collectHostSignals()
                let ready = (t.pending | processPending) & set
                guard ready != 0 else { return nil }
                let s = ready.trailingZeroBitCount + 1
                if t.pending & Sig.bit(s) != 0 { t.pending &= ~Sig.bit(s); return (s, t.sources[s]) }
                processPending &= ~Sig.bit(s); return (s, processSources[s])
            }
            if let (s, src) = got {
                if infoPtr != 0 {
                    var info = [UInt8](repeating: 0, count: 128)
                    info.withUnsafeMutableBytes {
                        $0.storeBytes(of: Int32(s), as: Int32.self)
                        $0.storeBytes(of: src.code, toByteOffset: 8, as: Int32.self)
                        $0.storeBytes(of: src.pid, toByteOffset: 16, as: Int32.self)
                        $0.storeBytes(of: src.uid, toByteOffset: 20, as: UInt32.self)
                    }
                    if !copyOut(infoPtr, info) { return EFAULTr }
                }
                return Int64(s)
            }
            if let d = deadline, monotonicNs() >= d { return -Int64(EAGAIN) }
            usleep(1000)
        }
    }

    func monotonicNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    func sigaltstackCall(_ t: GuestThread, _ ss: UInt64, _ old: UInt64) -> Int64 {
        var new: (UInt64, UInt32, UInt64)? = nil
        if ss != 0 {
            guard let b = copyIn(ss, 24) else { return EFAULTr }
            new = b.withUnsafeBytes { ($0.loadUnaligned(as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
                                       $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self)) }
        }
        let cur = t.altStack
        let sp = t.hart.x[2]
        let onStack = cur.flags == 0 && sp > cur.sp && sp <= cur.sp &+ cur.size
        if old != 0 {
            let flags: UInt32 = cur.flags == 2 ? 2 : (onStack ? 1 : 0)
            if !copyOut(old, value: (cur.sp, flags, UInt32(0), cur.size)) { return EFAULTr }
        }
        if let (nsp, nflags, nsize) = new {
            if onStack { return -Int64(EPERM) }
            if nflags == 2 {
                t.altStack = (0, 2, 0)
            } else {
                guard nflags == 0 || nflags == 1 || nflags == 0x8000_0000 else { return EINVALr }
                guard nsize >= 2048 else { return ENOMEMr }
                t.altStack = (nsp, 0, nsize)
            }
        }
        return 0
    }

    func killCall(pid: Int, sig: Int) -> Int64 {
        guard sig >= 0, sig <= 64 else { return EINVALr }
        if pid == Int(getpid()) {
            if sig != 0 {
                queueSignal(sig, to: nil, source: SigSource(code: 0, pid: getpid(), uid: getuid()))
                // The caller takes it on return unless it blocks it; then a thread that does not block it must
                // see it now, even if it is waiting in a host call (as Linux picks such a thread).
                let other: GuestThread? = lock.locked {
                    let me = Host.gettid()
                    guard let caller = threads[me], caller.sigmask & Sig.bit(sig) != 0 else { return nil }
                    return threads.values.first { $0.tid != me && $0.sigmask & Sig.bit(sig) == 0 }
                }
                if let other { wakeForSignal(other, sig) }
            }
            return 0
        }
        return Host.call(NR.kill, pid, sig)
    }

    /// A signal queued for another guest thread that will run a handler: the same host signal is sent to
    /// its host thread, so a blocking host call it is in (accept, read, futex wait...) returns EINTR and the
    /// handler runs now, as on Linux, rather than when the call ends. The host catcher's copy is dropped.
    func wakeForSignal(_ target: GuestThread, _ s: Int) {
        guard target.tid != Host.gettid(), s < 32 || s > 34 else { return }
        let send: Bool = lock.locked {
            guard actions[s].handler > 1, target.sigmask & Sig.bit(s) == 0 else { return false }
            pendingWakes[s] += 1
            return true
        }
        guard send else { return }
        if Host.call(NR.tgkill, Int(getpid()), Int(target.tid), s) < 0 {
            lock.locked { pendingWakes[s] = max(0, pendingWakes[s] - 1) }
        }
    }

    func tgkillCall(tgid: Int, tid: Int, sig: Int) -> Int64 {
        guard sig >= 0, sig <= 64, tid > 0 else { return EINVALr }
        if tgid == Int(getpid()) || tgid <= 0 {
            guard let target = lock.locked({ threads[Int32(tid)] }) else { return -Int64(ESRCH) }
            if sig != 0 {
                queueSignal(sig, to: target, source: SigSource(code: -6, pid: getpid(), uid: getuid()))
                wakeForSignal(target, sig)
            }
            return 0
        }
        return Host.call(NR.tgkill, tgid, tid, sig)
    }
}
