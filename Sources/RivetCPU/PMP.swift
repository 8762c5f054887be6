/// Physical memory protection (privileged spec, section 3.7): 16 entries as on QEMU's `virt` (pmpaddr16-63
/// and pmpcfg4-14 read as zero), granularity 4 bytes, OFF/TOR/NA4/NAPOT, lock bits.
///
/// The registers are decoded into a short list of active rules whenever one is written. The hot path never
/// looks at them: a TLB entry is filled only for a 4 KiB page that one rule (or no rule) decides entirely
/// with the permission the access needs, so a TLB hit has already passed PMP. Every PMP write flushes the
/// TLB. Accesses to other pages take the slow path each time and are checked byte-exactly.
struct PMPRule {
    /// Physical byte range [low, high).
    var low: UInt64
    var high: UInt64
    /// R = 1, W = 2, X = 4, as in pmpcfg.
    var permissions: UInt8
    var locked: Bool
}

public enum PMP {
    public static let entryCount = 16
    static let read: UInt8 = 1, write: UInt8 = 2, execute: UInt8 = 4
    static let all: UInt8 = 7
    static let lockBit: UInt8 = 0x80
    /// pmpaddr holds physical address bits 55:2.
    static let addressMask: UInt64 = (1 << 54) - 1
    /// Slots of the per-page decision cache (direct-mapped by page number).
    static let pageCacheSlots = 64
    /// Cached value for a page that rules split.
    static let split: UInt8 = 0xff

    static func permission(_ access: AccessType) -> UInt8 {
        switch access {
        case .read: return read
        case .write: return write
        case .fetch: return execute
        }
    }

    /// The access-fault cause for an access type.
    static func accessFault(_ access: AccessType) -> UInt64 {
        switch access {
        case .fetch: return 1
        case .read: return 5
        case .write: return 7
        }
    }
}

