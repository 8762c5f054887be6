import ArgumentParser
import RivetStorage
#if canImport(Glibc)
import Glibc
#endif

/// splitmix64: a small seeded generator, so runs are reproducible.
struct ImgRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func below(_ n: UInt64) -> UInt64 { n == 0 ? 0 : next() % n }
}

/// Test-only: seeded random writes, discards and flushes on an existing image, logging to a file:
///   "w OP SECTOR COUNT" / "d OP SECTOR COUNT" before each write/discard is issued, and "f OP" after a flush
///   returns. Sector s written by op k holds 32 copies of (k+1, s) as two little-endian UInt64s.
/// A test kills the process at random moments and checks that every op before the last "f" reads back.
struct ImgStress: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stress", abstract: "(test) Seeded random writes with logged flushes.", shouldDisplay: false)
    @Option var seed: UInt64 = 1
    @Option var ops: Int = 1_000_000
    @Option var log: String
    @Option(help: "Largest write in 512-byte sectors.") var maxSectors: UInt64 = 256
    @Option(help: "Percentage of ops that are discards.") var discardPercent: UInt64 = 5
    @Argument var file: String

    func run() throws {
        try imgReportingErrors {
            guard ops >= 0 else { imgFail("--ops must not be negative") }
            guard maxSectors >= 1 && maxSectors <= 65536 else { imgFail("--max-sectors must be between 1 and 65536") }
            guard discardPercent <= 100 else { imgFail("--discard-percent must be between 0 and 100") }
            let disk = try openDisk(path: file, format: nil, readOnly: false)
            guard disk.size >= 512 else { imgFail("\(file): disk smaller than one 512-byte sector") }
            let logFD = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if logFD < 0 { imgFail("\(log): cannot open log") }
            func logLine(_ s: String) {
                var line = s + "\n"
                line.withUTF8 { _ = Glibc.write(logFD, $0.baseAddress, $0.count) }
            }
            var rng = ImgRandom(state: seed)
            let sectors = disk.size / 512
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(maxSectors) * 512, alignment: 4096)
            defer { buf.deallocate() }
            var untilFlush = 1 + rng.below(16)
            for op in 0..<ops {
                let count = 1 + rng.below(min(maxSectors, sectors))
                let start = rng.below(sectors - count + 1)
                if rng.below(100) < discardPercent {
                    logLine("d \(op) \(start) \(count)")
                    try disk.discard(at: start * 512, length: count * 512)
                } else {
                    for s in 0..<count {
                        for w in 0..<32 {
                            buf.storeBytes(of: UInt64(op + 1).littleEndian, toByteOffset: Int(s) * 512 + w * 16, as: UInt64.self)
                            buf.storeBytes(of: (start + s).littleEndian, toByteOffset: Int(s) * 512 + w * 16 + 8, as: UInt64.self)
                        }
                    }
                    logLine("w \(op) \(start) \(count)")
                    try disk.write(at: start * 512, from: UnsafeRawBufferPointer(rebasing: buf[0..<Int(count) * 512]))
                }
                untilFlush -= 1
                if untilFlush == 0 {
                    try disk.flush()
                    logLine("f \(op)")
                    untilFlush = 1 + rng.below(16)
                }
            }
            try disk.flush()
            logLine("f \(ops - 1)")
            close(logFD)
        }
    }
}

/// Test/bench-only: 4 KiB (or --bs) reads or writes through the block layer, timed.
/// Patterns: seq (offset += bs), stride (offset += step, wrapping like `qemu-img bench -S`), rand (seeded).
struct ImgBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "(bench) Time reads or writes through the block layer.", shouldDisplay: false)
    @Option(name: .short, help: "Image format.") var f: String?
    @Option(name: .short, help: "Number of requests.") var c: Int = 100_000
    @Option(name: .short, help: "Request size.") var s: Int = 4096
    @Option(name: .customShort("S"), help: "Step between requests (stride pattern).") var step: UInt64 = 0
    @Flag(name: .short, help: "Write instead of read.") var w = false
    @Option var pattern: String = "seq"
    @Option var seed: UInt64 = 1
    @Option(help: "Flush after this many requests (0: only at the end).") var flushInterval: Int = 0
    @Argument var file: String

    func run() throws {
        try imgReportingErrors {
            guard c >= 0 else { imgFail("-c must not be negative") }
            guard flushInterval >= 0 else { imgFail("--flush-interval must not be negative") }
            guard ["seq", "stride", "rand"].contains(pattern) else { imgFail("--pattern must be seq, stride or rand") }
            let disk = try openDisk(path: file, format: imgParseFormat(f, "image"), readOnly: !w)
            guard s > 0, UInt64(s) <= disk.size else { imgFail("request size must be between 1 and the disk size") }
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: s, alignment: 4096)
            defer { buf.deallocate() }
            memset(buf.baseAddress!, 0xa5, s)
            var rng = ImgRandom(state: seed)
            let slots = disk.size / UInt64(s)
            var offset: UInt64 = 0
            let stepBytes = step == 0 ? UInt64(s) : step
            var t0 = timespec(); clock_gettime(CLOCK_MONOTONIC, &t0)
            for i in 0..<c {
                switch pattern {
                case "rand": offset = rng.below(slots) * UInt64(s)
                default:
                    if i > 0 {
                        // Both terms are below the range (< 2^63), so the sum cannot overflow.
                        let range = disk.size - UInt64(s) + 1
                        offset = (offset % range + stepBytes % range) % range
                    }
                }
                if w {
                    try disk.write(at: offset, from: UnsafeRawBufferPointer(buf))
                    if flushInterval > 0 && (i + 1) % flushInterval == 0 { try disk.flush() }
                } else {
                    try disk.read(at: offset, into: buf)
                }
            }
            if w { try disk.flush() }
            var t1 = timespec(); clock_gettime(CLOCK_MONOTONIC, &t1)
            let secs = Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) / 1e9
            let mbs = Double(c) * Double(s) / secs / 1_048_576
            print("Run completed in \(imgFixed(secs, 3)) seconds: \(c) requests, \(imgFixed(Double(c) / secs, 0)) IOPS, \(imgFixed(mbs, 1)) MiB/s")
        }
    }
}
