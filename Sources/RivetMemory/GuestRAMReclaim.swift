#if canImport(Glibc)
import Glibc
#endif

// Giving guest RAM back to the host and letting the host merge it (docs/density.md).
extension GuestRAM {
    /// Why marking RAM mergeable failed (nil when it worked).
    public enum MergeResult: Equatable { case applied, unsupported(String) }

    /// Marks all of RAM mergeable for the host kernel's same-page merging (KSM, MADV_MERGEABLE), or clears
    /// the mark. Remembered, so mappings replaced later (restore, reset, discard) get it again.
    @discardableResult
    public func setMergeable(_ on: Bool) -> MergeResult {
        mergeable = on
        return applyMergeable(host, Int(size))
    }

    @discardableResult
    func applyMergeable(_ at: UnsafeMutableRawPointer, _ length: Int) -> MergeResult {
        guard mergeable else { return .applied }
        if madvise(at, length, MADV_MERGEABLE) != 0 {
            return .unsupported(String(cString: strerror(errno)))
        }
        return .applied
    }

    /// Gives the pages wholly inside [address, address+length) back to the host; they read as zero
    /// afterwards, whatever backed them. Partial pages at either end are left alone. Returns the bytes
    /// given back (0 when the range is not RAM). Run-loop thread only (harts are not running).
    ///
    /// Anonymous RAM: MADV_DONTNEED (the next touch maps a fresh zero page). RAM mapped from a snapshot
    /// file (MAP_PRIVATE): MADV_DONTNEED would bring back the snapshot's bytes, so the range is replaced
    /// by fresh anonymous memory at the same address instead (host pointers in TLBs stay valid).
    /// Either way the pages count as written: decoded code for them is dropped and the dirty log sees them.
    @discardableResult
    public func discard(_ address: UInt64, length: UInt64) -> UInt64 {
        guard length > 0, contains(address, length: length) else { return 0 }
        let first = (address - base + GuestRAM.pageSize - 1) & ~(GuestRAM.pageSize - 1)
        let end = (address - base + length) & ~(GuestRAM.pageSize - 1)
        guard end > first else { return 0 }
        let at = host + Int(first)
        let bytes = Int(end - first)
        if hasFileMappings {
            let p = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0)
            guard p == at else { return 0 }
            applyMergeable(at, bytes)
        } else if madvise(at, bytes, MADV_DONTNEED) != 0 {
            return 0
        }
        noteWrite(base + first, length: end - first)
        discardedBytes &+= end - first
        return end - first
    }
}
