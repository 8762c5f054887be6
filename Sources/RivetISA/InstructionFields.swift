// Operand fields of RV64GC encodings: where each operand's bits sit in the instruction word and how
// objdump prints it. The instruction table names these; the disassembler reads operands through them and
// the decoder generator turns the same bit layouts into Swift expressions, so a layout is written once.

/// How an operand prints (objdump 2.40) and which kind of value it is.
public enum OperandKind: Equatable, Sendable {
    /// Integer register (x0 as a destination is the executor's scratch slot).
    case xRegister
    /// Floating-point register.
    case fRegister
    /// Signed decimal immediate.
    case signed
    /// Unsigned decimal immediate (CSR uimm).
    case unsigned
    /// Shift amount, printed in hex.
    case shiftAmount
    /// Upper immediate (lui, auipc, c.lui): the value is already shifted left by 12; prints bits 31:12 in hex.
    case upper
    /// pc-relative target (branches, jal), printed as an absolute address.
    case target
    /// CSR number, printed by name.
    case csr
    /// Rounding mode: omitted when dynamic (7), "unknown" for the reserved 5 and 6.
    case roundingMode
    /// Fence predecessor or successor set ("iorw").
    case fenceSet
}

/// One operand field: a bit layout in the instruction word plus how it prints.
public struct Field: Equatable, Sendable {
    /// Bits `hi...lo` of the word land at bit `at` of the value.
    public struct Piece: Equatable, Sendable {
        public let hi: Int, lo: Int, at: Int
    }
    public let name: String
    public let pieces: [Piece]
    /// Width of the value when it is sign-extended; 0 for unsigned fields.
    public let signedWidth: Int
    /// Added to the value (8 for the 3-bit register fields of compressed instructions, or a fixed register).
    public let offset: Int
    public let kind: OperandKind

    init(_ name: String, _ kind: OperandKind, _ pieces: [(Int, Int, Int)], signedWidth: Int = 0, offset: Int = 0) {
        self.name = name
        self.kind = kind
        self.pieces = pieces.map { Piece(hi: $0.0, lo: $0.1, at: $0.2) }
        self.signedWidth = signedWidth
        self.offset = offset
    }

    /// A field that is always the same register (c.j writes x0, c.jalr writes ra, sp-relative forms use sp).
    static func fixed(_ name: String, _ register: Int) -> Field { Field(name, .xRegister, [], offset: register) }

    public var isRegister: Bool { kind == .xRegister || kind == .fRegister }
    public var isConstant: Bool { pieces.isEmpty }

    /// The field's value in `word`.
    @inline(__always)
    public func value(_ word: UInt32) -> Int64 {
        var v: UInt32 = 0
        for p in pieces {
            let width = p.hi - p.lo + 1
            v |= ((word >> UInt32(p.lo)) & UInt32((1 << width) - 1)) << UInt32(p.at)
        }
        if signedWidth > 0 {
            let shift = 64 - signedWidth
            return (Int64(v) << shift) >> shift + Int64(offset)
        }
        return Int64(v) + Int64(offset)
    }

    /// The word bits that hold `value` in this field (the inverse of `value(_:)` for the field's bits).
    public func encode(_ value: Int64) -> UInt32 {
        let v = UInt64(bitPattern: value - Int64(offset))
        var word: UInt32 = 0
        for p in pieces {
            let width = p.hi - p.lo + 1
            word |= UInt32((v >> UInt64(p.at)) & UInt64((1 << width) - 1)) << UInt32(p.lo)
        }
        return word
    }

    /// The bits of the word this field reads.
    public var wordMask: UInt32 {
        pieces.reduce(0) { m, p in m | (UInt32((1 << (p.hi - p.lo + 1)) - 1) << UInt32(p.lo)) }
    }
}

