/// Turns RV64GC instruction words into micro-ops. Compressed instructions expand into the same micro-ops as
/// their 32-bit equivalents. Anything reserved or unknown becomes `.illegal` carrying the raw bits
/// (the value of mtval for an illegal-instruction trap).
public enum Decoder {
    @inline(__always) static func bits(_ w: UInt32, _ hi: Int, _ lo: Int) -> UInt32 {
        (w >> UInt32(lo)) & ((1 << UInt32(hi - lo + 1)) - 1)
    }
    @inline(__always) static func sext(_ v: UInt32, _ width: Int) -> Int64 {
        let shift = 64 - width
        return (Int64(v) << Int64(shift)) >> Int64(shift)
    }
    /// Integer destination: x0 becomes the scratch slot 32.
    @inline(__always) static func rdx(_ r: UInt32) -> UInt8 { r == 0 ? 32 : UInt8(r) }

    static func illegal(_ w: UInt32) -> MicroOp { MicroOp(.illegal, imm: Int64(w)) }

    /// The `k`-th operation after `first` in `Op`'s declaration order (groups like lb...lwu are declared
    /// in encoding order, so decoding needs no lookup tables).
    @inline(__always) static func nth(_ first: Op, _ k: UInt32) -> Op {
        Op(rawValue: first.rawValue + UInt8(k))!
    }

