import Testing
@testable import RivetCPU
import RivetMemory
import RivetSnapshot

// Tiny encoders for hand-written test programs.
func rtype(_ f7: UInt32, _ rs2: UInt32, _ rs1: UInt32, _ f3: UInt32, _ rd: UInt32, _ op: UInt32) -> UInt32 {
    f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op
}
func itype(_ imm: Int32, _ rs1: UInt32, _ f3: UInt32, _ rd: UInt32, _ op: UInt32) -> UInt32 {
    (UInt32(bitPattern: imm) & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op
}
func stype(_ imm: Int32, _ rs2: UInt32, _ rs1: UInt32, _ f3: UInt32) -> UInt32 {
    let i = UInt32(bitPattern: imm)
    return (i >> 5 & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (i & 0x1f) << 7 | 0x23
}
func btype(_ imm: Int32, _ rs2: UInt32, _ rs1: UInt32, _ f3: UInt32) -> UInt32 {
    let i = UInt32(bitPattern: imm)
    return (i >> 12 & 1) << 31 | (i >> 5 & 0x3f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (i >> 1 & 0xf) << 8 | (i >> 11 & 1) << 7 | 0x63
}
func addi(_ rd: UInt32, _ rs1: UInt32, _ imm: Int32) -> UInt32 { itype(imm, rs1, 0, rd, 0x13) }
func add(_ rd: UInt32, _ rs1: UInt32, _ rs2: UInt32) -> UInt32 { rtype(0, rs2, rs1, 0, rd, 0x33) }
func lui(_ rd: UInt32, _ imm20: UInt32) -> UInt32 { imm20 << 12 | rd << 7 | 0x37 }
func sd(_ rs2: UInt32, _ rs1: UInt32, _ imm: Int32) -> UInt32 { stype(imm, rs2, rs1, 3) }
func sw(_ rs2: UInt32, _ rs1: UInt32, _ imm: Int32) -> UInt32 { stype(imm, rs2, rs1, 2) }
func ld(_ rd: UInt32, _ rs1: UInt32, _ imm: Int32) -> UInt32 { itype(imm, rs1, 3, rd, 0x03) }
func bne(_ rs1: UInt32, _ rs2: UInt32, _ imm: Int32) -> UInt32 { btype(imm, rs2, rs1, 1) }
func jalr(_ rd: UInt32, _ rs1: UInt32, _ imm: Int32) -> UInt32 { itype(imm, rs1, 0, rd, 0x67) }
func csrrw(_ rd: UInt32, _ csr: UInt32, _ rs1: UInt32) -> UInt32 { csr << 20 | rs1 << 15 | 1 << 12 | rd << 7 | 0x73 }
func csrrs(_ rd: UInt32, _ csr: UInt32, _ rs1: UInt32) -> UInt32 { csr << 20 | rs1 << 15 | 2 << 12 | rd << 7 | 0x73 }
let ecall: UInt32 = 0x73
let mret: UInt32 = 0x3020_0073

/// A one-hart machine with RAM at 0x8000_0000.
final class TestMachine {
    let ram: GuestRAM
    let bus: PhysicalBus
    let cache: BlockCache
    let wires = InterruptWires(hartCount: 1)
    let clock = VirtualClock(mode: .instructionCount(shift: 0))
    let hart: Hart
    static let base: UInt64 = 0x8000_0000

    init() throws {
        ram = try GuestRAM(base: TestMachine.base, size: 4 << 20)
        bus = PhysicalBus(ram: ram)
        cache = BlockCache(ram: ram)
        hart = Hart(hartID: 0, bus: bus, cache: cache, wires: wires, clock: clock)
        hart.reset(pc: TestMachine.base)
        // As firmware does: one PMP entry gives S and U all memory (with no entry they may touch nothing).
        hart.writeCSR(0x3b0, ~0)
        hart.writeCSR(0x3a0, 0x1f)
    }

    func load(_ words: [UInt32], at address: UInt64 = TestMachine.base) {
        for (i, w) in words.enumerated() { ram.store32(address + UInt64(i * 4), w) }
    }

    /// Runs until the hart executes `ecall` from M-mode (mtvec points at a self-loop we detect).
    func runUntilEcall(limit: Int = 1_000_000) {
        hart.csr.mtvec = TestMachine.base + 0x10_0000
        load([0x0000_006f], at: TestMachine.base + 0x10_0000)  // j . (trap sink)
        var n = 0
        while hart.pc != TestMachine.base + 0x10_0000 && n < limit {
            _ = hart.run(budget: 1)
            n += 1
        }
    }
}

@Test func loopSumsIntegers() throws {
    let m = try TestMachine()
    // x5 = 100; x6 = 0; loop: x6 += x5; x5 -= 1; bnez x5, loop; ecall
    m.load([addi(5, 0, 100), addi(6, 0, 0), add(6, 6, 5), addi(5, 5, -1), bne(5, 0, -8), ecall])
    m.runUntilEcall()
    #expect(m.hart.x[6] == 5050)
    #expect(m.hart.csr.mcause == 11)
    #expect(m.hart.x[0] == 0)
}

@Test func storeToCodeInvalidatesDecodedBlock() throws {
    let m = try TestMachine()
    let base = TestMachine.base
    // Subroutine at base+0x1000: addi x10, x0, 1; ret
    m.load([addi(10, 0, 1), jalr(0, 1, 0)], at: base + 0x1000)
    // main: call sub (decoded once); overwrite its first instruction with addi x10,x0,2; call again.
    let newInsn = addi(10, 0, 2)
    m.load([
        0x0000_1397,                  // auipc x7, 0x1: x7 = base + 0x1000
        jalr(1, 7, 0),                // call
        add(11, 10, 0),               // x11 = first result
        lui(8, newInsn >> 12 + ((newInsn >> 11) & 1)), addi(8, 8, Int32(bitPattern: newInsn << 20) >> 20),
        sw(8, 7, 0),                  // patch (no fence.i needed by Rivet; RISC-V would require one)
        0x0000_100f,                  // fence.i
        jalr(1, 7, 0),                // call again
        ecall,
    ])
    m.runUntilEcall()
    #expect(m.hart.x[11] == 1)
    #expect(m.hart.x[10] == 2)
}

@Test func sv39TranslationSetsAccessedAndDirty() throws {
    let m = try TestMachine()
    let base = TestMachine.base
    // Root table at base+0x20000 maps VA 0x4000_0000 (1 GiB superpage, index 1) to PA 0x8000_0000 (RWX, no A/D).
    let root = base + 0x20000
    let leaf: UInt64 = ((base >> 12) << 10) | 0b1111  // V R W X
    m.ram.store64(root + 8, leaf)
    // Identity map of the code region through index 2 (VA 0x8000_0000 -> PA 0x8000_0000), A and D set.
    m.ram.store64(root + 16, leaf | (1 << 6) | (1 << 7))
    // S-mode code at base+0x3000: store then load through VA 0x4000_8000, then ecall.
    m.load([lui(5, 0x40008), addi(6, 0, 77), sd(6, 5, 0), ld(7, 5, 0), ecall], at: base + 0x3000)
    m.hart.csr.satp = (8 << 60) | (root >> 12)
    m.hart.csr.mepc = base + 0x3000
    m.hart.csr.mstatus |= 1 << 11  // MPP = S
    m.load([mret])
    m.runUntilEcall()
    #expect(m.hart.csr.mcause == 9, "ecall from S")
    #expect(m.hart.x[7] == 77)
    #expect(m.ram.load64(base + 0x8000) == 77)
    let pte = m.ram.load64(root + 8)!
    #expect(pte & (1 << 6) != 0, "A set")
    #expect(pte & (1 << 7) != 0, "D set")
}

@Test func pageFaultReportsCauseAndAddress() throws {
    let m = try TestMachine()
    let base = TestMachine.base
    let root = base + 0x20000
    m.ram.store64(root + 16, ((base >> 12) << 10) | 0b1111 | 0xc0)
    m.ram.store64(root + 8, ((base >> 12) << 10) | 0b0011 | 0xc0)  // read-only superpage
    m.load([lui(5, 0x40008), sd(0, 5, 0), ecall], at: base + 0x3000)
    m.hart.csr.satp = (8 << 60) | (root >> 12)
    m.hart.csr.mepc = base + 0x3000
    m.hart.csr.mstatus |= 1 << 11
    m.load([mret])
    m.runUntilEcall()
    #expect(m.hart.csr.mcause == 15)
    #expect(m.hart.csr.mtval == 0x4000_8000)
    #expect(m.hart.csr.mepc == base + 0x3004)
}

@Test func mipReadModifyWriteDoesNotLatchDevicePins() throws {
    let m = try TestMachine()
    m.wires.set(hart: 0, InterruptWires.seip, true)
    // csrrs x5, mip, x6 with x6 = STIP
    m.load([addi(6, 0, 32), csrrs(5, 0x344, 6), ecall])
    m.runUntilEcall()
    #expect(m.hart.x[5] & (1 << 9) != 0, "SEIP visible while the pin is high")
    m.wires.set(hart: 0, InterruptWires.seip, false)
    #expect(m.hart.effectiveMIP & (1 << 9) == 0, "SEIP gone when the pin drops")
    #expect(m.hart.effectiveMIP & (1 << 5) != 0, "STIP set by software")
}

@Test func snapshotRoundTripAndTruncation() throws {
    let m = try TestMachine()
    m.load([addi(5, 0, 42), addi(6, 0, -1), ecall])
    m.runUntilEcall()
    var w = StateWriter()
    m.hart.saveState(to: &w)
    let other = try TestMachine()
    var r = StateReader(w.bytes, context: "cpu.0")
    try other.hart.restoreState(from: &r)
    #expect(other.hart.pc == m.hart.pc)
    #expect(other.hart.x[5] == 42 && other.hart.x[6] == UInt64.max)
    #expect(other.hart.csr == m.hart.csr)
    #expect(other.hart.instret == m.hart.instret)
    for cut in stride(from: 0, to: w.bytes.count, by: 37) {
        var t = StateReader(Array(w.bytes[0..<cut]), context: "cpu.0")
        #expect(throws: SnapshotError.self) { try other.hart.restoreState(from: &t) }
    }
}

@Test func reservedCompressedEncodingsAreIllegal() {
    #expect(Decoder.decode16(0x0000).op == .illegal)          // all zero
    #expect(Decoder.decode16(0x6081).op == .illegal)          // c.lui x1, 0 (nzimm = 0)
    #expect(Decoder.decode16(0x2001).op == .illegal)          // c.addiw x0
    #expect(Decoder.decode16(0x8002).op == .illegal)          // c.jr x0
}

@Test func deviceDMAIntoCodeInvalidatesDecodedBlock() throws {
    let m = try TestMachine()
    let base = TestMachine.base
    // Subroutine returns 1; it is decoded and run once, then a "device" overwrites it through the DMA
    // path (GuestRAM.write), and the next call must run the new code.
    m.load([addi(10, 0, 1), jalr(0, 1, 0)], at: base + 0x1000)
    m.load([0x0000_1397, jalr(1, 7, 0), add(11, 10, 0), ecall])  // auipc x7,1; call; x11 = x10; ecall
    m.runUntilEcall()
    #expect(m.hart.x[11] == 1)
    let patched = addi(10, 0, 7)
    #expect(m.ram.write(base + 0x1000, bytes: [UInt8(patched & 0xff), UInt8(patched >> 8 & 0xff), UInt8(patched >> 16 & 0xff), UInt8(patched >> 24)]))
    m.hart.pc = base
    m.runUntilEcall()
    #expect(m.hart.x[11] == 7)
}

@Test func decoderMapsEveryGroupMember() {
    // One encoding per funct3/rs2 position of the groups the decoder indexes by enum order.
    let branches: [Op] = [.beq, .bne, .blt, .bge, .bltu, .bgeu]
    for (k, f3) in [0, 1, 4, 5, 6, 7].enumerated() { #expect(Decoder.decode32(btype(8, 2, 1, UInt32(f3))).op == branches[k]) }
    let loads: [Op] = [.lb, .lh, .lw, .ld, .lbu, .lhu, .lwu]
    for f3 in 0..<7 { #expect(Decoder.decode32(itype(8, 1, UInt32(f3), 5, 0x03)).op == loads[f3]) }
    let stores: [Op] = [.sb, .sh, .sw, .sd]
    for f3 in 0..<4 { #expect(Decoder.decode32(stype(8, 2, 1, UInt32(f3))).op == stores[f3]) }
    let compares: [Op] = [.fleD, .fltD, .feqD]
    for f3 in 0..<3 { #expect(Decoder.decode32(rtype(0x51, 2, 1, UInt32(f3), 5, 0x53)).op == compares[f3]) }
    let signs: [Op] = [.fsgnjS, .fsgnjnS, .fsgnjxS]
    for f3 in 0..<3 { #expect(Decoder.decode32(rtype(0x10, 2, 1, UInt32(f3), 5, 0x53)).op == signs[f3]) }
    let toInt: [Op] = [.fcvtWD, .fcvtWUD, .fcvtLD, .fcvtLUD]
    for rs2 in 0..<4 { #expect(Decoder.decode32(rtype(0x61, UInt32(rs2), 1, 1, 5, 0x53)).op == toInt[rs2]) }
    let fromInt: [Op] = [.fcvtSW, .fcvtSWU, .fcvtSL, .fcvtSLU]
    for rs2 in 0..<4 { #expect(Decoder.decode32(rtype(0x68, UInt32(rs2), 1, 1, 5, 0x53)).op == fromInt[rs2]) }
    #expect(Decoder.decode32(itype(8, 1, 7, 5, 0x03)).op == .illegal)   // no load with funct3 7
    #expect(Decoder.decode32(btype(8, 2, 1, 2)).op == .illegal)         // no branch with funct3 2
}

func jal(_ rd: UInt32, _ imm: Int32) -> UInt32 {
    let i = UInt32(bitPattern: imm)
    return (i >> 20 & 1) << 31 | (i >> 1 & 0x3ff) << 21 | (i >> 11 & 1) << 20 | (i >> 12 & 0xff) << 12 | rd << 7 | 0x6f
}

/// Work (what budgets, instruction limits and --x-pause-at count) must not depend on whether blocks were
/// chained, which depends on the block cache and TLB that snapshots do not carry. A block reached by a
/// chained jump that traps at its first instruction costs one unit, as when `run` enters it directly.
@Test func trapAtChainedBlockStartCostsTheSameWork() throws {
    func machine() throws -> TestMachine {
        let m = try TestMachine()
        // 0: x5 = 0; A (4): x5 += 1; j B; B (16): ecall; j A. The handler skips the ecall.
        m.load([addi(5, 0, 0), addi(5, 5, 1), jal(0, 8), addi(0, 0, 0), ecall, jal(0, -16)])
        m.load([csrrs(6, 0x341, 0), addi(6, 6, 4), csrrw(0, 0x341, 6), mret], at: TestMachine.base + 0x100)
        m.hart.csr.mtvec = TestMachine.base + 0x100
        return m
    }
    let chained = try machine()   // long slices: blocks chain once decoded
    while chained.hart.work < 30_000 { _ = chained.hart.run(budget: 30_000 - Int(chained.hart.work)) }
    let stepped = try machine()   // budget 1: every block is entered from `run`
    while stepped.hart.work < 30_000 { _ = stepped.hart.run(budget: 1) }
    #expect(chained.hart.work == 30_000 && stepped.hart.work == 30_000)
    #expect(chained.hart.x[5] > 1000)
    #expect(chained.hart.instret == stepped.hart.instret)
    #expect(chained.hart.pc == stepped.hart.pc)
    #expect(chained.hart.x[5] == stepped.hart.x[5])
}
