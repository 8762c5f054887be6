// The one description of every RV64GC instruction Rivet knows: encoding (mask/match), operand fields,
// format, extension, whether it ends a decoded block, rounding-mode use, the micro-op the machine runs it as,
// assembler syntax and objdump 2.40's spellings (aliases).
//
// Derived from it: the disassembler (Disassembler.swift reads it at run time), the decoder (RivetCPU's
// DecoderTable.swift is generated from it by `scripts/generate-decoder`; a test checks the checked-in file is
// current) and the block-ending flags of the micro-ops. A new instruction is one row here plus its execution
// in RivetCPU's interpreter (a new `Op` case).
//
// Rows may overlap: an encoding belongs to the matching row with the most fixed bits (e.g. `c.jr` before
// `c.mv`, `ecall` before `sfence.vma`). Within a row, the first alias that applies gives objdump's spelling.

public enum InstructionTable {
    /// Every instruction, 32-bit ones first.
    public static let all: [InstructionSpec] = resolveExpansions(base + compressedRows)

    /// The instruction `word` encodes for the disassembler: the most specific row whose mask/match fits (nil if
    /// none; the row's conditions are not checked here).
    public static func row(for word: UInt32) -> InstructionSpec? {
        let compressed = word & 3 != 3
        let w = compressed ? word & 0xffff : word
        for spec in buckets[bucket(w)] where w & spec.mask == spec.match { return spec }
        return nil
    }

    /// Every row fixes its opcode (32-bit) or quadrant and funct3 (compressed): rows by those bits, in specificity order.
    static func bucket(_ w: UInt32) -> Int {
        w & 3 == 3 ? Int(w & 0x7f) : 128 + Int((w & 3) | ((w >> 13) & 7) << 2)
    }
    static let buckets: [[InstructionSpec]] = {
        var b = [[InstructionSpec]](repeating: [], count: 128 + 32)
        for spec in bySpecificity { b[bucket(spec.match)].append(spec) }
        return b
    }()

    /// Rows ordered by how many bits they fix (most first); the order decoding and disassembly try them in.
    public static let bySpecificity: [InstructionSpec] = all.enumerated().sorted {
        let a = $0.element.mask.nonzeroBitCount, b = $1.element.mask.nonzeroBitCount
        return a != b ? a > b : $0.offset < $1.offset
    }.map(\.element)

    static func resolveExpansions(_ rows: [InstructionSpec]) -> [InstructionSpec] {
        let byName = Dictionary(rows.filter { !$0.isCompressed }.map { ($0.mnemonic, $0) }, uniquingKeysWith: { a, _ in a })
        return rows.map { row in
            guard let expansion = row.expansion else { return row }
            guard let target = byName[expansion.mnemonic] else { preconditionFailure("\(row.mnemonic) expands to unknown \(expansion.mnemonic)") }
            var r = row
            r.microOp = target.microOp
            r.endsBlock = target.endsBlock
            r.extra = target.extra
            r.immediate = target.immediate
            return r
        }
    }

    // MARK: - 32-bit instructions

    static let base: [InstructionSpec] = integer + multiply + atomics + floating + system

