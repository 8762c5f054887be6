#if canImport(Glibc)
import Glibc
#endif
import RivetCPU
import RivetMemory

/// How `rivet user` was asked to run a program.
public struct UserOptions {
    public var program: String
    public var arguments: [String]
    /// argv[0] as the guest sees it (defaults to `program`).
    public var argv0: String?
    public var sysroot: String?
    public var strace: Bool
    public var environment: [String]
    /// The most memory the guest may use (reserved, not committed).
    public var poolSize: UInt64 = 16 << 30
    /// How the guest threads' harts execute code (`--accel`).
    public var accelerator: Accelerator = .hostDefault
    /// Runs of a block in the interpreter before it is compiled (nil: the hart's default).
    public var translationThreshold: Int? = nil

    public init(program: String, arguments: [String], argv0: String? = nil, sysroot: String?, strace: Bool, environment: [String]) {
        self.program = program; self.arguments = arguments; self.argv0 = argv0
        self.sysroot = sysroot; self.strace = strace; self.environment = environment
    }
}

/// One guest thread: a hart with its own decoded-block cache, run on its own host thread.
final class GuestThread {
    let hart: Hart
    let cache: BlockCache
    @exclusivity(unchecked) var tid: Int32 = 0
    @exclusivity(unchecked) var clearChildTID: UInt64 = 0
    @exclusivity(unchecked) var robustList: UInt64 = 0
    @exclusivity(unchecked) var sigmask: UInt64 = 0 {
        // The host thread running this guest thread blocks what the guest blocks, so a signal from outside
        // stays pending (for sigpending, sigwait, signalfd, a later unblock) instead of acting at once.
        didSet { if sigmask != oldValue, let o = owner, pthread_equal(o, pthread_self()) != 0 { HostMask.set(sigmask) } }
    }
    /// The host thread that runs this guest thread, once it runs.
    @exclusivity(unchecked) var owner: pthread_t?
    /// Thread-directed pending signals (bit n-1 for signal n).
    @exclusivity(unchecked) var pending: UInt64 = 0
    @exclusivity(unchecked) var altStack: (sp: UInt64, flags: UInt32, size: UInt64) = (0, 2, 0)  // SS_DISABLE
    @exclusivity(unchecked) var seenEpoch: UInt64 = 0
    /// Set by exit: the run loop returns.
    @exclusivity(unchecked) var exited = false
    /// The mask to restore after an rt_sigsuspend once a handler has been set up.
    @exclusivity(unchecked) var suspendedMask: UInt64? = nil
    @exclusivity(unchecked) var sources = [SigSource](repeating: SigSource(), count: 65)

    init(hart: Hart, cache: BlockCache) { self.hart = hart; self.cache = cache }
}

/// A RISC-V Linux process run on the host: the address space, threads and the system-call layer.
public final class UserProcess {
    let options: UserOptions
    let ram: GuestRAM
    let bus: PhysicalBus
    let wires: InterruptWires
    let clock: VirtualClock
    let mm: AddressSpace
    /// The first thread's unchecked loads (UncheckedLoadTable), until a second thread starts or a page
    /// leaves its identity place; nil when off (interp, RIVET_CHECKED_LOADS set, or the host refused).
    @exclusivity(unchecked) var uncheckedLoads: UncheckedLoadTable?
    let lock = KernelLock()
    static let maxThreads = 1024
    @exclusivity(unchecked) var threads: [Int32: GuestThread] = [:]
    @exclusivity(unchecked) var freeHartIDs: [Int] = Array((0..<UserProcess.maxThreads).reversed())
    @exclusivity(unchecked) var actions = [SigAction](repeating: SigAction(), count: 65)
    /// Process-directed pending signals.
    @exclusivity(unchecked) var processPending: UInt64 = 0
    @exclusivity(unchecked) var processSources = [SigSource](repeating: SigSource(), count: 65)
    /// Host path of the running program (for /proc/self/exe).
    @exclusivity(unchecked) var exePath: String
    @exclusivity(unchecked) var exitCode: Int32 = 0
    /// The guest's argv and auxiliary vector as set up at start (for /proc/self/cmdline and auxv).
    @exclusivity(unchecked) var guestArgv: [String] = []
    @exclusivity(unchecked) var savedAuxv: [UInt8] = []
    /// Host signals sent only to interrupt a guest thread's blocking host call (see wakeForSignal): the
    /// signal itself is already queued for the thread, so the host catcher's copy is dropped.
    @exclusivity(unchecked) var pendingWakes = [Int](repeating: 0, count: 65)
    /// Host CLOCK_MONOTONIC (ns) at time-CSR zero, when the vDSO is mapped.
    @exclusivity(unchecked) var monotonicBase: Int64?
    /// The gdb stub's side (rivet user -g), or nil.
    @exclusivity(unchecked) var debugger: UserDebugger? = nil

