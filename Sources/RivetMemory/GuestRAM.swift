#if canImport(Glibc)
import Glibc
#endif
import Atomics
import RivetSnapshot

/// Zero-filled anonymous memory (MAP_NORESERVE) that becomes resident only where it is touched, for the large
/// sparse tables beside guest memory; nil if the host refuses the mapping. Release it with munmap.
public func mapZeroedMemory(_ bytes: Int) -> UnsafeMutableRawPointer? {
    let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    guard let p, p != MAP_FAILED else { return nil }
    return p
}

/// Something running guest code that must come back to its run loop soon (a hart): see `addAttentionTarget`.
public protocol AttentionTarget: AnyObject {
    /// Called from any thread.
    func requestAttention()
}

/// Something that caches decoded instructions and must forget a page when its bytes change.
public protocol CodeInvalidationListener: AnyObject {
    /// Called when a page marked as holding code is written (by a hart's slow store path or by DMA).
    func codePageWritten(_ physicalPage: UInt64)
}

/// Guest RAM: one anonymous host mapping at a fixed guest-physical base.
///
/// Harts reach RAM through their software TLB (host pointers). Everyone else — device DMA, loaders,
/// snapshots — goes through the checked accessors here, which never touch memory outside the mapping.
/// A per-page byte map records pages that hold decoded code so that writes can invalidate them.
public final class GuestRAM {
    public static let pageShift: UInt64 = 12
    public static let pageSize: UInt64 = 1 << pageShift

    public let base: UInt64
    public let size: UInt64
    public let host: UnsafeMutableRawPointer
    public let pageCount: Int
    /// Per 4 KiB page: nonzero while decoded blocks exist for it. Harts must not write such pages through
    /// a fast TLB entry; their store slow path calls `noteWrite`.
    public let codePages: UnsafeMutablePointer<UInt8>
    /// Per page: set on every write that went through the slow path or DMA (used by migration/snapshots).
    public let dirtyPages: UnsafeMutablePointer<UInt8>
    /// Decoded-code caches to tell about writes to code pages (one per hart in user mode, one per machine).
    @exclusivity(unchecked) var codeListeners: [WeakListener] = []
    /// Bumped whenever a page newly holds decoded code: every hart then drops its writable TLB entries, so
    /// stores to code pages take the slow path (which invalidates).
    public var codeEpoch: UInt64 {
        get { codeEpochCell.pointee }
        set { codeEpochCell.pointee = newValue }
    }
    /// True while dirty pages are logged exactly (live migration): a hart gets a writable TLB entry only
    /// for a page already marked in `dirtyPages`, so the first write after each sync takes the slow path.
    public var dirtyLogging: Bool { dirtyLoggingCell.pointee }
    /// `codeEpoch` and `dirtyLogging` live behind pointers: harts (another module) read them per block
    /// and per slow store, and a read of a class's stored `var` from another module pays a dynamic
    /// exclusivity check that `@exclusivity(unchecked)` does not remove across modules.
    public let codeEpochCell: UnsafeMutablePointer<UInt64>
    public let dirtyLoggingCell: UnsafeMutablePointer<Bool>

    final class WeakListener {
        weak var listener: CodeInvalidationListener?
        init(_ l: CodeInvalidationListener) { listener = l }
    }

    /// Guards `codeListeners`: in user mode each guest thread's hart adds its cache from its own host thread.
    let listenerLock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()

    final class WeakAttentionTarget {
        weak var target: AttentionTarget?
        init(_ t: AttentionTarget) { target = t }
    }
    /// Harts told when a page becomes a code page (guarded by `listenerLock`).
    private var attentionTargets: [WeakAttentionTarget] = []

    /// `t` (a hart) is asked to return to its run loop whenever the code epoch moves: translated code runs
    /// chains of blocks without comparing the epoch, and a hart must drop its writable TLB entries for a page
    /// that just became a code page before it stores to it again.
    public func addAttentionTarget(_ t: AttentionTarget) {
        pthread_mutex_lock(listenerLock)
        attentionTargets.removeAll { $0.target == nil }
        attentionTargets.append(WeakAttentionTarget(t))
        pthread_mutex_unlock(listenerLock)
    }

    public func addCodeListener(_ l: CodeInvalidationListener) {
        pthread_mutex_lock(listenerLock)
        codeListeners.removeAll { $0.listener == nil }
        codeListeners.append(WeakListener(l))
        pthread_mutex_unlock(listenerLock)
    }

