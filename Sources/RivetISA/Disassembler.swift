// Objdump-compatible disassembler for RV64GC (+ Zicsr, Zifencei, privileged instructions), driven by the
// instruction table (InstructionTable.swift: encodings, operand fields, objdump's aliases).
//
// The goal is byte-for-byte agreement with Debian's `riscv64-linux-gnu-objdump -d` (binutils 2.40,
// default options): the same aliases (li, mv, ret, j, beqz, csrr, fmv.d, ...), the same choice of
// alias for immediate forms (2.40 prints `addi a0,a1,5` as `add a0,a1,5`), compressed instructions
// in their expanded spelling, `.2byte`/`.4byte` for encodings it does not know. The rules were
// determined by comparing against objdump on exhaustive and random encodings (see RivetISATests).
//
// Not the hot path: this runs for `--trace` and tests only, so it builds Strings freely.

public enum Disassembler {
    /// Length in bytes (2 or 4) of the instruction whose low 16 bits are `low16`.
    /// Encodings of 48 bits and longer do not exist in RV64GC; they report 4 and disassemble as `.4byte`.
    public static func length(ofInstructionStartingWith low16: UInt16) -> Int {
        (low16 & 0b11) == 0b11 ? 4 : 2
    }

    /// The text objdump -d prints for this instruction: mnemonic, a tab, operands.
    /// Branch and jump targets are absolute addresses computed from `pc`, without a `<symbol>` suffix.
    /// `word` holds the instruction; for 2-byte instructions only the low 16 bits matter.
    public static func disassemble(_ word: UInt32, pc: UInt64) -> String {
        if length(ofInstructionStartingWith: UInt16(truncatingIfNeeded: word)) == 2 {
            let half = UInt16(truncatingIfNeeded: word)
            return Spelling.text(UInt32(half), pc: pc) ?? ".2byte\t" + hex(UInt64(half))
        }
        return Spelling.text(word, pc: pc) ?? ".4byte\t" + hex(UInt64(word))
    }

    /// Just the mnemonic `disassemble` would print (nil where it prints `.2byte`/`.4byte`); cheaper, for tests
    /// that compare the disassembler with the decoder on millions of words.
    public static func mnemonic(_ word: UInt32) -> String? {
        Spelling.mnemonic(length(ofInstructionStartingWith: UInt16(truncatingIfNeeded: word)) == 2 ? word & 0xffff : word)
    }

    /// One line as `objdump -d` prints an instruction, e.g.
    /// `    80000000:\t00000297          \tauipc\tt0,0x0`.
    /// The address column is padded the way objdump pads it for a section ending near `pc`.
    public static func traceLine(pc: UInt64, word: UInt32) -> String {
        let isCompressed = length(ofInstructionStartingWith: UInt16(truncatingIfNeeded: word)) == 2
        let encoding: String
        if isCompressed {
            encoding = hexDigits(UInt64(word & 0xffff), width: 4) + String(repeating: " ", count: 16)
        } else {
            encoding = hexDigits(UInt64(word), width: 8) + String(repeating: " ", count: 10)
        }
        return addressColumn(pc) + ":\t" + encoding + "\t" + disassemble(word, pc: pc)
    }

    /// objdump prints the address right-aligned, dropping leading zero digits in groups of four
    /// while keeping at least one blank column (e.g. `   0`, `    80000000`).
    static func addressColumn(_ address: UInt64) -> String {
        let zeroDigits = address == 0 ? 16 : address.leadingZeroBitCount / 4
        let skipped = zeroDigits > 0 ? (zeroDigits - 1) & ~3 : 0
        let width = 16 - skipped
        let digits = String(address, radix: 16)
        return String(repeating: " ", count: max(0, width - digits.count)) + digits
    }
}

// MARK: - Shared formatting helpers

@inline(__always) func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

func hexDigits(_ value: UInt64, width: Int) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

enum Reg {
    static let gpr: [String] = [
        "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2",
        "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
        "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7",
        "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
    ]
    static let fpr: [String] = [
        "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7",
        "fs0", "fs1", "fa0", "fa1", "fa2", "fa3", "fa4", "fa5",
        "fa6", "fa7", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7",
        "fs8", "fs9", "fs10", "fs11", "ft8", "ft9", "ft10", "ft11",
    ]
    @inline(__always) static func x(_ index: UInt32) -> String { gpr[Int(index & 31)] }
    @inline(__always) static func f(_ index: UInt32) -> String { fpr[Int(index & 31)] }
}
