import RivetMemory
import RivetSnapshot

/// Why a virtqueue was rejected. Any of these marks the device broken (DEVICE_NEEDS_RESET).
public struct VirtioError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One guest buffer of a descriptor chain, already checked to lie inside guest RAM.
public struct VirtioSegment: Equatable {
    public let address: UInt64
    public let length: UInt32
    /// Device-writable (VIRTQ_DESC_F_WRITE).
    public let writable: Bool
}

/// A validated descriptor chain: device-readable segments first, then device-writable ones.
public struct DescriptorChain {
    public let head: UInt16
    public let segments: [VirtioSegment]
    public let readableLength: UInt64
    public let writableLength: UInt64

    /// Copies readable bytes starting at `offset` (counted over the readable segments) into `buffer`;
    /// returns how many bytes were copied.
    public func read(from offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, ram: GuestRAM) -> Int {
        var skip = offset, done = 0
        for s in segments where !s.writable {
            if done == buffer.count { break }
            let len = UInt64(s.length)
            if skip >= len { skip -= len; continue }
            let n = Int(min(len - skip, UInt64(buffer.count - done)))
            guard let p = ram.pointer(s.address + skip, length: UInt64(n)) else { break }
            (buffer.baseAddress! + done).copyMemory(from: p, byteCount: n)
            done += n
            skip = 0
        }
        return done
    }

    /// Visits device-writable guest memory in order, starting `offset` bytes into the writable part, for at
    /// most `length` bytes. `body` fills the host range; the range is then marked written in guest RAM.
    /// Returns how many bytes were visited, or throws what `body` throws.
    public func fillWritable(from offset: UInt64, length: UInt64, ram: GuestRAM,
                             _ body: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows -> UInt64 {
        var skip = offset, done: UInt64 = 0
        for s in segments where s.writable {
            if done == length { break }
            let len = UInt64(s.length)
            if skip >= len { skip -= len; continue }
            let n = min(len - skip, length - done)
            guard let p = ram.pointer(s.address + skip, length: n) else { break }
            try body(UnsafeMutableRawBufferPointer(start: p, count: Int(n)))
            ram.noteWrite(s.address + skip, length: n)
            done += n
            skip = 0
        }
        return done
    }

    /// Visits readable guest memory in order from `offset`, for at most `length` bytes.
    public func visitReadable(from offset: UInt64, length: UInt64, ram: GuestRAM,
                              _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows -> UInt64 {
        var skip = offset, done: UInt64 = 0
        for s in segments where !s.writable {
            if done == length { break }
            let len = UInt64(s.length)
            if skip >= len { skip -= len; continue }
            let n = min(len - skip, length - done)
            guard let p = ram.pointer(s.address + skip, length: n) else { break }
            try body(UnsafeRawBufferPointer(start: p, count: Int(n)))
            done += n
            skip = 0
        }
        return done
    }

    /// Writes `bytes` into the writable part at `offset`; throws if the driver gave too little writable room
    /// (the device would have to write into a driver-readonly buffer).
    public func write(_ bytes: [UInt8], at offset: UInt64, ram: GuestRAM) throws(VirtioError) {
        guard offset <= writableLength, UInt64(bytes.count) <= writableLength - offset else {
            throw VirtioError("device must write \(bytes.count) bytes at offset \(offset) but the chain has \(writableLength) writable bytes")
        }
        bytes.withUnsafeBytes { src in
            var consumed = 0
            _ = fillWritable(from: offset, length: UInt64(src.count), ram: ram) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[consumed..<consumed + dst.count]))
                consumed += dst.count
            }
        }
    }
}

/// The driver-programmed configuration and device-side indices of one split virtqueue.
public struct VirtqueueState: Equatable {
    public var size: UInt16 = 0
    public var ready = false
    public var descAddress: UInt64 = 0
    public var driverAddress: UInt64 = 0
    public var deviceAddress: UInt64 = 0
    /// Next avail ring slot the device will consume.
    public var lastAvail: UInt16 = 0
    /// Next used ring slot the device will fill (mirrors used->idx).
    public var usedIndex: UInt16 = 0

