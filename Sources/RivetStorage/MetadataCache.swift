#if canImport(Glibc)
import Glibc
#endif

/// A fixed number of cluster-sized slots holding metadata tables (L2 tables or refcount blocks).
/// Slots are keyed by the index of the table in its parent (L1 index or refcount table index); the parent
/// keeps an index-to-slot array so a lookup is one array read. Buffers are allocated on first use.
final class MetadataCache {
    let clusterSize: Int
    let capacity: Int
    /// Table index held by each slot, or -1.
    var owner: [Int]
    var dirty: [Bool]
    /// Second-chance bits for the CLOCK replacement (amortized O(1) per miss, close to LRU).
    var referenced: [Bool]
    var buffers: [UnsafeMutableRawPointer?]
    var hand = 0
    var used = 0
    var dirtySlots = 0

    init(clusterSize: Int, capacity: Int) {
        self.clusterSize = clusterSize
        self.capacity = max(2, capacity)
        owner = Array(repeating: -1, count: self.capacity)
        dirty = Array(repeating: false, count: self.capacity)
        referenced = Array(repeating: false, count: self.capacity)
        buffers = Array(repeating: nil, count: self.capacity)
    }

    deinit {
        for b in buffers { b?.deallocate() }
    }

    @inline(__always) func buffer(_ slot: Int) -> UnsafeMutableRawPointer {
        if let b = buffers[slot] { return b }
        let b = UnsafeMutableRawPointer.allocate(byteCount: clusterSize, alignment: 4096)
        buffers[slot] = b
        return b
    }

    @inline(__always) func touch(_ slot: Int) {
        referenced[slot] = true
    }

    @inline(__always) func markDirty(_ slot: Int) {
        if !dirty[slot] { dirty[slot] = true; dirtySlots += 1 }
    }

    @inline(__always) func markClean(_ slot: Int) {
        if dirty[slot] { dirty[slot] = false; dirtySlots -= 1 }
    }

    /// A never-used slot while there are some, else the CLOCK victim: the first slot from the hand whose
    /// reference bit is clear (bits are cleared as the hand passes). The caller writes it back and unlinks it.
    func victim() -> Int {
        if used < capacity {
            used += 1
            return used - 1
        }
        while true {
            let s = hand
            hand = hand + 1 == capacity ? 0 : hand + 1
            if owner[s] < 0 { return s }
            if referenced[s] { referenced[s] = false } else { return s }
        }
    }
}
