#if canImport(Glibc)
import Glibc
#endif
import RivetCPU

/// RISC-V Linux system call numbers (the generic table).
enum SysNR {
    static let getcwd = 17, dup = 23, dup3 = 24, fcntl = 25, ioctl = 29, mkdirat = 34, unlinkat = 35, symlinkat = 36
    static let linkat = 37, ftruncate = 46, faccessat = 48, chdir = 49, fchdir = 50, fchmod = 52, fchmodat = 53
    static let fchownat = 54, openat = 56, close = 57, pipe2 = 59, getdents64 = 61, lseek = 62, read = 63, write = 64
    static let readv = 65, writev = 66, pread64 = 67, pwrite64 = 68, ppoll = 73, readlinkat = 78, newfstatat = 79, fstat = 80
    static let fsync = 82, fdatasync = 83, utimensat = 88, exit = 93, exitGroup = 94, waitid = 95, setTidAddress = 96
    static let futex = 98, setRobustList = 99, getRobustList = 100, nanosleep = 101, clockGettime = 113, clockGetres = 114
    static let clockNanosleep = 115, schedSetaffinity = 122, schedGetaffinity = 123, schedYield = 124, kill = 129, tkill = 130
    static let tgkill = 131, sigaltstack = 132, rtSigsuspend = 133, rtSigaction = 134, rtSigprocmask = 135, rtSigpending = 136
    static let rtSigtimedwait = 137, rtSigreturn = 139, times = 153, setpgid = 154, getpgid = 155, getsid = 156, setsid = 157
    static let uname = 160, getrlimit = 163, setrlimit = 164, getrusage = 165, umask = 166, prctl = 167, gettimeofday = 169
    static let getpid = 172, getppid = 173, getuid = 174, geteuid = 175, getgid = 176, getegid = 177, gettid = 178
    static let sysinfo = 179, brk = 214, munmap = 215, mremap = 216, clone = 220, execve = 221, mmap = 222, mprotect = 226
    static let msync = 227, mlock = 228, munlock = 229, madvise = 233, riscvFlushIcache = 259, wait4 = 260, prlimit64 = 261
    static let renameat2 = 276, getrandom = 278, statx = 291, faccessat2 = 439, sendfile = 71, pselect6 = 72, getcpu = 168
    static let membarrier = 283, rseq = 293, execveat = 281, riscvHwprobe = 258, clone3 = 435, closeRange = 436

    static let names: [Int: String] = [
        17: "getcwd", 23: "dup", 24: "dup3", 25: "fcntl", 29: "ioctl", 34: "mkdirat", 35: "unlinkat", 36: "symlinkat",
        37: "linkat", 46: "ftruncate", 48: "faccessat", 49: "chdir", 50: "fchdir", 52: "fchmod", 53: "fchmodat",
        54: "fchownat", 56: "openat", 57: "close", 59: "pipe2", 61: "getdents64", 62: "lseek", 63: "read", 64: "write",
        65: "readv", 66: "writev", 67: "pread64", 68: "pwrite64", 71: "sendfile", 72: "pselect6", 73: "ppoll",
        78: "readlinkat", 79: "newfstatat", 80: "fstat", 82: "fsync", 83: "fdatasync", 88: "utimensat", 93: "exit",
        94: "exit_group", 95: "waitid", 96: "set_tid_address", 98: "futex", 99: "set_robust_list", 100: "get_robust_list",
        101: "nanosleep", 102: "getitimer", 103: "setitimer", 113: "clock_gettime", 114: "clock_getres", 115: "clock_nanosleep", 122: "sched_setaffinity",
        123: "sched_getaffinity", 124: "sched_yield", 129: "kill", 130: "tkill", 131: "tgkill", 132: "sigaltstack",
        133: "rt_sigsuspend", 134: "rt_sigaction", 135: "rt_sigprocmask", 136: "rt_sigpending", 137: "rt_sigtimedwait",
        139: "rt_sigreturn", 153: "times", 154: "setpgid", 155: "getpgid", 156: "getsid", 157: "setsid", 160: "uname",
        163: "getrlimit", 164: "setrlimit", 165: "getrusage", 166: "umask", 167: "prctl", 168: "getcpu",
        169: "gettimeofday", 172: "getpid", 173: "getppid", 174: "getuid", 175: "geteuid", 176: "getgid", 177: "getegid",
        178: "gettid", 179: "sysinfo", 214: "brk", 215: "munmap", 216: "mremap", 220: "clone", 221: "execve", 222: "mmap",
        226: "mprotect", 227: "msync", 228: "mlock", 229: "munlock", 233: "madvise", 258: "riscv_hwprobe",
        259: "riscv_flush_icache", 260: "wait4", 261: "prlimit64", 276: "renameat2", 278: "getrandom", 283: "membarrier",
        291: "statx", 293: "rseq", 435: "clone3", 436: "close_range", 439: "faccessat2",
    ]
}

