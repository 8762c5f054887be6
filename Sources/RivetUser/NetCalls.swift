#if canImport(Glibc)
import Glibc
#endif

/// RISC-V numbers of the socket calls.
enum NetNR {
    static let socket = 198, socketpair = 199, bind = 200, listen = 201, accept = 202, connect = 203
    static let getsockname = 204, getpeername = 205, sendto = 206, recvfrom = 207, setsockopt = 208, getsockopt = 209
    static let shutdown = 210, sendmsg = 211, recvmsg = 212, accept4 = 242, recvmmsg = 243, sendmmsg = 269
}

/// Sockets. Guest descriptors are host descriptors, so a socket is the host's own; the calls only move
/// addresses, options and message headers between guest memory and the host. Socket addresses, `struct cmsghdr`,
/// `struct ucred`, `struct linger` and `struct timeval` options have the same layout on every 64-bit Linux;
/// only `struct msghdr` holds guest pointers and is rebuilt. Data moves through iovecs of host pointers into the
/// guest's pages (never copied).
extension UserProcess {
    static let maxSockaddr = 128
    static let maxControl = 1 << 16

    func netCall(_ nr: Int, _ a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) -> Int64? {
        let (a0, a1, a2, a3, a4, a5) = a
        switch nr {
        case NetNR.socket: return Host.call(NR.socket, i32(a0), i32(a1), i32(a2))
        case NetNR.socketpair:
            var sv: (Int32, Int32) = (0, 0)
            let r = withUnsafeMutableBytes(of: &sv) { Host.call(NR.socketpair, i32(a0), i32(a1), i32(a2), iptr($0.baseAddress)) }
            if r < 0 { return r }
            guard copyOut(a3, value: sv) else { close(sv.0); close(sv.1); return EFAULTr }
            return 0
        case NetNR.bind, NetNR.connect:
            return withSockaddrIn(a1, a2) { p, n in Host.call(nr == NetNR.bind ? NR.bind : NR.connect, i32(a0), p, n) }
        case NetNR.listen: return Host.call(NR.listen, i32(a0), i32(a1))
        case NetNR.accept, NetNR.accept4:
            let flags = nr == NetNR.accept4 ? i32(a3) : 0
            return withSockaddrOut(a1, a2) { p, lp in Host.call(NR.accept4, i32(a0), p, lp, flags) }
        case NetNR.getsockname, NetNR.getpeername:
            return withSockaddrOut(a1, a2, required: true) { p, lp in
                Host.call(nr == NetNR.getsockname ? NR.getsockname : NR.getpeername, i32(a0), p, lp) }
        case NetNR.shutdown: return Host.call(NR.shutdown, i32(a0), i32(a1))
        case NetNR.sendto:
            guard let v = iovecs(a1, a2, write: false) else { return EFAULTr }
            return withSockaddrIn(a4, a4 == 0 ? 0 : a5) { p, n in
                messageCall(send: true, fd: i32(a0), v, name: p, nameLen: n, flags: i32(a3)).result }
        case NetNR.recvfrom:
            guard let v = iovecs(a1, a2, write: true) else { return EFAULTr }
            return withSockaddrOut(a4, a5) { p, lp in
                var nameLen = p == 0 ? 0 : Int(UnsafePointer<UInt32>(bitPattern: lp)!.pointee)
                let m = messageCall(send: false, fd: i32(a0), v, name: p, nameLen: nameLen, flags: i32(a3))
                nameLen = m.nameLen
                if p != 0 { UnsafeMutablePointer<UInt32>(bitPattern: lp)!.pointee = UInt32(nameLen) }
                return m.result
            }
        case NetNR.sendmsg: return guestMessage(send: true, fd: i32(a0), a1, flags: i32(a2))
        case NetNR.recvmsg: return guestMessage(send: false, fd: i32(a0), a1, flags: i32(a2))
        case NetNR.sendmmsg, NetNR.recvmmsg:
            // One message at a time: struct mmsghdr is a msghdr (56 bytes) and the count it moved.
            let count = min(Int(truncatingIfNeeded: a2), 1024)
            guard count > 0 else { return count == 0 ? 0 : EINVALr }
            var done = 0
            while done < count {
                let hdr = a1 &+ UInt64(done) * 64
                // After the first message, recvmmsg takes only what is already there.
                let extra = nr == NetNR.recvmmsg && done > 0 ? Int(MSG_DONTWAIT) : 0
                let r = guestMessage(send: nr == NetNR.sendmmsg, fd: i32(a0), hdr, flags: i32(a3) | extra)
                if r < 0 { return done > 0 ? Int64(done) : r }
                guard copyOut(hdr + 56, value: UInt32(truncatingIfNeeded: r)) else { return done > 0 ? Int64(done) : EFAULTr }
                done += 1
                if nr == NetNR.recvmmsg && i32(a3) & 0x10000 != 0 { break }  // MSG_WAITFORONE
            }
            return Int64(done)
        case NetNR.setsockopt:
            if UserProcess.isFilterOption(level: i32(a1), name: i32(a2)) { return attachFilter(a0, a1, a2, a3, a4) }
            let n = Int(UInt32(truncatingIfNeeded: a4))
            guard n <= 4096 else { return EINVALr }
            var buf = [UInt8](repeating: 0, count: n)
            if n > 0 { guard let b = copyIn(a3, n) else { return EFAULTr }; buf = b }
            return buf.withUnsafeBytes { Host.call(NR.setsockopt, i32(a0), i32(a1), i32(a2), n == 0 ? 0 : iptr($0.baseAddress), n) }
        case NetNR.getsockopt:
            guard let lb = copyIn(a4, 4) else {
                // Linux looks the socket up first: a bad descriptor wins over a bad length pointer.
                var probe: Int32 = 0, plen = UInt32(4)
                let r = Host.call(NR.getsockopt, i32(a0), 1, 3 /* SO_TYPE */, iptr(&probe), iptr(&plen))
                return r == -Int64(EBADF) || r == -Int64(ENOTSOCK) ? r : EFAULTr
            }
            let want = Int(Int32(bitPattern: lb.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
            guard want >= 0 else { return EINVALr }
            var len = UInt32(min(want, 4096))
            var buf = [UInt8](repeating: 0, count: max(Int(len), 1))
            let r = buf.withUnsafeMutableBytes { b in withUnsafeMutablePointer(to: &len) { lp in
                Host.call(NR.getsockopt, i32(a0), i32(a1), i32(a2), iptr(b.baseAddress), iptr(lp)) } }
            if r < 0 { return r }
            let n = min(Int(len), want, buf.count)
            if n > 0 && !copyOut(a3, Array(buf[0..<n])) { return EFAULTr }
            return copyOut(a4, value: len) ? r : EFAULTr
        default:
            return nil
        }
    }

    /// Options whose value is a `struct sock_fprog` (a length and a *pointer* to BPF instructions):
    /// SO_ATTACH_FILTER, SO_ATTACH_REUSEPORT_CBPF, PACKET_FANOUT_DATA.
    static func isFilterOption(level: Int, name: Int) -> Bool {
        (level == 1 && (name == 26 || name == 51)) || (level == 263 && name == 22)
    }

    /// A classic BPF filter: the guest's instructions are copied and the host gets a sock_fprog pointing at
    /// the copy (the guest's pointer means nothing to the host, and must never reach it).
    func attachFilter(_ fd: UInt64, _ level: UInt64, _ name: UInt64, _ optval: UInt64, _ optlen: UInt64) -> Int64 {
        guard UInt32(truncatingIfNeeded: optlen) >= 16 else { return EINVALr }
        guard let prog = copyIn(optval, 16) else { return EFAULTr }
        let count = Int(prog.withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) })
        let filterVA = prog.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
        guard count > 0, count <= 4096 else { return EINVALr }  // BPF_MAXINSNS
        guard var insns = copyIn(filterVA, count * 8) else { return EFAULTr }
        return insns.withUnsafeMutableBytes { ip -> Int64 in
            var hostProg = [UInt8](repeating: 0, count: 16)
            withUnsafeBytes(of: UInt16(count)) { hostProg.replaceSubrange(0..<2, with: $0) }
            withUnsafeBytes(of: UInt64(UInt(bitPattern: ip.baseAddress))) { hostProg.replaceSubrange(8..<16, with: $0) }
            return hostProg.withUnsafeBytes { Host.call(NR.setsockopt, i32(fd), i32(level), i32(name), iptr($0.baseAddress), 16) }
        }
    }

