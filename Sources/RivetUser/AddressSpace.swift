#if canImport(Glibc)
import Glibc
#endif
import RivetMemory

/// Bits of a Sv39 page-table entry, plus two software bits (RSW) the mini kernel uses.
enum PTE {
    static let v: UInt64 = 1 << 0, r: UInt64 = 1 << 1, w: UInt64 = 1 << 2, x: UInt64 = 1 << 3
    static let u: UInt64 = 1 << 4, a: UInt64 = 1 << 6, d: UInt64 = 1 << 7
    /// The page belongs to a mapping even while V is clear (PROT_NONE, or not yet touched).
    static let mapped: UInt64 = 1 << 8
    /// The pool page is a host MAP_SHARED mapping (of a file, or shared anonymous memory); with no page
    /// number, the page lies beyond the end of the file (SIGBUS).
    static let shared: UInt64 = 1 << 9
    static let rwx: UInt64 = r | w | x
    static func ppn(_ pte: UInt64) -> UInt64 { (pte >> 10) & 0xfff_ffff_ffff }
}

/// Linux PROT_* bits.
enum Prot {
    static let read: UInt64 = 1, write: UInt64 = 2, exec: UInt64 = 4
    /// RISC-V permission bits for a protection (write implies read: W without R is reserved).
    static func pteBits(_ prot: UInt64) -> UInt64 {
        var b: UInt64 = 0
        if prot & read != 0 { b |= PTE.r }
        if prot & write != 0 { b |= PTE.r | PTE.w }
        if prot & exec != 0 { b |= PTE.x }
        return b
    }
}

/// The guest's virtual address space: Sv39 page tables kept by the mini kernel in a `GuestRAM` that serves as
/// the pool of physical pages. Mapped pages are allocated on first touch (the hart's page fault reaches the
/// kernel, which allocates and retries). Callers hold the process lock.
///
/// The pool's first `userTop` bytes mirror the user address space: the page for virtual address `va` is,
/// whenever possible, the pool page at offset `va` ("identity" pages). Every such page then has the same
/// host addend, so translated code computes a host address as `va + constant` and its data load no longer
/// waits for a TLB entry's addend (`Hart.userIdentityAddend`; the TLB check still guards the access).
/// Page tables, the trap vector and pages that cannot sit at their own offset (a page moved while its
/// offset is taken) come from the overflow area above `userTop`.
final class AddressSpace {
    static let pageSize: UInt64 = 4096
    /// Sv39 user half.
    static let userTop: UInt64 = 0x40_0000_0000
    /// Lowest address mmap hands out without a hint.
    static let mmapMin: UInt64 = 0x10_0000
    /// The page the sigreturn trampoline lives in (last user page).
    static let trampolineVA: UInt64 = userTop - pageSize
    static let stackTop: UInt64 = trampolineVA - pageSize
    static let stackSize: UInt64 = 8 << 20
    /// Top of the region mmap searches down from (below the stack and a guard gap).
    static let mmapTop: UInt64 = stackTop - stackSize - (64 << 20)
    /// Where position-independent executables are placed (2/3 of the address space, as Linux does).
    static let pieBase: UInt64 = 0x2a_aaaa_a000
    /// Where the vDSO is mapped: in the gap between the stack and the mmap area.
    static let vdsoVA: UInt64 = mmapTop + (16 << 20)

    /// Pool pages that mirror the user address space (see above); the overflow area follows.
    static let identityPages = Int(userTop >> 12)
    /// The pool's size for `overflowBytes` of overflow area.
    static func poolSize(overflowBytes: UInt64) -> UInt64 { userTop + overflowBytes }

