// RV64C: 16-bit encodings, printed the way objdump 2.40 prints them: in the expanded (32-bit)
// spelling with its aliases (`add sp,sp,-16`, `li a0,3`, `ret`), except for hint encodings that
// have no 32-bit spelling, which keep a `c.` name (`c.nop 5`, `c.li zero,4`, `c.slli64 a0`).

enum Compressed {
    @inline(__always) static func bit(_ h: UInt32, _ n: UInt32) -> UInt32 { (h >> n) & 1 }
    @inline(__always) static func bits(_ h: UInt32, _ hi: UInt32, _ lo: UInt32) -> UInt32 {
        (h >> lo) & ((1 << (hi - lo + 1)) - 1)
    }
    /// The 3-bit register fields name x8..x15.
    @inline(__always) static func creg(_ field: UInt32) -> String { Reg.x(8 + field) }
    @inline(__always) static func cfreg(_ field: UInt32) -> String { Reg.f(8 + field) }

    /// 6-bit immediate of c.addi, c.li, c.andi, c.addiw (imm[5] at bit 12, imm[4:0] at 6:2).
    @inline(__always) static func imm6(_ h: UInt32) -> Int64 {
        signExtend((bit(h, 12) << 5) | bits(h, 6, 2), bits: 6)
    }
    /// Unsigned 6-bit shift amount, same layout as imm6.
    @inline(__always) static func shamt(_ h: UInt32) -> UInt32 { (bit(h, 12) << 5) | bits(h, 6, 2) }

    static func mem(_ offset: UInt32, _ base: String) -> String { String(offset) + "(" + base + ")" }

    static func disassemble(_ half: UInt16, pc: UInt64) -> String? {
        let h = UInt32(half)
        switch (h & 3, bits(h, 15, 13)) {
        case (0, _): return quadrant0(h)
        case (1, _): return quadrant1(h, pc: pc)
        default: return quadrant2(h)
        }
    }

    static func quadrant0(_ h: UInt32) -> String? {
        let rdp = bits(h, 4, 2), rs1p = bits(h, 9, 7)
        // Offsets for 8-byte and 4-byte loads/stores.
        let offset8 = (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6)
        let offset4 = (bits(h, 12, 10) << 3) | (bit(h, 6) << 2) | (bit(h, 5) << 6)
        switch bits(h, 15, 13) {
        case 0: // c.addi4spn
            if h == 0 { return "unimp" }
            let nzuimm = (bits(h, 12, 11) << 4) | (bits(h, 10, 7) << 6) | (bit(h, 6) << 2) | (bit(h, 5) << 3)
            guard nzuimm != 0 else { return nil }
            return insn("add", creg(rdp), "sp", String(nzuimm))
        case 1: return insn("fld", cfreg(rdp), mem(offset8, creg(rs1p)))
        case 2: return insn("lw", creg(rdp), mem(offset4, creg(rs1p)))
        case 3: return insn("ld", creg(rdp), mem(offset8, creg(rs1p)))
        case 5: return insn("fsd", cfreg(rdp), mem(offset8, creg(rs1p)))
        case 6: return insn("sw", creg(rdp), mem(offset4, creg(rs1p)))
        case 7: return insn("sd", creg(rdp), mem(offset8, creg(rs1p)))
        default: return nil
        }
    }

    static func quadrant1(_ h: UInt32, pc: UInt64) -> String? {
        let rd = bits(h, 11, 7)
        switch bits(h, 15, 13) {
        case 0: // c.addi / c.nop
            let imm = imm6(h)
            if rd == 0 { return imm == 0 ? "nop" : insn("c.nop", dec(imm)) }
            return insn("add", Reg.x(rd), Reg.x(rd), dec(imm))
        case 1: // c.addiw
            guard rd != 0 else { return nil }
            let imm = imm6(h)
            return imm == 0 ? insn("sext.w", Reg.x(rd), Reg.x(rd)) : insn("addw", Reg.x(rd), Reg.x(rd), dec(imm))
        case 2: // c.li
            return insn(rd == 0 ? "c.li" : "li", Reg.x(rd), dec(imm6(h)))
        case 3:
            if rd == 2 { // c.addi16sp
                let v = (bit(h, 12) << 9) | (bit(h, 6) << 4) | (bit(h, 5) << 6) | (bits(h, 4, 3) << 7) | (bit(h, 2) << 5)
                return insn("add", "sp", "sp", dec(signExtend(v, bits: 10)))
            }
            let imm = imm6(h) // c.lui: the 20-bit upper immediate objdump shows
            guard imm != 0 else { return nil }
            let upper = hex(UInt64(bitPattern: imm) & 0xfffff)
            return insn(rd == 0 ? "c.lui" : "lui", Reg.x(rd), upper)
        case 4:
            return arithmetic(h)
        case 5: // c.j
            let v = (bit(h, 12) << 11) | (bit(h, 11) << 4) | (bits(h, 10, 9) << 8) | (bit(h, 8) << 10)
                | (bit(h, 7) << 6) | (bit(h, 6) << 7) | (bits(h, 5, 3) << 1) | (bit(h, 2) << 5)
            return insn("j", target(pc, signExtend(v, bits: 12)))
        default: // c.beqz, c.bnez
            let v = (bit(h, 12) << 8) | (bits(h, 11, 10) << 3) | (bits(h, 6, 5) << 6) | (bits(h, 4, 3) << 1) | (bit(h, 2) << 5)
            let name = bits(h, 15, 13) == 6 ? "beqz" : "bnez"
            return insn(name, creg(bits(h, 9, 7)), target(pc, signExtend(v, bits: 9)))
        }
    }

