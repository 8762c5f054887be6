#if canImport(Glibc)
import Glibc
#endif

// Handing an image from one process to another during live migration, as QEMU inactivates and activates
// its block nodes: the giving side writes back everything it caches, the taking side re-reads every
// table it cached before the other side's last writes.

extension Qcow2Disk {
    /// Writes back all cached metadata, including the refcount decrements a flush applies after its own
    /// writes (`close` does the same), so another process opening the image sees it whole and leak-free.
    func flushForHandover() throws {
        try flush()
        if refCache.dirtySlots > 0 { try flush() }
    }

    /// Drops this open without writing anything: another process wrote the image after it read its tables.
    func abandon() {
        closed = true
        file.close()
    }

    var holdsLocks: Bool { file.lockHeld || file.lockRequest == nil }
}

/// Flushes a drive before another process takes its image over (a migration source at switch-over).
public func flushForHandover(_ device: BlockDevice) throws {
    if let q = decoratorChain(device, find: Qcow2Disk.self) { try q.flushForHandover() } else { try device.flush() }
}

extension DirtyTrackingDisk {
    /// Takes over an image another process may have written since this one opened it (QEMU's activation
    /// at the end of an incoming migration, or `cont` on a source after one): a writable qcow2 image whose
    /// locks this process does not hold is opened again (header, L1, L2 and refcount tables read afresh, locks
    /// taken) and the stale open is dropped without writing; other images just take their locks. On an error
    /// (e.g. the other process still holds the image) nothing changes.
    public func activateAfterHandover() throws {
        guard let q = underlying as? Qcow2Disk, !q.isReadOnly, !q.holdsLocks else {
            try activateLocks()
            return
        }
        let fresh = try openDisk(path: q.path, format: .qcow2, readOnly: false)
        guard fresh.size == q.size else {
            throw StorageError("\(q.path): the image's size changed from \(q.size) to \(fresh.size) bytes during the migration")
        }
        q.abandon()
        replaceUnderlying(fresh)
    }
}

/// The byte ranges of `device` (its whole backing chain) that may hold nonzero data, ascending and
/// disjoint, widened to multiples of `granularity`: what a copy of the disk must carry. Ranges that are
/// holes, zero clusters or unallocated all the way down the chain are left out.
public func dataRanges(of device: BlockDevice, granularity: UInt64) throws -> [(offset: UInt64, length: UInt64)] {
    var raw: [(offset: UInt64, length: UInt64)] = []
    try collectDataRanges(device, from: 0, to: device.size, into: &raw)
    var out: [(offset: UInt64, length: UInt64)] = []
    for r in raw {
        let start = r.offset / granularity * granularity
        let end = min((r.offset + r.length + granularity - 1) / granularity * granularity, device.size)
        if let last = out.last, start <= last.offset + last.length {
            out[out.count - 1].length = max(last.offset + last.length, end) - last.offset
        } else {
            out.append((start, end - start))
        }
    }
    return out
}

private func collectDataRanges(_ device: BlockDevice, from: UInt64, to: UInt64, into out: inout [(offset: UInt64, length: UInt64)]) throws {
    guard from < to else { return }
    guard let layer = device as? ImageLayer else { out.append((from, to - from)); return }
    var pos = from
    while pos < to {
        let e = try layer.extent(at: pos, maxLength: to - pos)
        // A layer that cannot say: treat the rest as data (correct, only slower).
        guard e.length > 0 else { out.append((pos, to - pos)); return }
        let length = min(e.length, to - pos)
        switch e.kind {
        case .data: out.append((pos, length))
        case .zero: break
        case .unallocated:
            // Shows the backing file through, which may be shorter than this layer (the rest reads as zeros).
            if let backing = layer.backingDevice, pos < backing.size {
                try collectDataRanges(backing, from: pos, to: min(pos + length, backing.size), into: &out)
            }
        }
        pos += length
    }
}
