#if canImport(Glibc)
import Glibc
#endif
import FuzzSupport
import RivetDevices
import RivetMemory
import RivetStorage

/// The input is a driver: a sequence of MMIO register reads and writes, guest RAM writes (descriptor
/// tables, rings, request headers) and queue notifications, against a virtio-blk (on a small raw disk) and
/// a virtio-rng. Nothing may crash or touch memory outside guest RAM; a broken device must say so.
final class NullIRQ: InterruptSink { func setLevel(source: Int, _ level: Bool) {} }

let ramBase: UInt64 = 0x8000_0000
let ramSize: UInt64 = 64 << 10
nonisolated(unsafe) let ram = try! GuestRAM(base: ramBase, size: ramSize)
nonisolated(unsafe) let disk: BlockDevice = {
    let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    let path = "\(dir)/rivet-fuzz-virtio-\(getpid()).raw"
    try! RawDisk.create(path: path, size: 64 << 10)
    return try! RawDisk(path: path, readOnly: false)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVirtio(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    _ = ram.pointer(ramBase, length: ramSize).map { memset($0, 0, Int(ramSize)) }
    let block = VirtioBlock(disk: disk)
    block.errorPolicy = BlockErrorPolicy(read: .report, write: .report)
    let model: VirtioDeviceModel = input.u8() & 1 == 0 ? block : VirtioRNG(seed: 1)
    let dev = VirtioMMIO(model: model, ram: ram, irq: NullIRQ(), source: 1)
    if input.u8() & 1 == 0 {
        // A well-behaved start (so the fuzzer reaches the queues quickly): features, one queue of 16
        // at fixed places, DRIVER_OK.
        dev.mmioWrite(offset: 0x70, size: 4, value: 1)
        dev.mmioWrite(offset: 0x70, size: 4, value: 3)
        dev.mmioWrite(offset: 0x24, size: 4, value: 1)
        dev.mmioWrite(offset: 0x20, size: 4, value: 1)          // VERSION_1
        dev.mmioWrite(offset: 0x70, size: 4, value: 11)
        dev.mmioWrite(offset: 0x30, size: 4, value: 0)
        dev.mmioWrite(offset: 0x38, size: 4, value: 16)
        dev.mmioWrite(offset: 0x80, size: 4, value: ramBase)
        dev.mmioWrite(offset: 0x90, size: 4, value: ramBase + 0x1000)
        dev.mmioWrite(offset: 0xa0, size: 4, value: ramBase + 0x2000)
        dev.mmioWrite(offset: 0x84, size: 4, value: 0)
        dev.mmioWrite(offset: 0x94, size: 4, value: 0)
        dev.mmioWrite(offset: 0xa4, size: 4, value: 0)
        dev.mmioWrite(offset: 0x44, size: 4, value: 1)
        dev.mmioWrite(offset: 0x70, size: 4, value: 15)
    }
    var ops = 0
    while !input.isEmpty && ops < 256 {
        ops += 1
        let op = input.u8()
        let sizes = [1, 2, 4, 8]
        switch op % 5 {
        case 0:
            dev.mmioWrite(offset: UInt64(input.u16() % 0x180), size: sizes[Int(op >> 3) % 4], value: input.u64())
        case 1:
            _ = dev.mmioRead(offset: UInt64(input.u16() % 0x180), size: sizes[Int(op >> 3) % 4])
        case 2:
            // Guest RAM write: where, then up to 64 bytes.
            let at = UInt64(input.u16()) % ramSize
            let bytes = input.take(Int(input.u8() % 65))
            _ = ram.write(ramBase + at, bytes: Array(bytes.prefix(Int(ramSize - at))))
        case 3:
            // Publish descriptor chain head h in the available ring and bump its index.
            let head = input.u16()
            let idx = ram.load16(ramBase + 0x1002) ?? 0
            ram.store16(ramBase + 0x1004 + 2 * UInt64(idx % 16), head)
            ram.store16(ramBase + 0x1002, idx &+ 1)
            dev.mmioWrite(offset: 0x50, size: 4, value: 0)
        default:
            dev.mmioWrite(offset: 0x50, size: 4, value: UInt64(input.u8()))
        }
    }
    if dev.isBroken && dev.brokenReason == nil { fatalError("broken without a reason") }
    return 0
}
