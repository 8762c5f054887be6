import Testing
#if canImport(Glibc)
import Glibc
#endif
import RivetMemory
@testable import RivetUser

/// MAP_SHARED through host mappings in the pool, /proc/self/maps regions, #! parsing and the epoll layout.
@Suite struct SharedMappingTests {
    func makeSpace() throws -> AddressSpace {
        try AddressSpace(ram: GuestRAM(base: 0x8000_0000, size: AddressSpace.poolSize(overflowBytes: 64 << 20)), pageLimit: 16384)
    }

    /// A temporary file of `size` bytes of '.'; returns its descriptor (unlinked at once).
    func tempFile(size: Int, mode: Int32 = O_RDWR) -> Int32 {
        var template = Array("/tmp/rivet-shared-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        let bytes = [UInt8](repeating: UInt8(ascii: "."), count: size)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, size) }
        if mode != O_RDWR {
            let ro = open(String(cString: template), mode)
            close(fd)
            unlink(template)
            return ro
        }
        unlink(template)
        return fd
    }

    @Test(arguments: [2, 40])  // the single-page path and the contiguous path
    func guestWritesReachTheFileAndFileWritesTheGuest(pages: Int) throws {
        let mm = try makeSpace()
        let fd = tempFile(size: pages * 4096)
        defer { close(fd) }
        let va: UInt64 = 0x40000
        try mm.mapShared(va, UInt64(pages) * 4096, prot: Prot.read | Prot.write, fd: fd, offset: 0,
                         fileSize: Int64(pages) * 4096, hostWritable: true)
        #expect(mm.write(va + UInt64(pages - 1) * 4096 + 5, Array("guest".utf8)))
        var buf = [UInt8](repeating: 0, count: 5)
        _ = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 5, off_t((pages - 1) * 4096 + 5)) }
        #expect(buf == Array("guest".utf8))
        _ = "host".withCString { pwrite(fd, $0, 4, 100) }
        #expect(mm.read(va + 100, 4) == Array("host".utf8))
        // Unmapping restores private memory under the pool pages: the file no longer changes.
        let pa = try #require(mm.physical(va))
        mm.unmap(va, UInt64(pages) * 4096)
        mm.host(pa & ~4095).storeBytes(of: UInt8(ascii: "X"), as: UInt8.self)
        var first: UInt8 = 0
        _ = pread(fd, &first, 1, 0)
        #expect(first == UInt8(ascii: "."))
    }

    @Test func pagesPastTheEndOfTheFileHaveNoPage() throws {
        let mm = try makeSpace()
        let fd = tempFile(size: 100)
        defer { close(fd) }
        try mm.mapShared(0x40000, 3 * 4096, prot: Prot.read, fd: fd, offset: 0, fileSize: 100, hostWritable: true)
        #expect(mm.read(0x40000, 1) == [UInt8(ascii: ".")])
        #expect(mm.read(0x41000, 1) == nil)
        #expect(mm.isBeyondEOF(0x41000) && mm.isBeyondEOF(0x42000) && !mm.isBeyondEOF(0x40000))
        #expect(!mm.resolveFault(0x41000, write: false, fetch: false))
    }

    @Test func readOnlyFilesRefuseWrites() throws {
        let mm = try makeSpace()
        let fd = tempFile(size: 4096, mode: O_RDONLY)
        defer { close(fd) }
        try mm.mapShared(0x40000, 4096, prot: Prot.read, fd: fd, offset: 0, fileSize: 4096, hostWritable: false)
        #expect(mm.writeForbidden(0x40000, 4096))
        #expect(!mm.write(0x40000, [1]))
        #expect(mm.read(0x40000, 1) == [UInt8(ascii: ".")])
        mm.unmap(0x40000, 4096)
        #expect(mm.readOnlyShared.isEmpty)
    }

    @Test func regionsMergeNeighboursThatAgree() throws {
        let mm = try makeSpace()
        try mm.map(0x10000, 2 * 4096, prot: Prot.read | Prot.write)
        try mm.map(0x12000, 4096, prot: Prot.read)
        try mm.mapShared(0x20000, 4096, prot: Prot.read | Prot.write, fd: nil, offset: 0, fileSize: 0, hostWritable: true)
        let r = mm.regions().filter { $0.start < 0x100000 }
        #expect(r.map { [$0.start, $0.end, $0.prot] } == [[0x10000, 0x12000, 3], [0x12000, 0x13000, 1], [0x20000, 0x21000, 3]])
        #expect(r.map(\.shared) == [false, false, true])
    }

    @Test func mappingNamesFollowUnmapAndMove() throws {
        let mm = try makeSpace()
        try mm.map(0x10000, 4 * 4096, prot: Prot.read)
        mm.setName(0x10000, 0x14000, path: "/lib/x.so", offset: 0x2000)
        mm.unmap(0x11000, 4096)  // a hole splits the name; the offset follows the address
        #expect(mm.name(at: 0x10000)! == ("/lib/x.so", 0x2000))
        #expect(mm.name(at: 0x11000) == nil)
        #expect(mm.name(at: 0x13000)! == ("/lib/x.so", 0x5000))
        try mm.move(from: 0x12000, to: 0x30000, length: 2 * 4096)
        #expect(mm.name(at: 0x12000) == nil)
        #expect(mm.name(at: 0x31000)! == ("/lib/x.so", 0x5000))
        #expect(mm.regions().filter { $0.start < 0x100000 }.map(\.start) == [0x10000, 0x30000])
    }

    @Test func shebangLines() {
        func parse(_ s: String) -> [String?]? {
            UserProcess.shebang(Array(s.utf8)).map { [$0.0, $0.1] }
        }
        #expect(parse("#!/bin/sh\necho") == ["/bin/sh", nil])
        #expect(parse("#! /usr/bin/env  python3 -u \nx") == ["/usr/bin/env", "python3 -u"])  // one argument, as Linux
        #expect(parse("#!/bin/sh\r\n") == ["/bin/sh", nil])
        #expect(parse("#!\n") == nil)
        #expect(parse("#!" + String(repeating: "a", count: 300)) == nil)  // no newline within the limit
    }

    @Test func epollEventLayouts() {
        let guest: [UInt8] = [1, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8]
        let host = UserProcess.hostEpollEvent(guest)
        if UserProcess.hostEpollEventSize == 12 {  // x86-64: packed, the data right after the events
            #expect(Array(host.prefix(12)) == [1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
        } else {
            #expect(host == guest)
        }
        #expect(UserProcess.guestEpollEvent(Array(host.prefix(UserProcess.hostEpollEventSize)))
                == [1, 0, 0, 0] + (UserProcess.hostEpollEventSize == 16 ? [0xaa, 0xbb, 0xcc, 0xdd] : [0, 0, 0, 0]) + [1, 2, 3, 4, 5, 6, 7, 8])
    }
}
