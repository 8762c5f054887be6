/// The qcow2 header (version 2 and 3) with its extensions, as QEMU lays it out (big-endian).

let qcow2Magic: UInt32 = 0x5146_49fb

enum Qcow2Ext {
    static let end: UInt32 = 0
    static let backingFormat: UInt32 = 0xe279_2aca
    static let featureNames: UInt32 = 0x6803_f857
    static let bitmaps: UInt32 = 0x2385_2875
    static let encryption: UInt32 = 0x0537_be77
    static let externalData: UInt32 = 0x4441_5441
}

enum Qcow2Feature {
    static let dirty: UInt64 = 1 << 0
    static let corrupt: UInt64 = 1 << 1
    static let externalData: UInt64 = 1 << 2
    static let compressionType: UInt64 = 1 << 3
    static let extendedL2: UInt64 = 1 << 4
    static let knownIncompatible: UInt64 = 0x1f
    static let lazyRefcounts: UInt64 = 1 << 0
}

/// Limits that bound every allocation driven by header fields (QEMU uses the same ones).
enum Qcow2Limits {
    static let minClusterBits = 9
    static let maxClusterBits = 21
    static let maxL1Bytes: UInt64 = 32 << 20
    static let maxRefTableBytes: UInt64 = 8 << 20
    static let maxBackingNameLength: UInt32 = 1023
    static let maxVirtualSize: UInt64 = 1 << 61
    static let maxHostOffset: UInt64 = 1 << 56
    static let maxSnapshots: UInt32 = 65536
}

public struct Qcow2Header: Sendable {
    public var version: UInt32 = 3
    public var backingFileOffset: UInt64 = 0
    public var backingFileSize: UInt32 = 0
    public var clusterBits: UInt32 = 16
    public var size: UInt64 = 0
    public var cryptMethod: UInt32 = 0
    public var l1Size: UInt32 = 0
    public var l1TableOffset: UInt64 = 0
    public var refcountTableOffset: UInt64 = 0
    public var refcountTableClusters: UInt32 = 0
    public var nbSnapshots: UInt32 = 0
    public var snapshotsOffset: UInt64 = 0
    public var incompatibleFeatures: UInt64 = 0
    public var compatibleFeatures: UInt64 = 0
    public var autoclearFeatures: UInt64 = 0
    public var refcountOrder: UInt32 = 4
    public var headerLength: UInt32 = 112
    public var compressionType: UInt8 = 0
    /// Backing file name and format (from the header and the 0xe2792aca extension).
    public var backingFile: String?
    public var backingFormat: String?
    /// Extensions this code does not interpret, kept verbatim when the header is rewritten.
    var otherExtensions: [(type: UInt32, data: [UInt8])] = []

    init() {}

