// 32-bit encodings: RV64I, M, A, F, D, Zicsr, Zifencei and the privileged instructions.
// Each opcode returns nil for encodings objdump does not recognise (printed as `.4byte`).

/// Field extraction for 32-bit encodings.
struct Fields {
    let w: UInt32
    @inline(__always) init(_ w: UInt32) { self.w = w }
    var opcode: UInt32 { w & 0x7f }
    var rd: UInt32 { (w >> 7) & 31 }
    var funct3: UInt32 { (w >> 12) & 7 }
    var rs1: UInt32 { (w >> 15) & 31 }
    var rs2: UInt32 { (w >> 20) & 31 }
    var rs3: UInt32 { (w >> 27) & 31 }
    var funct7: UInt32 { w >> 25 }
    var immI: Int64 { signExtend(w >> 20, bits: 12) }
    var immS: Int64 { signExtend(((w >> 25) << 5) | ((w >> 7) & 31), bits: 12) }
    var immB: Int64 {
        let v = ((w >> 31) << 12) | (((w >> 7) & 1) << 11) | (((w >> 25) & 0x3f) << 5) | (((w >> 8) & 0xf) << 1)
        return signExtend(v, bits: 13)
    }
    var immJ: Int64 {
        let v = ((w >> 31) << 20) | (((w >> 12) & 0xff) << 12) | (((w >> 20) & 1) << 11) | (((w >> 21) & 0x3ff) << 1)
        return signExtend(v, bits: 21)
    }
    var immU: UInt32 { w >> 12 }
    var csr: UInt32 { w >> 20 }
}

enum Base {
    static func disassemble(_ w: UInt32, pc: UInt64) -> String? {
        let f = Fields(w)
        switch f.opcode {
        case 0x03: return load(f)
        case 0x07: return floatLoad(f)
        case 0x0f: return miscMem(f)
        case 0x13: return opImm(f)
        case 0x17: return insn("auipc", Reg.x(f.rd), hex(UInt64(f.immU)))
        case 0x1b: return opImm32(f)
        case 0x23: return store(f)
        case 0x27: return floatStore(f)
        case 0x2f: return atomic(f)
        case 0x33: return op(f)
        case 0x37: return insn("lui", Reg.x(f.rd), hex(UInt64(f.immU)))
        case 0x3b: return op32(f)
        case 0x43, 0x47, 0x4b, 0x4f: return FloatOps.fusedMultiplyAdd(f)
        case 0x53: return FloatOps.opFP(f)
        case 0x63: return branch(f, pc: pc)
        case 0x67: return jalr(f)
        case 0x6f: return jal(f, pc: pc)
        case 0x73: return system(f)
        default: return nil
        }
    }

    static func memOperand(_ offset: Int64, _ base: UInt32) -> String { dec(offset) + "(" + Reg.x(base) + ")" }

    static func load(_ f: Fields) -> String? {
        let names = ["lb", "lh", "lw", "ld", "lbu", "lhu", "lwu"]
        guard f.funct3 < 7 else { return nil }
        return insn(names[Int(f.funct3)], Reg.x(f.rd), memOperand(f.immI, f.rs1))
    }

    static func store(_ f: Fields) -> String? {
        let names = ["sb", "sh", "sw", "sd"]
        guard f.funct3 < 4 else { return nil }
        return insn(names[Int(f.funct3)], Reg.x(f.rs2), memOperand(f.immS, f.rs1))
    }

    static func floatLoad(_ f: Fields) -> String? {
        switch f.funct3 {
        case 2: return insn("flw", Reg.f(f.rd), memOperand(f.immI, f.rs1))
        case 3: return insn("fld", Reg.f(f.rd), memOperand(f.immI, f.rs1))
        default: return nil
        }
    }

    static func floatStore(_ f: Fields) -> String? {
        switch f.funct3 {
        case 2: return insn("fsw", Reg.f(f.rs2), memOperand(f.immS, f.rs1))
        case 3: return insn("fsd", Reg.f(f.rs2), memOperand(f.immS, f.rs1))
        default: return nil
        }
    }

