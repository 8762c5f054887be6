#if canImport(Glibc)
import Glibc
#endif

/// RISC-V numbers of process, scheduler, identity and remaining file calls.
enum MoreNR {
    static let flock = 32, mknodat = 33, statfs = 43, fstatfs = 44, truncate = 45, fallocate = 47, fchown = 55
    static let sync = 81, personality = 92, schedSetparam = 118, schedSetscheduler = 119, schedGetscheduler = 120
    static let schedGetparam = 121, schedGetPriorityMax = 125, schedGetPriorityMin = 126, schedRRGetInterval = 127
    static let setpriority = 140, getpriority = 141, setregid = 143, setgid = 144, setreuid = 145, setuid = 146
    static let setresuid = 147, getresuid = 148, setresgid = 149, getresgid = 150, getgroups = 158, setgroups = 159
    static let syncfs = 267, memfdCreate = 279, execveat = 281, copyFileRange = 285, inotifyInit1 = 26
    static let inotifyAddWatch = 27, inotifyRmWatch = 28, mincore = 232

    static let names: [Int: String] = [
        19: "eventfd2", 20: "epoll_create1", 21: "epoll_ctl", 22: "epoll_pwait", 26: "inotify_init1", 27: "inotify_add_watch",
        28: "inotify_rm_watch", 32: "flock", 33: "mknodat", 43: "statfs", 44: "fstatfs", 45: "truncate", 47: "fallocate",
        55: "fchown", 74: "signalfd4", 76: "splice", 77: "tee", 81: "sync", 85: "timerfd_create", 86: "timerfd_settime",
        87: "timerfd_gettime", 92: "personality", 118: "sched_setparam", 119: "sched_setscheduler", 120: "sched_getscheduler",
        121: "sched_getparam", 125: "sched_get_priority_max", 126: "sched_get_priority_min", 127: "sched_rr_get_interval",
        140: "setpriority", 141: "getpriority", 143: "setregid", 144: "setgid", 145: "setreuid", 146: "setuid",
        147: "setresuid", 148: "getresuid", 149: "setresgid", 150: "getresgid", 158: "getgroups", 159: "setgroups",
        198: "socket", 199: "socketpair", 200: "bind", 201: "listen", 202: "accept", 203: "connect", 204: "getsockname",
        205: "getpeername", 206: "sendto", 207: "recvfrom", 208: "setsockopt", 209: "getsockopt", 210: "shutdown",
        211: "sendmsg", 212: "recvmsg", 232: "mincore", 242: "accept4", 243: "recvmmsg", 267: "syncfs", 269: "sendmmsg",
        279: "memfd_create", 281: "execveat", 285: "copy_file_range", 441: "epoll_pwait2",
    ]
}

