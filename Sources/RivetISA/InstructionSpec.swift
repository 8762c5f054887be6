// The shape of one row of the instruction table (InstructionTable.swift) and the small builders the
// table is written with.

public enum ISAExtension: String, Sendable {
    case i = "I", m = "M", a = "A", f = "F", d = "D", c = "C", zicsr = "Zicsr", zifencei = "Zifencei"
    case privileged = "privileged"
}

/// Encoding formats of the unprivileged spec (R4 for the fused multiply-adds) and of RVC.
public enum InstructionFormat: String, Sendable {
    case r = "R", r4 = "R4", i = "I", s = "S", b = "B", u = "U", j = "J"
    case cr = "CR", ci = "CI", css = "CSS", ciw = "CIW", cl = "CL", cs = "CS", ca = "CA", cb = "CB", cj = "CJ"
}

/// What goes into the micro-op's `extra` byte.
public enum MicroOpExtra: String, Sendable {
    case none
    /// The instruction length (4, or 2 for compressed), for control transfers and instructions that need the next pc.
    case length
    /// The rounding-mode field.
    case roundingMode
    /// funct3 (the CSR access kind).
    case funct3
    /// funct5 (the AMO kind).
    case funct5
}

/// What goes into the micro-op's `imm` besides the operands.
public enum MicroOpImmediate: String, Sendable {
    /// The immediate operand, if any.
    case operand
    /// The raw instruction (the tval of an illegal-instruction trap the executor may raise).
    case rawWord
    /// The CSR number in the low half, the raw instruction in the high half.
    case csrAndRawWord
}

/// An operand as written in assembler syntax: a field, or `offset(base)` / `(base)` memory operand.
public enum Operand: Equatable, Sendable {
    case field(Field)
    case memory(offset: Field?, base: Field)

    public var fields: [Field] {
        switch self {
        case .field(let f): return [f]
        case .memory(let offset, let base): return (offset.map { [$0] } ?? []) + [base]
        }
    }
}

/// A condition on an encoding beyond mask/match.
public enum EncodingCondition: Equatable, Sendable {
    case nonzero(Field)
    case equal(Field, Field)

    public func holds(_ word: UInt32) -> Bool {
        switch self {
        case .nonzero(let f): return f.value(word) != 0
        case .equal(let a, let b): return a.value(word) == b.value(word)
        }
    }
}

/// A spelling objdump uses for some encodings of an instruction (li, mv, ret, csrr, fmv.s ...).
public struct Alias: Sendable {
    public let mnemonic: String
    public let operands: [Operand]
    public let mask: UInt32
    public let match: UInt32
    public let conditions: [EncodingCondition]

    public func applies(to word: UInt32) -> Bool {
        word & mask == match && conditions.allSatisfy { $0.holds(word) }
    }
}

/// One instruction of the table.
public struct InstructionSpec: Sendable {
    public let mnemonic: String
    public let mask: UInt32
    public let match: UInt32
    public let format: InstructionFormat
    public let ext: ISAExtension
    /// Operands in assembler order.
    public let operands: [Operand]
    /// The micro-op (a case of RivetCPU's `Op`) the machine executes it as; nil when only the disassembler
    /// knows it (uret, dret, sfence.vm ...). Compressed instructions take their expansion's.
    public internal(set) var microOp: String?
    /// Compressed instructions: the 32-bit instruction they expand to, with compressed operand fields.
    public let expansion: (mnemonic: String, operands: [Operand])?
    /// The instruction ends a decoded block (control flow, traps, changes to translation or decoding).
    public internal(set) var endsBlock: Bool
    /// It takes a rounding mode; the reserved modes 5 and 6 make it illegal.
    public let usesRoundingMode: Bool
    public internal(set) var extra: MicroOpExtra
    public internal(set) var immediate: MicroOpImmediate
    /// Conditions every encoding of it meets (otherwise the encoding is reserved, for the machine and objdump).
    public let conditions: [EncodingCondition]
    /// Conditions only the machine checks: objdump still prints encodings that break them.
    public let machineConditions: [EncodingCondition]
    /// Extra bits objdump requires before it prints the instruction's own spelling (aliases are exempt).
    public let objdumpMask: UInt32
    public let objdumpMatch: UInt32
    /// objdump's spellings, tried in order before the instruction's own.
    public let aliases: [Alias]

