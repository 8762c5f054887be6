import RivetMemory
import RivetSnapshot

/// A virtio device behind the MMIO transport: what it is, what it offers and how it serves its queues.
///
/// The transport owns feature negotiation, queue configuration, status and interrupts; a model only sees
/// validated descriptor chains through `Virtqueue`. Throwing from `process` marks the device broken.
public protocol VirtioDeviceModel: AnyObject {
    /// Virtio device id (2 = block, 4 = entropy source).
    var deviceID: UInt32 { get }
    /// Device-specific feature bits (0-23); the transport adds the transport bits it implements.
    var deviceFeatures: UInt64 { get }
    var queueCount: Int { get }
    /// Size of the device configuration space at offset 0x100.
    var configSize: Int { get }
    /// Reads `size` bytes of configuration space at `offset` (already checked to lie inside it).
    func readConfig(offset: Int, size: Int) -> UInt64
    func writeConfig(offset: Int, size: Int, value: UInt64)
    /// Serves every available chain of `queue` (the driver notified it).
    func process(queue index: Int, _ queue: Virtqueue) throws(VirtioError)
    /// Device reset (status written to 0).
    func reset()
    /// The driver's feature bits, once it set FEATURES_OK (also after a restore; 0 on reset).
    func featuresAccepted(_ features: UInt64)
    /// Device-specific state for snapshots (most models have none).
    func saveState(to writer: inout StateWriter)
    func restoreState(from reader: inout StateReader) throws
}

extension VirtioDeviceModel {
    public func writeConfig(offset: Int, size: Int, value: UInt64) {}
    public func reset() {}
    public func featuresAccepted(_ features: UInt64) {}
    public func saveState(to writer: inout StateWriter) {}
    public func restoreState(from reader: inout StateReader) throws {}
}

/// Little-endian configuration space bytes, read with bounds already checked by the transport.
struct ConfigSpace {
    var bytes: [UInt8]
    init(size: Int) { bytes = Array(repeating: 0, count: size) }

    mutating func put(_ value: UInt64, at offset: Int, size: Int) {
        for i in 0..<size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * i)) }
    }

    func get(offset: Int, size: Int) -> UInt64 {
        guard offset >= 0, size >= 0, offset <= bytes.count, size <= bytes.count - offset else { return 0 }
        var v: UInt64 = 0
        for i in 0..<size { v |= UInt64(bytes[offset + i]) << UInt64(8 * i) }
        return v
    }
}
