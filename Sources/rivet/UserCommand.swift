import ArgumentParser
import RivetGDB
import RivetUser
#if canImport(Glibc)
import Glibc
#endif

/// `rivet user`: runs one RISC-V Linux program as a host process (the process virtual machine).
struct User: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Run a riscv64 Linux program on the host, translating its system calls (like qemu-riscv64).",
        discussion: """
        Static, static-pie and dynamically linked programs run; dynamic ones load their interpreter and libraries \
        from --sysroot (default /usr/riscv64-linux-gnu when it exists). The exit status is the program's; a \
        program killed by a signal kills rivet with the same signal.

        --install-binfmt (as root) registers rivet with binfmt_misc for riscv64 ELF executables (flags P, C, F, as \
        qemu-user-static), so `./prog` runs under rivet; the interpreter is the symlink rivet-binfmt-riscv64 beside \
        the rivet binary, and RIVET_SYSROOT chooses its sysroot. --uninstall-binfmt removes both.
        """)

    @Option(help: "Directory holding the guest's libraries (absolute guest paths are looked up there first).")
    var sysroot: String?
    @Flag(help: "Print each system call and its result on stderr.") var strace = false
    @Option(name: .customLong("env"), help: "Set an environment variable for the program (K=V); repeatable.")
    var env: [String] = []
    @Option(name: .customShort("g"), help: "Wait for gdb on 127.0.0.1:PORT before the first instruction (docs/debugging.md).")
    var gdbPort: UInt16?
    @Option(help: .hidden) var argv0: String?
    @Flag(help: "Register rivet with binfmt_misc for riscv64 ELF executables (root), then exit.") var installBinfmt = false
    @Flag(help: "Remove the binfmt_misc registration made by --install-binfmt, then exit.") var uninstallBinfmt = false
    @Option(help: "Where binfmt_misc is mounted.") var binfmtMisc = Binfmt.defaultMount
    @Option(help: AccelOption.help) var accel: String?
    @Argument(parsing: .captureForPassthrough, help: "The program and its arguments.")
    var command: [String] = []

    func run() throws {
        if installBinfmt || uninstallBinfmt {
            do {
                if installBinfmt { try Binfmt.install(mount: binfmtMisc) } else { try Binfmt.uninstall(mount: binfmtMisc) }
            } catch {
                fputs("rivet user: \(error)\n", stderr)
                throw ExitCode(1)
            }
            print(installBinfmt ? "registered \(Binfmt.entryName) in \(binfmtMisc)" : "removed \(Binfmt.entryName) from \(binfmtMisc)")
            return
        }
        var cmd = command
        // Options after the program belong to it; `rivet user --help` alone is rivet's.
        if cmd.first == "--help" || cmd.first == "-h" { throw CleanExit.helpRequest(self) }
        if cmd.first == "--" { cmd.removeFirst() }
        guard let program = cmd.first else { throw ValidationError("missing PROGRAM") }
        var root = sysroot
        if root == nil && access("/usr/riscv64-linux-gnu/lib", F_OK) == 0 { root = "/usr/riscv64-linux-gnu" }
        var environment: [String] = []
        var e = environ
        while let p = e.pointee { environment.append(String(cString: p)); e += 1 }
        for kv in env {
            guard let eq = kv.firstIndex(of: "="), eq != kv.startIndex else { throw ValidationError("--env wants K=V, got \(kv)") }
            let key = kv[..<eq]
            environment.removeAll { $0.hasPrefix(key + "=") }
            environment.append(kv)
        }
        var options = UserOptions(program: program, arguments: Array(cmd.dropFirst()), argv0: argv0, sysroot: root,
                                  strace: strace, environment: environment)
        options.accelerator = try AccelOption.parse(accel)
        options.translationThreshold = try AccelOption.threshold()
        do {
            let process = try UserProcess(options: options)
            var server: GDBServer? = nil
            if let port = gdbPort {
                let debugger = UserDebugger()
                process.attachDebugger(debugger)
                do {
                    server = try GDBServer(host: "127.0.0.1", port: port, target: UserGDBTarget(debugger: debugger))
                    server?.start()
                } catch {
                    fputs("rivet user: \(error)\n", stderr)
                    throw ExitCode(1)
                }
            }
            try withExtendedLifetime(server) { try process.run() }
        } catch let error as UserError {
            fputs("rivet user: \(error.description)\n", stderr)
            throw ExitCode(127)
        }
    }
}