    /// Fence predecessor/successor sets print as letters from "iorw"; an empty set as "unknown".
    static func fenceSet(_ bits: UInt32) -> String {
        if bits == 0 { return "unknown" }
        var s = ""
        if bits & 8 != 0 { s += "i" }
        if bits & 4 != 0 { s += "o" }
        if bits & 2 != 0 { s += "r" }
        if bits & 1 != 0 { s += "w" }
        return s
    }

    static func miscMem(_ f: Fields) -> String? {
        switch f.funct3 {
        case 0:
            if f.w == 0x8330_000f { return "fence.tso" }
            // objdump requires fm, rs1 and rd to be zero for a plain fence.
            guard f.w & 0xf00f_8f80 == 0 else { return nil }
            let pred = (f.w >> 24) & 0xf, succ = (f.w >> 20) & 0xf
            if pred == 0xf && succ == 0xf { return "fence" }
            return insn("fence", fenceSet(pred), fenceSet(succ))
        case 1:
            return f.w == 0x0000_100f ? "fence.i" : nil
        default:
            return nil
        }
    }

    static func opImm(_ f: Fields) -> String? {
        let rd = Reg.x(f.rd), rs1 = Reg.x(f.rs1), imm = f.immI
        switch f.funct3 {
        case 0:
            if f.rd == 0 && f.rs1 == 0 && imm == 0 { return "nop" }
            if f.rs1 == 0 { return insn("li", rd, dec(imm)) }
            if imm == 0 { return insn("mv", rd, rs1) }
            return insn("add", rd, rs1, dec(imm))
        case 1:
            guard f.w >> 26 == 0 else { return nil }
            return insn("sll", rd, rs1, hex(UInt64((f.w >> 20) & 0x3f)))
        case 2: return insn("slti", rd, rs1, dec(imm))
        case 3: return imm == 1 ? insn("seqz", rd, rs1) : insn("sltiu", rd, rs1, dec(imm))
        case 4: return imm == -1 ? insn("not", rd, rs1) : insn("xor", rd, rs1, dec(imm))
        case 5:
            let shamt = hex(UInt64((f.w >> 20) & 0x3f))
            switch f.w >> 26 {
            case 0x00: return insn("srl", rd, rs1, shamt)
            case 0x10: return insn("sra", rd, rs1, shamt)
            default: return nil
            }
        case 6: return insn("or", rd, rs1, dec(imm))
        default: return imm == 255 ? insn("zext.b", rd, rs1) : insn("and", rd, rs1, dec(imm))
        }
    }

    static func opImm32(_ f: Fields) -> String? {
        let rd = Reg.x(f.rd), rs1 = Reg.x(f.rs1)
        let shamt = hex(UInt64(f.rs2))
        switch (f.funct3, f.funct7) {
        case (0, _): return f.immI == 0 ? insn("sext.w", rd, rs1) : insn("addw", rd, rs1, dec(f.immI))
        case (1, 0x00): return insn("sllw", rd, rs1, shamt)
        case (5, 0x00): return insn("srlw", rd, rs1, shamt)
        case (5, 0x20): return insn("sraw", rd, rs1, shamt)
        default: return nil
        }
    }

    static func op(_ f: Fields) -> String? {
        let rd = Reg.x(f.rd), rs1 = Reg.x(f.rs1), rs2 = Reg.x(f.rs2)
        switch (f.funct7, f.funct3) {
        case (0x00, 0): return insn("add", rd, rs1, rs2)
        case (0x00, 1): return insn("sll", rd, rs1, rs2)
        case (0x00, 2):
            if f.rs2 == 0 { return insn("sltz", rd, rs1) }
            if f.rs1 == 0 { return insn("sgtz", rd, rs2) }
            return insn("slt", rd, rs1, rs2)
        case (0x00, 3): return f.rs1 == 0 ? insn("snez", rd, rs2) : insn("sltu", rd, rs1, rs2)
        case (0x00, 4): return insn("xor", rd, rs1, rs2)
        case (0x00, 5): return insn("srl", rd, rs1, rs2)
        case (0x00, 6): return insn("or", rd, rs1, rs2)
        case (0x00, 7): return insn("and", rd, rs1, rs2)
        case (0x20, 0): return f.rs1 == 0 ? insn("neg", rd, rs2) : insn("sub", rd, rs1, rs2)
        case (0x20, 5): return insn("sra", rd, rs1, rs2)
        case (0x01, _):
            let names = ["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"]
            return insn(names[Int(f.funct3)], rd, rs1, rs2)
        default: return nil
        }
    }

