#if canImport(Glibc)
import Glibc
#endif
import CZlib

let l2OffsetMask: UInt64 = 0x00ff_ffff_ffff_fe00
let copiedFlag: UInt64 = 1 << 63
let compressedFlag: UInt64 = 1 << 62
let zeroFlag: UInt64 = 1
/// Reserved bits of standard L1 and L2 entries (must be zero).
let l1ReservedMask: UInt64 = 0x7f00_0000_0000_01ff
let l2ReservedMask: UInt64 = 0x3f00_0000_0000_01fe

/// A qcow2 image (version 2 or 3) with an optional backing device.
///
/// Crash-safety: L2 tables and refcount blocks are cached and written back in an order that never lets a
/// durable L2/L1 entry point at a cluster whose durable refcount is zero:
///   data and refcount blocks -> fsync -> L2 tables -> (fsync -> L1 entries, when new L2 tables exist) -> fsync.
/// Clusters freed by overwrites or discards keep their refcount until the entries that stopped using them
/// are durable, so they cannot be reused (and overwritten) while an old entry on disk may still name them.
/// A crash therefore can leak clusters but never corrupt the image. Data clusters are written before the
/// L2 entry that maps them changes.
public final class Qcow2Disk: ImageLayer {
    public let path: String
    let file: ImageFile
    public let size: UInt64
    public let isReadOnly: Bool
    public private(set) var header: Qcow2Header
    public private(set) var backing: BlockDevice? = nil
    public var backingDevice: BlockDevice? { backing }
    public var format: DiskFormat { .qcow2 }
    /// The backing file as it will be opened (relative names resolved against this image's directory).
    public private(set) var backingPath: String? = nil

    public let clusterBits: Int
    public let clusterSize: Int
    let clusterMask: UInt64
    let l2Bits: Int
    let l1Count: Int
    let l1: UnsafeMutablePointer<UInt64>      // host byte order
    var l1DirtyLow = Int.max
    var l1DirtyHigh = -1
    var l2Slot: [Int32]                        // L1 index -> cache slot or -1
    let l2Cache: MetadataCache

    var refTable: [UInt64]                     // host byte order
    let refOrder: Int
    let refBlockBits: Int                      // log2(refcount entries per block)
    var refSlot: [Int32]
    let refCache: MetadataCache

    /// Host cluster indices of all metadata (header, L1, refcount table and blocks, L2 tables).
    var metadata: Set<UInt64> = []
    var pendingFrees: [UInt64] = []
    var freeHint: UInt64 = 1
    let compressedOffsetBits: Int
    // Work buffers, allocated on first use (read-only backing layers rarely need them).
    private var scratchStorage: UnsafeMutableRawPointer? = nil
    private var inflatedStorage: UnsafeMutableRawPointer? = nil
    private var compressedStorage: UnsafeMutableRawPointer? = nil
    var inflatedEntry: UInt64 = 0
    let compressedCapacity: Int
    /// One cluster, for copy-on-write.
    var scratch: UnsafeMutableRawPointer { buffer(&scratchStorage, clusterSize) }
    /// One cluster: the last decompressed cluster.
    var inflated: UnsafeMutableRawPointer { buffer(&inflatedStorage, clusterSize) }
    var compressedBuffer: UnsafeMutableRawPointer { buffer(&compressedStorage, compressedCapacity) }

    @inline(__always) private func buffer(_ storage: inout UnsafeMutableRawPointer?, _ bytes: Int) -> UnsafeMutableRawPointer {
        if let p = storage { return p }
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
        storage = p
        return p
    }
    var closed = false
    /// Guest clusters whose L2 entry is corrupt: only these fail.
    var badClusters = Set<UInt64>()