/// Every operand field, by the name the table's syntax strings use.
public enum Fields {
    // 32-bit register fields
    public static let rd = Field("rd", .xRegister, [(11, 7, 0)])
    public static let rs1 = Field("rs1", .xRegister, [(19, 15, 0)])
    public static let rs2 = Field("rs2", .xRegister, [(24, 20, 0)])
    public static let frd = Field("frd", .fRegister, [(11, 7, 0)])
    public static let frs1 = Field("frs1", .fRegister, [(19, 15, 0)])
    public static let frs2 = Field("frs2", .fRegister, [(24, 20, 0)])
    public static let frs3 = Field("frs3", .fRegister, [(31, 27, 0)])
    // 32-bit immediates
    public static let immI = Field("immI", .signed, [(31, 20, 0)], signedWidth: 12)
    public static let immS = Field("immS", .signed, [(31, 25, 5), (11, 7, 0)], signedWidth: 12)
    public static let immU = Field("immU", .upper, [(31, 12, 12)], signedWidth: 32)
    public static let branch = Field("branch", .target, [(31, 31, 12), (7, 7, 11), (30, 25, 5), (11, 8, 1)], signedWidth: 13)
    public static let jump = Field("jump", .target, [(31, 31, 20), (19, 12, 12), (20, 20, 11), (30, 21, 1)], signedWidth: 21)
    public static let shamt = Field("shamt", .shiftAmount, [(25, 20, 0)])
    public static let shamtw = Field("shamtw", .shiftAmount, [(24, 20, 0)])
    public static let csr = Field("csr", .csr, [(31, 20, 0)])
    public static let uimm = Field("uimm", .unsigned, [(19, 15, 0)])
    public static let rm = Field("rm", .roundingMode, [(14, 12, 0)])
    public static let pred = Field("pred", .fenceSet, [(27, 24, 0)])
    public static let succ = Field("succ", .fenceSet, [(23, 20, 0)])
    // Compressed register fields: full 5-bit ones and the 3-bit x8..x15 ones (primed)
    public static let cRd = Field("c.rd", .xRegister, [(11, 7, 0)])
    public static let cRs2 = Field("c.rs2", .xRegister, [(6, 2, 0)])
    public static let cFrd = Field("c.frd", .fRegister, [(11, 7, 0)])
    public static let cFrs2 = Field("c.frs2", .fRegister, [(6, 2, 0)])
    public static let cRdP = Field("c.rd'", .xRegister, [(4, 2, 0)], offset: 8)
    public static let cRs1P = Field("c.rs1'", .xRegister, [(9, 7, 0)], offset: 8)
    public static let cFrdP = Field("c.frd'", .fRegister, [(4, 2, 0)], offset: 8)
    public static let cRs2P = Field("c.rs2'", .xRegister, [(4, 2, 0)], offset: 8)
    public static let cFrs2P = Field("c.frs2'", .fRegister, [(4, 2, 0)], offset: 8)
    // Fixed registers
    public static let zero = Field.fixed("zero", 0)
    public static let ra = Field.fixed("ra", 1)
    public static let sp = Field.fixed("sp", 2)
    /// The constant 0 (c.jr and c.jalr expand to a jalr with offset 0).
    public static let zeroImmediate = Field("0", .signed, [])
    // Compressed immediates
    public static let cImm6 = Field("c.imm6", .signed, [(12, 12, 5), (6, 2, 0)], signedWidth: 6)
    public static let cShamt = Field("c.shamt", .shiftAmount, [(12, 12, 5), (6, 2, 0)])
    public static let cLui = Field("c.lui", .upper, [(12, 12, 17), (6, 2, 12)], signedWidth: 18)
    public static let cAddi4spn = Field("c.addi4spn", .unsigned, [(10, 7, 6), (12, 11, 4), (5, 5, 3), (6, 6, 2)])
    public static let cAddi16sp = Field("c.addi16sp", .signed, [(12, 12, 9), (4, 3, 7), (5, 5, 6), (2, 2, 5), (6, 6, 4)], signedWidth: 10)
    public static let cLw = Field("c.lw", .unsigned, [(5, 5, 6), (12, 10, 3), (6, 6, 2)])
    public static let cLd = Field("c.ld", .unsigned, [(6, 5, 6), (12, 10, 3)])
    public static let cLwsp = Field("c.lwsp", .unsigned, [(3, 2, 6), (12, 12, 5), (6, 4, 2)])
    public static let cLdsp = Field("c.ldsp", .unsigned, [(4, 2, 6), (12, 12, 5), (6, 5, 3)])
    public static let cSwsp = Field("c.swsp", .unsigned, [(8, 7, 6), (12, 9, 2)])
    public static let cSdsp = Field("c.sdsp", .unsigned, [(9, 7, 6), (12, 10, 3)])
    public static let cJump = Field("c.jump", .target, [(12, 12, 11), (8, 8, 10), (10, 9, 8), (6, 6, 7), (7, 7, 6), (2, 2, 5),
                                                        (11, 11, 4), (5, 3, 1)], signedWidth: 12)
    public static let cBranch = Field("c.branch", .target, [(12, 12, 8), (6, 5, 6), (2, 2, 5), (11, 10, 3), (4, 3, 1)], signedWidth: 9)

    public static let all: [Field] = [
        rd, rs1, rs2, frd, frs1, frs2, frs3, immI, immS, immU, branch, jump, shamt, shamtw, csr, uimm, rm, pred, succ,
        cRd, cRs2, cFrd, cFrs2, cRdP, cRs1P, cFrdP, cRs2P, cFrs2P, zero, ra, sp, zeroImmediate,
        cImm6, cShamt, cLui, cAddi4spn, cAddi16sp, cLw, cLd, cLwsp, cLdsp, cSwsp, cSdsp, cJump, cBranch,
    ]
    static let byName: [String: Field] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    public static func named(_ name: String) -> Field? { byName[name] }
}