    static func op32(_ f: Fields) -> String? {
        let rd = Reg.x(f.rd), rs1 = Reg.x(f.rs1), rs2 = Reg.x(f.rs2)
        switch (f.funct7, f.funct3) {
        case (0x00, 0): return insn("addw", rd, rs1, rs2)
        case (0x00, 1): return insn("sllw", rd, rs1, rs2)
        case (0x00, 5): return insn("srlw", rd, rs1, rs2)
        case (0x20, 0): return f.rs1 == 0 ? insn("negw", rd, rs2) : insn("subw", rd, rs1, rs2)
        case (0x20, 5): return insn("sraw", rd, rs1, rs2)
        case (0x01, 0): return insn("mulw", rd, rs1, rs2)
        case (0x01, 4): return insn("divw", rd, rs1, rs2)
        case (0x01, 5): return insn("divuw", rd, rs1, rs2)
        case (0x01, 6): return insn("remw", rd, rs1, rs2)
        case (0x01, 7): return insn("remuw", rd, rs1, rs2)
        default: return nil
        }
    }

    static func branch(_ f: Fields, pc: UInt64) -> String? {
        let rs1 = Reg.x(f.rs1), rs2 = Reg.x(f.rs2), t = target(pc, f.immB)
        switch f.funct3 {
        case 0: return f.rs2 == 0 ? insn("beqz", rs1, t) : insn("beq", rs1, rs2, t)
        case 1: return f.rs2 == 0 ? insn("bnez", rs1, t) : insn("bne", rs1, rs2, t)
        case 4:
            if f.rs2 == 0 { return insn("bltz", rs1, t) }
            if f.rs1 == 0 { return insn("bgtz", rs2, t) }
            return insn("blt", rs1, rs2, t)
        case 5:
            if f.rs1 == 0 { return insn("blez", rs2, t) }
            if f.rs2 == 0 { return insn("bgez", rs1, t) }
            return insn("bge", rs1, rs2, t)
        case 6: return insn("bltu", rs1, rs2, t)
        case 7: return insn("bgeu", rs1, rs2, t)
        default: return nil
        }
    }

    static func jal(_ f: Fields, pc: UInt64) -> String {
        let t = target(pc, f.immJ)
        switch f.rd {
        case 0: return insn("j", t)
        case 1: return insn("jal", t)
        default: return insn("jal", Reg.x(f.rd), t)
        }
    }

    static func jalr(_ f: Fields) -> String? {
        guard f.funct3 == 0 else { return nil }
        let imm = f.immI
        switch f.rd {
        case 0:
            if f.rs1 == 1 && imm == 0 { return "ret" }
            return imm == 0 ? insn("jr", Reg.x(f.rs1)) : insn("jr", memOperand(imm, f.rs1))
        case 1:
            return imm == 0 ? insn("jalr", Reg.x(f.rs1)) : insn("jalr", memOperand(imm, f.rs1))
        default:
            return imm == 0 ? insn("jalr", Reg.x(f.rd), Reg.x(f.rs1)) : insn("jalr", Reg.x(f.rd), memOperand(imm, f.rs1))
        }
    }

    static func atomic(_ f: Fields) -> String? {
        let width: String
        switch f.funct3 {
        case 2: width = ".w"
        case 3: width = ".d"
        default: return nil
        }
        let ordering = ["", ".rl", ".aq", ".aqrl"][Int((f.w >> 25) & 3)]
        let address = "(" + Reg.x(f.rs1) + ")"
        let name: String
        switch f.w >> 27 {
        case 0b00010:
            guard f.rs2 == 0 else { return nil }
            return insn("lr" + width + ordering, Reg.x(f.rd), address)
        case 0b00011: name = "sc"
        case 0b00001: name = "amoswap"
        case 0b00000: name = "amoadd"
        case 0b00100: name = "amoxor"
        case 0b01100: name = "amoand"
        case 0b01000: name = "amoor"
        case 0b10000: name = "amomin"
        case 0b10100: name = "amomax"
        case 0b11000: name = "amominu"
        case 0b11100: name = "amomaxu"
        default: return nil
        }
        return insn(name + width + ordering, Reg.x(f.rd), Reg.x(f.rs2), address)
    }

