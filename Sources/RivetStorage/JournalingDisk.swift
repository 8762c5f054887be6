#if canImport(Glibc)
import Glibc
#endif

/// One guest write or discard recorded by a `JournalingDisk`, in the order the guest issued them.
public enum JournalEntry {
    case write(offset: UInt64, bytes: [UInt8])
    case discard(offset: UInt64, length: UInt64)

    /// Bytes of guest data the entry carries (what a checkpoint sends).
    public var payloadSize: Int {
        if case .write(_, let b) = self { return b.count }
        return 0
    }
}

/// A drive decorator for replication (docs/failover.md): while recording, every write and discard that
/// reaches the image is also kept in memory, and `takeJournal` hands the primary one epoch's worth, which
/// the standby applies to its own copy of the drive. When not recording it costs one test per request.
///
/// It forwards what the rest of rivet asks of an image (format, path, locks), so a decorated drive looks
/// the same to the machine description, QMP and live migration. Like every BlockDevice it is used by one
/// thread at a time (the run loop).
public final class JournalingDisk: BlockDeviceDecorator, ImageLayer, ImageLockHandover {
    public let inner: ImageLayer
    /// Live migration finds the drive it copies through decorators (`decoratorChain`).
    public var underlying: BlockDevice { inner }
    public private(set) var isRecording = false
    var entries: [JournalEntry] = []
    public private(set) var journalBytes = 0

    public init(_ inner: ImageLayer) { self.inner = inner }

    public var size: UInt64 { inner.size }
    public var isReadOnly: Bool { inner.isReadOnly }
    public var path: String { inner.path }
    public var format: DiskFormat { inner.format }
    public var backingDevice: BlockDevice? { inner.backingDevice }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try inner.read(at: offset, into: buffer)
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        try inner.write(at: offset, from: buffer)
        // Only writes the image accepted are journaled: a failed one is the guest's error, not state.
        if isRecording {
            entries.append(.write(offset: offset, bytes: Array(buffer)))
            journalBytes += buffer.count
        }
    }

    public func flush() throws { try inner.flush() }

    public func discard(at offset: UInt64, length: UInt64) throws {
        try inner.discard(at: offset, length: length)
        if isRecording { entries.append(.discard(offset: offset, length: length)) }
    }

    public func extent(at offset: UInt64, maxLength: UInt64) throws -> Extent {
        try inner.extent(at: offset, maxLength: maxLength)
    }

    public func activateLocks() throws { try (inner as? ImageLockHandover)?.activateLocks() }
    public func releaseLocks() { (inner as? ImageLockHandover)?.releaseLocks() }

    /// Starts (or stops, dropping what was kept) recording.
    public func setRecording(_ on: Bool) {
        isRecording = on
        entries = []
        journalBytes = 0
    }

    /// What was recorded since the last call, in order; recording continues.
    public func takeJournal() -> [JournalEntry] {
        let e = entries
        entries = []
        journalBytes = 0
        return e
    }
}