    static let integer: [InstructionSpec] = [
        insn("lui", op(0x37), .u, .i, "rd,immU", op: "lui"),
        insn("auipc", op(0x17), .u, .i, "rd,immU", op: "auipc"),
        insn("jal", op(0x6f), .j, .i, "rd,jump", op: "jal", endsBlock: true, extra: .length, aliases: [
            alias("j", "jump", when: ["rd=0"]), alias("jal", "jump", when: ["rd=1"])]),
        insn("jalr", op(0x67).f3(0), .i, .i, "rd,immI(rs1)", op: "jalr", endsBlock: true, extra: .length, aliases: [
            alias("ret", "", when: ["rd=0", "rs1=1", "immI=0"]), alias("jr", "rs1", when: ["rd=0", "immI=0"]),
            alias("jr", "immI(rs1)", when: ["rd=0"]), alias("jalr", "rs1", when: ["rd=1", "immI=0"]),
            alias("jalr", "immI(rs1)", when: ["rd=1"]), alias("jalr", "rd,rs1", when: ["immI=0"])]),
        insn("beq", op(0x63).f3(0), .b, .i, "rs1,rs2,branch", op: "beq", endsBlock: true, extra: .length, aliases: [
            alias("beqz", "rs1,branch", when: ["rs2=0"])]),
        insn("bne", op(0x63).f3(1), .b, .i, "rs1,rs2,branch", op: "bne", endsBlock: true, extra: .length, aliases: [
            alias("bnez", "rs1,branch", when: ["rs2=0"])]),
        insn("blt", op(0x63).f3(4), .b, .i, "rs1,rs2,branch", op: "blt", endsBlock: true, extra: .length, aliases: [
            alias("bltz", "rs1,branch", when: ["rs2=0"]), alias("bgtz", "rs2,branch", when: ["rs1=0"])]),
        insn("bge", op(0x63).f3(5), .b, .i, "rs1,rs2,branch", op: "bge", endsBlock: true, extra: .length, aliases: [
            alias("blez", "rs2,branch", when: ["rs1=0"]), alias("bgez", "rs1,branch", when: ["rs2=0"])]),
        insn("bltu", op(0x63).f3(6), .b, .i, "rs1,rs2,branch", op: "bltu", endsBlock: true, extra: .length),
        insn("bgeu", op(0x63).f3(7), .b, .i, "rs1,rs2,branch", op: "bgeu", endsBlock: true, extra: .length),
        insn("lb", op(0x03).f3(0), .i, .i, "rd,immI(rs1)", op: "lb"),
        insn("lh", op(0x03).f3(1), .i, .i, "rd,immI(rs1)", op: "lh"),
        insn("lw", op(0x03).f3(2), .i, .i, "rd,immI(rs1)", op: "lw"),
        insn("ld", op(0x03).f3(3), .i, .i, "rd,immI(rs1)", op: "ld"),
        insn("lbu", op(0x03).f3(4), .i, .i, "rd,immI(rs1)", op: "lbu"),
        insn("lhu", op(0x03).f3(5), .i, .i, "rd,immI(rs1)", op: "lhu"),
        insn("lwu", op(0x03).f3(6), .i, .i, "rd,immI(rs1)", op: "lwu"),
        insn("sb", op(0x23).f3(0), .s, .i, "rs2,immS(rs1)", op: "sb"),
        insn("sh", op(0x23).f3(1), .s, .i, "rs2,immS(rs1)", op: "sh"),
        insn("sw", op(0x23).f3(2), .s, .i, "rs2,immS(rs1)", op: "sw"),
        insn("sd", op(0x23).f3(3), .s, .i, "rs2,immS(rs1)", op: "sd"),
        // objdump 2.40 spells the register-immediate forms with the register-register mnemonics (add a0,a1,5).
        insn("addi", op(0x13).f3(0), .i, .i, "rd,rs1,immI", op: "addi", aliases: [
            alias("nop", "", when: ["rd=0", "rs1=0", "immI=0"]), alias("li", "rd,immI", when: ["rs1=0"]),
            alias("mv", "rd,rs1", when: ["immI=0"]), alias("add", "rd,rs1,immI")]),
        insn("slti", op(0x13).f3(2), .i, .i, "rd,rs1,immI", op: "slti"),
        insn("sltiu", op(0x13).f3(3), .i, .i, "rd,rs1,immI", op: "sltiu", aliases: [alias("seqz", "rd,rs1", when: ["immI=1"])]),
        insn("xori", op(0x13).f3(4), .i, .i, "rd,rs1,immI", op: "xori", aliases: [
            alias("not", "rd,rs1", when: ["immI=-1"]), alias("xor", "rd,rs1,immI")]),
        insn("ori", op(0x13).f3(6), .i, .i, "rd,rs1,immI", op: "ori", aliases: [alias("or", "rd,rs1,immI")]),
        insn("andi", op(0x13).f3(7), .i, .i, "rd,rs1,immI", op: "andi", aliases: [
            alias("zext.b", "rd,rs1", when: ["immI=255"]), alias("and", "rd,rs1,immI")]),
        insn("slli", op(0x13).f3(1).f6(0), .i, .i, "rd,rs1,shamt", op: "slli", aliases: [alias("sll", "rd,rs1,shamt")]),
        insn("srli", op(0x13).f3(5).f6(0), .i, .i, "rd,rs1,shamt", op: "srli", aliases: [alias("srl", "rd,rs1,shamt")]),
        insn("srai", op(0x13).f3(5).f6(0x10), .i, .i, "rd,rs1,shamt", op: "srai", aliases: [alias("sra", "rd,rs1,shamt")]),
        insn("addiw", op(0x1b).f3(0), .i, .i, "rd,rs1,immI", op: "addiw", aliases: [
            alias("sext.w", "rd,rs1", when: ["immI=0"]), alias("addw", "rd,rs1,immI")]),
        insn("slliw", op(0x1b).f3(1).f7(0), .i, .i, "rd,rs1,shamtw", op: "slliw", aliases: [alias("sllw", "rd,rs1,shamtw")]),
        insn("srliw", op(0x1b).f3(5).f7(0), .i, .i, "rd,rs1,shamtw", op: "srliw", aliases: [alias("srlw", "rd,rs1,shamtw")]),
        insn("sraiw", op(0x1b).f3(5).f7(0x20), .i, .i, "rd,rs1,shamtw", op: "sraiw", aliases: [alias("sraw", "rd,rs1,shamtw")]),
        insn("add", op(0x33).f3(0).f7(0), .r, .i, "rd,rs1,rs2", op: "add"),
        insn("sub", op(0x33).f3(0).f7(0x20), .r, .i, "rd,rs1,rs2", op: "sub", aliases: [alias("neg", "rd,rs2", when: ["rs1=0"])]),
        insn("sll", op(0x33).f3(1).f7(0), .r, .i, "rd,rs1,rs2", op: "sll"),
        insn("slt", op(0x33).f3(2).f7(0), .r, .i, "rd,rs1,rs2", op: "slt", aliases: [
            alias("sltz", "rd,rs1", when: ["rs2=0"]), alias("sgtz", "rd,rs2", when: ["rs1=0"])]),
        insn("sltu", op(0x33).f3(3).f7(0), .r, .i, "rd,rs1,rs2", op: "sltu", aliases: [alias("snez", "rd,rs2", when: ["rs1=0"])]),
        insn("xor", op(0x33).f3(4).f7(0), .r, .i, "rd,rs1,rs2", op: "xor"),
        insn("srl", op(0x33).f3(5).f7(0), .r, .i, "rd,rs1,rs2", op: "srl"),
        insn("sra", op(0x33).f3(5).f7(0x20), .r, .i, "rd,rs1,rs2", op: "sra"),
        insn("or", op(0x33).f3(6).f7(0), .r, .i, "rd,rs1,rs2", op: "or"),
        insn("and", op(0x33).f3(7).f7(0), .r, .i, "rd,rs1,rs2", op: "and"),
        insn("addw", op(0x3b).f3(0).f7(0), .r, .i, "rd,rs1,rs2", op: "addw"),
        insn("subw", op(0x3b).f3(0).f7(0x20), .r, .i, "rd,rs1,rs2", op: "subw", aliases: [alias("negw", "rd,rs2", when: ["rs1=0"])]),
        insn("sllw", op(0x3b).f3(1).f7(0), .r, .i, "rd,rs1,rs2", op: "sllw"),
        insn("srlw", op(0x3b).f3(5).f7(0), .r, .i, "rd,rs1,rs2", op: "srlw"),
        insn("sraw", op(0x3b).f3(5).f7(0x20), .r, .i, "rd,rs1,rs2", op: "sraw"),
        // Every fence is a full fence here (harts are sequentially consistent); objdump spells only the
        // encodings with fm, rs1 and rd zero, and fence.tso.
        insn("fence", op(0x0f).f3(0), .i, .i, "pred,succ", op: "fence", objdumpRequires: Encoding().bits(31, 28, 0).rs1(0).rd(0),
             aliases: [alias("fence.tso", "", exactly: 0x8330_000f), alias("fence", "", exactly: 0x0ff0_000f)]),
        insn("fence.i", op(0x0f).f3(1), .i, .zifencei, "", op: "fencei", endsBlock: true, extra: .length,
             objdumpRequires: Encoding.exact(0x0000_100f)),
    ]