    init(path: String, readOnly: Bool, openBacking: Bool, l2CacheBytes: Int? = nil, chain: inout OpenChain) throws {
        self.path = path
        let file = try ImageFile(path: path, writable: !readOnly,
                                 lock: .forImage(writable: !readOnly, metadata: true, forceShare: chain.forceShare),
                                 deferLock: chain.deferLocks)
        self.file = file
        isReadOnly = readOnly
        let fileLength = file.length
        func corrupt(_ what: String) -> StorageError { StorageError("\(path): corrupt qcow2 image: \(what)") }

        // Header: read the fixed part to learn the cluster size, then the whole first cluster.
        guard fileLength >= 72 else { throw StorageError("\(path): file too short to be a qcow2 image (\(fileLength) bytes)") }
        var fixed = [UInt8](repeating: 0, count: 112)
        let got = try fixed.withUnsafeMutableBytes { try file.read(at: 0, into: $0) }
        let bits = got >= 24 ? fixed.withUnsafeBytes { loadBE32($0.baseAddress!, 20) } : 0
        guard bits >= Qcow2Limits.minClusterBits && bits <= Qcow2Limits.maxClusterBits else {
            if got >= 4 && fixed.withUnsafeBytes({ loadBE32($0.baseAddress!, 0) }) != qcow2Magic {
                throw StorageError("\(path): invalid qcow2 header: bad magic")
            }
            throw StorageError("\(path): invalid qcow2 header: cluster size 2^\(bits) out of range (512 B to 2 MiB)")
        }
        let cs = 1 << Int(bits)
        var first = [UInt8](repeating: 0, count: Int(min(UInt64(cs), fileLength)))
        _ = try first.withUnsafeMutableBytes { try file.read(at: 0, into: $0) }
        header = try first.withUnsafeBytes { try Qcow2Header(parsing: $0, fileLength: fileLength, path: path) }

        clusterBits = Int(bits)
        clusterSize = cs
        clusterMask = UInt64(cs - 1)
        l2Bits = clusterBits - 3
        size = header.size
        refOrder = Int(header.refcountOrder)
        refBlockBits = clusterBits + 3 - refOrder
        compressedOffsetBits = 62 - (clusterBits - 8)

        // Feature bits.
        let incompatible = header.incompatibleFeatures
        if incompatible & ~Qcow2Feature.knownIncompatible != 0 {
            throw StorageError("\(path): unsupported qcow2 incompatible features \(hex(incompatible & ~Qcow2Feature.knownIncompatible))")
        }
        if incompatible & Qcow2Feature.externalData != 0 { throw StorageError("\(path): qcow2 external data files are not supported") }
        if incompatible & Qcow2Feature.extendedL2 != 0 { throw StorageError("\(path): qcow2 extended L2 entries are not supported") }
        if header.compressionType != 0 { throw StorageError("\(path): qcow2 compression type \(header.compressionType) is not supported (only zlib)") }
        if !readOnly {
            if incompatible & Qcow2Feature.dirty != 0 {
                throw StorageError("\(path): image is marked dirty (lazy refcounts); repair it with 'qemu-img check -r all' first")
            }
            if incompatible & Qcow2Feature.corrupt != 0 { throw StorageError("\(path): image is marked corrupt; it can only be opened read-only") }
            if header.nbSnapshots != 0 { throw StorageError("\(path): images with internal snapshots can only be opened read-only") }
        }
        if header.nbSnapshots > Qcow2Limits.maxSnapshots { throw corrupt("\(header.nbSnapshots) snapshots is too many") }
        if header.nbSnapshots > 0 && (header.snapshotsOffset & clusterMask != 0 || header.snapshotsOffset >= fileLength) {
            throw corrupt("snapshot table offset \(hex(header.snapshotsOffset)) invalid")
        }

        // L1 table: must cover the virtual size, lie inside the file and respect the size limit.
        let perL1 = UInt64(cs) << UInt64(l2Bits)
        let needed = (size + perL1 - 1) / perL1
        guard UInt64(header.l1Size) >= needed else { throw corrupt("L1 table has \(header.l1Size) entries, \(needed) needed for the virtual size") }
        let l1Bytes = UInt64(header.l1Size) * 8
        guard l1Bytes <= Qcow2Limits.maxL1Bytes else { throw corrupt("L1 table of \(header.l1Size) entries is too large") }
        if header.l1Size > 0 {
            guard header.l1TableOffset & clusterMask == 0, header.l1TableOffset >= UInt64(cs),
                  header.l1TableOffset <= fileLength, l1Bytes <= fileLength - header.l1TableOffset else {
                throw corrupt("L1 table offset \(hex(header.l1TableOffset)) is unaligned or past the end of the file")
            }
        }
        // Refcount table.
        let rtBytes = UInt64(header.refcountTableClusters) << UInt64(clusterBits)
        guard header.refcountTableClusters > 0, rtBytes <= Qcow2Limits.maxRefTableBytes else {
            throw corrupt("refcount table size of \(header.refcountTableClusters) clusters out of range")
        }
        guard header.refcountTableOffset & clusterMask == 0, header.refcountTableOffset >= UInt64(cs),
              header.refcountTableOffset <= fileLength, rtBytes <= fileLength - header.refcountTableOffset else {
            throw corrupt("refcount table offset \(hex(header.refcountTableOffset)) is unaligned or past the end of the file")
        }

        l1Count = Int(header.l1Size)
        l1 = .allocate(capacity: max(1, l1Count))
        compressedCapacity = 2 * cs + 512
        l2Slot = Array(repeating: -1, count: l1Count)
        refTable = Array(repeating: 0, count: Int(rtBytes / 8))
        refSlot = Array(repeating: -1, count: refTable.count)
        // Enough L2 cache to map the whole disk, up to 32 MiB; refcount cache up to 4 MiB.
        let l2Limit = l2CacheBytes.map { max(2, $0 >> Int(bits)) } ?? max(4, (32 << 20) >> Int(bits))
        l2Cache = MetadataCache(clusterSize: cs, capacity: min(max(Int(needed), 2), l2Limit))
        refCache = MetadataCache(clusterSize: cs, capacity: min(max(refTable.count, 2), max(4, (4 << 20) >> clusterBits)))

        try file.readExact(at: header.l1TableOffset, into: UnsafeMutableRawBufferPointer(start: l1, count: l1Count * 8), what: "L1 table")
        for i in 0..<l1Count { l1[i] = UInt64(bigEndian: l1[i]) }
        try refTable.withUnsafeMutableBytes { try file.readExact(at: header.refcountTableOffset, into: $0, what: "refcount table") }
        for i in 0..<refTable.count { refTable[i] = UInt64(bigEndian: refTable[i]) }

        // Metadata map: overlapping structures are corruption.
        func claim(_ offset: UInt64, _ clusters: UInt64, _ what: String) throws {
            for c in 0..<clusters {
                let (inserted, _) = metadata.insert((offset >> UInt64(clusterBits)) + c)
                if !inserted { throw corrupt("\(what) at \(hex(offset)) overlaps other metadata") }
            }
        }
        try claim(0, 1, "header")
        if l1Count > 0 { try claim(header.l1TableOffset, (l1Bytes + UInt64(cs) - 1) >> UInt64(clusterBits), "L1 table") }
        try claim(header.refcountTableOffset, UInt64(header.refcountTableClusters), "refcount table")
        for (i, e) in refTable.enumerated() where e != 0 {
            guard e & clusterMask == 0, e < fileLength, UInt64(cs) <= fileLength - e else {
                throw corrupt("refcount block \(i) offset \(hex(e)) is unaligned or past the end of the file")
            }
            try claim(e, 1, "refcount block \(i)")
        }
        for i in 0..<l1Count where l1[i] != 0 {
            let e = l1[i]
            let off = e & l2OffsetMask
            guard e & l1ReservedMask == 0, off & clusterMask == 0 else { throw corrupt("L1 entry \(i) (\(hex(e))) is invalid") }
            if off == 0 { continue }
            guard off < fileLength, UInt64(cs) <= fileLength - off else { throw corrupt("L2 table \(i) offset \(hex(off)) is past the end of the file") }
            try claim(off, 1, "L2 table \(i)")
        }

        if !readOnly && header.autoclearFeatures != 0 {
            // Autoclear bits describe data (e.g. bitmaps) we do not keep up to date: clear them as QEMU does.
            header.autoclearFeatures = 0
            var zero: UInt64 = 0
            try withUnsafeBytes(of: &zero) { try file.write(at: 88, from: $0) }
            try file.sync()
        }

        if let name = header.backingFile, openBacking {
            let resolved = resolveBackingPath(name, relativeTo: path)
            var fmt: DiskFormat? = nil
            if let f = header.backingFormat {
                guard let known = DiskFormat(rawValue: f) else { throw StorageError("\(path): backing file format '\(f)' is not supported") }
                fmt = known
            }
            do {
                backing = try openLayer(path: resolved, format: fmt, readOnly: true, openBacking: true, chain: &chain)
            } catch let e as StorageError {
                if e.description.hasPrefix(resolved + ":") && !e.description.contains("backing") {
                    throw StorageError("\(path): cannot open backing file: \(e.description)")
                }
                throw e
            }
            backingPath = resolved
        } else if let name = header.backingFile {
            backingPath = resolveBackingPath(name, relativeTo: path)
        }
    }

