#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import RivetCPU

/// What a new host thread needs to start a guest thread.
private final class ThreadStart {
    let process: UserProcess
    let thread: GuestThread
    let flags: UInt64, ptid: UInt64, ctid: UInt64
    let started = DispatchSemaphore(value: 0)
    init(process: UserProcess, thread: GuestThread, flags: UInt64, ptid: UInt64, ctid: UInt64) {
        self.process = process; self.thread = thread; self.flags = flags; self.ptid = ptid; self.ctid = ctid
    }
}

enum CloneFlag {
    static let vm: UInt64 = 0x100, vfork: UInt64 = 0x4000, thread: UInt64 = 0x10000, settls: UInt64 = 0x80000
    static let parentSettid: UInt64 = 0x10_0000, childCleartid: UInt64 = 0x20_0000, childSettid: UInt64 = 0x100_0000
}

extension UserProcess {
    // MARK: futex

    /// Futexes are the host's own, on the host address of the guest word: waits compare atomically against the
    /// very memory the harts use, and wakes reach waiters in any guest thread.
    func futexCall(_ t: GuestThread, _ uaddr: UInt64, _ op: UInt64, _ val: UInt64, _ a3: UInt64, _ uaddr2: UInt64, _ val3: UInt64) -> Int64 {
        let cmd = Int(op & 0x7f)
        guard uaddr & 3 == 0 else { return EINVALr }
        guard let h1 = lock.locked({ mm.hostAddress(uaddr, write: false) }) else { return EFAULTr }
        let hostOp = Int(op & (0x7f | 128 | 256))
        switch cmd {
        case 0, 9:  // WAIT, WAIT_BITSET
            var ts = (Int64(0), Int64(0))
            if a3 != 0 {
                guard let b = copyIn(a3, 16) else { return EFAULTr }
                ts = b.withUnsafeBytes { $0.loadUnaligned(as: (Int64, Int64).self) }
            }
            return withUnsafePointer(to: &ts) { p in
                Host.call(NR.futex, iptr(h1), hostOp, Int(UInt32(truncatingIfNeeded: val)), a3 == 0 ? 0 : iptr(p), 0, Int(UInt32(truncatingIfNeeded: val3)))
            }
        case 1, 10:  // WAKE, WAKE_BITSET
            return Host.call(NR.futex, iptr(h1), hostOp, Int(Int32(truncatingIfNeeded: val)), 0, 0, Int(UInt32(truncatingIfNeeded: val3)))
        case 3, 4, 5:  // REQUEUE, CMP_REQUEUE, WAKE_OP
            guard uaddr2 & 3 == 0 else { return EINVALr }
            guard let h2 = lock.locked({ mm.hostAddress(uaddr2, write: true) }) else { return EFAULTr }
            return Host.call(NR.futex, iptr(h1), hostOp, Int(Int32(truncatingIfNeeded: val)), Int(truncatingIfNeeded: a3), iptr(h2),
                             Int(UInt32(truncatingIfNeeded: val3)))
        default:
            return ENOSYSr
        }
    }

    // MARK: clone, fork

    func cloneCall(_ t: GuestThread, flags: UInt64, stack: UInt64, ptid: UInt64, tls: UInt64, ctid: UInt64) -> Int64 {
        if flags & CloneFlag.vm != 0 && flags & CloneFlag.vfork == 0 {
            return spawnThread(t, flags: flags, stack: stack, ptid: ptid, tls: tls, ctid: ctid)
        }
        return forkProcess(t, flags: flags, stack: stack, ptid: ptid, ctid: ctid)
    }

    /// A new guest thread on a new host thread, sharing everything but registers.
    func spawnThread(_ t: GuestThread, flags: UInt64, stack: UInt64, ptid: UInt64, tls: UInt64, ctid: UInt64) -> Int64 {
        guard flags & CloneFlag.thread != 0 else { return EINVALr }
        stopUncheckedLoads(t)  // one thread only (UncheckedLoadTable)
        let child: GuestThread = lock.locked { newThread() }
        let h = child.hart, p = t.hart
        for i in 0..<32 { h.x[i] = p.x[i]; h.f[i] = p.f[i] }
        h.csr.fflags = p.csr.fflags; h.csr.frm = p.csr.frm
        h.csr.mstatus = p.csr.mstatus
        h.csr.mepc = p.csr.mepc  // after the ecall
        h.x[10] = 0
        if stack != 0 { h.x[2] = stack }
        if flags & CloneFlag.settls != 0 { h.x[4] = tls }
        child.sigmask = t.sigmask
        if flags & CloneFlag.childCleartid != 0 { child.clearChildTID = ctid }
        let start = ThreadStart(process: self, thread: child, flags: flags, ptid: ptid, ctid: ctid)
        var handle = pthread_t()
        let r = pthread_create(&handle, nil, { raw in
            let s = Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue()
            let p = s.process, c = s.thread
            c.tid = Host.gettid()
            p.lock.locked {
                p.threads[c.tid] = c
                if s.flags & CloneFlag.parentSettid != 0 { p.mm.write32(s.ptid, UInt32(bitPattern: c.tid)) }
                if s.flags & CloneFlag.childSettid != 0 { p.mm.write32(s.ctid, UInt32(bitPattern: c.tid)) }
            }
            s.started.signal()
            p.runThread(c)
            return nil
        }, Unmanaged.passRetained(start).toOpaque())
        guard r == 0 else {
            lock.locked { freeHartIDs.append(child.hart.hartID) }
            return -Int64(EAGAIN)
        }
        pthread_detach(handle)
        start.started.wait()
        return Int64(child.tid)
    }

