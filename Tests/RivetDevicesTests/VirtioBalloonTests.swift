#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RivetDevices
import RivetMemory
import RivetSnapshot

/// virtio-balloon: guest-given page frame numbers and reported ranges are checked against RAM, whole pages
/// are given back (read as zero), config and state behave as the driver and snapshots expect.
@Suite struct VirtioBalloonTests {
    let sink = RecordingSink()
    let page: UInt64 = 4096

    func fill(_ ram: GuestRAM, _ address: UInt64, pages: Int, with value: UInt64) {
        for a in stride(from: address, to: address + UInt64(pages) * page, by: 8) { ram.store64(a, value) }
    }

    func pageIsZero(_ ram: GuestRAM, _ address: UInt64) -> Bool {
        stride(from: address, to: address + page, by: 8).allSatisfy { ram.load64($0) == 0 }
    }

    @Test func inflateDiscardsPagesInRAMAndIgnoresOthers() throws {
        let ram = try makeRAM(size: 1 << 20)
        let balloon = VirtioBalloon(ram: ram)
        let dev = VirtioMMIO(model: balloon, ram: ram, irq: sink, source: 6)
        #expect(dev.mmioRead(offset: 8, size: 4) == 5)
        let drv = TestDriver(dev: dev, ram: ram)
        let target = ramBase + 0x40000, neighbour = target + page
        fill(ram, target, pages: 2, with: 0x5a5a_5a5a_5a5a_5a5a)
        // The list: one good frame, then frames before RAM, past its end, and the largest 32-bit value.
        let list = ramBase + 0x8000
        let pfns: [UInt32] = [UInt32(target >> 12), 0, UInt32((ramBase + ram.size) >> 12), 0xffff_ffff, 7]
        for (i, p) in pfns.enumerated() { ram.store32(list + UInt64(4 * i), p) }
        drv.submit([(list, UInt32(4 * pfns.count), false)]); drv.notify()
        #expect(!drv.isBroken)
        #expect(drv.usedIdx == 1 && drv.usedElem(0).len == 0)
        #expect(pageIsZero(ram, target))
        #expect(ram.load64(neighbour) == 0x5a5a_5a5a_5a5a_5a5a)
        #expect(balloon.inflatedPages == 1)
        // A list that is not whole 32-bit numbers is a driver bug.
        drv.submit([(list, 6, false)]); drv.notify()
        #expect(drv.isBroken)
    }

    @Test func reportedRangesGiveBackWholePagesOnly() throws {
        let ram = try makeRAM(size: 1 << 20)
        let balloon = VirtioBalloon(ram: ram)
        let dev = VirtioMMIO(model: balloon, ram: ram, irq: sink, source: 6)
        #expect(dev.mmioRead(offset: 0x10, size: 4) & VirtioBalloon.featureReporting != 0)
        let drv = TestDriver(dev: dev, ram: ram, queue: VirtioBalloon.Queue.reporting)
        let start = ramBase + 0x20000
        fill(ram, start, pages: 5, with: 0x1234)
        // From the middle of the first page to the middle of the fifth: pages 2-4 go, 1 and 5 stay.
        drv.submit([(start + 0x800, UInt32(4 * page), true)]); drv.notify()
        #expect(!drv.isBroken && drv.usedIdx == 1 && drv.usedElem(0).len == 0)
        #expect(ram.load64(start) == 0x1234 && ram.load64(start + 4 * page) == 0x1234)
        for i in 1...3 { #expect(pageIsZero(ram, start + UInt64(i) * page)) }
        #expect(balloon.reportedBytes == 3 * page)
        // A range outside RAM never reaches the host: the chain walk refuses it.
        drv.submit([(0x1000, UInt32(page), true)]); drv.notify()
        #expect(drv.isBroken)
        #expect(balloon.reportedBytes == 3 * page)
    }

    @Test func discardOfFileMappedRAMReadsZeroNotTheFile() throws {
        let ram = try makeRAM(size: 1 << 20)
        let path = "/tmp/rivet-balloon-test-\(getpid()).bin"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        defer { close(fd); unlink(path) }
        var bytes = [UInt8](repeating: 0xab, count: 8192)
        #expect(write(fd, &bytes, bytes.count) == 8192)
        #expect(ram.mapFile(fd: fd, fileOffset: 0, firstPage: 16, pageCount: 2))
        let at = ramBase + 16 * page
        #expect(ram.load64(at) == 0xabab_abab_abab_abab)
        #expect(ram.discard(at, length: 2 * page) == 2 * page)
        #expect(pageIsZero(ram, at) && pageIsZero(ram, at + page))
        #expect(ram.discard(ramBase + ram.size - page, length: 2 * page) == 0)  // runs past RAM: nothing
    }

    @Test func targetConfigEventsAndState() throws {
        let ram = try makeRAM(size: 1 << 20)
        let balloon = VirtioBalloon(ram: ram)
        let dev = VirtioMMIO(model: balloon, ram: ram, irq: sink, source: 6)
        balloon.onConfigChange = { dev.notifyConfigChange() }
        var changes: [UInt64] = []
        balloon.onActualChange = { changes.append($0.actualBytes) }
        _ = TestDriver(dev: dev, ram: ram)
        #expect(!balloon.setTarget(bytes: 0))
        #expect(balloon.setTarget(bytes: 768 << 10))
        #expect(dev.mmioRead(offset: 0x100, size: 4) == 64)  // pages to give up: 256 KiB
        #expect(dev.mmioRead(offset: 0x60, size: 4) & 2 != 0)  // configuration change interrupt
        dev.mmioWrite(offset: 0x104, size: 4, value: 64)
        #expect(changes == [768 << 10] && balloon.actualBytes == 768 << 10)
        dev.mmioWrite(offset: 0x100, size: 4, value: 5)  // num_pages is the host's: ignored
        #expect(dev.mmioRead(offset: 0x100, size: 4) == 64)
        #expect(balloon.setTarget(bytes: 1 << 40))  // above RAM: empty balloon
        #expect(dev.mmioRead(offset: 0x100, size: 4) == 0)

        // State round trip through the transport; a state claiming more pages than RAM is refused.
        let state = saved(dev)
        let other = VirtioMMIO(model: VirtioBalloon(ram: ram), ram: ram, irq: sink, source: 6)
        try restore(other, state)
        #expect((other.model as! VirtioBalloon).actualPages == 64)
        try expectTruncationsThrow(state) { VirtioMMIO(model: VirtioBalloon(ram: ram), ram: ram, irq: sink, source: 6) }
        var w = StateWriter(); w.bool(true); w.u32(0); w.u32(1 << 20)
        var r = StateReader(w.bytes, context: "balloon")
        #expect(throws: (any Error).self) { try VirtioBalloon(ram: ram).restoreState(from: &r) }
        var w2 = StateWriter(); w2.bool(false); w2.u32(0); w2.u32(0)
        var r2 = StateReader(w2.bytes, context: "balloon")
        #expect(throws: (any Error).self) { try VirtioBalloon(ram: ram).restoreState(from: &r2) }
    }
}
