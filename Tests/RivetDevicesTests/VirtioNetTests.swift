import Testing
@testable import RivetDevices
import RivetMemory
import RivetSnapshot

/// A backend that records what the guest sends and hands the guest what the test queues.
final class LoopBackend: NetworkBackend {
    var label: String { "test backend" }
    var mtu: Int? { nil }
    var deliversValidChecksums = false
    var waiting: [[UInt8]] = []
    var sent: [[UInt8]] = []
    var started = false
    func start(framesAvailable: @escaping () -> Void) { started = true }
    func transmit(_ frame: UnsafeRawBufferPointer) { sent.append(Array(frame)) }
    func peekReceived() -> [UInt8]? { waiting.first }
    func dropReceived() { waiting.removeFirst() }
    var hasReceived: Bool { !waiting.isEmpty }
    func shutdown() {}
}

/// The driver side of virtio-net's two queues (0 = receive, 1 = transmit), rings laid out per queue.
final class NetDriver {
    let dev: VirtioMMIO
    let ram: GuestRAM
    let size: UInt16 = 16
    var nextDesc: [UInt16] = [0, 0]
    var availIdx: [UInt16] = [0, 0]

    func desc(_ q: Int) -> UInt64 { ramBase + UInt64(q) * 0x4000 }
    func avail(_ q: Int) -> UInt64 { desc(q) + 0x1000 }
    func used(_ q: Int) -> UInt64 { desc(q) + 0x2000 }

    init(dev: VirtioMMIO, ram: GuestRAM, features: UInt64) {
        self.dev = dev; self.ram = ram
        for q in 0..<2 { for a in stride(from: desc(q), to: desc(q) + 0x3000, by: 8) { ram.store64(a, 0) } }
        w(0x70, 0); w(0x70, 1); w(0x70, 3)
        w(0x24, 0); w(0x20, features & 0xffff_ffff); w(0x24, 1); w(0x20, features >> 32)
        w(0x70, 0xb)
        for q in 0..<2 {
            w(0x30, UInt64(q)); w(0x38, UInt64(size))
            w(0x80, desc(q) & 0xffff_ffff); w(0x84, desc(q) >> 32)
            w(0x90, avail(q) & 0xffff_ffff); w(0x94, avail(q) >> 32)
            w(0xa0, used(q) & 0xffff_ffff); w(0xa4, used(q) >> 32)
            w(0x44, 1)
        }
        w(0x70, 0xf)
    }

    func w(_ off: UInt64, _ v: UInt64) { dev.mmioWrite(offset: off, size: 4, value: v) }
    func r(_ off: UInt64) -> UInt64 { dev.mmioRead(offset: off, size: 4) }

    /// Publishes a chain of (address, length, writable) buffers on queue `q` without notifying.
    func post(_ q: Int, _ bufs: [(UInt64, UInt32, Bool)]) {
        let head = nextDesc[q]
        for (i, b) in bufs.enumerated() {
            let idx = (head &+ UInt16(i)) % size
            let d = desc(q) + 16 * UInt64(idx)
            let last = i == bufs.count - 1
            ram.store64(d, b.0); ram.store32(d + 8, b.1)
            ram.store16(d + 12, (last ? 0 : 1) | (b.2 ? 2 : 0)); ram.store16(d + 14, (idx + 1) % size)
        }
        nextDesc[q] = (head &+ UInt16(bufs.count)) % size
        ram.store16(avail(q) + 4 + 2 * UInt64(availIdx[q] % size), head)
        availIdx[q] &+= 1
        ram.store16(avail(q) + 2, availIdx[q])
    }

    func usedIdx(_ q: Int) -> UInt16 { ram.load16(used(q) + 2)! }
    func usedElem(_ q: Int, _ i: UInt16) -> (id: UInt32, len: UInt32) {
        let e = used(q) + 4 + 8 * UInt64(i % size)
        return (ram.load32(e)!, ram.load32(e + 4)!)
    }
    func bytes(_ a: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { ram.pointer(a + UInt64($0), length: 1)!.load(as: UInt8.self) } }
    func put(_ a: UInt64, _ b: [UInt8]) { for (i, x) in b.enumerated() { ram.pointer(a + UInt64(i), length: 1)!.storeBytes(of: x, as: UInt8.self) } }
}

@Suite struct VirtioNetTests {
    let sink = RecordingSink()
    let all = VirtioNet.featureMAC | VirtioNet.featureMergeableRxBuffers | VirtioNet.featureStatus | VirtioMMIO.featureVersion1
        | VirtioNet.featureChecksum | VirtioNet.featureGuestChecksum
    let buffers = ramBase + 0x10000

