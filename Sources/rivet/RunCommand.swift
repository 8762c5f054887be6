import ArgumentParser
import RivetMachine
import RivetISA
import RivetStorage
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
    @Flag(help: "Deterministic mode: the clock follows retired instructions.") var icount = false
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
        let machine: VirtMachine
        var config = VirtMachineConfig()
        var mergeRAM = false
        do {
            try validateTimeLimit(timeLimit)
            config.memorySize = try parseMemorySize(memory)
            config.hartCount = smp
            config.icount = icount
            if let c = cpu { config.mmuMode = try CPUOption(c).mmuMode }
            config.firmware = try readFile(bios)
            config.loadImagesAtStart = incoming == nil
            var kernelPath = kernel
            var initrdPath = initrd
            if kernelPath == nil {
                let guest = defaultGuestDirectory()
                guard access(guest + "/Image", R_OK) == 0 else {
                    throw CLIError("no --kernel given and no default guest at \(guest); build it with: bash guest/build.sh")
                }
                kernelPath = guest + "/Image"
                if initrdPath == nil { initrdPath = guest + "/initramfs.cpio.gz" }
            }
            config.kernel = try readFile(kernelPath!)
            if let p = initrdPath { config.initrd = try readFile(p) }
            if let a = append { config.bootargs = a }
            try validateBootImages(config, biosPath: bios, kernelPath: kernelPath)
            let (biosFile, kernelFile, initrdFile) = (bios, kernelPath!, initrdPath)
            config.reloadBootImages = {  // a reset reads the files again; the machine keeps no copies
                BootImages(firmware: try readFile(biosFile), kernel: try readFile(kernelFile), initrd: try initrdFile.map(readFile))
            }
            for spec in drive { config.disks.append(try openDrive(spec)) }
            config.networkCards = try NetworkOptions(netdevs: netdev, devices: device.filter { !DensityOptions.isBalloon($0) }, nics: nic).makeCards()
            config.balloon = try DensityOptions.balloon(device.filter(DensityOptions.isBalloon))
            if try DensityOptions.onOff("--memory-merge", memoryMerge) { mergeRAM = true }
        } catch {
            fputs("rivet: \(error)\n", stderr)
            throw ExitCode(1)
        }
        let console = HostConsole()
        do {
            machine = try VirtMachine(config: config, console: console)
            if mergeRAM { DensityOptions.applyMemoryMerge(machine) }
            config.firmware = []; config.kernel = nil; config.initrd = nil  // in guest RAM now; reset rereads the files
        } catch {
            console.restore()
            fputs("rivet: \(error)\n", stderr)
            throw ExitCode(1)
        }
        let management: MachineManagement
        do {
            management = try MachineManagement(machine: machine, options: self)
        } catch {
            console.restore()
            fputs("rivet: \(error)\n", stderr)
            throw ExitCode(1)
        }
        defer { management.stop() }
        if let specs = try? drive.map(DriveSpec.init) {
            machine.configureDiskErrors(names: specs.map(\.path), policies: specs.map(\.errorPolicy))
        }
        if let path = dtbOut {
            do { try writeFile(path, machine.deviceTree) } catch {
                console.restore(); fputs("rivet: \(error)\n", stderr); throw ExitCode(1)
            }
        }
        let start = VirtualClockHost.now()
        let exit: MachineExit
        do { exit = try machine.run(maxInstructions: maxInstructions, wallSeconds: timeLimit) } catch {
            console.restore(); fputs("rivet: \(error)\n", stderr); throw ExitCode(1)
        }
        machine.finishReplication()  // a replicating primary's last checkpoint and end message
        console.restore()
        management.finish()
        machine.shutdownNetwork()
        for d in config.disks { try? d.flush() }
        if ProcessInfoLite.environment("RIVET_STATS") != nil {
            let seconds = Double(VirtualClockHost.now() - start) / 1e9
            fputs("rivet: \(machine.totalInstructions) instructions in \(fixed(seconds, 3)) s (\(fixed(Double(machine.totalInstructions) / seconds / 1e6, 1)) MIPS); idle: \(machine.idleSleeps) sleeps, \(fixed(Double(machine.idleNanoseconds) / 1e9, 3)) s\n", stderr)
        }
        switch exit {
        case .powerOff(let code): throw ExitCode(code)
        case .quitByUser: throw ExitCode(0)
        case .stopped(let why):
            fputs("rivet: stopped: \(why)\n", stderr)
            if ProcessInfoLite.environment("RIVET_DEBUG") != nil {
                let p = machine.plic
                fputs("plic pending=\(p.pending) claimed=\(p.claimed) level=\(p.level) enable=\(p.enable) threshold=\(p.threshold) prio1-12=\(Array(p.priority[0..<12]))\n", stderr)
                for c in 0..<p.contextCount { fputs("ctx \(c) best=\(p.bestSource(context: c))\n", stderr) }
                fputs("wires: \((0..<machine.harts.count).map { String(machine.wires.pins[$0], radix: 16) })\n", stderr)
            }
            for h in machine.harts {
                fputs("rivet: hart \(h.hartID): pc=0x\(String(h.pc, radix: 16)) mode=\(h.privilege) instret=\(h.instret) wfi=\(h.waitingForInterrupt) mip=0x\(String(h.effectiveMIP, radix: 16)) mie=0x\(String(h.csr.mie, radix: 16)) mstatus=0x\(String(h.csr.mstatus, radix: 16))\n", stderr)
                if ProcessInfoLite.environment("RIVET_DEBUG") != nil {
                    var a = h.pc &- 40
                    while a < h.pc &+ 24 {
                        guard let w = h.debugRead(a, size: 4) else { break }
                        let word = UInt32(truncatingIfNeeded: w)
                        fputs(Disassembler.traceLine(pc: a, word: word) + "\n", stderr)
                        a &+= word & 3 == 3 ? 4 : 2
                    }
                    fputs("  regs: " + (1..<32).map { "x\($0)=\(String(h.x[$0], radix: 16))" }.joined(separator: " ") + "\n", stderr)
                }
            }
            throw ExitCode(2)
        }
    }

    func openDrive(_ spec: String) throws -> BlockDevice {
        // A live-migration destination shares the images with a source that still runs and holds their
        // locks; it takes them over when the stream is complete (VirtMachine.activateDiskLocks).
        let liveIncoming = incoming.map { $0.hasPrefix("tcp:") || $0 == "defer" } ?? false
        return try DriveSpec(spec).open(deferLocks: liveIncoming)
    }
}

func defaultGuestDirectory() -> String {
    if let d = ProcessInfoLite.environment("RIVET_GUEST") { return d }
    let cache = ProcessInfoLite.environment("RIVET_CACHE") ?? ((ProcessInfoLite.environment("HOME") ?? "/root") + "/.cache/rivet")
    return cache + "/guest-default"
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw CLIError("\(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, bytes.count) }
    guard n == bytes.count else { throw CLIError("\(path): write failed") }
}
