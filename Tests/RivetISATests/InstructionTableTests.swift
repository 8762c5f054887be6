import Foundation
import Testing
@testable import RivetISA

/// The instruction and CSR tables are consistent, and the code generated from them is checked in as generated.
@Suite struct InstructionTableTests {
    static let cpuSources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources/RivetCPU").standardized

    @Test("checked-in DecoderTable.swift and CSRNumbers.swift equal a fresh generation (run scripts/generate-decoder.sh)")
    func generatedSourcesAreCurrent() throws {
        for (name, fresh) in [("DecoderTable.swift", DecoderGenerator.decoderSource()), ("CSRNumbers.swift", DecoderGenerator.csrSource())] {
            let path = Self.cpuSources.appendingPathComponent(name).path
            let checkedIn = try String(contentsOfFile: path, encoding: .utf8)
            #expect(checkedIn == fresh, "\(path) is stale: run scripts/generate-decoder.sh and commit the result")
        }
    }

    @Test func rowsAreWellFormed() {
        #expect(InstructionTable.all.count > 150)
        for row in InstructionTable.all {
            #expect(row.match & ~row.mask == 0, "\(row.mnemonic): match has bits outside its mask")
            #expect(row.isCompressed ? row.mask >> 16 == 0 : row.mask & 0x7f == 0x7f, "\(row.mnemonic): opcode not fixed")
            for a in row.aliases {
                #expect(a.match & ~a.mask == 0, "\(row.mnemonic) alias \(a.mnemonic): match outside mask")
            }
            // Operand fields stay clear of the bits that identify the instruction (aliases may fix them).
            for f in row.operands.flatMap(\.fields) where f.kind != .roundingMode {
                #expect(f.wordMask & row.mask == 0, "\(row.mnemonic): operand \(f.name) overlaps fixed bits")
            }
            if row.usesRoundingMode { #expect(row.mask & 0x7000 == 0, "\(row.mnemonic): rounding mode bits are fixed") }
        }
    }

    /// Two rows that can match the same word must differ in how many bits they fix, so the more specific one
    /// decides; equal specificity would make the table order matter silently.
    @Test func overlappingRowsAreOrderedBySpecificity() {
        let rows = InstructionTable.all
        for (i, a) in rows.enumerated() {
            for b in rows[(i + 1)...] where a.isCompressed == b.isCompressed {
                let overlap = (a.match ^ b.match) & a.mask & b.mask == 0
                if overlap {
                    #expect(a.mask.nonzeroBitCount != b.mask.nonzeroBitCount, "\(a.mnemonic) and \(b.mnemonic) overlap ambiguously")
                }
            }
        }
    }

    @Test func everyCompressedInstructionExpandsToAnExecutedOne() {
        for row in InstructionTable.all where row.isCompressed && row.mnemonic != "c.unimp" {
            #expect(row.expansion != nil && row.microOp != nil, "\(row.mnemonic)")
        }
    }

    @Test func csrTableHasUniqueNumbersAndNames() {
        let all = CSRTable.all
        #expect(Set(all.map(\.number)).count == all.count)
        #expect(Set(all.map(\.name)).count == all.count)
        #expect(CSRTable.name(of: 0x300) == "mstatus" && CSRTable.name(of: 0x7ff) == nil)
        let mstatus = all.first { $0.name == "mstatus" }!
        #expect(mstatus.privilege == 3 && !mstatus.isReadOnly)
        #expect(all.first { $0.name == "cycle" }!.isReadOnly)
    }

    /// A new instruction is one row: a row added to a copy of the table disassembles through the same code.
    @Test func syntaxRoundTrips() {
        let addi = InstructionTable.all.first { $0.mnemonic == "addi" }!
        #expect(addi.syntax == "addi rd,rs1,immI" && addi.format == .i && addi.ext == .i && !addi.endsBlock)
        let fmadd = InstructionTable.all.first { $0.mnemonic == "fmadd.d" }!
        #expect(fmadd.usesRoundingMode && fmadd.format == .r4 && fmadd.ext == .d)
        let cj = InstructionTable.all.first { $0.mnemonic == "c.j" }!
        #expect(cj.endsBlock && cj.microOp == "jal")
    }
}
