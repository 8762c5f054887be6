import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import RivetStorage

/// Mutation fuzzer over qcow2 header fields and tables, seeded and repeatable. Every case must end either
/// in success or in a one-line StorageError naming the file: no crash, no hang, no unbounded allocation.
@Suite struct Qcow2FuzzTests {
    struct Base {
        let bytes: [UInt8]
        let cluster: Int
        let l1Offset: Int
        let l1Size: Int
        let refTableOffset: Int
        let refBlocks: [Int]
        let l2Tables: [Int]
    }

    /// Header fields (offset, width) worth mutating.
    static let fields: [(Int, Int)] = [(4, 4), (8, 8), (16, 4), (20, 4), (24, 8), (32, 4), (36, 4), (40, 8), (48, 8),
                                       (56, 4), (60, 4), (64, 8), (72, 8), (80, 8), (88, 8), (96, 4), (100, 4), (104, 1)]

    func makeBase(dir: String, cluster: Int, refBits: Int, compressedLike: Bool) throws -> Base {
        let path = dir + "/base-\(cluster)-\(refBits).qcow2"
        var o = Qcow2CreateOptions(); o.clusterSize = cluster; o.refcountBits = refBits
        try Qcow2Disk.create(path: path, size: 1 << 20, options: o)
        do {
            let d = try openDisk(path: path, format: nil, readOnly: false)
            var rng = TestRandom(state: UInt64(cluster))
            for i in 0..<24 {
                let len = 1 + rng.below(3 * cluster)
                let off = rng.below((1 << 20) - len)
                try [UInt8](repeating: UInt8(i + 1), count: len).withUnsafeBytes { try d.write(at: UInt64(off), from: $0) }
            }
            try d.discard(at: 0, length: UInt64(cluster))
            try d.flush()
        }
        let b = readAllBytes(path)
        let l1Offset = Int(be64(b, 40)), l1Size = Int(be32(b, 36)), rt = Int(be64(b, 48))
        var blocks: [Int] = []
        for i in 0..<(Int(be32(b, 56)) * cluster / 8) where be64(b, rt + i * 8) != 0 { blocks.append(Int(be64(b, rt + i * 8))) }
        var l2s: [Int] = []
        for i in 0..<l1Size where be64(b, l1Offset + i * 8) & l2OffsetMask != 0 { l2s.append(Int(be64(b, l1Offset + i * 8) & l2OffsetMask)) }
        _ = compressedLike
        return Base(bytes: b, cluster: cluster, l1Offset: l1Offset, l1Size: l1Size, refTableOffset: rt, refBlocks: blocks, l2Tables: l2s)
    }

    func interesting(_ rng: inout TestRandom, _ base: Base) -> UInt64 {
        let len = UInt64(base.bytes.count)
        let cs = UInt64(base.cluster)
        let choices: [UInt64] = [0, 1, 7, 0xff, 0xffff, 0xffff_ffff, UInt64.max, UInt64.max / 2, 1 << 63, 1 << 62,
                                 len, len - 1, len + cs, len * 2, cs, cs - 1, cs + 8, 1 << 40, 1 << 56, 1 << 61,
                                 UInt64(base.l1Offset), UInt64(base.refTableOffset), UInt64(base.refBlocks.first ?? 0),
                                 UInt64(base.l2Tables.first ?? 0) | (1 << 63), (UInt64(base.refTableOffset)) | (1 << 63),
                                 rng.next(), rng.next() & 0xffff, rng.next() & (len - 1)]
        return choices[rng.below(choices.count)]
    }

