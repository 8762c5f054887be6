import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import RivetCPU
import RivetMemory

// Hart threads: only the thread that owns a hart's block cache writes its table; code-page writes seen on
// other threads are queued and dropped when the owner applies them (its next slice, or fence.i).

/// A thread id that is not the caller's (only compared, never joined).
private let someOtherThread = pthread_t(1)

@Test func aForeignCodeWriteWaitsForTheOwner() throws {
    let m = try TestMachine()
    let base = TestMachine.base
    m.load([addi(10, 0, 1), ecall])
    #expect(m.cache.decodeBlock(at: base).count == 2)
    let slot = BlockCache.slot(base)

    m.cache.assignOwner(someOtherThread)
    m.ram.store32(base, addi(10, 0, 2))
    #expect(m.cache.table[slot].paddr == base, "a foreign thread must not touch the owner's table")

    // The owner (here: ownership back to this thread) applies the queue: the block is gone.
    m.cache.assignOwner(nil)
    #expect(m.cache.table[slot].paddr == BlockCache.emptyAddress)
}

@Test func theOwnersOwnCodeWritesApplyAtOnce() throws {
    let m = try TestMachine()
    let base = TestMachine.base
    m.load([addi(10, 0, 1), ecall])
    _ = m.cache.decodeBlock(at: base)
    m.cache.assignOwner(pthread_self())
    m.ram.store32(base, addi(10, 0, 3))
    #expect(m.cache.table[BlockCache.slot(base)].paddr == BlockCache.emptyAddress)
    m.cache.assignOwner(nil)
}

@Test func anOverflowingQueueDropsEveryBlockButKeepsThePool() throws {
    let m = try TestMachine()
    let base = TestMachine.base
    // One block in each of 80 pages, more than the queue holds.
    let pages = CodeInvalidationQueue.capacity + 16
    for p in 0..<pages { m.load([addi(10, 0, Int32(p)), ecall], at: base + UInt64(p) << 12) }
    for p in 0..<pages { _ = m.cache.decodeBlock(at: base + UInt64(p) << 12) }
    let poolUsed = m.cache.poolUsed
    m.cache.assignOwner(someOtherThread)
    for p in 0..<pages { m.ram.store32(base + UInt64(p) << 12, addi(10, 0, 7)) }
    #expect(m.cache.table[BlockCache.slot(base)].paddr == base)
    m.cache.assignOwner(nil)
    for p in 0..<pages { #expect(m.cache.table[BlockCache.slot(base + UInt64(p) << 12)].paddr == BlockCache.emptyAddress) }
    #expect(m.cache.poolUsed == poolUsed, "ops of a block being executed stay readable (fence.i mid-block)")
}
