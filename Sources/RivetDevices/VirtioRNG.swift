import RivetMemory
import RivetSnapshot

/// virtio-rng (device id 4): fills each driver-writable buffer with host random bytes (getrandom via
/// `SystemRandomNumberGenerator`).
/// A chain with no writable space is a driver bug and marks the device broken.
public final class VirtioRNG: VirtioDeviceModel {
    /// Bytes served per request at most.
    public static let maxBytesPerRequest: UInt64 = 64 * 1024

    /// When set (deterministic `--icount` runs), bytes come from this seeded generator instead of the host.
    @exclusivity(unchecked) public var seed: UInt64?

    public init(seed: UInt64? = nil) { self.seed = seed }

    public var deviceID: UInt32 { 4 }
    public var deviceFeatures: UInt64 { 0 }
    public var queueCount: Int { 1 }
    public var configSize: Int { 0 }
    public func readConfig(offset: Int, size: Int) -> UInt64 { 0 }

    public func process(queue index: Int, _ queue: Virtqueue) throws(VirtioError) {
        while let chain = try queue.nextChain() {
            guard chain.writableLength > 0 else { throw VirtioError("virtio-rng request without a writable buffer") }
            let n = min(chain.writableLength, VirtioRNG.maxBytesPerRequest)
            let done = chain.fillWritable(from: 0, length: n, ram: queue.ram) { buffer in
                if seed != nil { fillSeeded(buffer) } else { VirtioRNG.fillRandom(buffer) }
            }
            try queue.complete(chain, written: UInt32(done))
        }
    }

    /// The generator's position under `--icount`, so a restored deterministic run draws the same bytes.
    public func saveState(to w: inout StateWriter) {
        w.bool(seed != nil)
        w.u64(seed ?? 0)
    }

    public func restoreState(from r: inout StateReader) throws {
        let seeded = try r.bool()
        let value = try r.u64()
        guard seeded == (seed != nil) else {
            throw SnapshotError("\(r.context): entropy source was \(seeded ? "seeded (--icount)" : "host random"), this machine's is not")
        }
        if seeded { seed = value }
    }

    /// splitmix64 over `seed`: reproducible bytes for deterministic runs.
    func fillSeeded(_ buffer: UnsafeMutableRawBufferPointer) {
        for i in 0..<buffer.count {
            seed = seed! &+ 0x9e37_79b9_7f4a_7c15
            var z = seed!
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            buffer[i] = UInt8(truncatingIfNeeded: z ^ (z >> 31))
        }
    }

    /// Swift's system generator is getrandom(2) on Linux (the Glibc module does not export getrandom).
    static func fillRandom(_ buffer: UnsafeMutableRawBufferPointer) {
        var g = SystemRandomNumberGenerator()
        var i = 0
        while i < buffer.count {
            var word = g.next()
            let n = min(8, buffer.count - i)
            withUnsafeBytes(of: &word) { (buffer.baseAddress! + i).copyMemory(from: $0.baseAddress!, byteCount: n) }
            i += n
        }
    }
}
