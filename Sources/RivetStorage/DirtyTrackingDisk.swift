#if canImport(Glibc)
import Glibc
#endif

/// A block device wrapped by another that adds behaviour (dirty tracking, journaling) and passes I/O on.
public protocol BlockDeviceDecorator: BlockDevice {
    var underlying: BlockDevice { get }
}

/// The first device of `type` in a chain of decorators starting at `device` (the device itself included).
public func decoratorChain<T>(_ device: BlockDevice, find type: T.Type) -> T? {
    var d: BlockDevice? = device
    while let current = d {
        if let found = current as? T { return found }
        d = (current as? BlockDeviceDecorator)?.underlying
    }
    return nil
}

/// A drive that records which parts of it were written while tracking is on (block migration sends them
/// again), at `granularity` bytes (64 KiB, QEMU's block-migration chunk is 1 MiB; smaller sends less).
///
/// It is otherwise transparent: I/O, the image's description (ImageLayer) and lock handover go to the
/// device it wraps, which a live-migration destination may replace by a fresh open of the same image
/// (`replaceUnderlying`, see ImageActivation.swift). Like every BlockDevice it has one user at a time (the
/// run-loop thread); tracking costs one test per write when off.
public final class DirtyTrackingDisk: BlockDeviceDecorator, ImageLayer, ImageLockHandover {
    public static let defaultGranularity: UInt64 = 64 << 10
    public private(set) var underlying: BlockDevice
    public let granularity: UInt64
    /// One bit per granule; nil when not tracking.
    private var bitmap: [UInt64]? = nil

    public init(_ device: BlockDevice, granularity: UInt64 = DirtyTrackingDisk.defaultGranularity) {
        precondition(granularity > 0 && granularity & (granularity - 1) == 0, "granularity must be a power of two")
        underlying = device
        self.granularity = granularity
    }

    public var size: UInt64 { underlying.size }
    public var isReadOnly: Bool { underlying.isReadOnly }
    /// Granules covering the whole disk (the last may be partial).
    public var granuleCount: Int { Int((size + granularity - 1) / granularity) }
    public var isTracking: Bool { bitmap != nil }

    // MARK: Tracking

    /// Starts recording writes; nothing is dirty yet.
    public func startTracking() {
        bitmap = [UInt64](repeating: 0, count: (granuleCount + 63) / 64)
    }

    public func stopTracking() { bitmap = nil }

    /// Granules written since tracking started or since the last call, ascending; clears them.
    public func takeDirtyGranules() -> [Int] {
        guard var words = bitmap else { return [] }
        var out: [Int] = []
        for w in 0..<words.count where words[w] != 0 {
            var bits = words[w]
            while bits != 0 {
                out.append(w * 64 + bits.trailingZeroBitCount)
                bits &= bits - 1
            }
            words[w] = 0
        }
        bitmap = words
        return out
    }

    /// Number of granules dirty now (without clearing them).
    public var dirtyGranuleCount: Int { bitmap?.reduce(0) { $0 + $1.nonzeroBitCount } ?? 0 }

    /// The byte range of granule `g` (the last one may be shorter).
    public func granuleRange(_ g: Int) -> (offset: UInt64, length: UInt64) {
        let offset = UInt64(g) * granularity
        return (offset, min(granularity, size - offset))
    }

    @inline(__always) private func mark(_ offset: UInt64, _ length: UInt64) {
        guard bitmap != nil, length > 0 else { return }
        let first = Int(offset / granularity)
        let last = Int(min(offset + length - 1, size - 1) / granularity)
        guard first <= last else { return }
        for g in first...last { bitmap![g >> 6] |= 1 << UInt64(g & 63) }
    }

    // MARK: BlockDevice

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try underlying.read(at: offset, into: buffer)
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        // Marked even if the write fails part-way: the granule's contents are then unknown, so it goes again.
        defer { mark(offset, UInt64(buffer.count)) }
        try underlying.write(at: offset, from: buffer)
    }

    public func flush() throws { try underlying.flush() }

    public func discard(at offset: UInt64, length: UInt64) throws {
        defer { mark(offset, length) }
        try underlying.discard(at: offset, length: length)
    }

    // MARK: ImageLayer (the wrapped image's)

    public var path: String { (underlying as? ImageLayer)?.path ?? "" }
    public var format: DiskFormat { (underlying as? ImageLayer)?.format ?? .raw }
    public var backingDevice: BlockDevice? { (underlying as? ImageLayer)?.backingDevice }

    public func extent(at offset: UInt64, maxLength: UInt64) throws -> Extent {
        if let layer = underlying as? ImageLayer { return try layer.extent(at: offset, maxLength: maxLength) }
        let length = offset < size ? min(maxLength, size - offset) : 0
        return Extent(kind: .data, length: length, hostOffset: nil, compressed: false)
    }

    // MARK: Lock handover

    public func activateLocks() throws { try (underlying as? ImageLockHandover)?.activateLocks() }
    public func releaseLocks() { (underlying as? ImageLockHandover)?.releaseLocks() }

    /// Puts a fresh open of the same image in place of the wrapped device (which must not be used again).
    public func replaceUnderlying(_ device: BlockDevice) {
        precondition(device.size == underlying.size, "a replacement must have the same size")
        underlying = device
    }
}
