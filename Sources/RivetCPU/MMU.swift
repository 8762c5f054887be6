#if canImport(Glibc)
import Glibc
#endif
import RivetMemory

/// One software-TLB entry. `tag` is the virtual page address with the TLB generation in bits 3-11
/// (see `Hart.readGeneration`), or zero when empty (no key is zero: generations start at 8), so fresh
/// zero-filled storage is an empty TLB that costs no host memory until entries are filled. Bits 0-2 stay zero, so a misaligned access
/// never matches and takes the slow path.
/// For data sets `addend` turns a virtual address into a host address; for the fetch set, into a
/// guest-physical address.
struct TLBEntry {
    var tag: UInt64
    var addend: UInt64
}

enum TLB {
    static let bits = 12
    static let entries = 1 << bits
    /// read, write and fetch arrays of one privilege level
    static let setEntries = entries * 3
    static let empty = TLBEntry(tag: 0, addend: 0)
    static var storageBytes: Int { setEntries * 3 * MemoryLayout<TLBEntry>.stride }
    /// Generations step by 8 (bits 3-11), from 8 up to 0xff0, so no key equals the empty tag.
    static let firstGeneration: UInt64 = 8
    static let lastGeneration: UInt64 = 0xff0
}

/// Kinds of memory access, for permission checks and fault causes.
public enum AccessType { case read, write, fetch }

extension Hart {
    // MARK: TLB maintenance

    /// Drops every translation (satp write, sfence.vma, MXR change).
    /// Flushing is O(1): entries carry the generation they were filled in, and a flush moves to the next
    /// one. Only when the generations wrap is the storage cleared.
    public func flushTLB() {
        if readGeneration >= TLB.lastGeneration || writeGeneration >= TLB.lastGeneration {
            clearTLBStorage()
        } else {
            readGeneration &+= 8
            writeGeneration &+= 8
        }
        supervisorTLBHasUserPages = false
        tlbHoldsSuperpages = false
    }

    func clearTLBStorage() {
        // Dropping the pages empties every entry (they read back as zero) and returns them to the host.
        madvise(tlbStorage, TLB.storageBytes, MADV_DONTNEED)
        readGeneration = TLB.firstGeneration
        writeGeneration = TLB.firstGeneration
    }

    /// Drops writable entries (a page became a code page and must take the store slow path).
    func flushWritableEntries() {
        if writeGeneration >= TLB.lastGeneration { clearTLBStorage() } else { writeGeneration &+= 8 }
    }

    @inline(__always) static func setIndex(_ p: Privilege) -> Int { p == .machine ? 2 : Int(p.rawValue) }

    /// Privilege used for loads and stores (MPRV selects MPP's).
    var dataPrivilege: Privilege {
        if privilege == .machine && (csr.mstatus & MStatus.mprv) != 0 {
            return Privilege(rawValue: UInt8((csr.mstatus & MStatus.mppMask) >> MStatus.mppShift)) ?? .user
        }
        return privilege
    }

    /// Points the data and fetch TLBs at the sets for the current privilege.
    func updateTranslationMode() {
        dataTLB = tlbStorage + Hart.setIndex(dataPrivilege) * TLB.setEntries
        fetchTLB = tlbStorage + Hart.setIndex(privilege) * TLB.setEntries + 2 * TLB.entries
    }

    // MARK: Page-table walk

