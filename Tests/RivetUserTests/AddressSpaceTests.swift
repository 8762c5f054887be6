import Testing
#if canImport(Glibc)
import Glibc
#endif
import RivetMemory
@testable import RivetUser

/// The mini kernel's page tables: mapping, lazy allocation, protection, gap search and kernel copies.
@Suite struct AddressSpaceTests {
    func makeSpace() throws -> AddressSpace {
        try AddressSpace(ram: GuestRAM(base: 0x8000_0000, size: AddressSpace.poolSize(overflowBytes: 64 << 20)), pageLimit: 16384)
    }

    @Test func mappedPagesAllocateOnFirstTouchAndReadZero() throws {
        let mm = try makeSpace()
        try mm.map(0x10000, 3 * 4096, prot: Prot.read | Prot.write)
        #expect(mm.physical(0x11000) == nil)  // not yet touched
        #expect(mm.read(0x11000, 16) == [UInt8](repeating: 0, count: 16))
        #expect(mm.physical(0x11000) != nil)
        #expect(mm.write(0x10ffe, [1, 2, 3, 4]))  // straddles two pages
        #expect(mm.read(0x10ffe, 4) == [1, 2, 3, 4])
        #expect(mm.read(0x13000, 1) == nil)  // past the mapping
    }

    @Test func protectionIsEnforcedForKernelCopiesAndFaults() throws {
        let mm = try makeSpace()
        try mm.map(0x20000, 4096, prot: Prot.read)
        #expect(!mm.write(0x20000, [1]))
        #expect(mm.write(0x20000, [7], force: true))  // the loader may write read-only segments
        #expect(mm.read(0x20000, 1) == [7])
        #expect(!mm.resolveFault(0x20000, write: true, fetch: false))
        #expect(mm.resolveFault(0x20000, write: false, fetch: false))
        #expect(!mm.resolveFault(0x20000, write: false, fetch: true))
        #expect(mm.protect(0x20000, 4096, prot: Prot.read | Prot.write))
        #expect(mm.resolveFault(0x20000, write: true, fetch: false))
        #expect(!mm.protect(0x20000, 8192, prot: Prot.read))  // second page unmapped: ENOMEM
        #expect(mm.protect(0x20000, 4096, prot: 0))
        #expect(mm.read(0x20000, 1) == nil)
        #expect(mm.isMapped(0x20000))  // PROT_NONE keeps the mapping
    }

    @Test func unmapFreesAndRemapReadsZero() throws {
        let mm = try makeSpace()
        try mm.map(0x30000, 4096, prot: Prot.read | Prot.write)
        #expect(mm.write(0x30000, [9, 9, 9]))
        let before = mm.epoch.pointee
        mm.unmap(0x30000, 4096)
        #expect(mm.epoch.pointee != before)  // other threads must flush their TLBs
        #expect(!mm.isMapped(0x30000))
        try mm.map(0x40000, 4096, prot: Prot.read | Prot.write)
        #expect(mm.read(0x40000, 3) == [0, 0, 0])  // the recycled page was cleared
    }

    @Test func findFreeSearchesDownFromTheTopAndSkipsMappings() throws {
        let mm = try makeSpace()
        let a = try #require(mm.findFree(8192))
        #expect(a == AddressSpace.mmapTop - 8192)
        try mm.map(a, 8192, prot: Prot.read)
        let b = try #require(mm.findFree(4096))
        #expect(b == a - 4096)
        mm.unmap(a, 4096)
        #expect(mm.findFree(4096) == a)  // a hole at the top is reused
        #expect(mm.findFree(AddressSpace.userTop) == nil)
        #expect(!mm.isFree(a + 4096, 4096))
    }

    @Test func moveKeepsContentsAndDiscardZeroes() throws {
        let mm = try makeSpace()
        try mm.map(0x50000, 8192, prot: Prot.read | Prot.write)
        #expect(mm.write(0x51000, [5, 6]))
        try mm.move(from: 0x50000, to: 0x90000, length: 8192)
        #expect(!mm.isMapped(0x51000))
        #expect(mm.read(0x91000, 2) == [5, 6])
        mm.discard(0x90000, 8192)
        #expect(mm.read(0x91000, 2) == [0, 0])
        #expect(mm.prot(at: 0x91000) == Prot.read | Prot.write)
    }

