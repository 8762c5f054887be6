import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import RivetMachine
import RivetMemory
import RivetSnapshot
import RivetStorage

/// Block migration's part of the stream: a drive's first copy and later granules reach the destination's
/// own drive; hostile "block" sections are refused with one line, before anything is written.
final class BlockMigrationStreamTests: XCTestCase {
    var dir = ""

    override func setUp() {
        var template = Array("/tmp/rivet-blockmig-XXXXXX".utf8CString)
        dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    override func tearDown() {
        for name in ["src.raw", "dst.raw", "dst2.raw", "ro.raw"] { unlink(dir + "/" + name) }
        rmdir(dir)
    }

    func drive(_ name: String, size: UInt64 = 4 << 20, readOnly: Bool = false) throws -> DirtyTrackingDisk {
        let path = dir + "/" + name
        if access(path, F_OK) != 0 { try RawDisk.create(path: path, size: size) }
        return DirtyTrackingDisk(try openDisk(path: path, format: .raw, readOnly: readOnly))
    }

    func makeMachine(_ disks: [BlockDevice]) throws -> VirtMachine {
        var config = VirtMachineConfig()
        config.memorySize = 64 << 20
        config.icount = true
        guard let fw = FileManagerLite.read(MachineStreamTests.firmwarePath) else {
            XCTFail("OpenSBI firmware missing (apt-get install opensbi)")
            throw SnapshotError("no firmware")
        }
        config.firmware = fw
        config.kernel = [0x6f, 0, 0, 0]
        config.disks = disks
        let null = open("/dev/null", O_RDWR)
        return try VirtMachine(config: config, console: HostConsole(inputFD: null, outputFD: null, interactive: false))
    }

    func fill(_ d: BlockDevice, at offset: UInt64, _ count: Int, seed: UInt8) throws {
        let data = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
        try data.withUnsafeBytes { try d.write(at: offset, from: $0) }
    }

    func contents(_ d: BlockDevice) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(d.size))
        try out.withUnsafeMutableBytes { try d.read(at: 0, into: $0) }
        return out
    }

    /// A live-migration-shaped stream from `source`: header, machine, `middle` (block sections), RAM, device
    /// sections, end. Returns a descriptor at offset 0.
    func stream(_ source: VirtMachine, middle: (StreamWriter) throws -> Void) throws -> Int32 {
        var template = Array("/tmp/rivet-blockmig-stream-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        let w = StreamWriter(fd: fd)
        try w.writeHeader()
        try w.writeSection(name: MachineDescription.sectionName, version: MachineDescription.version, payload: source.describe.encode())
        try middle(w)
        var stats = SnapshotStats()
        try source.writeRAM(to: w, stats: &stats)
        for s in source.stateSections { try w.writeSection(s) }
        try w.writeEnd()
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    func testFirstCopyAndLaterGranulesReachTheDestinationsDrive() throws {
        let src = try drive("src.raw")
        try fill(src, at: 0, 5000, seed: 1)
        try fill(src, at: 3 << 20, 70000, seed: 2)
        let source = try makeMachine([src])
        let block = try BlockMigration(machine: source)
        let fd = try stream(source) { w in
            let sender = BlockSender(machine: source, writer: w, onRunLoop: true) {}
            try block.start()
            try block.sendBulk(sender)
            // Written during the migration: goes again in a round; a discarded range goes as zeros.
            try self.fill(src, at: (1 << 20) + 10, 100, seed: 3)
            try src.discard(at: 0, length: 65536)
            XCTAssertEqual(block.sync(), 2 * 65536)
            try block.sendPending(sender)
            block.stop()
        }
        defer { close(fd) }
        XCTAssertEqual(block.progress.remaining, 0)
        XCTAssertGreaterThan(block.progress.transferred, 4 << 20)
        let dst = try drive("dst.raw")
        try fill(dst, at: 2 << 20, 4096, seed: 9)   // not empty: the gaps must be zeroed too
        let destination = try makeMachine([dst])
        try destination.restoreState(from: StreamReader(fd: fd), mapFile: false, live: true)
        XCTAssertEqual(try contents(dst), try contents(src))

        // A file snapshot never carries disk contents.
        lseek(fd, 0, SEEK_SET)
        XCTAssertThrowsError(try makeMachine([try drive("dst2.raw")]).restoreState(from: StreamReader(fd: fd))) { e in
            XCTAssertTrue("\(e)".contains("only accepted from a live migration"), "\(e)")
        }
    }

    func testHostileBlockSectionsAreRefusedBeforeAnythingIsWritten() throws {
        let source = try makeMachine([try drive("src.raw"), try drive("ro.raw", readOnly: true)])
        func section(drive: UInt32, size: UInt64 = 4 << 20, _ records: (inout StateWriter) -> Void) -> [UInt8] {
            var w = StateWriter()
            w.u32(drive); w.u64(size)
            records(&w)
            return w.bytes
        }
        let good: (inout StateWriter) -> Void = { w in w.u8(1); w.u64(0); w.data([1, 2, 3]); w.u8(0) }
        let cases: [(String, [UInt8])] = [
            ("does not exist", section(drive: 7, good)),
            ("read-only here", section(drive: 1, good)),
            ("bytes on the source", section(drive: 0, size: 1 << 20, good)),
            ("outside drive 0", section(drive: 0) { w in w.u8(1); w.u64((4 << 20) - 2); w.data([1, 2, 3]); w.u8(0) }),
            ("outside drive 0", section(drive: 0) { w in w.u8(2); w.u64(1); w.u64(UInt64.max); w.u8(0) }),
            ("outside drive 0", section(drive: 0) { w in w.u8(1); w.u64(UInt64.max); w.data([1]); w.u8(0) }),
            ("unknown record kind", section(drive: 0) { w in w.u8(1); w.u64(0); w.data([1]); w.u8(9) }),
            ("block", section(drive: 0) { w in w.u8(1); w.u64(0); w.u64(1 << 40) }),
            ("block", section(drive: 0) { w in w.u8(1); w.u64(0); w.data([1]) }),   // no end record
        ]
        for (expected, payload) in cases {
            let fd = try stream(source) { w in
                // A good section first, then the bad one: nothing of the bad one may be written.
                try w.writeSection(name: BlockMigration.sectionName, version: BlockMigration.sectionVersion,
                                   payload: section(drive: 0) { w in w.u8(1); w.u64(4096); w.data([7]); w.u8(0) })
                try w.writeSection(name: BlockMigration.sectionName, version: BlockMigration.sectionVersion, payload: payload)
            }
            defer { close(fd) }
            let dst = try drive("dst.raw")
            let destination = try makeMachine([dst, try drive("ro.raw", readOnly: true)])
            XCTAssertThrowsError(try destination.restoreState(from: StreamReader(fd: fd), mapFile: false, live: true)) { e in
                XCTAssertTrue("\(e)".contains(expected) && !"\(e)".contains("\n"), "\(expected): \(e)")
            }
            var b = [UInt8](repeating: 0, count: 4)
            try b.withUnsafeMutableBytes { try dst.read(at: 0, into: $0) }
            XCTAssertEqual(b, [0, 0, 0, 0], expected)
            try b.withUnsafeMutableBytes { try dst.read(at: 4096, into: $0) }
            XCTAssertEqual(b[0], 7, "the good section before it was applied")
            unlink(dir + "/dst.raw")
        }
    }
}