    public var isCompressed: Bool { match & 3 != 3 }
    public var executes: Bool { microOp != nil }
    /// The assembler syntax: mnemonic and operands.
    public var syntax: String { mnemonic + (operands.isEmpty ? "" : " " + operands.map(Operand.text).joined(separator: ",")) }

    /// True when `word` is this instruction for the machine: mask/match and every condition, and a rounding mode
    /// that is not reserved.
    public func decodes(_ word: UInt32) -> Bool {
        guard word & mask == match, executes else { return false }
        guard conditions.allSatisfy({ $0.holds(word) }), machineConditions.allSatisfy({ $0.holds(word) }) else { return false }
        if usesRoundingMode { let rm = (word >> 12) & 7; if rm == 5 || rm == 6 { return false } }
        return true
    }
}

extension Operand {
    static func text(_ operand: Operand) -> String {
        switch operand {
        case .field(let f): return f.name
        case .memory(let offset, let base): return (offset?.name ?? "") + "(" + base.name + ")"
        }
    }

    /// Parses "rd", "immI(rs1)", "(rs1)", "0(c.rd)".
    static func parse(_ token: String) -> Operand {
        func field(_ name: Substring) -> Field {
            guard let f = Fields.named(String(name)) else { preconditionFailure("instruction table: unknown operand field \(name)") }
            return f
        }
        if let open = token.firstIndex(of: "("), token.last == ")" {
            let offset = token[..<open]
            let base = token[token.index(after: open)..<token.index(before: token.endIndex)]
            return .memory(offset: offset.isEmpty ? nil : field(offset), base: field(base))
        }
        return .field(field(Substring(token)))
    }

    static func parseList(_ text: String) -> [Operand] {
        text.isEmpty ? [] : text.split(separator: ",").map { parse(String($0)) }
    }
}

// MARK: - Builders used by the table

/// Fixed bits of an encoding, built field by field: `op(0x33).f3(0).f7(0x20)`.
struct Encoding {
    var mask: UInt32 = 0
    var match: UInt32 = 0
    func bits(_ hi: Int, _ lo: Int, _ value: UInt32) -> Encoding {
        let m = UInt32(truncatingIfNeeded: (UInt64(1) << UInt64(hi - lo + 1)) - 1) << UInt32(lo)
        return Encoding(mask: mask | m, match: (match & ~m) | ((value << UInt32(lo)) & m))
    }
    func f3(_ v: UInt32) -> Encoding { bits(14, 12, v) }
    func f7(_ v: UInt32) -> Encoding { bits(31, 25, v) }
    func f6(_ v: UInt32) -> Encoding { bits(31, 26, v) }
    func f5(_ v: UInt32) -> Encoding { bits(31, 27, v) }
    func fmt(_ v: UInt32) -> Encoding { bits(26, 25, v) }
    func rs2(_ v: UInt32) -> Encoding { bits(24, 20, v) }
    func rs1(_ v: UInt32) -> Encoding { bits(19, 15, v) }
    func rd(_ v: UInt32) -> Encoding { bits(11, 7, v) }
    func f12(_ v: UInt32) -> Encoding { bits(31, 20, v) }
    /// Compressed: bit 12, bits 11:10 (funct2 of CB/CA), bits 6:5 (funct2 of CA), bits 6:2 (rs2).
    func b12(_ v: UInt32) -> Encoding { bits(12, 12, v) }
    func f2hi(_ v: UInt32) -> Encoding { bits(11, 10, v) }
    func f2lo(_ v: UInt32) -> Encoding { bits(6, 5, v) }
    func crs2(_ v: UInt32) -> Encoding { bits(6, 2, v) }
    func crd(_ v: UInt32) -> Encoding { bits(11, 7, v) }
    static func exact(_ word: UInt32) -> Encoding { Encoding(mask: 0xffff_ffff, match: word) }
    static func exact16(_ half: UInt32) -> Encoding { Encoding(mask: 0xffff, match: half) }
}

func op(_ opcode: UInt32) -> Encoding { Encoding().bits(6, 0, opcode) }
/// A compressed quadrant (bits 1:0) and funct3 (bits 15:13).
func cq(_ quadrant: UInt32, _ funct3: UInt32) -> Encoding { Encoding().bits(1, 0, quadrant).bits(15, 13, funct3) }