    let ram: GuestRAM
    /// Next never-used page of the overflow area.
    @exclusivity(unchecked) var bumpPage: Int = 0
    /// Per identity page: 0 zero (never used, or given back to the host), 1 in use, 2 freed and not yet given
    /// back (zeroed if taken again first).
    private let identityState: UnsafeMutablePointer<UInt8>
    /// The run of freed identity pages not yet given back to the host (releaseFreedPages).
    @exclusivity(unchecked) private var releaseFirst = 0
    @exclusivity(unchecked) private var releaseCount = 0
    /// Pages in use, and the most the process may have (its memory limit, as the pool size was before).
    @exclusivity(unchecked) var pagesInUse = 0
    let pageLimit: Int
    @exclusivity(unchecked) private var freePages: [Int32] = []
    /// Files behind mappings, by start address (for /proc/self/maps): end, path, file offset at start.
    @exclusivity(unchecked) var names: [UInt64: (end: UInt64, path: String, offset: UInt64)] = [:]
    /// Pool pages holding a shared mapping of a file opened read-only: the guest may never write them.
    @exclusivity(unchecked) var readOnlyShared: Set<Int32> = []
    /// Physical address of the root table.
    @exclusivity(unchecked) private(set) var root: UInt64 = 0
    let trapVectorPA: UInt64
    let trampolinePA: UInt64
    @exclusivity(unchecked) var brkStart: UInt64 = 0
    @exclusivity(unchecked) var brkCurrent: UInt64 = 0
    /// Bumped whenever a translation is removed or narrowed: other threads flush their TLBs when they see it.
    let epoch: UnsafeMutablePointer<UInt64>

    /// Host protections of the identity range follow the guest's (see UncheckedLoadTable, RivetCPU): an
    /// identity page is host-readable exactly when the guest's page at that address is mapped readable (or
    /// executable) and is that pool page, or not touched yet (it reads as zero, as the guest's would); all
    /// other pages of the range are PROT_NONE. Translated loads then need no TLB check.
    @exclusivity(unchecked) private(set) var managesHostProtection = false
    /// Set when the rule above was given up (giveUpHostProtection): the process stops using unchecked loads.
    @exclusivity(unchecked) var identityBroken = false

    struct OutOfMemory: Error {}

    init(ram: GuestRAM, pageLimit: Int) throws {
        guard ram.pageCount > AddressSpace.identityPages + 2, let state = mapZeroedMemory(AddressSpace.identityPages) else {
            throw OutOfMemory()
        }
        self.ram = ram
        self.pageLimit = pageLimit
        identityState = state.assumingMemoryBound(to: UInt8.self)
        epoch = .allocate(capacity: 1)
        epoch.initialize(to: 0)
        // The overflow area's first two pages: the trap vector and the trampoline; then the root table.
        let overflow = ram.base + AddressSpace.userTop
        let tv = overflow, tp = overflow + 4096
        trapVectorPA = tv
        trampolinePA = tp
        bumpPage = AddressSpace.identityPages + 2
        guard let rt = allocPage() else { throw OutOfMemory() }
        root = rt
        // Trap vector: `wfi` stops the hart's run loop (no interrupt can wake it) so the kernel sees the trap;
        // `mret` then returns to user mode at mepc.
        ram.store32(tv, 0x1050_0073)
        ram.store32(tv + 4, 0x3020_0073)
        // Sigreturn trampoline: li a7, 139 (rt_sigreturn); ecall.
        ram.store32(tp, 0x08b0_0893)
        ram.store32(tp + 4, 0x0000_0073)
        leafSlot(AddressSpace.trampolineVA, create: true)!.pointee =
            (tp >> 12) << 10 | PTE.mapped | PTE.r | PTE.x | PTE.u | PTE.a | PTE.d | PTE.v
    }

    /// Makes the whole identity range PROT_NONE and keeps it in step with the mappings from now on (call
    /// before anything is mapped). False if the host refuses.
    func manageHostProtection() -> Bool {
        guard mprotect(ram.host, Int(AddressSpace.userTop), PROT_NONE) == 0 else { return false }
        managesHostProtection = true
        return true
    }

