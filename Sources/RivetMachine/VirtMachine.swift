#if canImport(Glibc)
import Glibc
#endif
import RivetCPU
import RivetDevices
import RivetMemory
import RivetSnapshot
import RivetStorage

/// What to build and boot.
public struct VirtMachineConfig {
    public var memorySize: UInt64 = 256 << 20
    public var hartCount = 1
    public var firmware: [UInt8] = []
    public var kernel: [UInt8]? = nil
    public var initrd: [UInt8]? = nil
    public var bootargs = "console=ttyS0 earlycon=sbi"
    /// Disks in virtio slot order.
    public var disks: [BlockDevice] = []
    /// Network cards (virtio-net), in slot order after the entropy device.
    public var networkCards: [NetworkCard] = []
    /// Deterministic mode: mtime advances with retired instructions only.
    public var icount = false
    /// How the harts execute guest code: the translator (default where the host has one) or the interpreter.
    public var accelerator: Accelerator = .hostDefault
    /// Runs of a block in the interpreter before it is compiled (nil: the hart's default).
    public var translationThreshold: Int? = nil
    /// False when the machine will be restored from a stream (RAM is replaced anyway).
    public var loadImagesAtStart = true
    /// The widest paging mode of every hart (`--cpu rv64,mmu=...`); the device tree says the same.
    public var mmuMode: MMUMode = .sv57
    /// Reads firmware, kernel and initrd again (from their files). When set, the machine keeps no copy of
    /// them once they are in guest RAM and calls this on a reset instead (BootImages.swift).
    public var reloadBootImages: (() throws -> BootImages)? = nil
    /// `--device virtio-balloon`: a balloon (after the network cards), with free page reporting if set.
    public var balloon: BalloonConfig? = nil
    /// With more than one hart: one host thread per hart (`multi`, the default) or all harts round-robin
    /// on the machine's thread (`single`). `icount` always uses one thread (HartThreads.swift).
    public var hartThreads: HartThreading = .multi
    public init() {}
}

/// How a run ended.
public enum MachineExit: Equatable {
    /// The guest powered the machine off (syscon); 0 for a normal poweroff.
    case powerOff(exitCode: Int32)
    /// The host ended it: Ctrl-A X, QMP quit, gdb's kill, or ``Machine/powerOff()``.
    case quitByUser
    /// A limit ended it (time, instruction count), or a reason a debugging run wants to see.
    case stopped(String)
    /// The host side failed and the machine cannot go on (a bad incoming stream, a reset that failed).
    case failed(String)
}

/// The `virt` board: QEMU's memory map and interrupt numbers, so Debian's OpenSBI and Linux run unchanged.
///
/// With hart threads (`usesHartThreads`: more than one hart, `--hart-threads multi`, no icount) each hart
/// runs on its own host thread (HartThreads.swift). Otherwise harts run round-robin on one host thread in
/// slices of `sliceInstructions`, devices synchronously on the same thread, and a hart switch clears LR
/// reservations.
public final class VirtMachine {
    public static let ramBase: UInt64 = 0x8000_0000
    public static let kernelOffset: UInt64 = 0x20_0000
    /// Instructions per hart slice. Each slice ends with a pass over the devices and a partial block run by the
    /// interpreter (budgets are exact), which cost about 5% of the run at 20,000 instructions; with the real-time
    /// clock, slices are longer (at 2.5 GIPS 100,000 instructions are 40 us: timer and console latency stay far
    /// below a tick). Instruction-count runs keep their original slice, so their timing stays what it was.
    var sliceInstructions: Int {
        if case .instructionCount = clock.mode { return 20_000 }
        return 100_000
    }

    public internal(set) var config: VirtMachineConfig
    public let ram: GuestRAM
    public let bus: PhysicalBus
    public let wires: InterruptWires
    public let clock: VirtualClock
    public let cache: BlockCache
    public let clint: CLINT
    public let plic: PLIC
    public let uart: UART16550
    public let rtc: GoldfishRTC
    public let syscon: SysconPower
    public let virtio: [VirtioMMIO]
    public let harts: [Hart]
    /// Every hart's decoded-block cache: `cache` alone with one thread, one per hart with hart threads.
    public let hartCaches: [BlockCache]
    /// Each hart runs on its own host thread (HartThreads.swift).
    public let usesHartThreads: Bool
    /// Where the serial port's bytes go and come from (the host terminal, memory, ...).
    public let console: MachineConsole
    /// Guest output passes here on its way to the console (held while a primary replicates; OutputCommit.swift).
    let consoleGate: ConsoleOutputGate
    /// The virtio-net devices and their transports, polled for received frames between slices.
    public let networkDevices: [(transport: VirtioMMIO, card: VirtioNet)]
    /// Paused by a disk's `stop` error policy (see DiskErrorStop.swift).
    public let diskStop = DiskStopState()
    public private(set) var deviceTree: [UInt8] = []
    /// Total instructions retired by all harts (icount clock source).
    public var totalInstructions: UInt64 { harts.reduce(0) { $0 &+ $1.instret } }
    public var onConsoleLine: ((String) -> Void)? = nil
    /// Times the run loop slept with every hart in wfi, and the sleep requested (RIVET_STATS).
    public private(set) var idleSleeps: UInt64 = 0
    public private(set) var idleNanoseconds: UInt64 = 0
    /// Rouses the run loop from idle or pause when another thread posts a request (see MachineControl)
    /// or a network backend has frames.
    public let wakeup = Wakeup()
    /// Pause/resume, requests from other threads, events (MachineControl.swift).
    public let control: MachineControl