    /// Rare (a write to a page holding decoded code), so taking a lock here costs nothing that matters.
    func notifyCodeWritten(_ page: UInt64) {
        pthread_mutex_lock(listenerLock)
        let listeners = codeListeners
        pthread_mutex_unlock(listenerLock)
        for w in listeners { w.listener?.codePageWritten(page) }
    }

    /// Records that `page` (a page index) now holds decoded code.
    @inline(__always)
    public func markCodePage(_ page: Int) {
        if codePages[page] == 0 {
            codePages[page] = 1
            bumpCodeEpoch()
        }
    }

    /// An atomic increment: with hart threads two harts may mark pages at once, and a lost increment
    /// would leave some hart's writable TLB entry for a code page in place.
    @inline(never)
    public func bumpCodeEpoch() {
        _ = UnsafeAtomic<UInt64>(at: UnsafeMutableRawPointer(codeEpochCell).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
            .loadThenWrappingIncrement(ordering: .acquiringAndReleasing)
        pthread_mutex_lock(listenerLock)
        for w in attentionTargets { w.target?.requestAttention() }
        pthread_mutex_unlock(listenerLock)
    }

    public init(base: UInt64, size: UInt64) throws {
        guard size > 0, size % GuestRAM.pageSize == 0, size <= (1 << 40) else {
            throw SnapshotError("RAM size \(size) must be a nonzero multiple of 4 KiB, at most 1 TiB")
        }
        let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { throw SnapshotError("cannot map \(size) bytes of guest RAM") }
        self.base = base
        self.size = size
        self.host = p
        self.pageCount = Int(size >> GuestRAM.pageShift)
        // Per-page bytes from the host's zero pages: they cost memory only where touched, which matters for
        // rivet user's pool (hundreds of GiB of address space, mostly never used).
        guard let code = mapZeroedMemory(pageCount), let dirty = mapZeroedMemory(pageCount) else {
            munmap(p, Int(size))
            throw SnapshotError("cannot map page tables for \(size) bytes of guest RAM")
        }
        self.codePages = code.assumingMemoryBound(to: UInt8.self)
        self.dirtyPages = dirty.assumingMemoryBound(to: UInt8.self)
        codeEpochCell = .allocate(capacity: 1)
        codeEpochCell.initialize(to: 0)
        dirtyLoggingCell = .allocate(capacity: 1)
        dirtyLoggingCell.initialize(to: false)
    }

    deinit {
        munmap(host, Int(size))
        munmap(codePages, pageCount)
        munmap(dirtyPages, pageCount)
        codeEpochCell.deallocate()
        dirtyLoggingCell.deallocate()
        pthread_mutex_destroy(listenerLock)
        listenerLock.deallocate()
    }

    /// True when [address, address+length) lies inside RAM (overflow-safe).
    @inline(__always)
    public func contains(_ address: UInt64, length: UInt64) -> Bool {
        address >= base && length <= size && address - base <= size - length
    }

    /// Host pointer for a checked guest range, or nil.
    @inline(__always)
    public func pointer(_ address: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
        contains(address, length: length) ? host + Int(address - base) : nil
    }

    /// Marks pages in a range as written: dirty, and drops decoded code for them.
    public func noteWrite(_ address: UInt64, length: UInt64) {
        guard length > 0, contains(address, length: length) else { return }
        let first = Int((address - base) >> GuestRAM.pageShift)
        let last = Int((address - base + length - 1) >> GuestRAM.pageShift)
        for page in first...last {
            dirtyPages[page] = 1
            if codePages[page] != 0 {
                codePages[page] = 0
                notifyCodeWritten(base + UInt64(page) << GuestRAM.pageShift)
            }
        }
    }

    // MARK: Dirty-page log (live migration). Run-loop thread only, between passes.

    /// Starts exact logging: clears the log and makes every hart drop its writable TLB entries (the same
    /// epoch code pages use), so each page's next write is seen by the store slow path.
    public func startDirtyLog() {
        dirtyPages.update(repeating: 0, count: pageCount)
        dirtyLoggingCell.pointee = true
        bumpCodeEpoch()
    }

    public func stopDirtyLog() { dirtyLoggingCell.pointee = false }

    /// Page indices written since the last sync (or start), ascending; clears them and drops writable TLB
    /// entries so later writes are logged again.
    public func syncDirtyLog() -> [Int] {
        var pages: [Int] = []
        let words = UnsafeRawPointer(dirtyPages)
        var i = 0
        // Eight pages at a time: the log is mostly zero.
        while i + 8 <= pageCount {
            if words.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 {
                for p in i..<i + 8 where dirtyPages[p] != 0 { pages.append(p); dirtyPages[p] = 0 }
            }
            i += 8
        }
        while i < pageCount { if dirtyPages[i] != 0 { pages.append(i); dirtyPages[i] = 0 }; i += 1 }
        bumpCodeEpoch()
        return pages
    }

    // MARK: Checked access for devices (DMA) and loaders.

    /// Copies guest memory into `buffer`; false if the range is not entirely RAM.
    public func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard let p = pointer(address, length: UInt64(buffer.count)) else { return false }
        if buffer.count > 0 { buffer.baseAddress!.copyMemory(from: p, byteCount: buffer.count) }
        return true
    }