    /// Translates a virtual address for an access at privilege `p`. Returns the physical address, or nil
    /// with `pendingCause`/`pendingTval` set to the page fault. Sets A and D bits in the PTE as needed.
    func translate(_ va: UInt64, _ access: AccessType, privilege p: Privilege) -> (paddr: UInt64, pageMask: UInt64, user: Bool, writable: Bool)? {
        let mode = csr.satp >> 60
        if p == .machine || mode == 0 {
            return (va, 0xfff, false, true)
        }
        let levels: Int
        switch mode {
        case 8: levels = 3
        case 9: levels = 4
        default: levels = 5
        }
        let faultCause: UInt64 = access == .fetch ? 12 : (access == .read ? 13 : 15)
        // The address must be sign-extended from its top translated bit.
        let vaBits = 12 + 9 * levels
        let top = Int64(bitPattern: va) >> Int64(vaBits - 1)
        if top != 0 && top != -1 { return pageFault(faultCause, va) }

        var tableAddr = (csr.satp & 0xfff_ffff_ffff) << 12
        var level = levels - 1
        while true {
            let vpn = (va >> UInt64(12 + 9 * level)) & 0x1ff
            let pteAddr = tableAddr &+ vpn &* 8
            // Page-table reads are S-mode accesses for PMP; a failure is an access fault of the original kind.
            guard pteAddr >= ramBase, pteAddr - ramBase <= ramSize - 8,
                  pmpRuleCount == 0 || pmpCheck(pteAddr, size: 8, .read, .supervisor) else {
                pendingCause = PMP.accessFault(access); pendingTval = va; return nil
            }
            let ptePointer = ramHost + Int(pteAddr - ramBase)
            let pte = ptePointer.load(as: UInt64.self)
            let v = pte & 1, r = (pte >> 1) & 1, w = (pte >> 2) & 1, xb = (pte >> 3) & 1
            if v == 0 || (r == 0 && w == 1) || (pte >> 54) != 0 { return pageFault(faultCause, va) }  // reserved bits must be 0 (no Svpbmt/Svnapot)
            if r == 0 && xb == 0 {
                // Pointer to the next level.
                if level == 0 { return pageFault(faultCause, va) }
                if (pte & ((1 << 6) | (1 << 7) | (1 << 4))) != 0 { return pageFault(faultCause, va) }  // D, A, U must be 0 on non-leaf
                tableAddr = ((pte >> 10) & 0xfff_ffff_ffff) << 12
                level -= 1
                continue
            }
            // Leaf: permission checks.
            let user = (pte >> 4) & 1 == 1
            if p == .user && !user { return pageFault(faultCause, va) }
            if p == .supervisor && user {
                if access == .fetch || (csr.mstatus & MStatus.sum) == 0 { return pageFault(faultCause, va) }
            }
            switch access {
            case .fetch: if xb == 0 { return pageFault(faultCause, va) }
            case .read: if r == 0 && !(xb == 1 && (csr.mstatus & MStatus.mxr) != 0) { return pageFault(faultCause, va) }
            case .write: if w == 0 { return pageFault(faultCause, va) }
            }
            let ppn = (pte >> 10) & 0xfff_ffff_ffff
            // Superpage alignment.
            let lowMask: UInt64 = (1 << UInt64(9 * level)) - 1
            if level > 0 && (ppn & lowMask) != 0 { return pageFault(faultCause, va) }
            // Hardware A/D update.
            var newPTE = pte | (1 << 6)
            if access == .write { newPTE |= 1 << 7 }
            if newPTE != pte {
                guard pmpRuleCount == 0 || pmpCheck(pteAddr, size: 8, .write, .supervisor) else {
                    pendingCause = PMP.accessFault(access); pendingTval = va; return nil
                }
                ptePointer.storeBytes(of: newPTE, as: UInt64.self)
                ram.noteWrite(pteAddr, length: 8)
            }
            let pageMask: UInt64 = (1 << UInt64(12 + 9 * level)) - 1
            let paddr = ((ppn << 12) & ~pageMask) | (va & pageMask)
            // A writable TLB entry is only safe when D is already set.
            return (paddr, pageMask, user, w == 1 && (newPTE & (1 << 7)) != 0)
        }
    }

    @inline(__always)
    func pageFault(_ cause: UInt64, _ va: UInt64) -> (paddr: UInt64, pageMask: UInt64, user: Bool, writable: Bool)? {
        pendingCause = cause
        pendingTval = va
        return nil
    }

    /// sfence.vma: with an address, drop just that page's entries (unless superpages were cached, whose
    /// 4 KiB pieces sit at other indices); otherwise drop everything.
    func fenceTLB(address: UInt64?) {
        guard let va = address, !tlbHoldsSuperpages else { flushTLB(); return }
        let index = Int((va >> 12) & UInt64(TLB.entries - 1))
        for set in 0..<3 {
            for kind in 0..<3 { tlbStorage[set * TLB.setEntries + kind * TLB.entries + index] = TLB.empty }
        }
    }

    // MARK: Slow paths (TLB miss, MMIO, misaligned, faults)

