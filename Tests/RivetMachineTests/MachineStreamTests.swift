import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import RivetMachine
import RivetMemory
import RivetSnapshot

/// The machine-state stream: round trips, exact continuation, and a seeded mutation fuzz of the reader.
final class MachineStreamTests: XCTestCase {
    static let firmwarePath = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"

    func makeMachine(harts: Int = 1) throws -> VirtMachine {
        var config = VirtMachineConfig()
        config.memorySize = 64 << 20
        config.hartCount = harts
        config.icount = true
        guard let fw = FileManagerLite.read(MachineStreamTests.firmwarePath) else {
            XCTFail("OpenSBI firmware missing at \(MachineStreamTests.firmwarePath) (apt-get install opensbi)")
            throw SnapshotError("no firmware")
        }
        config.firmware = fw
        config.kernel = [0x6f, 0, 0, 0]  // j . : OpenSBI hands over to a kernel that spins
        let null = open("/dev/null", O_RDWR)
        let console = HostConsole(inputFD: null, outputFD: null, interactive: false)
        return try VirtMachine(config: config, console: console)
    }

    /// A temporary file holding `bytes`, read from offset 0 (mappable, like `--incoming file:`).
    func withFile<T>(_ bytes: [UInt8], _ body: (Int32) throws -> T) rethrows -> T {
        var template = Array("/tmp/rivet-stream-test-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        lseek(fd, 0, SEEK_SET)
        return try body(fd)
    }

    func save(_ m: VirtMachine) throws -> [UInt8] {
        var template = Array("/tmp/rivet-stream-test-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        defer { close(fd) }
        _ = try m.saveState(to: StreamWriter(fd: fd))
        let size = Int(lseek(fd, 0, SEEK_END))
        var out = [UInt8](repeating: 0, count: size)
        _ = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, size, 0) }
        return out
    }

    func testRoundTripIsExactUnderIcount() throws {
        for harts in [1, 2] {
            let a = try makeMachine(harts: harts)
            _ = try a.run(maxInstructions: 3_000_000)
            let stream = try save(a)
            let b = try makeMachine(harts: harts)
            try withFile(stream) { fd in _ = try b.restoreState(from: StreamReader(fd: fd)) }
            XCTAssertEqual(try save(b), stream, "a restored machine saves the same stream (\(harts) harts)")
            _ = try a.run(maxInstructions: 6_000_000)
            _ = try b.run(maxInstructions: 6_000_000)
            XCTAssertEqual(a.ramHash(), b.ramHash())
            XCTAssertEqual(a.harts.map { $0.pc }, b.harts.map { $0.pc })
            XCTAssertEqual(a.totalInstructions, b.totalInstructions)
            XCTAssertEqual(a.clock.mtime, b.clock.mtime)
        }
    }

    func testConfigurationMismatchIsOneLine() throws {
        let a = try makeMachine(harts: 1)
        _ = try a.run(maxInstructions: 100_000)
        let stream = try save(a)
        let b = try makeMachine(harts: 2)
        XCTAssertThrowsError(try withFile(stream) { fd in try b.restoreState(from: StreamReader(fd: fd)) }) { e in
            XCTAssertEqual("\(e)", "the snapshot is of a machine with --smp 1; this one has --smp 2")
        }
    }

    /// RAM records apply in order: later rounds override earlier data, zero records clear pages (what
    /// live migration's dirty-page rounds will send). Records need not be page-aligned (pipes, sockets).
    func testLaterRAMRecordsOverrideEarlierOnes() throws {
        let source = try makeMachine()
        _ = try source.run(maxInstructions: 200_000)
        let stream = try save(source)
        var template = Array("/tmp/rivet-stream-test-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        defer { close(fd) }
        let w = StreamWriter(fd: fd)
        try w.writeHeader()
        let page = 4096
        func pages(_ n: Int, _ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: n * page) }
        func record(_ kind: RAMRecord, _ first: Int, _ count: Int, _ data: [UInt8] = []) -> [UInt8] {
            var r = StateWriter()
            r.u8(kind.rawValue); r.u64(UInt64(first)); r.u64(UInt64(count))
            if kind == .data { r.u32(0) }
            return r.bytes + data
        }
        let base = 1000  // pages well above the firmware
        var ram = StateWriter()
        ram.u64(UInt64(page)); ram.u64(UInt64(source.ram.pageCount))
        var payload = ram.bytes
        payload += record(.data, base, 2, pages(2, 0xaa))
        payload += record(.data, base + 3, 1, pages(1, 0x55))
        payload += record(.zero, base + 1, 1)
        payload += record(.data, base, 1, pages(1, 0x11))
        payload += [RAMRecord.end.rawValue]
        for sec in sections(stream) {
            let version = stream[(sec.payload.lowerBound - 12)..<(sec.payload.lowerBound - 8)].enumerated()
                .reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            if sec.name == VirtMachine.ramSectionName {
                try w.writeSection(name: sec.name, version: version, payload: payload)
            } else {
                try w.writeSection(name: sec.name, version: version, payload: Array(stream[sec.payload]))
            }
        }
        try w.writeEnd()
        lseek(fd, 0, SEEK_SET)
        let target = try makeMachine()
        _ = try target.restoreState(from: StreamReader(fd: fd))
        let at = { (p: Int) in target.ram.host.load(fromByteOffset: p * page + 100, as: UInt8.self) }
        XCTAssertEqual(at(base), 0x11)
        XCTAssertEqual(at(base + 1), 0)
        XCTAssertEqual(at(base + 2), 0)
        XCTAssertEqual(at(base + 3), 0x55)
        XCTAssertEqual(at(0), 0, "pages no record names are zero")
    }

