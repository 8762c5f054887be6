#if canImport(Glibc)
import Glibc
#endif
import Atomics

/// Writes to code pages that reach a hart's own `BlockCache` from other threads (another hart's store,
/// device DMA, the run loop), when each hart runs on its own host thread.
///
/// Only the owning thread writes its cache's table; a foreign thread queues the page here and the owner
/// drops the blocks at its next slice boundary or `fence.i` (RISC-V requires the new code to be seen only
/// after the executing hart's fence.i). With no owner (one thread runs every hart) nothing is queued.
public final class CodeInvalidationQueue {
    static let capacity = 64
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @exclusivity(unchecked) var pages: [UInt64] = []
    /// More pages than `capacity` arrived: the owner flushes everything instead.
    @exclusivity(unchecked) var overflowed = false
    let pending = UnsafeAtomic<Bool>.create(false)
    /// The thread that runs the owning hart, or nil.
    @exclusivity(unchecked) var owner: pthread_t? = nil

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pages.reserveCapacity(CodeInvalidationQueue.capacity)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        pending.destroy()
    }

    /// True when the caller is not the owner and the page was queued for it.
    func divert(_ page: UInt64) -> Bool {
        guard let o = owner, pthread_equal(o, pthread_self()) == 0 else { return false }
        pthread_mutex_lock(mutex)
        if pages.count < CodeInvalidationQueue.capacity { pages.append(page) } else { overflowed = true }
        pending.store(true, ordering: .releasing)
        pthread_mutex_unlock(mutex)
        return true
    }

    func take() -> (pages: [UInt64], overflowed: Bool) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        let taken = (pages, overflowed)
        pages.removeAll(keepingCapacity: true)
        overflowed = false
        pending.store(false, ordering: .relaxed)
        return taken
    }
}

extension BlockCache {
    /// Makes `thread` this cache's only writer (other threads' code-page writes are then queued), or with
    /// nil lets every thread invalidate at once again. Call only while no thread runs this cache's hart.
    public func assignOwner(_ thread: pthread_t?) {
        foreignInvalidations.owner = thread
        if thread == nil || pthread_equal(thread!, pthread_self()) != 0 { applyForeignInvalidations() }
    }

    /// Drops the blocks of pages other threads wrote (owner thread; a single load when nothing is queued).
    @inline(__always)
    public func applyForeignInvalidations() {
        if foreignInvalidations.pending.load(ordering: .acquiring) { applyQueued() }
    }

    @inline(never)
    func applyQueued() {
        let (pages, overflowed) = foreignInvalidations.take()
        if overflowed {
            // Forget every block but keep the pool: fence.i calls this in the middle of a block's ops.
            madvise(table, BlockCache.tableBytes, MADV_DONTNEED)
            // Translated code may be on the stack (fence.i is a callout): retire each translation rather than
            // flush the code memory.
            if translator != nil { for i in 0..<BlockCache.tableSize { retireTranslation(i) } }
            return
        }
        for page in pages { dropBlocks(inPage: page) }
    }
}