    /// Decodes a 32-bit instruction.
    public static func decode32(_ w: UInt32) -> MicroOp {
        let opcode = w & 0x7f
        let rd = bits(w, 11, 7), rs1 = bits(w, 19, 15), rs2 = bits(w, 24, 20), rs3 = bits(w, 31, 27)
        let f3 = bits(w, 14, 12), f7 = bits(w, 31, 25)
        let immI = sext(bits(w, 31, 20), 12)
        let immS = sext(bits(w, 31, 25) << 5 | bits(w, 11, 7), 12)
        let immB = sext(bits(w, 31, 31) << 12 | bits(w, 7, 7) << 11 | bits(w, 30, 25) << 5 | bits(w, 11, 8) << 1, 13)
        let immU = Int64(Int32(bitPattern: w & 0xffff_f000))
        let immJ = sext(bits(w, 31, 31) << 20 | bits(w, 19, 12) << 12 | bits(w, 20, 20) << 11 | bits(w, 30, 21) << 1, 21)
        let d = rdx(rd), s1 = UInt8(rs1), s2 = UInt8(rs2)

        switch opcode {
        case 0x37: return MicroOp(.lui, rd: d, imm: immU)
        case 0x17: return MicroOp(.auipc, rd: d, imm: immU)
        case 0x6f: return MicroOp(.jal, rd: d, extra: 4, imm: immJ)
        case 0x67:
            guard f3 == 0 else { return illegal(w) }
            return MicroOp(.jalr, rd: d, rs1: s1, extra: 4, imm: immI)
        case 0x63:
            guard f3 != 2 && f3 != 3 else { return illegal(w) }
            return MicroOp(nth(.beq, f3 < 2 ? f3 : f3 - 2), rs1: s1, rs2: s2, extra: 4, imm: immB)
        case 0x03:
            guard f3 != 7 else { return illegal(w) }
            return MicroOp(nth(.lb, f3), rd: d, rs1: s1, imm: immI)
        case 0x23:
            guard f3 < 4 else { return illegal(w) }
            return MicroOp(nth(.sb, f3), rs1: s1, rs2: s2, imm: immS)
        case 0x13:
            switch f3 {
            case 0: return MicroOp(.addi, rd: d, rs1: s1, imm: immI)
            case 2: return MicroOp(.slti, rd: d, rs1: s1, imm: immI)
            case 3: return MicroOp(.sltiu, rd: d, rs1: s1, imm: immI)
            case 4: return MicroOp(.xori, rd: d, rs1: s1, imm: immI)
            case 6: return MicroOp(.ori, rd: d, rs1: s1, imm: immI)
            case 7: return MicroOp(.andi, rd: d, rs1: s1, imm: immI)
            case 1:
                guard bits(w, 31, 26) == 0 else { return illegal(w) }
                return MicroOp(.slli, rd: d, rs1: s1, imm: Int64(bits(w, 25, 20)))
            case 5:
                switch bits(w, 31, 26) {
                case 0: return MicroOp(.srli, rd: d, rs1: s1, imm: Int64(bits(w, 25, 20)))
                case 0x10: return MicroOp(.srai, rd: d, rs1: s1, imm: Int64(bits(w, 25, 20)))
                default: return illegal(w)
                }
            default: return illegal(w)
            }
        case 0x1b:
            switch (f3, f7) {
            case (0, _): return MicroOp(.addiw, rd: d, rs1: s1, imm: immI)
            case (1, 0): return MicroOp(.slliw, rd: d, rs1: s1, imm: Int64(rs2))
            case (5, 0): return MicroOp(.srliw, rd: d, rs1: s1, imm: Int64(rs2))
            case (5, 0x20): return MicroOp(.sraiw, rd: d, rs1: s1, imm: Int64(rs2))
            default: return illegal(w)
            }
        case 0x33:
            let op: Op?
            switch (f7, f3) {
            case (0, 0): op = .add
            case (0x20, 0): op = .sub
            case (0, 1): op = .sll
            case (0, 2): op = .slt
            case (0, 3): op = .sltu
            case (0, 4): op = .xor
            case (0, 5): op = .srl
            case (0x20, 5): op = .sra
            case (0, 6): op = .or
            case (0, 7): op = .and
            case (1, 0): op = .mul
            case (1, 1): op = .mulh
            case (1, 2): op = .mulhsu
            case (1, 3): op = .mulhu
            case (1, 4): op = .div
            case (1, 5): op = .divu
            case (1, 6): op = .rem
            case (1, 7): op = .remu
            default: op = nil
            }
            guard let op else { return illegal(w) }
            return MicroOp(op, rd: d, rs1: s1, rs2: s2)
        case 0x3b:
            let op: Op?
            switch (f7, f3) {
            case (0, 0): op = .addw
            case (0x20, 0): op = .subw
            case (0, 1): op = .sllw
            case (0, 5): op = .srlw
            case (0x20, 5): op = .sraw
            case (1, 0): op = .mulw
            case (1, 4): op = .divw
            case (1, 5): op = .divuw
            case (1, 6): op = .remw
            case (1, 7): op = .remuw
            default: op = nil
            }
            guard let op else { return illegal(w) }
            return MicroOp(op, rd: d, rs1: s1, rs2: s2)
        case 0x0f:
            if f3 == 0 { return MicroOp(.fence) }
            if f3 == 1 { return MicroOp(.fencei, extra: 4) }
            return illegal(w)
        case 0x73:
            if f3 == 0 {
                if rd != 0 { return illegal(w) }
                if f7 == 0x09 { return MicroOp(.sfenceVma, rs1: s1, rs2: s2, imm: Int64(w)) }
                guard rs1 == 0 else { return illegal(w) }
                switch bits(w, 31, 20) {
                case 0x000: return MicroOp(.ecall)
                case 0x001: return MicroOp(.ebreak)
                case 0x102: return MicroOp(.sret, imm: Int64(w))
                case 0x302: return MicroOp(.mret, imm: Int64(w))
                case 0x105: return MicroOp(.wfi, extra: 4, imm: Int64(w))
                default: return illegal(w)
                }
            }
            guard f3 != 4 else { return illegal(w) }
            // The raw instruction rides in the upper half of imm, for an illegal-instruction tval.
            return MicroOp(.csr, rd: d, rs1: s1, extra: UInt8(f3), imm: Int64(bits(w, 31, 20)) | Int64(w) << 32)
        case 0x2f:
            let f5 = UInt8(bits(w, 31, 27))  // aq/rl need nothing: harts are sequentially consistent here
            guard f3 == 2 || f3 == 3 else { return illegal(w) }
            let isD = f3 == 3
            switch f5 {
            case 0x02:
                guard rs2 == 0 else { return illegal(w) }
                return MicroOp(isD ? .lrd : .lrw, rd: d, rs1: s1)
            case 0x03: return MicroOp(isD ? .scd : .scw, rd: d, rs1: s1, rs2: s2)
            default:
                guard AMOKind(rawValue: f5) != nil else { return illegal(w) }
                return MicroOp(isD ? .amod : .amow, rd: d, rs1: s1, rs2: s2, extra: f5)
            }
        case 0x07:
            if f3 == 2 { return MicroOp(.flw, rd: UInt8(rd), rs1: s1, imm: immI) }
            if f3 == 3 { return MicroOp(.fld, rd: UInt8(rd), rs1: s1, imm: immI) }
            return illegal(w)
        case 0x27:
            if f3 == 2 { return MicroOp(.fsw, rs1: s1, rs2: s2, imm: immS) }
            if f3 == 3 { return MicroOp(.fsd, rs1: s1, rs2: s2, imm: immS) }
            return illegal(w)
        case 0x43, 0x47, 0x4b, 0x4f:
            let fmt = bits(w, 26, 25)
            guard fmt <= 1, f3 != 5, f3 != 6 else { return illegal(w) }
            let single = fmt == 0
            let op: Op
            switch opcode {
            case 0x43: op = single ? .fmaddS : .fmaddD
            case 0x47: op = single ? .fmsubS : .fmsubD
            case 0x4b: op = single ? .fnmsubS : .fnmsubD
            default: op = single ? .fnmaddS : .fnmaddD
            }
            return MicroOp(op, rd: UInt8(rd), rs1: s1, rs2: s2, rs3: UInt8(rs3), extra: UInt8(f3))
        case 0x53:
            return decodeFP(w, rd: rd, rs1: rs1, rs2: rs2, f3: f3, f7: f7)
        default:
            return illegal(w)
        }
    }

