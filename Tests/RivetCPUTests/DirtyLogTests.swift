import Testing
@testable import RivetCPU
import RivetMemory

// Exact dirty-page logging (live migration): every path that writes guest RAM marks its page.

private func page(_ address: UInt64) -> Int { Int((address - TestMachine.base) >> 12) }

/// Runs the one instruction at `at` (the hart's pc is reset to it).
private func step(_ m: TestMachine, at: UInt64) {
    m.hart.pc = at
    _ = m.hart.run(budget: 1)
}

@Test func dirtyLogSeesEveryWritePath() throws {
    let m = try TestMachine()
    let base = TestMachine.base
    let data = base + 0x20_0000
    // 0: sd x6,0(x5)   4: amoadd.d x7,x6,(x5)   8: lr.d x7,(x5)   12: sc.d x7,x6,(x5)
    m.load([sd(6, 5, 0), rtype(0, 6, 5, 3, 7, 0x2f), rtype(0x08, 0, 5, 3, 7, 0x2f), rtype(0x0c, 6, 5, 3, 7, 0x2f)])
    m.hart.x[6] = 0x1234

    // A store before logging leaves a writable TLB entry behind: the fast path must not bypass the log.
    m.hart.x[5] = data
    step(m, at: base)
    m.ram.startDirtyLog()
    #expect(m.ram.syncDirtyLog() == [])
    step(m, at: base)
    #expect(m.ram.syncDirtyLog() == [page(data)], "fast-path store after logging started")
    step(m, at: base)
    #expect(m.ram.syncDirtyLog() == [page(data)], "fast-path store after a sync")
    #expect(m.ram.syncDirtyLog() == [], "nothing written since the last sync")

    // Misaligned store across a page boundary (slow path): both pages.
    m.hart.x[5] = data + 0x1000 - 4
    step(m, at: base)
    #expect(m.ram.syncDirtyLog() == [page(data), page(data) + 1], "misaligned slow-path store")

    // AMO and a successful SC.
    m.hart.x[5] = data + 0x3000
    step(m, at: base + 4)
    #expect(m.ram.syncDirtyLog() == [page(data) + 3], "amoadd")
    m.hart.x[5] = data + 0x4000
    step(m, at: base + 8)
    #expect(m.ram.syncDirtyLog() == [], "lr writes nothing")
    step(m, at: base + 12)
    #expect(m.hart.x[7] == 0, "sc succeeded")
    #expect(m.ram.syncDirtyLog() == [page(data) + 4], "sc")

    // Page-table A/D update: a Sv39 gigapage leaf without A and D, translated for a supervisor write.
    let root = base + 0x30_0000
    m.ram.store64(root, (0x80000 << 10) | 0xf)  // V R W X, A=D=0: VA 0 -> PA 0x8000_0000
    _ = m.ram.syncDirtyLog()
    m.hart.csr.satp = 8 << 60 | (root >> 12)
    #expect(m.hart.translate(0x1000, .write, privilege: .supervisor) != nil)
    #expect(m.ram.load64(root)! & 0xc0 == 0xc0, "A and D set")
    #expect(m.ram.syncDirtyLog() == [page(root)], "A/D update")
    m.hart.csr.satp = 0

    // Device DMA (checked accessors).
    _ = m.ram.write(data + 0x5000, bytes: [1, 2, 3])
    m.ram.store32(data + 0x6000, 7)
    #expect(m.ram.syncDirtyLog() == [page(data) + 5, page(data) + 6], "DMA")
}

@Test func syncReportsOnlyPagesWrittenSince() throws {
    let m = try TestMachine()
    let base = TestMachine.base
    m.load([sd(6, 5, 0)])
    m.ram.startDirtyLog()
    for p in [0x40, 0x41, 0x90] {
        m.hart.x[5] = base + UInt64(p) << 12
        step(m, at: base)
    }
    let first = m.ram.syncDirtyLog()
    #expect(first.contains(0x40) && first.contains(0x41) && first.contains(0x90))
    // Fast-path entries for 0x40 exist now; only 0x41 is written again.
    m.hart.x[5] = base + 0x41 << 12
    step(m, at: base)
    step(m, at: base)
    #expect(m.ram.syncDirtyLog() == [0x41])
    m.ram.stopDirtyLog()
    #expect(!m.ram.dirtyLogging)
}

@Test func storeRunAloneAfterASyncIsLogged() throws {
    // A 4-byte store straddling a page boundary runs by itself (not as a decoded block); it too must find
    // the writable TLB entries gone once logging starts or a sync clears the log.
    let m = try TestMachine()
    let base = TestMachine.base
    let data = base + 0x20_0000
    let at = base + 0xffe
    let store = sd(6, 5, 0)
    m.ram.store16(at, UInt16(truncatingIfNeeded: store))
    m.ram.store16(at + 2, UInt16(truncatingIfNeeded: store >> 16))
    m.hart.x[5] = data
    m.hart.x[6] = 0x55
    step(m, at: at)  // before logging: leaves a writable TLB entry for the data page
    #expect(m.ram.load64(data) == 0x55)
    m.ram.startDirtyLog()
    step(m, at: at)
    #expect(m.hart.pc == at + 4)
    #expect(m.ram.syncDirtyLog() == [page(data)], "store after logging started")
    step(m, at: at)
    #expect(m.ram.syncDirtyLog() == [page(data)], "store after a sync")
}