extension Hart {
    /// The configuration byte of entry `i` (0..<16).
    @inline(__always) func pmpConfigByte(_ i: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: pmpcfg[i / 8] >> UInt64(8 * (i % 8)))
    }

    /// pmpcfgN (N even, 0-14): entries whose lock bit is set keep their byte; reserved bits (5-6) read as
    /// zero; W without R is reserved and is stored as neither.
    func writePMPConfig(register n: Int, _ value: UInt64) {
        guard n < PMP.entryCount / 8 else { return }  // pmpcfg4-14: no entries behind them
        var result: UInt64 = 0
        for b in 0..<8 {
            let entry = n * 8 + b
            let old = pmpConfigByte(entry)
            var byte = UInt8(truncatingIfNeeded: value >> UInt64(8 * b))
            if old & PMP.lockBit != 0 {
                byte = old
            } else {
                byte &= 0x9f
                if byte & PMP.read == 0 { byte &= ~PMP.write }
            }
            result |= UInt64(byte) << UInt64(8 * b)
        }
        pmpcfg[n] = result
        pmpChanged()
    }

    /// pmpaddrN: ignored when entry N is locked, or when entry N+1 is a locked TOR entry (its bottom).
    func writePMPAddress(_ i: Int, _ value: UInt64) {
        guard i < PMP.entryCount else { return }
        if pmpConfigByte(i) & PMP.lockBit != 0 { return }
        if i + 1 < PMP.entryCount {
            let next = pmpConfigByte(i + 1)
            if next & PMP.lockBit != 0 && (next >> 3) & 3 == 1 { return }
        }
        pmpaddr[i] = value & PMP.addressMask
        pmpChanged()
    }

    /// Rebuilds the rule list from the registers and drops every cached translation.
    func pmpChanged() {
        var count = 0
        for i in 0..<PMP.entryCount {
            let cfg = pmpConfigByte(i)
            let address = pmpaddr[i]
            var low: UInt64, high: UInt64
            switch (cfg >> 3) & 3 {
            case 0: continue  // OFF
            case 1:  // TOR: pmpaddr[i-1] <= a >> 2 < pmpaddr[i]
                low = i == 0 ? 0 : pmpaddr[i - 1] << 2
                high = address << 2
                if low >= high { low = 0; high = 0 }  // matches nothing, but keeps its place
            case 2:  // NA4
                low = address << 2
                high = low + 4
            default:  // NAPOT: trailing ones give the size
                let ones = UInt64((~address).trailingZeroBitCount)
                if ones >= 54 {  // the whole 56-bit physical space (and beyond: no address is larger)
                    low = 0; high = UInt64.max
                } else {
                    let size: UInt64 = 1 << (ones + 3)
                    low = (address << 2) & ~(size - 1)
                    high = low + size
                }
            }
            pmpRules[count] = PMPRule(low: low, high: high, permissions: cfg & PMP.all, locked: cfg & PMP.lockBit != 0)
            count += 1
        }
        pmpRuleCount = count
        findPMPOpenRange()
        clearPMPPageCache()
        flushTLB()
    }

    /// Finds the largest physical range where one rule decides every S/U access and grants R and W (with
    /// OpenSBI: all memory above the firmware), so page-table walks and data checks there cost two compares.
    func findPMPOpenRange() {
        var best: (low: UInt64, high: UInt64) = (0, 0)
        for i in 0..<pmpRuleCount where pmpRules[i].permissions & (PMP.read | PMP.write) == PMP.read | PMP.write {
            // This rule's range without the ranges of the rules before it: the addresses it decides.
            var pieces = [(low: pmpRules[i].low, high: pmpRules[i].high)]
            for j in 0..<i {
                let cut = pmpRules[j]
                var next: [(low: UInt64, high: UInt64)] = []
                for piece in pieces {
                    if cut.high <= piece.low || cut.low >= piece.high { next.append(piece); continue }
                    if cut.low > piece.low { next.append((piece.low, cut.low)) }
                    if cut.high < piece.high { next.append((cut.high, piece.high)) }
                }
                pieces = next
            }
            for piece in pieces where piece.high - piece.low > best.high - best.low { best = piece }
        }
        pmpOpenLow = best.low
        pmpOpenHigh = best.high
    }

    func clearPMPPageCache() {
        pmpPageCacheKeys.update(repeating: 0, count: PMP.pageCacheSlots)
    }

    /// `pmpPagePermissions` behind a small cache: page-table walks, atomics and TLB fills ask about the
    /// same few pages again and again.
    @inline(__always)
    func pmpCachedPagePermissions(_ page: UInt64, _ p: Privilege) -> UInt8? {
        let slot = Int(truncatingIfNeeded: (page >> 12) & UInt64(PMP.pageCacheSlots - 1))
        let key = page | UInt64(p.rawValue) | 4  // bit 2 marks a filled slot
        if pmpPageCacheKeys[slot] == key {
            let v = pmpPageCacheValues[slot]
            return v == PMP.split ? nil : v
        }
        let result = pmpPagePermissions(page, p)
        pmpPageCacheKeys[slot] = key
        pmpPageCacheValues[slot] = result ?? PMP.split
        return result
    }

    /// `pmpAllows` answered from the page's decision when one rule (or none) decides the whole page.
    @inline(__always)
    func pmpCheck(_ address: UInt64, size: UInt64, _ access: AccessType, _ p: Privilege) -> Bool {
        if p != .machine && access != .fetch && address >= pmpOpenLow && pmpOpenHigh >= size && address <= pmpOpenHigh - size {
            return true
        }
        let page = address & ~0xfff
        if (address &+ size &- 1) & ~0xfff == page, let permissions = pmpCachedPagePermissions(page, p) {
            return permissions & PMP.permission(access) != 0
        }
        return pmpAllows(address, size: size, access, p)
    }

    /// The permissions that apply to every byte of the 4 KiB physical page at `page` for privilege `p`,
    /// or nil when rules decide parts of the page differently (no TLB entry: check each access).
    func pmpPagePermissions(_ page: UInt64, _ p: Privilege) -> UInt8? {
        let end = page &+ 0x1000
        for i in 0..<pmpRuleCount {
            let r = pmpRules[i]
            if r.high <= page || r.low >= end { continue }  // no byte of the page
            if r.low > page || r.high < end { return nil }  // part of the page
            return p == .machine && !r.locked ? PMP.all : r.permissions
        }
        return p == .machine ? PMP.all : 0
    }

    /// Whether an access of `size` bytes at physical `address` passes PMP: the lowest-numbered rule that
    /// matches any byte decides, and must match all of them.
    func pmpAllows(_ address: UInt64, size: UInt64, _ access: AccessType, _ p: Privilege) -> Bool {
        if pmpRuleCount == 0 { return p == .machine }
        let end = address &+ size
        for i in 0..<pmpRuleCount {
            let r = pmpRules[i]
            if r.high <= address || r.low >= end { continue }
            if r.low > address || r.high < end { return false }
            if p == .machine && !r.locked { return true }
            return r.permissions & PMP.permission(access) != 0
        }
        return p == .machine
    }
}
