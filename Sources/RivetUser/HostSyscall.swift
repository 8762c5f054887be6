#if canImport(Glibc)
import Glibc
#endif

/// Raw host system calls. Swift cannot call the variadic `syscall(2)` wrapper directly, so it is looked up
/// once and called through a fixed seven-argument signature (glibc's implementation is plain assembly that
/// only moves registers, so this is safe on x86-64 and AArch64).
enum Host {
    typealias RawSyscall = @convention(c) (Int, Int, Int, Int, Int, Int, Int) -> Int
    static let rawSyscall: RawSyscall = {
        guard let p = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "syscall") else { fatalError("rivet user: libc has no syscall()") }
        return unsafeBitCast(p, to: RawSyscall.self)
    }()

    /// Calls host system call `n`; returns the result or -errno, as the kernel does.
    @inline(__always)
    static func call(_ n: Int, _ a: Int = 0, _ b: Int = 0, _ c: Int = 0, _ d: Int = 0, _ e: Int = 0, _ f: Int = 0) -> Int64 {
        let r = rawSyscall(n, a, b, c, d, e, f)
        return r == -1 ? -Int64(errno) : Int64(r)
    }

    /// Converts a libc-style result (-1 and errno) to the kernel convention.
    @inline(__always)
    static func check(_ r: Int) -> Int64 { r < 0 ? -Int64(errno) : Int64(r) }

    static func gettid() -> Int32 { Int32(truncatingIfNeeded: call(NR.gettid)) }
}

