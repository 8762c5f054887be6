import Foundation
import Testing
@testable import RivetISA

/// Compares the disassembler with objdump on the same encodings, line by line.
@Suite("Disassembler agrees with objdump")
struct DisassemblerOracleTests {
    static let vma: UInt64 = 0x8000_0000

    /// Runs objdump on `words` placed at `vma` and returns mismatch descriptions.
    /// With `checkTraceLines`, the whole objdump line must also equal `traceLine`.
    static func mismatches(_ words: [UInt32], vma: UInt64 = vma, checkTraceLines: Bool = true) throws -> (count: Int, report: [String]) {
        let lines = try ObjdumpOracle.disassemble(words, vma: vma)
        var report: [String] = []
        var count = 0
        func note(_ s: String) {
            count += 1
            if report.count < 20 { report.append(s) }
        }
        if lines.count != words.count {
            note("objdump printed \(lines.count) instruction lines for \(words.count) instructions")
        }
        var pc = vma
        for (word, line) in zip(words, lines) {
            let length = Disassembler.length(ofInstructionStartingWith: UInt16(truncatingIfNeeded: word))
            let shown = length == 2 ? word & 0xffff : word
            if line.address != pc || UInt32(line.encoding, radix: 16) != shown {
                note("out of step at 0x\(String(pc, radix: 16)): objdump shows \(line.encoding) at 0x\(String(line.address, radix: 16))")
                break
            }
            let ours = Disassembler.disassemble(word, pc: pc)
            if ours != line.text {
                note("\(line.encoding) at 0x\(String(pc, radix: 16)): objdump \"\(line.text)\" rivet \"\(ours)\"")
            } else if checkTraceLines {
                let trace = Disassembler.traceLine(pc: pc, word: word)
                if trace != line.fullLine {
                    note("trace line for \(line.encoding): objdump \"\(line.fullLine)\" rivet \"\(trace)\"")
                }
            }
            pc &+= UInt64(length)
        }
        return (count, report)
    }

    static func check(_ words: [UInt32], vma: UInt64 = vma, checkTraceLines: Bool = true) throws {
        let result = try mismatches(words, vma: vma, checkTraceLines: checkTraceLines)
        #expect(result.count == 0, "\(result.count) of \(words.count) differ; first ones:\n\(result.report.joined(separator: "\n"))")
    }

    // MARK: Word generators

    /// Registers biased toward x0, ra and sp, which select aliases (mv, ret, beqz, ...).
    static func register(_ g: inout SeededGenerator) -> UInt32 {
        switch UInt32.random(in: 0..<10, using: &g) {
        case 0, 1: return 0
        case 2: return 1
        case 3: return 2
        default: return UInt32.random(in: 0..<32, using: &g)
        }
    }

    /// A 12-bit immediate biased toward the values that select aliases (0, 1, -1).
    static func immediate12(_ g: inout SeededGenerator) -> UInt32 {
        switch UInt32.random(in: 0..<8, using: &g) {
        case 0: return 0
        case 1: return 1
        case 2: return 0xfff
        default: return UInt32.random(in: 0..<4096, using: &g)
        }
    }

    /// The 24 major opcodes of 32-bit instructions (low bits 11, bits 4:2 not 111).
    static let majorOpcodes: [UInt32] = (0..<32).compactMap { op -> UInt32? in
        (op & 7) == 7 ? nil : (op << 2) | 3
    }

    /// Random fields around a fixed opcode; register and immediate fields are biased.
    static func randomize(_ base: UInt32, keepMask: UInt32, _ g: inout SeededGenerator) -> UInt32 {
        var w = UInt32.random(in: 0...UInt32.max, using: &g)
        if Bool.random(using: &g) { w = (w & ~(31 << 7)) | (register(&g) << 7) }
        if Bool.random(using: &g) { w = (w & ~(31 << 15)) | (register(&g) << 15) }
        if Bool.random(using: &g) { w = (w & ~(31 << 20)) | (register(&g) << 20) }
        if UInt32.random(in: 0..<4, using: &g) == 0 { w = (w & 0x000f_ffff) | (immediate12(&g) << 20) }
        if UInt32.random(in: 0..<6, using: &g) == 0 { w = (w & ~(31 << 20)) | (((w >> 15) & 31) << 20) } // rs2 = rs1
        return (w & ~keepMask) | (base & keepMask)
    }

    // MARK: Tests

    @Test("objdump is installed (the oracle must not be skipped silently)")
    func objdumpPresent() throws {
        _ = try ObjdumpOracle.executablePath()
    }

    @Test("every 16-bit compressed encoding")
    func allCompressed() throws {
        let words = (0..<UInt32(0x10000)).filter { $0 & 3 != 3 }
        try Self.check(words)
    }