    static func csrName(_ csr: UInt32) -> String {
        CSRNames.csrNames[UInt16(csr)] ?? hex(UInt64(csr))
    }

    static func system(_ f: Fields) -> String? {
        switch f.funct3 {
        case 0: return privileged(f)
        case 4: return nil
        default: return csrAccess(f)
        }
    }

    static func privileged(_ f: Fields) -> String? {
        switch f.w {
        case 0x0000_0073: return "ecall"
        case 0x0010_0073: return "ebreak"
        case 0x0020_0073: return "uret"
        case 0x1020_0073: return "sret"
        case 0x2020_0073: return "hret" // privileged spec 1.9
        case 0x3020_0073: return "mret"
        case 0x7b20_0073: return "dret"
        case 0x1050_0073: return "wfi"
        default: break
        }
        guard f.rd == 0 else { return nil }
        if f.funct7 == 0x09 {
            if f.rs1 == 0 && f.rs2 == 0 { return "sfence.vma" }
            if f.rs2 == 0 { return insn("sfence.vma", Reg.x(f.rs1)) }
            return insn("sfence.vma", Reg.x(f.rs1), Reg.x(f.rs2))
        }
        // Privileged spec 1.9 sfence.vm, still known to objdump.
        if f.w & 0xfff0_7fff == 0x1040_0073 {
            return f.rs1 == 0 ? "sfence.vm" : insn("sfence.vm", Reg.x(f.rs1))
        }
        return nil
    }

    /// fflags, frm and fcsr have their own read (frflags...) and write (fsflags...) aliases.
    static func floatCSRAlias(_ csr: UInt32, write: Bool) -> String? {
        switch csr {
        case 1: return write ? "fsflags" : "frflags"
        case 2: return write ? "fsrm" : "frrm"
        case 3: return write ? "fscsr" : "frcsr"
        default: return nil
        }
    }

    static func csrAccess(_ f: Fields) -> String? {
        let csr = f.csr, rd = Reg.x(f.rd)
        let name = csrName(csr)
        let rs1 = Reg.x(f.rs1), uimm = dec(Int64(f.rs1))
        switch f.funct3 {
        case 1: // csrrw
            if f.w == 0xc000_1073 { return "unimp" } // csrw cycle,zero
            if let alias = floatCSRAlias(csr, write: true) {
                return f.rd == 0 ? insn(alias, rs1) : insn(alias, rd, rs1)
            }
            return f.rd == 0 ? insn("csrw", name, rs1) : insn("csrrw", rd, name, rs1)
        case 2: // csrrs
            if f.rs1 == 0 {
                if let alias = floatCSRAlias(csr, write: false) { return insn(alias, rd) }
                switch csr {
                case 0xc00: return insn("rdcycle", rd)
                case 0xc01: return insn("rdtime", rd)
                case 0xc02: return insn("rdinstret", rd)
                default: break
                }
                return insn("csrr", rd, name)
            }
            return f.rd == 0 ? insn("csrs", name, rs1) : insn("csrrs", rd, name, rs1)
        case 3: // csrrc
            return f.rd == 0 ? insn("csrc", name, rs1) : insn("csrrc", rd, name, rs1)
        case 5: // csrrwi
            if csr == 1 { return insn("fsflagsi", rd, uimm) }
            if csr == 2 { return insn("fsrmi", rd, uimm) }
            return f.rd == 0 ? insn("csrw", name, uimm) : insn("csrrw", rd, name, uimm)
        case 6:
            return f.rd == 0 ? insn("csrs", name, uimm) : insn("csrrs", rd, name, uimm)
        default:
            return f.rd == 0 ? insn("csrc", name, uimm) : insn("csrrc", rd, name, uimm)
        }
    }
}
