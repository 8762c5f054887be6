import Foundation
import Testing
@testable import RivetISA

/// objdump -d on an ELF object built from assembly source (the way developers read guest code)
/// agrees with the disassembler and with `traceLine`, once objdump's `<symbol>` suffixes are
/// turned back into plain addresses.
@Suite("Disassembler agrees with objdump -d on an ELF object")
struct DisassemblerELFTests {
    static let source = """
        .text
        .globl _start
    _start:
        auipc t0, 0
        addi sp, sp, -16
        sd ra, 8(sp)
        li a0, 5
        li a1, -2048
        lui a2, 0x12345
        mv a3, a2
        addiw a4, a3, 7
        sext.w a5, a4
        slli a6, a5, 33
        srai a7, a6, 3
        srliw s2, a7, 4
        andi s3, s2, 255
        not s4, s3
        neg s5, s4
        negw s6, s5
        seqz s7, s6
        snez s8, s7
        sltz s9, s8
        sgtz s10, s9
        mul s11, s10, s9
        divuw t3, t4, t5
        remu t6, t3, t4
    loop:
        beqz a0, done
        bnez a0, loop
        blt a0, a1, loop
        bge a1, a0, done
        bgtz a2, loop
        blez a3, done
        bltu a4, a5, loop
        bgeu a4, a5, done
        jal ra, loop
        j done
        jalr t0
        jr t1
        jalr a0, 12(a1)
    done:
        lr.d.aqrl a0, (a1)
        sc.w.rl a2, a3, (a4)
        amoswap.d.aq a5, a6, (a7)
        amomaxu.w s2, s3, (s4)
        fence
        fence.tso
        fence r, rw
        fence.i
        csrr t0, mstatus
        csrw mtvec, t1
        csrs mie, t2
        csrc mip, t3
        csrrw a0, satp, a1
        csrwi sscratch, 5
        csrrsi a0, 0x7c0, 3
        rdcycle a0
        rdtime a1
        rdinstret a2
        frflags a3
        fsrm a4, a5
        fscsr a6
        flw fa0, 4(sp)
        fld fa1, 8(sp)
        fsw fa2, 12(sp)
        fsd fa3, 16(sp)
        fadd.s fa0, fa1, fa2
        fsub.d fa0, fa1, fa2, rtz
        fmadd.d fa0, fa1, fa2, fa3
        fnmsub.s ft0, ft1, ft2, ft3, rne
        fsqrt.d fa4, fa5
        fmv.d fa6, fa7
        fneg.s fs0, fs1
        fabs.d fs2, fs3
        fsgnjx.s fs4, fs5, fs6
        fmin.d ft4, ft5, ft6
        feq.d a0, fa0, fa1
        flt.s a1, fa2, fa3
        fclass.d a2, fa4
        fcvt.w.s a0, fa0, rtz
        fcvt.l.d a1, fa1
        fcvt.s.d fa0, fa1
        fcvt.d.s fa2, fa3
        fcvt.d.w fa4, a4
        fcvt.s.lu fa5, a5, rup
        fmv.x.d a6, fa6
        fmv.w.x fa7, a7
        ecall
        ebreak
        mret
        sret
        wfi
        sfence.vma
        sfence.vma a0
        sfence.vma a0, a1
        c.nop
        c.addi a0, 3
        c.addi16sp sp, 32
        c.addi4spn a1, sp, 16
        c.lui a4, 0x1f
        c.li a5, -7
        c.mv a0, a1
        c.add a2, a3
        c.sub s0, s1
        c.and a4, a5
        c.srai a3, 7
        c.slli t0, 12
        c.lwsp a0, 12(sp)
        c.sdsp ra, 24(sp)
        c.fldsp fa0, 16(sp)
        c.ld a2, 8(a3)
        c.sw a4, 4(a5)
        c.beqz s0, done
        c.j loop
        c.jr ra
        c.jalr a0
        c.ebreak
        unimp
        c.unimp
        ld ra, 8(sp)
        addi sp, sp, 16
        ret
    """

    static func tool(_ name: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/" + name)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ObjdumpOracle.Failure(description: "\(name) failed: \(String(decoding: message, as: UTF8.self))")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Rewrites objdump's symbolic targets ("10 <loop>") into the plain form ("0x10").
    static func withoutSymbols(_ line: String) -> String {
        guard line.hasSuffix(">"), let open = line.range(of: " <", options: .backwards) else { return line }
        let head = line[..<open.lowerBound]
        guard let start = head.lastIndex(where: { $0 == "," || $0 == "\t" }) else { return line }
        let address = head[head.index(after: start)...]
        return String(head[...start]) + "0x" + address
    }

    @Test("an assembled object disassembles identically")
    func assembledObject() throws {
        _ = try ObjdumpOracle.executablePath()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rivet-isa-elf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let sourceFile = dir.appendingPathComponent("sample.S"), object = dir.appendingPathComponent("sample.o")
        try Self.source.write(to: sourceFile, atomically: true, encoding: .utf8)
        _ = try Self.tool("riscv64-linux-gnu-gcc", ["-c", "-march=rv64gc", "-mabi=lp64d", sourceFile.path, "-o", object.path])
        let lines = ObjdumpOracle.parse(try Self.tool("riscv64-linux-gnu-objdump", ["-d", object.path]))
        #expect(lines.count > 100)
        var problems: [String] = []
        for line in lines {
            guard let word = UInt32(line.encoding, radix: 16) else {
                problems.append("unparsed encoding \(line.encoding)")
                continue
            }
            let expected = Self.withoutSymbols(line.text)
            let ours = Disassembler.disassemble(word, pc: line.address)
            if ours != expected { problems.append("\(line.encoding): objdump \"\(expected)\" rivet \"\(ours)\"") }
            let trace = Disassembler.traceLine(pc: line.address, word: word)
            if trace != Self.withoutSymbols(line.fullLine) {
                problems.append("trace: objdump \"\(line.fullLine)\" rivet \"\(trace)\"")
            }
        }
        #expect(problems.isEmpty, "\(problems.count) differences:\n\(problems.prefix(20).joined(separator: "\n"))")
    }
}