    static let multiply: [InstructionSpec] = multiplyRows()

    static func multiplyRows() -> [InstructionSpec] {
        let wide: [(String, UInt32)] = [("mul", 0), ("mulh", 1), ("mulhsu", 2), ("mulhu", 3), ("div", 4), ("divu", 5), ("rem", 6), ("remu", 7)]
        let word: [(String, UInt32)] = [("mulw", 0), ("divw", 4), ("divuw", 5), ("remw", 6), ("remuw", 7)]
        return wide.map { insn($0.0, op(0x33).f3($0.1).f7(1), .r, .m, "rd,rs1,rs2", op: $0.0) }
            + word.map { insn($0.0, op(0x3b).f3($0.1).f7(1), .r, .m, "rd,rs1,rs2", op: $0.0) }
    }

    /// Ordering bits (aq, rl) are free in every row; the disassembler appends them to the mnemonic.
    static let atomics: [InstructionSpec] = atomicRows(".w", 2, "w") + atomicRows(".d", 3, "d")

    static let amoKinds: [(String, UInt32)] = [
        ("amoswap", 0x01), ("amoadd", 0x00), ("amoxor", 0x04), ("amoand", 0x0c), ("amoor", 0x08),
        ("amomin", 0x10), ("amomax", 0x14), ("amominu", 0x18), ("amomaxu", 0x1c),
    ]

