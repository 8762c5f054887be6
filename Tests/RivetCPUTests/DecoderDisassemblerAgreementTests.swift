import Testing
@testable import RivetCPU
@testable import RivetISA

/// The decoder (generated Swift) and the disassembler (reading the table at run time) are two independent
/// paths from the instruction table; they must agree on every encoding of a large sample.
@Suite struct DecoderDisassemblerAgreementTests {
    static func decode(_ word: UInt32) -> MicroOp {
        word & 3 == 3 ? Decoder.decode32(word) : Decoder.decode16(UInt16(truncatingIfNeeded: word))
    }

    static func mnemonic(_ text: String) -> String {
        var m = String(text.prefix { $0 != "\t" })
        for suffix in [".aqrl", ".aq", ".rl"] where m.hasPrefix("lr.") || m.hasPrefix("sc.") || m.hasPrefix("amo") {
            if m.hasSuffix(suffix) { m.removeLast(suffix.count); break }
        }
        return m
    }

    static func isUnknown(_ text: String) -> Bool { text.hasPrefix(".4byte") || text.hasPrefix(".2byte") }

    /// Every spelling (own mnemonic and objdump aliases) of the rows the machine runs as each micro-op.
    static let spellings: [String: Set<String>] = {
        var map: [String: Set<String>] = [:]
        for row in InstructionTable.all {
            guard let op = row.microOp else { continue }
            map[op, default: []].insert(row.mnemonic)
            for a in row.aliases { map[op, default: []].insert(a.mnemonic) }
        }
        return map
    }()

    /// Encodings where the two are meant to differ, stated from the specifications rather than read from the
    /// table: objdump knows some encodings the machine refuses, and the machine accepts some objdump does not spell.
    static func knownDifference(_ w: UInt32) -> Bool {
        if w & 3 != 3 {
            let h = w & 0xffff
            if h == 0 { return true }  // unimp: defined illegal
            if h & 0xef83 == 0x6101 && h & 0x107c == 0 { return true }  // c.addi16sp with immediate 0: reserved
            return false
        }
        let opcode = w & 0x7f, f3 = (w >> 12) & 7
        switch w {
        case 0x0020_0073, 0x2020_0073, 0x7b20_0073: return true  // uret, hret, dret: not on this machine
        default: break
        }
        if w & 0xfff0_7fff == 0x1040_0073 { return true }  // sfence.vm (privileged spec 1.9)
        if opcode == 0x0f && f3 <= 1 { return true }  // fence/fence.i: reserved fields are ignored by harts
        let fp = opcode == 0x53 || (opcode & 0x73 == 0x43)
        if fp && (f3 == 5 || f3 == 6) { return true }  // reserved rounding modes: objdump prints "unknown"
        if opcode == 0x53 && f3 != 0 && (w >> 20 == 0x420 || w >> 20 == 0xd20 || w >> 20 == 0xd21) { return true }  // exact conversions
        return false
    }

    static func check(_ w: UInt32, _ failures: inout [String], fullText: Bool = true) {
        let op = decode(w)
        // The full text for the smaller samples; the mnemonic alone (same row and alias choice) for the 1M words.
        let text = fullText ? Disassembler.disassemble(w, pc: 0x8000_0000) : Disassembler.mnemonic(w) ?? ".4byte"
        let illegal = op.op == .illegal
        if illegal != isUnknown(text) {
            if !knownDifference(w), failures.count < 30 {
                failures.append("\(String(w, radix: 16)): decoder \(op.op), disassembler \(text)")
            }
            return
        }
        guard !illegal else { return }
        let name = String(describing: op.op)
        if !(spellings[name] ?? []).contains(mnemonic(text)), failures.count < 30 {
            failures.append("\(String(w, radix: 16)): decoder \(name), disassembler \(text)")
        }
    }

    @Test("every 16-bit encoding")
    func allCompressed() {
        var failures: [String] = []
        for h in UInt32(0)..<0x10000 where h & 3 != 3 { Self.check(h, &failures) }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test("every table row's match with random operand bits")
    func everyRow() {
        var g = SeededGenerator(seed: 0x5249_5645_5417)
        var failures: [String] = []
        for row in InstructionTable.all {
            let width: UInt32 = row.isCompressed ? 0xffff : 0xffff_ffff
            for _ in 0..<200 {
                let w = (row.match | (UInt32.random(in: 0...UInt32.max, using: &g) & ~row.mask)) & width
                Self.check(w, &failures)
                #expect(Disassembler.mnemonic(0x0000_8067) == "ret" && Disassembler.mnemonic(0xffff_ffff) == nil)
        // The row decides (or a more specific row whose mask also fits).
                let decoded = Self.decode(w)
                if row.decodes(w), InstructionTable.row(for: w)?.mnemonic == row.mnemonic {
                    #expect(String(describing: decoded.op) == row.microOp!, "\(row.mnemonic) \(String(w, radix: 16)) decoded as \(decoded.op)")
                    #expect(decoded.op.endsBlock == row.endsBlock, "\(row.mnemonic): ends-block flag")
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test("1M random 32-bit words")
    func randomWords() {
        var g = SeededGenerator(seed: 0x5249_5645_5418)
        var failures: [String] = []
        for _ in 0..<1_000_000 { Self.check(UInt32.random(in: 0...UInt32.max, using: &g) | 3, &failures, fullText: false) }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }
}

/// splitmix64: the same sequence on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
