import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import RivetStorage

/// Round trips through the block layer against an in-memory model of the disk.
@Suite struct Qcow2Tests {
    @Test(arguments: [(512, 16), (4096, 16), (65536, 16), (4096, 1), (4096, 64), (2 << 20, 16)])
    func randomWritesMatchModel(cluster: Int, refBits: Int) throws {
        let dir = makeTempDir("rw"); defer { removeTree(dir) }
        let path = dir + "/a.qcow2"
        let size = max(4 << 20, 3 * cluster)
        var opts = Qcow2CreateOptions(); opts.clusterSize = cluster; opts.refcountBits = refBits
        try Qcow2Disk.create(path: path, size: UInt64(size), options: opts)
        var model = [UInt8](repeating: 0, count: size)
        var rng = TestRandom(state: UInt64(cluster * 131 + refBits))
        do {
            let d = try openDisk(path: path, format: nil, readOnly: false)
            for op in 0..<300 {
                let len = 1 + rng.below(3 * min(cluster, 65536))
                let off = rng.below(size - len)
                if rng.below(10) == 0 {
                    try d.discard(at: UInt64(off), length: UInt64(len))
                    for i in off..<(off + len) { model[i] = 0 }
                } else {
                    let fill = UInt8(truncatingIfNeeded: op + 1)
                    let data = [UInt8](repeating: fill, count: len)
                    try data.withUnsafeBytes { try d.write(at: UInt64(off), from: $0) }
                    for i in off..<(off + len) { model[i] = fill }
                }
                if rng.below(20) == 0 { try d.flush() }
            }
            #expect(try readDisk(d) == model)
            try d.flush()
        }
        let r = try openDisk(path: path, format: .qcow2, readOnly: true)
        #expect(try readDisk(r) == model)
        let check = try Qcow2Disk.check(path: path)
        #expect(check.corruptions == 0)
        #expect(check.leaks == 0)
    }

    @Test func refcountTableGrowsForSmallClusters() throws {
        // 512-byte clusters with 16-bit refcounts: one table cluster covers 64 blocks * 256 clusters = 8 MiB.
        let dir = makeTempDir("grow"); defer { removeTree(dir) }
        let path = dir + "/g.qcow2"
        var opts = Qcow2CreateOptions(); opts.clusterSize = 512
        try Qcow2Disk.create(path: path, size: 24 << 20, options: opts)
        let d = try Qcow2Disk(path: path, readOnly: false)
        let chunk = [UInt8](repeating: 0x5c, count: 1 << 20)
        for i in 0..<20 { try chunk.withUnsafeBytes { try d.write(at: UInt64(i) << 20, from: $0) } }
        try d.close()
        #expect(d.header.refcountTableClusters > 1)
        let check = try Qcow2Disk.check(path: path)
        #expect(check.corruptions == 0 && check.leaks == 0)
        let r = try openDisk(path: path, format: nil, readOnly: true)
        var back = [UInt8](repeating: 0, count: 1 << 20)
        try back.withUnsafeMutableBytes { try r.read(at: 19 << 20, into: $0) }
        #expect(back == chunk)
    }

    @Test func backingChainFallsThroughAndBaseStaysUnchanged() throws {
        let dir = makeTempDir("chain"); defer { removeTree(dir) }
        let base = dir + "/base.qcow2"
        try Qcow2Disk.create(path: base, size: 1 << 20)
        do {
            let b = try openDisk(path: base, format: nil, readOnly: false)
            try [UInt8](repeating: 1, count: 1 << 20).withUnsafeBytes { try b.write(at: 0, from: $0) }
            try b.flush()
        }
        let baseBytes = readAllBytes(base)
        var prev = "base.qcow2"
        var model = [UInt8](repeating: 1, count: 1 << 20)
        for level in 1...4 {
            let top = dir + "/l\(level).qcow2"
            var o = Qcow2CreateOptions(); o.backingFile = prev; o.backingFormat = .qcow2; o.clusterSize = 4096 << (level % 3)
            try Qcow2Disk.create(path: top, size: 1 << 20, options: o)
            let d = try openDisk(path: top, format: nil, readOnly: false)
            let off = level * 70000, len = 5000
            try [UInt8](repeating: UInt8(level + 1), count: len).withUnsafeBytes { try d.write(at: UInt64(off), from: $0) }
            for i in off..<(off + len) { model[i] = UInt8(level + 1) }
            try d.discard(at: UInt64(level) * 131072, length: 65536)
            for i in (level * 131072)..<(level * 131072 + 65536) { model[i] = 0 }
            try d.flush()
            #expect(try readDisk(d) == model)
            prev = "l\(level).qcow2"
        }
        #expect(readAllBytes(base) == baseBytes)
        let top = try openDisk(path: dir + "/l4.qcow2", format: nil, readOnly: true)
        #expect(try readDisk(top) == model)
        #expect(top.isReadOnly)
        #expect(throws: StorageError.self) { try [UInt8](repeating: 0, count: 1).withUnsafeBytes { try top.write(at: 0, from: $0) } }
    }

