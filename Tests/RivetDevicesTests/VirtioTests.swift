import Testing
@testable import RivetDevices
import RivetMemory

@Suite struct VirtioTests {
    let sink = RecordingSink()

    func blk(_ disk: MemoryDisk, ram: GuestRAM) -> (VirtioMMIO, TestDriver) {
        let dev = VirtioMMIO(model: VirtioBlock(disk: disk), ram: ram, irq: sink, source: 1)
        return (dev, TestDriver(dev: dev, ram: ram))
    }

    // Request layout in RAM: header at +0x4000, data at +0x5000, status at +0x6000.
    let hdr = ramBase + 0x4000, buf = ramBase + 0x5000, st = ramBase + 0x6000

    func header(_ ram: GuestRAM, type: UInt32, sector: UInt64) {
        ram.store32(hdr, type); ram.store32(hdr + 4, 0); ram.store64(hdr + 8, sector)
    }

    @Test func identityRegistersAndEmptySlot() throws {
        let ram = try makeRAM()
        let empty = VirtioMMIO(model: nil, ram: ram, irq: sink, source: 2)
        #expect(empty.mmioRead(offset: 0, size: 4) == 0x7472_6976)
        #expect(empty.mmioRead(offset: 4, size: 4) == 2)
        #expect(empty.mmioRead(offset: 8, size: 4) == 0)
        #expect(empty.mmioRead(offset: 0xc, size: 4) == 0x554d_4551)
        let dev = VirtioMMIO(model: VirtioRNG(), ram: ram, irq: sink, source: 1)
        #expect(dev.mmioRead(offset: 8, size: 4) == 4)
        dev.mmioWrite(offset: 0x14, size: 4, value: 1)
        #expect(dev.mmioRead(offset: 0x10, size: 4) & 1 == 1)  // VERSION_1
        dev.mmioWrite(offset: 0x30, size: 4, value: 0)
        #expect(dev.mmioRead(offset: 0x34, size: 4) == 256)
        dev.mmioWrite(offset: 0x30, size: 4, value: 1)
        #expect(dev.mmioRead(offset: 0x34, size: 4) == 0)  // no second queue
    }

    @Test func featureNegotiationRefusesUnofferedBits() throws {
        let ram = try makeRAM()
        let dev = VirtioMMIO(model: VirtioRNG(), ram: ram, irq: sink, source: 1)
        dev.mmioWrite(offset: 0x70, size: 4, value: 3)
        dev.mmioWrite(offset: 0x24, size: 4, value: 0)
        dev.mmioWrite(offset: 0x20, size: 4, value: 1 << 5)  // not offered
        dev.mmioWrite(offset: 0x24, size: 4, value: 1)
        dev.mmioWrite(offset: 0x20, size: 4, value: 1)
        dev.mmioWrite(offset: 0x70, size: 4, value: 0xb)
        #expect(dev.mmioRead(offset: 0x70, size: 4) & 8 == 0)
        // Legacy drivers (no VERSION_1) are refused too.
        dev.mmioWrite(offset: 0x70, size: 4, value: 0)
        dev.mmioWrite(offset: 0x70, size: 4, value: 3)
        dev.mmioWrite(offset: 0x70, size: 4, value: 0xb)
        #expect(dev.mmioRead(offset: 0x70, size: 4) & 8 == 0)
    }