    public init() {}
}

/// Access to one ready, validated split virtqueue while a device model processes it.
///
/// Everything the driver wrote is untrusted: ring indices, descriptor indices, addresses and lengths are
/// checked before use, and a malformed ring throws `VirtioError` (the transport then marks the device broken).
public final class Virtqueue {
    static let descFNext: UInt16 = 1, descFWrite: UInt16 = 2, descFIndirect: UInt16 = 4
    static let availFNoInterrupt: UInt16 = 1
    /// Largest total byte count of one chain (a 32-bit used length must be able to describe it).
    static let maxChainBytes: UInt64 = UInt64(UInt32.max)

    public let ram: GuestRAM
    @exclusivity(unchecked) public private(set) var state: VirtqueueState
    let indirectAllowed: Bool
    /// Chains taken in this processing round; bounded by the queue size so a hostile avail index or a
    /// device writing into its own ring cannot make one notification run forever.
    @exclusivity(unchecked) private var taken = 0
    /// True when at least one buffer was returned and the driver did not suppress interrupts.
    @exclusivity(unchecked) public private(set) var needsInterrupt = false

    init(state: VirtqueueState, ram: GuestRAM, indirectAllowed: Bool) {
        self.state = state
        self.ram = ram
        self.indirectAllowed = indirectAllowed
    }

    var size: UInt64 { UInt64(state.size) }

    /// Checks that the queue's areas lie in RAM with the required alignment.
    static func validate(_ s: VirtqueueState, maxSize: UInt16, ram: GuestRAM) throws(VirtioError) {
        let n = UInt64(s.size)
        guard n > 0, s.size <= maxSize, s.size & (s.size - 1) == 0 else {
            throw VirtioError("queue size \(s.size) is not a power of two in 1...\(maxSize)")
        }
        guard s.descAddress & 15 == 0, ram.contains(s.descAddress, length: 16 * n) else {
            throw VirtioError("descriptor table at 0x\(String(s.descAddress, radix: 16)) is misaligned or outside RAM")
        }
        guard s.driverAddress & 1 == 0, ram.contains(s.driverAddress, length: 6 + 2 * n) else {
            throw VirtioError("available ring at 0x\(String(s.driverAddress, radix: 16)) is misaligned or outside RAM")
        }
        guard s.deviceAddress & 3 == 0, ram.contains(s.deviceAddress, length: 6 + 8 * n) else {
            throw VirtioError("used ring at 0x\(String(s.deviceAddress, radix: 16)) is misaligned or outside RAM")
        }
    }

    private func load16(_ a: UInt64) throws(VirtioError) -> UInt16 {
        guard let v = ram.load16(a) else { throw VirtioError("ring read at 0x\(String(a, radix: 16)) is outside RAM") }
        return UInt16(littleEndian: v)
    }

    /// The next available chain, or nil when the driver has published nothing new.
    public func nextChain() throws(VirtioError) -> DescriptorChain? {
        let availIdx = try load16(state.driverAddress + 2)
        let outstanding = availIdx &- state.lastAvail
        if outstanding == 0 { return nil }
        guard UInt64(outstanding) <= size else {
            throw VirtioError("available index \(availIdx) is \(outstanding) entries ahead of the device (queue size \(state.size))")
        }
        guard taken < Int(state.size) else { return nil }  // the rest waits for the next notification
        let slot = UInt64(state.lastAvail) % size
        let head = try load16(state.driverAddress + 4 + 2 * slot)
        let chain = try walk(head: head)
        state.lastAvail &+= 1
        taken += 1
        return chain
    }

    /// The chain at `head` again, for a request a device kept across a snapshot (not counted as newly taken).
    public func chain(head: UInt16) throws(VirtioError) -> DescriptorChain { try walk(head: head) }