/// Host system call numbers used by raw calls. On AArch64 the host uses the generic table, as RISC-V does.
enum NR {
#if arch(x86_64)
    static let read = 0, write = 1, close = 3, lseek = 8, ioctl = 16, pread64 = 17, pwrite64 = 18
    static let readv = 19, writev = 20, sched_yield = 24, dup = 32, nanosleep = 35, getpid = 39
    static let wait4 = 61, kill = 62, fcntl = 72, fsync = 74, fdatasync = 75, ftruncate = 77, getcwd = 79
    static let chdir = 80, fchdir = 81, fchmod = 91, umask = 95, gettimeofday = 96, getrlimit = 97, getrusage = 98, sysinfo = 99
    static let times = 100, getppid = 110, getpgid = 121, setpgid = 109, getsid = 124, setsid = 112
    static let gettid = 186, futex = 202, sched_getaffinity = 204, getdents64 = 217
    static let clock_gettime = 228, clock_getres = 229, clock_nanosleep = 230, tgkill = 234
    static let openat = 257, mkdirat = 258, fchownat = 260, newfstatat = 262, unlinkat = 263, linkat = 265, symlinkat = 266
    static let readlinkat = 267, fchmodat = 268, faccessat = 269, pselect6 = 270, ppoll = 271, utimensat = 280
    static let dup3 = 292, pipe2 = 293, prlimit64 = 302, renameat2 = 316, getrandom = 318, statx = 332, faccessat2 = 439
    static let preadv = 295, pwritev = 296, getcpu = 309, sendfile = 40, fstat = 5, getitimer = 36, setitimer = 38
    static let socket = 41, connect = 42, accept = 43, sendto = 44, recvfrom = 45, sendmsg = 46, recvmsg = 47
    static let shutdown = 48, bind = 49, listen = 50, getsockname = 51, getpeername = 52, socketpair = 53
    static let setsockopt = 54, getsockopt = 55, accept4 = 288, epoll_create1 = 291, epoll_ctl = 233, epoll_pwait = 281
    static let epoll_pwait2 = 441, eventfd2 = 290, timerfd_create = 283, timerfd_settime = 286, timerfd_gettime = 287
    static let signalfd4 = 289, splice = 275, tee = 276, prctl = 157, flock = 73, fallocate = 285, statfs = 137
    static let fstatfs = 138, truncate = 76, sync = 162, syncfs = 306, getgroups = 115, setgroups = 116, memfd_create = 319
    static let copy_file_range = 326, mknodat = 259, fchown = 93, getpriority = 140, setpriority = 141
    static let sched_setparam = 142, sched_getparam = 143, sched_setscheduler = 144, sched_getscheduler = 145
    static let sched_get_priority_max = 146, sched_get_priority_min = 147, sched_rr_get_interval = 148
    static let getresuid = 118, getresgid = 120, setuid = 105, setgid = 106, setreuid = 113, setregid = 114
    static let setresuid = 117, setresgid = 119, inotify_init1 = 294, inotify_add_watch = 254, inotify_rm_watch = 255
    static let close_range = 436, personality = 135, sched_setaffinity = 203, mincore = 27
#else
    static let read = 63, write = 64, close = 57, lseek = 62, ioctl = 29, pread64 = 67, pwrite64 = 68
    static let readv = 65, writev = 66, sched_yield = 124, dup = 23, nanosleep = 101, getpid = 172
    static let wait4 = 260, kill = 129, fcntl = 25, fsync = 82, fdatasync = 83, ftruncate = 46, getcwd = 17
    static let chdir = 49, fchdir = 50, fchmod = 52, umask = 166, gettimeofday = 169, getrlimit = 163, getrusage = 165, sysinfo = 179
    static let times = 153, getppid = 173, getpgid = 155, setpgid = 154, getsid = 156, setsid = 157
    static let gettid = 178, futex = 98, sched_getaffinity = 123, getdents64 = 61
    static let clock_gettime = 113, clock_getres = 114, clock_nanosleep = 115, tgkill = 131
    static let openat = 56, mkdirat = 34, fchownat = 54, newfstatat = 79, unlinkat = 35, linkat = 37, symlinkat = 36
    static let readlinkat = 78, fchmodat = 53, faccessat = 48, pselect6 = 72, ppoll = 73, utimensat = 88
    static let dup3 = 24, pipe2 = 59, prlimit64 = 261, renameat2 = 276, getrandom = 278, statx = 291, faccessat2 = 439
    static let preadv = 69, pwritev = 70, getcpu = 168, sendfile = 71, fstat = 80, getitimer = 102, setitimer = 103
    static let socket = 198, connect = 203, accept = 202, sendto = 206, recvfrom = 207, sendmsg = 211, recvmsg = 212
    static let shutdown = 210, bind = 200, listen = 201, getsockname = 204, getpeername = 205, socketpair = 199
    static let setsockopt = 208, getsockopt = 209, accept4 = 242, epoll_create1 = 20, epoll_ctl = 21, epoll_pwait = 22
    static let epoll_pwait2 = 441, eventfd2 = 19, timerfd_create = 85, timerfd_settime = 86, timerfd_gettime = 87
    static let signalfd4 = 74, splice = 76, tee = 77, prctl = 167, flock = 32, fallocate = 47, statfs = 43
    static let fstatfs = 44, truncate = 45, sync = 81, syncfs = 267, getgroups = 158, setgroups = 159, memfd_create = 279
    static let copy_file_range = 285, mknodat = 33, fchown = 55, getpriority = 141, setpriority = 140
    static let sched_setparam = 118, sched_getparam = 121, sched_setscheduler = 119, sched_getscheduler = 120
    static let sched_get_priority_max = 125, sched_get_priority_min = 126, sched_rr_get_interval = 127
    static let getresuid = 148, getresgid = 150, setuid = 146, setgid = 144, setreuid = 145, setregid = 143
    static let setresuid = 147, setresgid = 149, inotify_init1 = 26, inotify_add_watch = 27, inotify_rm_watch = 28
    static let close_range = 436, personality = 92, sched_setaffinity = 122, mincore = 232
#endif
}

/// A pthread mutex usable from any host thread (the mini kernel's big lock).
final class KernelLock {
    private let m: UnsafeMutablePointer<pthread_mutex_t>
    init() {
        m = .allocate(capacity: 1)
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(m, &attr)
    }
    @inline(__always) func lock() { pthread_mutex_lock(m) }
    @inline(__always) func unlock() { pthread_mutex_unlock(m) }
    @inline(__always) func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m); defer { pthread_mutex_unlock(m) }
        return try body()
    }
    /// After fork() only the calling thread exists; the lock must be usable again in the child.
    func reinitAfterFork() {
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(m, &attr)
    }
}