/// Parses alias conditions: "rs1=0", "immI=-1", "csr=0xc00" become mask/match bits; "rs1=rs2" and "c.rd!=0"
/// become conditions.
func alias(_ mnemonic: String, _ operands: String, when: [String] = []) -> Alias {
    let (mask, match, conditions) = parseConditions(when)
    return Alias(mnemonic: mnemonic, operands: Operand.parseList(operands), mask: mask, match: match, conditions: conditions)
}

/// An alias for exactly one encoding.
func alias(_ mnemonic: String, _ operands: String, exactly word: UInt32) -> Alias {
    Alias(mnemonic: mnemonic, operands: Operand.parseList(operands), mask: 0xffff_ffff, match: word, conditions: [])
}

func parseConditions(_ list: [String]) -> (UInt32, UInt32, [EncodingCondition]) {
    var mask: UInt32 = 0, match: UInt32 = 0
    var conditions: [EncodingCondition] = []
    func field(_ name: Substring) -> Field {
        guard let f = Fields.named(String(name)) else { preconditionFailure("instruction table: unknown field \(name)") }
        return f
    }
    for c in list {
        if c.hasSuffix("!=0") {  // only "!= 0" is needed
            conditions.append(.nonzero(field(c.dropLast(3))))
            continue
        }
        let parts = c.split(separator: "=")
        precondition(parts.count == 2, "instruction table: bad condition \(c)")
        let f = field(parts[0])
        let text = String(parts[1])
        let value: Int64? = text.hasPrefix("0x") ? Int64(text.dropFirst(2), radix: 16) : Int64(text)
        if let value {
            mask |= f.wordMask
            match |= f.encode(value)
        } else {
            conditions.append(.equal(f, field(parts[1])))
        }
    }
    return (mask, match, conditions)
}

/// A 32-bit instruction.
func insn(_ mnemonic: String, _ encoding: Encoding, _ format: InstructionFormat, _ ext: ISAExtension, _ operands: String,
          op microOp: String?, endsBlock: Bool = false, roundingMode: Bool = false, extra: MicroOpExtra? = nil,
          imm: MicroOpImmediate = .operand, requires: [String] = [], machineRequires: [String] = [],
          objdumpRequires: Encoding = Encoding(), aliases: [Alias] = []) -> InstructionSpec {
    let (_, _, conditions) = parseConditions(requires)
    let (_, _, machineConditions) = parseConditions(machineRequires)
    return InstructionSpec(
        mnemonic: mnemonic, mask: encoding.mask, match: encoding.match, format: format, ext: ext,
        operands: Operand.parseList(operands), microOp: microOp, expansion: nil, endsBlock: endsBlock,
        usesRoundingMode: roundingMode, extra: extra ?? (roundingMode ? .roundingMode : .none), immediate: imm,
        conditions: conditions, machineConditions: machineConditions,
        objdumpMask: objdumpRequires.mask, objdumpMatch: objdumpRequires.match, aliases: aliases)
}

/// A compressed instruction: its own operands, the 32-bit instruction it expands to, and objdump's spellings
/// (objdump prints compressed instructions in their expanded spelling).
func compressed(_ mnemonic: String, _ encoding: Encoding, _ format: InstructionFormat, _ ext: ISAExtension, _ operands: String,
                expandsTo expansion: String, requires: [String] = [], machineRequires: [String] = [],
                aliases: [Alias]) -> InstructionSpec {
    let (_, _, conditions) = parseConditions(requires)
    let (_, _, machineConditions) = parseConditions(machineRequires)
    let space = expansion.firstIndex(of: " ") ?? expansion.endIndex
    let target = String(expansion[..<space])
    let targetOperands = space == expansion.endIndex ? [] : Operand.parseList(String(expansion[expansion.index(after: space)...]))
    return InstructionSpec(
        mnemonic: mnemonic, mask: encoding.mask, match: encoding.match, format: format, ext: ext,
        operands: Operand.parseList(operands), microOp: nil, expansion: (target, targetOperands), endsBlock: false,
        usesRoundingMode: false, extra: .none, immediate: .operand, conditions: conditions, machineConditions: machineConditions,
        objdumpMask: 0, objdumpMatch: 0, aliases: aliases)
}