    /// Opens one qcow2 image (and, unless told otherwise, its backing chain read-only).
    /// `l2CacheBytes` caps the L2 table cache (default: enough to map the whole disk, at most 32 MiB).
    public convenience init(path: String, readOnly: Bool, openBacking: Bool = true, l2CacheBytes: Int? = nil, forceShare: Bool = false) throws {
        var chain = OpenChain()
        chain.forceShare = forceShare && readOnly
        try self.init(path: path, readOnly: readOnly, openBacking: openBacking, l2CacheBytes: l2CacheBytes, chain: &chain)
    }

    deinit {
        if !closed && !isReadOnly { try? close() }
        l1.deallocate()
        scratchStorage?.deallocate()
        inflatedStorage?.deallocate()
        compressedStorage?.deallocate()
    }

    /// Flushes everything (including frees applied after the last flush) and stops further use.
    public func close() throws {
        if closed { return }
        if !isReadOnly {
            try flush()
            if refCache.dirtySlots > 0 { try flush() }
        }
        closed = true
        file.close()   // releases the image lock: the image may be opened again at once
    }

    // MARK: - Entry access

    @inline(__always) func split(_ pos: UInt64) -> (l1: Int, l2: Int) {
        let c = pos >> UInt64(clusterBits)
        return (Int(c >> UInt64(l2Bits)), Int(c & ((1 << UInt64(l2Bits)) - 1)))
    }

    /// The cached L2 table for an L1 index, loading it if needed; nil when the L1 entry is empty.
    func loadL2(_ i: Int) throws -> UnsafeMutablePointer<UInt64>? {
        let s = Int(l2Slot[i])
        if s >= 0 {
            l2Cache.touch(s)
            return l2Cache.buffer(s).assumingMemoryBound(to: UInt64.self)
        }
        let off = l1[i] & l2OffsetMask
        if off == 0 { return nil }
        let slot = try takeL2Slot()
        let buf = l2Cache.buffer(slot)
        try file.readExact(at: off, into: UnsafeMutableRawBufferPointer(start: buf, count: clusterSize), what: "L2 table")
        validateL2(buf.assumingMemoryBound(to: UInt64.self), tableOffset: off, l1Index: i)
        l2Cache.owner[slot] = i
        l2Cache.touch(slot)
        l2Slot[i] = Int32(slot)
        return buf.assumingMemoryBound(to: UInt64.self)
    }

    /// Every entry of a freshly read L2 table is checked once, so later accesses can trust it. A bad entry
    /// fails only the guest cluster it maps (as QEMU, the image is marked corrupt and one line names it).
    func validateL2(_ t: UnsafeMutablePointer<UInt64>, tableOffset: UInt64, l1Index i: Int) {
        let n = 1 << l2Bits
        let fileLength = file.length
        for j in 0..<n {
            let e = UInt64(bigEndian: t[j])
            if e == 0 { continue }
            var problem: String? = nil
            if e & compressedFlag != 0 {
                let (off, len) = compressedRange(e)
                if e & copiedFlag != 0 { problem = "compressed cluster marked copied" }
                else if !(off >= UInt64(clusterSize) && off < fileLength && len <= compressedCapacity) {
                    problem = "compressed data outside the file"
                }
            } else if e & l2ReservedMask != 0 { problem = "reserved bits set" }
            else if header.version < 3 && e & zeroFlag != 0 { problem = "zero flag in a version 2 image" }
            else if case let off = e & l2OffsetMask, off != 0 {
                if off & clusterMask != 0 { problem = "unaligned cluster offset" }
                else if off >= fileLength { problem = "cluster offset past the end of the file" }
                else if metadata.contains(off >> UInt64(clusterBits)) { problem = "data cluster overlaps metadata" }
            }
            guard let problem else { continue }
            let guestCluster = UInt64(i) << UInt64(l2Bits) | UInt64(j)
            if badClusters.insert(guestCluster).inserted {
                signalCorruption(corruptEntry(tableOffset, j, e, problem + "; guest offset \(hex(guestCluster << UInt64(clusterBits))) fails").description)
            }
        }
    }