@inline(__always) func i32(_ v: UInt64) -> Int { Int(Int32(truncatingIfNeeded: v)) }
@inline(__always) func iptr(_ p: UnsafeRawPointer?) -> Int { Int(bitPattern: p) }
let EFAULTr = -Int64(EFAULT), EINVALr = -Int64(EINVAL), ENOMEMr = -Int64(ENOMEM), ENOSYSr = -Int64(ENOSYS)

extension UserProcess {
    /// Handles an ecall: a7 = number, a0...a5 = arguments; the result goes to a0 and execution resumes after it.
    func syscall(_ t: GuestThread) {
        let x = t.hart.x
        let nr = Int(x[17])
        let a = (x[10], x[11], x[12], x[13], x[14], x[15])
        let epc = t.hart.csr.mepc
        t.hart.csr.mepc = epc &+ 4
        if options.strace && (nr == SysNR.exit || nr == SysNR.exitGroup || nr == SysNR.execve) {
            traceLine(t, nr, a, result: nil)
        }
        let r = dispatch(t, nr, a)
        if let r {
            if r == -Int64(EINTR) && shouldRestart(t, nr) {
                t.hart.csr.mepc = epc  // SA_RESTART: run the ecall again after the handler
            } else {
                x[10] = UInt64(bitPattern: r)
            }
        }
        if options.strace { traceLine(t, nr, a, result: r) }
    }

    func shouldRestart(_ t: GuestThread, _ nr: Int) -> Bool {
        if [SysNR.nanosleep, SysNR.clockNanosleep, SysNR.rtSigsuspend, SysNR.rtSigtimedwait, SysNR.ppoll, SysNR.pselect6,
            WaitNR.epollPwait, WaitNR.epollPwait2].contains(nr) { return false }  // never restarted, as Linux
        return lock.locked {
            collectHostSignals()
            let ready = (t.pending | processPending) & ~t.sigmask
            guard ready != 0 else { return false }
            let s = ready.trailingZeroBitCount + 1
            return actions[s].handler > 1 && actions[s].flags & SigAction.saRestart != 0
        }
    }

    // MARK: Guest memory helpers

    func guestString(_ va: UInt64) -> [UInt8]? { lock.locked { mm.readString(va) } }
    func copyIn(_ va: UInt64, _ n: Int) -> [UInt8]? { lock.locked { mm.read(va, n) } }
    func copyOut(_ va: UInt64, _ bytes: UnsafeRawBufferPointer) -> Bool { lock.locked { mm.write(va, bytes) } }
    func copyOut<T>(_ va: UInt64, value: T) -> Bool { withUnsafeBytes(of: value) { copyOut(va, $0) } }
    func iovecs(_ va: UInt64, _ n: UInt64, write: Bool) -> [iovec]? {
        lock.locked { mm.pieces(va, n, write: write) }?.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
    }

