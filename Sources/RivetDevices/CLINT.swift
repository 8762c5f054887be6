import RivetMemory
import RivetSnapshot

/// The core-local interruptor of QEMU's virt board ("riscv,clint0", ACLINT MSWI + MTIMER layout).
///
/// msip[h] at 4*h drives each hart's MSIP pin; mtimecmp[h] at 0x4000 + 8*h and mtime at 0xbff8 drive MTIP.
/// mtime itself lives in the machine's `VirtualClock`; the CLINT only reads it and sets it on guest writes.
/// Registers accept 1-, 2-, 4- and 8-byte accesses that stay inside one register (4-byte lo/hi halves are
/// the usual case); accesses that straddle registers read 0 and write nothing.
public final class CLINT: MMIODevice, Snapshottable {
    static let msipBase: UInt64 = 0x0000
    static let mtimecmpBase: UInt64 = 0x4000
    static let mtimeOffset: UInt64 = 0xbff8
    /// The layout leaves room for 4095 harts.
    public static let maxHarts = 4095

    public let hartCount: Int
    let wires: InterruptWires
    let clock: VirtualClock
    /// Bit 0 of each hart's msip register.
    @exclusivity(unchecked) public private(set) var msip: [Bool]
    @exclusivity(unchecked) public private(set) var mtimecmp: [UInt64]

    public init(hartCount: Int, wires: InterruptWires, clock: VirtualClock) {
        precondition(hartCount >= 1 && hartCount <= CLINT.maxHarts, "CLINT: hart count \(hartCount) out of range")
        self.hartCount = hartCount
        self.wires = wires
        self.clock = clock
        msip = Array(repeating: false, count: hartCount)
        // All ones: no timer interrupt until software programs a compare value.
        mtimecmp = Array(repeating: .max, count: hartCount)
    }

    /// Machine reset.
    public func reset() {
        for h in 0..<hartCount {
            msip[h] = false
            mtimecmp[h] = .max
            wires.set(hart: h, InterruptWires.msip, false)
        }
        updateTimers()
    }

    // MARK: MMIO

    public func mmioRead(offset: UInt64, size: Int) -> UInt64 {
        if let (hart, shift) = locate(offset, size: size, base: CLINT.msipBase, stride: 4) {
            return Bytes.extract(msip[hart] ? 1 : 0, byte: shift, size: size)
        }
        if let (hart, shift) = locate(offset, size: size, base: CLINT.mtimecmpBase, stride: 8) {
            return Bytes.extract(mtimecmp[hart], byte: shift, size: size)
        }
        if offset >= CLINT.mtimeOffset, offset - CLINT.mtimeOffset + UInt64(size) <= 8 {
            return Bytes.extract(clock.mtime, byte: Int(offset - CLINT.mtimeOffset), size: size)
        }
        return 0
    }

    public func mmioWrite(offset: UInt64, size: Int, value: UInt64) {
        if let (hart, shift) = locate(offset, size: size, base: CLINT.msipBase, stride: 4) {
            // Only bit 0 exists; writes to the upper bytes of the word change nothing.
            guard shift == 0 else { return }
            msip[hart] = value & 1 != 0
            wires.set(hart: hart, InterruptWires.msip, msip[hart])
        } else if let (hart, shift) = locate(offset, size: size, base: CLINT.mtimecmpBase, stride: 8) {
            mtimecmp[hart] = Bytes.merge(mtimecmp[hart], byte: shift, size: size, value: value)
            updateTimer(hart: hart, now: clock.mtime)
        } else if offset >= CLINT.mtimeOffset, offset - CLINT.mtimeOffset + UInt64(size) <= 8 {
            let now = clock.mtime
            clock.set(mtime: Bytes.merge(now, byte: Int(offset - CLINT.mtimeOffset), size: size, value: value))
            updateTimers()
        }
    }

    /// (hart, byte offset inside the register) for an access inside one register of an array, or nil.
    @inline(__always)
    private func locate(_ offset: UInt64, size: Int, base: UInt64, stride: UInt64) -> (Int, Int)? {
        guard offset >= base else { return nil }
        let rel = offset - base
        let index = rel / stride
        guard index < UInt64(hartCount) else { return nil }
        let shift = rel % stride
        guard shift + UInt64(size) <= stride else { return nil }
        return (Int(index), Int(shift))
    }

    // MARK: Timers

    @inline(__always)
    private func updateTimer(hart: Int, now: UInt64) {
        wires.set(hart: hart, InterruptWires.mtip, now >= mtimecmp[hart])
    }

    /// Sets or clears MTIP on every hart from the current mtime (called by the run loop between slices).
    public func updateTimers() {
        let now = clock.mtime
        for h in 0..<hartCount { updateTimer(hart: h, now: now) }
    }

    /// The earliest mtimecmp: the run loop may sleep until mtime reaches it (UInt64.max = never).
    public func nextDeadline() -> UInt64 {
        var d = UInt64.max
        for v in mtimecmp where v < d { d = v }
        return d
    }

    /// The earliest mtimecmp still ahead of `now` (UInt64.max = none). A compare value already passed keeps
    /// MTIP high and cannot wake a hart again, so a sleeper waits for the next one (or a pin change).
    public func nextDeadline(after now: UInt64) -> UInt64 {
        var d = UInt64.max
        for v in mtimecmp where v > now && v < d { d = v }
        return d
    }

    // MARK: Snapshot

    public var snapshotName: String { "clint" }
    public var snapshotVersion: UInt32 { 1 }

    /// Saves msip, mtimecmp and the current mtime. Restoring sets the clock back to the saved mtime
    /// (the guest sees time frozen across the snapshot; the machine may advance the clock afterwards).
    public func saveState(to w: inout StateWriter) {
        w.int(hartCount)
        for h in 0..<hartCount { w.bool(msip[h]); w.u64(mtimecmp[h]) }
        w.u64(clock.mtime)
    }

    public func restoreState(from r: inout StateReader) throws {
        let n = try r.int()
        guard n == hartCount else { throw SnapshotError("\(r.context): CLINT state is for \(n) harts, machine has \(hartCount)") }
        var newMsip = msip, newCmp = mtimecmp
        for h in 0..<hartCount { newMsip[h] = try r.bool(); newCmp[h] = try r.u64() }
        let mtime = try r.u64()
        msip = newMsip
        mtimecmp = newCmp
        clock.set(mtime: mtime)
        for h in 0..<hartCount { wires.set(hart: h, InterruptWires.msip, msip[h]) }
        updateTimers()
    }
}
