import ArgumentParser
import RivetCPU
import RivetLockstep
#if canImport(Glibc)
import Glibc
#endif

/// `rivet lockstep` (hidden): the differential tester's long soak. Runs seeded random RV64GC streams on the
/// interpreter and the translator and compares them after every block (docs/translator.md, "Differential testing").
struct Lockstep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lockstep",
        abstract: "(test) Run random instruction streams on the interpreter and the translator in lockstep.",
        shouldDisplay: false)

    @Option(help: "How many streams to run.") var streams = 10_000
    @Option(help: "The run's seed (stream i gets a seed derived from it and i).") var seed: String = "1"
    @Option(help: "Run only the stream with this seed (as a mismatch report prints it), and describe it.")
    var replay: String?
    @Option(help: "The engine to check: jit, or interp (the tester checking itself).") var candidate = "jit"
    @Option(help: "Stop after this many mismatches.") var maxMismatches = 1

    static func parseSeed(_ text: String) throws -> UInt64 {
        let value = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        guard let value else { throw ValidationError("not a seed: \(text) (a decimal or 0x-hex 64-bit number)") }
        return value
    }

    func run() throws {
        guard let engine = Accelerator(rawValue: candidate) else { throw ValidationError("--candidate must be jit or interp") }
        let runner = LockstepRunner(reference: .interp, candidate: engine)
        if let replay {
            let streamSeed = try Lockstep.parseSeed(replay)
            let stream = StreamGenerator.generate(seed: streamSeed)
            print("stream 0x\(String(streamSeed, radix: 16)): \(stream.description)")
            do {
                let outcome = try runner.run(stream)
                print("agree: \(outcome.blocks) blocks, \(outcome.work) instructions and traps, \(outcome.compiledBlocks) blocks compiled, \(outcome.traps) traps (\(outcome.interrupts) interrupts), \(outcome.finished ? "reached the exit" : "stopped at the block limit")")
            } catch let mismatch as LockstepMismatch {
                print(mismatch.description)
                throw ExitCode(1)
            }
            return
        }
        let base = try Lockstep.parseSeed(seed)
        let start = Lockstep.now()
        var blocks = 0, finished = 0, mismatches = 0, ran = 0
        var work: UInt64 = 0, compiled: UInt64 = 0
        var traps = 0, interrupts = 0
        var lastReport = start
        for i in 0..<streams {
            let streamSeed = LockstepRandom.streamSeed(base, index: i)
            ran += 1
            do {
                let outcome = try runner.run(seed: streamSeed)
                blocks += outcome.blocks
                work &+= outcome.work
                compiled &+= outcome.compiledBlocks
                traps += outcome.traps
                interrupts += outcome.interrupts
                if outcome.finished { finished += 1 } else if ran - finished <= 3 {
                    fputs("lockstep: stream 0x\(String(streamSeed, radix: 16)) stopped at the block limit (rivet lockstep --replay 0x\(String(streamSeed, radix: 16)))\n", stderr)
                }
            } catch let mismatch as LockstepMismatch {
                mismatches += 1
                print(mismatch.description)
                fflush(stdout)
                if mismatches >= maxMismatches { break }
            }
            let now = Lockstep.now()
            if now - lastReport >= 5 {
                lastReport = now
                fputs("lockstep: \(i + 1)/\(streams) streams, \(mismatches) mismatches, \(Int(now - start)) s\n", stderr)
            }
        }
        let seconds = Lockstep.now() - start
        print("lockstep: seed \(seed), \(ran) streams (interp vs \(candidate)), \(blocks) blocks, \(work) instructions and traps, \(compiled) blocks compiled, \(traps) traps (\(interrupts) interrupts), "
              + "\(finished) reached their exit, \(mismatches) mismatches, \(Double(Int(seconds * 10)) / 10) s")
        if mismatches > 0 { throw ExitCode(1) }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
