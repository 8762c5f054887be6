import XCTest
@testable import RivetJIT

final class ExecutableMemoryTests: XCTestCase {
    /// The permissions column of /proc/self/maps for the mapping that starts at `address` (read line by line:
    /// Foundation's whole-file readers trust the size /proc reports, which is 0).
    private func permissions(of address: UnsafeRawPointer) -> String? {
        guard let file = fopen("/proc/self/maps", "r") else { return nil }
        defer { fclose(file) }
        let prefix = String(UInt(bitPattern: address), radix: 16) + "-"
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            let text = String(cString: line!)
            if text.hasPrefix(prefix) { return String(text.split(separator: " ")[1]) }
        }
        return nil
    }

    func testTwoViewsOfOnePageAndNeverWritableAndExecutable() throws {
        let memory = try ExecutableMemory(capacity: 10_000)
        XCTAssertEqual(memory.capacity % 4096, 0)
        XCTAssertGreaterThanOrEqual(memory.capacity, 10_000)
        XCTAssertNotEqual(UnsafeRawPointer(memory.writable), memory.executable)
        // A byte written through one view is read back through the other: one memfd, two mappings.
        memory.writable.storeBytes(of: 0xC3A5_5A3C, toByteOffset: 128, as: UInt32.self)
        XCTAssertEqual(memory.executable.load(fromByteOffset: 128, as: UInt32.self), 0xC3A5_5A3C)
        XCTAssertEqual(permissions(of: memory.writable), "rw-s")
        XCTAssertEqual(permissions(of: memory.executable), "r-xs")
    }

    func testBumpAllocatorFillsAlignsAndResets() throws {
        let memory = try ExecutableMemory(capacity: 4096)
        let first = try XCTUnwrap(memory.allocate(3))
        let second = try XCTUnwrap(memory.allocate(20))
        XCTAssertEqual(first.offset, 0)
        XCTAssertEqual(second.offset, 16)
        XCTAssertEqual(second.executable, memory.executable + 16)
        XCTAssertEqual(second.writable, memory.writable + 16)
        XCTAssertEqual(memory.used, 48)
        XCTAssertNil(memory.allocate(4096 - 48 + 1), "an allocation past the end must fail, not overrun")
        XCTAssertNotNil(memory.allocate(4096 - 48))
        XCTAssertNil(memory.allocate(1))
        memory.reset()
        XCTAssertEqual(memory.used, 0)
        XCTAssertEqual(try XCTUnwrap(memory.allocate(64)).offset, 0)
    }

    /// A loop unit asks for a 64-byte start (its head is aligned inside it); the gap is skipped, not overrun.
    func testAllocationWithLargerAlignment() throws {
        let memory = try ExecutableMemory(capacity: 4096)
        XCTAssertEqual(try XCTUnwrap(memory.allocate(20)).offset, 0)
        let aligned = try XCTUnwrap(memory.allocate(10, alignment: 64))
        XCTAssertEqual(aligned.offset, 64)
        XCTAssertEqual(aligned.executable, memory.executable + 64)
        XCTAssertEqual(memory.used, 80)
        XCTAssertEqual(try XCTUnwrap(memory.allocate(1)).offset, 80)
        XCTAssertNil(memory.allocate(4096 - 128 + 1, alignment: 64), "the aligned start counts against the capacity")
        XCTAssertEqual(try XCTUnwrap(memory.allocate(4096 - 128, alignment: 64)).offset, 128)
    }

    func testInstallingNothingTakesNoSpace() throws {
        let memory = try ExecutableMemory(capacity: 4096)
        XCTAssertNotNil(memory.install([]))
        XCTAssertEqual(memory.used, 0)
    }
}
