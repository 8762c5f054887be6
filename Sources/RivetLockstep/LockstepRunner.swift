#if canImport(Glibc)
import Glibc
#endif
import RivetCPU

/// A difference between the reference hart and the candidate: everything needed to reproduce and read it.
public struct LockstepMismatch: Error, CustomStringConvertible {
    public let seed: UInt64
    /// "block by block" (runBlock) or "chained" (run(budget:) slices).
    public let phase: String
    public let step: Int
    /// Where the block (or slice) started, and in which privilege mode.
    public let blockPC: UInt64
    public let privilege: UInt8
    public let disassembly: [String]
    public let differences: [String]
    public let streamDescription: String

    public var description: String {
        var text = "lockstep mismatch: seed 0x\(String(seed, radix: 16)) (\(streamDescription))\n"
        text += "  \(phase), step \(step), block at pc 0x\(String(blockPC, radix: 16)) in privilege \(privilege):\n"
        text += disassembly.map { "    " + $0 + "\n" }.joined()
        text += "  differences (reference vs candidate):\n"
        text += differences.map { "    " + $0 + "\n" }.joined()
        text += "  reproduce: rivet lockstep --replay 0x\(String(seed, radix: 16))"
        return text
    }
}

/// What one stream did (both phases agreed).
public struct LockstepOutcome {
    /// Blocks stepped in the block-by-block phase, and the work done there (retired instructions plus
    /// traps; minstret itself is writable, so it says less).
    public var blocks = 0
    public var work: UInt64 = 0
    /// Traps taken in the block-by-block phase (blocks that ended in a handler), and how many were interrupts.
    public var traps = 0
    public var interrupts = 0
    /// Blocks the candidate compiled to host code, both phases together (0 for the interpreter).
    public var compiledBlocks: UInt64 = 0
    /// The stream reached its exit (not the step limit).
    public var finished = false
}

/// Runs streams on two machines, a reference (the interpreter) and a candidate (the translator), and
/// compares their full architectural state and RAM after every block (every block compiled at its first
/// use); then again on a fresh pair with chaining, after every `run(budget:)` slice (with a translation
/// threshold of 0 to 3).
public final class LockstepRunner {
    public let reference: Accelerator
    public let candidate: Accelerator
    /// Limits for streams that loop (the generator bounds loops; a wild jump may still spin).
    public var maxBlocks = 4000
    public var maxChainedWork: UInt64 = 40_000
    /// Called on the candidate after each step, before the comparison (tests corrupt state with it).
    public var corruptCandidate: ((_ step: Int, _ hart: Hart) -> Void)? = nil

    public init(reference: Accelerator = .interp, candidate: Accelerator = .jit) {
        self.reference = reference
        self.candidate = candidate
    }

    /// Generates the stream for `seed` and runs it in both phases.
    public func run(seed: UInt64) throws -> LockstepOutcome {
        try run(StreamGenerator.generate(seed: seed))
    }

    public func run(_ stream: LockstepStream) throws -> LockstepOutcome {
        var outcome = try runBlockByBlock(stream)
        outcome.compiledBlocks &+= try runChained(stream)
        return outcome
    }

    func pair(_ stream: LockstepStream, threshold: Int = 0) throws -> (LockstepMachine, LockstepMachine) {
        let a = try LockstepMachine(accelerator: reference, translationThreshold: threshold)
        let b = try LockstepMachine(accelerator: candidate, translationThreshold: threshold)
        a.load(stream); b.load(stream)
        return (a, b)
    }

    /// The code of the block being compared, as it was before it ran (for the report's disassembly).
    let codeBuffer = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 8)
    var codeLength = 0

    deinit { codeBuffer.deallocate() }

    func compare(_ a: LockstepMachine, _ b: LockstepMachine, stream: LockstepStream, phase: String, step: Int,
                 blockPC: UInt64, privilege: UInt8) throws {
        if a.agrees(with: b) { return }
        var differences = a.state.differences(from: b.state)
        differences += memoryDifferences(a.ram, b.ram)
        let code = [UInt8](UnsafeRawBufferPointer(start: codeBuffer, count: codeLength))
        throw LockstepMismatch(seed: stream.seed, phase: phase, step: step, blockPC: blockPC, privilege: privilege,
                               disassembly: LockstepMachine.disassemble(code, at: blockPC), differences: differences,
                               streamDescription: stream.description)
    }

    func runBlockByBlock(_ stream: LockstepStream) throws -> LockstepOutcome {
        let (a, b) = try pair(stream)
        var outcome = LockstepOutcome()
        codeLength = 0
        try compare(a, b, stream: stream, phase: "block by block", step: 0, blockPC: a.hart.pc, privilege: a.hart.privilege.rawValue)
        var lastTrap = (a.hart.csr.mcause, a.hart.csr.mepc)
        while outcome.blocks < maxBlocks {
            if a.hart.pc == stream.exit { outcome.finished = true; break }
            let blockPC = a.hart.pc, privilege = a.hart.privilege.rawValue
            codeLength = a.copyCode(at: blockPC, into: codeBuffer)
            a.stepBlock()
            b.stepBlock()
            outcome.blocks += 1
            corruptCandidate?(outcome.blocks, b.hart)
            try compare(a, b, stream: stream, phase: "block by block", step: outcome.blocks, blockPC: blockPC, privilege: privilege)
            // An exception leaves the block at a handler's first instruction; an interrupt is taken at the start
            // of the step (and the handler's first block runs in it): a new (mcause, mepc) with the top bit set.
            let pc = a.hart.pc
            if pc == StreamLayout.page(StreamLayout.machineHandlerPage) || pc == StreamLayout.page(StreamLayout.supervisorHandlerPage) {
                outcome.traps += 1
            }
            let trap = (a.hart.csr.mcause, a.hart.csr.mepc)
            if trap != lastTrap && trap.0 >> 63 != 0 { outcome.interrupts += 1; outcome.traps += 1 }
            lastTrap = trap
            a.wake(); b.wake()
        }
        outcome.work = a.hart.work
        outcome.compiledBlocks = b.cache.translationStatistics.blocks
        return outcome
    }

    /// Slices of random length (the same for both), so budgets end inside and between blocks.
    /// Returns the blocks the candidate compiled.
    @discardableResult
    func runChained(_ stream: LockstepStream) throws -> UInt64 {
        var random = LockstepRandom(seed: stream.seed ^ 0x5eed)
        // Mostly every block compiled at once; sometimes blocks run interpreted first, so interpreted and
        // translated blocks alternate and links to blocks compiled later get patched mid-run.
        let threshold = random.percent(65) ? 0 : random.range(1...3)
        let (a, b) = try pair(stream, threshold: threshold)
        var step = 0
        while a.hart.work < maxChainedWork {
            let blockPC = a.hart.pc, privilege = a.hart.privilege.rawValue
            let atExit = blockPC == stream.exit
            codeLength = a.copyCode(at: blockPC, into: codeBuffer)
            let budget = random.percent(50) ? random.range(1...16) : random.range(17...400)
            a.run(budget: budget)
            b.run(budget: budget)
            step += 1
            corruptCandidate?(step, b.hart)
            try compare(a, b, stream: stream, phase: "chained, run(budget: \(budget)), threshold \(threshold)", step: step, blockPC: blockPC, privilege: privilege)
            a.wake(); b.wake()
            if atExit { break }
        }
        return b.cache.translationStatistics.blocks
    }
}
