// F and D arithmetic (OP-FP and the fused multiply-add opcodes).
// Half and quad precision are not part of RV64GC; objdump's default ISA does not know them either.

enum FloatOps {
    /// objdump omits the rounding mode when it is `dyn` (7) and prints `unknown` for the reserved 5 and 6.
    static func withRounding(_ operands: [String], _ rm: UInt32) -> [String] {
        let names = ["rne", "rtz", "rdn", "rup", "rmm", "unknown", "unknown"]
        return rm == 7 ? operands : operands + [names[Int(rm)]]
    }

    static func format(_ mnemonic: String, _ operands: [String]) -> String {
        mnemonic + "\t" + operands.joined(separator: ",")
    }

    static func precision(_ fmt: UInt32) -> String? {
        switch fmt {
        case 0: return "s"
        case 1: return "d"
        default: return nil
        }
    }

    static func fusedMultiplyAdd(_ f: Fields) -> String? {
        guard let p = precision((f.w >> 25) & 3) else { return nil }
        let base: String
        switch f.opcode {
        case 0x43: base = "fmadd"
        case 0x47: base = "fmsub"
        case 0x4b: base = "fnmsub"
        default: base = "fnmadd"
        }
        return format(base + "." + p, withRounding([Reg.f(f.rd), Reg.f(f.rs1), Reg.f(f.rs2), Reg.f(f.rs3)], f.funct3))
    }

    static func opFP(_ f: Fields) -> String? {
        guard let p = precision(f.funct7 & 3) else { return nil }
        let rd = f.rd, rs1 = f.rs1, rs2 = f.rs2, rm = f.funct3
        switch f.funct7 >> 2 {
        case 0x00, 0x01, 0x02, 0x03: // fadd fsub fmul fdiv
            let name = ["fadd", "fsub", "fmul", "fdiv"][Int(f.funct7 >> 2)]
            return format(name + "." + p, withRounding([Reg.f(rd), Reg.f(rs1), Reg.f(rs2)], rm))
        case 0x0b: // fsqrt
            guard rs2 == 0 else { return nil }
            return format("fsqrt." + p, withRounding([Reg.f(rd), Reg.f(rs1)], rm))
        case 0x04: // sign injection; equal sources give fmv/fneg/fabs
            guard rm < 3 else { return nil }
            if rs1 == rs2 {
                return insn(["fmv.", "fneg.", "fabs."][Int(rm)] + p, Reg.f(rd), Reg.f(rs1))
            }
            return insn(["fsgnj.", "fsgnjn.", "fsgnjx."][Int(rm)] + p, Reg.f(rd), Reg.f(rs1), Reg.f(rs2))
        case 0x05: // fmin fmax
            guard rm < 2 else { return nil }
            return insn((rm == 0 ? "fmin." : "fmax.") + p, Reg.f(rd), Reg.f(rs1), Reg.f(rs2))
        case 0x08: // fcvt between s and d
            if p == "s" && rs2 == 1 {
                return format("fcvt.s.d", withRounding([Reg.f(rd), Reg.f(rs1)], rm))
            }
            // objdump 2.40 only knows fcvt.d.s with the rm field zero (the conversion is exact).
            if p == "d" && rs2 == 0 && rm == 0 { return insn("fcvt.d.s", Reg.f(rd), Reg.f(rs1)) }
            return nil
        case 0x14: // comparisons
            guard rm < 3 else { return nil }
            return insn(["fle.", "flt.", "feq."][Int(rm)] + p, Reg.x(rd), Reg.f(rs1), Reg.f(rs2))
        case 0x18: // float -> integer
            guard rs2 < 4 else { return nil }
            let name = "fcvt." + ["w", "wu", "l", "lu"][Int(rs2)] + "." + p
            return format(name, withRounding([Reg.x(rd), Reg.f(rs1)], rm))
        case 0x1a: // integer -> float
            guard rs2 < 4 else { return nil }
            let name = "fcvt." + p + "." + ["w", "wu", "l", "lu"][Int(rs2)]
            // Like fcvt.d.s, int32 -> double is exact and objdump 2.40 accepts only rm = 0 there.
            if p == "d" && rs2 < 2 {
                return rm == 0 ? insn(name, Reg.f(rd), Reg.x(rs1)) : nil
            }
            return format(name, withRounding([Reg.f(rd), Reg.x(rs1)], rm))
        case 0x1c: // fmv.x.w / fmv.x.d, fclass
            guard rs2 == 0 else { return nil }
            switch rm {
            case 0: return insn(p == "s" ? "fmv.x.w" : "fmv.x.d", Reg.x(rd), Reg.f(rs1))
            case 1: return insn("fclass." + p, Reg.x(rd), Reg.f(rs1))
            default: return nil
            }
        case 0x1e: // fmv.w.x / fmv.d.x
            guard rs2 == 0 && rm == 0 else { return nil }
            return insn(p == "s" ? "fmv.w.x" : "fmv.d.x", Reg.f(rd), Reg.x(rs1))
        default:
            return nil
        }
    }
}
