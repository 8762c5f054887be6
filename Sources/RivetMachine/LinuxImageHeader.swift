/// What the first bytes of a `--kernel` file say it is (Documentation/arch/riscv/boot-image-header.rst,
/// arm64's booting.rst, x86's boot.rst, the ELF header).
public enum KernelImageKind: Equatable {
    /// A RISC-V Linux Image; `imageSize` is the memory it occupies from its load address (bss included), 0 if unknown.
    case riscvLinux(imageSize: UInt64)
    /// An ELF file: machine 243 is RISC-V; class 2 is 64-bit.
    case elf(machine: UInt16, is64Bit: Bool)
    case arm64Linux
    case x86Linux
    /// No known header: a flat binary (e.g. a bare-metal payload), loaded as it is.
    case flat
    case empty

    public init(_ bytes: [UInt8]) {
        func u32(_ o: Int) -> UInt32 {
            guard o + 4 <= bytes.count else { return 0 }
            return UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        }
        func u64(_ o: Int) -> UInt64 { UInt64(u32(o)) | UInt64(u32(o + 4)) << 32 }
        if bytes.isEmpty { self = .empty; return }
        if bytes.count >= 20, bytes[0] == 0x7f, bytes[1] == 0x45, bytes[2] == 0x4c, bytes[3] == 0x46 {
            self = .elf(machine: UInt16(bytes[18]) | UInt16(bytes[19]) << 8, is64Bit: bytes[4] == 2)
            return
        }
        // RISC-V: "RSC\x05" at 56 (the older "RISCV\0\0\0" at 48 too).
        if u32(56) == 0x0543_5352 || u64(48) == 0x0000_0056_4353_4952 {
            self = .riscvLinux(imageSize: u64(16))
            return
        }
        if u32(56) == 0x644d_5241 { self = .arm64Linux; return }           // "ARM\x64"
        if u32(0x202) == 0x5372_6448 { self = .x86Linux; return }          // "HdrS"
        self = .flat
    }

    /// Bytes of RAM the kernel needs from its load address: the header's image size when it is larger.
    public func footprint(fileSize: Int) -> UInt64 {
        if case .riscvLinux(let size) = self { return max(UInt64(fileSize), size) }
        return UInt64(fileSize)
    }
}