    /// Calls `body` with a host C string for a guest path (sysroot-resolved when `resolve`), or returns -EFAULT.
    func withPath(_ va: UInt64, resolve: Bool = true, _ body: (UnsafePointer<CChar>) -> Int64) -> Int64 {
        guard let raw = guestString(va) else { return EFAULTr }
        var s = resolve ? hostPath(raw) : String(decoding: raw, as: UTF8.self)
        if resolve && isSelfExe(s) { s = hostPath(Array(exePath.utf8)) }
        return s.withCString(body)
    }

    /// readv/writev-style host call over guest pieces, in chunks the host accepts (IOV_MAX).
    func vectorIO(_ nr: Int, fd: Int, _ iov: [iovec], offset: Int64? = nil) -> Int64 {
        if iov.isEmpty {
            return offset == nil ? Host.call(nr == NR.readv ? NR.read : NR.write, fd, 0, 0) : 0
        }
        var total: Int64 = 0
        var i = 0
        while i < iov.count {
            let n = min(1024, iov.count - i)
            let want = iov[i..<i + n].reduce(0) { $0 + $1.iov_len }
            let r = iov.withUnsafeBufferPointer { p -> Int64 in
                if let off = offset {
                    return Host.call(nr == NR.readv ? NR.preadv : NR.pwritev, fd, iptr(p.baseAddress! + i), n, Int(off + total), 0)
                }
                return Host.call(nr, fd, iptr(p.baseAddress! + i), n)
            }
            if r < 0 { return total > 0 ? total : r }
            total += r
            if r < want { break }
            i += n
        }
        return total
    }

