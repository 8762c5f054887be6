import RivetMemory
import RivetSnapshot

/// The virtio-mmio transport, version 2 (virtio 1.x "Virtio Over MMIO"), one 0x1000-byte slot.
///
/// A slot without a model reads as device id 0 ("no device"), as QEMU's empty virtio-mmio slots do.
/// Notifications are handled synchronously: a QueueNotify write runs the model over the queue before the
/// write returns, and a used-buffer notification raises the slot's interrupt line.
/// Any malformed ring or request marks the device broken: Status gets DEVICE_NEEDS_RESET (0x40), a
/// configuration-change interrupt is raised, and no queue is processed again until the driver resets it.
public final class VirtioMMIO: MMIODevice, Snapshottable {
    /// Slots on the board (their addresses and interrupts are in `VirtBoard`).
    public static let slotCount = VirtBoard.virtioSlotCount
    public static let magic: UInt32 = 0x7472_6976  // "virt"
    public static let vendorID: UInt32 = 0x554d_4551  // "QEMU", as QEMU reports
    public static let queueSizeMax: UInt16 = 256

    // Feature bits implemented by the transport.
    public static let featureIndirectDesc: UInt64 = 1 << 28
    public static let featureVersion1: UInt64 = 1 << 32

    // Status bits.
    public static let statusAcknowledge: UInt32 = 1, statusDriver: UInt32 = 2, statusDriverOK: UInt32 = 4
    public static let statusFeaturesOK: UInt32 = 8, statusNeedsReset: UInt32 = 0x40, statusFailed: UInt32 = 0x80

    // Register offsets.
    enum Reg {
        static let magic: UInt64 = 0x000, version: UInt64 = 0x004, deviceID: UInt64 = 0x008, vendorID: UInt64 = 0x00c
        static let deviceFeatures: UInt64 = 0x010, deviceFeaturesSel: UInt64 = 0x014
        static let driverFeatures: UInt64 = 0x020, driverFeaturesSel: UInt64 = 0x024
        static let queueSel: UInt64 = 0x030, queueNumMax: UInt64 = 0x034, queueNum: UInt64 = 0x038
        static let queueReady: UInt64 = 0x044, queueNotify: UInt64 = 0x050
        static let interruptStatus: UInt64 = 0x060, interruptACK: UInt64 = 0x064, status: UInt64 = 0x070
        static let queueDescLow: UInt64 = 0x080, queueDescHigh: UInt64 = 0x084
        static let queueDriverLow: UInt64 = 0x090, queueDriverHigh: UInt64 = 0x094
        static let queueDeviceLow: UInt64 = 0x0a0, queueDeviceHigh: UInt64 = 0x0a4
        static let shmSel: UInt64 = 0x0ac, shmLenLow: UInt64 = 0x0b0, shmLenHigh: UInt64 = 0x0b4
        static let shmBaseLow: UInt64 = 0x0b8, shmBaseHigh: UInt64 = 0x0bc
        static let configGeneration: UInt64 = 0x0fc, config: UInt64 = 0x100
    }

    public let model: VirtioDeviceModel?
    let ram: GuestRAM
    let irq: InterruptSink
    public let source: Int

    @exclusivity(unchecked) public private(set) var status: UInt32 = 0
    @exclusivity(unchecked) public private(set) var deviceFeaturesSel: UInt32 = 0
    @exclusivity(unchecked) public private(set) var driverFeaturesSel: UInt32 = 0
    @exclusivity(unchecked) public private(set) var driverFeatures: UInt64 = 0
    @exclusivity(unchecked) public private(set) var queueSel: UInt32 = 0
    @exclusivity(unchecked) public private(set) var queues: [VirtqueueState]
    @exclusivity(unchecked) public private(set) var interruptStatus: UInt32 = 0
    /// Why the device stopped (nil while healthy).
    @exclusivity(unchecked) public private(set) var brokenReason: String?
    @exclusivity(unchecked) private var lineLevel = false