    static func atomicRows(_ width: String, _ f3: UInt32, _ suffix: String) -> [InstructionSpec] {
        var rows: [InstructionSpec] = [
            insn("lr" + width, op(0x2f).f3(f3).f5(0x02).rs2(0), .r, .a, "rd,(rs1)", op: "lr" + suffix),
            insn("sc" + width, op(0x2f).f3(f3).f5(0x03), .r, .a, "rd,rs2,(rs1)", op: "sc" + suffix),
        ]
        for (name, f5) in amoKinds {
            rows.append(insn(name + width, op(0x2f).f3(f3).f5(f5), .r, .a, "rd,rs2,(rs1)", op: "amo" + suffix, extra: .funct5))
        }
        return rows
    }

    static let floating: [InstructionSpec] = [
        insn("flw", op(0x07).f3(2), .i, .f, "frd,immI(rs1)", op: "flw"),
        insn("fld", op(0x07).f3(3), .i, .d, "frd,immI(rs1)", op: "fld"),
        insn("fsw", op(0x27).f3(2), .s, .f, "frs2,immS(rs1)", op: "fsw"),
        insn("fsd", op(0x27).f3(3), .s, .d, "frs2,immS(rs1)", op: "fsd"),
    ] + precisionRows(".s", 0, .f, "S") + precisionRows(".d", 1, .d, "D") + [
        insn("fcvt.s.d", op(0x53).f7(0x20).rs2(1), .r, .d, "frd,frs1,rm", op: "fcvtSD", roundingMode: true),
        // int32 -> double and float -> double are exact: objdump 2.40 knows them only with rm = 0 and prints no mode.
        insn("fcvt.d.s", op(0x53).f7(0x21).rs2(0), .r, .d, "frd,frs1", op: "fcvtDS", roundingMode: true, objdumpRequires: Encoding().f3(0)),
    ]

