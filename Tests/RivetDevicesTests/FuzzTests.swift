import Testing
@testable import RivetDevices
import RivetMemory
import RivetSnapshot

/// Seeded fuzzers: random MMIO traffic to every register window, hostile virtqueues, corrupted states.
/// None may crash or hang; a device that was fed a malformed ring must say DEVICE_NEEDS_RESET.
@Suite struct FuzzTests {
    static let interesting: [UInt64] = [0, 1, 2, 3, 4, 7, 8, 0xf, 0x10, 0x40, 0x80, 0xff, 0x100, 0x5555, 0x3333, 0x7777,
                                        0xffff, 0x8000_0000, 0x8000_1000, 0x800f_f000, 0xffff_ffff, ~0]

    func randomValue(_ g: inout SeededRandom) -> UInt64 {
        switch g.next() % 4 {
        case 0: return FuzzTests.interesting[Int(g.next() % UInt64(FuzzTests.interesting.count))]
        case 1: return g.next() & 0xff
        case 2: return g.next() & 0xffff_ffff
        default: return g.next()
        }
    }

    /// Random accesses inside a window, biased towards the listed register offsets.
    func hammer(_ dev: MMIODevice, window: UInt64, registers: [UInt64], ops: Int, seed: UInt64) {
        var g = SeededRandom(seed: seed)
        for _ in 0..<ops {
            let size = [1, 2, 4, 8][Int(g.next() % 4)]
            var offset: UInt64
            if g.next() % 4 != 0 && !registers.isEmpty {
                offset = registers[Int(g.next() % UInt64(registers.count))] + (g.next() % 8 == 0 ? g.next() % 8 : 0)
            } else {
                offset = g.next() % window
            }
            offset = min(offset, window - UInt64(size))  // the bus only passes accesses inside the window
            if g.next() % 3 == 0 { _ = dev.mmioRead(offset: offset, size: size) } else { dev.mmioWrite(offset: offset, size: size, value: randomValue(&g)) }
        }
    }

    func randomRAM(seed: UInt64) throws -> GuestRAM {
        let ram = try makeRAM()
        var g = SeededRandom(seed: seed)
        for a in stride(from: ramBase, to: ramBase + ram.size, by: 8) {
            // Mostly small numbers and RAM addresses, so rings and descriptors are sometimes almost valid.
            let v: UInt64
            switch g.next() % 4 {
            case 0: v = ramBase + (g.next() % ram.size) & ~0xf
            case 1: v = g.next() % 32 | (g.next() % 32) << 16 | (g.next() % 8) << 32
            case 2: v = 0
            default: v = g.next()
            }
            ram.store64(a, v)
        }
        return ram
    }