    public init(model: VirtioDeviceModel?, ram: GuestRAM, irq: InterruptSink, source: Int) {
        self.model = model
        self.ram = ram
        self.irq = irq
        self.source = source
        queues = Array(repeating: VirtqueueState(), count: model?.queueCount ?? 0)
    }

    /// Feature bits offered to the driver.
    public var offeredFeatures: UInt64 {
        guard let model else { return 0 }
        return (model.deviceFeatures & 0xff_ffff) | VirtioMMIO.featureVersion1 | VirtioMMIO.featureIndirectDesc
    }

    public var isBroken: Bool { status & VirtioMMIO.statusNeedsReset != 0 }

    /// Device reset: what writing 0 to Status does (also used for machine reset).
    public func reset() {
        status = 0
        deviceFeaturesSel = 0; driverFeaturesSel = 0; driverFeatures = 0; queueSel = 0
        for i in queues.indices { queues[i] = VirtqueueState() }
        interruptStatus = 0
        brokenReason = nil
        model?.reset()
        updateLine()
    }

    private func markBroken(_ reason: String) {
        guard !isBroken else { return }
        status |= VirtioMMIO.statusNeedsReset
        brokenReason = reason
        interruptStatus |= 2  // configuration change notification, as the spec suggests
        updateLine()
    }

    /// The device changed its configuration space (e.g. a new balloon target): tell the driver.
    public func notifyConfigChange() {
        guard status & VirtioMMIO.statusDriverOK != 0 else { return }  // the driver reads it when it starts
        interruptStatus |= 2
        updateLine()
    }

    private func updateLine(force: Bool = false) {
        let high = interruptStatus != 0
        if high != lineLevel || force {
            lineLevel = high
            irq.setLevel(source: source, high)
        }
    }

    private var selectedQueue: Int? {
        Int(queueSel) < queues.count ? Int(queueSel) : nil
    }

    // MARK: MMIO

    public func mmioRead(offset: UInt64, size: Int) -> UInt64 {
        if offset >= Reg.config {
            guard let model else { return 0 }
            let rel = offset - Reg.config
            guard rel < UInt64(model.configSize), UInt64(size) <= UInt64(model.configSize) - rel else { return 0 }
            return model.readConfig(offset: Int(rel), size: size)
        }
        guard size == 4, offset & 3 == 0 else { return 0 }
        switch offset {
        case Reg.magic: return UInt64(VirtioMMIO.magic)
        case Reg.version: return 2
        case Reg.deviceID: return UInt64(model?.deviceID ?? 0)
        case Reg.vendorID: return UInt64(VirtioMMIO.vendorID)
        default: break
        }
        guard model != nil else { return 0 }
        switch offset {
        case Reg.deviceFeatures:
            return deviceFeaturesSel < 2 ? (offeredFeatures >> (32 * UInt64(deviceFeaturesSel))) & 0xffff_ffff : 0
        case Reg.queueNumMax: return selectedQueue == nil ? 0 : UInt64(VirtioMMIO.queueSizeMax)
        case Reg.queueNum: return selectedQueue.map { UInt64(queues[$0].size) } ?? 0
        case Reg.queueReady: return selectedQueue.map { queues[$0].ready ? 1 : 0 } ?? 0
        case Reg.interruptStatus: return UInt64(interruptStatus)
        case Reg.status: return UInt64(status)
        case Reg.queueDescLow, Reg.queueDescHigh, Reg.queueDriverLow, Reg.queueDriverHigh,
             Reg.queueDeviceLow, Reg.queueDeviceHigh:
            guard let q = selectedQueue else { return 0 }
            let v: UInt64
            switch offset & ~4 {
            case Reg.queueDescLow: v = queues[q].descAddress
            case Reg.queueDriverLow: v = queues[q].driverAddress
            default: v = queues[q].deviceAddress
            }
            return offset & 4 == 0 ? v & 0xffff_ffff : v >> 32
        case Reg.shmLenLow, Reg.shmLenHigh, Reg.shmBaseLow, Reg.shmBaseHigh:
            return 0xffff_ffff  // no shared memory regions: length and base read as -1
        case Reg.configGeneration: return 0
        default: return 0
        }
    }

