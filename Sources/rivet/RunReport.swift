#if canImport(Glibc)
import Glibc
#endif
import RivetKit
import RivetCPU
import RivetISA

/// RIVET_STATS=1: instructions, speed and idle time of the run, on stderr.
func reportStatistics(_ machine: VirtMachine, since start: UInt64) {
    guard ProcessInfoLite.environment("RIVET_STATS") != nil else { return }
    let seconds = Double(VirtualClockHost.now() - start) / 1e9
    fputs("rivet: \(machine.totalInstructions) instructions in \(fixed(seconds, 3)) s (\(fixed(Double(machine.totalInstructions) / seconds / 1e6, 1)) MIPS); idle: \(machine.idleSleeps) sleeps, \(fixed(Double(machine.idleNanoseconds) / 1e9, 3)) s\n", stderr)
    reportTranslation(machine.hartCaches, seconds: seconds)
}

/// The translator's share: blocks compiled, code size, time spent compiling (and its share of the run), flushes
/// (summed over the block caches: one per hart with hart threads).
func reportTranslation(_ caches: [BlockCache], seconds: Double) {
    var blocks: UInt64 = 0, bytes: UInt64 = 0, ns: UInt64 = 0, flushes: UInt64 = 0, decoded: UInt64 = 0, writes: UInt64 = 0
    for cache in caches {
        let t = cache.translationStatistics
        blocks &+= t.blocks; bytes &+= t.bytes; ns &+= t.nanoseconds; flushes &+= t.flushes
        decoded &+= cache.blocksDecoded; writes &+= cache.invalidations
    }
    guard blocks > 0 else { return }
    let compileSeconds = Double(ns) / 1e9
    fputs("rivet: jit: \(blocks) blocks compiled, \(bytes >> 10) KiB of code, \(fixed(compileSeconds * 1e3, 1)) ms compiling (\(fixed(Double(ns) / Double(blocks) / 1e3, 2)) us per block, \(fixed(100 * compileSeconds / max(seconds, 1e-9), 2))% of the run), \(flushes) code-cache flushes; \(decoded) blocks decoded, \(writes) code-page writes\n", stderr)
}

/// After a limit stopped the machine: where each hart was (and with RIVET_DEBUG, the PLIC and code).
func reportStoppedHarts(_ machine: VirtMachine) {
    if ProcessInfoLite.environment("RIVET_DEBUG") != nil {
        let p = machine.plic
        fputs("plic pending=\(p.pending) claimed=\(p.claimed) level=\(p.level) enable=\(p.enable) threshold=\(p.threshold) prio1-12=\(Array(p.priority[0..<12]))\n", stderr)
        for c in 0..<p.contextCount { fputs("ctx \(c) best=\(p.bestSource(context: c))\n", stderr) }
        fputs("wires: \((0..<machine.harts.count).map { String(machine.wires.pins[$0], radix: 16) })\n", stderr)
    }
    for h in machine.harts {
        fputs("rivet: hart \(h.hartID): pc=0x\(String(h.pc, radix: 16)) mode=\(h.privilege) instret=\(h.instret) wfi=\(h.waitingForInterrupt) mip=0x\(String(h.effectiveMIP, radix: 16)) mie=0x\(String(h.csr.mie, radix: 16)) mstatus=0x\(String(h.csr.mstatus, radix: 16))\n", stderr)
        if ProcessInfoLite.environment("RIVET_DEBUG") != nil {
            var a = h.pc &- 40
            while a < h.pc &+ 24 {
                guard let w = h.debugRead(a, size: 4) else { break }
                let word = UInt32(truncatingIfNeeded: w)
                fputs(Disassembler.traceLine(pc: a, word: word) + "\n", stderr)
                a &+= word & 3 == 3 ? 4 : 2
            }
            fputs("  regs: " + (1..<32).map { "x\($0)=\(String(h.x[$0], radix: 16))" }.joined(separator: " ") + "\n", stderr)
        }
    }
}