    /// Follows a chain from `head`, flattening one level of indirect tables.
    private func walk(head: UInt16) throws(VirtioError) -> DescriptorChain {
        guard UInt64(head) < size else { throw VirtioError("descriptor index \(head) out of range (queue size \(state.size))") }
        var segments: [VirtioSegment] = []
        var readable: UInt64 = 0, writable: UInt64 = 0
        var table = state.descAddress, tableCount = size
        var index = UInt64(head)
        var inIndirect = false
        var visited: UInt64 = 0
        while true {
            visited += 1
            guard visited <= tableCount else { throw VirtioError("descriptor chain from head \(head) loops or is longer than its table (\(tableCount))") }
            let d = table + 16 * index
            guard let addr = ram.load64(d), let len = ram.load32(d + 8), let flags = ram.load16(d + 12), let next = ram.load16(d + 14) else {
                throw VirtioError("descriptor at 0x\(String(d, radix: 16)) is outside RAM")
            }
            let a = UInt64(littleEndian: addr), l = UInt32(littleEndian: len)
            let f = UInt16(littleEndian: flags), nx = UInt16(littleEndian: next)
            if f & Virtqueue.descFIndirect != 0 {
                guard indirectAllowed else { throw VirtioError("indirect descriptor used but VIRTIO_F_INDIRECT_DESC was not negotiated") }
                guard !inIndirect else { throw VirtioError("nested indirect descriptor table") }
                guard f & Virtqueue.descFNext == 0 else { throw VirtioError("indirect descriptor also has NEXT set") }
                guard l > 0, l % 16 == 0, UInt64(l / 16) <= size, ram.contains(a, length: UInt64(l)) else {
                    throw VirtioError("indirect table at 0x\(String(a, radix: 16)) length \(l) is invalid or outside RAM")
                }
                // The indirect table replaces the rest of the chain; its length (at most the queue size,
                // as a chain may not be longer than that) bounds the walk.
                inIndirect = true
                table = a; tableCount = UInt64(l / 16); index = 0; visited = 0
                continue
            }
            guard ram.contains(a, length: UInt64(l)) else {
                throw VirtioError("buffer at 0x\(String(a, radix: 16)) length \(l) is outside RAM")
            }
            let isWritable = f & Virtqueue.descFWrite != 0
            if isWritable {
                writable += UInt64(l)
            } else {
                guard writable == 0 else { throw VirtioError("device-readable descriptor after a device-writable one") }
                readable += UInt64(l)
            }
            guard readable + writable <= Virtqueue.maxChainBytes else { throw VirtioError("descriptor chain from head \(head) exceeds 4 GiB") }
            if l > 0 { segments.append(VirtioSegment(address: a, length: l, writable: isWritable)) }
            if f & Virtqueue.descFNext == 0 { break }
            guard UInt64(nx) < tableCount else { throw VirtioError("next descriptor index \(nx) out of range (table of \(tableCount))") }
            index = UInt64(nx)
        }
        return DescriptorChain(head: head, segments: segments, readableLength: readable, writableLength: writable)
    }

    /// Where the device stands in the available ring; `rewind(to:)` gives back chains taken since, as long
    /// as none of them was completed (a network device that needs several buffers for one frame takes
    /// them one by one and returns them all when the driver has not posted enough).
    public struct Position { let lastAvail: UInt16; let taken: Int }
    public var position: Position { Position(lastAvail: state.lastAvail, taken: taken) }
    public func rewind(to p: Position) {
        state.lastAvail = p.lastAvail
        taken = p.taken
    }

    /// Returns a chain to the driver with `written` bytes written into its writable part.
    public func complete(_ chain: DescriptorChain, written: UInt32) throws(VirtioError) {
        let slot = UInt64(state.usedIndex) % size
        let elem = state.deviceAddress + 4 + 8 * slot
        guard ram.store32(elem, UInt32(chain.head).littleEndian),
              ram.store32(elem + 4, written.littleEndian) else {
            throw VirtioError("used ring at 0x\(String(elem, radix: 16)) is outside RAM")
        }
        state.usedIndex &+= 1
        // The index is published after the element, as the driver reads them in that order.
        guard ram.store16(state.deviceAddress + 2, state.usedIndex.littleEndian) else {
            throw VirtioError("used index outside RAM")
        }
        let flags = try load16(state.driverAddress)
        if flags & Virtqueue.availFNoInterrupt == 0 { needsInterrupt = true }
    }
}