    public func mmioWrite(offset: UInt64, size: Int, value: UInt64) {
        guard let model else { return }
        if offset >= Reg.config {
            let rel = offset - Reg.config
            guard rel < UInt64(model.configSize), UInt64(size) <= UInt64(model.configSize) - rel else { return }
            model.writeConfig(offset: Int(rel), size: size, value: value)
            return
        }
        guard size == 4, offset & 3 == 0 else { return }
        let v = UInt32(truncatingIfNeeded: value)
        switch offset {
        case Reg.deviceFeaturesSel: deviceFeaturesSel = v
        case Reg.driverFeatures:
            // Features are fixed once FEATURES_OK is set.
            guard status & VirtioMMIO.statusFeaturesOK == 0, driverFeaturesSel < 2 else { return }
            let shift = 32 * UInt64(driverFeaturesSel)
            driverFeatures = (driverFeatures & ~(0xffff_ffff << shift)) | (UInt64(v) << shift)
        case Reg.driverFeaturesSel: driverFeaturesSel = v
        case Reg.queueSel: queueSel = v
        case Reg.queueNum:
            guard let q = selectedQueue, !queues[q].ready else { return }
            queues[q].size = UInt16(truncatingIfNeeded: min(v, 0xffff))
        case Reg.queueReady:
            guard let q = selectedQueue else { return }
            if v & 1 == 0 { queues[q].ready = false; return }
            guard !queues[q].ready else { return }
            do throws(VirtioError) {
                try Virtqueue.validate(queues[q], maxSize: VirtioMMIO.queueSizeMax, ram: ram)
                queues[q].ready = true
            } catch {
                markBroken("queue \(q): \(error.description)")
            }
        case Reg.queueNotify: notify(queue: Int(v))
        case Reg.interruptACK:
            interruptStatus &= ~v
            updateLine()
        case Reg.status: writeStatus(v)
        case Reg.queueDescLow, Reg.queueDescHigh, Reg.queueDriverLow, Reg.queueDriverHigh,
             Reg.queueDeviceLow, Reg.queueDeviceHigh:
            guard let q = selectedQueue, !queues[q].ready else { return }
            func merged(_ old: UInt64) -> UInt64 {
                offset & 4 == 0 ? (old & ~0xffff_ffff) | UInt64(v) : (old & 0xffff_ffff) | UInt64(v) << 32
            }
            switch offset & ~4 {
            case Reg.queueDescLow: queues[q].descAddress = merged(queues[q].descAddress)
            case Reg.queueDriverLow: queues[q].driverAddress = merged(queues[q].driverAddress)
            default: queues[q].deviceAddress = merged(queues[q].deviceAddress)
            }
        default: break  // read-only or unimplemented (SHMSel, QueueReset without RING_RESET)
        }
    }

    private func writeStatus(_ v: UInt32) {
        if v == 0 { reset(); return }
        var new = v & 0xff & ~VirtioMMIO.statusNeedsReset
        if new & VirtioMMIO.statusFeaturesOK != 0 && status & VirtioMMIO.statusFeaturesOK == 0 {
            // Accept only subsets of what was offered, and only modern (VERSION_1) drivers.
            let ok = driverFeatures & ~offeredFeatures == 0 && driverFeatures & VirtioMMIO.featureVersion1 != 0
            if !ok { new &= ~VirtioMMIO.statusFeaturesOK } else { model?.featuresAccepted(driverFeatures) }
        }
        status = new | (status & VirtioMMIO.statusNeedsReset)
    }

