#if canImport(Glibc)
import Glibc
#endif
import RivetMemory

/// Loads without a TLB check, for `rivet user` (the way qemu-user accesses guest memory).
///
/// Under `rivet user` the pool's first 2^38 bytes mirror the user address space (identity pages,
/// docs/user-mode.md), and the process keeps each such host page readable exactly when the guest's page at
/// the same address is mapped there and may be read (`AddressSpace`'s host protections); every other page of
/// that range is PROT_NONE. A translated load then needs only a range check (the address below the mirrored
/// range) before it reads `[identity addend + address]`. When the guest's page is not there - never touched,
/// unmapped, PROT_NONE, held elsewhere - the host faults, and the SIGSEGV handler below sends the thread to
/// that load's slow path (the interpreter runs the instruction: page fault, guest signal, or the page
/// elsewhere), through a table from the load's host address to its slow path's.
///
/// Only one thread's code uses it: a process that starts a second thread turns it off (the other threads'
/// stale TLB entries and the deferred host protections that would need are not worth it; threads then run
/// with checked loads as before). Stores keep their TLB check (they also find code pages).
public final class UncheckedLoadTable {
    /// Host address of a load -> host address of its slow path, open addressing (keys 0 are empty).
    private let slots: UnsafeMutablePointer<UInt>
    private static let capacity = 1 << 18
    private(set) var count = 0
    /// Slots filled since the last clear while there are few (a clear then empties just those, so a small
    /// code cache that flushes often does not drop and fault in the whole table each time).
    private var filled: [Int32] = []
    private static let filledListLimit = 8192
    /// The range a faulting access must lie in to be one of ours (the identity range of the pool).
    let rangeStart: UInt
    let rangeEnd: UInt

    /// The table the SIGSEGV handler consults (one process, one thread's code).
    nonisolated(unsafe) static var active: UncheckedLoadTable?
    nonisolated(unsafe) private static var previousAction = sigaction()
    nonisolated(unsafe) private static var handlerInstalled = false

    public init?(identityBase: UnsafeMutableRawPointer, identityBytes: UInt64) {
        guard let p = mapZeroedMemory(UncheckedLoadTable.capacity * 2 * MemoryLayout<UInt>.stride) else { return nil }
        slots = p.bindMemory(to: UInt.self, capacity: UncheckedLoadTable.capacity * 2)
        rangeStart = UInt(bitPattern: identityBase)
        rangeEnd = rangeStart + UInt(identityBytes)
    }

    deinit {
        munmap(slots, UncheckedLoadTable.capacity * 2 * MemoryLayout<UInt>.stride)
    }

    /// Room for a unit's loads (the compiler falls back to checked loads when the table is half full).
    var hasRoom: Bool { count < UncheckedLoadTable.capacity / 2 }

    @inline(__always) private static func index(_ key: UInt) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 40) & (capacity - 1)
    }

    /// Records that a fault at `load` continues at `slowPath`. The value is written before the key, so a
    /// handler never sees a key without its value.
    func insert(load: UInt, slowPath: UInt) {
        var i = UncheckedLoadTable.index(load)
        while true {
            let key = slots[2 * i]
            if key == 0 || key == load {
                slots[2 * i + 1] = slowPath
                slots[2 * i] = load
                if key == 0 {
                    count += 1
                    if count <= UncheckedLoadTable.filledListLimit { filled.append(Int32(i)) }
                }
                return
            }
            i = (i + 1) & (UncheckedLoadTable.capacity - 1)
        }
    }

    /// The slow path for a faulting load at `rip`, or 0. Called in the signal handler: no allocation, no locks.
    @inline(__always) func lookup(_ rip: UInt) -> UInt {
        var i = UncheckedLoadTable.index(rip)
        for _ in 0..<UncheckedLoadTable.capacity {
            let key = slots[2 * i]
            if key == rip { return slots[2 * i + 1] }
            if key == 0 { return 0 }
            i = (i + 1) & (UncheckedLoadTable.capacity - 1)
        }
        return 0
    }

    /// Forgets every load (the code memory is being reused).
    func clear() {
        if count <= UncheckedLoadTable.filledListLimit {
            for i in filled { slots[2 * Int(i)] = 0; slots[2 * Int(i) + 1] = 0 }
        } else {
            madvise(slots, UncheckedLoadTable.capacity * 2 * MemoryLayout<UInt>.stride, MADV_DONTNEED)
        }
        filled.removeAll(keepingCapacity: true)
        count = 0
    }

    /// Installs the SIGSEGV handler (once per process). Faults that are not a registered load touching the
    /// identity range go to the handler that was there before (the fault is taken again on return).
    public static func installHandler() {
        guard !handlerInstalled else { return }
        handlerInstalled = true
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = uncheckedLoadFault
        action.sa_flags = SA_SIGINFO | SA_NODEFER
        sigemptyset(&action.sa_mask)
        sigaction(SIGSEGV, &action, &previousAction)
    }

    fileprivate static func restorePreviousHandler() {
        sigaction(SIGSEGV, &previousAction, nil)
    }
}

/// x86-64 `mcontext_t.gregs` index of rip (REG_RIP in <sys/ucontext.h>).
private let gregRIP = 16

private func uncheckedLoadFault(_ signal: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _ context: UnsafeMutableRawPointer?) {
    if let info, let context, let table = UncheckedLoadTable.active {
        let address = UInt(bitPattern: info.pointee._sifields._sigfault.si_addr)
        if address >= table.rangeStart && address < table.rangeEnd {
            let uc = context.assumingMemoryBound(to: ucontext_t.self)
            let handled: Bool = withUnsafeMutablePointer(to: &uc.pointee.uc_mcontext.gregs) { gregs in
                gregs.withMemoryRebound(to: Int64.self, capacity: gregRIP + 1) { r in
                    let target = table.lookup(UInt(bitPattern: Int(r[gregRIP])))
                    guard target != 0 else { return false }
                    r[gregRIP] = Int64(Int(bitPattern: target))
                    return true
                }
            }
            if handled { return }
        }
    }
    UncheckedLoadTable.restorePreviousHandler()
}
