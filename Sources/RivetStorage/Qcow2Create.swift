#if canImport(Glibc)
import Glibc
#endif

public struct Qcow2CreateOptions: Sendable {
    public var clusterSize: Int = 65536
    public var refcountBits: Int = 16
    public var backingFile: String? = nil
    public var backingFormat: DiskFormat? = nil
    public init() {}
}

extension Qcow2Disk {
    /// Writes a new, empty qcow2 v3 image laid out as QEMU does: header, refcount table, refcount
    /// block(s), L1 table.
    public static func create(path: String, size: UInt64, options: Qcow2CreateOptions = Qcow2CreateOptions()) throws {
        let cs = options.clusterSize
        guard cs >= 512 && cs <= 2 << 20 && cs & (cs - 1) == 0 else {
            throw StorageError("\(path): cluster size must be a power of two between 512 and 2M (got \(cs))")
        }
        let rb = options.refcountBits
        guard rb >= 1 && rb <= 64 && rb & (rb - 1) == 0 else {
            throw StorageError("\(path): refcount bits must be a power of two up to 64 (got \(rb))")
        }
        guard size <= Qcow2Limits.maxVirtualSize else { throw StorageError("\(path): virtual size \(size) too large") }
        let clusterBits = cs.trailingZeroBitCount
        let perL1 = UInt64(cs) * UInt64(cs / 8)
        let l1Entries = (size + perL1 - 1) / perL1
        guard l1Entries * 8 <= Qcow2Limits.maxL1Bytes else {
            throw StorageError("\(path): virtual size \(size) too large for cluster size \(cs)")
        }
        let l1Clusters = max(1, (l1Entries * 8 + UInt64(cs) - 1) / UInt64(cs))
        let refsPerBlock = UInt64(cs) * 8 / UInt64(rb)
        // Find the fixed point of: blocks cover header + table + blocks + L1.
        var blocks: UInt64 = 1, tableClusters: UInt64 = 1
        while true {
            let total = 1 + tableClusters + blocks + l1Clusters
            let b = (total + refsPerBlock - 1) / refsPerBlock
            let t = (b * 8 + UInt64(cs) - 1) / UInt64(cs)
            if b == blocks && t == tableClusters { break }
            blocks = b; tableClusters = t
        }
        var h = Qcow2Header()
        h.clusterBits = UInt32(clusterBits)
        h.size = size
        h.refcountOrder = UInt32(rb.trailingZeroBitCount)
        h.refcountTableOffset = UInt64(cs)
        h.refcountTableClusters = UInt32(tableClusters)
        h.l1TableOffset = UInt64(cs) * (1 + tableClusters + blocks)
        h.l1Size = UInt32(l1Entries)
        h.backingFile = options.backingFile
        h.backingFormat = options.backingFormat?.rawValue
        let headerBytes = try h.serialize(clusterSize: cs, path: path)

        let total = 1 + tableClusters + blocks + l1Clusters
        var image = [UInt8](repeating: 0, count: Int(total) * cs)
        image.withUnsafeMutableBytes { buf in
            let p = buf.baseAddress!
            for (i, b) in headerBytes.enumerated() { p.storeBytes(of: b, toByteOffset: i, as: UInt8.self) }
            for b in 0..<blocks {
                storeBE64(p, cs + Int(b) * 8, UInt64(cs) * (1 + tableClusters + b))
            }
            // Refcount 1 for every cluster written here, in the refcount order's encoding.
            for c in 0..<total {
                let blockBase = cs * Int(1 + tableClusters + c / refsPerBlock)
                let k = Int(c % refsPerBlock)
                switch rb {
                case 64: storeBE64(p, blockBase + k * 8, 1)
                case 32: storeBE32(p, blockBase + k * 4, 1)
                case 16: storeBE16(p, blockBase + k * 2, 1)
                case 8: p.storeBytes(of: UInt8(1), toByteOffset: blockBase + k, as: UInt8.self)
                default:
                    let at = blockBase + (k * rb) >> 3
                    let old = p.load(fromByteOffset: at, as: UInt8.self)
                    p.storeBytes(of: old | UInt8(1 << ((k * rb) & 7)), toByteOffset: at, as: UInt8.self)
                }
            }
        }
        let f = try ImageFile(path: path, writable: true, create: true,
                              lock: .forImage(writable: true, metadata: true, forceShare: false))
        try image.withUnsafeBytes { try f.write(at: 0, from: $0) }
        try f.sync()
    }
}