    static func precisionRows(_ p: String, _ fmt: UInt32, _ ext: ISAExtension, _ o: String) -> [InstructionSpec] {
        var rows: [InstructionSpec] = []
        let fused: [(String, UInt32)] = [("fmadd", 0x43), ("fmsub", 0x47), ("fnmsub", 0x4b), ("fnmadd", 0x4f)]
        for (name, opcode) in fused {
            rows.append(insn(name + p, op(opcode).fmt(fmt), .r4, ext, "frd,frs1,frs2,frs3,rm", op: name + o, roundingMode: true))
        }
        let arithmetic: [(String, UInt32)] = [("fadd", 0x00), ("fsub", 0x04), ("fmul", 0x08), ("fdiv", 0x0c)]
        for (name, f7) in arithmetic {
            rows.append(insn(name + p, op(0x53).f7(f7 | fmt), .r, ext, "frd,frs1,frs2,rm", op: name + o, roundingMode: true))
        }
        rows.append(insn("fsqrt" + p, op(0x53).f7(0x2c | fmt).rs2(0), .r, ext, "frd,frs1,rm", op: "fsqrt" + o, roundingMode: true))
        // Equal sources make the sign injections moves, negations and absolute values.
        let sign: [(String, UInt32, String)] = [("fsgnj", 0, "fmv"), ("fsgnjn", 1, "fneg"), ("fsgnjx", 2, "fabs")]
        for (name, f3, same) in sign {
            rows.append(insn(name + p, op(0x53).f7(0x10 | fmt).f3(f3), .r, ext, "frd,frs1,frs2", op: name + o, aliases: [
                alias(same + p, "frd,frs1", when: ["frs1=frs2"])]))
        }
        rows.append(insn("fmin" + p, op(0x53).f7(0x14 | fmt).f3(0), .r, ext, "frd,frs1,frs2", op: "fmin" + o))
        rows.append(insn("fmax" + p, op(0x53).f7(0x14 | fmt).f3(1), .r, ext, "frd,frs1,frs2", op: "fmax" + o))
        rows.append(insn("feq" + p, op(0x53).f7(0x50 | fmt).f3(2), .r, ext, "rd,frs1,frs2", op: "feq" + o))
        rows.append(insn("flt" + p, op(0x53).f7(0x50 | fmt).f3(1), .r, ext, "rd,frs1,frs2", op: "flt" + o))
        rows.append(insn("fle" + p, op(0x53).f7(0x50 | fmt).f3(0), .r, ext, "rd,frs1,frs2", op: "fle" + o))
        let integers: [(String, UInt32, String)] = [("w", 0, "W"), ("wu", 1, "WU"), ("l", 2, "L"), ("lu", 3, "LU")]
        for (name, rs2, opName) in integers {
            rows.append(insn("fcvt." + name + p, op(0x53).f7(0x60 | fmt).rs2(rs2), .r, ext, "rd,frs1,rm", op: "fcvt" + opName + o,
                             roundingMode: true))
        }
        for (name, rs2, opName) in integers {
            let encoding = op(0x53).f7(0x68 | fmt).rs2(rs2)
            if fmt == 1 && rs2 < 2 {  // int32 -> double is exact (see fcvt.d.s)
                rows.append(insn("fcvt" + p + "." + name, encoding, .r, ext, "frd,rs1", op: "fcvt" + o + opName, roundingMode: true,
                                 objdumpRequires: Encoding().f3(0)))
            } else {
                rows.append(insn("fcvt" + p + "." + name, encoding, .r, ext, "frd,rs1,rm", op: "fcvt" + o + opName, roundingMode: true))
            }
        }
        let moveName = fmt == 0 ? "w" : "d", moveOp = fmt == 0 ? "W" : "D"
        rows.append(insn("fmv.x." + moveName, op(0x53).f7(0x70 | fmt).rs2(0).f3(0), .r, ext, "rd,frs1", op: "fmvX" + moveOp))
        rows.append(insn("fclass" + p, op(0x53).f7(0x70 | fmt).rs2(0).f3(1), .r, ext, "rd,frs1", op: "fclass" + o))
        rows.append(insn("fmv." + moveName + ".x", op(0x53).f7(0x78 | fmt).rs2(0).f3(0), .r, ext, "frd,rs1", op: "fmv" + moveOp + "X"))
        return rows
    }