    /// Quadrant 1, funct3 100: shifts, andi and the register-register ALU group.
    static func arithmetic(_ h: UInt32) -> String? {
        let rd = creg(bits(h, 9, 7)), rs2 = creg(bits(h, 4, 2))
        switch bits(h, 11, 10) {
        case 0, 1:
            let isArithmetic = bits(h, 11, 10) == 1
            let amount = shamt(h)
            if amount == 0 { return insn(isArithmetic ? "c.srai64" : "c.srli64", rd) }
            return insn(isArithmetic ? "sra" : "srl", rd, rd, hex(UInt64(amount)))
        case 2:
            return insn("and", rd, rd, dec(imm6(h)))
        default:
            let names = bit(h, 12) == 0 ? ["sub", "xor", "or", "and"] : ["subw", "addw"]
            let index = Int(bits(h, 6, 5))
            guard index < names.count else { return nil }
            return insn(names[index], rd, rd, rs2)
        }
    }

    static func quadrant2(_ h: UInt32) -> String? {
        let rd = bits(h, 11, 7), rs2 = bits(h, 6, 2)
        let loadOffset8 = (bit(h, 12) << 5) | (bits(h, 6, 5) << 3) | (bits(h, 4, 2) << 6)
        let loadOffset4 = (bit(h, 12) << 5) | (bits(h, 6, 4) << 2) | (bits(h, 3, 2) << 6)
        let storeOffset8 = (bits(h, 12, 10) << 3) | (bits(h, 9, 7) << 6)
        let storeOffset4 = (bits(h, 12, 9) << 2) | (bits(h, 8, 7) << 6)
        switch bits(h, 15, 13) {
        case 0: // c.slli
            let amount = shamt(h)
            if amount == 0 { return insn("c.slli64", Reg.x(rd)) }
            if rd == 0 { return insn("c.slli", "zero", hex(UInt64(amount))) }
            return insn("sll", Reg.x(rd), Reg.x(rd), hex(UInt64(amount)))
        case 1: return insn("fld", Reg.f(rd), mem(loadOffset8, "sp"))
        case 2:
            guard rd != 0 else { return nil }
            return insn("lw", Reg.x(rd), mem(loadOffset4, "sp"))
        case 3:
            guard rd != 0 else { return nil }
            return insn("ld", Reg.x(rd), mem(loadOffset8, "sp"))
        case 4:
            if bit(h, 12) == 0 {
                if rs2 == 0 { // c.jr
                    if rd == 0 { return nil }
                    return rd == 1 ? "ret" : insn("jr", Reg.x(rd))
                }
                return insn(rd == 0 ? "c.mv" : "mv", Reg.x(rd), Reg.x(rs2))
            }
            if rs2 == 0 { // c.ebreak / c.jalr
                return rd == 0 ? "ebreak" : insn("jalr", Reg.x(rd))
            }
            return rd == 0 ? insn("c.add", "zero", Reg.x(rs2)) : insn("add", Reg.x(rd), Reg.x(rd), Reg.x(rs2))
        case 5: return insn("fsd", Reg.f(rs2), mem(storeOffset8, "sp"))
        case 6: return insn("sw", Reg.x(rs2), mem(storeOffset4, "sp"))
        default: return insn("sd", Reg.x(rs2), mem(storeOffset8, "sp"))
        }
    }
}
