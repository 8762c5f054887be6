/// The interrupt pins of the harts, driven by the platform's interrupt sources (CLINT, PLIC).
///
/// Each hart has one word whose bits are the mip bits that hardware drives: MSIP (3), MTIP (7), SEIP (9),
/// MEIP (11). Devices set and clear bits; a hart merges the word into its mip between blocks.
/// With one host thread per hart (HartThreads.swift), devices change pins holding the machine's device
/// lock (so changes never race each other) and store each word atomically; harts read the words without
/// the lock (an aligned 8-byte load), and `onRaise` wakes a hart that sleeps in wfi.
public final class InterruptWires {
    public static let msip: UInt64 = 1 << 3
    public static let mtip: UInt64 = 1 << 7
    public static let seip: UInt64 = 1 << 9
    public static let meip: UInt64 = 1 << 11

    public let hartCount: Int
    public let pins: UnsafeMutablePointer<UInt64>
    /// Bumped on every change so the run loop can notice new interrupts cheaply.
    @exclusivity(unchecked) public private(set) var generation: UInt64 = 0
    /// Called (device lock held) when a pin of `hart` goes from low to high: wakes a hart thread in wfi.
    /// Set before hart threads start.
    @exclusivity(unchecked) public var onRaise: ((Int) -> Void)? = nil

    public init(hartCount: Int) {
        self.hartCount = hartCount
        pins = .allocate(capacity: max(hartCount, 1))
        pins.initialize(repeating: 0, count: max(hartCount, 1))
    }
    deinit { pins.deallocate() }

    @inline(__always)
    public func set(hart: Int, _ bit: UInt64, _ level: Bool) {
        guard hart >= 0 && hart < hartCount else { return }
        let old = pins[hart]
        let new = level ? old | bit : old & ~bit
        if new != old {
            UnsafeAtomic<UInt64>(at: UnsafeMutableRawPointer(pins + hart).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
                .store(new, ordering: .releasing)
            generation &+= 1
            if new & ~old != 0, let raise = onRaise { raise(hart) }
        }
    }

    public func reset() {
        for h in 0..<hartCount { pins[h] = 0 }
        generation &+= 1
    }
}

/// The platform's time base (mtime): 10 MHz as on QEMU's virt board.
///
/// In real-time mode it follows the host's monotonic clock; in deterministic mode (`--icount`) it is
/// derived from retired instructions only, so runs repeat exactly.
public final class VirtualClock {
    public static let frequency: UInt64 = 10_000_000

    public enum Mode: Equatable { case realTime, instructionCount(shift: Int) }
    public let mode: Mode
    /// mtime = base + elapsed; `base` is what a snapshot restores.
    @exclusivity(unchecked) public var offset: UInt64 = 0
    @exclusivity(unchecked) var hostStartNs: UInt64
    /// In icount mode the run loop stores the total retired instructions here.
    @exclusivity(unchecked) public var retiredInstructions: UInt64 = 0
    /// While the machine is paused, mtime holds still at this value (real-time mode).
    @exclusivity(unchecked) public private(set) var frozenAt: UInt64? = nil
    /// The mtime the last restored "clock" section holds.
    @exclusivity(unchecked) public var restoredMTime: UInt64? = nil

    public init(mode: Mode) {
        self.mode = mode
        hostStartNs = VirtualClock.hostNanoseconds()
    }

    public static func hostNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Current mtime in 10 MHz ticks.
    public var mtime: UInt64 {
        switch mode {
        case .realTime:
            if let f = frozenAt { return f }
            return offset &+ (VirtualClock.hostNanoseconds() &- hostStartNs) / 100
        case .instructionCount(let shift):
            return offset &+ (retiredInstructions >> UInt64(shift))
        }
    }

    /// Machine paused: mtime stops. The guest must not see the paused interval as elapsed time.
    public func freeze() {
        if frozenAt == nil { frozenAt = mtime }
    }

    /// Machine resumed: mtime continues from where it stopped (the offset is rebased on host time).
    public func thaw() {
        guard let f = frozenAt else { return }
        frozenAt = nil
        set(mtime: f)
    }

    /// Sets mtime to `value` from now on (guest write to mtime, snapshot restore).
    public func set(mtime value: UInt64) {
        switch mode {
        case .realTime:
            hostStartNs = VirtualClock.hostNanoseconds(); offset = value
            if frozenAt != nil { frozenAt = value }
        case .instructionCount(let shift):
            offset = value &- (retiredInstructions >> UInt64(shift))
        }
    }

    /// Host nanoseconds until mtime reaches `deadline` (0 if already passed); nil in icount mode.
    public func nanoseconds(until deadline: UInt64) -> UInt64? {
        guard case .realTime = mode else { return nil }
        let now = mtime
        return deadline <= now ? 0 : (deadline - now) &* 100
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Atomics
import RivetSnapshot

/// Wire levels are derived state (the CLINT and PLIC drive them), saved so a restored machine has the
/// same pending interrupts before any device re-drives its line.
extension InterruptWires: Snapshottable {
    public var snapshotName: String { "wires" }
    public var snapshotVersion: UInt32 { 1 }
    static let drivenBits = msip | mtip | seip | meip

    public func saveState(to w: inout StateWriter) {
        w.int(hartCount)
        for h in 0..<hartCount { w.u64(pins[h]) }
    }

    public func restoreState(from r: inout StateReader) throws {
        let n = try r.int()
        guard n == hartCount else { throw SnapshotError("\(r.context): state is for \(n) harts, machine has \(hartCount)") }
        var values: [UInt64] = []
        for _ in 0..<n { values.append(try r.u64()) }
        try r.expectEnd()
        for h in 0..<n {
            guard values[h] & ~InterruptWires.drivenBits == 0 else {
                throw SnapshotError("\(r.context): hart \(h) has undriven interrupt bits 0x\(String(values[h], radix: 16))")
            }
        }
        for h in 0..<n { pins[h] = values[h] }
        generation &+= 1
    }
}

/// The clock's mode must match the machine's; its value is what the guest's mtime reads. The machine
/// applies `restoredMTime` once every hart's instruction count is back (icount derives mtime from it).
extension VirtualClock: Snapshottable {
    public var snapshotName: String { "clock" }
    public var snapshotVersion: UInt32 { 1 }

    public func saveState(to w: inout StateWriter) {
        switch mode {
        case .realTime: w.u8(0); w.u8(0)
        case .instructionCount(let shift): w.u8(1); w.u8(UInt8(shift))
        }
        w.u64(mtime)
    }

    public func restoreState(from r: inout StateReader) throws {
        let kind = try r.u8(), shift = try r.u8()
        let value = try r.u64()
        try r.expectEnd()
        let saved: Mode
        switch kind {
        case 0: saved = .realTime
        case 1: saved = .instructionCount(shift: Int(shift))
        default: throw SnapshotError("\(r.context): unknown clock mode \(kind)")
        }
        guard saved == mode else {
            throw SnapshotError("\(r.context): the snapshot was taken \(kind == 1 ? "with" : "without") --icount; this machine runs \(kind == 1 ? "without" : "with") it")
        }
        restoredMTime = value
        set(mtime: value)
    }
}
