#if canImport(Glibc)
import Glibc
#endif

/// Result of a consistency check, with qemu-img check's categories.
public struct CheckResult: Sendable {
    public var corruptions = 0
    public var leaks = 0
    public var checkErrors = 0
    /// One line per problem, worded like qemu-img check.
    public var messages: [String] = []
    public var totalClusters: UInt64 = 0
    public var allocatedClusters: UInt64 = 0
    public var fragmentedClusters: UInt64 = 0
    public var compressedClusters: UInt64 = 0
    public var imageEndOffset: UInt64 = 0
    public var leakedClusterIndices: [UInt64] = []
    public var repairedLeaks = 0
    /// qemu-img check exit status: 0 clean, 2 corrupt, 3 leaks only.
    public var exitCode: Int32 { corruptions > 0 ? 2 : (leaks > 0 ? 3 : 0) }
}

extension Qcow2Disk {
    /// Recomputes every cluster's reference count from the L1/L2 tables (active and snapshot ones),
    /// the refcount structures and the header, and compares with the stored refcounts.
    /// With `repairLeaks`, stored refcounts that are too high are lowered to the computed value.
    public static func check(path: String, repairLeaks: Bool = false, forceShare: Bool = false) throws -> CheckResult {
        let f = try ImageFile(path: path, writable: repairLeaks,
                              lock: .forImage(writable: repairLeaks, metadata: true, forceShare: forceShare && !repairLeaks))
        let fileLength = f.length
        guard fileLength >= 72 else { throw StorageError("\(path): file too short to be a qcow2 image (\(fileLength) bytes)") }
        var fixed = [UInt8](repeating: 0, count: 24)
        _ = try fixed.withUnsafeMutableBytes { try f.read(at: 0, into: $0) }
        let bits = fixed.withUnsafeBytes { loadBE32($0.baseAddress!, 20) }
        guard bits >= 9 && bits <= 21 else { throw StorageError("\(path): invalid qcow2 header: cluster size 2^\(bits) out of range") }
        let cs = 1 << Int(bits)
        let cb = UInt64(bits)
        var first = [UInt8](repeating: 0, count: Int(min(UInt64(cs), fileLength)))
        _ = try first.withUnsafeMutableBytes { try f.read(at: 0, into: $0) }
        let h = try first.withUnsafeBytes { try Qcow2Header(parsing: $0, fileLength: fileLength, path: path) }

        let nClusters = (fileLength + UInt64(cs) - 1) >> cb
        guard nClusters <= 1 << 26 else { throw StorageError("\(path): image too large to check (\(nClusters) clusters)") }
        var refs = [UInt32](repeating: 0, count: Int(nClusters))
        var r = CheckResult()
        r.totalClusters = (h.size + UInt64(cs) - 1) >> cb
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: cs, alignment: 16)
        defer { buffer.deallocate() }

        // Keeps memory bounded on badly broken images: the counters go on, the text stops.
        func say(_ message: @autoclosure () -> String) {
            if r.messages.count < 10000 { r.messages.append(message()) }
        }
        func addRef(_ offset: UInt64, _ bytes: UInt64, _ what: String) {
            guard bytes > 0 else { return }
            let firstC = offset >> cb
            let lastC = (offset + bytes - 1) >> cb
            if lastC >= nClusters || offset > fileLength {
                r.corruptions += 1
                say("ERROR \(what) at offset \(hex(offset)) is past the end of the image file")
                return
            }
            for c in firstC...lastC { refs[Int(c)] &+= 1 }
        }
        func readCluster(_ off: UInt64) -> Bool {
            (try? f.readExact(at: off, into: UnsafeMutableRawBufferPointer(start: buffer, count: cs), what: "table")) != nil
        }

        addRef(0, UInt64(cs), "header")
        let rtBytes = UInt64(h.refcountTableClusters) << cb
        var refTable: [UInt64] = []
        if h.refcountTableOffset & UInt64(cs - 1) != 0 || rtBytes > Qcow2Limits.maxRefTableBytes || h.refcountTableOffset > fileLength || rtBytes > fileLength - h.refcountTableOffset {
            throw StorageError("\(path): corrupt qcow2 image: refcount table offset \(hex(h.refcountTableOffset)) or size invalid")
        }
        refTable = Array(repeating: 0, count: Int(rtBytes / 8))
        try refTable.withUnsafeMutableBytes { try f.readExact(at: h.refcountTableOffset, into: $0, what: "refcount table") }
        refTable = refTable.map { UInt64(bigEndian: $0) }
        addRef(h.refcountTableOffset, rtBytes, "refcount table")
        for (i, e) in refTable.enumerated() where e != 0 {
            if e & UInt64(cs - 1) != 0 {
                r.corruptions += 1
                say("ERROR refcount block \(i) is not cluster aligned; refcount table entry corrupted")
                refTable[i] = 0
                continue
            }
            if e >= fileLength {
                r.corruptions += 1
                say("ERROR refcount block \(i) is outside image")
                refTable[i] = 0
                continue
            }
            addRef(e, UInt64(cs), "refcount block \(i)")
        }

