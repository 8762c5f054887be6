import RivetMemory

/// The input is an ELF file. Parsing and loading into 1 MiB of RAM must succeed or throw; a loaded segment
/// must lie inside RAM.
nonisolated(unsafe) let ram = try! GuestRAM(base: 0x8000_0000, size: 1 << 20)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzELF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let elf = try? ELFImage(bytes: bytes, name: "fuzz.elf") else { return 0 }
    do {
        try elf.load(into: ram, name: "fuzz.elf")
        for s in elf.segments where s.memorySize > 0 {
            if !ram.contains(s.physicalAddress, length: s.memorySize) { fatalError("loaded a segment outside RAM") }
        }
    } catch {}
    return 0
}
