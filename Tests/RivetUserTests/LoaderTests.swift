import Testing
import RivetMemory
@testable import RivetUser

/// The initial stack as Linux lays it out: argc, argv, NULL, envp, NULL, auxv pairs, AT_NULL.
@Suite struct LoaderTests {
    @Test func initialStackLayout() throws {
        let mm = try AddressSpace(ram: GuestRAM(base: 0x8000_0000, size: AddressSpace.poolSize(overflowBytes: 64 << 20)), pageLimit: 16384)
        let main = Loader.Loaded(bias: 0, entry: 0x10100, phdr: 0x10040, phnum: 7, end: 0x20000)
        let sp = try Loader.buildStack(mm: mm, argv: ["prog", "one"], envp: ["A=1"], execfn: "/bin/prog",
                                       main: main, interpBase: 0x3f_0000_0000)
        #expect(sp % 16 == 0)
        #expect(mm.read64(sp) == 2)
        func string(_ va: UInt64?) -> String? { va.flatMap { mm.readString($0) }.map { String(decoding: $0, as: UTF8.self) } }
        #expect(string(mm.read64(sp + 8)) == "prog")
        #expect(string(mm.read64(sp + 16)) == "one")
        #expect(mm.read64(sp + 24) == 0)
        #expect(string(mm.read64(sp + 32)) == "A=1")
        #expect(mm.read64(sp + 40) == 0)
        var aux: [UInt64: UInt64] = [:]
        var p = sp + 48
        while true {
            let k = try #require(mm.read64(p)), v = try #require(mm.read64(p + 8))
            if k == 0 { break }
            aux[k] = v
            p += 16
        }
        #expect(aux[Loader.atPhdr] == 0x10040)
        #expect(aux[Loader.atPhnum] == 7)
        #expect(aux[Loader.atEntry] == 0x10100)
        #expect(aux[Loader.atBase] == 0x3f_0000_0000)
        #expect(aux[Loader.atPagesz] == 4096)
        #expect(aux[Loader.atHwcap] == Loader.hwcap)
        #expect(string(aux[Loader.atExecfn]) == "/bin/prog")
        let random = try #require(aux[Loader.atRandom])
        #expect(mm.read(random, 16) != nil)
    }

    @Test func hwcapNamesIMAFDC() {
        let expected: UInt64 = (1 << 8) | (1 << 12) | (1 << 0) | (1 << 5) | (1 << 3) | (1 << 2)
        #expect(Loader.hwcap == expected)
    }
}