    @Test func mmioFuzzEveryDevice() throws {
        let wires = InterruptWires(hartCount: 2)
        let clock = VirtualClock(mode: .instructionCount(shift: 0))
        let sink = RecordingSink()
        let plic = PLIC(hartCount: 2, wires: wires)
        let ops = 20_000
        hammer(CLINT(hartCount: 2, wires: wires, clock: clock), window: VirtBoard.clint.size,
               registers: [0, 4, 0x4000, 0x4004, 0x4008, 0x400c, 0xbff8, 0xbffc], ops: ops, seed: 1)
        var plicRegs: [UInt64] = [0, 4, 40, 0x17c, 0x1000, 0x1004, 0x1008, 0x2000, 0x2004, 0x2080, 0x2100, 0x2180]
        for c in 0..<5 as Range<UInt64> { plicRegs += [0x20_0000 + 0x1000 * c, 0x20_0004 + 0x1000 * c] }
        hammer(plic, window: VirtBoard.plic.size, registers: plicRegs, ops: ops, seed: 2)
        let uart = UART16550(irq: plic, source: 10, backend: SerialCapture())
        hammer(uart, window: VirtBoard.uart0.size, registers: Array(0...7), ops: ops, seed: 3)
        hammer(GoldfishRTC(irq: plic, source: 11), window: VirtBoard.rtc.size, registers: Array(stride(from: 0, to: 0x20, by: 4)), ops: ops, seed: 4)
        hammer(SysconPower(), window: VirtBoard.syscon.size, registers: [0], ops: ops, seed: 5)
        let virtioRegs: [UInt64] = [0, 4, 8, 0xc, 0x10, 0x14, 0x20, 0x24, 0x30, 0x34, 0x38, 0x44, 0x50, 0x50, 0x50, 0x60, 0x64,
                                    0x70, 0x70, 0x80, 0x84, 0x90, 0x94, 0xa0, 0xa4, 0xac, 0xb0, 0xc0, 0xfc, 0x100, 0x108, 0x120, 0x13c]
        var seed: UInt64 = 10
        let netBackend = LoopBackend()
        netBackend.waiting = (0..<5000).map { [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: 14 + $0 % 1500) }
        let net = VirtioNet(backend: netBackend, mac: VirtioNet.defaultMAC(index: 0))
        for model in [VirtioBlock(disk: MemoryDisk(size: 256 * 512)), VirtioRNG(), net, nil] as [VirtioDeviceModel?] {
            let ram = try randomRAM(seed: seed)
            let dev = VirtioMMIO(model: model, ram: ram, irq: sink, source: 1)
            hammer(dev, window: VirtBoard.virtio(0).size, registers: virtioRegs, ops: ops, seed: seed)
            seed += 1
        }
        // The UART still works after the storm once reset.
        uart.reset()
        #expect(uart.mmioRead(offset: 5, size: 1) & 0x60 == 0x60)
    }

    /// Random descriptor tables, avail rings and indices under a correctly configured queue.
    @Test(arguments: [(UInt64(100), false), (UInt64(200), true)])
    func hostileVirtqueues(seed: UInt64, rng: Bool) throws {
        let ram = try makeRAM()
        let sink = RecordingSink()
        let disk = MemoryDisk(size: 128 * 512)
        let model: VirtioDeviceModel = rng ? VirtioRNG() : VirtioBlock(disk: disk)
        let dev = VirtioMMIO(model: model, ram: ram, irq: sink, source: 1)
        let size: UInt16 = 16
        let drv = TestDriver(dev: dev, ram: ram, queueSize: size)
        var g = SeededRandom(seed: seed)
        var broken = 0, completed = 0
        func pickAddress() -> UInt64 {
            switch g.next() % 8 {
            case 0: return g.next()  // anywhere
            case 1: return ramBase + ram.size - g.next() % 64  // straddles the end of RAM
            case 2: return g.next() % ramBase  // below RAM
            case 3: return drv.avail  // the device would write into its own rings
            default: return ramBase + 0x4000 + (g.next() % 0xb000)
            }
        }
        func pickLength() -> UInt32 {
            switch g.next() % 6 {
            case 0: return UInt32(truncatingIfNeeded: g.next())
            case 1: return 0xffff_ffff
            case 2: return 0
            default: return UInt32(g.next() % 2048)
            }
        }
        let table = ramBase + 0xe000
        for iteration in 0..<3000 {
            if iteration % 4 == 0 {
                // A well-formed request between the hostile ones: the device must have recovered.
                drv.setUp()
                ram.store32(ramBase + 0x4000, 0); ram.store64(ramBase + 0x4008, g.next() % 128)
                if rng { drv.submit([(ramBase + 0x5000, 64, true)]) } else {
                    drv.submit([(ramBase + 0x4000, 16, false), (ramBase + 0x5000, 512, true), (ramBase + 0x6000, 1, true)])
                }
                drv.notify()
                #expect(drv.usedIdx == 1 && !drv.isBroken)
                continue
            }
            for i in 0..<size {
                let flags = UInt16(truncatingIfNeeded: g.next() % 4 == 0 ? g.next() : g.next() % 8)
                let next = UInt16(truncatingIfNeeded: g.next() % 5 == 0 ? g.next() : g.next() % UInt64(size))
                let isIndirect = g.next() % 10 == 0
                drv.writeDescriptor(i, addr: isIndirect ? table : pickAddress(), len: isIndirect ? 16 * UInt32(g.next() % 20) : pickLength(),
                                    flags: isIndirect ? 4 | flags & 3 : flags, next: next)
                drv.writeDescriptor(i, addr: pickAddress(), len: pickLength(), flags: UInt16(truncatingIfNeeded: g.next() % 8), next: UInt16(g.next() % 20), table: table)
            }
            // Requests in RAM that look like real block headers half the time.
            ram.store32(ramBase + 0x4000, UInt32(g.next() % 16)); ram.store64(ramBase + 0x4008, g.next() % 140)
            let count = g.next() % 4 == 0 ? UInt16(truncatingIfNeeded: g.next()) : UInt16(g.next() % UInt64(size + 2))
            for _ in 0..<count % 64 { drv.publish(UInt16(truncatingIfNeeded: g.next() % 5 == 0 ? g.next() : g.next() % UInt64(size))) }
            if count >= 64 { ram.store16(drv.avail + 2, drv.availIdx &+ count) }
            let before = drv.usedIdx
            drv.notify()
            let advanced = drv.usedIdx &- before
            #expect(advanced <= size, "one notification completed \(advanced) chains")
            completed += Int(advanced)
            if drv.isBroken {
                broken += 1
                #expect(dev.brokenReason != nil)
                drv.notify()  // ignored while broken
                #expect(drv.usedIdx == before &+ advanced)
            }
            if drv.isBroken || g.next() % 8 == 0 { drv.setUp() }
        }
        #expect(broken > 100)
        #expect(completed > 0)  // some random chains happen to be valid requests
    }

