#if canImport(Glibc)
import Glibc
#endif

/// execve/execveat and the /proc files a RISC-V process reads about itself.
extension UserProcess {
    static let atFDCWD = -100, atEmptyPath = 0x1000, atSymlinkNofollow = 0x100

    // MARK: execve

    func execveCall(_ t: GuestThread, _ pathPtr: UInt64, _ argvPtr: UInt64, _ envpPtr: UInt64, flags: UInt64) -> Int64 {
        execveatCall(t, UInt64(bitPattern: Int64(UserProcess.atFDCWD)), pathPtr, argvPtr, envpPtr, flags)
    }

    /// execveat (and execve): the path is taken relative to `dirfd`, or is `dirfd` itself with AT_EMPTY_PATH.
    func execveatCall(_ t: GuestThread, _ dirfd: UInt64, _ pathPtr: UInt64, _ argvPtr: UInt64, _ envpPtr: UInt64, _ flags: UInt64) -> Int64 {
        guard let raw = guestString(pathPtr) else { return EFAULTr }
        guard flags & ~UInt64(UserProcess.atEmptyPath | UserProcess.atSymlinkNofollow) == 0 else { return EINVALr }
        func strings(_ va: UInt64) -> [String]? {
            var out: [String] = []
            var a = va
            while va != 0 {
                guard out.count < 65536, let p = lock.locked({ mm.read64(a) }) else { return nil }
                if p == 0 { break }
                guard let s = guestString(p) else { return nil }
                out.append(String(decoding: s, as: UTF8.self))
                a += 8
            }
            return out
        }
        guard let argv = strings(argvPtr), let envp = strings(envpPtr) else { return EFAULTr }
        var path = String(decoding: raw, as: UTF8.self)
        let fd = i32(dirfd)
        if path.isEmpty {
            guard flags & UInt64(UserProcess.atEmptyPath) != 0 else { return -Int64(ENOENT) }
            guard let target = UserProcess.fdPath(fd) else { return -Int64(EBADF) }
            path = target
        } else if !path.hasPrefix("/") && fd != UserProcess.atFDCWD {
            guard let dir = UserProcess.fdPath(fd) else { return -Int64(EBADF) }
            path = dir + "/" + path
        }
        return execProgram(path, argv: argv, envp: envp, depth: 0)
    }