        // Active-table entries to check against the COPIED flag once stored refcounts are known.
        var copiedChecks: [(cluster: UInt64, copied: Bool, isTable: Bool)] = []
        var lastData: UInt64 = 0

        func walkL1(_ l1Offset: UInt64, _ l1Size: UInt64, active: Bool, name: String) {
            let bytes = l1Size * 8
            guard bytes <= Qcow2Limits.maxL1Bytes else {
                r.corruptions += 1; say("ERROR \(name) L1 table too large"); return
            }
            if l1Size == 0 { return }
            guard l1Offset & UInt64(cs - 1) == 0, l1Offset <= fileLength, bytes <= fileLength - l1Offset else {
                r.corruptions += 1; say("ERROR \(name) L1 table at \(hex(l1Offset)) is invalid"); return
            }
            addRef(l1Offset, bytes, "\(name) L1 table")
            var l1 = [UInt64](repeating: 0, count: Int(l1Size))
            guard (try? l1.withUnsafeMutableBytes({ try f.readExact(at: l1Offset, into: $0, what: "L1 table") })) != nil else {
                r.checkErrors += 1; return
            }
            for (i, raw) in l1.enumerated() where raw != 0 {
                let e = UInt64(bigEndian: raw)
                let off = e & l2OffsetMask
                if off == 0 { continue }
                if off & UInt64(cs - 1) != 0 || e & l1ReservedMask != 0 {
                    r.corruptions += 1; say("ERROR L2 table offset \(hex(off)) unaligned or reserved bits set (L1 index \(i))"); continue
                }
                addRef(off, UInt64(cs), "L2 table")
                if active { copiedChecks.append((off >> cb, e & copiedFlag != 0, true)) }
                guard off < fileLength, readCluster(off) else { continue }
                let t = buffer.assumingMemoryBound(to: UInt64.self)
                let compressedBits = 62 - (Int(cb) - 8)
                for j in 0..<(cs / 8) {
                    let le = UInt64(bigEndian: t[j])
                    if le == 0 { continue }
                    if le & compressedFlag != 0 {
                        let coff = le & ((1 << UInt64(compressedBits)) - 1)
                        let sectors = (le & ~(copiedFlag | compressedFlag)) >> UInt64(compressedBits)
                        let len = (sectors + 1) * 512 - (coff & 511)
                        // Compressed clusters count as fragmented (qemu-img does the same).
                        if active { r.compressedClusters += 1; r.allocatedClusters += 1; r.fragmentedClusters += 1 }
                        addRef(coff, len, "compressed cluster")
                        continue
                    }
                    let doff = le & l2OffsetMask
                    if le & l2ReservedMask != 0 {
                        r.corruptions += 1; say("ERROR L2 entry \(hex(le)) has reserved bits set"); continue
                    }
                    if doff == 0 { continue }
                    if doff & UInt64(cs - 1) != 0 {
                        r.corruptions += 1; say("ERROR offset=\(hex(doff)): Cluster is not properly aligned; L2 entry corrupted."); continue
                    }
                    addRef(doff, UInt64(cs), "data cluster")
                    if active {
                        r.allocatedClusters += 1
                        if lastData != 0 && doff != lastData + UInt64(cs) { r.fragmentedClusters += 1 }
                        lastData = doff
                        copiedChecks.append((doff >> cb, le & copiedFlag != 0, false))
                    }
                }
            }
        }

        walkL1(h.l1TableOffset, UInt64(h.l1Size), active: true, name: "active")

        // Internal snapshots: their table and L1 tables hold references too.
        if h.nbSnapshots > 0 {
            if h.nbSnapshots > Qcow2Limits.maxSnapshots || h.snapshotsOffset & UInt64(cs - 1) != 0 || h.snapshotsOffset >= fileLength {
                r.corruptions += 1; say("ERROR snapshot table at \(hex(h.snapshotsOffset)) is invalid")
            } else {
                var pos = h.snapshotsOffset
                var entry = [UInt8](repeating: 0, count: 40)
                for n in 0..<Int(h.nbSnapshots) {
                    guard (try? entry.withUnsafeMutableBytes({ try f.readExact(at: pos, into: $0, what: "snapshot") })) != nil else {
                        r.corruptions += 1; say("ERROR snapshot \(n) lies past the end of the file"); break
                    }
                    let (l1o, l1s, idLen, nameLen, extra) = entry.withUnsafeBytes { b -> (UInt64, UInt32, UInt16, UInt16, UInt32) in
                        let p = b.baseAddress!
                        return (loadBE64(p, 0), loadBE32(p, 8), loadBE16(p, 12), loadBE16(p, 14), loadBE32(p, 36))
                    }
                    walkL1(l1o, UInt64(l1s), active: false, name: "snapshot \(n)")
                    var len = 40 + UInt64(extra) + UInt64(idLen) + UInt64(nameLen)
                    len = (len + 7) & ~7
                    pos += len
                }
                addRef(h.snapshotsOffset, pos - h.snapshotsOffset, "snapshot table")
            }
        }