    public init(config: VirtMachineConfig, console: MachineConsole) throws {
        guard (1...8).contains(config.hartCount) else { throw MachineError("--smp must be between 1 and 8") }
        guard config.memorySize >= 16 << 20 else { throw MachineError("--memory must be at least 16M") }
        guard config.disks.count <= VirtioMMIO.slotCount - 1 else { throw MachineError("at most \(VirtioMMIO.slotCount - 1) drives") }
        guard config.disks.count + 1 + config.networkCards.count + (config.balloon == nil ? 0 : 1) <= VirtioMMIO.slotCount else {
            throw MachineError("too many virtio devices: \(config.disks.count) drives + entropy + \(config.networkCards.count) network cards\(config.balloon == nil ? "" : " + balloon") > \(VirtioMMIO.slotCount) slots")
        }
        // Writable drives journal their writes while a primary replicates (JournalingDisk, docs/failover.md).
        var config = config
        config.disks = config.disks.map { d in
            guard !d.isReadOnly, !(d is JournalingDisk), let image = d as? ImageLayer else { return d }
            return JournalingDisk(image)
        }
        self.config = config
        self.console = console
        control = MachineControl(wakeup: wakeup)
        ram = try GuestRAM(base: VirtMachine.ramBase, size: config.memorySize)
        bus = PhysicalBus(ram: ram)
        wires = InterruptWires(hartCount: config.hartCount)
        clock = VirtualClock(mode: config.icount ? .instructionCount(shift: 4) : .realTime)
        cache = BlockCache(ram: ram)
        clint = CLINT(hartCount: config.hartCount, wires: wires, clock: clock)
        plic = PLIC(hartCount: config.hartCount, wires: wires)
        consoleGate = ConsoleOutputGate(console)
        uart = UART16550(irq: plic, source: VirtBoard.uart0.plicSource, backend: consoleGate)
        rtc = GoldfishRTC(irq: plic, source: VirtBoard.rtc.plicSource)
        syscon = SysconPower()
        if config.icount {
            // Deterministic runs: wall-clock time is a fixed epoch (2026-01-01) plus virtual time.
            let clock = self.clock
            rtc.hostNanoseconds = { 1_767_225_600_000_000_000 &+ clock.mtime &* 100 }
        }
        // virtio slots: disks first, then the entropy device, then network cards; the rest stay empty
        // (device id 0). Linux probes the slots from the highest address down (the device tree lists them
        // that way, as QEMU's), so the first card takes the highest of the cards' slots and becomes eth0.
        var slots: [VirtioMMIO] = []
        var nets: [(transport: VirtioMMIO, card: VirtioNet)] = []
        for slot in 0..<VirtioMMIO.slotCount {
            let model: VirtioDeviceModel?
            let netIndex = config.networkCards.count - 1 - (slot - config.disks.count - 1)
            if slot < config.disks.count {
                // Like the cards (and QEMU), the first drive takes the highest of the drives' slots, so Linux,
                // probing from the top, names the drives vda, vdb ... in command-line order.
                let drive = config.disks.count - 1 - slot
                model = VirtioBlock(disk: config.disks[drive], serial: "rivet-disk\(drive)")
            }
            else if slot == config.disks.count { model = VirtioRNG(seed: config.icount ? 0x5249_5645_54 : nil) }
            else if (0..<config.networkCards.count).contains(netIndex) {
                let nic = config.networkCards[netIndex]
                model = VirtioNet(backend: CommittedNetworkBackend(nic.backend), mac: nic.mac)  // output commit (failover)
            } else if let b = config.balloon, slot == config.disks.count + 1 + config.networkCards.count {
                model = VirtioBalloon(ram: ram, freePageReporting: b.freePageReporting)
            } else { model = nil }
            let transport = VirtioMMIO(model: model, ram: ram, irq: plic, source: VirtBoard.virtio(slot).plicSource)
            if let card = model as? VirtioNet { nets.insert((transport, card), at: 0) }  // in card order
            slots.append(transport)
        }
        virtio = slots
        networkDevices = nets
        // Every device of the board table at its window; a table entry without a model here is a programming error.
        var models: [String: MMIODevice] = [VirtBoard.syscon.name: syscon, VirtBoard.rtc.name: rtc, VirtBoard.clint.name: clint,
                                            VirtBoard.plic.name: plic, VirtBoard.uart0.name: uart]
        for (slot, transport) in virtio.enumerated() { models[VirtBoard.virtio(slot).name] = transport }
        for device in VirtBoard.devices {
            guard let model = models[device.name] else { preconditionFailure("no model for board device \(device.name)") }
            bus.map(model, at: device.base, size: device.size, name: device.name)
        }
        let threaded = config.hartThreads == .multi && config.hartCount > 1 && !config.icount
        usesHartThreads = threaded
        if threaded { bus.deviceLock = DeviceLock() }
        var caches = [cache]
        if threaded { for _ in 1..<config.hartCount { caches.append(BlockCache(ram: ram)) } }
        hartCaches = caches
        var hs: [Hart] = []
        for id in 0..<config.hartCount {
            let hart = Hart(hartID: id, bus: bus, cache: hartCaches[usesHartThreads ? id : 0], wires: wires, clock: clock)
            hart.mmuMode = config.mmuMode
            hart.accelerator = config.accelerator
            if let t = config.translationThreshold { hart.translationThreshold = t }
            hs.append(hart)
        }
        harts = hs
        connectBalloon()
        if config.loadImagesAtStart { try loadImages() }
        dropBootImageCopies()
        let wakeup = self.wakeup
        for n in nets { n.card.backend.start(framesAvailable: { wakeup.signal() }) }
    }

