// Spells an instruction the way objdump 2.40 does, from the instruction table: the row, then the first
// alias that applies, then the row's own mnemonic and operands.

enum Spelling {
    /// The text for `word` (a 16-bit compressed instruction in its low half, or a 32-bit one), nil for an
    /// encoding objdump does not know.
    static func text(_ word: UInt32, pc: UInt64) -> String? {
        guard let (mnemonic, operands, w) = choose(word) else { return nil }
        return format(mnemonic, operands, w, pc)
    }

    /// The mnemonic objdump prints for `word` (with the aq/rl suffix of atomics), nil for an unknown encoding.
    static func mnemonic(_ word: UInt32) -> String? { choose(word)?.0 }

    /// The row, then the first alias that applies, else the row's own spelling if objdump accepts the encoding.
    static func choose(_ word: UInt32) -> (String, [Operand], UInt32)? {
        let compressed = word & 3 != 3
        let w = compressed ? word & 0xffff : word
        guard let row = InstructionTable.row(for: w), row.conditions.allSatisfy({ $0.holds(w) }) else { return nil }
        let suffix = row.ext == .a ? ["", ".rl", ".aq", ".aqrl"][Int((w >> 25) & 3)] : ""
        for alias in row.aliases where alias.applies(to: w) {
            return (alias.mnemonic + suffix, alias.operands, w)
        }
        guard w & row.objdumpMask == row.objdumpMatch else { return nil }
        return (row.mnemonic + suffix, row.operands, w)
    }

    static func format(_ mnemonic: String, _ operands: [Operand], _ w: UInt32, _ pc: UInt64) -> String {
        var parts: [String] = []
        for operand in operands {
            switch operand {
            case .field(let f):
                if let text = value(f, w, pc) { parts.append(text) }
            case .memory(let offset, let base):
                parts.append((offset.flatMap { value($0, w, pc) } ?? "") + "(" + (value(base, w, pc) ?? "") + ")")
            }
        }
        return parts.isEmpty ? mnemonic : mnemonic + "\t" + parts.joined(separator: ",")
    }

    static let roundingModes = ["rne", "rtz", "rdn", "rup", "rmm", "unknown", "unknown"]

    /// One operand's text; nil for an operand objdump leaves out (the dynamic rounding mode).
    static func value(_ f: Field, _ w: UInt32, _ pc: UInt64) -> String? {
        let v = f.value(w)
        switch f.kind {
        case .xRegister: return Reg.gpr[Int(v & 31)]
        case .fRegister: return Reg.fpr[Int(v & 31)]
        case .signed, .unsigned: return String(v)
        case .shiftAmount: return hex(UInt64(v))
        case .upper: return hex(UInt64(bitPattern: v >> 12) & 0xfffff)
        case .target: return hex(pc &+ UInt64(bitPattern: v))
        case .csr: return CSRTable.name(of: UInt16(v)) ?? hex(UInt64(v))
        case .roundingMode: return v == 7 ? nil : roundingModes[Int(v)]
        case .fenceSet:
            if v == 0 { return "unknown" }
            return zip("iorw", [8, 4, 2, 1]).filter { v & $0.1 != 0 }.map { String($0.0) }.joined()
        }
    }
}
