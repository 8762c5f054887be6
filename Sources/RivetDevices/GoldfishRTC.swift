#if canImport(Glibc)
import Glibc
#endif
import RivetMemory
import RivetSnapshot

/// The Goldfish real-time clock ("google,goldfish-rtc") of QEMU's virt board.
///
/// TIME_LOW/TIME_HIGH give nanoseconds since the Unix epoch from the host's realtime clock plus an offset
/// the guest can change by writing the time (HIGH first, then LOW commits). Reading LOW latches HIGH so that
/// the two halves belong together. A simple one-shot alarm is implemented: it fires (status + interrupt when
/// enabled) when the time passes it, checked on register access and by `updateAlarm()`.
public final class GoldfishRTC: MMIODevice, Snapshottable {
    enum Reg {
        static let timeLow: UInt64 = 0x00, timeHigh: UInt64 = 0x04, alarmLow: UInt64 = 0x08, alarmHigh: UInt64 = 0x0c
        static let irqEnabled: UInt64 = 0x10, clearAlarm: UInt64 = 0x14, alarmStatus: UInt64 = 0x18
        static let clearInterrupt: UInt64 = 0x1c
    }

    let irq: InterruptSink
    let source: Int
    /// Guest time minus host realtime, in nanoseconds.
    @exclusivity(unchecked) public private(set) var offset: Int64 = 0
    @exclusivity(unchecked) public private(set) var latchedHigh: UInt32 = 0
    /// Written by TIME_HIGH / ALARM_HIGH, used when the LOW half is written.
    @exclusivity(unchecked) public private(set) var pendingTimeHigh: UInt32 = 0
    @exclusivity(unchecked) public private(set) var pendingAlarmHigh: UInt32 = 0
    @exclusivity(unchecked) public private(set) var alarm: UInt64 = 0
    @exclusivity(unchecked) public private(set) var alarmArmed = false
    @exclusivity(unchecked) public private(set) var irqEnabled = false
    @exclusivity(unchecked) public private(set) var interruptPending = false
    /// Host clock; replaceable for tests.
    @exclusivity(unchecked) public var hostNanoseconds: () -> UInt64 = GoldfishRTC.realtimeNanoseconds

    public init(irq: InterruptSink, source: Int) {
        self.irq = irq
        self.source = source
    }

    public static func realtimeNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Guest-visible time in nanoseconds since the epoch.
    public var now: UInt64 { UInt64(bitPattern: Int64(bitPattern: hostNanoseconds()) &+ offset) }

    public func reset() {
        alarmArmed = false; irqEnabled = false; interruptPending = false
        latchedHigh = 0; pendingTimeHigh = 0; pendingAlarmHigh = 0; alarm = 0
        irq.setLevel(source: source, false)
    }

    /// Fires the alarm if its time has come (the run loop may call this periodically).
    public func updateAlarm() {
        if alarmArmed && now >= alarm {
            alarmArmed = false
            interruptPending = true
        }
        irq.setLevel(source: source, interruptPending && irqEnabled)
    }

    public func mmioRead(offset off: UInt64, size: Int) -> UInt64 {
        guard size == 4, off & 3 == 0 else { return 0 }
        updateAlarm()
        switch off {
        case Reg.timeLow:
            let t = now
            latchedHigh = UInt32(truncatingIfNeeded: t >> 32)
            return t & 0xffff_ffff
        case Reg.timeHigh: return UInt64(latchedHigh)
        case Reg.alarmLow: return alarm & 0xffff_ffff
        case Reg.alarmHigh: return alarm >> 32
        case Reg.irqEnabled: return irqEnabled ? 1 : 0
        case Reg.alarmStatus: return alarmArmed ? 1 : 0
        default: return 0
        }
    }

    public func mmioWrite(offset off: UInt64, size: Int, value: UInt64) {
        guard size == 4, off & 3 == 0 else { return }
        let v = UInt32(truncatingIfNeeded: value)
        switch off {
        case Reg.timeHigh: pendingTimeHigh = v
        case Reg.timeLow:
            let t = UInt64(pendingTimeHigh) << 32 | UInt64(v)
            offset = Int64(bitPattern: t) &- Int64(bitPattern: hostNanoseconds())
        case Reg.alarmHigh: pendingAlarmHigh = v
        case Reg.alarmLow:
            alarm = UInt64(pendingAlarmHigh) << 32 | UInt64(v)
            alarmArmed = true
        case Reg.irqEnabled: irqEnabled = v & 1 != 0
        case Reg.clearAlarm: alarmArmed = false
        case Reg.clearInterrupt: interruptPending = false
        default: break
        }
        updateAlarm()
    }

    // MARK: Snapshot

    public var snapshotName: String { "rtc" }
    public var snapshotVersion: UInt32 { 1 }

    /// The offset to host realtime is saved, so a restored guest reads current wall-clock time.
    public func saveState(to w: inout StateWriter) {
        w.i64(offset); w.u32(latchedHigh); w.u32(pendingTimeHigh); w.u32(pendingAlarmHigh); w.u64(alarm)
        w.bool(alarmArmed); w.bool(irqEnabled); w.bool(interruptPending)
    }

    public func restoreState(from r: inout StateReader) throws {
        let o = try r.i64(), lh = try r.u32(), pth = try r.u32(), pah = try r.u32(), a = try r.u64()
        let armed = try r.bool(), enabled = try r.bool(), pending = try r.bool()
        offset = o; latchedHigh = lh; pendingTimeHigh = pth; pendingAlarmHigh = pah; alarm = a
        alarmArmed = armed; irqEnabled = enabled; interruptPending = pending
        updateAlarm()
    }
}
