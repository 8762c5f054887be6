#if canImport(Glibc)
import Glibc
#endif
import RivetMemory
import RivetSnapshot
import RivetStorage

/// virtio-blk (device id 2) on top of a `BlockDevice`: one request queue, 512-byte sectors.
///
/// Supported requests: IN, OUT, FLUSH, GET_ID and DISCARD; anything else completes with UNSUPP.
/// Sector ranges are checked against the capacity; I/O errors of the disk complete with IOERR.
/// A request without a 16-byte header or without a writable status byte is a driver bug: it marks the
/// device broken (the transport sets DEVICE_NEEDS_RESET).
public final class VirtioBlock: VirtioDeviceModel {
    public static let sectorSize: UInt64 = 512
    // Feature bits.
    public static let featureSizeMax: UInt64 = 1 << 1, featureSegMax: UInt64 = 1 << 2
    public static let featureRO: UInt64 = 1 << 5, featureBlkSize: UInt64 = 1 << 6
    public static let featureFlush: UInt64 = 1 << 9, featureDiscard: UInt64 = 1 << 13
    // Request types and status values.
    public static let typeIn: UInt32 = 0, typeOut: UInt32 = 1, typeFlush: UInt32 = 4
    public static let typeGetID: UInt32 = 8, typeDiscard: UInt32 = 11
    public static let statusOK: UInt8 = 0, statusIOErr: UInt8 = 1, statusUnsupported: UInt8 = 2

    static let sizeMax: UInt32 = 1 << 20
    static let segMax: UInt32 = UInt32(VirtioMMIO.queueSizeMax) - 2
    static let maxDiscardSectors: UInt32 = 1 << 22
    static let maxDiscardSegments: UInt32 = 32

    public let disk: BlockDevice
    public let serial: [UInt8]
    public let capacity: UInt64
    @exclusivity(unchecked) private var config: ConfigSpace
    /// The last I/O error of the disk, for diagnostics.
    @exclusivity(unchecked) public private(set) var lastIOError: String?
    /// What host errors do (rerror/werror); name used in messages and events.
    @exclusivity(unchecked) public var errorPolicy = BlockErrorPolicy()
    @exclusivity(unchecked) public var deviceName: String
    /// Called once per error the policy does not hide from the host (every action prints a line through it);
    /// with `.stop` the request is held and the machine must pause until `continueAfterStop()`.
    @exclusivity(unchecked) public var onIOError: ((BlockIOErrorEvent) -> Void)?
    /// Requests held by a `stop` action, oldest first; retried, in order, before any new request.
    @exclusivity(unchecked) private var held: [DescriptorChain] = []
    /// Set while a `stop` is in force: the queue is left alone until the machine continues.
    @exclusivity(unchecked) public private(set) var isStopped = false
    public var heldRequestCount: Int { held.count + restoredHeads.count }
    /// Heads of held requests restored from a snapshot, walked again at the next notification.
    @exclusivity(unchecked) private var restoredHeads: [UInt16] = []

    public init(disk: BlockDevice, serial: String = "rivet-disk") {
        self.disk = disk
        deviceName = serial
        self.serial = Array(serial.utf8.prefix(20))
        capacity = disk.size / VirtioBlock.sectorSize
        config = ConfigSpace(size: 60)
        config.put(capacity, at: 0, size: 8)
        config.put(UInt64(VirtioBlock.sizeMax), at: 8, size: 4)
        config.put(UInt64(VirtioBlock.segMax), at: 12, size: 4)
        config.put(VirtioBlock.sectorSize, at: 20, size: 4)  // blk_size
        config.put(1, at: 34, size: 2)  // num_queues
        config.put(UInt64(VirtioBlock.maxDiscardSectors), at: 36, size: 4)
        config.put(UInt64(VirtioBlock.maxDiscardSegments), at: 40, size: 4)
        config.put(8, at: 44, size: 4)  // discard_sector_alignment: 4 KiB
    }

