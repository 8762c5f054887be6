import RivetMemory

/// Decoded blocks, keyed by guest-physical address and shared by all harts of a machine.
///
/// A direct-mapped table maps a block's physical start address to a run of micro-ops in one big pool.
/// Blocks never span a page, so a write to a page drops exactly the blocks that start in it. When the
/// pool fills up everything is dropped and decoding starts afresh (rare: the pool holds a million ops).
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
    static let maxBlockOps = 64

    let table: UnsafeMutablePointer<Entry>
    let pool: UnsafeMutablePointer<MicroOp>
    @exclusivity(unchecked) var poolUsed = 0
    unowned(unsafe) let ram: GuestRAM
    @exclusivity(unchecked) public private(set) var blocksDecoded: UInt64 = 0
    @exclusivity(unchecked) public private(set) var invalidations: UInt64 = 0

    static let emptyAddress: UInt64 = 1  // odd, so never a real block address

    public init(ram: GuestRAM) {
        self.ram = ram
        table = .allocate(capacity: BlockCache.tableSize)
        table.initialize(repeating: Entry(paddr: BlockCache.emptyAddress, start: 0, count: 0, byteLength: 0), count: BlockCache.tableSize)
        pool = .allocate(capacity: BlockCache.poolCapacity)
        ram.addCodeListener(self)
    }

    deinit {
        table.deallocate()
        pool.deallocate()
    }

    @inline(__always) static func slot(_ paddr: UInt64) -> Int {
        Int(truncatingIfNeeded: ((paddr >> 1) ^ (paddr >> 17)) & UInt64(tableSize - 1))
    }

    /// Drops everything (pool full, reset, restore).
    public func flushAll() {
        for i in 0..<BlockCache.tableSize { table[i].paddr = BlockCache.emptyAddress }
        poolUsed = 0
        // Pages stay marked as code (other caches may hold blocks for them); a needless slow-path store
        // just finds no block to drop.
    }

    public func codePageWritten(_ physicalPage: UInt64) {
        invalidations &+= 1
        let page = physicalPage & ~(GuestRAM.pageSize - 1)
        for i in 0..<BlockCache.tableSize where table[i].paddr & ~(GuestRAM.pageSize - 1) == page {
            table[i].paddr = BlockCache.emptyAddress
        }
    }

    /// Decodes the block at `paddr` (which must be in RAM) and records it.
    func decodeBlock(at paddr: UInt64) -> Entry {
        if poolUsed + BlockCache.maxBlockOps > BlockCache.poolCapacity { flushAll() }
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
