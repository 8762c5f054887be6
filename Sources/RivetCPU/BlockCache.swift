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

    static let tableBits = 18
    static let tableSize = 1 << tableBits
    static let poolCapacity = 1 << 20
    static let initialPoolLimit = 1 << 18
    static let maxBlockOps = 64
    /// A pool that fills again within this many host nanoseconds of its last flush is too small.
    static let regrowWindow: UInt64 = 2_000_000_000

    let table: UnsafeMutablePointer<Entry>
    let pool: UnsafeMutablePointer<MicroOp>
    /// Per table slot: the address of the block's translated code, or 0 (valid while the slot's entry is).
    let codeTable: UnsafeMutablePointer<UInt>
    /// Per table slot: how often the block ran in the interpreter (saturating), to pick blocks to compile.
    let heatTable: UnsafeMutablePointer<UInt8>
    /// The translated code, created when a hart of this cache first compiles a block.
    @exclusivity(unchecked) var translator: Translator? = nil
    /// Set when code memory could not be created: the cache stays interpreted.
    @exclusivity(unchecked) var translatorUnavailable = false
    /// Translated loads and stores add the hart's identity addend instead of the TLB entry's
    /// (`Hart.userIdentityAddend`; every hart using this cache must have it set).
    @exclusivity(unchecked) var identityAddressing = false
    /// With identity addressing: translated loads skip the TLB check and register here (UncheckedLoads.swift).
    @exclusivity(unchecked) var uncheckedLoads: UncheckedLoadTable? = nil
    /// Byte offset of `Entry.count`, which translated code reads when chaining.
    static let entryCountOffset = MemoryLayout<Entry>.offset(of: \Entry.count)!
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
        codeTable = BlockCache.mapZeroed(BlockCache.tableSize * MemoryLayout<UInt>.stride).bindMemory(to: UInt.self, capacity: BlockCache.tableSize)
        heatTable = BlockCache.mapZeroed(BlockCache.tableSize).bindMemory(to: UInt8.self, capacity: BlockCache.tableSize)
        precondition(MemoryLayout<Entry>.stride == 16 && MemoryLayout<Entry>.offset(of: \Entry.paddr) == 0,
                     "translated code assumes 16-byte block table entries with paddr first")
        ram.addCodeListener(self)
    }

    deinit {
        munmap(table, BlockCache.tableBytes)
        munmap(pool, BlockCache.poolBytes)
        munmap(codeTable, BlockCache.tableSize * MemoryLayout<UInt>.stride)
        munmap(heatTable, BlockCache.tableSize)
    }

    /// Zero-filled anonymous memory that becomes resident only where it is written.
    static func mapZeroed(_ bytes: Int) -> UnsafeMutableRawPointer {
        guard let p = mapZeroedMemory(bytes) else { fatalError("cannot map \(bytes) bytes for the decoded-block cache") }
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
        // Translated code goes with the blocks it was compiled from (it points into the pool).
        if let translator {
            madvise(codeTable, BlockCache.tableSize * MemoryLayout<UInt>.stride, MADV_DONTNEED)
            madvise(heatTable, BlockCache.tableSize, MADV_DONTNEED)
            translator.reset()
            uncheckedLoads?.clear()  // the code memory is reused
        }
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
            retireTranslation(i)
        }
    }

    /// Forgets the translation in `slot`, if any: links to it and jump-site caches holding it now reach the
    /// dispatcher, which looks the pc up again.
    @inline(__always)
    func retireTranslation(_ slot: Int) {
        let code = codeTable[slot]
        if code != 0 {
            translator.unsafelyUnwrapped.retire(code: code)
            codeTable[slot] = 0
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

    /// Compiles the block in `slot` (described by `entry`) and records its code address. Returns nil when the
    /// cache had to be flushed to make room (the caller's entry is then stale), 0 when this host cannot
    /// translate.
    func translate(slot: Int, entry: Entry) -> UInt? {
        if translator == nil {
            if translatorUnavailable { return 0 }
            do { translator = try Translator() } catch {
                translatorUnavailable = true
                return 0
            }
        }
        let t = translator.unsafelyUnwrapped
        guard let code = t.compile(segments: translationUnit(entry), paddr: entry.paddr, cache: self) else {
            flushAll()  // code memory full: start again with both empty
            return nil
        }
        codeTable[slot] = code
        return code
    }

    /// The blocks compiled together starting at `entry`: it and, while a block ends in a conditional branch, the
    /// decoded block its fall-through path continues with on the same page (a superblock: registers stay in
    /// host registers across the not-taken branches). At most 8 blocks and 128 instructions. A unit whose last
    /// block branches or jumps back to `entry` is a loop (BlockCompiler compiles it as one); so is a head whose
    /// branch's taken side is a hot block that comes straight back (`takenBranchLoop`).
    func translationUnit(_ entry: Entry) -> [BlockCompiler.Segment] {
        if let loop = takenBranchLoop(entry) { return loop }
        var segments = [BlockCompiler.Segment(ops: pool + Int(entry.start), count: Int(entry.count),
                                              byteLength: Int(entry.byteLength), offset: 0)]
        var block = entry
        var total = Int(entry.count)
        while segments.count < 8 {
            let branch = pool[Int(block.start) + Int(block.count) - 1]
            switch branch.op {
            case .beq, .bne, .blt, .bge, .bltu, .bgeu: break
            default: return segments
            }
            // A branch back to the head closes a loop: the unit ends there (BlockCompiler compiles it as one).
            if block.paddr &+ UInt64(branch.pcOffset) &+ UInt64(bitPattern: branch.imm) == entry.paddr { return segments }
            let next = block.paddr &+ UInt64(block.byteLength)
            guard next & ~(GuestRAM.pageSize - 1) == entry.paddr & ~(GuestRAM.pageSize - 1) else { return segments }
            let following = table[BlockCache.slot(next)]
            guard following.paddr == next, following.count > 0, total + Int(following.count) <= 128 else { return segments }
            let offset = Int64(next &- entry.paddr)
            if segments.contains(where: { $0.offset == offset }) { return segments }
            segments.append(BlockCompiler.Segment(ops: pool + Int(following.start), count: Int(following.count),
                                                  byteLength: Int(following.byteLength), offset: offset))
            total += Int(following.count)
            block = following
        }
        return segments
    }

    /// `head: ...; b<cond> body; ...  body: ...; j head` (or a branch to head): the loop compilers make of
    /// `while (cond) body`, which runs through the head's taken branch. The unit is the head, continued on its
    /// taken side, and the body, when the body is on the same page and ran at least half as often as the head
    /// (its heat), so the loop is really taken.
    private func takenBranchLoop(_ entry: Entry) -> [BlockCompiler.Segment]? {
        let branch = pool[Int(entry.start) + Int(entry.count) - 1]
        guard branch.op.isConditionalBranch else { return nil }
        let target = entry.paddr &+ UInt64(branch.pcOffset) &+ UInt64(bitPattern: branch.imm)
        let page = ~(GuestRAM.pageSize - 1)
        guard target != entry.paddr, target & page == entry.paddr & page else { return nil }
        let targetSlot = BlockCache.slot(target)
        let body = table[targetSlot]
        guard body.paddr == target, body.count > 0, Int(entry.count) + Int(body.count) <= 128 else { return nil }
        let last = pool[Int(body.start) + Int(body.count) - 1]
        let jumpsBack = last.op == .jal && (last.rd == 0 || last.rd >= 32) || last.op.isConditionalBranch
        guard jumpsBack, target &+ UInt64(last.pcOffset) &+ UInt64(bitPattern: last.imm) == entry.paddr else { return nil }
        guard codeTable[targetSlot] != 0 || Int(heatTable[targetSlot]) * 2 >= Int(heatTable[BlockCache.slot(entry.paddr)]) else { return nil }
        var head = BlockCompiler.Segment(ops: pool + Int(entry.start), count: Int(entry.count),
                                         byteLength: Int(entry.byteLength), offset: 0)
        head.continuesOnTaken = true
        return [head, BlockCompiler.Segment(ops: pool + Int(body.start), count: Int(body.count),
                                            byteLength: Int(body.byteLength), offset: Int64(bitPattern: target &- entry.paddr))]
    }

    /// In the child of a host fork() (`rivet user`): the code memory is a shared mapping the parent keeps
    /// writing, so the child lets go of it (unmapping only its own views) and compiles into its own.
    public func detachTranslationAfterFork() {
        guard translator != nil else { return }
        translator = nil
        madvise(codeTable, BlockCache.tableSize * MemoryLayout<UInt>.stride, MADV_DONTNEED)
        madvise(heatTable, BlockCache.tableSize, MADV_DONTNEED)
    }

    /// Translation statistics for this cache: (blocks compiled, code bytes, compile nanoseconds, flushes).
    public var translationStatistics: (blocks: UInt64, bytes: UInt64, nanoseconds: UInt64, flushes: UInt64) {
        guard let t = translator else { return (0, 0, 0, 0) }
        return (t.blocksCompiled, t.codeBytes, t.compileNanoseconds, t.flushes)
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
        let slot = BlockCache.slot(paddr)
        table[slot] = entry
        retireTranslation(slot)
        heatTable[slot] = 0
        return entry
    }
}

extension Op {
    var isConditionalBranch: Bool {
        switch self {
        case .beq, .bne, .blt, .bge, .bltu, .bgeu: return true
        default: return false
        }
    }
}