    public init(options: UserOptions) throws {
        self.options = options
        ram = try GuestRAM(base: 0x8000_0000, size: AddressSpace.poolSize(overflowBytes: options.poolSize))
        bus = PhysicalBus(ram: ram)
        wires = InterruptWires(hartCount: UserProcess.maxThreads)
        clock = VirtualClock(mode: .realTime)
        mm = try AddressSpace(ram: ram, pageLimit: Int(options.poolSize >> 12))
        if options.accelerator == .jit && Accelerator.translatorAvailable && getenv("RIVET_CHECKED_LOADS") == nil,
           mm.manageHostProtection(), let table = UncheckedLoadTable(identityBase: ram.host, identityBytes: AddressSpace.userTop) {
            UncheckedLoadTable.installHandler()
            uncheckedLoads = table
        }
        exePath = options.program
        // As Linux, /proc/self/exe is the canonical path (a program found in the sysroot keeps its guest path).
        if hostPath(Array(exePath.utf8)) == exePath, let real = realpath(exePath, nil) {
            exePath = String(cString: real)
            free(real)
        } else if !exePath.hasPrefix("/") {
            var buf = [CChar](repeating: 0, count: 4096)
            if getcwd(&buf, buf.count) != nil { exePath = String(cString: buf) + "/" + exePath }
        }
    }

    // MARK: Paths

    /// The host path for a guest path: absolute paths that exist under the sysroot resolve there (as qemu -L).
    func hostPath(_ guest: [UInt8]) -> String {
        let s = String(decoding: guest, as: UTF8.self)
        if let root = options.sysroot, s.hasPrefix("/"), !s.hasPrefix("/proc"), !s.hasPrefix("/dev") {
            let candidate = root + s
            if access(candidate, F_OK) == 0 { return candidate }
        }
        return s
    }

    // MARK: Start

    /// Loads the program and runs it on the calling thread; never returns.
    public func run() throws -> Never {
        let mainThread = try lock.locked { () throws -> GuestThread in
            guard let bytes = readHostFile(hostPath(Array(options.program.utf8))) else {
                throw UserError("\(options.program): cannot read the program")
            }
            let elf: ELFImage
            do { elf = try ELFImage(bytes: bytes, name: options.program) } catch { throw UserError("\(error)") }
            let main = try Loader.load(elf, name: exePath, into: mm, preferredBase: AddressSpace.pieBase)
            var entry = main.entry
            var interpBase: UInt64 = 0
            if let interp = elf.interpreter {
                let path = hostPath(Array(interp.utf8))
                guard let ib = readHostFile(path) else {
                    throw UserError("\(options.program): cannot read its interpreter \(interp) (use --sysroot)")
                }
                let ielf: ELFImage
                do { ielf = try ELFImage(bytes: ib, name: path) } catch { throw UserError("\(error)") }
                let loaded = try Loader.load(ielf, name: path, into: mm, preferredBase: nil)
                entry = loaded.entry
                interpBase = loaded.bias
            }
            mm.brkStart = main.end
            mm.brkCurrent = main.end
            var env = options.environment
            if env.isEmpty { env = [] }
            let argv = [options.argv0 ?? options.program] + options.arguments
            let vdso = try mapVDSO()
            let sp = try Loader.buildStack(mm: mm, argv: argv, envp: env, execfn: options.program, main: main,
                                           interpBase: interpBase, vdso: vdso)
            guestArgv = argv
            var aux = sp + UInt64(argv.count + env.count + 3) * 8
            while let k = mm.read64(aux), let v = mm.read64(aux + 8), savedAuxv.count < 4096 {
                withUnsafeBytes(of: k) { savedAuxv += $0 }; withUnsafeBytes(of: v) { savedAuxv += $0 }
                if k == 0 { break }
                aux += 16
            }
            let t = newThread()
            t.tid = Host.gettid()
            t.hart.x[2] = sp
            t.hart.csr.mepc = entry
            threads[t.tid] = t
            return t
        }
        installHostSignalMirror()
        mainThread.sigmask = HostMask.current()  // the mask survives exec, as on Linux
        runThread(mainThread)
        pthread_exit(nil)  // the main thread exited; the others keep the process alive
    }

    /// A fresh hart in M-mode at the trap vector's `mret`, translating through the process's page tables.
    func newThread() -> GuestThread {
        let id = freeHartIDs.popLast() ?? 0
        let cache = BlockCache(ram: ram)
        let hart = Hart(hartID: id, bus: bus, cache: cache, wires: wires, clock: clock)
        hart.accelerator = options.accelerator
        hart.userIdentityAddend = UInt64(UInt(bitPattern: ram.host))  // see AddressSpace
        if let table = uncheckedLoads, threads.isEmpty {
            // Below the last 8 bytes of the identity range, so no load reaches past it.
            hart.enableUncheckedLoads(table, limit: AddressSpace.userTop - 8)
        }
        if let t = options.translationThreshold { hart.translationThreshold = t }
        hart.reset(pc: mm.trapVectorPA + 4)
        hart.writeCSR(CSR.mtvec, mm.trapVectorPA)
        hart.writeCSR(CSR.satp, mm.satp)
        hart.writeCSR(CSR.mstatus, 1 << 13)  // FS = initial, MPP = U
        hart.writeCSR(CSR.mcounteren, 7)
        hart.writeCSR(CSR.scounteren, 7)
        // PMP denies U-mode everything until an entry grants it: one NAPOT entry over all memory, as firmware sets up.
        hart.writeCSR(0x3b0, ~0)   // pmpaddr0
        hart.writeCSR(0x3a0, 0x1f) // pmpcfg0: NAPOT, R W X
        return GuestThread(hart: hart, cache: cache)
    }