    func mutate(_ base: Base, _ rng: inout TestRandom) -> [UInt8] {
        var b = base.bytes
        let cs = base.cluster
        for _ in 0..<(1 + rng.below(3)) {
            switch rng.below(9) {
            case 0, 1:
                let (o, w) = Self.fields[rng.below(Self.fields.count)]
                putBE(&b, o, interesting(&rng, base), w)
            case 2:
                let i = rng.below(max(1, base.l1Size))
                putBE(&b, base.l1Offset + 8 * i, interesting(&rng, base), 8)
            case 3:
                if let t = base.l2Tables.randomElement(using: &rng) {
                    let j = rng.below(cs / 8)
                    var v = interesting(&rng, base)
                    if rng.below(3) == 0 { v |= 1 << 62 }      // compressed descriptors with lying sizes
                    putBE(&b, t + 8 * j, v, 8)
                }
            case 4:
                putBE(&b, base.refTableOffset + 8 * rng.below(4), interesting(&rng, base), 8)
            case 5:
                if let r = base.refBlocks.randomElement(using: &rng) {
                    putBE(&b, r + 2 * rng.below(cs / 2), interesting(&rng, base), 2)
                }
            case 6:
                // Random bit flips in metadata clusters.
                let regions = [0, base.l1Offset, base.refTableOffset] + base.refBlocks + base.l2Tables
                let r = regions[rng.below(regions.count)]
                for _ in 0..<(1 + rng.below(8)) {
                    let at = r + rng.below(min(cs, 256))
                    if at < b.count { b[at] ^= UInt8(1 << rng.below(8)) }
                }
            case 7:
                // Header extension area: garbage type/length pairs.
                let hl = Int(be32(b, 100))
                let at = (hl >= 104 && hl < cs - 16) ? hl : 112
                putBE(&b, at, rng.next(), 4)
                putBE(&b, at + 4, interesting(&rng, base) & 0xffff_ffff, 4)
            default:
                let keep = rng.below(b.count + 1)
                b.removeLast(b.count - keep)
            }
        }
        return b
    }

    /// Drives a (possibly broken) image through every API; only StorageError may come out.
    func exercise(_ path: String) -> (errors: Int, ok: Int) {
        var errors = 0, ok = 0
        func attempt(_ body: () throws -> Void) {
            do { try body(); ok += 1 } catch let e as StorageError {
                errors += 1
                #expect(!e.description.contains("\n"))
                #expect(e.description.hasPrefix(path) || e.description.contains(path), "error does not name the file: \(e.description)")
            } catch {
                Issue.record("unexpected error type \(error)")
            }
        }
        attempt {
            let d = try openDisk(path: path, format: .qcow2, readOnly: true)
            let chunk = 65536
            var buf = [UInt8](repeating: 0, count: chunk)
            var pos: UInt64 = 0
            // Bounded: read at most 4 MiB even if the (mutated) size is huge.
            while pos < min(d.size, 4 << 20) {
                let n = Int(min(UInt64(chunk), d.size - pos))
                try buf.withUnsafeMutableBytes { try d.read(at: pos, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
                pos += UInt64(n)
            }
            if let l = d as? ImageLayer { _ = try l.extent(at: 0, maxLength: 1 << 30) }
        }
        attempt { _ = try Qcow2Disk.check(path: path) }
        attempt {
            let d = try openDisk(path: path, format: .qcow2, readOnly: false)
            var rng = TestRandom(state: 99)
            let limit = min(d.size, 1 << 20)
            guard limit > 8192 else { return }
            for i in 0..<6 {
                let off = UInt64(rng.below(Int(limit) - 8192))
                try [UInt8](repeating: UInt8(i), count: 1 + rng.below(8192)).withUnsafeBytes { try d.write(at: off, from: $0) }
            }
            try d.discard(at: 0, length: min(limit, 65536))
            try d.flush()
            if let q = d as? Qcow2Disk { try q.close() }
        }
        return (errors, ok)
    }

    @Test func mutatedImagesFailCleanly() throws {
        let dir = makeTempDir("fuzz"); defer { removeTree(dir) }
        let bases = try [(512, 16), (4096, 16), (65536, 16), (4096, 8), (4096, 2)].map {
            try makeBase(dir: dir, cluster: $0.0, refBits: $0.1, compressedLike: false)
        }
        var rng = TestRandom(state: 0x5eed)
        let cases = 3000
        var errors = 0, successes = 0
        let path = dir + "/case.qcow2"
        for n in 0..<cases {
            let base = bases[n % bases.count]
            writeAllBytes(path, mutate(base, &rng))
            // No timing here (a hang is caught by the suite's own time limit): outcomes only.
            let (e, s) = exercise(path)
            errors += e; successes += s
        }
        // The fuzzer must actually reach both outcomes.
        #expect(errors > cases / 2)
        #expect(successes > cases / 4)
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #expect(usage.ru_maxrss < 1 << 20, "peak RSS \(usage.ru_maxrss) KiB")   // below 1 GiB
    }

    @Test func truncationAtEveryClusterBoundary() throws {
        let dir = makeTempDir("trunc"); defer { removeTree(dir) }
        let base = try makeBase(dir: dir, cluster: 4096, refBits: 16, compressedLike: false)
        let path = dir + "/t.qcow2"
        var cut = 0
        while cut < base.bytes.count {
            writeAllBytes(path, Array(base.bytes[0..<cut]))
            _ = exercise(path)
            cut += cut < 256 ? 13 : 4096
        }
    }
}
