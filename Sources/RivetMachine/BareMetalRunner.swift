import RivetCPU
import RivetMemory

/// Runs a bare-metal ELF on one hart with RAM only, ending through the HTIF `tohost` convention:
/// a write of 1 means pass, (n << 1) | 1 means test case n failed.
public final class BareMetalRunner {
    public enum Outcome: Equatable {
        case passed
        case failed(testCase: UInt64)
        case instructionLimit(UInt64)
    }

    public let ram: GuestRAM
    public let bus: PhysicalBus
    public let cache: BlockCache
    public let wires: InterruptWires
    public let clock: VirtualClock
    public let hart: Hart
    public let tohost: UInt64

    public init(elf: ELFImage, name: String, memorySize: UInt64) throws {
        ram = try GuestRAM(base: 0x8000_0000, size: memorySize)
        bus = PhysicalBus(ram: ram)
        cache = BlockCache(ram: ram)
        wires = InterruptWires(hartCount: 1)
        clock = VirtualClock(mode: .instructionCount(shift: 0))
        hart = Hart(hartID: 0, bus: bus, cache: cache, wires: wires, clock: clock)
        guard elf.segments.contains(where: { $0.memorySize > 0 }) else {
            throw ELFImage.Error(description: "\(name): no loadable segment (nothing to run)")
        }
        try elf.load(into: ram, name: name)
        guard ram.contains(elf.entry, length: 2) else {
            throw ELFImage.Error(description: "\(name): entry point 0x\(String(elf.entry, radix: 16)) is outside RAM (0x\(String(ram.base, radix: 16)) to 0x\(String(ram.base &+ ram.size, radix: 16)), --memory \(ram.size >> 20)M)")
        }
        guard let t = elf.symbols["tohost"] else {
            throw ELFImage.Error(description: "\(name): no `tohost` symbol; run-elf needs the HTIF tohost convention")
        }
        guard ram.contains(t, length: 8) else {
            throw ELFImage.Error(description: "\(name): tohost at 0x\(String(t, radix: 16)) is outside RAM")
        }
        tohost = t
        hart.reset(pc: elf.entry)
    }

    /// Runs until tohost is written or `maxInstructions` retire.
    public func run(maxInstructions: UInt64) -> Outcome {
        let slice = 10_000
        while true {
            if let v = ram.load64(tohost), v != 0 {
                return v == 1 ? .passed : .failed(testCase: v >> 1)
            }
            if hart.work >= maxInstructions { return .instructionLimit(hart.instret) }
            let budget = Int(min(UInt64(slice), maxInstructions - hart.work))
            clock.retiredInstructions = hart.instret
            if hart.run(budget: max(budget, 1)) == .waitingForInterrupt {
                // No device can ever wake a lone hart here: wfi completes at once, as the ISA allows.
                hart.waitingForInterrupt = false
            }
        }
    }
}
