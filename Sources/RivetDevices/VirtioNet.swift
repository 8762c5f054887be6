import RivetMemory
import RivetSnapshot

/// virtio-net (device id 1): an Ethernet card whose frames go to a `NetworkBackend`.
///
/// Queue 0 receives (frames for the guest), queue 1 transmits. Every frame travels behind the 12-byte
/// virtio 1.x header (`virtio_net_hdr_v1`: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
/// num_buffers). Checksum offload both ways: with VIRTIO_NET_F_CSUM the driver may leave a frame's
/// transport checksum to the device (NEEDS_CSUM; the card completes it before the frame leaves, so every
/// backend sees finished frames), and with VIRTIO_NET_F_GUEST_CSUM frames from a backend whose checksums
/// are known good (libslirp's) are marked DATA_VALID, so the guest skips verifying them. No segmentation
/// offloads (TSO/UFO): frames are at most one MTU. With VIRTIO_NET_F_MRG_RXBUF a received frame may span several receive buffers
/// (their count goes into `num_buffers` of the first); without it a frame that does not fit one buffer is
/// dropped, as QEMU does. A backend may ask for a larger MTU (VIRTIO_NET_F_MTU): user-mode networking
/// uses 65520, so TCP moves 64 KiB per frame instead of 1.5 KiB and the guest's per-packet work shrinks.
///
/// Frames the guest sends that are shorter than an Ethernet header or longer than `maxFrameSize` are
/// dropped and counted (a real card would see a runt or a giant). Malformed rings mark the device broken
/// through the transport, as for every virtio device.
public final class VirtioNet: VirtioDeviceModel {
    public static let featureChecksum: UInt64 = 1 << 0
    public static let featureGuestChecksum: UInt64 = 1 << 1
    public static let featureMTU: UInt64 = 1 << 3
    public static let featureMAC: UInt64 = 1 << 5
    public static let featureMergeableRxBuffers: UInt64 = 1 << 15
    public static let featureStatus: UInt64 = 1 << 16
    public static let headerSize = 12
    /// Largest frame either way: 64 KiB of payload plus an Ethernet header with a VLAN tag.
    public static let maxFrameSize = 65536 + 18
    public static let minFrameSize = 14
    static let statusLinkUp: UInt16 = 1
    static let headerNeedsChecksum: UInt8 = 1, headerDataValid: UInt8 = 2
    /// Receive buffers one frame may span (the header's num_buffers is 16 bits; Linux allows this many).
    static let maxBuffersPerFrame = 256

    public let backend: NetworkBackend
    @exclusivity(unchecked) public private(set) var mac: [UInt8]
    @exclusivity(unchecked) public var linkUp = true
    /// Negotiated VIRTIO_NET_F_MRG_RXBUF.
    @exclusivity(unchecked) public private(set) var mergeableBuffers = false
    /// Negotiated VIRTIO_NET_F_GUEST_CSUM.
    @exclusivity(unchecked) public private(set) var guestChecksum = false

    // Counters (host side; not part of the guest-visible state).
    @exclusivity(unchecked) public private(set) var framesReceived: UInt64 = 0
    @exclusivity(unchecked) public private(set) var framesTransmitted: UInt64 = 0
    @exclusivity(unchecked) public private(set) var receiveDropped: UInt64 = 0
    @exclusivity(unchecked) public private(set) var transmitDropped: UInt64 = 0

    /// One frame's worth of bytes read out of a transmit chain (reused; no allocation per frame).
    private let transmitBuffer: UnsafeMutableRawBufferPointer