    /// fork (and vfork): the host process forks; the child keeps only the calling guest thread.
    func forkProcess(_ t: GuestThread, flags: UInt64, stack: UInt64, ptid: UInt64, ctid: UInt64) -> Int64 {
        lock.lock()
        fflush(nil)
        let pid = fork()
        if pid == 0 {
            lock.reinitAfterFork()
            t.cache.detachTranslationAfterFork()
            t.tid = getpid()
            threads = [t.tid: t]
            if flags & CloneFlag.childSettid != 0 { mm.write32(ctid, UInt32(bitPattern: t.tid)) }
            if flags & CloneFlag.childCleartid != 0 { t.clearChildTID = ctid }
            if stack != 0 { t.hart.x[2] = stack }
            return 0
        }
        let err = errno
        lock.unlock()
        if pid < 0 { return -Int64(err) }
        if flags & CloneFlag.parentSettid != 0 { _ = lock.locked { mm.write32(ptid, UInt32(bitPattern: pid)) } }
        return Int64(pid)
    }

    /// exit: ends one guest thread (clearing and waking its child-tid word); the last one ends the process.
    /// The run loop sees `exited` and returns, so the host thread ends and the hart and its cache are freed.
    func exitThread(_ t: GuestThread, code: Int32) {
        let remaining: Int = lock.locked {
            threads.removeValue(forKey: t.tid)
            freeHartIDs.append(t.hart.hartID)
            if t.clearChildTID != 0, let h = mm.hostAddress(t.clearChildTID, write: true) {
                h.storeBytes(of: UInt32(0), as: UInt32.self)
                _ = Host.call(NR.futex, iptr(h), 1, 1)  // FUTEX_WAKE (shared, as Linux does)
            }
            return threads.count
        }
        if remaining == 0 { exitProcess(code) }
        t.exited = true
    }

    func readPrefix(_ path: String, _ n: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var b = [UInt8](repeating: 0, count: n)
        let r = b.withUnsafeMutableBytes { read(fd, $0.baseAddress, n) }
        return r > 0 ? Array(b[0..<r]) : nil
    }

    // MARK: strace

    func traceLine(_ t: GuestThread, _ nr: Int, _ a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64), result: Int64?) {
        let name = SysNR.names[nr] ?? MoreNR.names[nr] ?? "syscall_\(nr)"
        let args = [a.0, a.1, a.2, a.3, a.4, a.5].prefix(UserProcess.argCount(nr))
        var shown = args.map { "0x" + String($0, radix: 16) }
        // Path arguments are shown as strings, as strace does.
        let pathArg: Int? = [SysNR.openat: 1, SysNR.faccessat: 1, SysNR.faccessat2: 1, SysNR.newfstatat: 1, SysNR.statx: 1,
                             SysNR.readlinkat: 1, SysNR.unlinkat: 1, SysNR.mkdirat: 1, SysNR.execve: 0, SysNR.chdir: 0][nr]
        if let i = pathArg, i < shown.count, let s = guestString([a.0, a.1][i]) {
            shown[i] = "\"" + String(decoding: s, as: UTF8.self) + "\""
        }
        var line = "\(t.tid) \(name)(" + shown.joined(separator: ", ") + ")"
        if let r = result {
            if r < 0 && r > -4096 {
                line += " = -1 \(UserProcess.errnoName(Int32(-r))) (\(String(cString: strerror(Int32(-r)))))"
            } else if [SysNR.mmap, SysNR.brk, SysNR.mremap].contains(nr) {
                line += " = 0x" + String(UInt64(bitPattern: r), radix: 16)
            } else {
                line += " = \(r)"
            }
        } else {
            line += " = ?"
        }
        fputs(line + "\n", stderr)
    }

    static func argCount(_ nr: Int) -> Int {
        switch nr {
        case SysNR.getpid, SysNR.gettid, SysNR.getppid, SysNR.getuid, SysNR.geteuid, SysNR.getgid, SysNR.getegid,
             SysNR.schedYield, SysNR.setsid, SysNR.rtSigreturn: return 0
        case SysNR.close, SysNR.exit, SysNR.exitGroup, SysNR.brk, SysNR.dup, SysNR.setTidAddress, SysNR.uname, SysNR.chdir,
             SysNR.umask, SysNR.fsync: return 1
        case SysNR.mmap, SysNR.futex, NetNR.sendto, NetNR.recvfrom, WaitNR.epollPwait, WaitNR.epollPwait2, WaitNR.splice,
             SysNR.pselect6, MoreNR.copyFileRange: return 6
        case MoreNR.execveat, NetNR.setsockopt, NetNR.getsockopt: return 5
        case NetNR.listen, NetNR.shutdown, WaitNR.epollCreate1, WaitNR.eventfd2: return 2
        case NetNR.bind, NetNR.connect, NetNR.socket, NetNR.getsockname, NetNR.getpeername, NetNR.accept,
             NetNR.sendmsg, NetNR.recvmsg, SysNR.execve: return 3
        case SysNR.clone, SysNR.mremap, SysNR.statx: return 5
        default: return 4
        }
    }

    static func errnoName(_ e: Int32) -> String {
        let names: [Int32: String] = [1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 9: "EBADF", 10: "ECHILD",
            11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 17: "EEXIST", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL",
            25: "ENOTTY", 28: "ENOSPC", 29: "ESPIPE", 32: "EPIPE", 34: "ERANGE", 36: "ENAMETOOLONG", 38: "ENOSYS",
            39: "ENOTEMPTY", 110: "ETIMEDOUT"]
        return names[e] ?? "E\(e)"
    }
}
