#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import RivetStorage

/// The drive decorator replication journals an epoch's writes with (docs/failover.md).
final class JournalingDiskTests: XCTestCase {
    func makeDisk(_ dir: String, size: Int = 1 << 20) throws -> JournalingDisk {
        let path = dir + "/d.img"
        writeAllBytes(path, [UInt8](repeating: 0, count: size))
        return JournalingDisk(try openImage(path: path, format: .raw, readOnly: false))
    }

    func testRecordsWritesAndDiscardsInOrderOnlyWhileRecording() throws {
        let dir = makeTempDir("journal")
        defer { removeTree(dir) }
        let disk = try makeDisk(dir)
        XCTAssertEqual(disk.format, .raw)
        try [UInt8](repeating: 1, count: 512).withUnsafeBytes { try disk.write(at: 0, from: $0) }
        XCTAssertTrue(disk.takeJournal().isEmpty, "nothing is kept before recording starts")
        disk.setRecording(true)
        try [UInt8](repeating: 2, count: 512).withUnsafeBytes { try disk.write(at: 4096, from: $0) }
        try disk.discard(at: 8192, length: 4096)
        try [UInt8](repeating: 3, count: 100).withUnsafeBytes { try disk.write(at: 4096, from: $0) }
        XCTAssertEqual(disk.journalBytes, 612)
        let journal = disk.takeJournal()
        XCTAssertEqual(journal.count, 3)
        guard case .write(let o0, let b0) = journal[0], case .discard(let o1, let l1) = journal[1],
              case .write(let o2, let b2) = journal[2] else { return XCTFail("wrong kinds: \(journal)") }
        XCTAssertEqual([o0, o1, l1, o2], [4096, 8192, 4096, 4096])
        XCTAssertEqual(b0, [UInt8](repeating: 2, count: 512))
        XCTAssertEqual(b2, [UInt8](repeating: 3, count: 100))
        XCTAssertTrue(disk.takeJournal().isEmpty, "taking the journal empties it")
        // Writes still reach the image itself.
        var back = [UInt8](repeating: 0, count: 512)
        try back.withUnsafeMutableBytes { try disk.read(at: 4096, into: $0) }
        XCTAssertEqual(Array(back[0..<100]), [UInt8](repeating: 3, count: 100))
        XCTAssertEqual(Array(back[100..<512]), [UInt8](repeating: 2, count: 412))
        disk.setRecording(false)
        try [UInt8](repeating: 4, count: 8).withUnsafeBytes { try disk.write(at: 0, from: $0) }
        XCTAssertTrue(disk.takeJournal().isEmpty)
    }

    func testAFailedWriteIsNotJournaled() throws {
        let dir = makeTempDir("journal-fail")
        defer { removeTree(dir) }
        let disk = try makeDisk(dir, size: 4096)
        disk.setRecording(true)
        XCTAssertThrowsError(try [UInt8](repeating: 5, count: 512).withUnsafeBytes { try disk.write(at: 4000, from: $0) })
        XCTAssertTrue(disk.takeJournal().isEmpty)
    }
}
