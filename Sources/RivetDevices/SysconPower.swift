import RivetMemory
import RivetSnapshot

/// What the guest asked the machine to do through the test/syscon device.
public enum PowerRequest: Equatable {
    case powerOff(exitCode: Int32)
    case reset
}

/// QEMU's "sifive,test1" finisher at 0x100000, also used as the syscon for poweroff/reboot.
///
/// A write to offset 0 whose low 16 bits are 0x5555 powers off (exit code 0), 0x3333 fails with the exit
/// code in the upper 16 bits (1 if that is 0), 0x7777 resets. Other values are ignored, as in QEMU.
/// The run loop polls `request` and clears it.
public final class SysconPower: MMIODevice, Snapshottable {
    public static let pass: UInt32 = 0x5555, fail: UInt32 = 0x3333, resetValue: UInt32 = 0x7777

    @exclusivity(unchecked) public var request: PowerRequest?

    public init() {}

    public func mmioRead(offset: UInt64, size: Int) -> UInt64 { 0 }

    public func mmioWrite(offset: UInt64, size: Int, value: UInt64) {
        guard offset == 0, size >= 2 else { return }
        let status = UInt32(truncatingIfNeeded: value) & 0xffff
        let code = Int32((UInt32(truncatingIfNeeded: value) >> 16) & 0xffff)
        switch status {
        case SysconPower.pass: request = .powerOff(exitCode: 0)
        case SysconPower.fail: request = .powerOff(exitCode: code == 0 ? 1 : code)
        case SysconPower.resetValue: request = .reset
        default: break
        }
    }

    public var snapshotName: String { "syscon" }
    public var snapshotVersion: UInt32 { 1 }

    public func saveState(to w: inout StateWriter) {
        switch request {
        case nil: w.u8(0)
        case .powerOff(let code)?: w.u8(1); w.i64(Int64(code))
        case .reset?: w.u8(2)
        }
    }

    public func restoreState(from r: inout StateReader) throws {
        let kind = try r.u8()
        switch kind {
        case 0: request = nil
        case 1:
            let code = try r.i64()
            guard code >= 0 && code <= 0xffff else { throw SnapshotError("\(r.context): syscon exit code \(code) out of range") }
            request = .powerOff(exitCode: Int32(code))
        case 2: request = .reset
        default: throw SnapshotError("\(r.context): syscon request kind \(kind) is invalid")
        }
    }
}
