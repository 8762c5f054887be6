import RivetMemory
import RivetSnapshot

/// Where the UART's transmitted bytes go (a terminal, a log, a test buffer).
public protocol SerialBackend: AnyObject {
    func serialWrite(_ byte: UInt8)
}

/// A 16550A UART ("ns16550a", reg-shift 0, 1-byte registers) as on QEMU's virt board.
///
/// Transmission is instantaneous (THR and the shift register are always empty again right after a write),
/// so LSR always shows THRE|TEMT. The receive side has a 16-byte FIFO filled by `receive(_:)`.
/// Interrupts: receiver line status (overrun), received data available (at the FIFO trigger level) or
/// character timeout (data below the trigger level, reported at once since there is no character clock),
/// THR empty, and modem status, in the 16550's priority order.
public final class UART16550: MMIODevice, Snapshottable {
    public static let fifoSize = 16

    // IER bits
    static let ierRDA: UInt8 = 0x01, ierTHRE: UInt8 = 0x02, ierRLS: UInt8 = 0x04, ierMS: UInt8 = 0x08
    // LSR bits
    static let lsrDR: UInt8 = 0x01, lsrOE: UInt8 = 0x02, lsrTHRE: UInt8 = 0x20, lsrTEMT: UInt8 = 0x40
    // IIR values
    static let iirNone: UInt8 = 0x01, iirRLS: UInt8 = 0x06, iirRDA: UInt8 = 0x04, iirTimeout: UInt8 = 0x0c
    static let iirTHRE: UInt8 = 0x02, iirMS: UInt8 = 0x00

    let irq: InterruptSink
    let source: Int
    let backend: SerialBackend

    // Register state.
    @exclusivity(unchecked) public private(set) var ier: UInt8 = 0
    @exclusivity(unchecked) public private(set) var lcr: UInt8 = 0
    @exclusivity(unchecked) public private(set) var mcr: UInt8 = 0
    @exclusivity(unchecked) public private(set) var scr: UInt8 = 0
    @exclusivity(unchecked) public private(set) var dll: UInt8 = 0x0c  // 9600 baud at 1.8432 MHz, the usual reset divisor
    @exclusivity(unchecked) public private(set) var dlm: UInt8 = 0
    @exclusivity(unchecked) public private(set) var fifoEnabled = false
    /// FCR bits 6-7.
    @exclusivity(unchecked) public private(set) var triggerSelect: UInt8 = 0
    /// Sticky LSR error bits (only overrun happens here), cleared by reading LSR.
    @exclusivity(unchecked) public private(set) var lsrErrors: UInt8 = 0
    /// THR-empty interrupt pending (set when THR empties with ETBEI on; cleared by IIR read or THR write).
    @exclusivity(unchecked) public private(set) var thrEmptyPending = false
    /// Modem status delta bits (MSR 0-3).
    @exclusivity(unchecked) public private(set) var msrDelta: UInt8 = 0
    // Receive FIFO as a ring.
    @exclusivity(unchecked) public private(set) var rx: [UInt8] = Array(repeating: 0, count: UART16550.fifoSize)
    @exclusivity(unchecked) public private(set) var rxHead = 0
    @exclusivity(unchecked) public private(set) var rxCount = 0
    @exclusivity(unchecked) private var lineLevel = false

    public init(irq: InterruptSink, source: Int, backend: SerialBackend) {
        self.irq = irq
        self.source = source
        self.backend = backend
    }

    public func reset() {
        ier = 0; lcr = 0; mcr = 0; scr = 0; dll = 0x0c; dlm = 0
        fifoEnabled = false; triggerSelect = 0; lsrErrors = 0; thrEmptyPending = false; msrDelta = 0
        rxHead = 0; rxCount = 0
        updateInterrupt(force: true)
    }

    // MARK: Host side

    var rxCapacity: Int { fifoEnabled ? UART16550.fifoSize : 1 }

    /// True when `receive` would accept a byte.
    public var canReceive: Bool { rxCount < rxCapacity }

    /// Delivers one byte from the host; false (byte not taken) when the receive FIFO is full.
    @discardableResult
    public func receive(_ byte: UInt8) -> Bool {
        guard canReceive else { return false }
        push(byte)
        updateInterrupt()
        return true
    }

    private func push(_ byte: UInt8) {
        guard rxCount < rxCapacity else { lsrErrors |= UART16550.lsrOE; return }
        rx[(rxHead + rxCount) % UART16550.fifoSize] = byte
        rxCount += 1
    }

    private func pop() -> UInt8 {
        guard rxCount > 0 else { return 0 }
        let b = rx[rxHead]
        rxHead = (rxHead + 1) % UART16550.fifoSize
        rxCount -= 1
        return b
    }

    // MARK: Registers

    var dlab: Bool { lcr & 0x80 != 0 }
    var loopback: Bool { mcr & 0x10 != 0 }

    var triggerLevel: Int {
        guard fifoEnabled else { return 1 }
        switch triggerSelect { case 0: return 1; case 1: return 4; case 2: return 8; default: return 14 }
    }

    var lsr: UInt8 {
        UART16550.lsrTHRE | UART16550.lsrTEMT | lsrErrors | (rxCount > 0 ? UART16550.lsrDR : 0)
    }

