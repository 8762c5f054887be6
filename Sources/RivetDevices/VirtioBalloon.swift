import RivetMemory
import RivetSnapshot

/// virtio-balloon (device id 5) with free page reporting.
///
/// Queues, in the order the Linux driver numbers them with the features offered here (no statistics, no
/// free page hinting): 0 inflate, 1 deflate, 2 free page reporting (only once VIRTIO_BALLOON_F_REPORTING
/// is accepted).
/// - inflate: the driver gives pages (32-bit page frame numbers of 4 KiB pages) to the host; each page
///   that lies in RAM is discarded (reads back as zero). Frame numbers outside RAM are ignored, as QEMU does.
/// - deflate: the driver takes pages back. Nothing to do: discarded pages read as zero when touched.
/// - reporting: each device-writable buffer describes a free range of guest memory; its whole pages are
///   discarded. The buffers are returned with nothing written.
/// Configuration: `num_pages` (the host's target, in 4 KiB pages taken from the guest) and `actual`
/// (what the driver holds, written by the driver). Every address comes from the guest and is checked by
/// `GuestRAM.discard` (and the chain walk) before anything is touched.
public final class VirtioBalloon: VirtioDeviceModel {
    public static let featureDeflateOnOOM: UInt64 = 1 << 2
    public static let featureReporting: UInt64 = 1 << 5
    public static let pageShift: UInt64 = 12
    /// Frame numbers read per step from an inflate/deflate buffer.
    static let pfnBatch = 256

    public enum Queue { public static let inflate = 0, deflate = 1, reporting = 2 }

    let ram: GuestRAM
    public let freePageReporting: Bool
    /// Pages the host asks the guest to give up (config `num_pages`).
    public private(set) var targetPages: UInt32 = 0
    /// Pages the driver says it holds in the balloon (config `actual`).
    public private(set) var actualPages: UInt32 = 0
    /// Called on the run-loop thread when the driver changes `actual` (QMP BALLOON_CHANGE).
    public var onActualChange: ((VirtioBalloon) -> Void)?
    /// Called when the host changed the target: the transport raises a configuration-change interrupt.
    public var onConfigChange: (() -> Void)?
    /// Counters for statistics and tests.
    public private(set) var inflatedPages: UInt64 = 0
    public private(set) var deflatedPages: UInt64 = 0
    public private(set) var reportedBytes: UInt64 = 0

    public init(ram: GuestRAM, freePageReporting: Bool = true) {
        self.ram = ram
        self.freePageReporting = freePageReporting
    }

    public var deviceID: UInt32 { 5 }
    public var deviceFeatures: UInt64 { freePageReporting ? VirtioBalloon.featureReporting : 0 }
    public var queueCount: Int { 3 }
    public var configSize: Int { 8 }

    /// Guest memory size as the host sees it after the balloon: RAM minus what the driver holds.
    public var actualBytes: UInt64 { ram.size - min(UInt64(actualPages) << VirtioBalloon.pageShift, ram.size) }

    /// Sets the guest's target size in bytes (QMP `balloon`): the balloon is asked to hold the rest.
    /// Returns false for a target of zero. A target above RAM size means an empty balloon.
    @discardableResult
    public func setTarget(bytes: UInt64) -> Bool {
        guard bytes > 0 else { return false }
        let target = min(bytes, ram.size)
        targetPages = UInt32(truncatingIfNeeded: (ram.size - target) >> VirtioBalloon.pageShift)
        onConfigChange?()
        return true
    }

    public func readConfig(offset: Int, size: Int) -> UInt64 {
        var bytes = ConfigSpace(size: configSize)
        bytes.put(UInt64(targetPages), at: 0, size: 4)
        bytes.put(UInt64(actualPages), at: 4, size: 4)
        return bytes.get(offset: offset, size: size)
    }

    public func writeConfig(offset: Int, size: Int, value: UInt64) {
        // Only `actual` (bytes 4-7) is the driver's to write; Linux writes it whole.
        guard offset == 4, size == 4 else { return }
        let new = UInt32(truncatingIfNeeded: value)
        guard new != actualPages else { return }
        actualPages = new
        onActualChange?(self)
    }

    public func reset() {
        // The host's target survives a driver reset (as QEMU's); what the driver held is back in use.
        if actualPages != 0 { actualPages = 0; onActualChange?(self) }
    }

    public func process(queue index: Int, _ queue: Virtqueue) throws(VirtioError) {
        switch index {
        case Queue.inflate, Queue.deflate:
            while let chain = try queue.nextChain() {
                try pageNumbers(chain, inflate: index == Queue.inflate)
                try queue.complete(chain, written: 0)
            }
        case Queue.reporting:
            while let chain = try queue.nextChain() {
                for s in chain.segments where s.writable {
                    reportedBytes &+= ram.discard(s.address, length: UInt64(s.length))
                }
                try queue.complete(chain, written: 0)
            }
        default:
            break
        }
    }

    /// Reads the chain's 32-bit little-endian page frame numbers in batches.
    func pageNumbers(_ chain: DescriptorChain, inflate: Bool) throws(VirtioError) {
        guard chain.readableLength % 4 == 0 else {
            throw VirtioError("virtio-balloon: page frame list of \(chain.readableLength) bytes is not a multiple of 4")
        }
        var batch = [UInt32](repeating: 0, count: VirtioBalloon.pfnBatch)
        var offset: UInt64 = 0
        while offset < chain.readableLength {
            let n = batch.withUnsafeMutableBytes { chain.read(from: offset, into: $0, ram: ram) } / 4
            if n == 0 { break }
            for i in 0..<n {
                let pfn = UInt64(UInt32(littleEndian: batch[i]))
                if inflate {
                    if ram.discard(pfn << VirtioBalloon.pageShift, length: 1 << VirtioBalloon.pageShift) > 0 { inflatedPages &+= 1 }
                } else {
                    deflatedPages &+= 1
                }
            }
            offset += UInt64(n * 4)
        }
    }

    // MARK: Snapshot

    public func saveState(to w: inout StateWriter) {
        w.bool(freePageReporting)
        w.u32(targetPages)
        w.u32(actualPages)
    }

    public func restoreState(from r: inout StateReader) throws {
        let reporting = try r.bool()
        let target = try r.u32(), actual = try r.u32()
        guard reporting == freePageReporting else {
            throw SnapshotError("\(r.context): balloon free page reporting was \(reporting ? "on" : "off"), this machine's is \(freePageReporting ? "on" : "off")")
        }
        let pages = ram.size >> VirtioBalloon.pageShift
        guard UInt64(target) <= pages, UInt64(actual) <= pages else {
            throw SnapshotError("\(r.context): balloon target \(target) or actual \(actual) pages exceed RAM (\(pages) pages)")
        }
        targetPages = target
        actualPages = actual
    }
}
