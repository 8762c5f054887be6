#if canImport(Glibc)
import Glibc
#endif

extension UserProcess {
    /// Host `struct stat` in the generic layout RISC-V uses (128 bytes).
    static func riscvStat(_ st: stat) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 128)
        func put<T>(_ off: Int, _ v: T) { withUnsafeBytes(of: v) { for (i, x) in $0.enumerated() { b[off + i] = x } } }
        put(0, UInt64(st.st_dev)); put(8, UInt64(st.st_ino)); put(16, UInt32(st.st_mode)); put(20, UInt32(truncatingIfNeeded: st.st_nlink))
        put(24, UInt32(st.st_uid)); put(28, UInt32(st.st_gid)); put(32, UInt64(st.st_rdev)); put(48, Int64(st.st_size))
        put(56, Int32(truncatingIfNeeded: st.st_blksize)); put(64, Int64(st.st_blocks))
        put(72, Int64(st.st_atim.tv_sec)); put(80, Int64(st.st_atim.tv_nsec))
        put(88, Int64(st.st_mtim.tv_sec)); put(96, Int64(st.st_mtim.tv_nsec))
        put(104, Int64(st.st_ctim.tv_sec)); put(112, Int64(st.st_ctim.tv_nsec))
        return b
    }

    func copyOut(_ va: UInt64, _ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { copyOut(va, $0) } }

    func fcntlCall(_ fd: UInt64, _ cmd: UInt64, _ arg: UInt64) -> Int64 {
        switch i32(cmd) {
        case 5, 6, 7, 36, 37, 38:  // F_GETLK, F_SETLK, F_SETLKW, F_OFD_*: struct flock (same layout)
            guard var fl = copyIn(arg, 32) else { return EFAULTr }
            let r = fl.withUnsafeMutableBytes { Host.call(NR.fcntl, i32(fd), i32(cmd), iptr($0.baseAddress)) }
            if r < 0 { return r }
            return copyOut(arg, fl) ? r : EFAULTr
        case 0, 1, 2, 3, 4, 1030, 1031, 1032, 1033, 1034, 8, 9:  // dup, fd/fl flags, DUPFD_CLOEXEC, pipe size, owner
            return Host.call(NR.fcntl, i32(fd), i32(cmd), Int(truncatingIfNeeded: arg))
        default:
            return EINVALr
        }
    }

    func ioctlCall(_ fd: UInt64, _ req: UInt64, _ arg: UInt64) -> Int64 {
        let r32 = UInt32(truncatingIfNeeded: req)
        // (request, bytes, direction: 1 = out to guest, 2 = in from guest, 3 = both, 0 = no argument)
        let table: [UInt32: (Int, Int)] = [
            0x5401: (36, 1), 0x5402: (36, 2), 0x5403: (36, 2), 0x5404: (36, 2),  // TCGETS, TCSETS(W/F)
            0x5413: (8, 1), 0x5414: (8, 2),  // TIOCGWINSZ, TIOCSWINSZ
            0x540f: (4, 1), 0x5410: (4, 2),  // TIOCGPGRP, TIOCSPGRP
            0x541b: (4, 1), 0x5421: (4, 2),  // FIONREAD, FIONBIO
            0x5450: (0, 0), 0x5451: (0, 0),  // FIONCLEX, FIOCLEX
            0x5411: (4, 1), 0x8905: (4, 1),  // TIOCOUTQ (SIOCOUTQ), SIOCATMARK
            // Network interfaces: struct ifreq (16-byte name, 24-byte union; no pointers in these requests).
            0x8910: (40, 3), 0x8913: (40, 3), 0x8914: (40, 2), 0x8915: (40, 3), 0x8916: (40, 2), 0x8917: (40, 3),
            0x8919: (40, 3), 0x891b: (40, 3), 0x891d: (40, 3), 0x8921: (40, 3), 0x8927: (40, 3), 0x8933: (40, 3),
            0x8942: (40, 3), 0x8970: (40, 3),
        ]
        if r32 == 0x8912 { return ifconfCall(fd, arg) }
        guard let (size, dir) = table[r32] else { return -Int64(ENOTTY) }
        if dir == 0 { return Host.call(NR.ioctl, i32(fd), Int(r32), 0) }
        var buf = [UInt8](repeating: 0, count: size)
        if dir & 2 != 0 { guard let b = copyIn(arg, size) else { return EFAULTr }; buf = b }
        let r = buf.withUnsafeMutableBytes { Host.call(NR.ioctl, i32(fd), Int(r32), iptr($0.baseAddress)) }
        if r < 0 { return r }
        if dir & 1 != 0 && !copyOut(arg, buf) { return EFAULTr }
        return r
    }

    /// SIOCGIFCONF: struct ifconf holds a length and a pointer to the guest's ifreq array; the host fills a
    /// buffer of its own, copied back.
    func ifconfCall(_ fd: UInt64, _ arg: UInt64) -> Int64 {
        guard let hdr = copyIn(arg, 16) else { return EFAULTr }
        let len = Int(Int32(bitPattern: hdr.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        let bufVA = hdr.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
        guard len >= 0, len <= 1 << 16 else { return EINVALr }
        var buf = [UInt8](repeating: 0, count: max(len, 1))
        var conf = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: Int32(len)) { conf.replaceSubrange(0..<4, with: $0) }
        let r = buf.withUnsafeMutableBytes { bp -> Int64 in
            // A null buffer asks only for the length needed.
            let p = bufVA == 0 ? 0 : UInt64(UInt(bitPattern: bp.baseAddress))
            withUnsafeBytes(of: p) { conf.replaceSubrange(8..<16, with: $0) }
            return conf.withUnsafeMutableBytes { Host.call(NR.ioctl, i32(fd), 0x8912, iptr($0.baseAddress)) }
        }
        if r < 0 { return r }
        let got = Int(Int32(bitPattern: conf.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        if bufVA != 0 && got > 0 && !copyOut(bufVA, Array(buf[0..<min(got, buf.count)])) { return EFAULTr }
        return copyOut(arg, value: Int32(got)) ? r : EFAULTr
    }

    func sendfileCall(_ out: UInt64, _ input: UInt64, _ offPtr: UInt64, _ count: UInt64) -> Int64 {
        var off: Int64 = 0
        if offPtr != 0 { guard let b = copyIn(offPtr, 8) else { return EFAULTr }; off = b.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) } }
        let r = withUnsafeMutablePointer(to: &off) { p in
            Host.call(NR.sendfile, i32(out), i32(input), offPtr == 0 ? 0 : iptr(p), Int(min(count, 1 << 30)))
        }
        if r >= 0 && offPtr != 0 && !copyOut(offPtr, value: off) { return EFAULTr }
        return r
    }

    func ppollCall(_ fdsPtr: UInt64, _ n: UInt64, _ tsPtr: UInt64) -> Int64 {
        guard n <= 1024 else { return EINVALr }
        guard var fds = copyIn(fdsPtr, Int(n) * 8) else { return EFAULTr }
        var ts = timespec()
        if tsPtr != 0 { guard let b = copyIn(tsPtr, 16) else { return EFAULTr }; ts = b.withUnsafeBytes { $0.loadUnaligned(as: timespec.self) } }
        let r = fds.withUnsafeMutableBytes { f in withUnsafePointer(to: &ts) { tp in
            Host.call(NR.ppoll, iptr(f.baseAddress), Int(n), tsPtr == 0 ? 0 : iptr(tp), 0, 8) } }
        if r < 0 { return r }
        return copyOut(fdsPtr, fds) ? r : EFAULTr
    }

    /// nanosleep (clock -1) and clock_nanosleep.
    func sleepCall(clock: Int, flags: Int, req: UInt64, rem: UInt64) -> Int64 {
        guard let b = copyIn(req, 16) else { return EFAULTr }
        var ts = b.withUnsafeBytes { $0.loadUnaligned(as: timespec.self) }
        var left = timespec()
        let r: Int64
        if clock < 0 {
            r = withUnsafePointer(to: &ts) { p in withUnsafeMutablePointer(to: &left) { Host.call(NR.nanosleep, iptr(p), iptr($0)) } }
        } else {
            // clock_nanosleep returns the error number itself.
            let e = clock_nanosleep(clockid_t(clock), Int32(flags), &ts, &left)
            r = e == 0 ? 0 : -Int64(e)
        }
        if r == -Int64(EINTR) && rem != 0 && flags & 1 == 0 { _ = copyOut(rem, value: left) }
        return r
    }

    func unameCall(_ va: UInt64) -> Int64 {
        var u = utsname()
        guard uname(&u) == 0 else { return -Int64(errno) }
        var b = withUnsafeBytes(of: &u) { Array($0.prefix(390)) }
        let machine = Array("riscv64".utf8)
        for i in 0..<65 { b[4 * 65 + i] = i < machine.count ? machine[i] : 0 }
        return copyOut(va, b) ? 0 : EFAULTr
    }
}
