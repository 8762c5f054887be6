#if canImport(Glibc)
import Glibc
#endif
import RivetMemory

extension UserProcess {
    /// Maps the vDSO (VDSOImage, built from tools/vdso/vdso.S) read+execute and stores the host's monotonic
    /// clock at time-CSR zero in it, so the guest computes CLOCK_MONOTONIC from `rdtime` alone.
    /// Returns its address for AT_SYSINFO_EHDR, or 0 when the environment asks for none (RIVET_NO_VDSO=1,
    /// for measuring the system-call path).
    func mapVDSO() throws -> UInt64 {
        if let v = getenv("RIVET_NO_VDSO"), String(cString: v) == "1" { return 0 }
        let va = AddressSpace.vdsoVA
        let len = AddressSpace.pageAlignUp(UInt64(VDSOImage.bytes.count))
        try mm.map(va, len, prot: Prot.read | Prot.exec)
        guard mm.write(va, VDSOImage.bytes, force: true) else { throw UserError("cannot place the vDSO") }
        // The time CSR counts 100 ns ticks of the host's monotonic clock from `clock`'s start.
        var mono = timespec()
        let ticks = clock.mtime
        clock_gettime(CLOCK_MONOTONIC, &mono)
        // Rounded up by a tick: a guest reading is never behind the host clock, so after a host wait for an
        // absolute CLOCK_MONOTONIC deadline (clock_nanosleep, timerfd) the guest sees the deadline passed.
        let base = Int64(mono.tv_sec) * 1_000_000_000 + Int64(mono.tv_nsec) - Int64(ticks) * 100 + 99
        guard mm.write(va + UInt64(VDSOImage.dataOffset), withUnsafeBytes(of: base) { Array($0) }, force: true) else {
            throw UserError("cannot place the vDSO")
        }
        monotonicBase = base
        return va
    }

    /// CLOCK_MONOTONIC as the vDSO computes it (100 ns steps), so system call and vDSO readings agree.
    func vdsoMonotonic() -> timespec? {
        guard let base = monotonicBase else { return nil }
        let ns = base + Int64(clock.mtime) * 100
        return timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    }
}