    @Test func blockReadWriteFlushGetID() throws {
        let ram = try makeRAM()
        let disk = MemoryDisk(size: 64 * 512)
        let (dev, drv) = blk(disk, ram: ram)
        #expect(dev.mmioRead(offset: 8, size: 4) == 2)
        #expect(dev.mmioRead(offset: 0x100, size: 8) == 64)  // capacity in sectors
        #expect(dev.mmioRead(offset: 0x100, size: 4) == 64 && dev.mmioRead(offset: 0x104, size: 4) == 0)
        #expect(dev.mmioRead(offset: 0x70, size: 4) == 0xf)

        // Read sector 3.
        header(ram, type: 0, sector: 3)
        drv.submit([(hdr, 16, false), (buf, 512, true), (st, 1, true)])
        drv.notify()
        #expect(drv.usedIdx == 1)
        #expect(drv.usedElem(0).id == 0 && drv.usedElem(0).len == 513)
        #expect(ram.pointer(st, length: 1)!.load(as: UInt8.self) == 0)
        let got = (0..<512).map { ram.pointer(buf + UInt64($0), length: 1)!.load(as: UInt8.self) }
        #expect(got == Array(disk.data[3 * 512..<4 * 512]))
        #expect(sink.level(1))
        #expect(dev.mmioRead(offset: 0x60, size: 4) == 1)
        dev.mmioWrite(offset: 0x64, size: 4, value: 1)
        #expect(!sink.level(1))
        #expect(ram.dirtyPages[Int((buf - ramBase) >> 12)] == 1)  // DMA went through noteWrite

        // Write sector 5 from two data segments.
        for i in 0..<1024 { ram.pointer(buf + UInt64(i), length: 1)!.storeBytes(of: UInt8(truncatingIfNeeded: i * 3 + 1), as: UInt8.self) }
        header(ram, type: 1, sector: 5)
        drv.submit([(hdr, 16, false), (buf, 300, false), (buf + 300, 724, false), (st, 1, true)])
        drv.notify()
        #expect(drv.usedIdx == 2)
        #expect(ram.pointer(st, length: 1)!.load(as: UInt8.self) == 0)
        #expect(Array(disk.data[5 * 512..<7 * 512]) == (0..<1024).map { UInt8(truncatingIfNeeded: $0 * 3 + 1) })

        // Flush, GET_ID, an unsupported type, and a range past the end.
        header(ram, type: 4, sector: 0)
        drv.submit([(hdr, 16, false), (st, 1, true)]); drv.notify()
        #expect(disk.flushes == 1)
        #expect(ram.pointer(st, length: 1)!.load(as: UInt8.self) == 0)
        header(ram, type: 8, sector: 0)
        drv.submit([(hdr, 16, false), (buf, 20, true), (st, 1, true)]); drv.notify()
        let id = (0..<10).map { ram.pointer(buf + UInt64($0), length: 1)!.load(as: UInt8.self) }
        #expect(id == Array("rivet-disk".utf8))
        header(ram, type: 77, sector: 0)
        drv.submit([(hdr, 16, false), (st, 1, true)]); drv.notify()
        #expect(ram.pointer(st, length: 1)!.load(as: UInt8.self) == 2)
        header(ram, type: 0, sector: 63)
        drv.submit([(hdr, 16, false), (buf, 1024, true), (st, 1, true)]); drv.notify()
        #expect(ram.pointer(st, length: 1)!.load(as: UInt8.self) == 1)
        // Disk I/O errors become IOERR.
        disk.failIO = true
        header(ram, type: 0, sector: 0)
        drv.submit([(hdr, 16, false), (buf, 512, true), (st, 1, true)]); drv.notify()
        #expect(ram.pointer(st, length: 1)!.load(as: UInt8.self) == 1)
        #expect(drv.usedIdx == 7)
        #expect(!dev.isBroken)
    }

    @Test func readOnlyDiskRefusesWrites() throws {
        let ram = try makeRAM()
        let disk = MemoryDisk(size: 8 * 512, readOnly: true)
        let (dev, drv) = blk(disk, ram: ram)
        dev.mmioWrite(offset: 0x14, size: 4, value: 0)
        #expect(dev.mmioRead(offset: 0x10, size: 4) & (1 << 5) != 0)  // VIRTIO_BLK_F_RO
        #expect(dev.mmioRead(offset: 0x10, size: 4) & (1 << 13) == 0)  // no DISCARD
        let before = disk.data
        header(ram, type: 1, sector: 0)
        drv.submit([(hdr, 16, false), (buf, 512, false), (st, 1, true)]); drv.notify()
        #expect(ram.pointer(st, length: 1)!.load(as: UInt8.self) == 1)
        #expect(disk.data == before)
    }

    @Test func discard() throws {
        let ram = try makeRAM()
        let disk = MemoryDisk(size: 64 * 512)
        let (_, drv) = blk(disk, ram: ram)
        header(ram, type: 11, sector: 0)
        ram.store64(buf, 8); ram.store32(buf + 8, 4); ram.store32(buf + 12, 0)
        drv.submit([(hdr, 16, false), (buf, 16, false), (st, 1, true)]); drv.notify()
        #expect(ram.pointer(st, length: 1)!.load(as: UInt8.self) == 0)
        #expect(disk.discards.count == 1 && disk.discards[0] == (8 * 512, 4 * 512))
    }

    @Test func indirectDescriptors() throws {
        let ram = try makeRAM()
        let disk = MemoryDisk(size: 64 * 512)
        let (_, drv) = blk(disk, ram: ram)
        let table = ramBase + 0x8000
        header(ram, type: 0, sector: 1)
        drv.writeDescriptor(0, addr: hdr, len: 16, flags: 1, next: 1, table: table)
        drv.writeDescriptor(1, addr: buf, len: 512, flags: 3, next: 2, table: table)
        drv.writeDescriptor(2, addr: st, len: 1, flags: 2, next: 0, table: table)
        drv.writeDescriptor(0, addr: table, len: 48, flags: 4, next: 0)
        drv.publish(0); drv.notify()
        #expect(drv.usedIdx == 1)
        #expect(ram.pointer(st, length: 1)!.load(as: UInt8.self) == 0)
        #expect(ram.pointer(buf, length: 1)!.load(as: UInt8.self) == disk.data[512])
        // A nested indirect table breaks the device.
        drv.writeDescriptor(1, addr: table, len: 48, flags: 4 | 2, next: 2, table: table)
        drv.writeDescriptor(0, addr: hdr, len: 16, flags: 1, next: 1, table: table)
        drv.writeDescriptor(1, addr: table, len: 48, flags: 4, next: 0, table: table)
        drv.writeDescriptor(0, addr: table, len: 48, flags: 4, next: 0)
        drv.publish(0); drv.notify()
        #expect(drv.isBroken)
    }