    static let system: [InstructionSpec] = [
        insn("ecall", .exact(0x0000_0073), .i, .i, "", op: "ecall", endsBlock: true),
        insn("ebreak", .exact(0x0010_0073), .i, .i, "", op: "ebreak", endsBlock: true),
        insn("sret", .exact(0x1020_0073), .r, .privileged, "", op: "sret", endsBlock: true, imm: .rawWord),
        insn("mret", .exact(0x3020_0073), .r, .privileged, "", op: "mret", endsBlock: true, imm: .rawWord),
        insn("wfi", .exact(0x1050_0073), .r, .privileged, "", op: "wfi", endsBlock: true, extra: .length, imm: .rawWord),
        insn("sfence.vma", op(0x73).f3(0).rd(0).f7(0x09), .r, .privileged, "rs1,rs2", op: "sfenceVma", endsBlock: true,
             imm: .rawWord, aliases: [alias("sfence.vma", "", when: ["rs1=0", "rs2=0"]), alias("sfence.vma", "rs1", when: ["rs2=0"])]),
        // Known to objdump from older privileged specs and debug mode; illegal on this machine.
        insn("uret", .exact(0x0020_0073), .r, .privileged, "", op: nil),
        insn("hret", .exact(0x2020_0073), .r, .privileged, "", op: nil),
        insn("dret", .exact(0x7b20_0073), .r, .privileged, "", op: nil),
        insn("sfence.vm", op(0x73).f3(0).rd(0).f12(0x104), .i, .privileged, "rs1", op: nil, aliases: [alias("sfence.vm", "", when: ["rs1=0"])]),
        // Zicsr. objdump names the float CSRs' accesses (frflags, fsrm ...) and the counters' reads (rdcycle ...).
        insn("csrrw", op(0x73).f3(1), .i, .zicsr, "rd,csr,rs1", op: "csr", endsBlock: true, extra: .funct3, imm: .csrAndRawWord, aliases: [
            alias("unimp", "", when: ["csr=0xc00", "rd=0", "rs1=0"]),
            alias("fsflags", "rs1", when: ["csr=1", "rd=0"]), alias("fsflags", "rd,rs1", when: ["csr=1"]),
            alias("fsrm", "rs1", when: ["csr=2", "rd=0"]), alias("fsrm", "rd,rs1", when: ["csr=2"]),
            alias("fscsr", "rs1", when: ["csr=3", "rd=0"]), alias("fscsr", "rd,rs1", when: ["csr=3"]),
            alias("csrw", "csr,rs1", when: ["rd=0"])]),
        insn("csrrs", op(0x73).f3(2), .i, .zicsr, "rd,csr,rs1", op: "csr", endsBlock: true, extra: .funct3, imm: .csrAndRawWord, aliases: [
            alias("frflags", "rd", when: ["csr=1", "rs1=0"]), alias("frrm", "rd", when: ["csr=2", "rs1=0"]),
            alias("frcsr", "rd", when: ["csr=3", "rs1=0"]), alias("rdcycle", "rd", when: ["csr=0xc00", "rs1=0"]),
            alias("rdtime", "rd", when: ["csr=0xc01", "rs1=0"]), alias("rdinstret", "rd", when: ["csr=0xc02", "rs1=0"]),
            alias("csrr", "rd,csr", when: ["rs1=0"]), alias("csrs", "csr,rs1", when: ["rd=0"])]),
        insn("csrrc", op(0x73).f3(3), .i, .zicsr, "rd,csr,rs1", op: "csr", endsBlock: true, extra: .funct3, imm: .csrAndRawWord, aliases: [
            alias("csrc", "csr,rs1", when: ["rd=0"])]),
        // objdump 2.40 spells the immediate forms like the register forms (csrrw a0,mstatus,5).
        insn("csrrwi", op(0x73).f3(5), .i, .zicsr, "rd,csr,uimm", op: "csr", endsBlock: true, extra: .funct3, imm: .csrAndRawWord, aliases: [
            alias("fsflagsi", "rd,uimm", when: ["csr=1"]), alias("fsrmi", "rd,uimm", when: ["csr=2"]),
            alias("csrw", "csr,uimm", when: ["rd=0"]), alias("csrrw", "rd,csr,uimm")]),
        insn("csrrsi", op(0x73).f3(6), .i, .zicsr, "rd,csr,uimm", op: "csr", endsBlock: true, extra: .funct3, imm: .csrAndRawWord, aliases: [
            alias("csrs", "csr,uimm", when: ["rd=0"]), alias("csrrs", "rd,csr,uimm")]),
        insn("csrrci", op(0x73).f3(7), .i, .zicsr, "rd,csr,uimm", op: "csr", endsBlock: true, extra: .funct3, imm: .csrAndRawWord, aliases: [
            alias("csrc", "csr,uimm", when: ["rd=0"]), alias("csrrc", "rd,csr,uimm")]),
    ]

    // MARK: - Compressed instructions (RVC), with the 32-bit instruction each expands to