    /// Runs the model over one queue (a QueueNotify write).
    public func notify(queue q: Int) {
        guard let model, q >= 0, q < queues.count, queues[q].ready, !isBroken else { return }
        let vq = Virtqueue(state: queues[q], ram: ram,
                           indirectAllowed: driverFeatures & VirtioMMIO.featureIndirectDesc != 0)
        do throws(VirtioError) {
            try model.process(queue: q, vq)
        } catch {
            queues[q] = vq.state
            markBroken("queue \(q): \(error.description)")
            return
        }
        queues[q] = vq.state
        if vq.needsInterrupt {
            interruptStatus |= 1
            updateLine()
        }
    }

    // MARK: Snapshot

    public var snapshotName: String { "virtio-mmio.\(source)" }
    public var snapshotVersion: UInt32 { 1 }

    public func saveState(to w: inout StateWriter) {
        w.u32(model?.deviceID ?? 0)
        w.u32(status); w.u32(deviceFeaturesSel); w.u32(driverFeaturesSel); w.u64(driverFeatures)
        w.u32(queueSel); w.u32(interruptStatus)
        w.string(brokenReason ?? "")
        w.int(queues.count)
        for q in queues {
            w.u16(q.size); w.bool(q.ready)
            w.u64(q.descAddress); w.u64(q.driverAddress); w.u64(q.deviceAddress)
            w.u16(q.lastAvail); w.u16(q.usedIndex)
        }
        var m = StateWriter()
        model?.saveState(to: &m)
        w.data(m.bytes)
    }

    public func restoreState(from r: inout StateReader) throws {
        let id = try r.u32()
        guard id == model?.deviceID ?? 0 else {
            throw SnapshotError("\(r.context): virtio state is for device id \(id), slot holds \(model?.deviceID ?? 0)")
        }
        let newStatus = try r.u32(), newDevSel = try r.u32(), newDrvSel = try r.u32(), newDrvFeatures = try r.u64()
        let newQueueSel = try r.u32(), newInterrupt = try r.u32()
        let reason = try r.string()
        guard newStatus <= 0xff else { throw SnapshotError("\(r.context): virtio status \(newStatus) out of range") }
        guard newInterrupt <= 3 else { throw SnapshotError("\(r.context): virtio interrupt status \(newInterrupt) out of range") }
        guard newDrvFeatures & ~offeredFeatures == 0 else {
            throw SnapshotError("\(r.context): virtio driver features 0x\(String(newDrvFeatures, radix: 16)) were not offered")
        }
        let n = try r.int()
        guard n == queues.count else { throw SnapshotError("\(r.context): virtio state has \(n) queues, device has \(queues.count)") }
        var newQueues: [VirtqueueState] = []
        for i in 0..<n {
            var q = VirtqueueState()
            q.size = try r.u16(); q.ready = try r.bool()
            q.descAddress = try r.u64(); q.driverAddress = try r.u64(); q.deviceAddress = try r.u64()
            q.lastAvail = try r.u16(); q.usedIndex = try r.u16()
            guard q.size <= VirtioMMIO.queueSizeMax else { throw SnapshotError("\(r.context): queue \(i) size \(q.size) out of range") }
            if q.ready {
                do throws(VirtioError) { try Virtqueue.validate(q, maxSize: VirtioMMIO.queueSizeMax, ram: ram) } catch {
                    throw SnapshotError("\(r.context): queue \(i): \(error.description)")
                }
            }
            newQueues.append(q)
        }
        let modelBytes = try r.data(limit: 1 << 20)
        var mr = StateReader(modelBytes, context: r.context + ".model")
        try model?.restoreState(from: &mr)
        try mr.expectEnd()
        status = newStatus; deviceFeaturesSel = newDevSel; driverFeaturesSel = newDrvSel
        driverFeatures = newDrvFeatures; queueSel = newQueueSel; interruptStatus = newInterrupt
        brokenReason = newStatus & VirtioMMIO.statusNeedsReset != 0 ? (reason.isEmpty ? "restored broken" : reason) : nil
        queues = newQueues
        model?.featuresAccepted(newStatus & VirtioMMIO.statusFeaturesOK != 0 ? newDrvFeatures : 0)
        updateLine(force: true)
    }
}