    @Test("every major opcode, funct3 and funct7 combination")
    func opcodeFunctCombinations() throws {
        var g = SeededGenerator(seed: 0x5249_5645_5401)
        var words: [UInt32] = []
        for opcode in Self.majorOpcodes {
            for funct3 in UInt32(0)..<8 {
                for funct7 in UInt32(0)..<128 {
                    let base = opcode | (funct3 << 12) | (funct7 << 25)
                    for _ in 0..<3 {
                        words.append(Self.randomize(base, keepMask: 0xfe00_707f, &g))
                    }
                }
            }
        }
        try Self.check(words)
    }

    @Test("floating point: every funct7, rs2 and rounding-mode combination")
    func floatingPoint() throws {
        var g = SeededGenerator(seed: 0x5249_5645_5402)
        var words: [UInt32] = []
        for funct7 in UInt32(0)..<128 {
            for rs2 in UInt32(0)..<32 {
                for rm in UInt32(0)..<8 {
                    let base = 0x53 | (rm << 12) | (rs2 << 20) | (funct7 << 25)
                    var w = Self.randomize(base, keepMask: 0xfff0_707f, &g)
                    if Bool.random(using: &g) { w = (w & ~(31 << 15)) | (rs2 << 15) } // fmv/fneg/fabs
                    words.append(w)
                }
            }
        }
        for opcode: UInt32 in [0x07, 0x27, 0x43, 0x47, 0x4b, 0x4f] {
            for _ in 0..<2000 { words.append(Self.randomize(opcode, keepMask: 0x7f, &g)) }
        }
        try Self.check(words)
    }

    @Test("system: every CSR with every funct3, privileged and fence encodings")
    func systemAndFences() throws {
        var g = SeededGenerator(seed: 0x5249_5645_5403)
        var words: [UInt32] = []
        for csr in UInt32(0)..<4096 {
            for funct3 in UInt32(0)..<8 {
                let base = 0x73 | (funct3 << 12) | (csr << 20)
                words.append(Self.randomize(base, keepMask: 0xfff0_707f, &g))
                // rd and rs1/uimm being zero or not selects csrr/csrw/csrs/rdcycle/frflags/...
                for (rd, rs1) in [(0, 0), (0, 7), (5, 0), (5, 7)] as [(UInt32, UInt32)] {
                    words.append(base | (rd << 7) | (rs1 << 15))
                }
            }
        }
        for funct7 in UInt32(0)..<128 {
            for rs2 in UInt32(0)..<32 {
                var w = 0x73 | (rs2 << 20) | (funct7 << 25)
                if Bool.random(using: &g) { w |= Self.register(&g) << 15 }
                if UInt32.random(in: 0..<4, using: &g) == 0 { w |= Self.register(&g) << 7 }
                words.append(w)
            }
        }
        for funct12 in UInt32(0)..<4096 { // funct3 0: every funct12 with every rs1, rd zero
            for rs1 in UInt32(0)..<32 { words.append(0x73 | (rs1 << 15) | (funct12 << 20)) }
        }
        for top in UInt32(0)..<4096 { // fm, pred, succ; rd and rs1 usually zero
            for funct3 in UInt32(0)..<2 {
                var w = 0x0f | (funct3 << 12) | (top << 20)
                if UInt32.random(in: 0..<4, using: &g) == 0 { w |= UInt32.random(in: 0..<32, using: &g) << 15 }
                if UInt32.random(in: 0..<4, using: &g) == 0 { w |= UInt32.random(in: 0..<32, using: &g) << 7 }
                words.append(w)
            }
        }
        try Self.check(words)
    }

    @Test("random 32-bit encodings with valid opcodes, and branch targets that wrap below 0")
    func randomWords() throws {
        var g = SeededGenerator(seed: 0x5249_5645_5404)
        var words: [UInt32] = []
        for _ in 0..<200_000 {
            let opcode = Self.majorOpcodes[Int.random(in: 0..<Self.majorOpcodes.count, using: &g)]
            words.append(Self.randomize(opcode, keepMask: 0x7f, &g))
        }
        try Self.check(words)
        // At address 0 negative branch offsets wrap to the top of the 64-bit space.
        var low: [UInt32] = []
        for _ in 0..<4000 {
            let opcode: UInt32 = [0x63, 0x6f, 0x6f, 0x17][Int.random(in: 0..<4, using: &g)]
            low.append(Self.randomize(opcode, keepMask: 0x7f, &g))
        }
        for _ in 0..<4000 {
            let funct3 = UInt32.random(in: 5...7, using: &g) // c.j, c.beqz, c.bnez
            low.append((UInt32.random(in: 0..<0x10000, using: &g) & 0x1ffc) | 1 | (funct3 << 13))
        }
        try Self.check(low.map { $0 & 3 == 3 ? $0 : $0 & 0xffff }, vma: 0, checkTraceLines: false)
    }
}
