/// What a debugger (the GDB stub) asks of one hart: breakpoints, watchpoints, single step.
///
/// The hart pays for none of this while `Hart.debug` is nil. When hooks are attached, the run loop
/// executes one instruction at a time (so a breakpoint address or a step ends execution exactly), and
/// pages that hold a watchpoint never get a fast TLB entry, so their accesses take the slow path where
/// they are checked.
public final class DebugHooks {
    public enum WatchKind: Int { case write = 2, read = 3, access = 4 }
    public struct Watchpoint: Equatable {
        public var address: UInt64
        public var length: UInt64
        public var kind: WatchKind
        public init(address: UInt64, length: UInt64, kind: WatchKind) {
            self.address = address; self.length = length; self.kind = kind
        }
    }
    /// Why the hart stopped (set by the hart, read and cleared by the debugger).
    public enum Stop: Equatable {
        case breakpoint
        case step
        case watch(WatchKind, UInt64)
    }

    @exclusivity(unchecked) public var breakpoints: Set<UInt64> = []
    @exclusivity(unchecked) public var watchpoints: [Watchpoint] = []
    /// Stop after the next instruction (interrupts stay masked during the step, as QEMU's default).
    @exclusivity(unchecked) public var singleStep = false
    /// Let the instruction at this pc run once although a breakpoint is set there (continuing from it).
    @exclusivity(unchecked) public var skipBreakpointAt: UInt64? = nil
    @exclusivity(unchecked) public var stop: Stop? = nil

    public init() {}

    public var isEmpty: Bool { breakpoints.isEmpty && watchpoints.isEmpty && !singleStep }

    /// True when [page, page + 4 KiB) holds part of a watchpoint.
    func watchesPage(_ va: UInt64) -> Bool {
        let page = va & ~0xfff
        for w in watchpoints where w.address < page &+ 0x1000 && w.address &+ w.length > page { return true }
        return false
    }

    /// Records a watchpoint hit for an access of `size` bytes at `va`.
    func check(_ va: UInt64, size: Int, write: Bool) {
        guard stop == nil else { return }
        for w in watchpoints where va < w.address &+ w.length && va &+ UInt64(size) > w.address {
            switch w.kind {
            case .write where write, .read where !write, .access:
                stop = .watch(w.kind, w.address)
                return
            default: continue
            }
        }
    }
}

extension Hart {
    /// Attaches or replaces debugger hooks (nil detaches); the TLB is dropped so watched pages lose
    /// their fast entries. Call with the hart stopped.
    public func setDebugHooks(_ hooks: DebugHooks?) {
        debug = hooks
        debugArmed = hooks != nil
        flushTLB()
    }

    /// One instruction under the debugger: stops before a breakpoint, after a step or a watched access.
    /// Returns the work done and whether the hart must stop.
    func debugStep(_ d: DebugHooks) -> (work: Int, stop: Bool) {
        if d.breakpoints.contains(pc) && d.skipBreakpointAt != pc {
            d.stop = .breakpoint
            return (0, true)
        }
        d.skipBreakpointAt = nil
        let n: Int
        if traceHook != nil {
            n = stepTraced()
        } else if let paddr = fetchAddress(pc) {
            n = executeSingle(paddr)
        } else {
            takeTrap(cause: pendingCause, tval: pendingTval, epc: pc, interrupt: false)
            n = 0
        }
        if d.stop != nil { return (max(n, 1), true) }
        if d.singleStep { d.stop = .step; return (max(n, 1), true) }
        return (max(n, 1), false)
    }

    // MARK: Debugger access to memory (no side effects: no A/D updates, no MMIO, no faults raised)

    /// The physical address the hart's current translation gives `va` (permissions ignored), or nil.
    public func debugTranslate(_ va: UInt64) -> UInt64? {
        let mode = csr.satp >> 60
        if privilege == .machine && dataPrivilege == .machine || mode == 0 { return va }
        let levels = mode == 8 ? 3 : (mode == 9 ? 4 : 5)
        let vaBits = 12 + 9 * levels
        let top = Int64(bitPattern: va) >> Int64(vaBits - 1)
        if top != 0 && top != -1 { return nil }
        var table = (csr.satp & 0xfff_ffff_ffff) << 12
        var level = levels - 1
        while true {
            let pteAddr = table &+ ((va >> UInt64(12 + 9 * level)) & 0x1ff) &* 8
            guard pteAddr >= ramBase, pteAddr - ramBase <= ramSize - 8 else { return nil }
            let pte = (ramHost + Int(pteAddr - ramBase)).load(as: UInt64.self)
            if pte & 1 == 0 { return nil }
            if pte & 0xa == 0 {  // not a leaf: R = X = 0
                if level == 0 { return nil }
                table = ((pte >> 10) & 0xfff_ffff_ffff) << 12
                level -= 1
                continue
            }
            let pageMask: UInt64 = (1 << UInt64(12 + 9 * level)) - 1
            return ((((pte >> 10) & 0xfff_ffff_ffff) << 12) & ~pageMask) | (va & pageMask)
        }
    }

    /// Reads guest RAM at a physical address; nil if any byte lies outside RAM.
    public func debugReadPhysical(_ pa: UInt64, length: Int) -> [UInt8]? {
        guard length >= 0, pa >= ramBase, pa - ramBase <= ramSize, UInt64(length) <= ramSize - (pa - ramBase) else { return nil }
        let p = UnsafeRawPointer(ramHost + Int(pa - ramBase))
        return Array(UnsafeRawBufferPointer(start: p, count: length))
    }

    /// Reads virtual memory page by page through the current translation; stops at the first unmapped
    /// byte (returns what was read, possibly nothing).
    public func debugReadVirtual(_ va: UInt64, length: Int) -> [UInt8] {
        var out: [UInt8] = []
        var a = va
        var left = length
        while left > 0 {
            let chunk = min(left, Int(0x1000 - (a & 0xfff)))
            guard let pa = debugTranslate(a), let bytes = debugReadPhysical(pa, length: chunk) else { break }
            out += bytes
            a &+= UInt64(chunk); left -= chunk
        }
        return out
    }

    /// Writes virtual memory through the current translation (RAM only); false if any page is unmapped.
    /// Decoded blocks of the written pages are invalidated.
    public func debugWriteVirtual(_ va: UInt64, bytes: [UInt8]) -> Bool {
        var a = va
        var offset = 0
        while offset < bytes.count {
            let chunk = min(bytes.count - offset, Int(0x1000 - (a & 0xfff)))
            guard let pa = debugTranslate(a), pa >= ramBase, pa - ramBase <= ramSize - UInt64(chunk) else { return false }
            let dst = ramHost + Int(pa - ramBase)
            bytes.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress! + offset, byteCount: chunk) }
            ram.noteWrite(pa, length: UInt64(chunk))
            a &+= UInt64(chunk); offset += chunk
        }
        flushTLB()
        return true
    }

    /// Privilege as a number (gdb's `priv` register: 0 U, 1 S, 3 M); setting it switches modes.
    public var debugPrivilege: UInt64 {
        get { UInt64(privilege.rawValue) }
        set { if let p = Privilege(rawValue: UInt8(newValue & 3)) { setPrivilege(p); flushTLB() } }
    }
}
