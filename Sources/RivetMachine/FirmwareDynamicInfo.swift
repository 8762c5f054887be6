/// OpenSBI's `struct fw_dynamic_info` (version 2), which `fw_dynamic.bin` expects in a2: where to jump
/// next and in which mode. QEMU's virt builds the same record; firmware that does not need it ignores a2.
enum FirmwareDynamicInfo {
    static let magic: UInt64 = 0x4942_534f  // "OSBI"
    static let version: UInt64 = 2
    static let nextModeSupervisor: UInt64 = 1

    /// The record: magic, version, next_addr, next_mode, options, boot_hart (little-endian 64-bit words).
    static func bytes(nextAddress: UInt64, bootHart: UInt64 = 0) -> [UInt8] {
        let words = [magic, version, nextAddress, nextModeSupervisor, 0, bootHart]
        var out: [UInt8] = []
        out.reserveCapacity(words.count * 8)
        for w in words { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: w >> UInt64(8 * i))) } }
        return out
    }
}
