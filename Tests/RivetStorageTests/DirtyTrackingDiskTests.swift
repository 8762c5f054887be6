import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import RivetStorage

/// The block-migration pieces of the storage layer: the dirty-tracking decorator, the data-range map of a
/// drive (through its backing chain), and taking a qcow2 image over from another writer.
@Suite struct DirtyTrackingDiskTests {
    func write(_ d: BlockDevice, _ offset: UInt64, _ count: Int, _ fill: UInt8) throws {
        let data = [UInt8](repeating: fill, count: count)
        try data.withUnsafeBytes { try d.write(at: offset, from: $0) }
    }

    @Test func recordsWrittenGranulesOnlyWhileTracking() throws {
        let dir = makeTempDir("dirty"); defer { removeTree(dir) }
        try RawDisk.create(path: dir + "/a.raw", size: 1 << 20)
        let d = DirtyTrackingDisk(try openDisk(path: dir + "/a.raw", format: .raw, readOnly: false), granularity: 64 << 10)
        try write(d, 0, 512, 1)
        d.startTracking()
        #expect(d.takeDirtyGranules() == [])   // writes before tracking do not count
        try write(d, 65536 * 3 + 100, 10, 2)              // inside granule 3
        try write(d, 65536 * 5 - 1, 2, 3)                 // straddles 4 and 5
        try d.discard(at: 65536 * 15, length: 65536)      // the last granule
        #expect(d.dirtyGranuleCount == 4)
        #expect(d.takeDirtyGranules() == [3, 4, 5, 15])
        #expect(d.takeDirtyGranules() == [])   // cleared
        try write(d, 0, 1, 4)
        #expect(d.takeDirtyGranules() == [0])
        d.stopTracking()
        try write(d, 65536, 1, 5)
        #expect(d.takeDirtyGranules() == [])
        // I/O goes through unchanged.
        var b = [UInt8](repeating: 0, count: 2)
        try b.withUnsafeMutableBytes { try d.read(at: 65536 * 5 - 1, into: $0) }
        #expect(b == [3, 3])
        #expect(d.granuleRange(15) == (983040, 65536))
    }

    @Test func lastGranuleMayBeShort() throws {
        let dir = makeTempDir("short"); defer { removeTree(dir) }
        try RawDisk.create(path: dir + "/a.raw", size: 65536 + 4096)
        let d = DirtyTrackingDisk(try openDisk(path: dir + "/a.raw", format: .raw, readOnly: false))
        d.startTracking()
        try write(d, 65536 + 4000, 96, 1)
        #expect(d.granuleCount == 2)
        #expect(d.takeDirtyGranules() == [1])
        #expect(d.granuleRange(1) == (65536, 4096))
    }

    @Test func describesTheWrappedImage() throws {
        let dir = makeTempDir("desc"); defer { removeTree(dir) }
        try Qcow2Disk.create(path: dir + "/a.qcow2", size: 4 << 20)
        let d = DirtyTrackingDisk(try openDisk(path: dir + "/a.qcow2", format: .qcow2, readOnly: false))
        #expect(d.format == .qcow2 && d.path == dir + "/a.qcow2" && d.size == 4 << 20)
        #expect(decoratorChain(d, find: Qcow2Disk.self) != nil)
        #expect(decoratorChain(d, find: RawDisk.self) == nil)
    }

    @Test func dataRangesFollowAllocationThroughTheBackingChain() throws {
        let dir = makeTempDir("ranges"); defer { removeTree(dir) }
        let g: UInt64 = 65536
        // Backing: data at 1 MiB; top: data at 3 MiB + 100, zeros written over the backing's data.
        try Qcow2Disk.create(path: dir + "/base.qcow2", size: 8 << 20)
        do {
            let base = try openDisk(path: dir + "/base.qcow2", format: .qcow2, readOnly: false)
            try write(base, 1 << 20, 4096, 7)
            try write(base, 5 << 20, 4096, 8)
            try base.flush()
        }
        var opts = Qcow2CreateOptions(); opts.backingFile = "base.qcow2"; opts.backingFormat = .qcow2
        try Qcow2Disk.create(path: dir + "/top.qcow2", size: 8 << 20, options: opts)
        let top = DirtyTrackingDisk(try openDisk(path: dir + "/top.qcow2", format: .qcow2, readOnly: false))
        try write(top, (3 << 20) + 100, 10, 9)
        try top.discard(at: 5 << 20, length: g)   // reads as zeros now, hiding the backing's data
        let ranges = try dataRanges(of: top, granularity: g)
        #expect(ranges.map { $0.offset } == [1 << 20, 3 << 20])
        #expect(ranges.allSatisfy { $0.length == g })

        // A sparse raw file: its holes are not data.
        try RawDisk.create(path: dir + "/s.raw", size: 4 << 20)
        let raw = try openDisk(path: dir + "/s.raw", format: .raw, readOnly: false)
        try write(raw, 2 << 20, 1, 1)
        try raw.flush()
        let rawRanges = try dataRanges(of: raw, granularity: g)
        #expect(rawRanges.count == 1 && rawRanges[0].offset <= 2 << 20 && rawRanges[0].offset + rawRanges[0].length > 2 << 20)
    }

    /// Two processes' view of one image, as in a live migration with shared storage: B opened the image
    /// (without locks) before A's writes; A flushes and lets go; B takes over, re-reading the tables, and
    /// its own allocations then do not overwrite A's clusters.
    @Test func takingAQcow2ImageOverRereadsItsTables() throws {
        let dir = makeTempDir("handover"); defer { removeTree(dir) }
        let path = dir + "/s.qcow2"
        try Qcow2Disk.create(path: path, size: 16 << 20)
        let a = DirtyTrackingDisk(try openDisk(path: path, format: .qcow2, readOnly: false))
        let b = DirtyTrackingDisk(try openDisk(path: path, format: .qcow2, readOnly: false, deferLocks: true))
        // A allocates clusters in two L2 ranges; some are freed again (refcount decrements).
        for i in 0..<40 { try write(a, UInt64(i) * (256 << 10), 65536, UInt8(i + 1)) }
        try a.discard(at: 0, length: 65536)
        // B cannot take the image while A holds it.
        #expect(throws: (any Error).self) { try b.activateAfterHandover() }
        try flushForHandover(a)
        a.releaseLocks()
        try b.activateAfterHandover()
        var byte = [UInt8](repeating: 0, count: 1)
        try byte.withUnsafeMutableBytes { try b.read(at: 39 * (256 << 10), into: $0) }
        #expect(byte == [40])
        for i in 0..<40 { try write(b, UInt64(i) * (256 << 10) + 65536, 65536, UInt8(100 + i)) }
        try b.flush()
        let check = try Qcow2Disk.check(path: path, forceShare: true)
        #expect(check.corruptions == 0 && check.leaks == 0)
        for i in 1..<40 {
            try byte.withUnsafeMutableBytes { try b.read(at: UInt64(i) * (256 << 10), into: $0) }
            #expect(byte == [UInt8(i + 1)])
        }
    }
}