    /// The host protection the identity page of `va` must have (see managesHostProtection).
    private func hostProtection(_ va: UInt64, _ pte: UInt64) -> Int32 {
        let ppn = PTE.ppn(pte)
        let mappedHere = pte & PTE.mapped != 0 && ppn != 0 && ppn << 12 == ram.base + va
        let readable = readOnlyShared.contains(Int32(va >> 12)) ? PROT_READ : PROT_READ | PROT_WRITE
        guard pte & PTE.mapped != 0, pte & (PTE.r | PTE.x) != 0 else { return PROT_NONE }
        if ppn == 0 { return pte & PTE.shared != 0 ? PROT_NONE : PROT_READ | PROT_WRITE }  // SIGBUS, or zero
        return mappedHere ? readable : PROT_NONE  // elsewhere: the load's slow path finds it
    }

    /// Sets the host protection of the identity pages of [start, end) from the guest's mappings, one
    /// mprotect per run of equal protection.
    func applyHostProtection(_ start: UInt64, _ end: UInt64) {
        guard managesHostProtection, start < end, end <= AddressSpace.userTop else { return }
        var runStart = start, runProt: Int32 = -1
        var va = start
        func flush(_ upTo: UInt64) {
            if runProt >= 0 && upTo > runStart && mprotect(host(ram.base + runStart), Int(upTo - runStart), runProt) != 0 {
                giveUpHostProtection()  // the host's mapping limit: fall back to checked loads
            }
        }
        while va < end {
            let prot: Int32
            if let slot = leafSlot(va, create: false) { prot = hostProtection(va, slot.pointee) } else { prot = PROT_NONE }
            if prot != runProt { flush(va); runStart = va; runProt = prot }
            va += 4096
        }
        flush(end)
    }

    /// When the host refuses a protection change (its limit on mappings), or the process stops using
    /// unchecked loads: every identity page is opened again (read-only shared file pages read-only) and left
    /// so, as without unchecked loads; the process goes back to checked loads.
    func giveUpHostProtection() {
        guard managesHostProtection else { return }
        managesHostProtection = false
        identityBroken = true
        var from: UInt64 = 0
        for page in readOnlyShared.sorted() where UInt64(page) << 12 < AddressSpace.userTop {
            let va = UInt64(page) << 12
            if va > from { mprotect(host(ram.base + from), Int(va - from), PROT_READ | PROT_WRITE) }
            mprotect(host(ram.base + va), 4096, PROT_READ)
            from = va + 4096
        }
        mprotect(host(ram.base + from), Int(AddressSpace.userTop - from), PROT_READ | PROT_WRITE)
    }

    /// Opens the identity pages of [start, start+length) for rivet's own writes (a private file mapping being
    /// filled whatever its protection); applyHostProtection closes them again.
    func openHostAccess(_ start: UInt64, _ length: UInt64) {
        guard managesHostProtection, AddressSpace.validRange(start, length) else { return }
        if mprotect(host(ram.base + start), Int(length), PROT_READ | PROT_WRITE) != 0 { giveUpHostProtection() }
    }

    deinit {
        munmap(identityState, AddressSpace.identityPages)
        epoch.deallocate()
    }

    var satp: UInt64 { (8 << 60) | (root >> 12) }

    @inline(__always) func host(_ pa: UInt64) -> UnsafeMutableRawPointer { ram.host + Int(pa - ram.base) }

    // MARK: Physical pages

    /// A zeroed page for the user page at `va` (its identity page when that is free), or, with no `va`, an
    /// overflow page (page tables). nil when the process is out of memory.
    func allocPage(for va: UInt64? = nil) -> UInt64? {
        guard pagesInUse < pageLimit else { return nil }
        if let va, let pa = takeIdentityPages(va & ~4095, count: 1) { return pa }
        let pa: UInt64
        if let p = freePages.popLast() {
            pa = ram.base + UInt64(p) << 12
            host(pa).initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        } else {
            guard bumpPage < ram.pageCount else { return nil }
            pa = ram.base + UInt64(bumpPage) << 12  // never used: still zero
            bumpPage += 1
        }
        pagesInUse += 1
        return pa
    }