        // Compare with stored refcounts.
        let order = Int(h.refcountOrder)
        let blockBits = Int(cb) + 3 - order
        var blockIndex = -1
        var blockValid = false
        let block = UnsafeMutableRawPointer.allocate(byteCount: cs, alignment: 16)
        defer { block.deallocate() }
        func stored(_ c: UInt64) -> UInt64 {
            let t = Int(c >> UInt64(blockBits))
            if t != blockIndex {
                blockIndex = t
                blockValid = t < refTable.count && refTable[t] != 0 &&
                    (try? f.readExact(at: refTable[t], into: UnsafeMutableRawBufferPointer(start: block, count: cs), what: "refcount block")) != nil
            }
            guard blockValid else { return 0 }
            return rawRefcount(block, Int(c & ((1 << UInt64(blockBits)) - 1)), order)
        }
        var storedCounts = [UInt32](repeating: 0, count: Int(nClusters))   // saturated; only "== 1" matters
        var repairs: [(UInt64, UInt64)] = []
        for c in 0..<nClusters {
            let s = stored(c)
            storedCounts[Int(c)] = UInt32(min(s, UInt64(UInt32.max)))
            let computed = UInt64(refs[Int(c)])
            if computed > 0 || s > 0 { r.imageEndOffset = (c + 1) << cb }
            if s == computed { continue }
            if s < computed {
                r.corruptions += 1
                say("ERROR cluster \(c) refcount=\(s) reference=\(computed)")
            } else {
                r.leaks += 1
                r.leakedClusterIndices.append(c)
                say("Leaked cluster \(c) refcount=\(s) reference=\(computed)")
                repairs.append((c, computed))
            }
        }
        if h.nbSnapshots == 0 {
            for chk in copiedChecks where chk.cluster < nClusters {
                let s = storedCounts[Int(chk.cluster)]
                if (s == 1) != chk.copied {
                    r.corruptions += 1
                    say("ERROR OFLAG_COPIED \(chk.isTable ? "L2 table" : "data cluster") at \(hex(chk.cluster << cb)): refcount=\(s)")
                }
            }
        }
        r.imageEndOffset = max(r.imageEndOffset, min(fileLength, UInt64(cs)))

        if repairLeaks && !repairs.isEmpty && r.corruptions == 0 {
            var current = -1
            for (c, value) in repairs {
                let t = Int(c >> UInt64(blockBits))
                if t != current {
                    if current >= 0 { try f.write(at: refTable[current], from: UnsafeRawBufferPointer(start: block, count: cs)) }
                    current = t
                    try f.readExact(at: refTable[t], into: UnsafeMutableRawBufferPointer(start: block, count: cs), what: "refcount block")
                }
                setRawRefcount(block, Int(c & ((1 << UInt64(blockBits)) - 1)), order, value)
            }
            if current >= 0 { try f.write(at: refTable[current], from: UnsafeRawBufferPointer(start: block, count: cs)) }
            try f.sync()
            r.repairedLeaks = repairs.count
        }
        return r
    }
}

func rawRefcount(_ block: UnsafeMutableRawPointer, _ k: Int, _ order: Int) -> UInt64 {
    switch order {
    case 4: return UInt64(loadBE16(block, k * 2))
    case 3: return UInt64(block.load(fromByteOffset: k, as: UInt8.self))
    case 5: return UInt64(loadBE32(block, k * 4))
    case 6: return loadBE64(block, k * 8)
    default:
        let bitsPer = 1 << order
        let byte = block.load(fromByteOffset: (k * bitsPer) >> 3, as: UInt8.self)
        return UInt64((byte >> UInt8((k * bitsPer) & 7)) & UInt8((1 << bitsPer) - 1))
    }
}

func setRawRefcount(_ block: UnsafeMutableRawPointer, _ k: Int, _ order: Int, _ v: UInt64) {
    switch order {
    case 4: storeBE16(block, k * 2, UInt16(truncatingIfNeeded: v))
    case 3: block.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: k, as: UInt8.self)
    case 5: storeBE32(block, k * 4, UInt32(truncatingIfNeeded: v))
    case 6: storeBE64(block, k * 8, v)
    default:
        let bitsPer = 1 << order
        let at = (k * bitsPer) >> 3
        let shift = UInt8((k * bitsPer) & 7)
        let mask = UInt8((1 << bitsPer) - 1) << shift
        let old = block.load(fromByteOffset: at, as: UInt8.self)
        block.storeBytes(of: (old & ~mask) | ((UInt8(truncatingIfNeeded: v) << shift) & mask), toByteOffset: at, as: UInt8.self)
    }
}