    @Test func outOfRangeAccessThrows() throws {
        let dir = makeTempDir("range"); defer { removeTree(dir) }
        let path = dir + "/r.qcow2"
        try Qcow2Disk.create(path: path, size: 65536)
        let d = try openDisk(path: path, format: nil, readOnly: false)
        var buf = [UInt8](repeating: 0, count: 16)
        #expect(throws: StorageError.self) { try buf.withUnsafeMutableBytes { try d.read(at: 65530, into: $0) } }
        #expect(throws: StorageError.self) { try buf.withUnsafeMutableBytes { try d.read(at: UInt64.max - 4, into: $0) } }
        #expect(throws: StorageError.self) { try d.discard(at: 65536, length: 1) }
    }

    @Test func loopsAndMissingBackingAreOneLineErrors() throws {
        let dir = makeTempDir("loop"); defer { removeTree(dir) }
        var o = Qcow2CreateOptions(); o.backingFile = "b.qcow2"; o.backingFormat = .qcow2
        try Qcow2Disk.create(path: dir + "/a.qcow2", size: 65536, options: o)
        o.backingFile = "a.qcow2"
        try Qcow2Disk.create(path: dir + "/b.qcow2", size: 65536, options: o)
        do {
            _ = try openDisk(path: dir + "/a.qcow2", format: nil, readOnly: true)
            Issue.record("loop not detected")
        } catch let e as StorageError {
            #expect(e.description.contains("loop"))
            #expect(!e.description.contains("\n"))
        }
        o.backingFile = "missing.qcow2"
        try Qcow2Disk.create(path: dir + "/c.qcow2", size: 65536, options: o)
        do {
            _ = try openDisk(path: dir + "/c.qcow2", format: nil, readOnly: true)
            Issue.record("missing backing not detected")
        } catch let e as StorageError {
            #expect(e.description.contains("missing.qcow2"))
        }
    }

    @Test func rawDiskReadWriteDiscard() throws {
        let dir = makeTempDir("raw"); defer { removeTree(dir) }
        let path = dir + "/r.raw"
        try RawDisk.create(path: path, size: 1 << 20)
        let d = try openDisk(path: path, format: nil, readOnly: false)
        #expect(d.size == 1 << 20)
        try [UInt8](repeating: 9, count: 10000).withUnsafeBytes { try d.write(at: 5000, from: $0) }
        try d.discard(at: 8192, length: 4096)
        try d.flush()
        var expected = [UInt8](repeating: 0, count: 1 << 20)
        for i in 5000..<15000 { expected[i] = 9 }
        for i in 8192..<12288 { expected[i] = 0 }
        #expect(try readDisk(d) == expected)
    }
}

@Suite struct OverlayTests {
    @Test func overlayKeepsBaseIdenticalAndStoresRelativeName() throws {
        let dir = makeTempDir("ov"); defer { removeTree(dir) }
        let base = dir + "/base.raw"
        try RawDisk.create(path: base, size: 1 << 20)
        do {
            let b = try openDisk(path: base, format: .raw, readOnly: false)
            try [UInt8](repeating: 7, count: 1 << 20).withUnsafeBytes { try b.write(at: 0, from: $0) }
        }
        let before = readAllBytes(base)
        try createOverlay(basePath: base, overlayPath: dir + "/top.qcow2")
        #expect(throws: StorageError.self) { try createOverlay(basePath: base, overlayPath: dir + "/top.qcow2") }
        let top = try Qcow2Disk(path: dir + "/top.qcow2", readOnly: false)
        #expect(top.header.backingFile == "base.raw")
        #expect(top.header.backingFormat == "raw")
        try [UInt8](repeating: 9, count: 3000).withUnsafeBytes { try top.write(at: 1000, from: $0) }
        try top.discard(at: 65536, length: 65536)
        try top.flush()
        var expected = [UInt8](repeating: 7, count: 1 << 20)
        for i in 1000..<4000 { expected[i] = 9 }
        for i in 65536..<131072 { expected[i] = 0 }
        #expect(try readDisk(top) == expected)
        #expect(readAllBytes(base) == before)
    }
}

@Suite struct CacheEvictionTests {
    /// A two-table L2 cache on a disk with 64 tables: every access evicts; data and metadata stay right.
    @Test func tinyL2CacheRoundTrip() throws {
        let dir = makeTempDir("evict"); defer { removeTree(dir) }
        let path = dir + "/e.qcow2"
        var o = Qcow2CreateOptions(); o.clusterSize = 1024
        try Qcow2Disk.create(path: path, size: 8 << 20, options: o)
        var model = [UInt8](repeating: 0, count: 8 << 20)
        var rng = TestRandom(state: 42)
        do {
            let d = try Qcow2Disk(path: path, readOnly: false, l2CacheBytes: 2048)
            for op in 0..<2000 {
                let len = 1 + rng.below(5000)
                let off = rng.below(model.count - len)
                let fill = UInt8(truncatingIfNeeded: op + 1)
                try [UInt8](repeating: fill, count: len).withUnsafeBytes { try d.write(at: UInt64(off), from: $0) }
                for i in off..<(off + len) { model[i] = fill }
                if op % 97 == 0 { try d.flush() }
            }
            #expect(try readDisk(d) == model)
            try d.close()
        }
        #expect(try readDisk(try Qcow2Disk(path: path, readOnly: true, l2CacheBytes: 2048)) == model)
        let r = try Qcow2Disk.check(path: path)
        #expect(r.corruptions == 0 && r.leaks == 0)
    }
}