    /// Takes the identity pages of [va, va + count pages) if none is in use, zeroing reused ones.
    func takeIdentityPages(_ va: UInt64, count: Int) -> UInt64? {
        guard va < AddressSpace.userTop, count > 0, UInt64(count) <= (AddressSpace.userTop - va) >> 12,
              count <= pageLimit - pagesInUse else { return nil }
        releaseFreedPages()  // a page still waiting in the run must not be released after it is taken
        let first = Int(va >> 12)
        for i in first..<first + count where identityState[i] == 1 { return nil }
        for i in first..<first + count {
            if identityState[i] == 2 {
                host(ram.base + UInt64(i) << 12).initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
            }
            identityState[i] = 1
        }
        pagesInUse += count
        return ram.base + va
    }

    func freePage(_ pa: UInt64) {
        ram.noteWrite(pa, length: 4096)  // drops decoded code for it
        let page = Int((pa - ram.base) >> 12)
        if page < AddressSpace.identityPages {
            identityState[page] = 2
            if releaseCount > 0 && releaseFirst + releaseCount == page {
                releaseCount += 1
            } else {
                releaseFreedPages()
                releaseFirst = page
                releaseCount = 1
            }
        } else {
            freePages.append(Int32(page))
        }
        pagesInUse -= 1
    }

    /// Gives the pending run of freed identity pages back to the host (they read as zero afterwards). A freed
    /// identity page is reused only if its own address is mapped again, so without this a guest that moves
    /// its mappings around would keep host memory it no longer has.
    func releaseFreedPages() {
        guard releaseCount > 0 else { return }
        madvise(host(ram.base + UInt64(releaseFirst) << 12), releaseCount << 12, MADV_DONTNEED)
        for i in releaseFirst..<releaseFirst + releaseCount where identityState[i] == 2 { identityState[i] = 0 }
        releaseCount = 0
    }

    // MARK: Page-table walk

    /// The level-0 PTE slot for `va`, creating intermediate tables when `create` is set.
    @discardableResult
    func leafSlot(_ va: UInt64, create: Bool) -> UnsafeMutablePointer<UInt64>? {
        var table = root
        for level in [2, 1] {
            let slot = (host(table) + Int((va >> UInt64(12 + 9 * level)) & 511) * 8).assumingMemoryBound(to: UInt64.self)
            if slot.pointee & PTE.v == 0 {
                guard create, let t = allocPage() else { return nil }
                slot.pointee = (t >> 12) << 10 | PTE.v
            }
            table = PTE.ppn(slot.pointee) << 12
        }
        return (host(table) + Int((va >> 12) & 511) * 8).assumingMemoryBound(to: UInt64.self)
    }

    /// Size of the empty, table-less block around `va` (1 GiB or 2 MiB), or 0 when a leaf table exists.
    private func emptyBlock(_ va: UInt64) -> UInt64 {
        let s2 = (host(root) + Int((va >> 30) & 511) * 8).load(as: UInt64.self)
        if s2 & PTE.v == 0 { return 1 << 30 }
        let t1 = PTE.ppn(s2) << 12
        let s1 = (host(t1) + Int((va >> 21) & 511) * 8).load(as: UInt64.self)
        if s1 & PTE.v == 0 { return 1 << 21 }
        return 0
    }

    /// Calls `body` for each mapped page in [start, end), skipping empty tables quickly.
    func forEachMapped(_ start: UInt64, _ end: UInt64, _ body: (UInt64, UnsafeMutablePointer<UInt64>) -> Void) {
        var va = start
        while va < end {
            let block = emptyBlock(va)
            if block != 0 { va = (va & ~(block - 1)) &+ block; continue }
            let slot = leafSlot(va, create: false)!
            if slot.pointee & PTE.mapped != 0 { body(va, slot) }
            va += 4096
        }
    }

