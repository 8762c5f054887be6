#if canImport(Glibc)
import Glibc
#endif
import Atomics
import RivetMemory
import RivetSnapshot

/// Privilege levels.
public enum Privilege: UInt8 { case user = 0, supervisor = 1, machine = 3 }

/// Why `Hart.run` returned.
public enum HartStop: Equatable {
    case budgetExhausted
    case waitingForInterrupt
    /// A debugger hook fired (breakpoint, step, watchpoint): see `debug.stop`.
    case debugStop
}

/// One RV64GC hart: architectural state plus its software TLB. Executes decoded blocks from a shared
/// `BlockCache`. All state is plain stored values (saved by `saveState`).
public final class Hart: AttentionTarget {
    public let hartID: Int
    // MARK: Architectural state
    @exclusivity(unchecked) public var pc: UInt64 = 0
    @exclusivity(unchecked) public var privilege: Privilege = .machine
    /// x0...x31, then slot 32: the sink for writes to x0.
    public let x: UnsafeMutablePointer<UInt64>
    /// f0...f31 as raw bits (singles NaN-boxed).
    public let f: UnsafeMutablePointer<UInt64>
    /// The register frame x and f live in, with the per-block fields translated code reads (HartFrame.swift).
    let frame: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) public var csr = CSRFile()
    /// The widest paging mode satp accepts (the narrower ones are accepted too).
    @exclusivity(unchecked) public var mmuMode: MMUMode = .sv57
    /// PMP registers as software sees them (pmpcfg0, 2, ..., 14 and pmpaddr0-63; see PMP.swift). Write
    /// them through `writeCSR` so that the decoded rules below follow.
    @exclusivity(unchecked) public internal(set) var pmpcfg: [UInt64] = Array(repeating: 0, count: 8)
    @exclusivity(unchecked) public internal(set) var pmpaddr: [UInt64] = Array(repeating: 0, count: 64)
    /// The active PMP entries decoded, in priority order (slow paths only).
    let pmpRules: UnsafeMutablePointer<PMPRule>
    @exclusivity(unchecked) var pmpRuleCount = 0
    /// [pmpOpenLow, pmpOpenHigh): where S and U may read and write without a rule lookup (see PMP.swift).
    @exclusivity(unchecked) var pmpOpenLow: UInt64 = 0
    @exclusivity(unchecked) var pmpOpenHigh: UInt64 = 0
    /// Per-page PMP decisions (see `pmpCachedPagePermissions`), cleared whenever a rule changes.
    let pmpPageCacheKeys: UnsafeMutablePointer<UInt64>
    let pmpPageCacheValues: UnsafeMutablePointer<UInt8>
    /// Set by a fetch-TLB miss on a page that PMP rules split: the run loop then executes one instruction
    /// at a time there, each fetch checked exactly.
    @exclusivity(unchecked) var fetchNeedsExactChecks = false
    /// Physical address reserved by LR, or nil (kept in the frame, where translated LR/SC use it).
    public var reservation: UInt64? {
        get { let r = frame[FrameSlot.reservation]; return r == FrameSlot.noReservation ? nil : r }
        set { frame[FrameSlot.reservation] = newValue ?? FrameSlot.noReservation }
    }
    /// The value LR read (SC compares it, see executeAtomic).
    var reservationValue: UInt64 {
        get { frame[FrameSlot.reservationValue] }
        set { frame[FrameSlot.reservationValue] = newValue }
    }
    @exclusivity(unchecked) public var waitingForInterrupt = false
    /// Retired instructions (minstret); mcycle follows it.
    @exclusivity(unchecked) public var instret: UInt64 = 0
    /// Work done by `run`: retired instructions plus traps that retired nothing. Instruction limits use
    /// it, so a guest that traps in a loop still reaches them.
    @exclusivity(unchecked) public internal(set) var work: UInt64 = 0

    // MARK: Platform
    unowned(unsafe) public let bus: PhysicalBus
    unowned(unsafe) public let ram: GuestRAM
    unowned(unsafe) public let cache: BlockCache
    unowned(unsafe) public let wires: InterruptWires
    unowned(unsafe) public let clock: VirtualClock
    let ramBase: UInt64
    let ramSize: UInt64
    let ramHost: UnsafeMutableRawPointer
    /// `ram.codeEpochCell`, one load closer (read at every block chain).
    let codeEpoch: UnsafeMutablePointer<UInt64>

    // MARK: Software TLB (see MMU.swift)
    let tlbStorage: UnsafeMutablePointer<TLBEntry>
    /// Current data set (reads at [0, N), writes at [N, 2N)) and fetch set.
    /// (These live in the register frame, where translated code reads them: see HartFrame.swift.)
    var dataTLB: UnsafeMutablePointer<TLBEntry> {
        @inline(__always) get { UnsafeMutablePointer(bitPattern: UInt(frame[FrameSlot.dataTLB])).unsafelyUnwrapped }
        @inline(__always) set { frame[FrameSlot.dataTLB] = UInt64(UInt(bitPattern: newValue)) }
    }
    var fetchTLB: UnsafeMutablePointer<TLBEntry> {
        @inline(__always) get { UnsafeMutablePointer(bitPattern: UInt(frame[FrameSlot.fetchTLB])).unsafelyUnwrapped }
        @inline(__always) set { frame[FrameSlot.fetchTLB] = UInt64(UInt(bitPattern: newValue)) }
    }
    var seenCodeEpoch: UInt64 {
        @inline(__always) get { frame[FrameSlot.seenCodeEpoch] }
        @inline(__always) set { frame[FrameSlot.seenCodeEpoch] = newValue }
    }
    /// When nonzero, the one host addend every data-TLB entry has (rivet user's identity pool, see
    /// AddressSpace): pages with another addend are not cached, and translated code adds this constant
    /// instead of loading the entry's addend, so its loads do not wait for the TLB entry.
    public var userIdentityAddend: UInt64 {
        @inline(__always) get { frame[FrameSlot.identityAddend] }
        set {
            frame[FrameSlot.identityAddend] = newValue
            cache.identityAddressing = newValue != 0
            flushTLB()
        }
    }
    /// Current generations of read/fetch and of write entries (see MMU.swift).
    var readGeneration: UInt64 {
        @inline(__always) get { frame[FrameSlot.readGeneration] }
        @inline(__always) set { frame[FrameSlot.readGeneration] = newValue }
    }
    var writeGeneration: UInt64 {
        @inline(__always) get { frame[FrameSlot.writeGeneration] }
        @inline(__always) set { frame[FrameSlot.writeGeneration] = newValue }
    }
    /// The S-mode set holds entries for U pages (filled while SUM was set).
    @exclusivity(unchecked) var supervisorTLBHasUserPages = false
    /// Some entry came from a superpage (an address-specific sfence.vma must then flush everything).
    @exclusivity(unchecked) var tlbHoldsSuperpages = false

    // MARK: Exceptions raised by slow paths, delivered by the executor.
    @exclusivity(unchecked) var pendingCause: UInt64 = 0
    @exclusivity(unchecked) var pendingTval: UInt64 = 0
    /// Instructions of the current block already retired (read by CSR accesses to instret).
    @exclusivity(unchecked) var retiredInBlock: UInt64 = 0
    /// The block pc of the block being executed.
    var blockPC: UInt64 {
        @inline(__always) get { frame[FrameSlot.blockPC] }
        @inline(__always) set { frame[FrameSlot.blockPC] = newValue }
    }
    /// Set when a block raised an exception at its first instruction: that costs one unit of work whether
    /// or not the block was reached by chaining, so budgets do not depend on what the block cache holds.
    @exclusivity(unchecked) var trapAtBlockStart = false

    /// An instruction straddling a page boundary is decoded here and executed alone.
    let scratchOp: UnsafeMutablePointer<MicroOp>

    /// Set from any thread to make this hart drop its TLB before its next block (user mode: munmap or
    /// mprotect by another guest thread).
    public let tlbFlushRequest: UnsafeAtomic<Bool>

    /// Asks this hart, from any thread, to drop its TLB before its next block.
    public func requestTLBFlush() { tlbFlushRequest.store(true, ordering: .releasing) }

    /// Set from any thread to make translated code return to the run loop at its next block boundary (byte 1
    /// of the frame's exit-request word, which every translated block checks); the run loop clears it and
    /// then looks at interrupts, the code epoch and the rest itself.
    let attentionRequest: UnsafeAtomic<Bool>

    /// Asks this hart, from any thread, to come back to its run loop at its next block boundary.
    public func requestAttention() { attentionRequest.store(true, ordering: .releasing) }

    // MARK: Translation (Translator/)
    /// True when hot blocks are compiled to host code (`accelerator == .jit` on a host that can).
    @exclusivity(unchecked) var translating = false
    /// How this hart executes guest code. `.jit` on a host without a translator means `.interp`.
    public var accelerator: Accelerator {
        get { translating ? .jit : .interp }
        set { translating = newValue == .jit && Accelerator.translatorAvailable }
    }
    /// Times a block runs in the interpreter before it is compiled (0: compile at first use).
    @exclusivity(unchecked) public var translationThreshold = 16
    /// Chain blocks without returning to the run loop (both modes). Off only for lockstep testing.
    @exclusivity(unchecked) public var chainingEnabled = true

    /// Print each retired instruction (run-elf --trace).
    @exclusivity(unchecked) public var traceHook: ((UInt64, UInt32) -> Void)? = nil

    /// Debugger hooks (Debugging.swift); `debugArmed` mirrors `debug != nil` for a cheap check per block.
    @exclusivity(unchecked) public internal(set) var debug: DebugHooks? = nil
    @exclusivity(unchecked) var debugArmed = false

    public init(hartID: Int, bus: PhysicalBus, cache: BlockCache, wires: InterruptWires, clock: VirtualClock) {
        self.hartID = hartID
        self.bus = bus
        self.ram = bus.ram
        self.cache = cache
        self.wires = wires
        self.clock = clock
        ramBase = bus.ram.base
        ramSize = bus.ram.size
        ramHost = bus.ram.host
        codeEpoch = bus.ram.codeEpochCell
        frame = .allocate(capacity: FrameSlot.count); frame.initialize(repeating: 0, count: FrameSlot.count)
        x = frame + FrameSlot.x
        f = frame + FrameSlot.f
        tlbFlushRequest = UnsafeAtomic<Bool>(at: UnsafeMutableRawPointer(frame + FrameSlot.exitRequest)
            .bindMemory(to: Bool.AtomicRepresentation.self, capacity: 1))
        attentionRequest = UnsafeAtomic<Bool>(at: (UnsafeMutableRawPointer(frame + FrameSlot.exitRequest) + 1)
            .bindMemory(to: Bool.AtomicRepresentation.self, capacity: 1))
        tlbStorage = BlockCache.mapZeroed(TLB.storageBytes).bindMemory(to: TLBEntry.self, capacity: TLB.setEntries * 3)
        scratchOp = .allocate(capacity: 1)
        pmpRules = .allocate(capacity: PMP.entryCount)
        pmpRules.initialize(repeating: PMPRule(low: 0, high: 0, permissions: 0, locked: false), count: PMP.entryCount)
        pmpPageCacheKeys = .allocate(capacity: PMP.pageCacheSlots)
        pmpPageCacheKeys.initialize(repeating: 0, count: PMP.pageCacheSlots)
        pmpPageCacheValues = .allocate(capacity: PMP.pageCacheSlots)
        pmpPageCacheValues.initialize(repeating: 0, count: PMP.pageCacheSlots)
        csr.mhartid = UInt64(hartID)
        frame[FrameSlot.readGeneration] = TLB.firstGeneration
        frame[FrameSlot.writeGeneration] = TLB.firstGeneration
        frame[FrameSlot.reservation] = FrameSlot.noReservation
        clearTLBStorage()
        updateTranslationMode()
        prepareFrameForTranslation()
        bus.ram.addAttentionTarget(self)
    }

    deinit {
        frame.deallocate(); munmap(tlbStorage, TLB.storageBytes); scratchOp.deallocate(); pmpRules.deallocate()
        pmpPageCacheKeys.deallocate(); pmpPageCacheValues.deallocate()
    }

    /// Resets to the power-on state: M-mode at `pc`, registers zero.
    public func reset(pc: UInt64) {
        for i in 0..<33 { x[i] = 0 }
        for i in 0..<32 { f[i] = 0 }
        csr = CSRFile()
        csr.mhartid = UInt64(hartID)
        pmpcfg = Array(repeating: 0, count: 8)
        pmpaddr = Array(repeating: 0, count: 64)
        pmpRuleCount = 0
        pmpOpenLow = 0; pmpOpenHigh = 0
        clearPMPPageCache()
        fetchNeedsExactChecks = false
        self.pc = pc
        privilege = .machine
        reservation = nil
        waitingForInterrupt = false
        instret = 0
        flushTLB()
        updateTranslationMode()
    }

    /// Changes privilege level (user-mode runtimes returning from their trap handling), keeping the TLB
    /// sets in step.
    public func setPrivilege(_ p: Privilege) {
        privilege = p
        updateTranslationMode()
    }

    // MARK: Traps

    /// Takes an exception or interrupt: updates the trap CSRs of M or S mode (per delegation) and jumps to
    /// the handler. `epc` is the pc of the instruction that trapped (or the next one, for interrupts).
    public func takeTrap(cause: UInt64, tval: UInt64, epc: UInt64, interrupt: Bool) {
        let code = cause & 63
        let delegated = privilege != .machine &&
            ((interrupt ? csr.mideleg : csr.medeleg) >> code) & 1 == 1
        let causeValue = interrupt ? (1 << 63) | code : code
        if delegated {
            csr.scause = causeValue
            csr.sepc = epc
            csr.stval = tval
            var s = csr.mstatus
            s = (s & ~MStatus.spp) | (privilege == .supervisor ? MStatus.spp : 0)
            s = (s & ~MStatus.spie) | ((s & MStatus.sie) != 0 ? MStatus.spie : 0)
            s &= ~MStatus.sie
            csr.mstatus = s
            privilege = .supervisor
            let base = csr.stvec & ~3
            pc = (csr.stvec & 3) == 1 && interrupt ? base &+ 4 &* code : base
        } else {
            csr.mcause = causeValue
            csr.mepc = epc
            csr.mtval = tval
            var s = csr.mstatus
            s = (s & ~MStatus.mppMask) | (UInt64(privilege.rawValue) << MStatus.mppShift)
            s = (s & ~MStatus.mpie) | ((s & MStatus.mie) != 0 ? MStatus.mpie : 0)
            s &= ~MStatus.mie
            csr.mstatus = s
            privilege = .machine
            let base = csr.mtvec & ~3
            pc = (csr.mtvec & 3) == 1 && interrupt ? base &+ 4 &* code : base
        }
        updateTranslationMode()
    }

    /// mip as software sees it: stored bits plus the pins driven by devices.
    @inline(__always) public var effectiveMIP: UInt64 { csr.mip | wires.pins[hartID] }

    /// The interrupt to take now, if any (priority order MEI, MSI, MTI, SEI, SSI, STI).
    @inline(__always)
    func pendingInterrupt() -> UInt64? {
        let pending = effectiveMIP & csr.mie
        if pending == 0 { return nil }
        let mEnabled = privilege != .machine || (csr.mstatus & MStatus.mie) != 0
        let sEnabled = privilege == .user || (privilege == .supervisor && (csr.mstatus & MStatus.sie) != 0)
        let mPending = mEnabled ? pending & ~csr.mideleg : 0
        let sPending = sEnabled ? pending & csr.mideleg : 0
        let candidates = mPending != 0 ? mPending : sPending
        if candidates == 0 { return nil }
        if candidates & (1 << 11) != 0 { return 11 }
        if candidates & (1 << 3) != 0 { return 3 }
        if candidates & (1 << 7) != 0 { return 7 }
        if candidates & (1 << 9) != 0 { return 9 }
        if candidates & (1 << 1) != 0 { return 1 }
        if candidates & (1 << 5) != 0 { return 5 }
        return nil
    }

    /// True when some enabled-in-mie interrupt is pending (wakes wfi regardless of global enables).
    @inline(__always) public var hasWakeupInterrupt: Bool { effectiveMIP & csr.mie != 0 }

    func executeMRET() -> Bool {
        guard privilege == .machine else { return false }
        var s = csr.mstatus
        let mpp = (s & MStatus.mppMask) >> MStatus.mppShift
        s = (s & ~MStatus.mie) | ((s & MStatus.mpie) != 0 ? MStatus.mie : 0)
        s |= MStatus.mpie
        s &= ~MStatus.mppMask  // MPP := U
        if mpp != 3 { s &= ~MStatus.mprv }
        csr.mstatus = s
        privilege = Privilege(rawValue: UInt8(mpp)) ?? .user
        pc = csr.mepc
        updateTranslationMode()
        return true
    }

    func executeSRET() -> Bool {
        guard privilege == .machine || (privilege == .supervisor && (csr.mstatus & MStatus.tsr) == 0) else { return false }
        var s = csr.mstatus
        let spp = (s & MStatus.spp) != 0
        s = (s & ~MStatus.sie) | ((s & MStatus.spie) != 0 ? MStatus.sie : 0)
        s |= MStatus.spie
        s &= ~MStatus.spp
        s &= ~MStatus.mprv  // returning to a mode below M clears MPRV
        csr.mstatus = s
        privilege = spp ? .supervisor : .user
        pc = csr.sepc
        updateTranslationMode()
        return true
    }
}

