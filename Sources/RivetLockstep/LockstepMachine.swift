#if canImport(Glibc)
import Glibc
#endif
import RivetCPU
import RivetISA
import RivetMemory

/// One machine of a lockstep pair: RAM, bus, decoded-block cache and one hart, as BareMetalRunner builds
/// them, with the hart's accelerator chosen.
public final class LockstepMachine {
    public let ram: GuestRAM
    public let bus: PhysicalBus
    public let cache: BlockCache
    public let wires = InterruptWires(hartCount: 1)
    public let clock = VirtualClock(mode: .instructionCount(shift: 0))
    public let hart: Hart
    public let accelerator: Accelerator

    /// `translationThreshold` 0 compiles every block at its first use; more leaves blocks in the interpreter
    /// for that many runs first (mixed interpreted and translated blocks, links made later).
    public init(accelerator: Accelerator, translationThreshold: Int = 0) throws {
        ram = try GuestRAM(base: StreamLayout.ramBase, size: StreamLayout.ramSize)
        bus = PhysicalBus(ram: ram)
        cache = BlockCache(ram: ram)
        hart = Hart(hartID: 0, bus: bus, cache: cache, wires: wires, clock: clock)
        self.accelerator = accelerator
        hart.accelerator = accelerator
        hart.translationThreshold = translationThreshold
    }

    /// Writes the stream into memory and sets the hart up to start it.
    public func load(_ stream: LockstepStream) {
        hart.reset(pc: stream.entry)
        for (address, bytes) in stream.memory {
            bytes.withUnsafeBytes { source in
                (ram.host + Int(address - ram.base)).copyMemory(from: source.baseAddress!, byteCount: source.count)
            }
        }
        for (number, value) in stream.csrs { hart.writeCSR(number, value) }
        for i in 1..<32 { hart.x[i] = stream.x[i] }
        for i in 0..<32 { hart.f[i] = stream.f[i] }
        hart.setPrivilege(Privilege(rawValue: stream.mode.rawValue)!)
        hart.pc = stream.entry
    }

    /// One block, as the run loop does it (the icount clock follows retired instructions).
    @discardableResult
    public func stepBlock() -> Int {
        clock.retiredInstructions = hart.instret
        return hart.runBlock()
    }

    /// A slice of `run(budget:)`, with chaining.
    public func run(budget: Int) {
        clock.retiredInstructions = hart.instret
        _ = hart.run(budget: budget)
    }

    /// No interrupt can wake a lone hart here: wfi completes at once (as BareMetalRunner does).
    public func wake() { hart.waitingForInterrupt = false }

    public var state: ArchitecturalState { ArchitecturalState(hart) }

    /// True when both harts and both RAMs agree: the check after every block, without allocating
    /// (`ArchitecturalState` lists the differences when it fails).
    public func agrees(with other: LockstepMachine) -> Bool {
        let h = hart, o = other.hart
        guard h.pc == o.pc, h.privilege == o.privilege, h.instret == o.instret, h.work == o.work,
              h.reservation == o.reservation, h.waitingForInterrupt == o.waitingForInterrupt,
              memcmp(h.x, o.x, 32 * 8) == 0, memcmp(h.f, o.f, 32 * 8) == 0, h.csr == o.csr else { return false }
        return memcmp(ram.host, other.ram.host, Int(ram.size)) == 0
    }

    /// The instructions of the block at `pc` as `objdump -d` prints them, read from `bytes` (the code as it
    /// was when the block started), up to the first instruction that ends a block.
    public static func disassemble(_ bytes: [UInt8], at pc: UInt64) -> [String] {
        var lines: [String] = []
        var offset = 0
        while offset + 2 <= bytes.count && lines.count < 64 {
            var word = UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8
            if word & 3 == 3 {
                guard offset + 4 <= bytes.count else { break }
                word |= UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
            }
            lines.append(Disassembler.traceLine(pc: pc + UInt64(offset), word: word))
            offset += word & 3 == 3 ? 4 : 2
            let row = InstructionTable.row(for: word)
            if row == nil || row!.endsBlock || !row!.decodes(word) { break }
        }
        return lines
    }

