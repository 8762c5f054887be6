/// The pre-decoded form of one guest instruction, 16 bytes.
///
/// Blocks of these are built once per guest basic block and executed by `Hart.executeBlock`, a `switch`
/// over `op`. Integer destination register 0 is rewritten to 32, a scratch slot that nobody reads, so the
/// executor never tests for x0.
public struct MicroOp {
    public var op: Op
    public var rd: UInt8
    public var rs1: UInt8
    public var rs2: UInt8
    public var rs3: UInt8
    /// Instruction length (2 or 4) for control transfers; rounding mode for FP; AMO kind for atomics; CSR kind.
    public var extra: UInt8
    /// Byte offset of this instruction from the start of its block.
    public var pcOffset: UInt16
    /// Immediate; CSR number for CSR ops; the raw instruction for `illegal`.
    public var imm: Int64

    @inline(__always)
    public init(_ op: Op, rd: UInt8 = 32, rs1: UInt8 = 0, rs2: UInt8 = 0, rs3: UInt8 = 0, extra: UInt8 = 0, imm: Int64 = 0) {
        self.op = op; self.rd = rd; self.rs1 = rs1; self.rs2 = rs2; self.rs3 = rs3; self.extra = extra
        self.pcOffset = 0; self.imm = imm
    }
}

/// Micro-operations: the execution semantics the instruction table (RivetISA's InstructionTable) names.
/// Dense, so the executor's switch compiles to one jump table. Which ones end a block is generated from the
/// table (DecoderTable.swift).
public enum Op: UInt8 {
    case illegal, nop
    // Integer register-immediate and register-register
    case lui, auipc, addi, slti, sltiu, xori, ori, andi, slli, srli, srai
    case addiw, slliw, srliw, sraiw
    case add, sub, sll, slt, sltu, xor, srl, sra, or, and
    case addw, subw, sllw, srlw, sraw
    case mul, mulh, mulhsu, mulhu, div, divu, rem, remu, mulw, divw, divuw, remw, remuw
    // Control transfer (always last in a block)
    case jal, jalr, beq, bne, blt, bge, bltu, bgeu
    // Memory
    case lb, lh, lw, ld, lbu, lhu, lwu, sb, sh, sw, sd
    case flw, fld, fsw, fsd
    case lrw, lrd, scw, scd, amow, amod
    // System (always last in a block)
    case fence, fencei, ecall, ebreak, mret, sret, wfi, sfenceVma, csr
    // Single precision
    case faddS, fsubS, fmulS, fdivS, fsqrtS, fminS, fmaxS, fmaddS, fmsubS, fnmsubS, fnmaddS
    case fsgnjS, fsgnjnS, fsgnjxS, feqS, fltS, fleS, fclassS, fmvXW, fmvWX
    case fcvtWS, fcvtWUS, fcvtLS, fcvtLUS, fcvtSW, fcvtSWU, fcvtSL, fcvtSLU
    // Double precision
    case faddD, fsubD, fmulD, fdivD, fsqrtD, fminD, fmaxD, fmaddD, fmsubD, fnmsubD, fnmaddD
    case fsgnjD, fsgnjnD, fsgnjxD, feqD, fltD, fleD, fclassD, fmvXD, fmvDX
    case fcvtWD, fcvtWUD, fcvtLD, fcvtLUD, fcvtDW, fcvtDWU, fcvtDL, fcvtDLU, fcvtSD, fcvtDS
}

/// AMO kinds carried in `MicroOp.extra` for `amow`/`amod` (funct5 of the encoding).
public enum AMOKind: UInt8 {
    case add = 0x00, swap = 0x01, xor = 0x04, or = 0x08, and = 0x0c, min = 0x10, max = 0x14, minu = 0x18, maxu = 0x1c
}

/// CSR instruction kinds carried in `MicroOp.extra` (funct3). With the immediate forms `rs1` holds the uimm.
public enum CSRKind: UInt8 { case rw = 1, rs = 2, rc = 3, rwi = 5, rsi = 6, rci = 7 }