    public func reset() {
        held.removeAll()
        restoredHeads.removeAll()
        isStopped = false
    }

    /// A `stop` in force and the requests it holds (by descriptor head) are machine state: a snapshot taken
    /// while paused by a disk error resumes paused, and the requests are retried on continue.
    public func saveState(to writer: inout StateWriter) {
        writer.bool(isStopped)
        let heads = held.map(\.head) + restoredHeads
        writer.u64(UInt64(heads.count))
        for h in heads { writer.u16(h) }
    }

    public func restoreState(from reader: inout StateReader) throws {
        held.removeAll()
        restoredHeads.removeAll()
        isStopped = false
        if reader.isAtEnd { return }   // a snapshot from before error policies: nothing held
        isStopped = try reader.bool()
        let n = try reader.count(limit: Int(VirtioMMIO.queueSizeMax), what: "held request")
        for _ in 0..<n { restoredHeads.append(try reader.u16()) }
        try reader.expectEnd()
    }

    public var deviceID: UInt32 { 2 }
    public var queueCount: Int { 1 }
    public var configSize: Int { config.bytes.count }

    public var deviceFeatures: UInt64 {
        var f = VirtioBlock.featureSizeMax | VirtioBlock.featureSegMax | VirtioBlock.featureBlkSize | VirtioBlock.featureFlush
        f |= disk.isReadOnly ? VirtioBlock.featureRO : VirtioBlock.featureDiscard
        return f
    }

    public func readConfig(offset: Int, size: Int) -> UInt64 { config.get(offset: offset, size: size) }

    public func process(queue index: Int, _ queue: Virtqueue) throws(VirtioError) {
        if isStopped { return }
        if !restoredHeads.isEmpty {
            for h in restoredHeads { held.append(try queue.chain(head: h)) }
            restoredHeads.removeAll()
        }
        while !held.isEmpty {
            let chain = held[0]
            guard let written = try handle(chain, ram: queue.ram) else { return }
            held.removeFirst()
            try queue.complete(chain, written: written)
        }
        while let chain = try queue.nextChain() {
            guard let written = try handle(chain, ram: queue.ram) else {
                held.append(chain)
                return
            }
            try queue.complete(chain, written: written)
        }
    }

    /// Lets held requests run again (the machine continues after a `stop`); the transport must then
    /// process the queue (VirtioMMIO.notify) to retry them.
    public func continueAfterStop() { isStopped = false }

    /// Decides what a host error does to a request: the status byte for the guest, or nil to hold it.
    private func failed(_ operation: BlockOperation, _ error: Error) -> UInt8? {
        let code = (error as? StorageError)?.code ?? 0
        let action = errorPolicy.action(for: operation, errorCode: code)
        lastIOError = "\(error)"
        onIOError?(BlockIOErrorEvent(device: deviceName, operation: operation, action: action,
                                     noSpace: code == ENOSPC, reason: "\(error)", hostErrorCode: code))
        switch action {
        case .ignore: return VirtioBlock.statusOK
        case .stop, .enospc:
            isStopped = true
            return nil
        case .report: return VirtioBlock.statusIOErr
        }
    }

