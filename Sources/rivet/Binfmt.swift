import RivetUser
#if canImport(Glibc)
import Glibc
#endif

/// binfmt_misc registration: riscv64 ELF executables run through `rivet user` when executed directly.
///
/// The kernel runs the registered interpreter with no way to add options, so the interpreter is a symlink to
/// rivet named `rivet-binfmt-riscv64` beside the rivet binary; rivet started under that name is `rivet user`.
/// Flags are those of qemu-user-static: P (the original argv[0] is passed on), C (credentials and security
/// from the program, which implies O: the kernel opens the program for us) and F (the interpreter is opened
/// at registration, so it works inside containers and chroots).
enum Binfmt {
    static let entryName = "rivet-riscv64"
    static let interpreterName = "rivet-binfmt-riscv64"
    static let defaultMount = "/proc/sys/fs/binfmt_misc"
    // ELF64, little-endian, version 1, ET_EXEC or ET_DYN (mask 0xfe), EM_RISCV (243), as qemu-user-binfmt.
    static let magic = "\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xf3\\x00"
    static let mask = "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"
    static let flags = "PCF"

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// When rivet runs as the binfmt interpreter (argv: interpreter, program path, original argv[0], args...),
    /// the equivalent `rivet user` command line; otherwise nil.
    static func userCommandLine(_ argv: [String]) -> [String]? {
        guard let first = argv.first, first.split(separator: "/").last.map(String.init) == interpreterName else { return nil }
        // With O (implied by C) the kernel also hands over an open descriptor of the program; the guest must
        // not inherit it.
        typealias GetAuxval = @convention(c) (UInt) -> UInt
        let execfd = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "getauxval").map { unsafeBitCast($0, to: GetAuxval.self)(2) } ?? 0  // AT_EXECFD
        if execfd > 2 && execfd < 1 << 20 { close(Int32(execfd)) }
        guard argv.count >= 3 else { return ["user"] }
        var out = ["user"]
        if let root = getenv("RIVET_SYSROOT") { out += ["--sysroot", String(cString: root)] }
        out += ["--argv0", argv[2], "--", argv[1]]
        return out + argv.dropFirst(3)
    }

    static func rivetPath() throws -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        guard readlink("/proc/self/exe", &buf, 4095) > 0 else { throw Failure(description: "cannot find the rivet binary (/proc/self/exe)") }
        return String(cString: buf)
    }

    static func interpreterPath() throws -> String {
        let rivet = try rivetPath()
        let dir = rivet.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return dir + "/" + interpreterName
    }

    static func checkMount(_ mount: String) throws {
        guard access(mount + "/register", W_OK) == 0 else {
            throw Failure(description: "\(mount)/register is not writable: binfmt_misc must be mounted (mount -t binfmt_misc binfmt_misc \(mount)) and rivet run as root")
        }
    }

    static func install(mount: String = defaultMount) throws {
        try checkMount(mount)
        if access(mount + "/" + entryName, F_OK) == 0 {
            throw Failure(description: "\(entryName) is already registered in \(mount) (rivet user --uninstall-binfmt removes it)")
        }
        let rivet = try rivetPath()
        let interp = try interpreterPath()
        unlink(interp)
        guard symlink(rivet, interp) == 0 else {
            throw Failure(description: "cannot create \(interp): \(String(cString: strerror(errno)))")
        }
        let line = ":\(entryName):M::\(magic):\(mask):\(interp):\(flags)"
        do { try write(line, to: mount + "/register") } catch { unlink(interp); throw error }
    }

    static func uninstall(mount: String = defaultMount) throws {
        let entry = mount + "/" + entryName
        guard access(entry, F_OK) == 0 else { throw Failure(description: "\(entryName) is not registered in \(mount)") }
        try write("-1", to: entry)
        if let interp = try? interpreterPath() { unlink(interp) }
    }

    static func write(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let n = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        guard n == text.utf8.count else { throw Failure(description: "writing \(path) failed: \(String(cString: strerror(errno)))") }
    }
}