    /// The file an open descriptor refers to.
    static func fdPath(_ fd: Int) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/fd/\(fd)", &buf, 4095)
        return n > 0 ? String(cString: buf) : nil
    }

    /// Runs `path` in place of this program: a RISC-V ELF through rivet, a `#!` script through its interpreter
    /// (resolved through the sysroot, as the kernel resolves it), anything else through the host kernel (so a
    /// native program or script runs natively, as under qemu-user).
    func execProgram(_ path: String, argv: [String], envp: [String], depth: Int) -> Int64 {
        guard depth < 5 else { return -Int64(ELOOP) }
        let host = isSelfExe(path) ? hostPath(Array(exePath.utf8)) : hostPath(Array(path.utf8))
        if access(host, F_OK) != 0 { return -Int64(errno) }
        var st = stat()
        guard stat(host, &st) == 0 else { return -Int64(errno) }
        if (st.st_mode & S_IFMT) != S_IFREG { return -Int64(EACCES) }
        if access(host, X_OK) != 0 { return -Int64(errno) }
        guard let head = readPrefix(host, 256), head.count >= 2 else { return -Int64(ENOEXEC) }
        if head[0] == 0x23 && head[1] == 0x21 {  // "#!"
            guard let (interp, arg) = UserProcess.shebang(head) else { return -Int64(ENOEXEC) }
            var args = [interp]
            if let arg { args.append(arg) }
            args.append(path)
            args += argv.dropFirst()
            return execProgram(interp, argv: args, envp: envp, depth: depth + 1)
        }
        let riscv = head.count >= 20 && head[0] == 0x7f && head[1] == 0x45 && head[2] == 0x4c && head[3] == 0x46
            && head[4] == 2 && head[18] == 243 && head[19] == 0
        let target: String, args: [String]
        if riscv {
            var selfPath = [CChar](repeating: 0, count: 4096)
            guard readlink("/proc/self/exe", &selfPath, 4095) > 0 else { return -Int64(ENOEXEC) }
            target = String(cString: selfPath)
            var a = [target, "user"]
            if let s = options.sysroot { a += ["--sysroot", s] }
            if options.strace { a.append("--strace") }
            a += ["--argv0", argv.first ?? path, "--", isSelfExe(path) ? exePath : path]
            args = a + argv.dropFirst()
        } else {
            target = host
            args = argv
        }
        let cArgs = args.map { strdup($0) } + [nil]
        let cEnv = envp.map { strdup($0) } + [nil]
        fflush(nil)
        execve(target, cArgs, cEnv)
        let e = errno
        cArgs.forEach { free($0) }; cEnv.forEach { free($0) }
        return -Int64(e)
    }

    /// Whether a guest path names this process's own program.
    func isSelfExe(_ path: String) -> Bool {
        path == "/proc/self/exe" || path == "/proc/\(getpid())/exe" || path == "/proc/thread-self/exe"
    }

    /// The interpreter and optional single argument of a `#!` line (Linux: up to 255 bytes, one argument).
    static func shebang(_ head: [UInt8]) -> (String, String?)? {
        var line = Array(head.dropFirst(2))
        if let nl = line.firstIndex(of: 10) { line = Array(line[..<nl]) } else if head.count >= 256 { return nil }
        let text = String(decoding: line, as: UTF8.self).trimmingBlanks()
        guard !text.isEmpty else { return nil }
        if let sp = text.firstIndex(where: { $0 == " " || $0 == "\t" }) {
            let arg = String(text[sp...]).trimmingBlanks()
            return (String(text[..<sp]), arg.isEmpty ? nil : arg)
        }
        return (text, nil)
    }

    // MARK: /proc

    /// A descriptor for a /proc file that must describe the guest rather than rivet (nil: not such a file).
    /// The contents are made when opened, in a memory file, as Linux makes them when read.
    func procFile(_ path: String, flags: Int) -> Int64? {
        guard path.hasPrefix("/proc/") else { return nil }
        var rest = String(path.dropFirst(6))
        let me = "\(getpid())/"
        if rest.hasPrefix("self/") { rest = String(rest.dropFirst(5)) }
        else if rest.hasPrefix(me) { rest = String(rest.dropFirst(me.count)) }
        else if rest != "cpuinfo" { return nil }
        let bytes: [UInt8]
        switch rest {
        case "cpuinfo": bytes = Array(UserProcess.cpuinfo().utf8)
        case "cmdline": bytes = guestArgv.flatMap { Array($0.utf8) + [0] }
        case "auxv": bytes = savedAuxv
        case "maps": bytes = Array(lock.locked { mapsText() }.utf8)
        default: return nil
        }
        let fd = "rivet-proc".withCString { Host.call(NR.memfd_create, iptr($0), flags & Int(O_CLOEXEC) != 0 ? 1 : 0) }  // MFD_CLOEXEC
        if fd < 0 { return fd }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(Int32(fd), $0.baseAddress! + off, bytes.count - off) }
            if n <= 0 { close(Int32(fd)); return -Int64(EIO) }
            off += n
        }
        lseek(Int32(fd), 0, SEEK_SET)
        // Read-only, as the real file.
        if flags & Int(O_ACCMODE) != Int(O_RDONLY) { close(Int32(fd)); return -Int64(EACCES) }
        return fd
    }

    static func cpuinfo() -> String {
        let n = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        var s = ""
        for i in 0..<n {
            s += "processor\t: \(i)\nhart\t\t: \(i)\nisa\t\t: rv64imafdc_zicntr_zicsr_zifencei\nmmu\t\t: sv39\n"
            s += "uarch\t\t: rivet\nmvendorid\t: 0x0\nmarchid\t\t: 0x0\nmimpid\t\t: 0x0\n\n"
        }
        return s
    }

    /// /proc/self/maps: the guest's mappings as Linux prints them (names for the program, heap and stack).
    func mapsText() -> String {
        var out = ""
        func hex(_ v: UInt64, _ w: Int) -> String {
            let h = String(v, radix: 16)
            return String(repeating: "0", count: max(0, w - h.count)) + h
        }
        for r in mm.regions() {
            let perms = (r.prot & Prot.read != 0 ? "r" : "-") + (r.prot & Prot.write != 0 ? "w" : "-")
                + (r.prot & Prot.exec != 0 ? "x" : "-") + (r.shared ? "s" : "p")
            var name = "", offset: UInt64 = 0
            if let n = mm.name(at: r.start) { name = n.path; offset = n.offset }
            else if r.end == AddressSpace.stackTop { name = "[stack]" }
            else if r.start == AddressSpace.vdsoVA { name = "[vdso]" }
            else if r.start == AddressSpace.trampolineVA { name = "[sigpage]" }
            else if r.start >= AddressSpace.pageAlignUp(mm.brkStart) && r.end <= AddressSpace.pageAlignUp(mm.brkCurrent) && mm.brkCurrent > mm.brkStart { name = "[heap]" }
            var line = "\(hex(r.start, 8))-\(hex(r.end, 8)) \(perms) \(hex(offset, 8)) 00:00 0"
            if !name.isEmpty { line += String(repeating: " ", count: max(1, 73 - line.count)) + name }
            out += line + "\n"
        }
        return out
    }
}

extension String {
    func trimmingBlanks() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
