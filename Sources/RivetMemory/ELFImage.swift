/// A parsed ELF64 little-endian RISC-V executable: loadable segments and the symbol table.
/// Every offset and size in the file is checked against the file's length before use.
public struct ELFImage {
    public struct Segment {
        public let virtualAddress: UInt64
        public let physicalAddress: UInt64
        public let fileOffset: Int
        public let fileSize: Int
        public let memorySize: UInt64
        public let flags: UInt32
    }

    public let bytes: [UInt8]
    public let entry: UInt64
    public let type: UInt16
    public let segments: [Segment]
    public let programHeaderOffset: UInt64
    public let programHeaderCount: Int
    public let programHeaderEntrySize: Int
    /// PT_INTERP contents, if any.
    public let interpreter: String?
    public private(set) var symbols: [String: UInt64] = [:]

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    public init(bytes: [UInt8], name: String) throws {
        self.bytes = bytes
        func fail(_ why: String) -> Error { Error(description: "\(name): not a loadable RISC-V ELF: \(why)") }
        func u16(_ o: Int) throws -> UInt16 {
            guard o >= 0, o + 2 <= bytes.count else { throw fail("truncated at offset \(o)") }
            return UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8
        }
        func u32(_ o: Int) throws -> UInt32 {
            guard o >= 0, o + 4 <= bytes.count else { throw fail("truncated at offset \(o)") }
            var v: UInt32 = 0
            for i in 0..<4 { v |= UInt32(bytes[o + i]) << (8 * UInt32(i)) }
            return v
        }
        func u64(_ o: Int) throws -> UInt64 {
            guard o >= 0, o + 8 <= bytes.count else { throw fail("truncated at offset \(o)") }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(bytes[o + i]) << (8 * UInt64(i)) }
            return v
        }
        func offset(_ v: UInt64) throws -> Int {
            guard v <= UInt64(bytes.count) else { throw fail("offset \(v) past end of file") }
            return Int(v)
        }
        guard bytes.count >= 64, bytes[0] == 0x7f, bytes[1] == 0x45, bytes[2] == 0x4c, bytes[3] == 0x46 else { throw fail("bad magic") }
        guard bytes[4] == 2 else { throw fail("not 64-bit") }
        guard bytes[5] == 1 else { throw fail("not little-endian") }
        guard try u16(18) == 243 else { throw fail("machine is not RISC-V") }
        type = try u16(16)
        entry = try u64(24)
        let phoff = try offset(try u64(32))
        let shoff = try offset(try u64(40))
        let phentsize = Int(try u16(54)), phnum = Int(try u16(56))
        let shentsize = Int(try u16(58)), shnum = Int(try u16(60))
        programHeaderOffset = UInt64(phoff)
        programHeaderCount = phnum
        programHeaderEntrySize = phentsize
        guard phnum == 0 || phentsize >= 56 else { throw fail("bad program header size") }
        var segs: [Segment] = []
        var interp: String? = nil
        for i in 0..<phnum {
            let p = phoff + i * phentsize
            let ptype = try u32(p)
            let fileOffset = try offset(try u64(p + 8))
            let fileSize = try u64(p + 32)
            guard fileSize <= UInt64(bytes.count - fileOffset) else { throw fail("segment \(i) extends past end of file") }
            if ptype == 1 {
                let memsz = try u64(p + 40)
                guard memsz >= fileSize else { throw fail("segment \(i) memory size smaller than file size") }
                segs.append(Segment(virtualAddress: try u64(p + 16), physicalAddress: try u64(p + 24), fileOffset: fileOffset,
                                    fileSize: Int(fileSize), memorySize: memsz, flags: try u32(p + 4)))
            } else if ptype == 3 {
                let raw = bytes[fileOffset..<fileOffset + Int(fileSize)].prefix { $0 != 0 }
                interp = String(decoding: raw, as: UTF8.self)
            }
        }
        segments = segs
        interpreter = interp
        // Symbol table (optional).
        if shnum > 0 && shentsize >= 64 {
            for i in 0..<shnum {
                let s = shoff + i * shentsize
                guard try u32(s + 4) == 2 else { continue }  // SHT_SYMTAB
                let symOff = try offset(try u64(s + 24)), symSize = try u64(s + 32)
                let link = Int(try u32(s + 40))
                guard link < shnum else { continue }
                let strHeader = shoff + link * shentsize
                let strOff = try offset(try u64(strHeader + 24)), strSize = try u64(strHeader + 32)
                guard symSize <= UInt64(bytes.count - symOff), strSize <= UInt64(bytes.count - strOff) else { throw fail("symbol table past end of file") }
                for k in 0..<Int(symSize / 24) {
                    let e = symOff + k * 24
                    let nameIndex = Int(try u32(e))
                    guard nameIndex < Int(strSize) else { continue }
                    let start = strOff + nameIndex
                    let end = bytes[start..<strOff + Int(strSize)].firstIndex(of: 0) ?? (strOff + Int(strSize))
                    let symName = String(decoding: bytes[start..<end], as: UTF8.self)
                    if !symName.isEmpty { symbols[symName] = try u64(e + 8) }
                }
            }
        }
    }

    /// Copies the loadable segments into RAM at their physical addresses (zero-filling the rest).
    public func load(into ram: GuestRAM, name: String) throws {
        for s in segments where s.memorySize > 0 {
            guard ram.contains(s.physicalAddress, length: s.memorySize) else {
                throw Error(description: "\(name): segment at 0x\(String(s.physicalAddress, radix: 16)) (\(s.memorySize) bytes) is outside RAM")
            }
            let dst = ram.pointer(s.physicalAddress, length: s.memorySize)!
            dst.initializeMemory(as: UInt8.self, repeating: 0, count: Int(s.memorySize))
            bytes.withUnsafeBytes { src in
                dst.copyMemory(from: src.baseAddress! + s.fileOffset, byteCount: s.fileSize)
            }
            ram.noteWrite(s.physicalAddress, length: s.memorySize)
        }
    }
}