    /// Sections of a stream: (name, payload range, CRC offset), found by walking the framing.
    func sections(_ s: [UInt8]) -> [(name: String, payload: Range<Int>, crc: Int)] {
        var out: [(String, Range<Int>, Int)] = []
        var i = 12
        func u64(_ at: Int) -> Int { var v = 0; for k in 0..<8 { v |= Int(s[at + k]) << (8 * k) }; return v }
        while i < s.count && s[i] == StreamFormat.sectionTag {
            let n = Int(s[i + 1]) | Int(s[i + 2]) << 8
            let name = String(decoding: s[(i + 3)..<(i + 3 + n)], as: UTF8.self)
            let length = u64(i + 3 + n + 4)
            let start = i + 3 + n + 12
            out.append((name, start..<(start + length), start + length))
            i = start + length + 4
        }
        return out
    }

    /// Seeded mutations of a real snapshot: every one is refused with an error or restores a machine that
    /// then runs; none may crash. Half the cases re-seal the mutated section's CRC so the devices'
    /// validation is reached, not only the checksum.
    func testMutatedStreamsNeverCrash() throws {
        let source = try makeMachine(harts: 2)
        _ = try source.run(maxInstructions: 4_000_000)
        let stream = try save(source)
        let secs = sections(stream)
        XCTAssertGreaterThan(secs.count, 10)
        let target = try makeMachine(harts: 2)
        var rng = SplitMix(seed: 0x5249_5645_54)
        var refused = 0, accepted = 0
        let cases = 3000
        for n in 0..<cases {
            var s = stream
            let sec = secs[Int(rng.next() % UInt64(secs.count))]
            let reseal = n % 2 == 0
            let smallSection = sec.payload.count > 0 && sec.name != VirtMachine.ramSectionName
            switch rng.next() % 6 {
            case 0:  // truncate
                s.removeLast(Int(rng.next() % UInt64(s.count)) + 1)
            case 1:  // flip bits anywhere
                for _ in 0...(rng.next() % 4) { let at = Int(rng.next() % UInt64(s.count)); s[at] ^= UInt8(1 << (rng.next() % 8)) }
            case 2, 3:  // rewrite bytes inside one section's payload (devices' validation)
                if smallSection || sec.payload.count > 0 {
                    for _ in 0...(rng.next() % 3) {
                        let at = sec.payload.lowerBound + Int(rng.next() % UInt64(sec.payload.count))
                        s[at] = [0, 0xff, 0x80, UInt8(truncatingIfNeeded: rng.next())][Int(rng.next() % 4)]
                    }
                }
            case 4:  // a large value over a u64 in a payload
                if sec.payload.count >= 8 {
                    let at = sec.payload.lowerBound + Int(rng.next() % UInt64(sec.payload.count - 7))
                    let v = [UInt64.max, 1 << 40, UInt64(rng.next()), 0x8000_0000][Int(rng.next() % 4)]
                    for k in 0..<8 { s[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
                }
            default:  // garbage inserted or removed inside the framing
                let at = Int(rng.next() % UInt64(s.count))
                if rng.next() % 2 == 0 { s.insert(contentsOf: (0..<Int(rng.next() % 16 + 1)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at) }
                else { s.removeSubrange(at..<min(s.count, at + Int(rng.next() % 16 + 1))) }
            }
            if reseal && s.count == stream.count && sec.crc + 4 <= s.count {
                let crc = s[sec.payload].withUnsafeBytes { crc32Update(0, $0) }
                for k in 0..<4 { s[sec.crc + k] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(k))) }
            }
            do {
                try withFile(s) { fd in _ = try target.restoreState(from: StreamReader(fd: fd), mapFile: n % 3 != 0) }
                accepted += 1
                // A state the validators let through must run without harming the host.
                _ = try target.run(maxInstructions: target.totalWork &+ 20_000)
            } catch {
                refused += 1
                XCTAssertFalse("\(error)".contains("\n"), "errors are one line: \(error)")
            }
        }
        XCTAssertGreaterThan(refused, cases / 2)
        print("stream fuzz: \(cases) cases, \(refused) refused, \(accepted) accepted")
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

enum FileManagerLite {
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }
}