    @Test func pagesSitAtTheirIdentityOffsetWhenFree() throws {
        let mm = try makeSpace()
        let base = mm.ram.base
        try mm.map(0x7000_0000, 3 * 4096, prot: Prot.read | Prot.write)
        #expect(mm.write(0x7000_1000, [1, 2, 3]))
        #expect(mm.physical(0x7000_1000) == base + 0x7000_1000)
        // A private page moved by mremap goes to its new identity page, with its contents.
        try mm.move(from: 0x7000_0000, to: 0x9000_0000, length: 3 * 4096)
        #expect(mm.physical(0x9000_1000) == base + 0x9000_1000)
        #expect(mm.read(0x9000_1000, 3) == [1, 2, 3])
        // Mapped again, the old range gets its identity pages back, zeroed.
        try mm.map(0x7000_0000, 3 * 4096, prot: Prot.read | Prot.write)
        #expect(mm.read(0x7000_1000, 3) == [0, 0, 0])
        #expect(mm.physical(0x7000_1000) == base + 0x7000_1000)
    }

    @Test func unmappedIdentityPagesGoBackToTheHost() throws {
        let mm = try makeSpace()
        try mm.map(0x7100_0000, 8 * 4096, prot: Prot.read | Prot.write)
        for k in 0..<8 { #expect(mm.write(0x7100_0000 + UInt64(k) * 4096, [0xAA])) }
        let host = mm.ram.host + Int(0x7100_0000)
        func resident() -> Int {
            var vec = [UInt8](repeating: 0, count: 8)
            #expect(mincore(host, 8 * 4096, &vec) == 0)
            return vec.filter { $0 & 1 != 0 }.count
        }
        #expect(resident() == 8)
        mm.unmap(0x7100_0000, 8 * 4096)
        #expect(resident() == 0)  // a guest moving its mappings around cannot keep host memory
        try mm.map(0x7100_0000, 8 * 4096, prot: Prot.read | Prot.write)
        #expect(mm.read(0x7100_3000, 1) == [0])
    }

    @Test func aTakenIdentityPageFallsBackToTheOverflowArea() throws {
        let mm = try makeSpace()
        let base = mm.ram.base
        // A shared page keeps its pool page when it moves, so its old identity page stays taken.
        try mm.mapShared(0x5000_0000, 4096, prot: Prot.read | Prot.write, fd: nil, offset: 0, fileSize: 0, hostWritable: true)
        #expect(mm.write(0x5000_0000, [4, 2]))
        try mm.move(from: 0x5000_0000, to: 0x6000_0000, length: 4096)
        #expect(mm.physical(0x6000_0000) == base + 0x5000_0000)
        #expect(mm.read(0x6000_0000, 2) == [4, 2])
        try mm.map(0x5000_0000, 4096, prot: Prot.read | Prot.write)
        #expect(mm.read(0x5000_0000, 2) == [0, 0])
        let pa = try #require(mm.physical(0x5000_0000))
        #expect(pa >= base + AddressSpace.userTop)
        #expect(mm.write(0x5000_0000, [7]) && mm.read(0x6000_0000, 1) == [4])  // two pages, not one
    }

    @Test func thePageLimitIsTheProcessMemoryLimit() throws {
        let mm = try AddressSpace(ram: GuestRAM(base: 0x8000_0000, size: AddressSpace.poolSize(overflowBytes: 1 << 20)),
                                  pageLimit: 16)
        try mm.map(0x10000, 64 * 4096, prot: Prot.read | Prot.write)
        var touched = 0
        while touched < 64 && mm.resolveFault(0x10000 + UInt64(touched) * 4096, write: true, fetch: false) { touched += 1 }
        #expect(touched > 0 && touched < 16)  // the page tables count too
        mm.unmap(0x10000, 4096)
        #expect(mm.resolveFault(0x10000 + UInt64(touched) * 4096, write: true, fetch: false))  // a freed page is usable again
    }

    @Test func stringsAndRangesAreChecked() throws {
        let mm = try makeSpace()
        try mm.map(0x60000, 4096, prot: Prot.read | Prot.write)
        #expect(mm.write(0x60ffa, Array("hello".utf8) + [0]))
        #expect(mm.readString(0x60ffa) == Array("hello".utf8))
        #expect(mm.write(0x60ffc, [65, 65, 65, 65]))  // no terminator before the end of the mapping
        #expect(mm.readString(0x60ffc) == nil)
        #expect(mm.pieces(~0 - 4, 10, write: false) == nil)  // wraps around
        #expect(mm.read(AddressSpace.userTop, 1) == nil)
    }

    /// The host protection (`rw-`, `r--`, `---`) of the page holding `pointer`, from /proc/self/maps.
    func hostProtection(_ pointer: UnsafeMutableRawPointer) throws -> String {
        let address = UInt(bitPattern: pointer)
        let bytes = try #require(readFile("/proc/self/maps"))
        let maps = try #require(String(validatingUTF8: bytes))
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ")
            let range = fields[0].split(separator: "-").map { UInt($0, radix: 16)! }
            if address >= range[0] && address < range[1] { return String(fields[1].prefix(3)) }
        }
        return "unmapped"
    }