    /// Corrupted snapshot states are refused or restored into a usable device, never a crash.
    @Test func corruptedStates() throws {
        var g = SeededRandom(seed: 77)
        let wires = InterruptWires(hartCount: 2)
        let clock = VirtualClock(mode: .instructionCount(shift: 0))
        let ram = try makeRAM()
        let makers: [() -> Snapshottable & MMIODevice] = [
            { CLINT(hartCount: 2, wires: wires, clock: clock) },
            { PLIC(hartCount: 2, wires: wires) },
            { UART16550(irq: RecordingSink(), source: 10, backend: SerialCapture()) },
            { GoldfishRTC(irq: RecordingSink(), source: 11) },
            { SysconPower() },
            { VirtioMMIO(model: VirtioBlock(disk: MemoryDisk(size: 4096)), ram: ram, irq: RecordingSink(), source: 1) },
            { VirtioMMIO(model: VirtioNet(backend: LoopBackend(), mac: VirtioNet.defaultMAC(index: 0)), ram: ram, irq: RecordingSink(), source: 2) },
        ]
        var accepted = 0, refused = 0
        for make in makers {
            let original = make()
            if let v = original as? VirtioMMIO { _ = TestDriver(dev: v, ram: ram) }
            let good = saved(original)
            for _ in 0..<500 {
                var bad = good
                for _ in 0..<(1 + Int(g.next() % 4)) where !bad.isEmpty {
                    bad[Int(g.next() % UInt64(bad.count))] = UInt8(truncatingIfNeeded: g.next())
                }
                if g.next() % 5 == 0 { bad += [UInt8(truncatingIfNeeded: g.next())] }
                let d = make()
                do {
                    try restore(d, bad)
                    accepted += 1
                    for o in stride(from: 0 as UInt64, to: 0x100, by: 4) { _ = d.mmioRead(offset: o, size: 4) }
                } catch {
                    refused += 1
                    #expect("\(error)".split(separator: "\n").count == 1)
                }
            }
        }
        #expect(refused > 0 && accepted > 0)
    }
}