    /// Places firmware, kernel, initrd and device tree in RAM and resets the harts to the firmware.
    func loadImages() throws {
        let ramEnd = ram.base + ram.size
        guard !config.firmware.isEmpty, ram.write(ram.base, bytes: config.firmware) else {
            throw MachineError("firmware (\(config.firmware.count) bytes) does not fit in RAM")
        }
        var kernelEnd = ram.base + VirtMachine.kernelOffset
        if let kernel = config.kernel {
            guard UInt64(kernel.count) < ram.size / 2, ram.write(ram.base + VirtMachine.kernelOffset, bytes: kernel) else {
                throw MachineError("kernel (\(kernel.count) bytes) does not fit in the lower half of RAM")
            }
            kernelEnd += KernelImageKind(kernel).footprint(fileSize: kernel.count)  // keep the initrd clear of its bss
        }
        // Device tree at the top of RAM (2 MiB aligned, as QEMU does); initrd below it.
        var treeConfig = VirtBoardConfig(hartCount: config.hartCount, ramSize: config.memorySize)
        treeConfig.bootargs = config.bootargs
        treeConfig.mmuType = config.mmuMode.deviceTreeName
        let fdtAddress = (ramEnd - 0x20_0000) & ~UInt64(0x1f_ffff)
        if let initrd = config.initrd {
            let size = UInt64(initrd.count)
            guard kernelEnd <= fdtAddress, size + 0x1000 <= fdtAddress - kernelEnd else {
                throw MachineError("initrd (\(initrd.count) bytes) does not fit in RAM beside the kernel; use a larger --memory")
            }
            var start = (fdtAddress - size - 0x1000) & ~UInt64(0xfff)
            // Keep it clear of the kernel; prefer the upper half like QEMU.
            start = max(start, kernelEnd)
            guard start + size <= fdtAddress, ram.write(start, bytes: initrd) else {
                throw MachineError("initrd (\(initrd.count) bytes) does not fit in RAM beside the kernel")
            }
            treeConfig.initrd = start..<(start + size)
        }
        deviceTree = makeVirtDeviceTree(treeConfig)
        guard ram.write(fdtAddress, bytes: deviceTree) else { throw MachineError("device tree does not fit in RAM") }
        // fw_dynamic's record right after the device tree (fw_jump ignores it).
        let infoAddress = fdtAddress + (UInt64(deviceTree.count) + 63) & ~63
        guard ram.write(infoAddress, bytes: FirmwareDynamicInfo.bytes(nextAddress: ram.base + VirtMachine.kernelOffset)) else {
            throw MachineError("device tree does not fit in RAM")
        }
        for h in harts {
            h.reset(pc: ram.base)
            h.x[10] = UInt64(h.hartID)  // a0 = hart id
            h.x[11] = fdtAddress         // a1 = device tree
            h.x[12] = infoAddress        // a2 = fw_dynamic_info
        }
    }

    /// Machine reset (guest reboot): devices and harts back to power-on, images reloaded.
    public func reset() throws {
        ram.clear()
        flushDecodedCode()
        wires.reset()
        clint.reset(); plic.reset(); uart.reset(); rtc.reset()
        for v in virtio { v.reset() }
        syscon.request = nil
        try reloadBootImageCopies()
        try loadImages()
        dropBootImageCopies()
    }

