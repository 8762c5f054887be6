import Testing
@testable import RivetDevices

@Suite struct UARTTests {
    let sink = RecordingSink()
    let out = SerialCapture()
    func make() -> UART16550 { UART16550(irq: sink, source: 10, backend: out) }
    func rd(_ u: UART16550, _ o: UInt64) -> UInt8 { UInt8(u.mmioRead(offset: o, size: 1)) }
    func wr(_ u: UART16550, _ o: UInt64, _ v: UInt8) { u.mmioWrite(offset: o, size: 1, value: UInt64(v)) }

    @Test func transmitScratchDivisorAndLSR() {
        let u = make()
        for b in Array("hi\n".utf8) { wr(u, 0, b) }
        #expect(out.bytes == Array("hi\n".utf8))
        #expect(rd(u, 5) == 0x60)  // THRE | TEMT, no data
        wr(u, 7, 0xa5); #expect(rd(u, 7) == 0xa5)
        wr(u, 3, 0x83)  // DLAB
        wr(u, 0, 0x01); wr(u, 1, 0x02)
        #expect(rd(u, 0) == 0x01 && rd(u, 1) == 0x02)
        wr(u, 3, 0x03)
        #expect(rd(u, 3) == 0x03)
        #expect(rd(u, 1) == 0)  // IER again
        #expect(out.bytes.count == 3)  // divisor writes did not transmit
    }

    @Test func fifoAndReceiveInterrupts() {
        let u = make()
        #expect(rd(u, 2) == 0x01)  // no interrupt, FIFOs off
        // Without FIFO, one byte fills the holding register.
        #expect(u.receive(0x41))
        #expect(!u.canReceive)
        #expect(!u.receive(0x42))
        #expect(rd(u, 5) & 1 == 1)
        #expect(rd(u, 0) == 0x41)
        wr(u, 2, 0xc7)  // enable + clear FIFOs, trigger 14
        #expect(rd(u, 2) & 0xc0 == 0xc0)
        wr(u, 1, 0x01)  // RDA interrupt
        #expect(!sink.level(10))
        for i in 0..<16 { #expect(u.receive(UInt8(i))) }
        #expect(!u.receive(99))  // full: the machine retries later
        #expect(sink.level(10))
        #expect(rd(u, 2) & 0x0f == 0x04)  // at trigger level
        for i in 0..<3 { #expect(rd(u, 0) == UInt8(i)) }
        #expect(rd(u, 2) & 0x0f == 0x0c)  // below trigger: character timeout
        for i in 3..<16 { #expect(rd(u, 0) == UInt8(i)) }
        #expect(rd(u, 5) & 1 == 0)
        #expect(!sink.level(10))
        #expect(rd(u, 2) & 0x0f == 0x01)
        // FCR clear empties the FIFO.
        u.receive(1); u.receive(2)
        wr(u, 2, 0x03)
        #expect(rd(u, 5) & 1 == 0)
    }

    @Test func thrEmptyInterruptLikeThe8250Probe() {
        let u = make()
        wr(u, 1, 0)
        wr(u, 1, 0x02)  // enabling ETBEI with THR empty raises THRE
        #expect(sink.level(10))
        #expect(rd(u, 2) & 0x0f == 0x02)
        #expect(rd(u, 2) & 0x0f == 0x01)  // the IIR read acknowledged it
        #expect(!sink.level(10))
        wr(u, 1, 0); wr(u, 1, 0x02)  // again, as serial8250_do_startup does
        #expect(rd(u, 2) & 0x0f == 0x02)
        wr(u, 0, 0x55)  // each transmitted byte empties THR again
        #expect(sink.level(10))
        // RDA outranks THRE.
        wr(u, 1, 0x03)
        u.receive(7)
        #expect(rd(u, 2) & 0x0f == 0x0c || rd(u, 2) & 0x0f == 0x04)
    }

    @Test func loopbackAndModemStatus() {
        let u = make()
        #expect(rd(u, 6) & 0xf0 == 0xb0)
        wr(u, 4, 0x10 | 0x0a)  // loopback, RTS, OUT2 -> CTS, DCD
        #expect(rd(u, 6) & 0xf0 == 0x90)
        wr(u, 0, 0x5a)
        #expect(out.bytes.isEmpty)
        #expect(rd(u, 0) == 0x5a)
    }

    @Test func overrunIsReportedOnce() {
        let u = make()
        wr(u, 4, 0x10)  // loopback fills the receiver without the host check
        wr(u, 1, 0x04)
        wr(u, 0, 1); wr(u, 0, 2)  // no FIFO: second byte overruns
        #expect(rd(u, 2) & 0x0f == 0x06)
        #expect(rd(u, 5) & 0x02 != 0)
        #expect(rd(u, 5) & 0x02 == 0)
    }

    @Test func snapshotRoundTrip() throws {
        let u = make()
        wr(u, 2, 0x81); wr(u, 1, 0x01); wr(u, 7, 0x33); wr(u, 3, 0x1b)
        for b in [10, 20, 30] as [UInt8] { u.receive(b) }
        _ = rd(u, 0)
        let state = saved(u)
        let sink2 = RecordingSink()
        let v = UART16550(irq: sink2, source: 10, backend: SerialCapture())
        try restore(v, state)
        #expect(saved(v) == state)
        #expect(sink2.level(10) == sink.level(10))
        for o in [5, 2, 7, 3, 0, 0, 5, 2] as [UInt64] { #expect(rd(u, o) == rd(v, o)) }
        try expectTruncationsThrow(state) { UART16550(irq: RecordingSink(), source: 10, backend: SerialCapture()) }
        var bad = state
        bad[0] = 0xff  // IER with reserved bits
        #expect(throws: (any Error).self) { try restore(v, bad) }
    }
}
