import RivetSnapshot

/// Where a device's interrupt line goes: an interrupt controller input (the PLIC) identified by a source
/// number. Devices call `setLevel` whenever their line changes; the controller must tolerate repeats.
public protocol InterruptSink: AnyObject {
    func setLevel(source: Int, _ level: Bool)
}

/// Shared helpers for MMIO register windows.
enum Bytes {
    /// Extracts `size` bytes starting at byte `shift` of a 64-bit register.
    @inline(__always)
    static func extract(_ register: UInt64, byte shift: Int, size: Int) -> UInt64 {
        let v = register >> UInt64(8 * shift)
        return size >= 8 ? v : v & ((1 << UInt64(8 * size)) - 1)
    }

    /// Replaces `size` bytes starting at byte `shift` of a 64-bit register with `value`.
    @inline(__always)
    static func merge(_ register: UInt64, byte shift: Int, size: Int, value: UInt64) -> UInt64 {
        let mask: UInt64 = size >= 8 ? ~0 : ((1 << UInt64(8 * size)) - 1)
        let s = UInt64(8 * shift)
        return (register & ~(mask << s)) | ((value & mask) << s)
    }
}
