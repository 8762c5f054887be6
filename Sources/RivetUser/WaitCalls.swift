#if canImport(Glibc)
import Glibc
#endif

/// RISC-V numbers of the waiting and event-descriptor calls.
enum WaitNR {
    static let eventfd2 = 19, epollCreate1 = 20, epollCtl = 21, epollPwait = 22, signalfd4 = 74, splice = 76, tee = 77
    static let timerfdCreate = 85, timerfdSettime = 86, timerfdGettime = 87, epollPwait2 = 441
}

/// select, epoll, eventfd, timerfd, signalfd, splice: host descriptors and host waits. Only `struct epoll_event`
/// differs (packed, 12 bytes, on x86-64; 16 on RISC-V); fd_set, itimerspec and signalfd_siginfo are identical.
/// The temporary signal mask of ppoll/pselect6/epoll_pwait is the guest's mask for the duration of the wait.
extension UserProcess {
#if arch(x86_64)
    static let hostEpollEventSize = 12
#else
    static let hostEpollEventSize = 16
#endif
    static let maxEpollEvents = 4096

    func waitCall(_ t: GuestThread, _ nr: Int, _ a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) -> Int64? {
        let (a0, a1, a2, a3, a4, a5) = a
        switch nr {
        case SysNR.pselect6:
            // The sixth argument points at { const sigset_t *mask; size_t size }.
            var mask: UInt64 = 0, size: UInt64 = 8
            if a5 != 0 {
                guard let b = copyIn(a5, 16) else { return EFAULTr }
                mask = b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                size = b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
            }
            return waitWithMask(t, mask, size) { pselectCall(a0, a1, a2, a3, a4) }
        case WaitNR.eventfd2: return Host.call(NR.eventfd2, Int(UInt32(truncatingIfNeeded: a0)), i32(a1))
        case WaitNR.epollCreate1: return Host.call(NR.epoll_create1, i32(a0))
        case WaitNR.epollCtl:
            var ev = [UInt8](repeating: 0, count: 16)
            if i32(a1) != 2 {  // EPOLL_CTL_DEL takes no event
                guard let g = copyIn(a3, 16) else { return EFAULTr }
                ev = UserProcess.hostEpollEvent(g)
            }
            return ev.withUnsafeBytes { Host.call(NR.epoll_ctl, i32(a0), i32(a1), i32(a2), iptr($0.baseAddress)) }
        case WaitNR.epollPwait, WaitNR.epollPwait2:
            let max = i32(a2)
            guard max > 0, max <= Int(Int32.max) / 16 else { return EINVALr }
            let n = min(max, UserProcess.maxEpollEvents)
            var host = [UInt8](repeating: 0, count: n * UserProcess.hostEpollEventSize)
            var ts = timespec()
            if nr == WaitNR.epollPwait2 && a3 != 0 {
                guard let b = copyIn(a3, 16) else { return EFAULTr }
                ts = b.withUnsafeBytes { $0.loadUnaligned(as: timespec.self) }
            }
            let r = waitWithMask(t, a4, a5) { host.withUnsafeMutableBytes { hp in withUnsafePointer(to: &ts) { tp in
                nr == WaitNR.epollPwait
                    ? Host.call(NR.epoll_pwait, i32(a0), iptr(hp.baseAddress), n, i32(a3), 0, 8)
                    : Host.call(NR.epoll_pwait2, i32(a0), iptr(hp.baseAddress), n, a3 == 0 ? 0 : iptr(tp), 0, 8)
            } } }
            if r <= 0 { return r }
            var out = [UInt8](repeating: 0, count: Int(r) * 16)
            for k in 0..<Int(r) {
                let e = Array(host[k * UserProcess.hostEpollEventSize..<(k + 1) * UserProcess.hostEpollEventSize])
                out.replaceSubrange(k * 16..<(k + 1) * 16, with: UserProcess.guestEpollEvent(e))
            }
            return copyOut(a1, out) ? r : EFAULTr
        case WaitNR.timerfdCreate: return Host.call(NR.timerfd_create, i32(a0), i32(a1))
        case WaitNR.timerfdSettime:
            guard let new = copyIn(a2, 32) else { return EFAULTr }
            var old = [UInt8](repeating: 0, count: 32)
            let r = new.withUnsafeBytes { n in old.withUnsafeMutableBytes { o in
                Host.call(NR.timerfd_settime, i32(a0), i32(a1), iptr(n.baseAddress), iptr(o.baseAddress)) } }
            if r < 0 { return r }
            return a3 == 0 || copyOut(a3, old) ? r : EFAULTr
        case WaitNR.timerfdGettime:
            var cur = [UInt8](repeating: 0, count: 32)
            let r = cur.withUnsafeMutableBytes { Host.call(NR.timerfd_gettime, i32(a0), iptr($0.baseAddress)) }
            if r < 0 { return r }
            return copyOut(a1, cur) ? r : EFAULTr
        case WaitNR.signalfd4:
            // The descriptor is the host's: it sees signals sent to the process from outside while the guest
            // has them blocked and no handler (the host mask is not mirrored: see docs/user-mode.md).
            guard a2 == 8 else { return EINVALr }
            guard let m = copyIn(a1, 8) else { return EFAULTr }
            return m.withUnsafeBytes { Host.call(NR.signalfd4, i32(a0), iptr($0.baseAddress), 8, i32(a3)) }
        case WaitNR.splice:
            var offIn: Int64 = 0, offOut: Int64 = 0
            if a1 != 0 { guard let b = copyIn(a1, 8) else { return EFAULTr }; offIn = b.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) } }
            if a3 != 0 { guard let b = copyIn(a3, 8) else { return EFAULTr }; offOut = b.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) } }
            let r = withUnsafeMutablePointer(to: &offIn) { ip in withUnsafeMutablePointer(to: &offOut) { op in
                Host.call(NR.splice, i32(a0), a1 == 0 ? 0 : iptr(ip), i32(a2), a3 == 0 ? 0 : iptr(op), Int(min(a4, 1 << 30)), i32(a5)) } }
            if r < 0 { return r }
            if a1 != 0 && !copyOut(a1, value: offIn) { return EFAULTr }
            if a3 != 0 && !copyOut(a3, value: offOut) { return EFAULTr }
            return r
        case WaitNR.tee: return Host.call(NR.tee, i32(a0), i32(a1), Int(min(a2, 1 << 30)), i32(a3))
        default: return nil
        }
    }

    /// Runs a blocking host wait as Linux runs ppoll/pselect6/epoll_pwait: with the temporary mask at
    /// `maskVA` (if any) as the thread's mask, returning EINTR at once if a signal it unblocks is pending, and
    /// not returning EINTR for a host signal the guest has blocked (the wait goes on). After the call,
    /// deliverPendingSignals runs a handler with the temporary mask and restores the old one, or restores it
    /// at once when nothing is deliverable.
    func waitWithMask(_ t: GuestThread, _ maskVA: UInt64, _ size: UInt64, _ body: () -> Int64) -> Int64 {
        if maskVA != 0 {
            guard size == 8 else { return EINVALr }
            guard let b = copyIn(maskVA, 8) else { return EFAULTr }
            let mask = b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } & ~Sig.unblockable
            lock.locked { t.suspendedMask = t.sigmask; t.sigmask = mask }
        }
        func deliverable() -> Bool {
            lock.locked { collectHostSignals(); return (t.pending | processPending) & ~t.sigmask != 0 }
        }
        while true {
            if deliverable() { return -Int64(EINTR) }
            let r = body()
            if r != -Int64(EINTR) || deliverable() { return r }
        }
    }

    /// Guest `struct epoll_event` (u32 events, 4 bytes padding, u64 data) in the host's layout.
    static func hostEpollEvent(_ g: [UInt8]) -> [UInt8] {
        if hostEpollEventSize == 16 { return g }
        return Array(g[0..<4]) + Array(g[8..<16]) + [0, 0, 0, 0]
    }

    static func guestEpollEvent(_ h: [UInt8]) -> [UInt8] {
        if hostEpollEventSize == 16 { return h }
        return Array(h[0..<4]) + [0, 0, 0, 0] + Array(h[4..<12])
    }

    /// pselect6: fd_sets of (n+63)/64 words each, copied in and back; the timeout is updated as Linux does.
    func pselectCall(_ n: UInt64, _ inVA: UInt64, _ outVA: UInt64, _ exVA: UInt64, _ tsVA: UInt64) -> Int64 {
        // As Linux: negative is EINVAL, more than the descriptor table holds is cut to its size.
        guard i32(n) >= 0 else { return EINVALr }
        let nfds = min(i32(n), max(64, min(Int(sysconf(Int32(_SC_OPEN_MAX))), 1 << 20)))
        let bytes = (nfds + 63) / 64 * 8
        var sets: [[UInt8]] = []
        for va in [inVA, outVA, exVA] {
            if va == 0 || bytes == 0 { sets.append([UInt8](repeating: 0, count: max(bytes, 8))); continue }
            guard let b = copyIn(va, bytes) else { return EFAULTr }
            sets.append(b)
        }
        var ts = timespec()
        if tsVA != 0 {
            guard let b = copyIn(tsVA, 16) else { return EFAULTr }
            ts = b.withUnsafeBytes { $0.loadUnaligned(as: timespec.self) }
        }
        var set0 = sets[0], set1 = sets[1], set2 = sets[2]
        let r = set0.withUnsafeMutableBytes { s0 in set1.withUnsafeMutableBytes { s1 in set2.withUnsafeMutableBytes { s2 in
            withUnsafeMutablePointer(to: &ts) { tp in
                Host.call(NR.pselect6, nfds, inVA == 0 ? 0 : iptr(s0.baseAddress), outVA == 0 ? 0 : iptr(s1.baseAddress),
                          exVA == 0 ? 0 : iptr(s2.baseAddress), tsVA == 0 ? 0 : iptr(tp), 0)
            } } } }
        if tsVA != 0 { _ = copyOut(tsVA, value: ts) }
        if r < 0 { return r }
        sets = [set0, set1, set2]
        for (i, va) in [inVA, outVA, exVA].enumerated() where va != 0 && bytes > 0 {
            guard copyOut(va, Array(sets[i][0..<bytes])) else { return EFAULTr }
        }
        return r
    }
}