    /// Copies up to 256 bytes of RAM from `pc` to the end of its page into `buffer`; returns how many
    /// (0 when pc is not in RAM). The runner keeps the code of every block this way, before running it.
    public func copyCode(at pc: UInt64, into buffer: UnsafeMutableRawPointer) -> Int {
        guard pc >= ram.base, pc - ram.base < ram.size else { return 0 }
        let n = Int(min(256, ((pc | 0xfff) &+ 1) - pc))
        buffer.copyMemory(from: ram.host + Int(pc - ram.base), byteCount: n)
        return n
    }
}

/// Everything a program can observe of a hart, plus the run loop's work count (budgets depend on it).
public struct ArchitecturalState: Equatable {
    public var pc: UInt64
    public var privilege: UInt8
    public var x: [UInt64]
    public var f: [UInt64]
    public var csr: CSRFile
    public var instret: UInt64
    public var work: UInt64
    public var reservation: UInt64?
    public var waitingForInterrupt: Bool

    public init(_ hart: Hart) {
        pc = hart.pc
        privilege = hart.privilege.rawValue
        x = (0..<32).map { hart.x[$0] }
        f = (0..<32).map { hart.f[$0] }
        csr = hart.csr
        instret = hart.instret
        work = hart.work
        reservation = hart.reservation
        waitingForInterrupt = hart.waitingForInterrupt
    }

    /// One line per differing item, `name: reference value, candidate value`.
    public func differences(from other: ArchitecturalState) -> [String] {
        func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
        var lines: [String] = []
        if pc != other.pc { lines.append("pc: \(hex(pc)) vs \(hex(other.pc))") }
        if privilege != other.privilege { lines.append("privilege: \(privilege) vs \(other.privilege)") }
        for i in 0..<32 where x[i] != other.x[i] { lines.append("x\(i): \(hex(x[i])) vs \(hex(other.x[i]))") }
        for i in 0..<32 where f[i] != other.f[i] { lines.append("f\(i): \(hex(f[i])) vs \(hex(other.f[i]))") }
        if csr != other.csr {
            let mine = Mirror(reflecting: csr).children, theirs = Mirror(reflecting: other.csr).children
            for (a, b) in zip(mine, theirs) {
                if let va = a.value as? UInt64, let vb = b.value as? UInt64, va != vb {
                    lines.append("\(a.label ?? "csr"): \(hex(va)) vs \(hex(vb))")
                }
            }
        }
        if instret != other.instret { lines.append("instret: \(instret) vs \(other.instret)") }
        if work != other.work { lines.append("work: \(work) vs \(other.work)") }
        if reservation != other.reservation {
            lines.append("reservation: \(reservation.map(hex) ?? "none") vs \(other.reservation.map(hex) ?? "none")")
        }
        if waitingForInterrupt != other.waitingForInterrupt {
            lines.append("waiting for interrupt: \(waitingForInterrupt) vs \(other.waitingForInterrupt)")
        }
        return lines
    }
}

/// Differing bytes of two machines' RAM, as lines (at most `limit`, then a count).
func memoryDifferences(_ a: GuestRAM, _ b: GuestRAM, limit: Int = 8) -> [String] {
    if memcmp(a.host, b.host, Int(a.size)) == 0 { return [] }
    var lines: [String] = []
    var differing = 0
    let pa = a.host.assumingMemoryBound(to: UInt64.self), pb = b.host.assumingMemoryBound(to: UInt64.self)
    for i in 0..<Int(a.size / 8) where pa[i] != pb[i] {
        differing += 1
        if lines.count < limit {
            lines.append("memory 0x\(String(a.base + UInt64(i * 8), radix: 16)): 0x\(String(pa[i], radix: 16)) vs 0x\(String(pb[i], radix: 16))")
        }
    }
    if differing > limit { lines.append("... \(differing - limit) more differing doublewords") }
    return lines
}