    @Test func rngFillsWritableBuffers() throws {
        let ram = try makeRAM()
        let dev = VirtioMMIO(model: VirtioRNG(), ram: ram, irq: sink, source: 4)
        let drv = TestDriver(dev: dev, ram: ram)
        drv.submit([(buf, 256, true)]); drv.notify()
        #expect(drv.usedIdx == 1 && drv.usedElem(0).len == 256)
        let bytes = (0..<256).map { ram.pointer(buf + UInt64($0), length: 1)!.load(as: UInt8.self) }
        #expect(Set(bytes).count > 100)  // random bytes, not zeros
        // Large requests are capped.
        drv.submit([(ramBase + 0x10000, 200_000, true)]); drv.notify()
        #expect(drv.usedElem(1).len == 65536)
        #expect(sink.level(4))
        // A chain with nothing writable is a driver bug.
        drv.submit([(buf, 16, false)]); drv.notify()
        #expect(drv.isBroken)
        #expect(dev.brokenReason != nil)
    }

    /// Each hostile ring marks the device broken without crashing; a reset recovers it.
    @Test(arguments: ["loop", "index", "outside", "ahead", "overflow", "readonlyStatus", "order", "noHeader", "nextOutOfRange"])
    func hostileRingsBreakTheDevice(_ kind: String) throws {
        let ram = try makeRAM()
        let disk = MemoryDisk(size: 64 * 512)
        let (dev, drv) = blk(disk, ram: ram)
        header(ram, type: 0, sector: 0)
        switch kind {
        case "loop":
            drv.writeDescriptor(0, addr: hdr, len: 16, flags: 1, next: 1)
            drv.writeDescriptor(1, addr: buf, len: 16, flags: 3, next: 0)
            drv.publish(0)
        case "index": drv.publish(999)
        case "outside": drv.submit([(hdr, 16, false), (0x1000, 512, true), (st, 1, true)])
        case "ahead":
            drv.submit([(hdr, 16, false), (st, 1, true)])
            ram.store16(drv.avail + 2, 40_000)
        case "overflow": drv.submit([(hdr, 16, false), (ramBase + (1 << 20) - 8, 0xffff_fff0, true), (st, 1, true)])
        case "readonlyStatus": drv.submit([(hdr, 16, false), (buf, 512, true), (st, 1, false)])
        case "order": drv.submit([(hdr, 16, false), (buf, 512, true), (st, 1, false), (st, 1, true)])
        case "noHeader": drv.submit([(hdr, 8, false), (st, 1, true)])
        default:
            drv.writeDescriptor(0, addr: hdr, len: 16, flags: 1, next: 300)
            drv.publish(0)
        }
        drv.notify()
        #expect(drv.isBroken, "\(kind)")
        #expect(sink.level(1))  // configuration change interrupt
        #expect(dev.mmioRead(offset: 0x60, size: 4) & 2 != 0)
        // Broken devices stay quiet until reset; then they work again.
        drv.notify()
        drv.setUp()
        #expect(!drv.isBroken)
        header(ram, type: 0, sector: 2)
        drv.submit([(hdr, 16, false), (buf, 512, true), (st, 1, true)]); drv.notify()
        #expect(drv.usedIdx == 1)
        #expect(ram.pointer(st, length: 1)!.load(as: UInt8.self) == 0)
    }

    @Test func queueSetupOutsideRAMBreaksTheDevice() throws {
        let ram = try makeRAM()
        let dev = VirtioMMIO(model: VirtioRNG(), ram: ram, irq: sink, source: 4)
        let drv = TestDriver(dev: dev, ram: ram, ringBase: ramBase + (1 << 20) - 0x1000)
        #expect(drv.isBroken)
        #expect(dev.queues[0].ready == false)
    }

    @Test func snapshotRoundTrip() throws {
        let ram = try makeRAM()
        let disk = MemoryDisk(size: 64 * 512)
        let (dev, drv) = blk(disk, ram: ram)
        header(ram, type: 0, sector: 3)
        drv.submit([(hdr, 16, false), (buf, 512, true), (st, 1, true)]); drv.notify()
        let state = saved(dev)
        let sink2 = RecordingSink()
        let dev2 = VirtioMMIO(model: VirtioBlock(disk: disk), ram: ram, irq: sink2, source: 1)
        try restore(dev2, state)
        #expect(saved(dev2) == state)
        #expect(sink2.level(1))
        // The restored device continues the same ring.
        header(ram, type: 0, sector: 4)
        drv.submit([(hdr, 16, false), (buf, 512, true), (st, 1, true)])
        dev2.mmioWrite(offset: 0x50, size: 4, value: 0)
        #expect(drv.usedIdx == 2)
        #expect(ram.pointer(buf, length: 1)!.load(as: UInt8.self) == disk.data[4 * 512])
        try expectTruncationsThrow(state) { VirtioMMIO(model: VirtioBlock(disk: disk), ram: ram, irq: RecordingSink(), source: 1) }
        // A state for another device type is refused.
        #expect(throws: (any Error).self) {
            try restore(VirtioMMIO(model: VirtioRNG(), ram: ram, irq: RecordingSink(), source: 1), state)
        }
    }
}