    // MARK: Mappings

    static func pageAlignUp(_ v: UInt64) -> UInt64 { (v &+ 4095) & ~4095 }

    static func validRange(_ start: UInt64, _ length: UInt64) -> Bool {
        start & 4095 == 0 && length > 0 && start < userTop && length <= userTop - start
    }

    /// True if no page of [start, start+length) is mapped.
    func isFree(_ start: UInt64, _ length: UInt64) -> Bool {
        var free = true
        forEachMapped(start, start + length) { _, _ in free = false }
        return free
    }

    /// The highest free range of `length` bytes below `top`, or nil.
    func findFree(_ length: UInt64, below top: UInt64 = AddressSpace.mmapTop) -> UInt64? {
        var end = top, cur = top
        while cur > AddressSpace.mmapMin {
            if end - cur >= length { return end - length }
            let va = cur - 4096
            let block = emptyBlock(va)
            if block != 0 {
                cur = va & ~(block - 1)
            } else if leafSlot(va, create: false)!.pointee & PTE.mapped == 0 {
                cur = va
            } else {
                cur = va; end = va
            }
            if cur < AddressSpace.mmapMin { cur = AddressSpace.mmapMin }
        }
        return end - cur >= length ? end - length : nil
    }

    /// Maps [start, start+length) with `prot`; pages are allocated on first touch. The range must be free.
    func map(_ start: UInt64, _ length: UInt64, prot: UInt64) throws {
        var va = start
        while va < start + length {
            guard let slot = leafSlot(va, create: true) else { throw OutOfMemory() }
            slot.pointee = PTE.mapped | Prot.pteBits(prot)
            va += 4096
        }
        if managesHostProtection {
            let readable = Prot.pteBits(prot) & (PTE.r | PTE.x) != 0
            if mprotect(host(ram.base + start), Int(length), readable ? PROT_READ | PROT_WRITE : PROT_NONE) != 0 {
                giveUpHostProtection()
            }
        }
    }

    /// Unmaps [start, start+length), freeing its pages.
    func unmap(_ start: UInt64, _ length: UInt64) {
        forEachMapped(start, start + length) { _, slot in
            let pte = slot.pointee
            if PTE.ppn(pte) != 0 {
                if pte & PTE.shared != 0 { releaseSharedPage(PTE.ppn(pte) << 12) }
                freePage(PTE.ppn(pte) << 12)
            }
            slot.pointee = 0
        }
        clearNames(start, start + length)
        releaseFreedPages()
        if managesHostProtection && mprotect(host(ram.base + start), Int(length), PROT_NONE) != 0 {
            giveUpHostProtection()
        }
        epoch.pointee &+= 1
    }

    /// Changes the protection of mapped pages; false (ENOMEM) if some page in the range is not mapped.
    func protect(_ start: UInt64, _ length: UInt64, prot: UInt64) -> Bool {
        var va = start
        while va < start + length {
            guard let slot = leafSlot(va, create: false), slot.pointee & PTE.mapped != 0 else { return false }
            va += 4096
        }
        let bits = Prot.pteBits(prot)
        forEachMapped(start, start + length) { _, slot in
            var pte = slot.pointee & ~(PTE.rwx | PTE.v)
            pte |= bits
            if PTE.ppn(pte) != 0 && bits != 0 { pte |= PTE.v }
            slot.pointee = pte
        }
        applyHostProtection(start, start + length)
        epoch.pointee &+= 1
        return true
    }

