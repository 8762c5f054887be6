import ArgumentParser
import RivetKit
#if canImport(Glibc)
import Glibc
#endif

/// `rivet run`: boot a `virt` machine (OpenSBI, then a Linux kernel) with the serial console on stdio.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a virt machine: firmware, kernel, initrd, virtio disks; the console is on stdio.",
        discussion: """
        With no --kernel, boots the default guest built by guest/build.sh (from the cache at \
        ${RIVET_CACHE:-~/.cache/rivet}/guest-default). On a terminal, Ctrl-A X quits and Ctrl-A H lists the keys. \
        Before starting, rivet refuses empty, non-RISC-V (ELF machine, arm64/x86 Linux header) or directory \
        boot files and a --memory too small for firmware, kernel (its header's image size), initrd and device tree. \
        Exit status: the guest's power-off code (0 for a normal poweroff); 1 on a start-up error. \
        --qmp serves QEMU's management protocol (stop, cont, migrate to file:/exec:/tcp:, quit ...); \
        --incoming restores a machine saved by migrate (see docs/snapshots.md), or receives a live migration \
        (tcp:HOST:PORT, or defer for QMP migrate-incoming; see docs/migration.md). \
        --gdb (or -s) serves gdb-multiarch's remote protocol (docs/debugging.md). \
        --replicate tcp:HOST:PORT makes this machine the primary of a failover pair whose standby runs with \
        --incoming tcp:HOST:PORT --standby (docs/failover.md).
        """)

    @Option(help: "Firmware image loaded at 0x80000000.")
    var bios = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"
    @Option(help: "Kernel Image loaded at 0x80200000.") var kernel: String?
    @Option(help: "Initial ramdisk.") var initrd: String?
    @Option(help: "Kernel command line.") var append: String?
    @Option(help: "RAM size, e.g. 256M or 2G.") var memory = "256M"
    @Option(help: "Number of harts (1 to 8).") var smp = 1
    @Option(help: "CPU: rv64[,mmu=sv39|sv48|sv57] (the widest paging mode; default sv57).") var cpu: String?
    @Option(help: "A disk: FILE[,format=raw|qcow2][,readonly][,force-share=on][,werror=ACTION][,rerror=ACTION] (repeatable; one virtio-blk each). Images are locked as QEMU locks them; force-share=on (with readonly) reads an image another process writes. On a host I/O error: report (to the guest), ignore, stop (pause; Ctrl-A C continues) or enospc (stop when the host disk is full, else report); defaults werror=enospc, rerror=report.")
    var drive: [String] = []
    @Option(help: "A network backend: user,id=ID[,net=10.0.2.0/24][,hostfwd=tcp:[HOSTADDR]:PORT-[GUESTADDR]:PORT]... | socket,id=ID,listen=[HOST]:PORT|connect=HOST:PORT | tap,id=ID,ifname=NAME (repeatable; see docs/network.md).")
    var netdev: [String] = []
    @Option(help: "A device: virtio-net,netdev=ID[,mac=52:54:00:12:34:56] (repeatable), or virtio-balloon[,free-page-reporting=on|off] (reporting on by default; docs/density.md).")
    var device: [String] = []
    @Option(help: "A network card and its backend in one: user[,hostfwd=...][,mac=...] (also socket/tap options, or none; repeatable).")
    var nic: [String] = []
    @Option(help: "Write the generated device tree to FILE and continue.") var dtbOut: String?
    @Option(help: "on: mark guest RAM mergeable for the host's same-page merging (KSM; QEMU's mem-merge). Default off.")
    var memoryMerge = "off"
    @Flag(help: "Deterministic mode: the clock follows retired instructions (harts then share one host thread).") var icount = false
    @Option(help: AccelOption.help) var accel: String?
    @Option(help: "With --smp > 1: multi runs each hart on its own host thread (default), single runs them all round-robin on one (as --icount always does).")
    var hartThreads = "multi"
    @Option(help: "Stop after this many instructions (all harts together).") var maxInstructions: UInt64?
    @Option(help: "Stop after this many seconds of host time (exit status 2).") var timeLimit: Double?
    @Option(help: "QMP management socket: unix:PATH,server=on,wait=off or tcp:HOST:PORT,server=on,wait=off (repeatable).")
    var qmp: [String] = []
    @Option(help: "Restore the machine from a snapshot stream: file:PATH or exec:COMMAND (same options as when it was saved); receive a live migration: tcp:HOST:PORT, or defer (then QMP migrate-incoming).")
    var incoming: String?
    @Flag(name: [.customShort("S"), .customLong("no-start")], help: "Start paused (continue with QMP cont or gdb's continue).")
    var noStart = false
    @Option(help: "Replicate to a standby (primary of a failover pair): tcp:HOST:PORT[,period-ms=N][,ack-timeout-ms=N][,disk-copy=on|off] (see docs/failover.md).")
    var replicate: String?
    @Flag(help: "Be the standby of a failover pair: receive checkpoints on --incoming tcp:HOST:PORT and take over when the primary is lost (docs/failover.md).")
    var standby = false
    @Option(help: "With --standby: take over when the primary is silent this long (milliseconds, default 500).")
    var heartbeatMs: UInt64 = 500
    @Option(help: "GDB remote stub: tcp:HOST:PORT or tcp::PORT (see docs/debugging.md).") var gdb: String?
    @Flag(name: .customShort("s"), help: "Short for --gdb tcp::1234.") var gdbDefault = false
    @Option(help: .hidden) var xPauseAt: UInt64?
    @Flag(help: .hidden) var xRamHash = false

    func run() throws {
        let machine: Machine
        let management: MachineManagement
        do {
            machine = try Machine(configuration: try machineConfiguration(), console: HostConsole())
            management = try MachineManagement(machine: machine.board, options: self)
        } catch {
            fputs("rivet: \(error)\n", stderr)
            throw ExitCode(1)
        }
        defer { management.stop() }
        do {
            if let path = dtbOut { try writeFile(path, machine.deviceTree) }
            try machine.start()
        } catch {
            fputs("rivet: \(error)\n", stderr)
            throw ExitCode(1)
        }
        let start = VirtualClockHost.now()
        let exit = machine.waitForExit()
        management.finish()
        reportStatistics(machine.board, since: start)
        switch exit {
        case .powerOff(let code): throw ExitCode(code)
        case .quitByUser: throw ExitCode(0)
        case .failed(let why):
            fputs("rivet: \(why)\n", stderr)
            throw ExitCode(1)
        case .stopped(let why):
            fputs("rivet: stopped: \(why)\n", stderr)
            reportStoppedHarts(machine.board)
            throw ExitCode(2)
        }
    }
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw CLIError("\(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, bytes.count) }
    guard n == bytes.count else { throw CLIError("\(path): write failed") }
}
