import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import RivetStorage

/// Power-loss simulation: record every write and fsync the qcow2 layer issues, then build the file as a
/// power cut at a random moment could leave it: everything before the last completed fsync, plus a random
/// subset of the writes issued after it. Each such image must have no corruption (leaks allowed), and data
/// acknowledged by a completed flush() must read back wherever no later write touched it.
@Suite struct PowerLossTests {
    enum Event { case io(ImageIOEvent); case flushed(Int) }

    /// Cache sizes: the default (whole disk cached) and a two-table cache that forces evictions of dirty L2 tables.
    @Test(arguments: [(512, 0), (4096, 0), (65536, 0), (512, 1024), (1024, 2048)])
    func randomPowerCutsNeverCorrupt(cluster: Int, l2CacheBytes: Int) throws {
        let dir = makeTempDir("power"); defer { removeTree(dir) }
        let path = dir + "/p.qcow2"
        let size = 1 << 20
        var o = Qcow2CreateOptions(); o.clusterSize = cluster
        try Qcow2Disk.create(path: path, size: UInt64(size), options: o)
        let initial = readAllBytes(path)

        var events: [Event] = []
        var models: [[UInt8]] = []                 // model after each completed flush
        var touched: [[ClosedRange<Int>]] = []     // ranges written/discarded after flush k
        var model = [UInt8](repeating: 0, count: size)
        var rng = TestRandom(state: UInt64(cluster) &* 7919)
        do {
            let d = try Qcow2Disk(path: path, readOnly: false, l2CacheBytes: l2CacheBytes == 0 ? nil : l2CacheBytes)
            d.file.observer = { events.append(.io($0)) }
            for op in 0..<400 {
                let len = 1 + rng.below(2 * cluster + 3000)
                let off = rng.below(size - len)
                for k in touched.indices { touched[k].append(off...(off + len - 1)) }
                if rng.below(8) == 0 {
                    try d.discard(at: UInt64(off), length: UInt64(len))
                    for i in off..<(off + len) { model[i] = 0 }
                } else {
                    let fill = UInt8(truncatingIfNeeded: op % 250 + 1)
                    try [UInt8](repeating: fill, count: len).withUnsafeBytes { try d.write(at: UInt64(off), from: $0) }
                    for i in off..<(off + len) { model[i] = fill }
                }
                if rng.below(6) == 0 {
                    try d.flush()
                    events.append(.flushed(models.count))
                    models.append(model)
                    touched.append([])
                }
            }
            try d.close()
            d.file.observer = nil
        }

        var crashes = 0
        for _ in 0..<150 {
            let cut = rng.below(events.count + 1)
            var lastSync = -1
            var acked = -1
            for i in 0..<cut {
                switch events[i] {
                case .io(.sync): lastSync = i
                case .flushed(let k): acked = k
                default: break
                }
            }
            var image = initial
            func apply(_ e: ImageIOEvent) {
                switch e {
                case .write(let offset, let data):
                    let end = Int(offset) + data.count
                    if image.count < end { image += [UInt8](repeating: 0, count: end - image.count) }
                    image.replaceSubrange(Int(offset)..<end, with: data)
                case .truncate(let s):
                    if image.count > Int(s) { image.removeLast(image.count - Int(s)) } else { image += [UInt8](repeating: 0, count: Int(s) - image.count) }
                case .sync: break
                }
            }
            for i in 0..<cut {
                guard case .io(let e) = events[i] else { continue }
                // Before the last fsync: durable. After it: each write may or may not have reached the disk.
                if i <= lastSync || rng.below(2) == 0 { apply(e) }
            }
            let crashed = dir + "/crash.qcow2"
            writeAllBytes(crashed, image)
            let result = try Qcow2Disk.check(path: crashed)
            #expect(result.corruptions == 0, "cluster \(cluster), cut \(cut)/\(events.count): \(result.messages.prefix(3))")
            if acked >= 0 {
                let d = try openDisk(path: crashed, format: .qcow2, readOnly: true)
                let got = try readDisk(d)
                var later = [Bool](repeating: false, count: size)
                for r in touched[acked] { for i in r { later[i] = true } }
                var mismatch = 0
                for i in 0..<size where !later[i] && got[i] != models[acked][i] { mismatch += 1 }
                #expect(mismatch == 0, "cluster \(cluster), cut \(cut): \(mismatch) acknowledged bytes lost")
            }
            crashes += 1
        }
        #expect(crashes == 150)
    }
}