    /// Fills the TLB for a RAM page if possible: only when PMP grants the access on the whole 4 KiB page
    /// (see PMP.swift). Returns false when PMP rules split the page.
    @inline(__always) @discardableResult
    func fillTLB(_ va: UInt64, paddr: UInt64, access: AccessType, writable: Bool, user: Bool, pageMask: UInt64) -> Bool {
        guard paddr >= ramBase, paddr - ramBase < ramSize else { return true }
        if debugArmed && access != .fetch && debug.unsafelyUnwrapped.watchesPage(va) { return true }
        let vpage = va & ~0xfff
        let ppage = paddr & ~0xfff
        let pmp: UInt8
        if pmpRuleCount == 0 {
            pmp = PMP.all  // the access was checked; with no rules only M-mode gets here
        } else {
            guard let p = pmpCachedPagePermissions(ppage, access == .fetch ? privilege : dataPrivilege) else { return false }
            pmp = p
        }
        if pmp & PMP.permission(access) == 0 { return true }
        if pageMask != 0xfff { tlbHoldsSuperpages = true }
        let index = Int((va >> 12) & UInt64(TLB.entries - 1))
        let host = UInt64(UInt(bitPattern: ramHost)) &+ (ppage &- ramBase)
        if access != .fetch, case let identity = userIdentityAddend, identity != 0, host &- vpage != identity {
            return true  // not cached: translated code assumes the identity addend (Hart.userIdentityAddend)
        }
        if user && privilege != .user && dataPrivilege == .supervisor { supervisorTLBHasUserPages = true }
        switch access {
        case .fetch:
            fetchTLB[index] = TLBEntry(tag: vpage | readGeneration, addend: ppage &- vpage)
        case .read:
            dataTLB[index] = TLBEntry(tag: vpage | readGeneration, addend: host &- vpage)
        case .write:
            let page = Int((ppage - ramBase) >> 12)
            // Writable pages are readable too (PMP cannot grant W without R).
            dataTLB[index] = TLBEntry(tag: vpage | readGeneration, addend: host &- vpage)
            // While dirty logging is on, only a page already marked dirty (by this store's noteWrite) may be
            // written through the fast path; a sync clears the marks and bumps codeEpoch.
            if writable && ram.codePages[page] == 0 && (!ram.dirtyLoggingCell.pointee || ram.dirtyPages[page] != 0) {
                dataTLB[TLB.entries + index] = TLBEntry(tag: vpage | writeGeneration, addend: host &- vpage)
            }
        }
        return true
    }

    /// Loads `size` bytes at virtual `va` through translation; handles MMIO and misalignment.
    /// Returns nil with a pending exception on fault.
    @inline(never)
    func loadSlow(_ va: UInt64, size: Int) -> UInt64? {
        if va & UInt64(size - 1) != 0 {
            // Misaligned: assemble from bytes (each byte translated; may fault on either page).
            var value: UInt64 = 0
            for i in 0..<size {
                guard let b = loadSlow(va &+ UInt64(i), size: 1) else { return nil }
                value |= b << UInt64(8 * i)
            }
            return value
        }
        let p = dataPrivilege
        guard let t = translate(va, .read, privilege: p) else { return nil }
        if (pmpRuleCount != 0 || p != .machine) && !pmpCheck(t.paddr, size: UInt64(size), .read, p) {
            pendingCause = 5; pendingTval = va; return nil
        }
        if debugArmed { debug.unsafelyUnwrapped.check(va, size: size, write: false) }
        if t.paddr >= ramBase && t.paddr - ramBase < ramSize {
            fillTLB(va, paddr: t.paddr, access: .read, writable: t.writable, user: t.user, pageMask: t.pageMask)
            let host = ramHost + Int(t.paddr - ramBase)
            switch size {
            case 1: return UInt64(host.load(as: UInt8.self))
            case 2: return UInt64(host.load(as: UInt16.self))
            case 4: return UInt64(host.load(as: UInt32.self))
            default: return host.load(as: UInt64.self)
            }
        }
        guard let v = bus.mmioRead(t.paddr, size: size) else {
            pendingCause = 5; pendingTval = va; return nil
        }
        return v
    }

