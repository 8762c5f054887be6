#if canImport(Glibc)
import Glibc
#endif

/// MAP_SHARED mappings: the host file (or shared anonymous memory) is mapped with the host's MAP_SHARED
/// *into the guest's physical pool*, at pool pages the guest's page tables then point at. Guest stores go
/// straight into the host page cache, so read/pread of the file, other mappings and other processes see them
/// at once, msync is the host's msync, and forked children share the pages (the host fork keeps MAP_SHARED).
/// Unmapping puts private anonymous memory back under the pool pages before they are reused.
extension AddressSpace {
    struct Region { var start: UInt64; var end: UInt64; var prot: UInt64; var shared: Bool }

    /// Shared mappings up to this many pages use single free pages (see mapShared).
    static let smallSharedPages = 16

    /// Contiguous pool pages for the user range at `va` (host mappings need a contiguous host range): its
    /// identity pages if all are free, else never-used overflow pages.
    func allocContiguous(_ pages: Int, for va: UInt64) -> UInt64? {
        guard pages > 0, pages <= pageLimit - pagesInUse else { return nil }
        if let pa = takeIdentityPages(va, count: pages) { return pa }
        guard bumpPage + pages <= ram.pageCount else { return nil }
        defer { bumpPage += pages; pagesInUse += pages }
        return ram.base + UInt64(bumpPage) << 12
    }

    /// Maps [start, start+length) shared: `fd` at `offset` (nil: shared anonymous memory). Pages past the end
    /// of the file get no pool page and raise SIGBUS when touched, as on Linux. The range must be free.
    func mapShared(_ start: UInt64, _ length: UInt64, prot: UInt64, fd: Int32?, offset: Int64, fileSize: Int64,
                   hostWritable: Bool) throws {
        var backed = length
        if fd != nil {
            let avail = max(0, fileSize - offset)
            backed = min(length, AddressSpace.pageAlignUp(UInt64(avail)))
        }
        // Pool pages for the backed part: small mappings take single pages (the free list, so repeated
        // map/unmap reuses them) with one host mmap each; larger ones one contiguous run and one host mmap
        // (fewer host mappings).
        let pages = Int(backed >> 12)
        var pool: [UInt64] = []
        let hostProt = PROT_READ | (hostWritable ? PROT_WRITE : 0)
        let flags = MAP_SHARED | MAP_FIXED | (fd == nil ? MAP_ANONYMOUS : 0)
        func undo() {
            for p in pool { restorePrivate(p, 4096); readOnlyShared.remove(Int32((p - ram.base) >> 12)); freePage(p) }
            releaseFreedPages()
            applyHostProtection(start, start + length)
        }
        if pages > 0 && pages <= AddressSpace.smallSharedPages {
            for k in 0..<pages {
                guard let p = allocPage(for: start + UInt64(k) << 12) else { undo(); throw OutOfMemory() }
                pool.append(p)
                guard mmap(host(p), 4096, hostProt, flags, fd ?? -1, off_t(offset + Int64(k) * 4096)) != MAP_FAILED else {
                    undo(); throw OutOfMemory()
                }
            }
        } else if pages > 0 {
            guard let base = allocContiguous(pages, for: start) else { throw OutOfMemory() }
            pool = (0..<pages).map { base + UInt64($0) << 12 }
            guard mmap(host(base), Int(backed), hostProt, flags, fd ?? -1, off_t(offset)) != MAP_FAILED else {
                undo(); throw OutOfMemory()
            }
        }
        if !hostWritable {
            for p in pool { readOnlyShared.insert(Int32((p - ram.base) >> 12)) }
        }
        let bits = Prot.pteBits(prot)
        var off: UInt64 = 0
        while off < length {
            guard let slot = leafSlot(start + off, create: true) else { throw OutOfMemory() }
            if off < backed {
                var pte = (pool[Int(off >> 12)] >> 12) << 10 | PTE.mapped | PTE.shared | bits | PTE.u | PTE.a | PTE.d
                if bits != 0 { pte |= PTE.v }
                slot.pointee = pte
            } else {
                slot.pointee = PTE.mapped | PTE.shared | bits
            }
            off += 4096
        }
        applyHostProtection(start, start + length)
    }