    /// Runs until power-off, a user quit, or (if given) `maxInstructions` retired.
    public func run(maxInstructions: UInt64? = nil, wallSeconds: Double? = nil) throws -> MachineExit {
        defer { console.flush() }
        if usesHartThreads { return try runOnHartThreads(maxInstructions: maxInstructions, wallSeconds: wallSeconds) }
        var wallDeadline = wallSeconds.map { VirtualClock.hostNanoseconds() &+ UInt64($0 * 1e9) }
        while true {
            if diskStop.isPaused, let exit = waitWhileDiskStopped(wallDeadline: wallDeadline, wallSeconds: wallSeconds) { return exit }
            if let d = wallDeadline, VirtualClock.hostNanoseconds() >= d {
                return .stopped("time limit of \(wallSeconds!) s reached")
            }
            if control.hasRequests, let exit = serviceRequests() { return exit }
            if !control.isRunning {
                // A destination waits for its incoming migration as long as it takes (as QEMU's -incoming).
                if control.runState == .inmigrate, let s = wallSeconds { wallDeadline = VirtualClock.hostNanoseconds() &+ UInt64(s * 1e9) }
                waitWhilePaused(deadline: wallDeadline); continue
            }
            if case .instructionCount = clock.mode { clock.retiredInstructions = totalInstructions }
            clint.updateTimers()
            var allWaiting = true
            for h in harts {
                let stop = h.run(budget: sliceInstructions)
                h.reservation = nil
                if stop != .waitingForInterrupt { allWaiting = false }
                if case .instructionCount = clock.mode { clock.retiredInstructions = totalInstructions; clint.updateTimers() }
                if stop == .debugStop { requestPause(reason: "debug"); break }  // a gdb breakpoint, step or watchpoint
            }
            if let request = syscon.request {
                syscon.request = nil
                if let exit = try handlePowerRequest(request) { return exit }
                continue  // reset: run again from the reset state
            }
            switch console.pump(into: uart) {
            case .quit: return .quitByUser
            case .resume: continueAfterDiskStop()
            case .none: break
            }
            pollNetwork()
            console.flush()
            if let limit = maxInstructions, harts.reduce(0, { $0 &+ $1.work }) >= limit {
                return .stopped("instruction limit \(limit) reached")
            }
            // A hart that ran later in this pass may have woken an earlier one (an IPI): sleep only if none is.
            if allWaiting && !harts.contains(where: { $0.hasWakeupInterrupt }) { idle() } else if !allWaiting { cache.noteBusy() }
            // At the very end of a pass, so a run that pauses here and one that does not stay identical.
            if let at = control.pauseAtWork, totalWork >= at {
                control.pauseAtWork = nil
                requestPause(reason: "debug")
            }
        }
    }

    /// All harts wait for interrupts: sleep until the next timer deadline or console input.
    func idle() {
        let deadline = clint.nextDeadline()
        switch clock.mode {
        case .instructionCount:
            // Deterministic: jump virtual time to the next deadline.
            let now = clock.mtime
            if deadline > now && deadline != UInt64.max { clock.offset &+= deadline - now }
        case .realTime:
            // A passed deadline leaves MTIP high (masked: the hart sleeps anyway); wait for the next one.
            guard let ns = clock.nanoseconds(until: clint.nextDeadline(after: clock.mtime)) else { return }
            if ns == 0 { return }
            idleSleeps &+= 1
            idleNanoseconds &+= min(ns, 100_000_000)
            cache.noteIdle(nanoseconds: min(ns, 100_000_000))
            let ms = Int32(min(ns / 1_000_000 + 1, 100))
            if console.hasPendingInput { return }
            // Console input or a network frame (the wakeup) ends the sleep early.
            let consoleFD = console.inputReadyFD
            var fds = (pollfd(fd: wakeup.fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: consoleFD, events: Int16(POLLIN), revents: 0))
            let woken = withUnsafeMutableBytes(of: &fds) { raw -> Bool in
                let p = raw.baseAddress!.assumingMemoryBound(to: pollfd.self)
                return poll(p, 2, ms) > 0 && p[0].revents != 0
            }
            if woken { wakeup.drain() }
        }
    }
}

extension VirtMachine {
    /// Delivers frames the network backends hold to the guest (a receive-queue pass per card with frames).
    func pollNetwork() {
        for n in networkDevices where n.card.backend.hasReceived { n.transport.notify(queue: 0) }
    }

    /// Stops the network backends' threads and closes their sockets (at the end of a run).
    public func shutdownNetwork() {
        for n in networkDevices { n.card.backend.shutdown() }
    }
}

public struct MachineError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
