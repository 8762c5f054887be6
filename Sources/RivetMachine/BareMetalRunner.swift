import RivetCPU
import RivetMemory

/// Runs a bare-metal ELF on one hart with RAM only, talking to the host through HTIF (see `HTIF`):
/// an exit command with code 0 means pass, code n (the `(n << 1) | 1` tohost convention) means test
/// case n failed; the console and riscv-pk's write/exit syscalls work along the way.
public final class BareMetalRunner {
    public enum Outcome: Equatable {
        case passed
        case failed(testCase: UInt64)
        case instructionLimit(UInt64)
        /// tohost held a command this host does not implement.
        case unknownHTIFCommand(UInt64)
        /// A riscv-pk syscall whose argument block lies outside RAM.
        case badSyscallBlock(UInt64)
    }

    public let ram: GuestRAM
    public let bus: PhysicalBus
    public let cache: BlockCache
    public let wires: InterruptWires
    public let clock: VirtualClock
    public let hart: Hart
    public let tohost: UInt64
    public let htif: HTIF

    /// `output` receives console bytes (with fd 1 or 2), `input` returns an input byte if one is ready.
    public init(elf: ELFImage, name: String, memorySize: UInt64,
                output: @escaping (UInt8, Int) -> Void = { _, _ in }, input: @escaping () -> UInt8? = { nil }) throws {
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
        var f = elf.symbols["fromhost"]
        if let a = f, !ram.contains(a, length: 8) { f = nil }
        tohost = t
        htif = HTIF(ram: ram, tohost: t, fromhost: f, output: output, input: input)
        hart.reset(pc: elf.entry)
    }

    /// Runs until the program exits through HTIF or `maxInstructions` retire. `afterSlice` runs between
    /// slices (the command line flushes console output there).
    public func run(maxInstructions: UInt64, afterSlice: () -> Void = {}) -> Outcome {
        while true {
            switch htif.poll() {
            case .exit(let code)?: return code == 0 ? .passed : .failed(testCase: code)
            case .unknown(let v)?: return .unknownHTIFCommand(v)
            case .badSyscallBlock(let a)?: return .badSyscallBlock(a)
            case nil: break
            }
            afterSlice()
            if hart.work >= maxInstructions { return .instructionLimit(hart.instret) }
            // A program using the console waits for each answer: poll it more often.
            let slice: UInt64 = htif.interactive ? 1_000 : 10_000
            let budget = Int(min(slice, maxInstructions - hart.work))
            clock.retiredInstructions = hart.instret
            if hart.run(budget: max(budget, 1)) == .waitingForInterrupt {
                // No device can ever wake a lone hart here: wfi completes at once, as the ISA allows.
                hart.waitingForInterrupt = false
            }
        }
    }
}