    /// Copies `buffer` into guest memory; false if the range is not entirely RAM.
    public func write(_ address: UInt64, from buffer: UnsafeRawBufferPointer) -> Bool {
        guard let p = pointer(address, length: UInt64(buffer.count)) else { return false }
        if buffer.count > 0 { p.copyMemory(from: buffer.baseAddress!, byteCount: buffer.count) }
        noteWrite(address, length: UInt64(buffer.count))
        return true
    }

    public func write(_ address: UInt64, bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { write(address, from: $0) }
    }

    public func load16(_ a: UInt64) -> UInt16? { pointer(a, length: 2).map { $0.loadUnaligned(as: UInt16.self) } }
    public func load32(_ a: UInt64) -> UInt32? { pointer(a, length: 4).map { $0.loadUnaligned(as: UInt32.self) } }
    public func load64(_ a: UInt64) -> UInt64? { pointer(a, length: 8).map { $0.loadUnaligned(as: UInt64.self) } }
    @discardableResult public func store16(_ a: UInt64, _ v: UInt16) -> Bool {
        guard let p = pointer(a, length: 2) else { return false }
        p.storeBytes(of: v, as: UInt16.self); noteWrite(a, length: 2); return true
    }
    @discardableResult public func store32(_ a: UInt64, _ v: UInt32) -> Bool {
        guard let p = pointer(a, length: 4) else { return false }
        p.storeBytes(of: v, as: UInt32.self); noteWrite(a, length: 4); return true
    }
    @discardableResult public func store64(_ a: UInt64, _ v: UInt64) -> Bool {
        guard let p = pointer(a, length: 8) else { return false }
        p.storeBytes(of: v, as: UInt64.self); noteWrite(a, length: 8); return true
    }

    /// True once pages were mapped from a snapshot file (MADV_DONTNEED would bring the file back).
    @exclusivity(unchecked) public private(set) var hasFileMappings = false
    /// `--memory-merge on`: RAM is marked MADV_MERGEABLE, also after it is remapped (GuestRAMReclaim.swift).
    public internal(set) var mergeable = false
    /// Bytes given back to the host by `discard` (balloon, free page reporting), for statistics.
    public internal(set) var discardedBytes: UInt64 = 0

    /// Maps `pageCount` pages of a file copy-on-write over guest RAM starting at page `firstPage` (fast
    /// restore): the guest reads the file's pages from the page cache and its writes stay private.
    /// The host address of RAM does not change, so TLB host pointers stay valid.
    public func mapFile(fd: Int32, fileOffset: UInt64, firstPage: Int, pageCount count: Int) -> Bool {
        guard firstPage >= 0, count > 0, firstPage <= pageCount, count <= pageCount - firstPage,
              fileOffset % GuestRAM.pageSize == 0 else { return false }
        let at = host + firstPage << Int(GuestRAM.pageShift)
        let p = mmap(at, count << Int(GuestRAM.pageShift), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, off_t(fileOffset))
        guard let p, p != MAP_FAILED, p == at else { return false }
        hasFileMappings = true
        applyMergeable(at, count << Int(GuestRAM.pageShift))
        return true
    }

    /// Zeroes all of RAM (machine reset) and forgets all code.
    public func clear() {
        if hasFileMappings {
            // Replace file-backed pages by fresh anonymous memory at the same address.
            let p = mmap(host, Int(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0)
            precondition(p == host, "cannot remap guest RAM")
            hasFileMappings = false
            applyMergeable(host, Int(size))
        }
        madvise(host, Int(size), MADV_DONTNEED)
        // A reset during live migration zeroes every page behind the log's back: all must go again.
        if dirtyLogging { dirtyPages.update(repeating: 1, count: pageCount) }
        for page in 0..<pageCount where codePages[page] != 0 {
            codePages[page] = 0
            notifyCodeWritten(base + UInt64(page) << GuestRAM.pageShift)
        }
    }
}