/// mstatus bits.
public enum MStatus {
    public static let sie: UInt64 = 1 << 1
    public static let mie: UInt64 = 1 << 3
    public static let spie: UInt64 = 1 << 5
    public static let mpie: UInt64 = 1 << 7
    public static let spp: UInt64 = 1 << 8
    public static let mppShift: UInt64 = 11
    public static let mppMask: UInt64 = 3 << 11
    public static let fsMask: UInt64 = 3 << 13
    public static let fsDirty: UInt64 = 3 << 13
    public static let mprv: UInt64 = 1 << 17
    public static let sum: UInt64 = 1 << 18
    public static let mxr: UInt64 = 1 << 19
    public static let tvm: UInt64 = 1 << 20
    public static let tw: UInt64 = 1 << 21
    public static let tsr: UInt64 = 1 << 22
    public static let uxl: UInt64 = 2 << 32
    public static let sxl: UInt64 = 2 << 34
    public static let sd: UInt64 = 1 << 63
    /// Bits writable through mstatus.
    public static let writableM: UInt64 = sie | mie | spie | mpie | spp | mppMask | fsMask | mprv | sum | mxr | tvm | tw | tsr
    /// Bits visible and writable through sstatus.
    public static let writableS: UInt64 = sie | spie | spp | fsMask | sum | mxr
    public static let readableS: UInt64 = writableS | uxl | sd
}