    /// Moves the pages of [from, from+length) to `to` (a free range), keeping contents and protection.
    func move(from: UInt64, to: UInt64, length: UInt64) throws {
        if let n = name(at: from) {
            clearNames(from, from + length)
            setName(to, to + length, path: n.path, offset: n.offset)
        }
        // The destination is free: open it for the copies (applyHostProtection sets both ranges after).
        openHostAccess(to, length)
        var off: UInt64 = 0
        while off < length {
            if let src = leafSlot(from + off, create: false), src.pointee & PTE.mapped != 0 {
                guard let dst = leafSlot(to + off, create: true) else { throw OutOfMemory() }
                var pte = src.pointee
                // A private page moves to its new identity page when that is free (a copy of 4 KiB), so the
                // moved range keeps translated code's fast path; otherwise the page itself moves.
                let old = PTE.ppn(pte) << 12
                if old != 0, pte & PTE.shared == 0, old != ram.base + to + off,
                   let new = takeIdentityPages(to + off, count: 1) {
                    if managesHostProtection && hostProtection(from + off, pte) == PROT_NONE {
                        // A page the guest may not read: rivet may.
                        if mprotect(host(old), 4096, PROT_READ) != 0 { giveUpHostProtection() }
                    }
                    host(new).copyMemory(from: host(old), byteCount: 4096)
                    ram.noteWrite(new, length: 4096)
                    freePage(old)
                    pte = pte & ~(0xfff_ffff_ffff << 10) | (new >> 12) << 10
                } else if old != 0 && old - ram.base < AddressSpace.userTop && old != ram.base + to + off {
                    // The page stays at another address's identity page, where the rule cannot hold.
                    giveUpHostProtection()
                }
                dst.pointee = pte
                src.pointee = 0
            }
            off += 4096
        }
        releaseFreedPages()
        applyHostProtection(from, from + length)
        applyHostProtection(to, to + length)
        epoch.pointee &+= 1
    }

    /// Resolves a fault on `va`: allocates the page if it is mapped and the access is allowed.
    /// Returns false when the access must raise SIGSEGV.
    func resolveFault(_ va: UInt64, write: Bool, fetch: Bool) -> Bool {
        guard va < AddressSpace.userTop, let slot = leafSlot(va, create: false) else { return false }
        let pte = slot.pointee
        guard pte & PTE.mapped != 0 else { return false }
        if pte & PTE.shared != 0 && PTE.ppn(pte) == 0 { return false }  // beyond the end of the file
        if fetch ? pte & PTE.x == 0 : (write ? pte & PTE.w == 0 : pte & PTE.r == 0) { return false }
        if PTE.ppn(pte) == 0 {
            guard let pa = allocPage(for: va) else { return false }
            slot.pointee = pte | (pa >> 12) << 10 | PTE.u | PTE.a | PTE.d | PTE.v
        } else {
            slot.pointee = pte | PTE.u | PTE.a | PTE.d | PTE.v
        }
        return true  // also when another thread got there first: the retry succeeds
    }

    /// Whether a page is mapped at all (for mincore-like checks and SEGV_ACCERR vs SEGV_MAPERR).
    func isMapped(_ va: UInt64) -> Bool {
        guard va < AddressSpace.userTop, let slot = leafSlot(va, create: false) else { return false }
        return slot.pointee & PTE.mapped != 0
    }

    // MARK: Kernel access to guest memory

    /// Host pointer for the byte at `va` if the guest may access it (faulting the page in), else nil.
    /// `force` ignores protection (the loader writing read-only segments).
    func hostAddress(_ va: UInt64, write: Bool, force: Bool = false) -> UnsafeMutableRawPointer? {
        guard va < AddressSpace.userTop, let slot = leafSlot(va, create: false) else { return nil }
        var pte = slot.pointee
        guard pte & PTE.mapped != 0 else { return nil }
        if pte & PTE.shared != 0 && (PTE.ppn(pte) == 0 || (write && readOnlyShared.contains(Int32((PTE.ppn(pte) << 12 - ram.base) >> 12)))) {
            return nil  // beyond the end of the file, or a read-only file
        }
        if !force && (write ? pte & PTE.w == 0 : pte & PTE.r == 0) { return nil }
        if PTE.ppn(pte) == 0 {
            guard let pa = allocPage(for: va) else { return nil }
            pte |= (pa >> 12) << 10 | PTE.u | PTE.a | PTE.d
            if pte & PTE.rwx != 0 { pte |= PTE.v }
            slot.pointee = pte
        }
        let pa = PTE.ppn(pte) << 12 | (va & 4095)
        if write { ram.noteWrite(pa, length: 1) }
        return host(pa)
    }