    func make(features: UInt64? = nil) throws -> (VirtioMMIO, VirtioNet, LoopBackend, NetDriver) {
        let ram = try makeRAM()
        let backend = LoopBackend()
        let card = VirtioNet(backend: backend, mac: [0x52, 0x54, 0, 0xab, 0xcd, 0xef])
        let dev = VirtioMMIO(model: card, ram: ram, irq: sink, source: 3)
        return (dev, card, backend, NetDriver(dev: dev, ram: ram, features: features ?? all))
    }

    func frame(_ n: Int, seed: Int = 1) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ seed) } }

    @Test func identityConfigAndFeatures() throws {
        let (dev, card, _, _) = try make()
        #expect(dev.mmioRead(offset: 8, size: 4) == 1)
        dev.mmioWrite(offset: 0x14, size: 4, value: 0)
        let lo = dev.mmioRead(offset: 0x10, size: 4)
        #expect(lo & (1 << 5) != 0 && lo & (1 << 15) != 0 && lo & (1 << 16) != 0)
        #expect(lo & 3 == 3)  // checksum offload both ways
        #expect(lo & (1 << 3) == 0)  // no MTU: the backend has no preference
        #expect(lo & (1 << 11) == 0 && lo & (1 << 7) == 0)  // no segmentation offloads
        #expect((0..<6).map { dev.mmioRead(offset: 0x100 + UInt64($0), size: 1) } == [0x52, 0x54, 0, 0xab, 0xcd, 0xef])
        #expect(dev.mmioRead(offset: 0x106, size: 2) == 1)  // link up
        card.linkUp = false
        #expect(dev.mmioRead(offset: 0x106, size: 2) == 0)
        #expect(card.mergeableBuffers)
        #expect(dev.mmioRead(offset: 0x70, size: 4) == 0xf)
    }

    @Test func receivedFrameWaitsForABufferThenArrivesWithItsHeader() throws {
        let (dev, card, backend, drv) = try make()
        let f = frame(100)
        backend.waiting = [f]
        dev.notify(queue: 0)  // no buffer posted yet: the frame waits
        #expect(backend.waiting.count == 1 && drv.usedIdx(0) == 0)
        drv.post(0, [(buffers, 2048, true)])
        drv.w(0x50, 0)
        #expect(backend.waiting.isEmpty)
        #expect(drv.usedIdx(0) == 1 && drv.usedElem(0, 0).len == 112)
        let got = drv.bytes(buffers, 112)
        #expect(Array(got[0..<10]) == Array(repeating: 0, count: 10))
        #expect(got[10] == 1 && got[11] == 0)  // num_buffers
        #expect(Array(got[12...]) == f)
        #expect(sink.level(3))
        #expect(card.framesReceived == 1)
    }

    @Test func mergeableBuffersCarryOneFrameAcrossSeveralChains() throws {
        let (dev, _, backend, drv) = try make()
        for i in 0..<3 { drv.post(0, [(buffers + UInt64(i) * 0x100, 100, true)]) }
        let f = frame(250)
        backend.waiting = [f, frame(200, seed: 9)]
        dev.notify(queue: 0)
        // 262 bytes over 100 + 100 + 62; the second frame needs 212 bytes and only one buffer is left.
        #expect(drv.usedIdx(0) == 3)
        #expect((0..<3).map { drv.usedElem(0, UInt16($0)).len } == [100, 100, 62])
        let first = drv.bytes(buffers, 100)
        #expect(first[10] == 3 && first[11] == 0)
        let payload = Array(first[12...]) + drv.bytes(buffers + 0x100, 100) + drv.bytes(buffers + 0x200, 62)
        #expect(payload == f)
        #expect(backend.waiting.count == 1)
        // Two more buffers are not enough (the frame is not split across notifications); a third is.
        drv.post(0, [(buffers + 0x300, 100, true)])
        drv.post(0, [(buffers + 0x400, 100, true)])
        drv.w(0x50, 0)
        #expect(backend.waiting.count == 1 && drv.usedIdx(0) == 3)
        drv.post(0, [(buffers + 0x500, 100, true)])
        drv.w(0x50, 0)
        #expect(backend.waiting.isEmpty && drv.usedIdx(0) == 6)
        #expect((3..<6).map { drv.usedElem(0, UInt16($0)).len } == [100, 100, 12])
        #expect(drv.bytes(buffers + 0x300, 1)[0] == 0 && drv.bytes(buffers + 0x300 + 10, 1)[0] == 3)
    }

    @Test func withoutMergeableBuffersAFrameTooBigForItsBufferIsDropped() throws {
        let (dev, card, backend, drv) = try make(features: VirtioNet.featureMAC | VirtioMMIO.featureVersion1)
        #expect(!card.mergeableBuffers)
        drv.post(0, [(buffers, 100, true)])
        backend.waiting = [frame(200), frame(50)]
        dev.notify(queue: 0)
        #expect(backend.waiting.isEmpty)
        #expect(card.receiveDropped == 1)
        #expect(drv.usedIdx(0) == 1 && drv.usedElem(0, 0).len == 62)
        #expect(Array(drv.bytes(buffers + 12, 50)) == frame(50))
    }

    @Test func transmitGathersTheFrameAfterTheHeaderAndDropsRuntsAndGiants() throws {
        let (dev, card, backend, drv) = try make()
        let f = frame(600, seed: 5)
        drv.put(buffers, Array(repeating: 0, count: 12) + Array(f[0..<100]))
        drv.put(buffers + 0x1000, Array(f[100...]))
        drv.post(1, [(buffers, 112, false), (buffers + 0x1000, 500, false)])
        drv.post(1, [(buffers, 20, false)])                 // 8 bytes of frame: a runt
        drv.post(1, [(buffers, 12 + 70_000, false)])        // larger than any frame: a giant
        drv.w(0x50, 1)
        #expect(backend.sent == [f])
        #expect(card.transmitDropped == 2)
        #expect(drv.usedIdx(1) == 3)
        #expect(!dev.isBroken)
    }

    /// RFC 1071 over `bytes`, as a reference independent of the device's code.
    func internetChecksum(_ bytes: [UInt8]) -> UInt16 {
        var sum = 0
        for i in stride(from: 0, to: bytes.count, by: 2) {
            sum += Int(bytes[i]) << 8 + (i + 1 < bytes.count ? Int(bytes[i + 1]) : 0)
        }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        return UInt16(sum)
    }

    @Test func transmitCompletesAChecksumTheDriverLeftToTheDevice() throws {
        let (_, card, backend, drv) = try make()
        // Ethernet + IPv4 + UDP from 10.0.2.15:5000 to 10.0.2.2:7 with 101 bytes of payload.
        let payload = frame(101, seed: 3)
        let udpLength = 8 + payload.count
        var f: [UInt8] = [0x52, 0x55, 10, 0, 2, 2, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00]
        f += [0x45, 0, 0, UInt8(20 + udpLength), 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2]
        f += [0x13, 0x88, 0, 7, 0, UInt8(udpLength), 0, 0] + payload
        // The driver stores the folded pseudo-header sum (not inverted) in the UDP checksum field.
        let pseudo = internetChecksum([10, 0, 2, 15, 10, 0, 2, 2, 0, 17, 0, UInt8(udpLength)])
        f[40] = UInt8(pseudo >> 8); f[41] = UInt8(pseudo & 0xff)
        var header = [UInt8](repeating: 0, count: 12)
        header[0] = 1            // NEEDS_CSUM
        header[6] = 34           // csum_start: the UDP header
        header[8] = 6            // csum_offset: its checksum field
        drv.put(buffers, header + f)
        drv.post(1, [(buffers, UInt32(12 + f.count), false)])
        // A checksum position past the end of the frame drops that frame.
        var bad = header; bad[6] = 0xff; bad[7] = 0xff
        drv.put(buffers + 0x1000, bad + f)
        drv.post(1, [(buffers + 0x1000, UInt32(12 + f.count), false)])
        // Segmentation was not offered: a GSO frame is dropped.
        var gso = header; gso[1] = 1
        drv.put(buffers + 0x2000, gso + f)
        drv.post(1, [(buffers + 0x2000, UInt32(12 + f.count), false)])
        drv.w(0x50, 1)
        #expect(backend.sent.count == 1 && card.transmitDropped == 2)
        let sent = backend.sent[0]
        #expect(Array(sent[0..<40]) == Array(f[0..<40]) && Array(sent[42...]) == Array(f[42...]))
        // Receiver's check: pseudo header + UDP segment (with the filled-in checksum) sums to 0xffff.
        #expect(internetChecksum([10, 0, 2, 15, 10, 0, 2, 2, 0, 17, 0, UInt8(udpLength)] + Array(sent[34...])) == 0xffff)
    }

    @Test func framesFromATrustedBackendAreMarkedDataValid() throws {
        let (dev, _, backend, drv) = try make()
        backend.deliversValidChecksums = true
        drv.post(0, [(buffers, 2048, true)])
        backend.waiting = [frame(60)]
        dev.notify(queue: 0)
        #expect(drv.bytes(buffers, 1)[0] == 2)  // VIRTIO_NET_HDR_F_DATA_VALID
        let (dev2, _, backend2, drv2) = try make()  // an untrusted backend (socket, tap): no flag
        drv2.post(0, [(buffers, 2048, true)])
        backend2.waiting = [frame(60)]
        dev2.notify(queue: 0)
        #expect(drv2.bytes(buffers, 1)[0] == 0)
    }

    @Test func receiveBufferThatIsNotWritableBreaksTheDevice() throws {
        let (dev, _, backend, drv) = try make()
        drv.post(0, [(buffers, 2048, false)])
        backend.waiting = [frame(60)]
        dev.notify(queue: 0)
        #expect(dev.isBroken)
        #expect(dev.brokenReason?.contains("receive buffer") == true)
        #expect(backend.waiting.count == 1)
    }

    @Test func receiveChainOutsideRAMBreaksTheDevice() throws {
        let (dev, _, backend, drv) = try make()
        drv.post(0, [(0x1000, 2048, true)])
        backend.waiting = [frame(60)]
        dev.notify(queue: 0)
        #expect(dev.isBroken)
        // Broken stays broken (no processing) until a reset.
        drv.post(1, [(buffers, 112, false)])
        drv.w(0x50, 1)
        #expect(backend.sent.isEmpty)
    }

    /// Random descriptor tables and indices on both queues while frames of every size wait; between the
    /// rounds a valid exchange must work again after a reset.
    @Test func hostileQueuesWithFramesWaiting() throws {
        let (dev, _, backend, drv) = try make()
        var g = SeededRandom(seed: 1414)
        var broken = 0
        for iteration in 0..<800 {
            if iteration % 4 == 0 {
                let fresh = NetDriver(dev: dev, ram: drv.ram, features: all)
                backend.waiting = [frame(60)]
                fresh.post(0, [(buffers, 2048, true)])
                fresh.w(0x50, 0)
                #expect(fresh.usedIdx(0) == 1 && !dev.isBroken && backend.waiting.isEmpty)
                fresh.put(buffers + 0x1000, Array(repeating: 0, count: 12) + frame(80))
                let sentBefore = backend.sent.count
                fresh.post(1, [(buffers + 0x1000, 92, false)])
                fresh.w(0x50, 1)
                #expect(backend.sent.count == sentBefore + 1 && fresh.usedIdx(1) == 1)
                continue
            }
            backend.waiting = (0..<Int(g.next() % 4)).map { _ in
                [UInt8](repeating: 0xab, count: Int(g.next() % 8 == 0 ? g.next() % 70_000 : g.next() % 1600))
            }
            for q in 0..<2 {
                for i in 0..<Int(drv.size) {
                    let d = drv.desc(q) + 16 * UInt64(i)
                    let addr: UInt64 = g.next() % 4 == 0 ? g.next() : ramBase + 0x10000 + g.next() % 0x8000
                    let len = UInt32(truncatingIfNeeded: g.next() % 5 == 0 ? g.next() : g.next() % 4096)
                    drv.ram.store64(d, addr); drv.ram.store32(d + 8, len)
                    drv.ram.store16(d + 12, UInt16(truncatingIfNeeded: g.next() % 8))
                    drv.ram.store16(d + 14, UInt16(truncatingIfNeeded: g.next() % 5 == 0 ? g.next() : g.next() % 16))
                }
                for slot in 0..<Int(drv.size) { drv.ram.store16(drv.avail(q) + 4 + 2 * UInt64(slot), UInt16(truncatingIfNeeded: g.next() % 20)) }
                drv.ram.store16(drv.avail(q) + 2, UInt16(truncatingIfNeeded: g.next() % 6 == 0 ? g.next() : g.next() % 20))
            }
            let beforeRX = drv.usedIdx(0), beforeTX = drv.usedIdx(1)
            drv.w(0x50, g.next() % 2)
            dev.notify(queue: 0)
            #expect(drv.usedIdx(0) &- beforeRX <= drv.size && drv.usedIdx(1) &- beforeTX <= drv.size)
            if dev.isBroken { broken += 1 }
            drv.w(0x70, 0)  // reset; the next round sets the queues up again
            _ = NetDriver(dev: dev, ram: drv.ram, features: all)
        }
        #expect(broken > 40)
    }

    @Test func stateRoundTripsAndTruncationsAreRefused() throws {
        let (dev, card, _, _) = try make()
        card.linkUp = false
        let bytes = saved(dev)
        let (dev2, card2, _, _) = try make()
        try restore(dev2, bytes)
        #expect(card2.linkUp == false && card2.mac == card.mac && card2.mergeableBuffers)
        #expect(saved(dev2) == bytes)
        try expectTruncationsThrow(bytes) { try make().0 }
    }
}