    public init(backend: NetworkBackend, mac: [UInt8]) {
        precondition(mac.count == 6, "a MAC address has 6 bytes")
        self.backend = backend
        self.mac = mac
        mtu = backend.mtu.map { min(max($0, 68), 65535) }
        transmitBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: VirtioNet.headerSize + VirtioNet.maxFrameSize, alignment: 16)
    }

    deinit { transmitBuffer.deallocate() }

    /// QEMU's default MAC for NIC number `index` (52:54:00:12:34:56, then ...:57 and so on).
    public static func defaultMAC(index: Int) -> [UInt8] {
        [0x52, 0x54, 0x00, 0x12, 0x34, UInt8(truncatingIfNeeded: 0x56 + index)]
    }

    public var deviceID: UInt32 { 1 }
    public var deviceFeatures: UInt64 {
        VirtioNet.featureMAC | VirtioNet.featureMergeableRxBuffers | VirtioNet.featureStatus
            | VirtioNet.featureChecksum | VirtioNet.featureGuestChecksum
            | (mtu != nil ? VirtioNet.featureMTU : 0)
    }
    public var queueCount: Int { 2 }
    /// mac[6], status (le16), max_virtqueue_pairs (le16), mtu (le16).
    public var configSize: Int { 12 }
    /// The advertised MTU (68...65535), from the backend.
    public let mtu: Int?

    public func readConfig(offset: Int, size: Int) -> UInt64 {
        var space = ConfigSpace(size: configSize)
        for i in 0..<6 { space.put(UInt64(mac[i]), at: i, size: 1) }
        space.put(UInt64(linkUp ? VirtioNet.statusLinkUp : 0), at: 6, size: 2)
        space.put(1, at: 8, size: 2)
        space.put(UInt64(mtu ?? 1500), at: 10, size: 2)
        return space.get(offset: offset, size: size)
    }

    /// Legacy drivers may write the MAC through config space; modern ones use a control queue (not offered).
    public func writeConfig(offset: Int, size: Int, value: UInt64) {}

    public func featuresAccepted(_ features: UInt64) {
        mergeableBuffers = features & VirtioNet.featureMergeableRxBuffers != 0
        guestChecksum = features & VirtioNet.featureGuestChecksum != 0
    }

    public func reset() { mergeableBuffers = false; guestChecksum = false }

    public func process(queue index: Int, _ queue: Virtqueue) throws(VirtioError) {
        switch index {
        case 0: try receive(queue)
        case 1: try transmit(queue)
        default: break
        }
    }

    // MARK: Transmit (guest → backend)

    private func transmit(_ queue: Virtqueue) throws(VirtioError) {
        while let chain = try queue.nextChain() {
            let total = chain.readableLength
            let header = UInt64(VirtioNet.headerSize)
            if total < header + UInt64(VirtioNet.minFrameSize) || total - header > UInt64(VirtioNet.maxFrameSize) || !linkUp {
                transmitDropped &+= 1
            } else {
                let all = UnsafeMutableRawBufferPointer(rebasing: transmitBuffer[0..<Int(total)])
                let frame = UnsafeMutableRawBufferPointer(rebasing: transmitBuffer[VirtioNet.headerSize..<Int(total)])
                if chain.read(from: 0, into: all, ram: queue.ram) == Int(total), finishChecksum(frame) {
                    backend.transmit(UnsafeRawBufferPointer(frame))
                    framesTransmitted &+= 1
                } else {
                    transmitDropped &+= 1
                }
            }
            try queue.complete(chain, written: 0)
        }
    }

    /// Applies the header of the frame in `transmitBuffer`: completes a checksum the driver left to the
    /// device. False (drop the frame) for segmentation requests, which are not offered, and for checksum
    /// positions outside the frame.
    private func finishChecksum(_ frame: UnsafeMutableRawBufferPointer) -> Bool {
        let h = transmitBuffer
        guard h[1] == 0 else { return false }  // gso_type must be NONE
        guard h[0] & VirtioNet.headerNeedsChecksum != 0 else { return true }
        let start = Int(h[6]) | Int(h[7]) << 8, offset = Int(h[8]) | Int(h[9]) << 8
        guard start < frame.count, offset <= frame.count - start - 2 else { return false }
        // The driver put the pseudo-header sum in the field; the one's-complement sum from csum_start to
        // the end, folded and inverted, goes there (RFC 1071).
        var sum: UInt64 = 0
        var i = start
        while i + 1 < frame.count { sum &+= UInt64(frame[i]) << 8 | UInt64(frame[i + 1]); i += 2 }
        if i < frame.count { sum &+= UInt64(frame[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) &+ (sum >> 16) }
        let result = ~UInt16(sum)
        frame[start + offset] = UInt8(result >> 8)
        frame[start + offset + 1] = UInt8(result & 0xff)
        return true
    }

    // MARK: Receive (backend → guest)

    /// Delivers waiting frames while the driver has posted receive buffers; the rest wait in the backend
    /// (the driver notifies queue 0 when it posts more, and the machine calls again when frames arrive).
    private func receive(_ queue: Virtqueue) throws(VirtioError) {
        while let frame = backend.peekReceived() {
            guard frame.count >= VirtioNet.minFrameSize, frame.count <= VirtioNet.maxFrameSize, linkUp else {
                backend.dropReceived()
                receiveDropped &+= 1
                continue
            }
            switch try place(frame, in: queue) {
            case .delivered:
                backend.dropReceived()
                framesReceived &+= 1
            case .dropped:
                backend.dropReceived()
                receiveDropped &+= 1
            case .noBuffers:
                return
            }
        }
    }

    private enum Placement { case delivered, dropped, noBuffers }

    /// Copies header + frame into as many receive chains as needed (one without MRG_RXBUF).
    private func place(_ frame: [UInt8], in queue: Virtqueue) throws(VirtioError) -> Placement {
        let total = VirtioNet.headerSize + frame.count
        let start = queue.position
        var chains: [DescriptorChain] = []
        var room = 0
        while room < total {
            guard chains.count < VirtioNet.maxBuffersPerFrame, let chain = try queue.nextChain() else {
                queue.rewind(to: start)
                return chains.count >= VirtioNet.maxBuffersPerFrame ? .dropped : .noBuffers
            }
            guard chain.readableLength == 0, chain.writableLength >= UInt64(VirtioNet.headerSize) else {
                throw VirtioError("virtio-net receive buffer \(chain.head) has \(chain.readableLength) readable and \(chain.writableLength) writable bytes (needs only writable bytes, at least \(VirtioNet.headerSize))")
            }
            chains.append(chain)
            room += Int(min(chain.writableLength, UInt64(total)))
            if !mergeableBuffers && room < total {
                // The frame does not fit the one buffer a non-mergeable driver gives it: drop the frame,
                // hand the buffer back untouched.
                queue.rewind(to: start)
                return .dropped
            }
        }
        var header = [UInt8](repeating: 0, count: VirtioNet.headerSize)
        if guestChecksum && backend.deliversValidChecksums { header[0] = VirtioNet.headerDataValid }
        header[10] = UInt8(truncatingIfNeeded: chains.count)
        header[11] = UInt8(truncatingIfNeeded: chains.count >> 8)
        var streamOffset = 0
        for chain in chains {
            let n = min(Int(chain.writableLength), total - streamOffset)
            let from = streamOffset
            var at = from
            _ = header.withUnsafeBytes { head in
                frame.withUnsafeBytes { body in
                    chain.fillWritable(from: 0, length: UInt64(n), ram: queue.ram) { dst in
                        var filled = 0
                        while filled < dst.count {
                            let source: UnsafeRawBufferPointer, index: Int
                            if at < VirtioNet.headerSize { source = head; index = at } else { source = body; index = at - VirtioNet.headerSize }
                            let count = min(dst.count - filled, source.count - index)
                            (dst.baseAddress! + filled).copyMemory(from: source.baseAddress! + index, byteCount: count)
                            filled += count
                            at += count
                        }
                    }
                }
            }
            try queue.complete(chain, written: UInt32(n))
            streamOffset += n
        }
        return .delivered
    }

    // MARK: Snapshot

    /// The MAC and link state the driver saw. Frames still waiting in the backend are not part of the
    /// device: they are delivered after a restore if the backend still holds them, or lost as on a link.
    public func saveState(to w: inout StateWriter) {
        w.data(mac)
        w.bool(linkUp)
    }

    public func restoreState(from r: inout StateReader) throws {
        let newMAC = try r.data(limit: 6)
        guard newMAC.count == 6 else { throw SnapshotError("\(r.context): virtio-net MAC has \(newMAC.count) bytes") }
        let newLink = try r.bool()
        mac = newMAC
        linkUp = newLink
    }
}