    /// The guest iovec array at `va` as host pieces.
    func guestIOVecs(_ va: UInt64, _ count: UInt64, write: Bool) -> [iovec]? {
        guard count <= 1024 else { return nil }
        guard let raw = copyIn(va, Int(count) * 16) else { return nil }
        var out: [iovec] = []
        for k in 0..<Int(count) {
            let base = raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: k * 16, as: UInt64.self) }
            let len = raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: k * 16 + 8, as: UInt64.self) }
            guard let p = iovecs(base, len, write: write) else { return nil }
            out += p
        }
        return out
    }

    // MARK: Dispatch

    func dispatch(_ t: GuestThread, _ nr: Int, _ a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) -> Int64? {
        let (a0, a1, a2, a3, a4, a5) = a
        switch nr {
        // Files
        case SysNR.read:
            guard let v = iovecs(a1, a2, write: true) else { return EFAULTr }
            return vectorIO(NR.readv, fd: i32(a0), v)
        case SysNR.write:
            guard let v = iovecs(a1, a2, write: false) else { return EFAULTr }
            return vectorIO(NR.writev, fd: i32(a0), v)
        case SysNR.readv, SysNR.writev:
            guard a2 <= 1024 else { return EINVALr }
            guard let v = guestIOVecs(a1, a2, write: nr == SysNR.readv) else { return EFAULTr }
            return vectorIO(nr == SysNR.readv ? NR.readv : NR.writev, fd: i32(a0), v)
        case SysNR.pread64, SysNR.pwrite64:
            guard Int64(bitPattern: a3) >= 0 else { return EINVALr }
            guard let v = iovecs(a1, a2, write: nr == SysNR.pread64) else { return EFAULTr }
            return vectorIO(nr == SysNR.pread64 ? NR.readv : NR.writev, fd: i32(a0), v, offset: Int64(bitPattern: a3))
        case SysNR.openat:
            if let raw = guestString(a1), let fd = procFile(String(decoding: raw, as: UTF8.self), flags: Int(truncatingIfNeeded: a2)) { return fd }
            return withPath(a1) { Host.call(NR.openat, i32(a0), iptr($0), Int(truncatingIfNeeded: a2), Int(truncatingIfNeeded: a3)) }
        case SysNR.close: return Host.call(NR.close, i32(a0))
        case SysNR.lseek: return Host.call(NR.lseek, i32(a0), Int(truncatingIfNeeded: a1), i32(a2))
        case SysNR.dup: return Host.call(NR.dup, i32(a0))
        case SysNR.dup3: return Host.call(NR.dup3, i32(a0), i32(a1), i32(a2))
        case SysNR.pipe2:
            var fds: (Int32, Int32) = (0, 0)
            let r = withUnsafeMutableBytes(of: &fds) { Host.call(NR.pipe2, iptr($0.baseAddress), i32(a1)) }
            if r < 0 { return r }
            guard copyOut(a0, value: fds) else { close(fds.0); close(fds.1); return EFAULTr }
            return 0
        case SysNR.fcntl: return fcntlCall(a0, a1, a2)
        case SysNR.ioctl: return ioctlCall(a0, a1, a2)
        case SysNR.newfstatat:
            var st = stat()
            let r = withPath(a1) { p in withUnsafeMutableBytes(of: &st) { Host.call(NR.newfstatat, i32(a0), iptr(p), iptr($0.baseAddress), i32(a3)) } }
            if r < 0 { return r }
            return copyOut(a2, UserProcess.riscvStat(st)) ? 0 : EFAULTr
        case SysNR.fstat:
            var st = stat()
            let r = withUnsafeMutableBytes(of: &st) { Host.call(NR.fstat, i32(a0), iptr($0.baseAddress)) }
            if r < 0 { return r }
            return copyOut(a1, UserProcess.riscvStat(st)) ? 0 : EFAULTr
        case SysNR.statx:
            var buf = [UInt8](repeating: 0, count: 256)
            let r = withPath(a1) { p in buf.withUnsafeMutableBytes { Host.call(NR.statx, i32(a0), iptr(p), i32(a2), i32(a3), iptr($0.baseAddress)) } }
            if r < 0 { return r }
            return buf.withUnsafeBytes { copyOut(a4, $0) } ? 0 : EFAULTr
        case SysNR.getdents64:
            let n = Int(min(a2, 1 << 16))
            var buf = [UInt8](repeating: 0, count: n)
            let r = buf.withUnsafeMutableBytes { Host.call(NR.getdents64, i32(a0), iptr($0.baseAddress), n) }
            if r <= 0 { return r }
            return buf.withUnsafeBytes { copyOut(a1, UnsafeRawBufferPointer(rebasing: $0[0..<Int(r)])) } ? r : EFAULTr
        case SysNR.readlinkat:
            guard let raw = guestString(a1) else { return EFAULTr }
            let n = Int(min(a3, 4096))
            guard Int64(bitPattern: a3) > 0 else { return EINVALr }
            var out: [UInt8]
            if isSelfExe(String(decoding: raw, as: UTF8.self)) {
                out = Array(exePath.utf8)
            } else {
                var buf = [UInt8](repeating: 0, count: n)
                let r = hostPath(raw).withCString { p in buf.withUnsafeMutableBytes { Host.call(NR.readlinkat, i32(a0), iptr(p), iptr($0.baseAddress), n) } }
                if r < 0 { return r }
                out = Array(buf[0..<Int(r)])
            }
            out = Array(out.prefix(n))
            return out.withUnsafeBytes { copyOut(a2, $0) } ? Int64(out.count) : EFAULTr
        case SysNR.faccessat: return withPath(a1) { Host.call(NR.faccessat, i32(a0), iptr($0), i32(a2)) }
        case SysNR.faccessat2: return withPath(a1) { Host.call(NR.faccessat2, i32(a0), iptr($0), i32(a2), i32(a3)) }
        case SysNR.mkdirat: return withPath(a1, resolve: false) { Host.call(NR.mkdirat, i32(a0), iptr($0), i32(a2)) }
        case SysNR.unlinkat: return withPath(a1, resolve: false) { Host.call(NR.unlinkat, i32(a0), iptr($0), i32(a2)) }
        case SysNR.renameat2:
            return withPath(a1, resolve: false) { old in withPath(a3, resolve: false) { new in
                Host.call(NR.renameat2, i32(a0), iptr(old), i32(a2), iptr(new), i32(a4)) } }
        case SysNR.symlinkat:
            return withPath(a0, resolve: false) { target in withPath(a2, resolve: false) { link in
                Host.call(NR.symlinkat, iptr(target), i32(a1), iptr(link)) } }
        case SysNR.linkat:
            return withPath(a1, resolve: false) { old in withPath(a3, resolve: false) { new in
                Host.call(NR.linkat, i32(a0), iptr(old), i32(a2), iptr(new), i32(a4)) } }
        case SysNR.fchmodat: return withPath(a1, resolve: false) { Host.call(NR.fchmodat, i32(a0), iptr($0), i32(a2)) }
        case SysNR.fchownat: return withPath(a1, resolve: false) { Host.call(NR.fchownat, i32(a0), iptr($0), i32(a2), i32(a3), i32(a4)) }
        case SysNR.fchmod: return Host.call(NR.fchmod, i32(a0), i32(a1))
        case SysNR.utimensat:
            var times = [UInt8](repeating: 0, count: 32)
            if a2 != 0 { guard let b = copyIn(a2, 32) else { return EFAULTr }; times = b }
            let tp = a2
            let call: (UnsafePointer<CChar>?) -> Int64 = { p in
                times.withUnsafeBytes { Host.call(NR.utimensat, i32(a0), iptr(p), tp == 0 ? 0 : iptr($0.baseAddress), i32(a3)) }
            }
            return a1 == 0 ? call(nil) : withPath(a1, resolve: false) { call($0) }
        case SysNR.ftruncate: return Host.call(NR.ftruncate, i32(a0), Int(truncatingIfNeeded: a1))
        case SysNR.fsync: return Host.call(NR.fsync, i32(a0))
        case SysNR.fdatasync: return Host.call(NR.fdatasync, i32(a0))
        case SysNR.getcwd:
            var buf = [UInt8](repeating: 0, count: 4096)
            let r = buf.withUnsafeMutableBytes { Host.call(NR.getcwd, iptr($0.baseAddress), 4096) }
            if r < 0 { return r }
            guard UInt64(r) <= a1 else { return -Int64(ERANGE) }
            return buf.withUnsafeBytes { copyOut(a0, UnsafeRawBufferPointer(rebasing: $0[0..<Int(r)])) } ? r : EFAULTr
        case SysNR.chdir: return withPath(a0, resolve: false) { Host.call(NR.chdir, iptr($0)) }
        case SysNR.fchdir: return Host.call(NR.fchdir, i32(a0))
        case SysNR.umask: return Host.call(NR.umask, i32(a0))
        case SysNR.sendfile:
            // Copy through a buffer (guest offsets are in guest memory).
            return sendfileCall(a0, a1, a2, a3)
        case SysNR.ppoll:
            return waitWithMask(t, a3, a4) { ppollCall(a0, a1, a2) }

        // Time
        case SysNR.clockGettime, SysNR.clockGetres:
            var ts = timespec()
            if nr == SysNR.clockGettime && a0 == 1, let mono = vdsoMonotonic() {
                return copyOut(a1, value: mono) ? 0 : EFAULTr  // as the guest's vDSO computes it
            }
            // libc's clock_gettime reads the host's vDSO: no host system call for the common clocks.
            let r = nr == SysNR.clockGettime ? Host.check(Int(clock_gettime(clockid_t(i32(a0)), &ts)))
                : withUnsafeMutableBytes(of: &ts) { Host.call(NR.clock_getres, i32(a0), iptr($0.baseAddress)) }
            if r < 0 { return r }
            if a1 == 0 { return nr == SysNR.clockGetres ? 0 : EFAULTr }
            return copyOut(a1, value: ts) ? 0 : EFAULTr
        case SysNR.gettimeofday:
            var tv = timeval()
            _ = gettimeofday(&tv, nil)
            if a0 != 0 && !copyOut(a0, value: tv) { return EFAULTr }
            if a1 != 0 && !copyOut(a1, value: (Int32(0), Int32(0))) { return EFAULTr }
            return 0
        case SysNR.nanosleep:
            return sleepCall(clock: -1, flags: 0, req: a0, rem: a1)
        case SysNR.clockNanosleep:
            return sleepCall(clock: i32(a0), flags: i32(a1), req: a2, rem: a3)

        // Process
        case SysNR.getpid: return Int64(getpid())
        case SysNR.gettid: return Int64(t.tid)
        case SysNR.getppid: return Int64(getppid())
        case SysNR.getuid: return Int64(getuid())
        case SysNR.geteuid: return Int64(geteuid())
        case SysNR.getgid: return Int64(getgid())
        case SysNR.getegid: return Int64(getegid())
        case SysNR.getpgid: return Host.call(NR.getpgid, i32(a0))
        case SysNR.setpgid: return Host.call(NR.setpgid, i32(a0), i32(a1))
        case SysNR.getsid: return Host.call(NR.getsid, i32(a0))
        case SysNR.setsid: return Host.call(NR.setsid)
        case SysNR.uname: return unameCall(a0)
        case SysNR.prlimit64:
            var new = [UInt8](repeating: 0, count: 16), old = [UInt8](repeating: 0, count: 16)
            if a2 != 0 { guard let b = copyIn(a2, 16) else { return EFAULTr }; new = b }
            let r = new.withUnsafeBytes { n in old.withUnsafeMutableBytes { o in
                Host.call(NR.prlimit64, i32(a0), i32(a1), a2 == 0 ? 0 : iptr(n.baseAddress), a3 == 0 ? 0 : iptr(o.baseAddress)) } }
            if r < 0 { return r }
            if a3 != 0 && !old.withUnsafeBytes({ copyOut(a3, $0) }) { return EFAULTr }
            return r
        case SysNR.getrlimit:
            var old = [UInt8](repeating: 0, count: 16)
            let r = old.withUnsafeMutableBytes { Host.call(NR.prlimit64, 0, i32(a0), 0, iptr($0.baseAddress)) }
            if r < 0 { return r }
            return old.withUnsafeBytes { copyOut(a1, $0) } ? 0 : EFAULTr
        case SysNR.setrlimit:
            guard let new = copyIn(a1, 16) else { return EFAULTr }
            return new.withUnsafeBytes { Host.call(NR.prlimit64, 0, i32(a0), iptr($0.baseAddress), 0) }
        case SysNR.getrusage:
            var buf = [UInt8](repeating: 0, count: 144)
            let r = buf.withUnsafeMutableBytes { Host.call(NR.getrusage, i32(a0), iptr($0.baseAddress)) }
            if r < 0 { return r }
            return buf.withUnsafeBytes { copyOut(a1, $0) } ? 0 : EFAULTr
        case SysNR.times:
            var buf = [UInt8](repeating: 0, count: 32)
            let r = buf.withUnsafeMutableBytes { Host.call(NR.times, iptr($0.baseAddress)) }
            if a0 != 0 && !buf.withUnsafeBytes({ copyOut(a0, $0) }) { return EFAULTr }
            return r
        case SysNR.sysinfo:
            var buf = [UInt8](repeating: 0, count: 112)
            let r = buf.withUnsafeMutableBytes { Host.call(NR.sysinfo, iptr($0.baseAddress)) }
            if r < 0 { return r }
            return buf.withUnsafeBytes { copyOut(a0, $0) } ? 0 : EFAULTr
        case SysNR.schedGetaffinity:
            let n = Int(min(a1, 1024))
            guard n >= 8, n % 8 == 0 else { return EINVALr }
            var buf = [UInt8](repeating: 0, count: n)
            let r = buf.withUnsafeMutableBytes { Host.call(NR.sched_getaffinity, 0, n, iptr($0.baseAddress)) }
            if r < 0 { return r }
            return buf.withUnsafeBytes { copyOut(a2, UnsafeRawBufferPointer(rebasing: $0[0..<Int(r)])) } ? r : EFAULTr
        case 102:  // getitimer
            var cur = [UInt8](repeating: 0, count: 32)
            let r = cur.withUnsafeMutableBytes { Host.call(NR.getitimer, i32(a0), iptr($0.baseAddress)) }
            if r < 0 { return r }
            return copyOut(a1, cur) ? 0 : EFAULTr
        case 103:  // setitimer (SIGALRM comes from the host and is delivered like any caught signal)
            guard let new = copyIn(a1, 32) else { return EFAULTr }
            var old = [UInt8](repeating: 0, count: 32)
            let r = new.withUnsafeBytes { n in old.withUnsafeMutableBytes { o in Host.call(NR.setitimer, i32(a0), iptr(n.baseAddress), iptr(o.baseAddress)) } }
            if r < 0 { return r }
            if a2 != 0 && !copyOut(a2, old) { return EFAULTr }
            return 0
        case SysNR.schedSetaffinity: return 0
        case SysNR.schedYield: return Host.call(NR.sched_yield)
        case SysNR.getcpu:
            if a0 != 0 && !copyOut(a0, value: UInt32(0)) { return EFAULTr }
            if a1 != 0 && !copyOut(a1, value: UInt32(0)) { return EFAULTr }
            return 0
        case SysNR.getrandom:
            let n = Int(min(a1, 1 << 20))
            var buf = [UInt8](repeating: 0, count: n)
            let r = buf.withUnsafeMutableBytes { Host.call(NR.getrandom, iptr($0.baseAddress), n, i32(a2)) }
            if r <= 0 { return r }
            return buf.withUnsafeBytes { copyOut(a0, UnsafeRawBufferPointer(rebasing: $0[0..<Int(r)])) } ? r : EFAULTr
        case SysNR.exit: exitThread(t, code: Int32(truncatingIfNeeded: a0)); return nil
        case SysNR.exitGroup:
            exitProcess(Int32(truncatingIfNeeded: a0))
        case SysNR.setTidAddress:
            t.clearChildTID = a0
            return Int64(t.tid)
        case SysNR.setRobustList:
            guard a1 == 24 else { return EINVALr }
            t.robustList = a0
            return 0
        case SysNR.getRobustList: return ENOSYSr
        case SysNR.futex: return futexCall(t, a0, a1, a2, a3, a4, a5)
        case SysNR.clone: return cloneCall(t, flags: a0, stack: a1, ptid: a2, tls: a3, ctid: a4)
        case SysNR.clone3: return ENOSYSr  // glibc falls back to clone
        case SysNR.execve: return execveCall(t, a0, a1, a2, flags: 0)
        case SysNR.wait4:
            var status: Int32 = 0
            var ru = [UInt8](repeating: 0, count: 144)
            let r = ru.withUnsafeMutableBytes { Host.call(NR.wait4, i32(a0), iptr(&status), i32(a2), iptr($0.baseAddress)) }
            if r < 0 { return r }
            if a1 != 0 && r > 0 && !copyOut(a1, value: status) { return EFAULTr }
            if a3 != 0 && !ru.withUnsafeBytes({ copyOut(a3, $0) }) { return EFAULTr }
            return r
        case SysNR.waitid:
            var info = [UInt8](repeating: 0, count: 128)
            let r = info.withUnsafeMutableBytes { Host.call(247 /* x86-64 waitid */, i32(a0), i32(a1), iptr($0.baseAddress), i32(a3), 0) }
            if r < 0 { return r }
            if a2 != 0 && !info.withUnsafeBytes({ copyOut(a2, $0) }) { return EFAULTr }
            return r

        // Memory
        case SysNR.brk: return lock.locked { brkCall(a0) }
        case SysNR.mmap: return mmapCall(t, a0, a1, a2, a3, a4, a5)
        case SysNR.munmap:
            guard a0 & 4095 == 0, a1 > 0 else { return EINVALr }
            let len = AddressSpace.pageAlignUp(a1)
            guard AddressSpace.validRange(a0, len) else { return EINVALr }
            lock.locked { mm.unmap(a0, len) }
            t.hart.flushTLB()
            return 0
        case SysNR.mprotect:
            guard a0 & 4095 == 0 else { return EINVALr }
            if a1 == 0 { return 0 }
            let len = AddressSpace.pageAlignUp(a1)
            guard AddressSpace.validRange(a0, len) else { return ENOMEMr }
            if a2 & Prot.write != 0 && lock.locked({ mm.writeForbidden(a0, len) }) { return -Int64(EACCES) }
            let ok = lock.locked { mm.protect(a0, len, prot: a2 & 7) }
            t.hart.flushTLB()
            return ok ? 0 : ENOMEMr
        case SysNR.mremap: return mremapCall(t, a0, a1, a2, a3, a4)
        case SysNR.madvise:
            guard a0 & 4095 == 0 else { return EINVALr }
            if a2 == 4 {  // MADV_DONTNEED: private anonymous pages read back as zero
                let len = AddressSpace.pageAlignUp(a1)
                guard AddressSpace.validRange(a0, len) else { return EINVALr }
                lock.locked { mm.discard(a0, len) }
                t.hart.flushTLB()
            }
            return 0
        case SysNR.msync:
            guard a0 & 4095 == 0, a2 & ~7 == 0, a2 & 5 != 5 else { return EINVALr }
            if a1 == 0 { return 0 }
            let len = AddressSpace.pageAlignUp(a1)
            guard AddressSpace.validRange(a0, len) else { return ENOMEMr }
            return lock.locked { mm.sync(a0, len, flags: Int32(a2)) }
        case SysNR.mlock, SysNR.munlock: return 0
        case SysNR.riscvFlushIcache: return 0  // stores already invalidate decoded code
        case SysNR.membarrier: return a0 == 0 ? 0 : 0  // QUERY: no commands; others are no-ops on this memory model

        // Signals
        case SysNR.rtSigaction: return sigactionCall(a0, a1, a2, a3)
        case SysNR.rtSigprocmask: return sigprocmaskCall(t, a0, a1, a2, a3)
        case SysNR.rtSigreturn: sigreturn(t); return nil
        case SysNR.rtSigpending:
            let p = lock.locked { t.pending | processPending } | HostMask.pending()
            return copyOut(a0, value: p) ? 0 : EFAULTr
        case SysNR.rtSigsuspend: return sigsuspendCall(t, a0, a1)
        case SysNR.rtSigtimedwait: return sigtimedwaitCall(t, a0, a1, a2, a3)
        case SysNR.sigaltstack: return sigaltstackCall(t, a0, a1)
        case SysNR.kill: return killCall(pid: i32(a0), sig: i32(a1))
        case SysNR.tgkill: return tgkillCall(tgid: i32(a0), tid: i32(a1), sig: i32(a2))
        case SysNR.tkill: return tgkillCall(tgid: Int(getpid()), tid: i32(a0), sig: i32(a1))
        default:
            return extendedCall(t, nr, a) ?? ENOSYSr
        }
    }

    func copyOut(_ va: UInt64, _ bytes: [UInt8], count: Int) -> Bool {
        var b = bytes
        if b.count < count { b += [UInt8](repeating: 0, count: count - b.count) }
        return b.prefix(count).withUnsafeBytes { copyOut(va, UnsafeRawBufferPointer($0)) }
    }
}