    var msr: UInt8 {
        let lines: UInt8
        if loopback {
            // DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD, as the 8250 driver's loopback probe expects.
            lines = (mcr & 0x01) << 5 | (mcr & 0x02) << 3 | (mcr & 0x04) << 4 | (mcr & 0x08) << 4
        } else {
            lines = 0xb0  // DCD, DSR, CTS: a connected terminal
        }
        return lines | msrDelta
    }

    /// The highest-priority pending interrupt, as IIR bits 0-3.
    var interruptID: UInt8 {
        if ier & UART16550.ierRLS != 0 && lsrErrors != 0 { return UART16550.iirRLS }
        if ier & UART16550.ierRDA != 0 && rxCount > 0 {
            return rxCount >= triggerLevel ? UART16550.iirRDA : UART16550.iirTimeout
        }
        if ier & UART16550.ierTHRE != 0 && thrEmptyPending { return UART16550.iirTHRE }
        if ier & UART16550.ierMS != 0 && msrDelta != 0 { return UART16550.iirMS }
        return UART16550.iirNone
    }

    private func updateInterrupt(force: Bool = false) {
        let high = interruptID != UART16550.iirNone
        if high != lineLevel || force {
            lineLevel = high
            irq.setLevel(source: source, high)
        }
    }

    public func mmioRead(offset: UInt64, size: Int) -> UInt64 {
        guard offset < 8 else { return 0 }
        let v: UInt8
        switch offset {
        case 0:
            if dlab { v = dll } else { v = pop() }
        case 1:
            v = dlab ? dlm : ier
        case 2:
            let id = interruptID
            if id == UART16550.iirTHRE { thrEmptyPending = false }  // reading IIR acknowledges THRE
            v = id | (fifoEnabled ? 0xc0 : 0)
        case 3: v = lcr
        case 4: v = mcr
        case 5:
            v = lsr
            lsrErrors = 0
        case 6:
            v = msr
            msrDelta = 0
        default: v = scr
        }
        updateInterrupt()
        return UInt64(v)
    }

    public func mmioWrite(offset: UInt64, size: Int, value: UInt64) {
        guard offset < 8 else { return }
        let v = UInt8(truncatingIfNeeded: value)
        switch offset {
        case 0:
            if dlab { dll = v; break }
            if loopback { push(v) } else { backend.serialWrite(v) }
            // The byte left at once: THR is empty again.
            thrEmptyPending = true
        case 1:
            if dlab { dlm = v; break }
            let old = ier
            ier = v & 0x0f
            // Enabling ETBEI while THR is empty raises THRE at once (the 8250 driver tests this).
            if old & UART16550.ierTHRE == 0 && ier & UART16550.ierTHRE != 0 { thrEmptyPending = true }
        case 2:
            let enable = v & 0x01 != 0
            if enable != fifoEnabled { rxHead = 0; rxCount = 0 }
            fifoEnabled = enable
            if v & 0x02 != 0 { rxHead = 0; rxCount = 0 }
            // Bit 2 clears the (always empty) transmit FIFO.
            triggerSelect = (v >> 6) & 3
        case 3: lcr = v
        case 4: mcr = v & 0x1f
        case 5, 6: break  // LSR and MSR are read-only
        default: scr = v
        }
        updateInterrupt()
    }

    // MARK: Snapshot

    public var snapshotName: String { "uart.\(source)" }
    public var snapshotVersion: UInt32 { 1 }

    public func saveState(to w: inout StateWriter) {
        for b in [ier, lcr, mcr, scr, dll, dlm, triggerSelect, lsrErrors, msrDelta] { w.u8(b) }
        w.bool(fifoEnabled)
        w.bool(thrEmptyPending)
        // FIFO contents in order, oldest first.
        var bytes: [UInt8] = []
        for i in 0..<rxCount { bytes.append(rx[(rxHead + i) % UART16550.fifoSize]) }
        w.data(bytes)
    }

    public func restoreState(from r: inout StateReader) throws {
        let newIER = try r.u8(), newLCR = try r.u8(), newMCR = try r.u8(), newSCR = try r.u8()
        let newDLL = try r.u8(), newDLM = try r.u8(), newTrigger = try r.u8(), newErrors = try r.u8()
        let newDelta = try r.u8()
        let newFifo = try r.bool(), newTHRE = try r.bool()
        let bytes = try r.data(limit: UART16550.fifoSize)
        func check(_ ok: Bool, _ what: String) throws {
            if !ok { throw SnapshotError("\(r.context): UART \(what) is out of range") }
        }
        try check(newIER & ~0x0f == 0, "IER")
        try check(newMCR & ~0x1f == 0, "MCR")
        try check(newTrigger <= 3, "FIFO trigger")
        try check(newErrors & ~UART16550.lsrOE == 0, "LSR error bits")
        try check(newDelta & ~0x0f == 0, "MSR delta bits")
        try check(bytes.count <= (newFifo ? UART16550.fifoSize : 1), "receive FIFO length")
        ier = newIER; lcr = newLCR; mcr = newMCR; scr = newSCR; dll = newDLL; dlm = newDLM
        triggerSelect = newTrigger; lsrErrors = newErrors; msrDelta = newDelta
        fifoEnabled = newFifo; thrEmptyPending = newTHRE
        rxHead = 0; rxCount = bytes.count
        for (i, b) in bytes.enumerated() { rx[i] = b }
        updateInterrupt(force: true)
    }
}