    /// Parses the header from the start of the file (`bytes` holds min(cluster size, file size) bytes, at least 72).
    init(parsing bytes: UnsafeRawBufferPointer, fileLength: UInt64, path: String) throws {
        func fail(_ what: String) -> StorageError { StorageError("\(path): invalid qcow2 header: \(what)") }
        guard bytes.count >= 72 else { throw fail("file too short for a header") }
        let p = bytes.baseAddress!
        guard loadBE32(p, 0) == qcow2Magic else { throw fail("bad magic") }
        version = loadBE32(p, 4)
        guard version == 2 || version == 3 else { throw StorageError("\(path): unsupported qcow2 version \(version)") }
        backingFileOffset = loadBE64(p, 8)
        backingFileSize = loadBE32(p, 16)
        clusterBits = loadBE32(p, 20)
        size = loadBE64(p, 24)
        cryptMethod = loadBE32(p, 32)
        l1Size = loadBE32(p, 36)
        l1TableOffset = loadBE64(p, 40)
        refcountTableOffset = loadBE64(p, 48)
        refcountTableClusters = loadBE32(p, 56)
        nbSnapshots = loadBE32(p, 60)
        snapshotsOffset = loadBE64(p, 64)
        guard clusterBits >= Qcow2Limits.minClusterBits && clusterBits <= Qcow2Limits.maxClusterBits else {
            throw fail("cluster size 2^\(clusterBits) out of range (512 B to 2 MiB)")
        }
        let clusterSize = 1 << Int(clusterBits)
        if version == 3 {
            guard bytes.count >= 104 else { throw fail("file too short for a version 3 header") }
            incompatibleFeatures = loadBE64(p, 72)
            compatibleFeatures = loadBE64(p, 80)
            autoclearFeatures = loadBE64(p, 88)
            refcountOrder = loadBE32(p, 96)
            headerLength = loadBE32(p, 100)
            guard headerLength >= 104 && headerLength % 8 == 0 && Int(headerLength) <= min(clusterSize, bytes.count) else {
                throw fail("header length \(headerLength) out of range")
            }
            if headerLength > 104 { compressionType = p.load(fromByteOffset: 104, as: UInt8.self) }
        } else {
            refcountOrder = 4
            headerLength = 72
        }
        guard refcountOrder <= 6 else { throw fail("refcount order \(refcountOrder) out of range (0 to 6)") }
        guard size <= Qcow2Limits.maxVirtualSize else { throw fail("virtual size \(size) too large") }
        guard cryptMethod == 0 else { throw StorageError("\(path): encrypted qcow2 images are not supported") }

        // Extensions run from the header's end to the backing file name (or the end of cluster 0).
        var limit = min(bytes.count, clusterSize)
        if backingFileOffset != 0 {
            guard backingFileSize > 0 && backingFileSize <= Qcow2Limits.maxBackingNameLength else {
                throw fail("backing file name length \(backingFileSize) out of range")
            }
            guard backingFileOffset >= UInt64(headerLength),
                  backingFileOffset + UInt64(backingFileSize) <= UInt64(limit) else {
                throw fail("backing file name at offset \(backingFileOffset) lies outside the header cluster")
            }
            let nameBytes = UnsafeRawBufferPointer(rebasing: bytes[Int(backingFileOffset)..<Int(backingFileOffset) + Int(backingFileSize)])
            backingFile = String(decoding: nameBytes, as: UTF8.self)
            limit = Int(backingFileOffset)
        }
        if version == 3 {
            var pos = Int(headerLength)
            while pos + 8 <= limit {
                let type = loadBE32(p, pos)
                let length = Int(loadBE32(p, pos + 4))
                if type == Qcow2Ext.end { break }
                guard length <= limit - pos - 8 else { throw fail("header extension \(hex(UInt64(type))) runs past the header area") }
                let data = Array(UnsafeRawBufferPointer(rebasing: bytes[(pos + 8)..<(pos + 8 + length)]))
                switch type {
                case Qcow2Ext.backingFormat:
                    backingFormat = String(decoding: data, as: UTF8.self)
                case Qcow2Ext.featureNames:
                    break // informational; regenerated never, dropped on rewrite
                default:
                    otherExtensions.append((type, data))
                }
                pos += 8 + ((length + 7) & ~7)
            }
        }
        _ = fileLength
    }

    /// Serializes header, extensions and backing name; fails if they do not fit in one cluster.
    func serialize(clusterSize: Int, path: String) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(version == 3 ? headerLength : 72))
        out.withUnsafeMutableBytes { b in
            let p = b.baseAddress!
            storeBE32(p, 0, qcow2Magic)
            storeBE32(p, 4, version)
            storeBE32(p, 20, clusterBits)
            storeBE64(p, 24, size)
            storeBE32(p, 32, cryptMethod)
            storeBE32(p, 36, l1Size)
            storeBE64(p, 40, l1TableOffset)
            storeBE64(p, 48, refcountTableOffset)
            storeBE32(p, 56, refcountTableClusters)
            storeBE32(p, 60, nbSnapshots)
            storeBE64(p, 64, snapshotsOffset)
            if version == 3 {
                storeBE64(p, 72, incompatibleFeatures)
                storeBE64(p, 80, compatibleFeatures)
                storeBE64(p, 88, autoclearFeatures)
                storeBE32(p, 96, refcountOrder)
                storeBE32(p, 100, headerLength)
                if headerLength > 104 { p.storeBytes(of: compressionType, toByteOffset: 104, as: UInt8.self) }
            }
        }
        func appendExt(_ type: UInt32, _ data: [UInt8]) {
            var h = [UInt8](repeating: 0, count: 8)
            h.withUnsafeMutableBytes { storeBE32($0.baseAddress!, 0, type); storeBE32($0.baseAddress!, 4, UInt32(data.count)) }
            out += h + data + [UInt8](repeating: 0, count: (8 - data.count % 8) % 8)
        }
        if version == 3 {
            if let fmt = backingFormat, backingFile != nil { appendExt(Qcow2Ext.backingFormat, Array(fmt.utf8)) }
            for e in otherExtensions { appendExt(e.type, e.data) }
            appendExt(Qcow2Ext.end, [])
        }
        if let name = backingFile {
            let bytes = Array(name.utf8)
            guard !bytes.isEmpty && bytes.count <= Int(Qcow2Limits.maxBackingNameLength) else {
                throw StorageError("\(path): backing file name must be 1 to 1023 bytes")
            }
            let offset = out.count
            out += bytes
            out.withUnsafeMutableBytes { b in
                storeBE64(b.baseAddress!, 8, UInt64(offset))
                storeBE32(b.baseAddress!, 16, UInt32(bytes.count))
            }
        }
        guard out.count <= clusterSize else {
            throw StorageError("\(path): header, extensions and backing file name do not fit in one cluster")
        }
        return out
    }
}