    /// Host pieces of the guest range [va, va+length), or nil (EFAULT). Writes mark pages written.
    func pieces(_ va: UInt64, _ length: UInt64, write: Bool, force: Bool = false) -> [UnsafeMutableRawBufferPointer]? {
        guard length <= AddressSpace.userTop, va <= AddressSpace.userTop - length else { return nil }
        var out: [UnsafeMutableRawBufferPointer] = []
        var a = va
        let end = va + length
        while a < end {
            let n = min(end - a, 4096 - (a & 4095))
            guard let p = hostAddress(a, write: write, force: force) else { return nil }
            if write, let pa = physical(a) { ram.noteWrite(pa, length: n) }
            if let last = out.last, last.baseAddress! + last.count == p {
                out[out.count - 1] = UnsafeMutableRawBufferPointer(start: last.baseAddress, count: last.count + Int(n))
            } else {
                out.append(UnsafeMutableRawBufferPointer(start: p, count: Int(n)))
            }
            a += n
        }
        return out
    }

    func physical(_ va: UInt64) -> UInt64? {
        guard let slot = leafSlot(va, create: false), PTE.ppn(slot.pointee) != 0 else { return nil }
        return PTE.ppn(slot.pointee) << 12 | (va & 4095)
    }

    func read(_ va: UInt64, _ length: Int) -> [UInt8]? {
        guard length >= 0, let ps = pieces(va, UInt64(length), write: false) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(length)
        for p in ps { out.append(contentsOf: UnsafeRawBufferPointer(p)) }
        return out
    }

    @discardableResult
    func write(_ va: UInt64, _ bytes: UnsafeRawBufferPointer, force: Bool = false) -> Bool {
        guard let ps = pieces(va, UInt64(bytes.count), write: true, force: force) else { return false }
        var off = 0
        for p in ps {
            p.baseAddress!.copyMemory(from: bytes.baseAddress! + off, byteCount: p.count)
            off += p.count
        }
        return true
    }

    @discardableResult
    func write(_ va: UInt64, _ bytes: [UInt8], force: Bool = false) -> Bool {
        bytes.withUnsafeBytes { write(va, $0, force: force) }
    }

    func read64(_ va: UInt64) -> UInt64? {
        guard let b = read(va, 8) else { return nil }
        return b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }
    func read32(_ va: UInt64) -> UInt32? {
        guard let b = read(va, 4) else { return nil }
        return b.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }
    @discardableResult func write64(_ va: UInt64, _ v: UInt64) -> Bool {
        withUnsafeBytes(of: v) { write(va, $0) }
    }
    @discardableResult func write32(_ va: UInt64, _ v: UInt32) -> Bool {
        withUnsafeBytes(of: v) { write(va, $0) }
    }

    /// A NUL-terminated string of at most `max` bytes, or nil (EFAULT or too long).
    func readString(_ va: UInt64, max: Int = 4096) -> [UInt8]? {
        var out: [UInt8] = []
        var a = va
        while out.count < max {
            guard let p = hostAddress(a, write: false) else { return nil }
            let n = Int(4096 - (a & 4095))
            let chunk = UnsafeRawBufferPointer(start: p, count: n)
            if let z = chunk.firstIndex(of: 0) {
                out.append(contentsOf: chunk[0..<z])
                return out.count <= max ? out : nil
            }
            out.append(contentsOf: chunk)
            a += UInt64(n)
        }
        return nil
    }
}
