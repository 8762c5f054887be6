import Testing
@testable import RivetCPU
import RivetMemory
import RivetSnapshot

/// PMP details that the ISA test (tests/isa/pmp.S) cannot see from inside the guest: snapshot round trips
/// of locked entries and the TLB staying out of split pages.

@Test func pmpStateSurvivesASnapshotIncludingLockedEntries() throws {
    let m = try TestMachine()
    m.hart.writeCSR(0x3b0 + 2, (0x8000_1000 >> 2) | 0x1ff)  // pmpaddr2: NAPOT 4 KiB
    m.hart.writeCSR(0x3a0, 0x1f | (0x99 << 16))              // entry 2: NAPOT R, locked
    m.hart.writeCSR(0x3a2, 0x0b << 8)                        // entry 9: TOR R W
    var w = StateWriter()
    m.hart.saveState(to: &w)
    let other = try TestMachine()
    other.hart.writeCSR(0x3a0, 0x80 << 24)                   // a locked entry 3 that the restore must clear
    var r = StateReader(w.bytes, context: "cpu.0")
    try other.hart.restoreState(from: &r)
    #expect(other.hart.pmpcfg == m.hart.pmpcfg)
    #expect(other.hart.pmpaddr == m.hart.pmpaddr)
    // The lock came back with the state: the entry still ignores writes and still binds M-mode.
    other.hart.writeCSR(0x3a0, 0)
    #expect(other.hart.readCSR(0x3a0) == 0x99 << 16)
    #expect(other.hart.debugRead(0x8000_1000, size: 8) != nil, "locked R: M may read")
    #expect(other.hart.pmpAllows(0x8000_1000, size: 8, .write, .machine) == false, "locked without W binds M")
}

@Test func pmpFieldsHoldOnlyWhatSixteenEntriesCan() throws {
    let other = try TestMachine()
    other.hart.writeCSR(0x3b0 + 20, 12345)
    other.hart.writeCSR(0x3a4, ~0)
    #expect(other.hart.readCSR(0x3b0 + 20) == 0)
    #expect(other.hart.readCSR(0x3a4) == 0)
    other.hart.writeCSR(0x3a0, 0x7a)                         // W without R, reserved bits 5-6
    #expect(other.hart.readCSR(0x3a0) == 0x18)
}

@Test func pagesSplitByAPMPRuleGetNoTLBEntry() throws {
    let m = try TestMachine()
    let base = TestMachine.base
    // Entry 0: NA4 at base+0x2040 with no permissions; entry 1 keeps all other memory open. S-mode loads
    // from base+0x2048 twice (a TLB entry for the page would be made on the first), then from base+0x2040.
    m.hart.writeCSR(0x3b0 + 1, ~0)
    m.hart.writeCSR(0x3b0, (base + 0x2040) >> 2)
    m.hart.writeCSR(0x3a0, 0x10 | (0x1f << 8))
    m.load([ld(6, 5, 0x48), ld(7, 5, 0x48), ld(8, 5, 0x40), ecall], at: base + 0x3000)
    m.hart.x[5] = base + 0x2000
    m.ram.store64(base + 0x2048, 99)
    m.hart.csr.mepc = base + 0x3000
    m.hart.csr.mstatus |= 1 << 11  // MPP = S
    m.load([mret])
    m.runUntilEcall()
    #expect(m.hart.x[6] == 99 && m.hart.x[7] == 99)
    #expect(m.hart.csr.mcause == 5, "the NA4 word faults although the page was read just before")
    #expect(m.hart.csr.mtval == base + 0x2040)
}