    // MARK: The run loop

    static let slice = 200_000

    /// Runs a guest thread until it exits (the last one to exit ends the process).
    func runThread(_ t: GuestThread) {
        t.owner = pthread_self()
        let hart = t.hart
        let vector = mm.trapVectorPA
        debugger?.park(t)  // waits for gdb's first continue (main thread); installs breakpoints
        while true {
            let e = mm.epoch.pointee
            if e != t.seenEpoch { t.seenEpoch = e; hart.flushTLB() }
            if let d = debugger, d.mustPark { d.reportStop(t, nil) }
            let stop = hart.run(budget: UserProcess.slice)
            if stop == .debugStop, let d = debugger, let hooks = hart.debug {
                // A step that entered the kernel (ecall) stops once the call is done and user code resumes.
                if hooks.stop == .step && hart.privilege == .machine { hooks.stop = nil }
                else { let s = hooks.stop; hooks.stop = nil; d.reportStop(t, s); continue }
            }
            if hart.waitingForInterrupt && hart.privilege == .machine && hart.pc == vector + 4 {
                hart.waitingForInterrupt = false
                let mappingsBefore = mm.epoch.pointee
                handleTrap(t)
                if mm.identityBroken && uncheckedLoads != nil { stopUncheckedLoads(t) }
                // munmap/mprotect/mremap: every other thread drops its TLB before its next block, so a
                // stale translation cannot outlive the call by more than that block.
                if mm.epoch.pointee != mappingsBefore {
                    lock.locked { for (_, other) in threads where other !== t { other.hart.requestTLBFlush() } }
                }
                if t.exited { return }
            } else if hart.privilege == .user && (t.pending != 0 || processPending != 0 || hostSignalsArrived()) {
                deliverPendingSignals(t)  // asynchronous signal between slices: the frame resumes at hart.pc
            }
        }
    }

    /// Back to checked loads for good (a second thread, or a page that left its identity place); `t` is the
    /// only thread that had them, and it is outside translated code here. The host protections are opened
    /// again too: with threads, another thread's stale TLB entry may still reach a page just unmapped or
    /// made PROT_NONE (for at most a block), which must not fault in the host.
    func stopUncheckedLoads(_ t: GuestThread) {
        lock.locked { mm.giveUpHostProtection() }
        guard uncheckedLoads != nil else { return }
        uncheckedLoads = nil
        t.hart.disableUncheckedLoads()
    }

    /// Handles the trap that brought the hart to the vector (mcause/mepc/mtval).
    func handleTrap(_ t: GuestThread) {
        let hart = t.hart
        let cause = hart.csr.mcause
        let tval = hart.csr.mtval
        let epc = hart.csr.mepc
        switch cause {
        case 8:
            syscall(t)
        case 12, 13, 15:
            let ok = lock.locked { mm.resolveFault(tval, write: cause == 15, fetch: cause == 12) }
            if ok {
                hart.flushTLB()  // the hart may hold a stale read-only entry for the page
            } else if lock.locked({ mm.isBeyondEOF(tval) }) {
                forceSignal(t, Sig.bus, code: 2, addr: tval)  // BUS_ADRERR: past the end of a shared file
            } else {
                let mapped = lock.locked { mm.isMapped(tval) }
                forceSignal(t, Sig.segv, code: mapped ? 2 : 1, addr: tval)
            }
        case 2: forceSignal(t, Sig.ill, code: 1, addr: epc)         // ILL_ILLOPC
        case 3: forceSignal(t, Sig.trap, code: 1, addr: epc)        // TRAP_BRKPT
        case 0, 4, 6: forceSignal(t, Sig.bus, code: 1, addr: tval)  // BUS_ADRALN
        case 1, 5, 7: forceSignal(t, Sig.segv, code: 2, addr: tval)
        default: forceSignal(t, Sig.ill, code: 1, addr: epc)
        }
        if !t.exited { deliverPendingSignals(t) }
    }

    /// Ends the whole process with `code` (exit_group).
    func exitProcess(_ code: Int32) -> Never {
        debugger?.reportExit(code)
        exit(code & 0xff)
    }
}

extension GuestThread {
    /// The pc user code resumes at: mepc while the thread is in the kernel (at the vector), else the hart's pc.
    var userPC: UInt64 {
        get { hart.privilege == .machine ? hart.csr.mepc : hart.pc }
        set { if hart.privilege == .machine { hart.csr.mepc = newValue } else { hart.pc = newValue } }
    }
}
