/// A memory-mapped device register window.
///
/// Offsets are relative to the device's base address; `size` is 1, 2, 4 or 8 and the access lies
/// entirely inside the window (the bus checks). Devices decide what misaligned or odd-sized accesses
/// do; they must never trap the host.
public protocol MMIODevice: AnyObject {
    func mmioRead(offset: UInt64, size: Int) -> UInt64
    func mmioWrite(offset: UInt64, size: Int, value: UInt64)
}

/// The guest-physical address space: RAM plus MMIO windows.
public final class PhysicalBus {
    public struct Region {
        public let base: UInt64
        public let size: UInt64
        public let name: String
        public let device: MMIODevice
    }

    public let ram: GuestRAM
    @exclusivity(unchecked) public private(set) var regions: [Region] = []
    /// Set when harts run on several host threads: every MMIO access holds it (see DeviceLock).
    @exclusivity(unchecked) public var deviceLock: DeviceLock? = nil

    public init(ram: GuestRAM) { self.ram = ram }

    public func map(_ device: MMIODevice, at base: UInt64, size: UInt64, name: String) {
        precondition(size > 0 && base &+ size > base, "bad MMIO window for \(name)")
        regions.append(Region(base: base, size: size, name: name, device: device))
        regions.sort { $0.base < $1.base }
    }

    @inline(__always)
    func region(for address: UInt64, size: Int) -> Region? {
        for r in regions where address >= r.base && address - r.base < r.size {
            return UInt64(size) <= r.size - (address - r.base) ? r : nil
        }
        return nil
    }

    /// An MMIO read, or nil (access fault) when nothing is mapped there.
    public func mmioRead(_ address: UInt64, size: Int) -> UInt64? {
        guard let r = region(for: address, size: size) else { return nil }
        if let lock = deviceLock { return lock.withLock { r.device.mmioRead(offset: address - r.base, size: size) } }
        return r.device.mmioRead(offset: address - r.base, size: size)
    }

    /// An MMIO write; false (access fault) when nothing is mapped there.
    public func mmioWrite(_ address: UInt64, size: Int, value: UInt64) -> Bool {
        guard let r = region(for: address, size: size) else { return false }
        if let lock = deviceLock {
            lock.withLock { r.device.mmioWrite(offset: address - r.base, size: size, value: value) }
            return true
        }
        r.device.mmioWrite(offset: address - r.base, size: size, value: value)
        return true
    }
}