    static func decodeFP(_ w: UInt32, rd: UInt32, rs1: UInt32, rs2: UInt32, f3: UInt32, f7: UInt32) -> MicroOp {
        let fd = UInt8(rd), xd = rdx(rd), s1 = UInt8(rs1), s2 = UInt8(rs2)
        let rmOK = f3 != 5 && f3 != 6
        let rm = UInt8(f3)
        func arith(_ op: Op) -> MicroOp { rmOK ? MicroOp(op, rd: fd, rs1: s1, rs2: s2, extra: rm) : illegal(w) }
        switch f7 {
        case 0x00: return arith(.faddS)
        case 0x01: return arith(.faddD)
        case 0x04: return arith(.fsubS)
        case 0x05: return arith(.fsubD)
        case 0x08: return arith(.fmulS)
        case 0x09: return arith(.fmulD)
        case 0x0c: return arith(.fdivS)
        case 0x0d: return arith(.fdivD)
        case 0x2c: return rs2 == 0 ? arith(.fsqrtS) : illegal(w)
        case 0x2d: return rs2 == 0 ? arith(.fsqrtD) : illegal(w)
        case 0x10, 0x11:
            guard f3 < 3 else { return illegal(w) }
            return MicroOp(nth(f7 == 0x10 ? .fsgnjS : .fsgnjD, f3), rd: fd, rs1: s1, rs2: s2)
        case 0x14, 0x15:
            guard f3 < 2 else { return illegal(w) }
            let op: Op = f7 == 0x14 ? (f3 == 0 ? .fminS : .fmaxS) : (f3 == 0 ? .fminD : .fmaxD)
            return MicroOp(op, rd: fd, rs1: s1, rs2: s2)
        case 0x50, 0x51:
            guard f3 < 3 else { return illegal(w) }  // funct3 2, 1, 0 = feq, flt, fle (the enum's order reversed)
            return MicroOp(nth(f7 == 0x50 ? .feqS : .feqD, 2 - f3), rd: xd, rs1: s1, rs2: s2)
        case 0x20:  // fcvt.s.d
            return rs2 == 1 && rmOK ? MicroOp(.fcvtSD, rd: fd, rs1: s1, extra: rm) : illegal(w)
        case 0x21:  // fcvt.d.s
            return rs2 == 0 && rmOK ? MicroOp(.fcvtDS, rd: fd, rs1: s1, extra: rm) : illegal(w)
        case 0x60, 0x61:
            guard rs2 < 4, rmOK else { return illegal(w) }
            return MicroOp(nth(f7 == 0x60 ? .fcvtWS : .fcvtWD, rs2), rd: xd, rs1: s1, extra: rm)
        case 0x68, 0x69:
            guard rs2 < 4, rmOK else { return illegal(w) }
            return MicroOp(nth(f7 == 0x68 ? .fcvtSW : .fcvtDW, rs2), rd: fd, rs1: s1, extra: rm)
        case 0x70, 0x71:
            guard rs2 == 0 else { return illegal(w) }
            if f3 == 0 { return MicroOp(f7 == 0x70 ? .fmvXW : .fmvXD, rd: xd, rs1: s1) }
            if f3 == 1 { return MicroOp(f7 == 0x70 ? .fclassS : .fclassD, rd: xd, rs1: s1) }
            return illegal(w)
        case 0x78, 0x79:
            guard rs2 == 0, f3 == 0 else { return illegal(w) }
            return MicroOp(f7 == 0x78 ? .fmvWX : .fmvDX, rd: fd, rs1: s1)
        default:
            return illegal(w)
        }
    }

