#if canImport(Glibc)
import Glibc
#endif
import RivetMemory

/// Decoded blocks, keyed by guest-physical address and shared by all harts of a machine.
///
/// A direct-mapped table maps a block's physical start address to a run of micro-ops in one big pool.
/// Blocks never span a page, so a write to a page drops exactly the blocks that start in it. When the
/// pool fills up everything is dropped and decoding starts afresh.
///
/// Memory (many guests per host, docs/density.md): table and pool are anonymous mappings whose untouched
/// pages cost nothing (an empty table slot is all zero bits), and a flush hands their pages back to the
/// host. The pool's limit starts small and doubles (up to `poolCapacity`) only when it refills within
/// `regrowWindow` of the previous flush, so a guest whose code fits keeps a small cache.
public final class BlockCache: CodeInvalidationListener {
    struct Entry {
        var paddr: UInt64
        var start: Int32
        var count: Int16
        /// Bytes of guest code covered (to compute the fall-through pc).
        var byteLength: Int16
    }

    static let tableBits = 16
    static let tableSize = 1 << tableBits
    static let poolCapacity = 1 << 20
    static let initialPoolLimit = 1 << 17
    static let maxBlockOps = 64
    /// A pool that fills again within this many host nanoseconds of its last flush is too small.
    static let regrowWindow: UInt64 = 2_000_000_000

    let table: UnsafeMutablePointer<Entry>
    let pool: UnsafeMutablePointer<MicroOp>
    @exclusivity(unchecked) var poolUsed = 0
    /// Ops the pool may hold before it is flushed (grows from `initialPoolLimit` to `poolCapacity`).
    @exclusivity(unchecked) public private(set) var poolLimit = BlockCache.initialPoolLimit
    @exclusivity(unchecked) var lastFullFlush: UInt64 = 0
    unowned(unsafe) let ram: GuestRAM
    @exclusivity(unchecked) public private(set) var blocksDecoded: UInt64 = 0
    @exclusivity(unchecked) public private(set) var invalidations: UInt64 = 0
    /// Code-page writes from threads other than the owning hart's (multi-threaded machines only).
    let foreignInvalidations = CodeInvalidationQueue()

    /// Address 0 is never RAM (RAM starts above it), so zero-filled slots are empty.
    static let emptyAddress: UInt64 = 0

    static var tableBytes: Int { tableSize * MemoryLayout<Entry>.stride }
    static var poolBytes: Int { poolCapacity * MemoryLayout<MicroOp>.stride }

    public init(ram: GuestRAM) {
        precondition(ram.base > BlockCache.emptyAddress, "guest RAM must not start at physical address 0")
        self.ram = ram
        table = BlockCache.mapZeroed(BlockCache.tableBytes).bindMemory(to: Entry.self, capacity: BlockCache.tableSize)
        pool = BlockCache.mapZeroed(BlockCache.poolBytes).bindMemory(to: MicroOp.self, capacity: BlockCache.poolCapacity)
        ram.addCodeListener(self)
    }

    deinit {
        munmap(table, BlockCache.tableBytes)
        munmap(pool, BlockCache.poolBytes)
    }

    /// Zero-filled anonymous memory that becomes resident only where it is written.
    static func mapZeroed(_ bytes: Int) -> UnsafeMutableRawPointer {
        let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { fatalError("cannot map \(bytes) bytes for the decoded-block cache") }
        return p
    }

    @inline(__always) static func slot(_ paddr: UInt64) -> Int {
        Int(truncatingIfNeeded: ((paddr >> 1) ^ (paddr >> 17)) & UInt64(tableSize - 1))
    }

    /// Drops everything (pool full, reset, restore).
    public func flushAll() {
        // Dropping the pages empties every slot (they read back as zero) and returns them to the host.
        madvise(table, BlockCache.tableBytes, MADV_DONTNEED)
        let usedBytes = (poolUsed * MemoryLayout<MicroOp>.stride + 4095) & ~4095
        if usedBytes > 0 { madvise(pool, min(usedBytes, BlockCache.poolBytes), MADV_DONTNEED) }
        poolUsed = 0
        // Pages stay marked as code (other caches may hold blocks for them); a needless slow-path store
        // just finds no block to drop.
    }

    public func codePageWritten(_ physicalPage: UInt64) {
        // Another thread's write to a cache owned by a hart thread: queued for the owner (CodeInvalidationQueue.swift).
        if foreignInvalidations.owner != nil && foreignInvalidations.divert(physicalPage) { return }
        dropBlocks(inPage: physicalPage)
    }

    func dropBlocks(inPage physicalPage: UInt64) {
        invalidations &+= 1
        let page = physicalPage & ~(GuestRAM.pageSize - 1)
        for i in 0..<BlockCache.tableSize where table[i].paddr & ~(GuestRAM.pageSize - 1) == page {
            table[i].paddr = BlockCache.emptyAddress
        }
    }

    /// Host time the machine has slept in a row with every hart waiting for an interrupt.
    var idleStreak: UInt64 = 0
    var trimmedThisStreak = false
    /// After this long idle, the cache is emptied and its memory returned (an idle guest re-decodes only
    /// the little code its timer ticks run).
    public static let idleTrimAfter: UInt64 = 5_000_000_000

    /// The run loop slept `nanoseconds` with all harts idle.
    public func noteIdle(nanoseconds: UInt64) {
        idleStreak &+= nanoseconds
        if idleStreak >= BlockCache.idleTrimAfter && !trimmedThisStreak {
            trimmedThisStreak = true
            flushAll()
            poolLimit = BlockCache.initialPoolLimit
            lastFullFlush = 0
        }
    }

    /// A pass in which some hart ran until its budget ended: the idle streak is over.
    @inline(__always)
    public func noteBusy() {
        idleStreak = 0
        trimmedThisStreak = false
    }

    /// The pool is at its limit: flush, and raise the limit if the last flush was recent (the working set
    /// does not fit). Runs once per pool fill, never per instruction.
    func poolFull() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let ns = UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
        if lastFullFlush != 0, ns &- lastFullFlush < BlockCache.regrowWindow, poolLimit < BlockCache.poolCapacity {
            poolLimit *= 2
        }
        lastFullFlush = ns
        flushAll()
    }

    /// Decodes the block at `paddr` (which must be in RAM) and records it.
    func decodeBlock(at paddr: UInt64) -> Entry {
        if poolUsed + BlockCache.maxBlockOps > poolLimit { poolFull() }
        let pageEnd = (paddr | (GuestRAM.pageSize - 1)) &+ 1
        var a = paddr
        var n = 0
        let start = poolUsed
        while n < BlockCache.maxBlockOps {
            guard let low = ram.load16(a) else { break }
            var op: MicroOp
            var len: UInt64
            if low & 3 == 3 {
                if a + 4 > pageEnd { break }  // straddles a page: executed on its own by the hart
                guard let hi = ram.load16(a + 2) else { break }
                op = Decoder.decode32(UInt32(low) | UInt32(hi) << 16)
                len = 4
            } else {
                op = Decoder.decode16(low)
                len = 2
            }
            op.pcOffset = UInt16(a - paddr)
            pool[start + n] = op
            n += 1
            a += len
            if op.op.endsBlock || a >= pageEnd { break }
        }
        let entry = Entry(paddr: paddr, start: Int32(start), count: Int16(n), byteLength: Int16(a - paddr))
        if n == 0 { return entry }
        poolUsed += n
        blocksDecoded &+= 1
        ram.markCodePage(Int((paddr - ram.base) >> GuestRAM.pageShift))
        table[BlockCache.slot(paddr)] = entry
        return entry
    }
}
