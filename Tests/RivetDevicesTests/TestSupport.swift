import Testing
import RivetDevices
import RivetMemory
import RivetSnapshot
import RivetStorage

/// Records the last level per source and every change.
final class RecordingSink: InterruptSink {
    var levels: [Int: Bool] = [:]
    var changes = 0
    func setLevel(source: Int, _ level: Bool) {
        if levels[source] != level { changes += 1 }
        levels[source] = level
    }
    func level(_ s: Int) -> Bool { levels[s] ?? false }
}

final class SerialCapture: SerialBackend {
    var bytes: [UInt8] = []
    func serialWrite(_ byte: UInt8) { bytes.append(byte) }
}

struct DiskError: Error {}

/// An in-memory disk with switchable read-only mode and injected failures.
final class MemoryDisk: BlockDevice {
    var data: [UInt8]
    var isReadOnly: Bool
    var failIO = false
    var flushes = 0
    var discards: [(UInt64, UInt64)] = []
    init(size: Int, readOnly: Bool = false) {
        data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        isReadOnly = readOnly
    }
    var size: UInt64 { UInt64(data.count) }
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard !failIO, offset + UInt64(buffer.count) <= size else { throw DiskError() }
        data.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset) + buffer.count])) }
    }
    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        guard !failIO, !isReadOnly, offset + UInt64(buffer.count) <= size else { throw DiskError() }
        for i in 0..<buffer.count { data[Int(offset) + i] = buffer[i] }
    }
    func flush() throws { if failIO { throw DiskError() }; flushes += 1 }
    func discard(at offset: UInt64, length: UInt64) throws {
        guard offset + length <= size else { throw DiskError() }
        discards.append((offset, length))
        for i in Int(offset)..<Int(offset + length) { data[i] = 0 }
    }
}

/// A deterministic generator for the fuzzers (SplitMix64).
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

let ramBase: UInt64 = 0x8000_0000

func makeRAM(size: UInt64 = 1 << 20) throws -> GuestRAM { try GuestRAM(base: ramBase, size: size) }

/// Plays the driver side of one split virtqueue (queue 0) of a virtio-mmio device, as Linux would.
final class TestDriver {
    let dev: VirtioMMIO
    let ram: GuestRAM
    let size: UInt16
    let desc: UInt64, avail: UInt64, used: UInt64
    var nextDesc: UInt16 = 0
    var availIdx: UInt16 = 0
    /// The queue this driver sets up and notifies.
    let queueIndex: UInt64

    init(dev: VirtioMMIO, ram: GuestRAM, queueSize: UInt16 = 16, ringBase: UInt64 = ramBase, features: UInt64? = nil, queue: Int = 0) {
        self.dev = dev; self.ram = ram; size = queueSize; queueIndex = UInt64(queue)
        desc = ringBase; avail = ringBase + 0x1000; used = ringBase + 0x2000
        setUp(features: features)
    }

    func w(_ off: UInt64, _ v: UInt64) { dev.mmioWrite(offset: off, size: 4, value: v) }
    func r(_ off: UInt64) -> UInt64 { dev.mmioRead(offset: off, size: 4) }

    func setUp(features: UInt64? = nil) {
        w(0x70, 0)
        w(0x70, 1); w(0x70, 3)
        w(0x14, 0); let lo = r(0x10); w(0x14, 1); let hi = r(0x10)
        let f = features ?? (hi << 32 | lo)
        w(0x24, 0); w(0x20, f & 0xffff_ffff); w(0x24, 1); w(0x20, f >> 32)
        w(0x70, 0xb)
        w(0x30, queueIndex)
        w(0x38, UInt64(size))
        w(0x80, desc & 0xffff_ffff); w(0x84, desc >> 32)
        w(0x90, avail & 0xffff_ffff); w(0x94, avail >> 32)
        w(0xa0, used & 0xffff_ffff); w(0xa4, used >> 32)
        w(0x44, 1)
        w(0x70, 0xf)
        nextDesc = 0; availIdx = 0
        for a in stride(from: desc, to: desc + 0x3000, by: 8) { ram.store64(a, 0) }
    }

    func writeDescriptor(_ i: UInt16, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16, table: UInt64? = nil) {
        let d = (table ?? desc) + 16 * UInt64(i)
        ram.store64(d, addr); ram.store32(d + 8, len); ram.store16(d + 12, flags); ram.store16(d + 14, next)
    }

    /// Adds a chain of buffers (address, length, device-writable) and publishes it; returns the head.
    @discardableResult
    func submit(_ bufs: [(UInt64, UInt32, Bool)]) -> UInt16 {
        let head = nextDesc
        for (i, b) in bufs.enumerated() {
            let idx = (head &+ UInt16(i)) % size
            let last = i == bufs.count - 1
            writeDescriptor(idx, addr: b.0, len: b.1, flags: (last ? 0 : 1) | (b.2 ? 2 : 0), next: (idx + 1) % size)
        }
        nextDesc = (head &+ UInt16(bufs.count)) % size
        publish(head)
        return head
    }

    func publish(_ head: UInt16) {
        ram.store16(avail + 4 + 2 * UInt64(availIdx % size), head)
        availIdx &+= 1
        ram.store16(avail + 2, availIdx)
    }

    func notify() { w(0x50, queueIndex) }
    var usedIdx: UInt16 { ram.load16(used + 2)! }
    func usedElem(_ i: UInt16) -> (id: UInt32, len: UInt32) {
        let e = used + 4 + 8 * UInt64(i % size)
        return (ram.load32(e)!, ram.load32(e + 4)!)
    }
    var isBroken: Bool { r(0x70) & 0x40 != 0 }
}

/// Saves a device's state into bytes.
func saved(_ d: Snapshottable) -> [UInt8] {
    var w = StateWriter()
    d.saveState(to: &w)
    return w.bytes
}

func restore(_ d: Snapshottable, _ bytes: [UInt8]) throws {
    var r = StateReader(bytes, context: d.snapshotName)
    try d.restoreState(from: &r)
    try r.expectEnd()
}

/// Every strict prefix of a state must be refused.
func expectTruncationsThrow(_ bytes: [UInt8], _ make: () throws -> Snapshottable) throws {
    for n in 0..<bytes.count {
        let d = try make()
        #expect(throws: (any Error).self, "prefix of \(n) of \(bytes.count) bytes") { try restore(d, Array(bytes.prefix(n))) }
    }
}