    /// Serves one request; returns the number of bytes written into the chain (data + status byte), or nil
    /// when a `stop` error policy holds the request.
    private func handle(_ chain: DescriptorChain, ram: GuestRAM) throws(VirtioError) -> UInt32? {
        guard chain.readableLength >= 16 else { throw VirtioError("virtio-blk request without a 16-byte header") }
        guard chain.writableLength >= 1 else { throw VirtioError("virtio-blk request without a writable status byte") }
        var header = [UInt8](repeating: 0, count: 16)
        _ = header.withUnsafeMutableBytes { chain.read(from: 0, into: $0, ram: ram) }
        let type = header.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) }
        let sector = header.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        let statusOffset = chain.writableLength - 1
        var dataWritten: UInt64 = 0
        let status: UInt8
        switch type {
        case VirtioBlock.typeIn:
            let length = statusOffset
            if let offset = byteRange(sector: sector, length: length) {
                var pos = offset
                do {
                    dataWritten = try chain.fillWritable(from: 0, length: length, ram: ram) { buf in
                        try disk.read(at: pos, into: buf)
                        pos += UInt64(buf.count)
                    }
                    status = VirtioBlock.statusOK
                } catch {
                    guard let s = failed(.read, error) else { return nil }
                    status = s
                    if s == VirtioBlock.statusOK { dataWritten = length }   // ignore: the guest gets what is in its buffer
                }
            } else {
                status = VirtioBlock.statusIOErr
            }
        case VirtioBlock.typeOut:
            let length = chain.readableLength - 16
            if disk.isReadOnly {
                status = VirtioBlock.statusIOErr
            } else if let offset = byteRange(sector: sector, length: length) {
                var pos = offset
                do {
                    _ = try chain.visitReadable(from: 16, length: length, ram: ram) { buf in
                        try disk.write(at: pos, from: buf)
                        pos += UInt64(buf.count)
                    }
                    status = VirtioBlock.statusOK
                } catch {
                    guard let s = failed(.write, error) else { return nil }
                    status = s
                }
            } else {
                status = VirtioBlock.statusIOErr
            }
        case VirtioBlock.typeFlush:
            do { try disk.flush(); status = VirtioBlock.statusOK } catch {
                guard let s = failed(.write, error) else { return nil }
                status = s
            }
        case VirtioBlock.typeGetID:
            // 20 bytes, zero-padded; truncated to the room the driver gave.
            var id = serial + [UInt8](repeating: 0, count: 20 - serial.count)
            id = Array(id.prefix(Int(min(20, statusOffset))))
            try chain.write(id, at: 0, ram: ram)
            dataWritten = UInt64(id.count)
            status = VirtioBlock.statusOK
        case VirtioBlock.typeDiscard:
            if disk.isReadOnly { status = VirtioBlock.statusIOErr } else {
                guard let s = discard(chain, ram: ram) else { return nil }
                status = s
            }
        default:
            status = VirtioBlock.statusUnsupported
        }
        try chain.write([status], at: statusOffset, ram: ram)
        return UInt32(dataWritten + 1)
    }

    /// Byte offset of a sector range, or nil if it is not whole sectors inside the disk.
    private func byteRange(sector: UInt64, length: UInt64) -> UInt64? {
        guard length % VirtioBlock.sectorSize == 0, sector <= capacity,
              length / VirtioBlock.sectorSize <= capacity - sector else { return nil }
        return sector * VirtioBlock.sectorSize
    }

    private func discard(_ chain: DescriptorChain, ram: GuestRAM) -> UInt8? {
        let length = chain.readableLength - 16
        guard length % 16 == 0, length / 16 <= UInt64(VirtioBlock.maxDiscardSegments) else { return VirtioBlock.statusIOErr }
        var segments = [UInt8](repeating: 0, count: Int(length))
        _ = segments.withUnsafeMutableBytes { chain.read(from: 16, into: $0, ram: ram) }
        for i in 0..<Int(length / 16) {
            let (sector, count, flags) = segments.withUnsafeBytes { b in
                (UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 16 * i, as: UInt64.self)),
                 UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 16 * i + 8, as: UInt32.self)),
                 UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 16 * i + 12, as: UInt32.self)))
            }
            guard flags & ~1 == 0 else { return VirtioBlock.statusUnsupported }
            guard count <= VirtioBlock.maxDiscardSectors,
                  let offset = byteRange(sector: sector, length: UInt64(count) * VirtioBlock.sectorSize) else {
                return VirtioBlock.statusIOErr
            }
            do { try disk.discard(at: offset, length: UInt64(count) * VirtioBlock.sectorSize) } catch {
                return failed(.write, error)
            }
        }
        return VirtioBlock.statusOK
    }
}
