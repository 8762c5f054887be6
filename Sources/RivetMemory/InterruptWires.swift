/// The interrupt pins of the harts, driven by the platform's interrupt sources (CLINT, PLIC).
///
/// Each hart has one word whose bits are the mip bits that hardware drives: MSIP (3), MTIP (7), SEIP (9),
/// MEIP (11). Devices set and clear bits; a hart merges the word into its mip between blocks.
/// Everything runs on the machine's thread, so no atomics are needed.
public final class InterruptWires {
    public static let msip: UInt64 = 1 << 3
    public static let mtip: UInt64 = 1 << 7
    public static let seip: UInt64 = 1 << 9
    public static let meip: UInt64 = 1 << 11

    public let hartCount: Int
    public let pins: UnsafeMutablePointer<UInt64>
    /// Bumped on every change so the run loop can notice new interrupts cheaply.
    public private(set) var generation: UInt64 = 0

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
        if new != old { pins[hart] = new; generation &+= 1 }
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
    public var offset: UInt64 = 0
    var hostStartNs: UInt64
    /// In icount mode the run loop stores the total retired instructions here.
    public var retiredInstructions: UInt64 = 0

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
            return offset &+ (VirtualClock.hostNanoseconds() &- hostStartNs) / 100
        case .instructionCount(let shift):
            return offset &+ (retiredInstructions >> UInt64(shift))
        }
    }

    /// Sets mtime to `value` from now on (guest write to mtime, snapshot restore).
    public func set(mtime value: UInt64) {
        switch mode {
        case .realTime:
            hostStartNs = VirtualClock.hostNanoseconds(); offset = value
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