    /// Stores through translation; handles MMIO, misalignment and code-page invalidation.
    @inline(never)
    func storeSlow(_ va: UInt64, size: Int, value: UInt64) -> Bool {
        if va & UInt64(size - 1) != 0 {
            // Check every byte is writable before writing any, so a fault leaves memory unchanged.
            let p = dataPrivilege
            for i in 0..<size {
                let a = va &+ UInt64(i)
                guard let t = translate(a, .write, privilege: p) else { return false }
                if (pmpRuleCount != 0 || p != .machine) && !pmpCheck(t.paddr, size: 1, .write, p) {
                    pendingCause = 7; pendingTval = a; return false
                }
            }
            for i in 0..<size {
                guard storeSlow(va &+ UInt64(i), size: 1, value: value >> UInt64(8 * i)) else { return false }
            }
            return true
        }
        let p = dataPrivilege
        guard let t = translate(va, .write, privilege: p) else { return false }
        if (pmpRuleCount != 0 || p != .machine) && !pmpCheck(t.paddr, size: UInt64(size), .write, p) {
            pendingCause = 7; pendingTval = va; return false
        }
        if debugArmed { debug.unsafelyUnwrapped.check(va, size: size, write: true) }
        if t.paddr >= ramBase && t.paddr - ramBase < ramSize {
            let host = ramHost + Int(t.paddr - ramBase)
            switch size {
            case 1: host.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
            case 2: host.storeBytes(of: UInt16(truncatingIfNeeded: value), as: UInt16.self)
            case 4: host.storeBytes(of: UInt32(truncatingIfNeeded: value), as: UInt32.self)
            default: host.storeBytes(of: value, as: UInt64.self)
            }
            ram.noteWrite(t.paddr, length: UInt64(size))
            fillTLB(va, paddr: t.paddr, access: .write, writable: t.writable, user: t.user, pageMask: t.pageMask)
            return true
        }
        guard bus.mmioWrite(t.paddr, size: size, value: value) else {
            pendingCause = 7; pendingTval = va; return false
        }
        return true
    }

    /// Physical address of an instruction fetch at `va`, or nil with a pending fault.
    @inline(__always)
    func fetchAddress(_ va: UInt64) -> UInt64? {
        let e = fetchTLB[Int((va >> 12) & UInt64(TLB.entries - 1))]
        if e.tag == (va & ~0xfff) | readGeneration { return va &+ e.addend }
        return fetchAddressSlow(va)
    }

    @inline(never)
    func fetchAddressSlow(_ va: UInt64) -> UInt64? {
        guard let t = translate(va, .fetch, privilege: privilege) else { return nil }
        guard t.paddr >= ramBase, t.paddr - ramBase < ramSize,
              (pmpRuleCount == 0 && privilege == .machine) || pmpCheck(t.paddr, size: 2, .fetch, privilege) else {
            pendingCause = 1; pendingTval = va; return nil
        }
        if !fillTLB(va, paddr: t.paddr, access: .fetch, writable: false, user: t.user, pageMask: t.pageMask) {
            fetchNeedsExactChecks = true
        }
        return t.paddr
    }

    /// Translated physical address for an atomic access (which must be naturally aligned RAM).
    func atomicAddress(_ va: UInt64, size: Int, isLoadReserved: Bool) -> UInt64? {
        if va & UInt64(size - 1) != 0 {
            pendingCause = isLoadReserved ? 4 : 6; pendingTval = va; return nil
        }
        let p = dataPrivilege
        guard let t = translate(va, isLoadReserved ? .read : .write, privilege: p) else { return nil }
        if debugArmed { debug.unsafelyUnwrapped.check(va, size: size, write: !isLoadReserved) }
        // PMP cannot grant W without R, so the write check covers an AMO's read as well.
        guard t.paddr >= ramBase, t.paddr - ramBase <= ramSize - UInt64(size),
              (pmpRuleCount == 0 && p == .machine) || pmpCheck(t.paddr, size: UInt64(size), isLoadReserved ? .read : .write, p) else {
            pendingCause = isLoadReserved ? 5 : 7; pendingTval = va; return nil
        }
        return t.paddr
    }

    // MARK: Public helpers (debugger, loaders)

    /// Reads guest virtual memory as the hart would at its current privilege, without side effects on faults.
    public func debugRead(_ va: UInt64, size: Int) -> UInt64? {
        let savedCause = pendingCause, savedTval = pendingTval
        let savedArmed = debugArmed
        debugArmed = false
        defer { pendingCause = savedCause; pendingTval = savedTval; debugArmed = savedArmed }
        return loadSlow(va, size: size)
    }
}
