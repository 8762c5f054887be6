import Testing
@testable import RivetISA

/// Literal examples of what objdump 2.40 prints (each checked against objdump when written);
/// they document the less obvious rules for readers of `--trace` output.
@Suite("Disassembler examples")
struct DisassemblerExamplesTests {
    @Test("lengths")
    func lengths() {
        #expect(Disassembler.length(ofInstructionStartingWith: 0x1141) == 2)
        #expect(Disassembler.length(ofInstructionStartingWith: 0x0113) == 4)
        #expect(Disassembler.length(ofInstructionStartingWith: 0x0000) == 2)
    }

    @Test("aliases as binutils 2.40 picks them", arguments: [
        (UInt32(0xff01_0113), "add\tsp,sp,-16"),      // addi prints as add with an immediate
        (0x0000_0013, "nop"),
        (0x0050_0513, "li\ta0,5"),
        (0x0005_8513, "mv\ta0,a1"),
        (0x0035_9513, "sll\ta0,a1,0x3"),
        (0x0ff5_f513, "zext.b\ta0,a1"),
        (0x0005_851b, "sext.w\ta0,a1"),
        (0x0000_8067, "ret"),
        (0x3000_2573, "csrr\ta0,mstatus"),
        (0xc000_2573, "rdcycle\ta0"),
        (0xc000_1073, "unimp"),
        (0x0ff0_000f, "fence"),                       // not "fence iorw,iorw"
        (0x8330_000f, "fence.tso"),
        (0x0100_000f, "fence\tw,unknown"),
        (0xc005_1553, "fcvt.w.s\ta0,fa0,rtz"),
        (0x02c5_f553, "fadd.d\tfa0,fa1,fa2"),          // dynamic rounding is not printed
        (0x22b5_85d3, "fmv.d\tfa1,fa1"),
        (0x0e05_a52f, "amoswap.w.aqrl\ta0,zero,(a1)"),
        (0x2205_0073, ".4byte\t0x22050073"),           // hfence.vvma: unknown to objdump's default ISA
        (0x1141, "add\tsp,sp,-16"),                    // c.addi16sp
        (0x0015, "c.nop\t5"),                          // hint
        (0x0000, "unimp"),
        (0x8002, ".2byte\t0x8002"),
    ])
    func alias(word: UInt32, text: String) {
        #expect(Disassembler.disassemble(word, pc: 0x8000_0000) == text)
    }

    @Test("jump and branch targets are absolute")
    func targets() {
        #expect(Disassembler.disassemble(0x0100_00ef, pc: 0x8000_0000) == "jal\t0x80000010")
        #expect(Disassembler.disassemble(0x0100_056f, pc: 0x8000_0000) == "jal\ta0,0x80000010")
        #expect(Disassembler.disassemble(0xbff1, pc: 0x34) == "j\t0x10")
        #expect(Disassembler.disassemble(0xfe05_0ee3, pc: 0) == "beqz\ta0,0xfffffffffffffffc")
    }

    @Test("trace lines pad like objdump for 4- and 2-byte instructions")
    func traceLines() {
        #expect(Disassembler.traceLine(pc: 0x8000_0000, word: 0x0000_0297)
                == "    80000000:\t00000297          \tauipc\tt0,0x0")
        #expect(Disassembler.traceLine(pc: 0x8000_0004, word: 0x1141)
                == "    80000004:\t1141                \tadd\tsp,sp,-16")
        #expect(Disassembler.traceLine(pc: 0x30, word: 0x0000_8067) == "  30:\t00008067          \tret")
    }
}
