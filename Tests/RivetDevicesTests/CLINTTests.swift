import Testing
@testable import RivetDevices
import RivetMemory

@Suite struct CLINTTests {
    let wires = InterruptWires(hartCount: 2)
    let clock = VirtualClock(mode: .instructionCount(shift: 0))

    func make() -> CLINT { CLINT(hartCount: 2, wires: wires, clock: clock) }

    @Test func msipDrivesWire() {
        let c = make()
        c.mmioWrite(offset: 4, size: 4, value: 1)
        #expect(wires.pins[1] & InterruptWires.msip != 0)
        #expect(wires.pins[0] & InterruptWires.msip == 0)
        #expect(c.mmioRead(offset: 4, size: 4) == 1)
        c.mmioWrite(offset: 4, size: 4, value: 0xfffe)  // only bit 0 counts
        #expect(wires.pins[1] & InterruptWires.msip == 0)
        #expect(c.mmioRead(offset: 4, size: 4) == 0)
        // Hart 2 does not exist: ignored, reads 0.
        c.mmioWrite(offset: 8, size: 4, value: 1)
        #expect(c.mmioRead(offset: 8, size: 4) == 0)
    }

    @Test func timerComparesAgainstMtime() {
        let c = make()
        clock.retiredInstructions = 1000
        #expect(c.mmioRead(offset: 0xbff8, size: 8) == 1000)
        #expect(c.mmioRead(offset: 0xbffc, size: 4) == 0)
        // mtimecmp for hart 1 via two 32-bit halves.
        c.mmioWrite(offset: 0x4008, size: 4, value: 1500)
        c.mmioWrite(offset: 0x400c, size: 4, value: 0)
        #expect(c.mmioRead(offset: 0x4008, size: 8) == 1500)
        #expect(wires.pins[1] & InterruptWires.mtip == 0)
        #expect(c.nextDeadline() == 1500)
        clock.retiredInstructions = 1499
        c.updateTimers()
        #expect(wires.pins[1] & InterruptWires.mtip == 0)
        clock.retiredInstructions = 1500
        c.updateTimers()
        #expect(wires.pins[1] & InterruptWires.mtip != 0)
        #expect(wires.pins[0] & InterruptWires.mtip == 0)  // hart 0's compare is still all ones
        // Moving the compare value forward clears MTIP at once.
        c.mmioWrite(offset: 0x4008, size: 8, value: 5000)
        #expect(wires.pins[1] & InterruptWires.mtip == 0)
        // Writing mtime sets the clock.
        c.mmioWrite(offset: 0xbff8, size: 8, value: 6000)
        #expect(clock.mtime == 6000)
        #expect(wires.pins[1] & InterruptWires.mtip != 0)
        c.mmioWrite(offset: 0xbffc, size: 4, value: 1)
        #expect(clock.mtime == (1 << 32) | 6000)
    }

    @Test func snapshotRoundTrip() throws {
        let c = make()
        c.mmioWrite(offset: 0, size: 4, value: 1)
        c.mmioWrite(offset: 0x4000, size: 8, value: 777)
        clock.retiredInstructions = 500
        let state = saved(c)
        let wires2 = InterruptWires(hartCount: 2)
        let clock2 = VirtualClock(mode: .instructionCount(shift: 0))
        let d = CLINT(hartCount: 2, wires: wires2, clock: clock2)
        try restore(d, state)
        #expect(clock2.mtime == 500)
        #expect(wires2.pins[0] & InterruptWires.msip != 0)
        #expect(d.mmioRead(offset: 0x4000, size: 8) == 777)
        #expect(saved(d) == state)
        clock.retiredInstructions = 800; clock2.retiredInstructions = 800
        c.updateTimers(); d.updateTimers()
        #expect(wires.pins[0] == wires2.pins[0])
        try expectTruncationsThrow(state) { CLINT(hartCount: 2, wires: InterruptWires(hartCount: 2), clock: clock2) }
        // A state for another hart count is refused.
        #expect(throws: (any Error).self) { try restore(CLINT(hartCount: 1, wires: wires2, clock: clock2), state) }
    }
}
