import Testing
@testable import RivetDevices
import RivetMemory

@Suite struct PLICTests {
    let wires = InterruptWires(hartCount: 2)

    func ctx(_ c: UInt64) -> UInt64 { 0x20_0000 + 0x1000 * c }

    @Test func claimCompleteThresholdPriorities() {
        let p = PLIC(hartCount: 2, wires: wires)
        // Context 1 = hart 0 S-mode. Enable sources 10 and 33.
        p.mmioWrite(offset: 0x2000 + 0x80, size: 4, value: 1 << 10)
        p.mmioWrite(offset: 0x2000 + 0x80 + 4, size: 4, value: 1 << 1)
        p.mmioWrite(offset: 4 * 10, size: 4, value: 1)
        p.mmioWrite(offset: 4 * 33, size: 4, value: 3)
        #expect(p.mmioRead(offset: 4 * 33, size: 4) == 3)
        p.mmioWrite(offset: 4 * 33, size: 4, value: 0xff)
        #expect(p.mmioRead(offset: 4 * 33, size: 4) == 7)  // 3 bits
        p.mmioWrite(offset: 4 * 33, size: 4, value: 3)

        p.setLevel(source: 10, true)
        #expect(wires.pins[0] & InterruptWires.seip != 0)
        #expect(wires.pins[0] & InterruptWires.meip == 0)  // not enabled for M context
        #expect(wires.pins[1] == 0)
        #expect(p.mmioRead(offset: 0x1000, size: 4) == 1 << 10)
        p.setLevel(source: 33, true)
        #expect(p.mmioRead(offset: 0x1004, size: 4) == 1 << 1)

        // Threshold 2 hides source 10 (priority 1) but not 33 (priority 3).
        p.mmioWrite(offset: ctx(1), size: 4, value: 2)
        #expect(p.mmioRead(offset: ctx(1), size: 4) == 2)
        #expect(p.mmioRead(offset: ctx(1) + 4, size: 4) == 33)
        #expect(wires.pins[0] & InterruptWires.seip == 0)  // 33 in flight, 10 below threshold
        #expect(p.mmioRead(offset: ctx(1) + 4, size: 4) == 0)
        p.mmioWrite(offset: ctx(1), size: 4, value: 0)
        #expect(wires.pins[0] & InterruptWires.seip != 0)
        #expect(p.mmioRead(offset: ctx(1) + 4, size: 4) == 10)

        // Completing 33 while its line is still high makes it pending again.
        p.mmioWrite(offset: ctx(1) + 4, size: 4, value: 33)
        #expect(wires.pins[0] & InterruptWires.seip != 0)
        p.setLevel(source: 33, false)
        #expect(wires.pins[0] & InterruptWires.seip == 0)
        #expect(p.mmioRead(offset: ctx(1) + 4, size: 4) == 0)
        // Completing 10 after its line dropped leaves nothing pending.
        p.setLevel(source: 10, false)
        p.mmioWrite(offset: ctx(1) + 4, size: 4, value: 10)
        #expect(p.mmioRead(offset: 0x1000, size: 4) == 0)
        #expect(wires.pins[0] & InterruptWires.seip == 0)
    }

    @Test func tiesGoToLowestIDAndContextsAreSeparate() {
        let p = PLIC(hartCount: 2, wires: wires)
        for s in [5, 7, 9] as [UInt64] { p.mmioWrite(offset: 4 * s, size: 4, value: 2) }
        // Context 2 = hart 1 M-mode.
        p.mmioWrite(offset: 0x2000 + 0x80 * 2, size: 4, value: (1 << 5) | (1 << 7) | (1 << 9))
        p.setLevel(source: 9, true); p.setLevel(source: 7, true); p.setLevel(source: 5, true)
        #expect(wires.pins[1] & InterruptWires.meip != 0)
        #expect(wires.pins[0] == 0)
        #expect(p.mmioRead(offset: ctx(2) + 4, size: 4) == 5)
        #expect(p.mmioRead(offset: ctx(2) + 4, size: 4) == 7)
        #expect(p.mmioRead(offset: ctx(2) + 4, size: 4) == 9)
        #expect(p.mmioRead(offset: ctx(2) + 4, size: 4) == 0)
        #expect(wires.pins[1] & InterruptWires.meip == 0)
        // Priority 0 never interrupts; out-of-range sources are ignored.
        p.mmioWrite(offset: 4 * 5, size: 4, value: 0)
        p.mmioWrite(offset: ctx(2) + 4, size: 4, value: 5)
        #expect(wires.pins[1] & InterruptWires.meip == 0)
        p.setLevel(source: 0, true); p.setLevel(source: 96, true); p.setLevel(source: -1, true)
        #expect(p.mmioRead(offset: 0x1000, size: 4) & 1 == 0)
        // Non-32-bit accesses do nothing.
        #expect(p.mmioRead(offset: ctx(2) + 4, size: 8) == 0)
    }

    @Test func snapshotRoundTrip() throws {
        let p = PLIC(hartCount: 2, wires: wires)
        p.mmioWrite(offset: 4 * 3, size: 4, value: 4)
        p.mmioWrite(offset: 4 * 40, size: 4, value: 6)
        p.mmioWrite(offset: 0x2000, size: 4, value: 1 << 3)
        p.mmioWrite(offset: 0x2004, size: 4, value: 1 << 8)
        p.setLevel(source: 3, true); p.setLevel(source: 40, true)
        #expect(p.mmioRead(offset: ctx(0) + 4, size: 4) == 40)  // 40 now claimed
        let state = saved(p)
        let wires2 = InterruptWires(hartCount: 2)
        let q = PLIC(hartCount: 2, wires: wires2)
        try restore(q, state)
        #expect(saved(q) == state)
        #expect(wires2.pins[0] == wires.pins[0])
        #expect(q.mmioRead(offset: ctx(0) + 4, size: 4) == p.mmioRead(offset: ctx(0) + 4, size: 4))
        q.mmioWrite(offset: ctx(0) + 4, size: 4, value: 40); p.mmioWrite(offset: ctx(0) + 4, size: 4, value: 40)
        #expect(q.mmioRead(offset: ctx(0) + 4, size: 4) == 40)
        #expect(p.mmioRead(offset: ctx(0) + 4, size: 4) == 40)
        try expectTruncationsThrow(state) { PLIC(hartCount: 2, wires: InterruptWires(hartCount: 2)) }
        // A priority above 7 is refused.
        var bad = state
        bad[8 + 8 + 4 * 3] = 9
        #expect(throws: (any Error).self) { try restore(PLIC(hartCount: 2, wires: wires2), bad) }
    }
}