    func corruptEntry(_ table: UInt64, _ j: Int, _ e: UInt64, _ what: String) -> StorageError {
        StorageError("\(path): corrupt qcow2 image: L2 table at \(hex(table)) entry \(j) (\(hex(e))): \(what)")
    }

    /// Fails an access to a guest cluster whose L2 entry is corrupt; costs one test while the image is sound.
    @inline(__always) func refuseBadCluster(_ i: Int, _ j: Int) throws {
        if badClusters.isEmpty { return }
        let c = UInt64(i) << UInt64(l2Bits) | UInt64(j)
        if badClusters.contains(c) {
            throw StorageError("\(path): corrupt qcow2 image: the L2 entry for guest offset \(hex(c << UInt64(clusterBits))) is invalid")
        }
    }

    /// As QEMU's qcow2_signal_corruption: one line naming the image, offset and problem, and (when writable)
    /// the header's corrupt bit, so the image is not written again until repaired. Reported once per image.
    func signalCorruption(_ message: String) {
        var line = message
        if !isReadOnly && header.incompatibleFeatures & Qcow2Feature.corrupt == 0 {
            header.incompatibleFeatures |= Qcow2Feature.corrupt
            var v = header.incompatibleFeatures.bigEndian
            let marked = (try? withUnsafeBytes(of: &v) { try file.write(at: 72, from: $0) }) != nil && (try? file.sync()) != nil
            line += marked ? "; image marked corrupt" : "; marking the image corrupt failed"
        }
        storageDiagnostic(line)
    }

    @inline(__always) func compressedRange(_ e: UInt64) -> (offset: UInt64, length: Int) {
        let off = e & ((1 << UInt64(compressedOffsetBits)) - 1)
        let sectors = (e & ~(copiedFlag | compressedFlag)) >> UInt64(compressedOffsetBits)
        return (off, Int(sectors + 1) * 512 - Int(off & 511))
    }

    /// The L2 entry (host order) for a guest offset; 0 when unallocated.
    @inline(__always) func entry(at pos: UInt64) throws -> UInt64 {
        let (i, j) = split(pos)
        guard let t = try loadL2(i) else { return 0 }
        try refuseBadCluster(i, j)
        return UInt64(bigEndian: t[j])
    }

    func takeL2Slot() throws -> Int {
        let s = l2Cache.victim()
        let owner = l2Cache.owner[s]
        if owner >= 0 {
            if l2Cache.dirty[s] {
                // An L2 table may only reach the disk after the refcounts and the data of what it maps.
                try writeRefcountBlocks(sync: false)
                try file.sync()
                try file.write(at: l1[owner] & l2OffsetMask, from: UnsafeRawBufferPointer(start: l2Cache.buffer(s), count: clusterSize))
                l2Cache.markClean(s)
            }
            l2Slot[owner] = -1
            l2Cache.owner[s] = -1
        }
        return s
    }