    func readFile(_ path: String) -> [CChar]? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var out: [CChar] = []
        var buffer = [CChar](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return out + [0]
    }

    /// With unchecked loads the identity pages' host protections follow the guest's mappings: readable
    /// where the guest may read, PROT_NONE elsewhere, and all open again when the process gives up.
    @Test func hostProtectionsFollowTheMappings() throws {
        let mm = try makeSpace()
        #expect(mm.manageHostProtection())
        func at(_ va: UInt64) throws -> String { try hostProtection(mm.host(mm.ram.base + va)) }
        #expect(try at(0x10000) == "---")
        try mm.map(0x10000, 2 * 4096, prot: Prot.read | Prot.write)
        #expect(try at(0x10000) == "rw-" && at(0x11000) == "rw-")  // untouched pages read as zero
        #expect(mm.write(0x10000, [5, 6]))
        #expect(mm.protect(0x10000, 4096, prot: 0))
        #expect(try at(0x10000) == "---" && at(0x11000) == "rw-")
        #expect(mm.protect(0x10000, 4096, prot: Prot.read))
        #expect(try at(0x10000) == "rw-" && mm.read(0x10000, 2) == [5, 6])
        mm.unmap(0x11000, 4096)
        #expect(try at(0x11000) == "---")
        // mremap: the old range closes, the new one opens with the data.
        try mm.map(0x20000, 4096, prot: Prot.read | Prot.write)
        #expect(mm.write(0x20000, [7]))
        try mm.move(from: 0x20000, to: 0x30000, length: 4096)
        #expect(try at(0x20000) == "---" && at(0x30000) == "rw-" && mm.read(0x30000, 1) == [7])
        // A PROT_NONE page moves too (rivet opens it for the copy).
        #expect(mm.protect(0x30000, 4096, prot: 0))
        try mm.move(from: 0x30000, to: 0x40000, length: 4096)
        #expect(try at(0x40000) == "---" && at(0x30000) == "---")
        #expect(mm.protect(0x40000, 4096, prot: Prot.read) && mm.read(0x40000, 1) == [7])
        #expect(!mm.identityBroken)
        mm.giveUpHostProtection()
        #expect(mm.identityBroken && !mm.managesHostProtection)
        #expect(try at(0x50000) == "rw-" && at(0x20000) == "rw-")
    }

    @Test func trampolineHoldsSigreturn() throws {
        let mm = try makeSpace()
        // li a7, 139; ecall
        #expect(mm.read32(AddressSpace.trampolineVA) == 0x08b0_0893)
        #expect(mm.read32(AddressSpace.trampolineVA + 4) == 0x0000_0073)
        #expect(!mm.write(AddressSpace.trampolineVA, [0]))  // read-only for the guest
    }
}
