import Testing
import Foundation
import RivetCPU
import RivetISA
@testable import RivetLockstep

/// The lockstep differential tester (issue 11, item 4): random streams on the interpreter and the
/// translator agree after every block and after chained runs; the tester itself notices a difference.
@Suite struct LockstepTests {
    static let streams = 3000
    static let baseSeed: UInt64 = 0x11_4a17

    /// Runs `LockstepTests.streams` streams on two threads (a runner and its machines each), as a debug build
    /// is slow: returns mismatch reports and totals.
    static func runStreams(candidate: Accelerator) -> (mismatches: [String], finished: Int, blocks: Int, work: UInt64, compiled: UInt64, traps: Int, interrupts: Int) {
        let lock = NSLock()
        var mismatches: [String] = []
        var finished = 0, blocks = 0
        var work: UInt64 = 0, compiled: UInt64 = 0
        var traps = 0, interrupts = 0
        let threads = 2
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let runner = LockstepRunner(reference: .interp, candidate: candidate)
            var i = t
            while i < LockstepTests.streams {
                let seed = LockstepRandom.streamSeed(LockstepTests.baseSeed, index: i)
                i += threads
                do {
                    let outcome = try runner.run(seed: seed)
                    lock.lock()
                    if outcome.finished { finished += 1 }
                    blocks += outcome.blocks
                    work += outcome.work
                    compiled += outcome.compiledBlocks
                    traps += outcome.traps
                    interrupts += outcome.interrupts
                    lock.unlock()
                } catch let mismatch as LockstepMismatch {
                    lock.lock(); mismatches.append(mismatch.description); lock.unlock()
                } catch {
                    lock.lock(); mismatches.append("stream 0x\(String(seed, radix: 16)): \(error)"); lock.unlock()
                }
                lock.lock(); let enough = mismatches.count >= 3; lock.unlock()
                if enough { break }
            }
        }
        return (mismatches, finished, blocks, work, compiled, traps, interrupts)
    }

    @Test func interpreterAndTranslatorAgreeOnThousandsOfStreams() throws {
        let (mismatches, finished, blocks, work, compiled, traps, interrupts) = LockstepTests.runStreams(candidate: .jit)
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
        // The streams do real work, and almost all reach their exit (a wild jump may spin until the limit).
        #expect(finished >= LockstepTests.streams * 95 / 100, "only \(finished) of \(LockstepTests.streams) streams reached their exit")
        #expect(work > UInt64(LockstepTests.streams) * 50, "only \(work) instructions and traps")
        #expect(blocks > LockstepTests.streams * 20)
        // Exceptions of every stream and interrupts the M-mode streams raise were taken.
        #expect(traps > LockstepTests.streams * 2, "only \(traps) traps")
        #expect(interrupts > LockstepTests.streams / 100, "only \(interrupts) interrupts")
        // The candidate really ran translated code (every block is compiled at its first use).
        if Accelerator.translatorAvailable { #expect(compiled > UInt64(blocks) / 4, "only \(compiled) blocks compiled") }
    }

    /// The generator covers every instruction the machine executes, both widths, and the special cases.
    @Test func streamsCoverEveryInstructionOfTheTable() {
        var seen = Set<String>()
        var modes = Set<UInt8>()
        var paging = 0
        for i in 0..<600 {
            let stream = StreamGenerator.generate(seed: LockstepRandom.streamSeed(LockstepTests.baseSeed, index: i))
            seen.formUnion(stream.mnemonics)
            modes.insert(stream.mode.rawValue)
            if stream.paging { paging += 1 }
        }
        let missing = StreamGenerator.allMnemonics.subtracting(seen)
        #expect(missing.isEmpty, "never generated: \(missing.sorted())")
        for special in ["illegal", "c.unimp", "reserved-rm", "self-modify", "self-modify+fence.i", "loop", "taken-loop", "self-modify-loop", "c.ebreak", "interrupt", "mstatus.MIE"] {
            #expect(seen.contains(special), "no \(special) case generated")
        }
        #expect(modes == [0, 1, 3])
        #expect(paging > 100)
    }

    /// A stream is a function of its seed.
    @Test func aSeedAlwaysGivesTheSameStream() {
        let a = StreamGenerator.generate(seed: 42), b = StreamGenerator.generate(seed: 42), c = StreamGenerator.generate(seed: 43)
        #expect(a.memory.map(\.bytes) == b.memory.map(\.bytes))
        #expect(a.x == b.x && a.f == b.f)
        #expect(a.memory.map(\.bytes) != c.memory.map(\.bytes))
    }

    /// The tester can fail: one flipped register bit in the candidate between blocks is reported, with the
    /// seed, the block's disassembly and the register.
    @Test func aCorruptedCandidateIsReportedWithItsSeed() throws {
        let runner = LockstepRunner(reference: .interp, candidate: .interp)
        runner.corruptCandidate = { step, hart in if step == 3 { hart.x[5] ^= 1 << 17 } }
        let seed = LockstepRandom.streamSeed(LockstepTests.baseSeed, index: 7)
        do {
            _ = try runner.run(seed: seed)
            Issue.record("the corrupted register went unnoticed")
        } catch let mismatch as LockstepMismatch {
            #expect(mismatch.seed == seed)
            #expect(mismatch.step == 3)
            #expect(mismatch.differences.contains { $0.hasPrefix("x5: ") }, "\(mismatch.differences)")
            #expect(!mismatch.disassembly.isEmpty)
            #expect(mismatch.description.contains("seed 0x" + String(seed, radix: 16)))
        }
    }

    /// Memory differences are reported too (a byte of the candidate's RAM changed behind its back), and in
    /// the chained phase as well.
    @Test func aCorruptedMemoryByteIsReported() throws {
        let seed = LockstepRandom.streamSeed(LockstepTests.baseSeed, index: 11)
        let runner = LockstepRunner(reference: .interp, candidate: .interp)
        var chainedPhase = false
        runner.corruptCandidate = { step, hart in
            if step == 2 { hart.ram.host.storeBytes(of: 0x5a, toByteOffset: 0x6123, as: UInt8.self) }
        }
        do {
            _ = try runner.run(seed: seed)
            Issue.record("the corrupted byte went unnoticed")
        } catch let mismatch as LockstepMismatch {
            #expect(mismatch.differences.contains { $0.hasPrefix("memory 0x80006120") }, "\(mismatch.differences)")
            chainedPhase = mismatch.phase.hasPrefix("chained")
        }
        #expect(!chainedPhase)
        // The chained phase alone, with an instret change.
        let chained = LockstepRunner(reference: .interp, candidate: .interp)
        var inChained = false
        chained.corruptCandidate = { step, hart in if inChained && step == 1 { hart.instret &+= 1 } }
        let stream = StreamGenerator.generate(seed: seed)
        _ = try chained.runBlockByBlock(stream)
        inChained = true
        #expect(throws: LockstepMismatch.self) { try chained.runChained(stream) }
    }
}