    /// Puts private anonymous memory back under pool pages that held a host shared mapping.
    func restorePrivate(_ pa: UInt64, _ length: Int) {
        _ = mmap(host(pa), length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0)
    }

    func releaseSharedPage(_ pa: UInt64) {
        restorePrivate(pa, 4096)
        readOnlyShared.remove(Int32((pa - ram.base) >> 12))
    }

    /// Whether giving write access to [start, start+length) would write a file opened read-only (EACCES).
    func writeForbidden(_ start: UInt64, _ length: UInt64) -> Bool {
        var forbidden = false
        forEachMapped(start, start + length) { _, slot in
            let pte = slot.pointee
            if pte & PTE.shared != 0 && PTE.ppn(pte) != 0 && readOnlyShared.contains(Int32((PTE.ppn(pte) << 12 - ram.base) >> 12)) {
                forbidden = true
            }
        }
        return forbidden
    }

    /// A shared page past the end of its file (a touch raises SIGBUS).
    func isBeyondEOF(_ va: UInt64) -> Bool {
        guard va < AddressSpace.userTop, let slot = leafSlot(va, create: false) else { return false }
        let pte = slot.pointee
        return pte & PTE.mapped != 0 && pte & PTE.shared != 0 && PTE.ppn(pte) == 0
    }

    /// msync: the host's msync on the shared pages of the range; ENOMEM if part of it is not mapped.
    func sync(_ start: UInt64, _ length: UInt64, flags: Int32) -> Int64 {
        var va = start
        while va < start + length {
            guard isMapped(va) else { return -Int64(ENOMEM) }
            va += 4096
        }
        var result: Int64 = 0
        forEachMapped(start, start + length) { _, slot in
            let pte = slot.pointee
            guard pte & PTE.shared != 0, PTE.ppn(pte) != 0 else { return }
            if msync(host(PTE.ppn(pte) << 12), 4096, flags) != 0 { result = -Int64(errno) }
        }
        return result
    }

    // MARK: Names (for /proc/self/maps)

    /// Records that [start, end) maps `path` from file offset `offset` (replacing older names there).
    func setName(_ start: UInt64, _ end: UInt64, path: String, offset: UInt64) {
        clearNames(start, end)
        names[start] = (end, path, offset)
    }

    /// Forgets names in [start, end), keeping the parts of named ranges outside it.
    func clearNames(_ start: UInt64, _ end: UInt64) {
        for (s, n) in names where s < end && n.end > start {
            names.removeValue(forKey: s)
            if s < start { names[s] = (start, n.path, n.offset) }
            if n.end > end { names[end] = (n.end, n.path, n.offset &+ (end - s)) }
        }
    }

    /// The file mapped at `va` and the file offset of `va`.
    func name(at va: UInt64) -> (path: String, offset: UInt64)? {
        for (s, n) in names where s <= va && va < n.end { return (n.path, n.offset &+ (va - s)) }
        return nil
    }

    /// The mappings, merged where neighbouring pages agree (for /proc/self/maps).
    func regions() -> [Region] {
        var out: [Region] = []
        var boundaries = Set<UInt64>()
        for (s, n) in names { boundaries.insert(s); boundaries.insert(n.end) }
        forEachMapped(0, AddressSpace.userTop) { va, slot in
            let p = slot.pointee
            let prot = (p & PTE.r != 0 ? Prot.read : 0) | (p & PTE.w != 0 ? Prot.write : 0) | (p & PTE.x != 0 ? Prot.exec : 0)
            let shared = p & PTE.shared != 0
            if var last = out.last, last.end == va, last.prot == prot, last.shared == shared, !boundaries.contains(va) {
                last.end = va + 4096
                out[out.count - 1] = last
            } else {
                out.append(Region(start: va, end: va + 4096, prot: prot, shared: shared))
            }
        }
        return out
    }
}