    static let compressedRows: [InstructionSpec] = [
        // Quadrant 0
        // The all-zero halfword is defined to be illegal; objdump calls it unimp.
        insn("c.unimp", .exact16(0x0000), .ciw, .c, "", op: nil, aliases: [alias("unimp", "")]),
        compressed("c.addi4spn", cq(0, 0), .ciw, .c, "c.rd',sp,c.addi4spn", expandsTo: "addi c.rd',sp,c.addi4spn",
                   requires: ["c.addi4spn!=0"], aliases: [alias("add", "c.rd',sp,c.addi4spn")]),
        compressed("c.fld", cq(0, 1), .cl, .c, "c.frd',c.ld(c.rs1')", expandsTo: "fld c.frd',c.ld(c.rs1')", aliases: [
            alias("fld", "c.frd',c.ld(c.rs1')")]),
        compressed("c.lw", cq(0, 2), .cl, .c, "c.rd',c.lw(c.rs1')", expandsTo: "lw c.rd',c.lw(c.rs1')", aliases: [
            alias("lw", "c.rd',c.lw(c.rs1')")]),
        compressed("c.ld", cq(0, 3), .cl, .c, "c.rd',c.ld(c.rs1')", expandsTo: "ld c.rd',c.ld(c.rs1')", aliases: [
            alias("ld", "c.rd',c.ld(c.rs1')")]),
        compressed("c.fsd", cq(0, 5), .cs, .c, "c.frs2',c.ld(c.rs1')", expandsTo: "fsd c.frs2',c.ld(c.rs1')", aliases: [
            alias("fsd", "c.frs2',c.ld(c.rs1')")]),
        compressed("c.sw", cq(0, 6), .cs, .c, "c.rs2',c.lw(c.rs1')", expandsTo: "sw c.rs2',c.lw(c.rs1')", aliases: [
            alias("sw", "c.rs2',c.lw(c.rs1')")]),
        compressed("c.sd", cq(0, 7), .cs, .c, "c.rs2',c.ld(c.rs1')", expandsTo: "sd c.rs2',c.ld(c.rs1')", aliases: [
            alias("sd", "c.rs2',c.ld(c.rs1')")]),
        // Quadrant 1. Hints (rd = 0, shift by 0) keep a c. name in objdump.
        compressed("c.addi", cq(1, 0), .ci, .c, "c.rd,c.imm6", expandsTo: "addi c.rd,c.rd,c.imm6", aliases: [
            alias("nop", "", when: ["c.rd=0", "c.imm6=0"]), alias("c.nop", "c.imm6", when: ["c.rd=0"]),
            alias("add", "c.rd,c.rd,c.imm6")]),
        compressed("c.addiw", cq(1, 1), .ci, .c, "c.rd,c.imm6", expandsTo: "addiw c.rd,c.rd,c.imm6", requires: ["c.rd!=0"], aliases: [
            alias("sext.w", "c.rd,c.rd", when: ["c.imm6=0"]), alias("addw", "c.rd,c.rd,c.imm6")]),
        compressed("c.li", cq(1, 2), .ci, .c, "c.rd,c.imm6", expandsTo: "addi c.rd,zero,c.imm6", aliases: [
            alias("c.li", "zero,c.imm6", when: ["c.rd=0"]), alias("li", "c.rd,c.imm6")]),
        // objdump prints the reserved c.addi16sp with a zero immediate; the machine refuses it.
        compressed("c.addi16sp", cq(1, 3).crd(2), .ci, .c, "sp,c.addi16sp", expandsTo: "addi sp,sp,c.addi16sp",
                   machineRequires: ["c.addi16sp!=0"], aliases: [alias("add", "sp,sp,c.addi16sp")]),
        compressed("c.lui", cq(1, 3), .ci, .c, "c.rd,c.lui", expandsTo: "lui c.rd,c.lui", requires: ["c.lui!=0"], aliases: [
            alias("c.lui", "zero,c.lui", when: ["c.rd=0"]), alias("lui", "c.rd,c.lui")]),
        compressed("c.srli", cq(1, 4).f2hi(0), .cb, .c, "c.rs1',c.shamt", expandsTo: "srli c.rs1',c.rs1',c.shamt", aliases: [
            alias("c.srli64", "c.rs1'", when: ["c.shamt=0"]), alias("srl", "c.rs1',c.rs1',c.shamt")]),
        compressed("c.srai", cq(1, 4).f2hi(1), .cb, .c, "c.rs1',c.shamt", expandsTo: "srai c.rs1',c.rs1',c.shamt", aliases: [
            alias("c.srai64", "c.rs1'", when: ["c.shamt=0"]), alias("sra", "c.rs1',c.rs1',c.shamt")]),
        compressed("c.andi", cq(1, 4).f2hi(2), .cb, .c, "c.rs1',c.imm6", expandsTo: "andi c.rs1',c.rs1',c.imm6", aliases: [
            alias("and", "c.rs1',c.rs1',c.imm6")]),
        compressed("c.sub", cq(1, 4).f2hi(3).b12(0).f2lo(0), .ca, .c, "c.rs1',c.rs2'", expandsTo: "sub c.rs1',c.rs1',c.rs2'", aliases: [
            alias("sub", "c.rs1',c.rs1',c.rs2'")]),
        compressed("c.xor", cq(1, 4).f2hi(3).b12(0).f2lo(1), .ca, .c, "c.rs1',c.rs2'", expandsTo: "xor c.rs1',c.rs1',c.rs2'", aliases: [
            alias("xor", "c.rs1',c.rs1',c.rs2'")]),
        compressed("c.or", cq(1, 4).f2hi(3).b12(0).f2lo(2), .ca, .c, "c.rs1',c.rs2'", expandsTo: "or c.rs1',c.rs1',c.rs2'", aliases: [
            alias("or", "c.rs1',c.rs1',c.rs2'")]),
        compressed("c.and", cq(1, 4).f2hi(3).b12(0).f2lo(3), .ca, .c, "c.rs1',c.rs2'", expandsTo: "and c.rs1',c.rs1',c.rs2'", aliases: [
            alias("and", "c.rs1',c.rs1',c.rs2'")]),
        compressed("c.subw", cq(1, 4).f2hi(3).b12(1).f2lo(0), .ca, .c, "c.rs1',c.rs2'", expandsTo: "subw c.rs1',c.rs1',c.rs2'", aliases: [
            alias("subw", "c.rs1',c.rs1',c.rs2'")]),
        compressed("c.addw", cq(1, 4).f2hi(3).b12(1).f2lo(1), .ca, .c, "c.rs1',c.rs2'", expandsTo: "addw c.rs1',c.rs1',c.rs2'", aliases: [
            alias("addw", "c.rs1',c.rs1',c.rs2'")]),
        compressed("c.j", cq(1, 5), .cj, .c, "c.jump", expandsTo: "jal zero,c.jump", aliases: [alias("j", "c.jump")]),
        compressed("c.beqz", cq(1, 6), .cb, .c, "c.rs1',c.branch", expandsTo: "beq c.rs1',zero,c.branch", aliases: [
            alias("beqz", "c.rs1',c.branch")]),
        compressed("c.bnez", cq(1, 7), .cb, .c, "c.rs1',c.branch", expandsTo: "bne c.rs1',zero,c.branch", aliases: [
            alias("bnez", "c.rs1',c.branch")]),
        // Quadrant 2
        compressed("c.slli", cq(2, 0), .ci, .c, "c.rd,c.shamt", expandsTo: "slli c.rd,c.rd,c.shamt", aliases: [
            alias("c.slli64", "c.rd", when: ["c.shamt=0"]), alias("c.slli", "zero,c.shamt", when: ["c.rd=0"]),
            alias("sll", "c.rd,c.rd,c.shamt")]),
        compressed("c.fldsp", cq(2, 1), .ci, .c, "c.frd,c.ldsp(sp)", expandsTo: "fld c.frd,c.ldsp(sp)", aliases: [
            alias("fld", "c.frd,c.ldsp(sp)")]),
        compressed("c.lwsp", cq(2, 2), .ci, .c, "c.rd,c.lwsp(sp)", expandsTo: "lw c.rd,c.lwsp(sp)", requires: ["c.rd!=0"], aliases: [
            alias("lw", "c.rd,c.lwsp(sp)")]),
        compressed("c.ldsp", cq(2, 3), .ci, .c, "c.rd,c.ldsp(sp)", expandsTo: "ld c.rd,c.ldsp(sp)", requires: ["c.rd!=0"], aliases: [
            alias("ld", "c.rd,c.ldsp(sp)")]),
        compressed("c.jr", cq(2, 4).b12(0).crs2(0), .cr, .c, "c.rd", expandsTo: "jalr zero,0(c.rd)", requires: ["c.rd!=0"], aliases: [
            alias("ret", "", when: ["c.rd=1"]), alias("jr", "c.rd")]),
        compressed("c.mv", cq(2, 4).b12(0), .cr, .c, "c.rd,c.rs2", expandsTo: "add c.rd,zero,c.rs2", aliases: [
            alias("c.mv", "zero,c.rs2", when: ["c.rd=0"]), alias("mv", "c.rd,c.rs2")]),
        compressed("c.ebreak", .exact16(0x9002), .cr, .c, "", expandsTo: "ebreak", aliases: [alias("ebreak", "")]),
        compressed("c.jalr", cq(2, 4).b12(1).crs2(0), .cr, .c, "c.rd", expandsTo: "jalr ra,0(c.rd)", aliases: [alias("jalr", "c.rd")]),
        compressed("c.add", cq(2, 4).b12(1), .cr, .c, "c.rd,c.rs2", expandsTo: "add c.rd,c.rd,c.rs2", aliases: [
            alias("c.add", "zero,c.rs2", when: ["c.rd=0"]), alias("add", "c.rd,c.rd,c.rs2")]),
        compressed("c.fsdsp", cq(2, 5), .css, .c, "c.frs2,c.sdsp(sp)", expandsTo: "fsd c.frs2,c.sdsp(sp)", aliases: [
            alias("fsd", "c.frs2,c.sdsp(sp)")]),
        compressed("c.swsp", cq(2, 6), .css, .c, "c.rs2,c.swsp(sp)", expandsTo: "sw c.rs2,c.swsp(sp)", aliases: [
            alias("sw", "c.rs2,c.swsp(sp)")]),
        compressed("c.sdsp", cq(2, 7), .css, .c, "c.rs2,c.sdsp(sp)", expandsTo: "sd c.rs2,c.sdsp(sp)", aliases: [
            alias("sd", "c.rs2,c.sdsp(sp)")]),
    ]
}