extension UserProcess {
    /// System calls beyond the core table (Syscalls.swift): sockets, waits, process details. nil = unknown.
    func extendedCall(_ t: GuestThread, _ nr: Int, _ a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) -> Int64? {
        if let r = netCall(nr, a) { return r }
        if let r = waitCall(t, nr, a) { return r }
        let (a0, a1, a2, a3, a4, a5) = a
        switch nr {
        case SysNR.prctl: return prctlCall(a0, a1)
        case SysNR.rseq: return ENOSYSr  // as a kernel without CONFIG_RSEQ: glibc then does without it
        case SysNR.execveat: return execveatCall(t, a0, a1, a2, a3, a4)
        case MoreNR.flock: return Host.call(NR.flock, i32(a0), i32(a1))
        case MoreNR.fallocate:
            return Host.call(NR.fallocate, i32(a0), i32(a1), Int(truncatingIfNeeded: a2), Int(truncatingIfNeeded: a3))
        case MoreNR.truncate:
            return withPath(a0, resolve: false) { Host.call(NR.truncate, iptr($0), Int(truncatingIfNeeded: a1)) }
        case MoreNR.statfs, MoreNR.fstatfs:
            // struct statfs is 120 bytes with the same layout on x86-64, AArch64 and RISC-V.
            var buf = [UInt8](repeating: 0, count: 120)
            let r = nr == MoreNR.fstatfs
                ? buf.withUnsafeMutableBytes { Host.call(NR.fstatfs, i32(a0), iptr($0.baseAddress)) }
                : withPath(a0) { p in buf.withUnsafeMutableBytes { Host.call(NR.statfs, iptr(p), iptr($0.baseAddress)) } }
            if r < 0 { return r }
            return copyOut(a1, buf) ? 0 : EFAULTr
        case MoreNR.sync: return Host.call(NR.sync)
        case MoreNR.syncfs: return Host.call(NR.syncfs, i32(a0))
        case MoreNR.fchown: return Host.call(NR.fchown, i32(a0), i32(a1), i32(a2))
        case MoreNR.mknodat:
            return withPath(a1, resolve: false) { Host.call(NR.mknodat, i32(a0), iptr($0), i32(a2), Int(UInt32(truncatingIfNeeded: a3))) }
        case MoreNR.memfdCreate:
            return withPath(a0, resolve: false) { Host.call(NR.memfd_create, iptr($0), i32(a1)) }
        case MoreNR.copyFileRange:
            var offIn: Int64 = 0, offOut: Int64 = 0
            if a1 != 0 { guard let b = copyIn(a1, 8) else { return EFAULTr }; offIn = b.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) } }
            if a3 != 0 { guard let b = copyIn(a3, 8) else { return EFAULTr }; offOut = b.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) } }
            let r = withUnsafeMutablePointer(to: &offIn) { ip in withUnsafeMutablePointer(to: &offOut) { op in
                Host.call(NR.copy_file_range, i32(a0), a1 == 0 ? 0 : iptr(ip), i32(a2), a3 == 0 ? 0 : iptr(op),
                          Int(min(a4, 1 << 30)), i32(a5)) } }
            if r < 0 { return r }
            if a1 != 0 && !copyOut(a1, value: offIn) { return EFAULTr }
            if a3 != 0 && !copyOut(a3, value: offOut) { return EFAULTr }
            return r
        case MoreNR.personality: return a0 == 0xffff_ffff || a0 == 0 ? 0 : EINVALr  // PER_LINUX only
        case MoreNR.schedGetscheduler: return Host.call(NR.sched_getscheduler, i32(a0))
        case MoreNR.schedGetPriorityMax: return Host.call(NR.sched_get_priority_max, i32(a0))
        case MoreNR.schedGetPriorityMin: return Host.call(NR.sched_get_priority_min, i32(a0))
        case MoreNR.schedGetparam:
            var p: Int32 = 0
            let r = Host.call(NR.sched_getparam, i32(a0), iptr(&p))
            if r < 0 { return r }
            return copyOut(a1, value: p) ? 0 : EFAULTr
        case MoreNR.schedSetparam, MoreNR.schedSetscheduler:
            guard let b = copyIn(nr == MoreNR.schedSetparam ? a1 : a2, 4) else { return EFAULTr }
            return b.withUnsafeBytes { p in
                nr == MoreNR.schedSetparam ? Host.call(NR.sched_setparam, i32(a0), iptr(p.baseAddress))
                    : Host.call(NR.sched_setscheduler, i32(a0), i32(a1), iptr(p.baseAddress)) }
        case MoreNR.schedRRGetInterval:
            var ts = timespec()
            let r = withUnsafeMutableBytes(of: &ts) { Host.call(NR.sched_rr_get_interval, i32(a0), iptr($0.baseAddress)) }
            if r < 0 { return r }
            return copyOut(a1, value: ts) ? 0 : EFAULTr
        case MoreNR.getpriority: return Host.call(NR.getpriority, i32(a0), i32(a1))
        case MoreNR.setpriority: return Host.call(NR.setpriority, i32(a0), i32(a1), i32(a2))
        case MoreNR.setuid: return Host.call(NR.setuid, i32(a0))
        case MoreNR.setgid: return Host.call(NR.setgid, i32(a0))
        case MoreNR.setreuid: return Host.call(NR.setreuid, i32(a0), i32(a1))
        case MoreNR.setregid: return Host.call(NR.setregid, i32(a0), i32(a1))
        case MoreNR.setresuid: return Host.call(NR.setresuid, i32(a0), i32(a1), i32(a2))
        case MoreNR.setresgid: return Host.call(NR.setresgid, i32(a0), i32(a1), i32(a2))
        case MoreNR.getresuid, MoreNR.getresgid:
            var ids: (UInt32, UInt32, UInt32) = (0, 0, 0)
            let r = withUnsafeMutableBytes(of: &ids) { p in
                Host.call(nr == MoreNR.getresuid ? NR.getresuid : NR.getresgid, iptr(p.baseAddress), iptr(p.baseAddress! + 4), iptr(p.baseAddress! + 8)) }
            if r < 0 { return r }
            guard copyOut(a0, value: ids.0), copyOut(a1, value: ids.1), copyOut(a2, value: ids.2) else { return EFAULTr }
            return 0
        case MoreNR.getgroups:
            let n = i32(a0)
            guard n >= 0, n <= 65536 else { return EINVALr }
            var g = [UInt32](repeating: 0, count: max(n, 1))
            let r = g.withUnsafeMutableBytes { Host.call(NR.getgroups, n, iptr($0.baseAddress)) }
            if r <= 0 || n == 0 { return r }
            return g.withUnsafeBytes { copyOut(a1, UnsafeRawBufferPointer(rebasing: $0[0..<Int(r) * 4])) } ? r : EFAULTr
        case MoreNR.setgroups:
            let n = i32(a0)
            guard n >= 0, n <= 65536 else { return EINVALr }
            guard let b = copyIn(a1, n * 4) else { return EFAULTr }
            return b.withUnsafeBytes { Host.call(NR.setgroups, n, iptr($0.baseAddress)) }
        case MoreNR.inotifyInit1: return Host.call(NR.inotify_init1, i32(a0))
        case MoreNR.inotifyAddWatch:
            return withPath(a1) { Host.call(NR.inotify_add_watch, i32(a0), iptr($0), Int(UInt32(truncatingIfNeeded: a2))) }
        case MoreNR.inotifyRmWatch: return Host.call(NR.inotify_rm_watch, i32(a0), i32(a1))
        case MoreNR.mincore:
            guard a0 & 4095 == 0 else { return EINVALr }
            let len = AddressSpace.pageAlignUp(a1)
            guard AddressSpace.validRange(a0, len), len >> 12 <= 1 << 20 else { return ENOMEMr }
            var vec = [UInt8](repeating: 0, count: Int(len >> 12))
            let ok: Bool = lock.locked {
                for i in 0..<vec.count {
                    let va = a0 + UInt64(i) << 12
                    guard mm.isMapped(va) else { return false }
                    vec[i] = mm.physical(va) != nil ? 1 : 0  // resident once touched
                }
                return true
            }
            guard ok else { return ENOMEMr }
            return copyOut(a2, vec) ? 0 : EFAULTr
        case SysNR.closeRange: return Host.call(NR.close_range, Int(UInt32(truncatingIfNeeded: a0)), Int(UInt32(truncatingIfNeeded: a1)), i32(a2))
        default: return nil
        }
    }

    /// prctl: names are the host thread's own (each guest thread is a host thread), so the host's
    /// /proc/PID/task/TID/comm shows them; the common process options pass through to the host.
    func prctlCall(_ option: UInt64, _ arg: UInt64) -> Int64 {
        switch option {
        case 15:  // PR_SET_NAME
            guard let s = guestString(arg) ?? copyIn(arg, 16) else { return EFAULTr }
            var name = Array(s.prefix(15)) + [0]
            return name.withUnsafeMutableBytes { Host.call(NR.prctl, 15, iptr($0.baseAddress)) }
        case 16:  // PR_GET_NAME
            var name = [UInt8](repeating: 0, count: 16)
            let r = name.withUnsafeMutableBytes { Host.call(NR.prctl, 16, iptr($0.baseAddress)) }
            if r < 0 { return r }
            return copyOut(arg, name) ? 0 : EFAULTr
        case 1, 4, 8, 29, 36, 38:  // SET_PDEATHSIG, SET_DUMPABLE, SET_KEEPCAPS, SET_TIMERSLACK, SET_CHILD_SUBREAPER, SET_NO_NEW_PRIVS
            return Host.call(NR.prctl, Int(option), Int(truncatingIfNeeded: arg), 0, 0, 0)
        case 3, 7, 30, 39, 23:  // GET_DUMPABLE, GET_KEEPCAPS, GET_TIMERSLACK, GET_NO_NEW_PRIVS, CAPBSET_READ
            return Host.call(NR.prctl, Int(option), Int(truncatingIfNeeded: arg), 0, 0, 0)
        case 2, 37:  // GET_PDEATHSIG, GET_CHILD_SUBREAPER: an int stored at arg
            var v: Int32 = 0
            let r = Host.call(NR.prctl, Int(option), iptr(&v), 0, 0, 0)
            if r < 0 { return r }
            return copyOut(arg, value: v) ? 0 : EFAULTr
        default:
            return EINVALr  // including PR_SET_SECCOMP: a filter for RISC-V calls cannot be given to the host
        }
    }
}
