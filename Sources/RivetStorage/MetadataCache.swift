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
    var lastUse: [UInt64]
    var buffers: [UnsafeMutableRawPointer?]
    var tick: UInt64 = 0
    var dirtySlots = 0

    init(clusterSize: Int, capacity: Int) {
        self.clusterSize = clusterSize
        self.capacity = max(2, capacity)
        owner = Array(repeating: -1, count: self.capacity)
        dirty = Array(repeating: false, count: self.capacity)
        lastUse = Array(repeating: 0, count: self.capacity)
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
        tick &+= 1
        lastUse[slot] = tick
    }

    @inline(__always) func markDirty(_ slot: Int) {
        if !dirty[slot] { dirty[slot] = true; dirtySlots += 1 }
    }

    @inline(__always) func markClean(_ slot: Int) {
        if dirty[slot] { dirty[slot] = false; dirtySlots -= 1 }
    }

    /// A free slot, else the least recently used one (the caller writes it back and unlinks it).
    func victim() -> Int {
        var best = 0
        for s in 0..<capacity {
            if owner[s] < 0 { return s }
            if lastUse[s] < lastUse[best] { best = s }
        }
        return best
    }
}