    // MARK: - Reading

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(path, offset, buffer.count, size)
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let pos = offset + UInt64(done)
            let inCluster = Int(pos & clusterMask)
            var n = min(clusterSize - inCluster, buffer.count - done)
            let e = try entry(at: pos)
            if isPlainData(e) {
                // Merge clusters that are contiguous in the file into one pread.
                let host = (e & l2OffsetMask) + UInt64(inCluster)
                while done + n < buffer.count {
                    let next = try entry(at: pos + UInt64(n))
                    guard isPlainData(next), next & l2OffsetMask == host + UInt64(n) else { break }
                    n += min(clusterSize, buffer.count - done - n)
                }
                let got = try file.read(at: host, into: UnsafeMutableRawBufferPointer(start: base + done, count: n))
                if got < n { memset(base + done + got, 0, n - got) }   // clusters cut short by the end of the file
            } else {
                try readPart(entry: e, pos: pos, into: base + done, count: n)
            }
            done += n
        }
    }

    /// A standard cluster with data in this file (not compressed, not zero, not unallocated).
    @inline(__always) func isPlainData(_ e: UInt64) -> Bool {
        e & (compressedFlag | zeroFlag) == 0 && e & l2OffsetMask != 0
    }

    /// Reads `count` bytes at guest `pos` (within one cluster) as described by L2 entry `e`.
    func readPart(entry e: UInt64, pos: UInt64, into dst: UnsafeMutableRawPointer, count: Int) throws {
        let inCluster = Int(pos & clusterMask)
        if e & compressedFlag != 0 {
            try inflateCluster(e)
            memcpy(dst, inflated + inCluster, count)
        } else if e & zeroFlag != 0 {
            memset(dst, 0, count)
        } else if e & l2OffsetMask != 0 {
            let n = try file.read(at: (e & l2OffsetMask) + UInt64(inCluster), into: UnsafeMutableRawBufferPointer(start: dst, count: count))
            if n < count { memset(dst + n, 0, count - n) }   // a cluster cut short by the end of the file
        } else if let b = backing, pos < b.size {
            let n = Int(min(UInt64(count), b.size - pos))
            try b.read(at: pos, into: UnsafeMutableRawBufferPointer(start: dst, count: n))
            if n < count { memset(dst + n, 0, count - n) }
        } else {
            memset(dst, 0, count)
        }
    }

    func inflateCluster(_ e: UInt64) throws {
        if e == inflatedEntry { return }
        let (off, len) = compressedRange(e)
        guard off < file.length, len <= compressedCapacity else {
            throw StorageError("\(path): corrupt qcow2 image: compressed cluster at \(hex(off)) is outside the file")
        }
        let avail = Int(min(UInt64(len), file.length - off))
        let got = try file.read(at: off, into: UnsafeMutableRawBufferPointer(start: compressedBuffer, count: avail))
        var stream = z_stream()
        guard inflateInit2_(&stream, -12, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw StorageError("\(path): zlib initialisation failed")
        }
        stream.next_in = compressedBuffer.assumingMemoryBound(to: Bytef.self)
        stream.avail_in = uInt(got)
        stream.next_out = inflated.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(clusterSize)
        let r = CZlib.inflate(&stream, Z_FINISH)
        let filled = stream.avail_out == 0
        inflateEnd(&stream)
        // QEMU accepts a stream that fills the cluster even if trailing sector padding follows.
        guard filled && (r == Z_STREAM_END || r == Z_BUF_ERROR || r == Z_OK) else {
            inflatedEntry = 0
            throw StorageError("\(path): corrupt qcow2 image: compressed cluster at \(hex(off)) does not decompress to one cluster")
        }
        inflatedEntry = e
    }

    // MARK: - Writing

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        if isReadOnly { throw StorageError("\(path): image is open read-only") }
        try checkRange(path, offset, buffer.count, size)
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let pos = offset + UInt64(done)
            let inCluster = Int(pos & clusterMask)
            var n = min(clusterSize - inCluster, buffer.count - done)
            let e = try entry(at: pos)
            if isPlainData(e) && e & copiedFlag != 0 {
                // Clusters this image owns, contiguous in the file: one pwrite in place.
                let host = (e & l2OffsetMask) + UInt64(inCluster)
                while done + n < buffer.count {
                    let next = try entry(at: pos + UInt64(n))
                    guard isPlainData(next), next & copiedFlag != 0, next & l2OffsetMask == host + UInt64(n) else { break }
                    n += min(clusterSize, buffer.count - done - n)
                }
                try file.write(at: host, from: UnsafeRawBufferPointer(start: base + done, count: n))
            } else {
                try writePart(pos: pos, from: base + done, count: n)
            }
            done += n
        }
    }

    func writePart(pos: UInt64, from src: UnsafeRawPointer, count: Int) throws {
        let (i, j) = split(pos)
        let t = try l2ForWrite(i)
        try refuseBadCluster(i, j)
        let e = UInt64(bigEndian: t[j])
        let off = e & l2OffsetMask
        let inCluster = Int(pos & clusterMask)
        let owned = e & compressedFlag == 0 && off != 0 && e & copiedFlag != 0
        if owned && e & zeroFlag == 0 {
            // Fast path: the cluster is ours alone; overwrite in place.
            try file.write(at: off + UInt64(inCluster), from: UnsafeRawBufferPointer(start: src, count: count))
            return
        }
        // Build the whole new cluster: old contents (backing, zeros, compressed, shared) plus the new bytes.
        var data = src
        if count != clusterSize {
            try readPart(entry: e, pos: pos & ~clusterMask, into: scratch, count: clusterSize)
            memcpy(scratch + inCluster, src, count)
            data = UnsafeRawPointer(scratch)
        }
        let host = owned ? off : try allocateCluster()
        try file.write(at: host, from: UnsafeRawBufferPointer(start: data, count: clusterSize))
        // The table may have been evicted while allocating: look it up again.
        let t2 = try l2ForWrite(i)
        t2[j] = (host | copiedFlag).bigEndian
        l2Cache.markDirty(Int(l2Slot[i]))
        if !owned { release(entry: e) }
        if e == inflatedEntry { inflatedEntry = 0 }
    }

    /// The L2 table for L1 index i, owned by this image alone (allocated or copied as needed), marked for write.
    func l2ForWrite(_ i: Int) throws -> UnsafeMutablePointer<UInt64> {
        let e = l1[i]
        if e & copiedFlag != 0, let t = try loadL2(i) { return t }
        let newOffset = try allocateCluster()
        let slot: Int
        if let _ = try loadL2(i) {
            slot = Int(l2Slot[i])              // shared table: copy it
        } else {
            slot = try takeL2Slot()
            memset(l2Cache.buffer(slot), 0, clusterSize)
            l2Cache.owner[slot] = i
            l2Slot[i] = Int32(slot)
        }
        l2Cache.touch(slot)
        try file.write(at: newOffset, from: UnsafeRawBufferPointer(start: l2Cache.buffer(slot), count: clusterSize))
        l2Cache.markClean(slot)
        let old = e & l2OffsetMask
        metadata.insert(newOffset >> UInt64(clusterBits))
        l1[i] = newOffset | copiedFlag
        l1DirtyLow = min(l1DirtyLow, i)
        l1DirtyHigh = max(l1DirtyHigh, i)
        if old != 0 { pendingFrees.append(old >> UInt64(clusterBits)) }
        return l2Cache.buffer(slot).assumingMemoryBound(to: UInt64.self)
    }

    /// Queues the host clusters an entry used for release once the change is durable.
    func release(entry e: UInt64) {
        if e & compressedFlag != 0 {
            let (off, len) = compressedRange(e)
            let first = off >> UInt64(clusterBits)
            let last = (off + UInt64(len) - 1) >> UInt64(clusterBits)
            for c in first...last { pendingFrees.append(c) }
        } else if e & l2OffsetMask != 0 {
            pendingFrees.append((e & l2OffsetMask) >> UInt64(clusterBits))
        }
    }

    // MARK: - Discard

    public func discard(at offset: UInt64, length: UInt64) throws {
        if isReadOnly { throw StorageError("\(path): image is open read-only") }
        guard length > 0 else { return }
        guard length <= size, offset <= size - length else {
            throw StorageError("\(path): discard at offset \(offset) length \(length) is beyond the disk size \(size)")
        }
        try unmap(from: offset, length: length, fallThrough: false)
    }

    /// Unmaps whole clusters in the range; partial clusters at the ends are zeroed instead.
    /// `fallThrough` makes clusters read from the backing file again (used after commit); otherwise they read as zeros.
    public func unmap(from offset: UInt64, length: UInt64, fallThrough: Bool) throws {
        var pos = offset
        let end = offset + length
        let zeros = UnsafeMutableRawPointer.allocate(byteCount: clusterSize, alignment: 16)
        defer { zeros.deallocate() }
        memset(zeros, 0, clusterSize)
        while pos < end {
            let inCluster = Int(pos & clusterMask)
            let n = Int(min(UInt64(clusterSize - inCluster), end - pos))
            let clusterEnd = (pos & ~clusterMask) + UInt64(clusterSize)
            let wholeCluster = inCluster == 0 && (n == clusterSize || (clusterEnd > size && pos + UInt64(n) == size))
            if !wholeCluster {
                if !fallThrough { try write(at: pos, from: UnsafeRawBufferPointer(start: zeros, count: n)) }
                pos += UInt64(n); continue
            }
            let (i, j) = split(pos)
            // Nothing to do where no table exists and nothing shows through.
            if l1[i] & l2OffsetMask == 0 && (fallThrough || backing == nil) { pos += UInt64(n); continue }
            let t = try l2ForWrite(i)
            try refuseBadCluster(i, j)
            let e = UInt64(bigEndian: t[j])
            var replacement: UInt64 = 0
            if !fallThrough && backing != nil {
                if header.version >= 3 { replacement = zeroFlag } else {
                    try write(at: pos, from: UnsafeRawBufferPointer(start: zeros, count: n)); pos += UInt64(n); continue
                }
            }
            if e != replacement {
                t[j] = replacement.bigEndian
                l2Cache.markDirty(Int(l2Slot[i]))
                release(entry: e)
                if e == inflatedEntry { inflatedEntry = 0 }
            }
            pos += UInt64(n)
        }
    }

    // MARK: - Refcounts

    @inline(__always) func refcount(in block: UnsafeMutableRawPointer, _ k: Int) -> UInt64 {
        rawRefcount(block, k, refOrder)
    }

    @inline(__always) func setRefcount(in block: UnsafeMutableRawPointer, _ k: Int, _ v: UInt64) {
        setRawRefcount(block, k, refOrder, v)
    }

    /// The cached refcount block for refcount table index t; nil when the table has no block there.
    func loadRefBlock(_ t: Int) throws -> (UnsafeMutableRawPointer, Int)? {
        guard t < refTable.count else { return nil }
        let s = Int(refSlot[t])
        if s >= 0 { refCache.touch(s); return (refCache.buffer(s), s) }
        let off = refTable[t]
        if off == 0 { return nil }
        let slot = refCache.victim()
        let owner = refCache.owner[slot]
        if owner >= 0 {
            if refCache.dirty[slot] {
                // Refcounts may reach the disk early: higher on-disk counts only leak.
                try file.write(at: refTable[owner], from: UnsafeRawBufferPointer(start: refCache.buffer(slot), count: clusterSize))
                refCache.markClean(slot)
            }
            refSlot[owner] = -1
        }
        let buf = refCache.buffer(slot)
        try file.readExact(at: off, into: UnsafeMutableRawBufferPointer(start: buf, count: clusterSize), what: "refcount block")
        refCache.owner[slot] = t
        refCache.touch(slot)
        refSlot[t] = Int32(slot)
        return (buf, slot)
    }

    /// Refcount of a host cluster as currently known (cache included).
    public func refcount(ofCluster c: UInt64) throws -> UInt64 {
        let t = Int(c >> UInt64(refBlockBits))
        guard let (b, _) = try loadRefBlock(t) else { return 0 }
        return refcount(in: b, Int(c & ((1 << UInt64(refBlockBits)) - 1)))
    }

    /// Finds a free cluster, sets its refcount to 1 and returns its byte offset.
    func allocateCluster() throws -> UInt64 {
        let perBlock = 1 << refBlockBits
        var c = max(freeHint, 1)
        let limit = Qcow2Limits.maxHostOffset >> UInt64(clusterBits)
        while c < limit {
            let t = Int(c >> UInt64(refBlockBits))
            if t >= refTable.count || refTable[t] == 0 { try createRefBlock(t) }
            guard let (b, slot) = try loadRefBlock(t) else { throw StorageError("\(path): internal error: refcount block \(t) missing") }
            var k = Int(c & UInt64(perBlock - 1))
            while k < perBlock {
                if refcount(in: b, k) == 0 {
                    let found = (UInt64(t) << UInt64(refBlockBits)) + UInt64(k)
                    if !metadata.contains(found) {
                        setRefcount(in: b, k, 1)
                        refCache.markDirty(slot)
                        freeHint = found + 1
                        return found << UInt64(clusterBits)
                    }
                }
                k += 1
            }
            c = UInt64(t + 1) << UInt64(refBlockBits)
        }
        throw StorageError("\(path): image is full (host offsets beyond 2^56)")
    }

    /// Creates the refcount block for table index t, placed in the first cluster of the range it covers
    /// (free by definition: nothing in that range has a refcount yet), so it describes itself.
    func createRefBlock(_ t: Int) throws {
        if t >= refTable.count { try growRefTable(toInclude: t) }
        if refTable[t] != 0 { return }
        guard t > 0 else { throw StorageError("\(path): corrupt qcow2 image: no refcount block covers the header") }
        let c = UInt64(t) << UInt64(refBlockBits)
        guard c < (Qcow2Limits.maxHostOffset >> UInt64(clusterBits)) else { throw StorageError("\(path): image is full") }
        guard !metadata.contains(c) else { throw StorageError("\(path): corrupt qcow2 image: metadata at \(hex(c << UInt64(clusterBits))) has no refcount") }
        let block = UnsafeMutableRawPointer.allocate(byteCount: clusterSize, alignment: 16)
        defer { block.deallocate() }
        memset(block, 0, clusterSize)
        setRefcount(in: block, 0, 1)
        let off = c << UInt64(clusterBits)
        try file.write(at: off, from: UnsafeRawBufferPointer(start: block, count: clusterSize))
        try file.sync()        // the table entry must never point at an unwritten block
        refTable[t] = off
        var be = off.bigEndian
        try withUnsafeBytes(of: &be) { try file.write(at: header.refcountTableOffset + UInt64(t) * 8, from: $0) }
        metadata.insert(c)
    }

    /// Moves the refcount table to a bigger one at the first cluster no existing block covers, with new
    /// blocks right after it that cover the table and themselves; then switches the header over.
    func growRefTable(toInclude t: Int) throws {
        let oldCount = refTable.count
        let perBlock = UInt64(1) << UInt64(refBlockBits)
        let entriesPerCluster = clusterSize / 8
        let start = UInt64(oldCount) * perBlock                      // first uncovered cluster
        var newCount = max(t + 1, oldCount * 2)
        newCount = (newCount + entriesPerCluster - 1) / entriesPerCluster * entriesPerCluster
        var tableClusters = UInt64(newCount / entriesPerCluster)
        var blocks: UInt64 = 1
        while (tableClusters + blocks + perBlock - 1) / perBlock > blocks { blocks += 1 }
        if UInt64(oldCount) + blocks > UInt64(newCount) {
            newCount = (oldCount + Int(blocks) + entriesPerCluster - 1) / entriesPerCluster * entriesPerCluster
            tableClusters = UInt64(newCount / entriesPerCluster)
            while (tableClusters + blocks + perBlock - 1) / perBlock > blocks { blocks += 1 }
        }
        guard UInt64(newCount) * 8 <= Qcow2Limits.maxRefTableBytes,
              (start + tableClusters + blocks) < (Qcow2Limits.maxHostOffset >> UInt64(clusterBits)) else {
            throw StorageError("\(path): image too large: refcount table would exceed its size limit")
        }
        for c in 0..<(tableClusters + blocks) where metadata.contains(start + c) {
            throw StorageError("\(path): corrupt qcow2 image: metadata at \(hex((start + c) << UInt64(clusterBits))) has no refcount")
        }
        let tableOffset = start << UInt64(clusterBits)
        let blockBuf = UnsafeMutableRawPointer.allocate(byteCount: clusterSize, alignment: 16)
        defer { blockBuf.deallocate() }
        var newTable = refTable + Array(repeating: 0, count: newCount - oldCount)
        let used = tableClusters + blocks
        for b in 0..<blocks {
            memset(blockBuf, 0, clusterSize)
            let first = b * perBlock
            for k in 0..<perBlock where first + k < used { setRefcount(in: blockBuf, Int(k), 1) }
            let off = (start + tableClusters + b) << UInt64(clusterBits)
            try file.write(at: off, from: UnsafeRawBufferPointer(start: blockBuf, count: clusterSize))
            newTable[oldCount + Int(b)] = off
        }
        var disk = newTable.map { $0.bigEndian }
        try disk.withUnsafeBytes { try file.write(at: tableOffset, from: $0) }
        try file.sync()
        var fields = [UInt8](repeating: 0, count: 12)
        fields.withUnsafeMutableBytes {
            storeBE64($0.baseAddress!, 0, tableOffset)
            storeBE32($0.baseAddress!, 8, UInt32(tableClusters))
        }
        try fields.withUnsafeBytes { try file.write(at: 48, from: $0) }
        try file.sync()
        let oldOffset = header.refcountTableOffset
        let oldClusters = UInt64(header.refcountTableClusters)
        header.refcountTableOffset = tableOffset
        header.refcountTableClusters = UInt32(tableClusters)
        refTable = newTable
        refSlot += Array(repeating: -1, count: newCount - oldCount)
        for c in 0..<oldClusters { metadata.remove((oldOffset >> UInt64(clusterBits)) + c) }
        for c in 0..<(tableClusters + blocks) { metadata.insert(start + c) }
        // The old table is unreferenced now that the header is durable.
        for c in 0..<oldClusters { try decrementRefcount((oldOffset >> UInt64(clusterBits)) + c) }
        disk.removeAll()
    }

    func decrementRefcount(_ c: UInt64) throws {
        let t = Int(c >> UInt64(refBlockBits))
        guard let (b, slot) = try loadRefBlock(t) else {
            throw StorageError("\(path): corrupt qcow2 image: freeing cluster \(hex(c << UInt64(clusterBits))) without a refcount block")
        }
        let k = Int(c & ((1 << UInt64(refBlockBits)) - 1))
        let v = refcount(in: b, k)
        guard v > 0 else { throw StorageError("\(path): corrupt qcow2 image: refcount of cluster \(hex(c << UInt64(clusterBits))) is already zero") }
        setRefcount(in: b, k, v - 1)
        refCache.markDirty(slot)
        if v == 1 {
            metadata.remove(c)
            freeHint = min(freeHint, c)
        }
    }

    // MARK: - Flush

    func writeRefcountBlocks(sync: Bool) throws {
        guard refCache.dirtySlots > 0 else { return }
        for s in 0..<refCache.capacity where refCache.dirty[s] {
            try file.write(at: refTable[refCache.owner[s]], from: UnsafeRawBufferPointer(start: refCache.buffer(s), count: clusterSize))
            refCache.markClean(s)
        }
        if sync { try file.sync() }
    }

    public func flush() throws {
        if isReadOnly { return }
        // Data and refcounts first: no L2 entry may reach the disk before what it points to and counts it.
        try writeRefcountBlocks(sync: false)
        try file.sync()
        if l2Cache.dirtySlots > 0 || l1DirtyHigh >= 0 {
            for s in 0..<l2Cache.capacity where l2Cache.dirty[s] {
                try file.write(at: l1[l2Cache.owner[s]] & l2OffsetMask, from: UnsafeRawBufferPointer(start: l2Cache.buffer(s), count: clusterSize))
                l2Cache.markClean(s)
            }
            if l1DirtyHigh >= 0 {
                try file.sync()     // new L2 tables are durable before the L1 entries that name them
                let lo = l1DirtyLow, hi = l1DirtyHigh
                var be = [UInt64](repeating: 0, count: hi - lo + 1)
                for i in lo...hi { be[i - lo] = l1[i].bigEndian }
                try be.withUnsafeBytes { try file.write(at: header.l1TableOffset + UInt64(lo) * 8, from: $0) }
                l1DirtyLow = Int.max; l1DirtyHigh = -1
            }
            try file.sync()
        }
        // The entries that stopped using these clusters are durable now: they may be reused.
        if !pendingFrees.isEmpty {
            let frees = pendingFrees
            pendingFrees.removeAll(keepingCapacity: true)
            for c in frees { try decrementRefcount(c) }
        }
    }

    // MARK: - Allocation status

    public func extent(at offset: UInt64, maxLength: UInt64) throws -> Extent {
        let end = min(size, offset &+ maxLength < offset ? UInt64.max : offset + maxLength)
        guard offset < end else { return Extent(kind: .zero, length: 0, hostOffset: nil, compressed: false) }
        func classify(_ e: UInt64) -> (ExtentKind, UInt64?, Bool) {
            if e & compressedFlag != 0 { return (.data, nil, true) }
            if e & zeroFlag != 0 { return (.zero, nil, false) }
            if e & l2OffsetMask != 0 { return (.data, e & l2OffsetMask, false) }
            return (.unallocated, nil, false)
        }
        let first = classify(try entry(at: offset))
        var pos = (offset & ~clusterMask) + UInt64(clusterSize)
        while pos < end {
            let (i, _) = split(pos)
            if l1[i] & l2OffsetMask == 0 {
                // A whole missing L2 table: skip it in one step.
                if first.0 != .unallocated { break }
                pos = UInt64(i + 1) << UInt64(clusterBits + l2Bits)
                continue
            }
            if !badClusters.isEmpty, badClusters.contains(pos >> UInt64(clusterBits)) { break }  // its own error later
            let next = classify(try entry(at: pos))
            if next.0 != first.0 || next.2 != first.2 { break }
            if let h = first.1 {
                guard let h2 = next.1, h2 == h + (pos - (offset & ~clusterMask)) else { break }
            }
            pos += UInt64(clusterSize)
        }
        let stop = min(pos, end)
        let host = first.1.map { $0 + (offset & clusterMask) }
        return Extent(kind: first.0, length: stop - offset, hostOffset: host, compressed: first.2)
    }

    // MARK: - Header edits

    /// Points the image at a new backing file (nil removes it). Only the header cluster changes.
    public func setBacking(name: String?, format: DiskFormat?) throws {
        if isReadOnly { throw StorageError("\(path): image is open read-only") }
        try flush()
        var h = header
        h.backingFile = name
        h.backingFormat = name == nil ? nil : format?.rawValue
        h.backingFileOffset = 0
        h.backingFileSize = 0
        var bytes = try h.serialize(clusterSize: clusterSize, path: path)
        // Clear the rest of the header cluster so stale extension bytes are not parsed later.
        let tail = min(clusterSize, Int(min(UInt64(clusterSize), file.length))) - bytes.count
        if tail > 0 { bytes += [UInt8](repeating: 0, count: tail) }
        try bytes.withUnsafeBytes { try file.write(at: 0, from: $0) }
        try file.sync()
        header = h
    }

    public var diskUsage: UInt64 { file.allocatedBytes() }
    public var fileLength: UInt64 { file.length }
}