    /// Calls `body` with a host copy of the guest socket address (or null and 0 when `va` is 0).
    func withSockaddrIn(_ va: UInt64, _ len: UInt64, _ body: (Int, Int) -> Int64) -> Int64 {
        if va == 0 { return body(0, 0) }
        let n = Int(UInt32(truncatingIfNeeded: len))
        guard n <= UserProcess.maxSockaddr else { return EINVALr }
        guard let b = copyIn(va, n) else { return EFAULTr }
        return b.withUnsafeBytes { body(iptr($0.baseAddress), n) }
    }

    /// Calls `body` with a host address buffer and a pointer to its length, then copies the address back to
    /// `va` (truncated to the guest's buffer, as the kernel does) and stores the full length at `lenVA`.
    func withSockaddrOut(_ va: UInt64, _ lenVA: UInt64, required: Bool = false, _ body: (Int, Int) -> Int64) -> Int64 {
        if va == 0 && !required { return body(0, 0) }
        guard let lb = copyIn(lenVA, 4) else { return EFAULTr }
        let want = Int32(bitPattern: lb.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
        guard want >= 0 else { return EINVALr }
        var addr = [UInt8](repeating: 0, count: UserProcess.maxSockaddr)
        var len = UInt32(UserProcess.maxSockaddr)
        let r = addr.withUnsafeMutableBytes { p in withUnsafeMutablePointer(to: &len) { body(iptr(p.baseAddress), iptr($0)) } }
        if r < 0 { return r }
        let n = min(Int(len), Int(want))
        if n > 0 && !copyOut(va, Array(addr[0..<n])) { return EFAULTr }
        return copyOut(lenVA, value: len) ? r : EFAULTr
    }

    /// Host sendmsg/recvmsg over guest data pieces; returns the result and the address length received.
    func messageCall(send: Bool, fd: Int, _ v: [iovec], name: Int, nameLen: Int, flags: Int,
                     control: UnsafeMutableRawBufferPointer? = nil) -> (result: Int64, nameLen: Int, controlLen: Int, flags: Int32) {
        var iov = v
        if iov.isEmpty { iov = [iovec(iov_base: nil, iov_len: 0)] }
        return iov.withUnsafeMutableBufferPointer { ip in
            var m = msghdr()
            m.msg_name = UnsafeMutableRawPointer(bitPattern: name)
            m.msg_namelen = socklen_t(nameLen)
            m.msg_iov = ip.baseAddress
            m.msg_iovlen = v.isEmpty ? 0 : ip.count
            m.msg_control = control?.baseAddress
            m.msg_controllen = control?.count ?? 0
            let r = withUnsafeMutablePointer(to: &m) { Host.call(send ? NR.sendmsg : NR.recvmsg, fd, iptr($0), flags) }
            return (r, Int(m.msg_namelen), Int(m.msg_controllen), m.msg_flags)
        }
    }

    /// sendmsg/recvmsg on a guest `struct msghdr` (name, iovecs, ancillary data such as SCM_RIGHTS, flags).
    func guestMessage(send: Bool, fd: Int, _ hdr: UInt64, flags: Int) -> Int64 {
        guard let h = copyIn(hdr, 56) else { return EFAULTr }
        func u64(_ o: Int) -> UInt64 { h.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt64.self) } }
        let nameVA = u64(0), nameLen = Int(UInt32(truncatingIfNeeded: u64(8)))
        let iovVA = u64(16), iovCount = u64(24), controlVA = u64(32), controlLen = u64(40)
        guard iovCount <= 1024, controlLen <= UInt64(UserProcess.maxControl) else { return iovCount > 1024 ? EINVALr : -Int64(ENOBUFS) }
        guard nameLen <= UserProcess.maxSockaddr || !send else { return EINVALr }
        guard let v = guestIOVecs(iovVA, iovCount, write: !send) else { return EFAULTr }
        var name = [UInt8](repeating: 0, count: UserProcess.maxSockaddr)
        if send && nameVA != 0 && nameLen > 0 {
            guard let b = copyIn(nameVA, nameLen) else { return EFAULTr }
            name.replaceSubrange(0..<nameLen, with: b)
        }
        var control = [UInt8](repeating: 0, count: Int(controlLen))
        if send && controlLen > 0 {
            guard let b = copyIn(controlVA, Int(controlLen)) else { return EFAULTr }
            control = b
        }
        let hostNameLen = nameVA == 0 ? 0 : (send ? nameLen : UserProcess.maxSockaddr)
        let m = name.withUnsafeMutableBytes { np in control.withUnsafeMutableBytes { cp in
            messageCall(send: send, fd: fd, v, name: nameVA == 0 ? 0 : iptr(np.baseAddress), nameLen: hostNameLen,
                        flags: flags, control: controlLen == 0 ? nil : cp)
        } }
        if m.result < 0 || send { return m.result }
        // recvmsg: the address, the ancillary data and the lengths and flags go back to the guest header.
        if nameVA != 0 {
            let n = min(m.nameLen, nameLen)
            if n > 0 && !copyOut(nameVA, Array(name[0..<n])) { return EFAULTr }
            guard copyOut(hdr + 8, value: UInt32(m.nameLen)) else { return EFAULTr }
        }
        if controlLen > 0 && m.controlLen > 0 && !copyOut(controlVA, Array(control[0..<min(m.controlLen, control.count)])) {
            return EFAULTr
        }
        guard copyOut(hdr + 40, value: UInt64(m.controlLen)), copyOut(hdr + 48, value: m.flags) else { return EFAULTr }
        return m.result
    }
}