    /// Decodes a 16-bit compressed instruction into the micro-op of its 32-bit expansion.
    public static func decode16(_ h: UInt16) -> MicroOp {
        let w = UInt32(h)
        let f3 = bits(w, 15, 13)
        let quadrant = w & 3
        // Registers x8..x15 in the 3-bit fields.
        let rdP = UInt8(bits(w, 4, 2) + 8), rs1P = UInt8(bits(w, 9, 7) + 8)
        let rdFull = bits(w, 11, 7), rs2Full = bits(w, 6, 2)
        var op: MicroOp
        switch (quadrant, f3) {
        case (0, 0):  // c.addi4spn
            let imm = bits(w, 10, 7) << 6 | bits(w, 12, 11) << 4 | bits(w, 5, 5) << 3 | bits(w, 6, 6) << 2
            guard imm != 0 else { return illegal(w) }
            op = MicroOp(.addi, rd: rdP, rs1: 2, imm: Int64(imm))
        case (0, 1):  // c.fld
            op = MicroOp(.fld, rd: rdP, rs1: rs1P, imm: Int64(bits(w, 6, 5) << 6 | bits(w, 12, 10) << 3))
        case (0, 2):  // c.lw
            op = MicroOp(.lw, rd: rdP, rs1: rs1P, imm: Int64(bits(w, 5, 5) << 6 | bits(w, 12, 10) << 3 | bits(w, 6, 6) << 2))
        case (0, 3):  // c.ld
            op = MicroOp(.ld, rd: rdP, rs1: rs1P, imm: Int64(bits(w, 6, 5) << 6 | bits(w, 12, 10) << 3))
        case (0, 5):  // c.fsd
            op = MicroOp(.fsd, rs1: rs1P, rs2: rdP, imm: Int64(bits(w, 6, 5) << 6 | bits(w, 12, 10) << 3))
        case (0, 6):  // c.sw
            op = MicroOp(.sw, rs1: rs1P, rs2: rdP, imm: Int64(bits(w, 5, 5) << 6 | bits(w, 12, 10) << 3 | bits(w, 6, 6) << 2))
        case (0, 7):  // c.sd
            op = MicroOp(.sd, rs1: rs1P, rs2: rdP, imm: Int64(bits(w, 6, 5) << 6 | bits(w, 12, 10) << 3))
        case (1, 0):  // c.addi / c.nop
            let imm = sext(bits(w, 12, 12) << 5 | bits(w, 6, 2), 6)
            op = MicroOp(.addi, rd: rdx(rdFull), rs1: UInt8(rdFull), imm: imm)
        case (1, 1):  // c.addiw
            guard rdFull != 0 else { return illegal(w) }
            op = MicroOp(.addiw, rd: UInt8(rdFull), rs1: UInt8(rdFull), imm: sext(bits(w, 12, 12) << 5 | bits(w, 6, 2), 6))
        case (1, 2):  // c.li
            op = MicroOp(.addi, rd: rdx(rdFull), rs1: 0, imm: sext(bits(w, 12, 12) << 5 | bits(w, 6, 2), 6))
        case (1, 3):
            if rdFull == 2 {  // c.addi16sp
                let imm = sext(bits(w, 12, 12) << 9 | bits(w, 4, 3) << 7 | bits(w, 5, 5) << 6 | bits(w, 2, 2) << 5 | bits(w, 6, 6) << 4, 10)
                guard imm != 0 else { return illegal(w) }
                op = MicroOp(.addi, rd: 2, rs1: 2, imm: imm)
            } else {  // c.lui
                let imm = sext(bits(w, 12, 12) << 17 | bits(w, 6, 2) << 12, 18)
                guard imm != 0 else { return illegal(w) }
                op = MicroOp(.lui, rd: rdx(rdFull), imm: imm)
            }
        case (1, 4):
            let f2 = bits(w, 11, 10)
            let shamt = Int64(bits(w, 12, 12) << 5 | bits(w, 6, 2))
            switch f2 {
            case 0: op = MicroOp(.srli, rd: rs1P, rs1: rs1P, imm: shamt)
            case 1: op = MicroOp(.srai, rd: rs1P, rs1: rs1P, imm: shamt)
            case 2: op = MicroOp(.andi, rd: rs1P, rs1: rs1P, imm: sext(bits(w, 12, 12) << 5 | bits(w, 6, 2), 6))
            default:
                let o: Op
                switch bits(w, 12, 12) << 2 | bits(w, 6, 5) {
                case 0: o = .sub
                case 1: o = .xor
                case 2: o = .or
                case 3: o = .and
                case 4: o = .subw
                case 5: o = .addw
                default: return illegal(w)
                }
                op = MicroOp(o, rd: rs1P, rs1: rs1P, rs2: rdP)
            }
        case (1, 5):  // c.j
            let imm = sext(bits(w, 12, 12) << 11 | bits(w, 8, 8) << 10 | bits(w, 10, 9) << 8 | bits(w, 6, 6) << 7
                           | bits(w, 7, 7) << 6 | bits(w, 2, 2) << 5 | bits(w, 11, 11) << 4 | bits(w, 5, 3) << 1, 12)
            op = MicroOp(.jal, rd: 32, extra: 2, imm: imm)
        case (1, 6), (1, 7):  // c.beqz / c.bnez
            let imm = sext(bits(w, 12, 12) << 8 | bits(w, 6, 5) << 6 | bits(w, 2, 2) << 5 | bits(w, 11, 10) << 3 | bits(w, 4, 3) << 1, 9)
            op = MicroOp(f3 == 6 ? .beq : .bne, rs1: rs1P, rs2: 0, extra: 2, imm: imm)
        case (2, 0):  // c.slli
            op = MicroOp(.slli, rd: rdx(rdFull), rs1: UInt8(rdFull), imm: Int64(bits(w, 12, 12) << 5 | bits(w, 6, 2)))
        case (2, 1):  // c.fldsp
            op = MicroOp(.fld, rd: UInt8(rdFull), rs1: 2, imm: Int64(bits(w, 4, 2) << 6 | bits(w, 12, 12) << 5 | bits(w, 6, 5) << 3))
        case (2, 2):  // c.lwsp
            guard rdFull != 0 else { return illegal(w) }
            op = MicroOp(.lw, rd: UInt8(rdFull), rs1: 2, imm: Int64(bits(w, 3, 2) << 6 | bits(w, 12, 12) << 5 | bits(w, 6, 4) << 2))
        case (2, 3):  // c.ldsp
            guard rdFull != 0 else { return illegal(w) }
            op = MicroOp(.ld, rd: UInt8(rdFull), rs1: 2, imm: Int64(bits(w, 4, 2) << 6 | bits(w, 12, 12) << 5 | bits(w, 6, 5) << 3))
        case (2, 4):
            let bit12 = bits(w, 12, 12)
            if bit12 == 0 {
                if rs2Full == 0 {  // c.jr
                    guard rdFull != 0 else { return illegal(w) }
                    op = MicroOp(.jalr, rd: 32, rs1: UInt8(rdFull), extra: 2, imm: 0)
                } else {  // c.mv
                    op = MicroOp(.add, rd: rdx(rdFull), rs1: 0, rs2: UInt8(rs2Full))
                }
            } else {
                if rs2Full == 0 {
                    if rdFull == 0 { op = MicroOp(.ebreak) }  // c.ebreak
                    else { op = MicroOp(.jalr, rd: 1, rs1: UInt8(rdFull), extra: 2, imm: 0) }  // c.jalr
                } else {  // c.add
                    op = MicroOp(.add, rd: rdx(rdFull), rs1: UInt8(rdFull), rs2: UInt8(rs2Full))
                }
            }
        case (2, 5):  // c.fsdsp
            op = MicroOp(.fsd, rs1: 2, rs2: UInt8(rs2Full), imm: Int64(bits(w, 9, 7) << 6 | bits(w, 12, 10) << 3))
        case (2, 6):  // c.swsp
            op = MicroOp(.sw, rs1: 2, rs2: UInt8(rs2Full), imm: Int64(bits(w, 8, 7) << 6 | bits(w, 12, 9) << 2))
        case (2, 7):  // c.sdsp
            op = MicroOp(.sd, rs1: 2, rs2: UInt8(rs2Full), imm: Int64(bits(w, 9, 7) << 6 | bits(w, 12, 10) << 3))
        default:
            return illegal(w)
        }
        if h == 0 { return illegal(0) }
        return op
    }
}
