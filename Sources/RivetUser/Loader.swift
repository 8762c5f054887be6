#if canImport(Glibc)
import Glibc
#endif
import RivetMemory

/// Errors that end `rivet user` with one line on stderr.
public struct UserError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Reads a whole host file, or nil.
func readHostFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
    var out = [UInt8](repeating: 0, count: Int(st.st_size))
    var done = 0
    while done < out.count {
        let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
        if n <= 0 { break }
        done += n
    }
    return Array(out[0..<done])
}

/// Places ELF images in an address space and builds the initial stack as Linux's binfmt_elf does.
struct Loader {
    static let ptLoad: UInt32 = 1, ptPhdr: UInt32 = 6
    static let etExec: UInt16 = 2, etDyn: UInt16 = 3

    struct Loaded {
        var bias: UInt64
        var entry: UInt64
        var phdr: UInt64
        var phnum: Int
        var end: UInt64
    }

    /// Maps the PT_LOAD segments of `elf`. ET_DYN images go to `preferredBase` (or anywhere free).
    static func load(_ elf: ELFImage, name: String, into mm: AddressSpace, preferredBase: UInt64?) throws -> Loaded {
        guard elf.type == etExec || elf.type == etDyn else { throw UserError("\(name): not an executable or shared object") }
        guard !elf.segments.isEmpty else { throw UserError("\(name): no loadable segments") }
        let lo = elf.segments.map { $0.virtualAddress }.min()! & ~4095
        var hi: UInt64 = 0
        for s in elf.segments {
            let (e, o) = s.virtualAddress.addingReportingOverflow(s.memorySize)
            guard !o else { throw UserError("\(name): segment address overflows") }
            hi = max(hi, e)
        }
        hi = AddressSpace.pageAlignUp(hi)
        let span = hi - lo
        var bias: UInt64 = 0
        if elf.type == etDyn {
            if let b = preferredBase, AddressSpace.validRange(b, span), mm.isFree(b, span) {
                bias = b &- lo
            } else if let b = mm.findFree(span) {
                bias = b &- lo
            } else {
                throw UserError("\(name): no room for \(span) bytes")
            }
        }
        guard AddressSpace.validRange(lo &+ bias, span) else {
            throw UserError("\(name): segments at 0x\(String(lo, radix: 16)) lie outside the user address space")
        }
        for s in elf.segments where s.memorySize > 0 {
            let start = (s.virtualAddress &+ bias) & ~4095
            let end = AddressSpace.pageAlignUp(s.virtualAddress &+ bias &+ s.memorySize)
            var prot: UInt64 = 0
            if s.flags & 4 != 0 { prot |= Prot.read }
            if s.flags & 2 != 0 { prot |= Prot.write }
            if s.flags & 1 != 0 { prot |= Prot.exec }
            // Pages shared by two segments keep the union of both protections.
            var va = start
            while va < end {
                let slot = mm.leafSlot(va, create: true)!
                if slot.pointee & PTE.mapped != 0 {
                    slot.pointee |= Prot.pteBits(prot)
                } else {
                    slot.pointee = PTE.mapped | Prot.pteBits(prot)
                }
                va += 4096
            }
            // Named with the file offset of its first page, as binfmt_elf maps it (for /proc/self/maps).
            let pageOffset = UInt64(s.fileOffset) &- ((s.virtualAddress &+ bias) - start)
            if s.fileSize > 0 { mm.setName(start, AddressSpace.pageAlignUp(s.virtualAddress &+ bias &+ UInt64(s.fileSize)), path: name, offset: pageOffset) }
            mm.openHostAccess(start, end - start)  // written whatever the segment's protection
            defer { mm.applyHostProtection(start, end) }
            if s.fileSize > 0 {
                let ok = elf.bytes.withUnsafeBytes {
                    mm.write(s.virtualAddress &+ bias, UnsafeRawBufferPointer(rebasing: $0[s.fileOffset..<s.fileOffset + s.fileSize]), force: true)
                }
                guard ok else { throw UserError("\(name): cannot place segment") }
            }
        }
        // The program headers' address: PT_PHDR if present, else the segment holding e_phoff.
        var phdr: UInt64 = 0
        for s in elf.segments where UInt64(s.fileOffset) <= elf.programHeaderOffset &&
            elf.programHeaderOffset < UInt64(s.fileOffset + s.fileSize) {
            phdr = s.virtualAddress &+ (elf.programHeaderOffset - UInt64(s.fileOffset)) &+ bias
        }
        return Loaded(bias: bias, entry: elf.entry &+ bias, phdr: phdr, phnum: elf.programHeaderCount, end: hi &+ bias)
    }

    // Auxiliary vector keys.
    static let atNull: UInt64 = 0, atPhdr: UInt64 = 3, atPhent: UInt64 = 4, atPhnum: UInt64 = 5, atPagesz: UInt64 = 6
    static let atBase: UInt64 = 7, atFlags: UInt64 = 8, atEntry: UInt64 = 9, atUid: UInt64 = 11, atEuid: UInt64 = 12
    static let atGid: UInt64 = 13, atEgid: UInt64 = 14, atHwcap: UInt64 = 16, atClktck: UInt64 = 17, atSecure: UInt64 = 23
    static let atRandom: UInt64 = 25, atExecfn: UInt64 = 31, atSysinfoEhdr: UInt64 = 33

    /// RV64IMAFDC as AT_HWCAP (one bit per extension letter).
    static let hwcap: UInt64 = ["I", "M", "A", "F", "D", "C"].reduce(0) { $0 | 1 << UInt64($1.unicodeScalars.first!.value - 65) }

    /// Builds argc/argv/envp/auxv at the top of the stack; returns the initial sp.
    static func buildStack(mm: AddressSpace, argv: [String], envp: [String], execfn: String,
                           main: Loaded, interpBase: UInt64, vdso: UInt64 = 0) throws -> UInt64 {
        let top = AddressSpace.stackTop
        try mm.map(top - AddressSpace.stackSize, AddressSpace.stackSize, prot: Prot.read | Prot.write)
        var sp = top
        func push(_ bytes: [UInt8]) throws -> UInt64 {
            sp -= UInt64(bytes.count)
            guard mm.write(sp, bytes) else { throw UserError("initial stack overflow") }
            return sp
        }
        let execfnAddr = try push(Array(execfn.utf8) + [0])
        var envAddrs: [UInt64] = []
        for e in envp.reversed() { envAddrs.insert(try push(Array(e.utf8) + [0]), at: 0) }
        var argAddrs: [UInt64] = []
        for a in argv.reversed() { argAddrs.insert(try push(Array(a.utf8) + [0]), at: 0) }
        var random = [UInt8](repeating: 0, count: 16)
        _ = random.withUnsafeMutableBytes { Host.call(NR.getrandom, iptr($0.baseAddress), 16, 0) }
        sp &= ~15
        let randomAddr = try push(random)
        var aux: [(UInt64, UInt64)] = vdso == 0 ? [] : [(atSysinfoEhdr, vdso)]
        aux += [
            (atPhdr, main.phdr), (atPhent, 56), (atPhnum, UInt64(main.phnum)), (atPagesz, 4096),
            (atBase, interpBase), (atFlags, 0), (atEntry, main.entry),
            (atUid, UInt64(getuid())), (atEuid, UInt64(geteuid())), (atGid, UInt64(getgid())), (atEgid, UInt64(getegid())),
            (atHwcap, hwcap), (atClktck, 100), (atSecure, 0), (atRandom, randomAddr), (atExecfn, execfnAddr), (atNull, 0),
        ]
        var words: [UInt64] = [UInt64(argv.count)]
        words += argAddrs; words.append(0)
        words += envAddrs; words.append(0)
        for (k, v) in aux { words.append(k); words.append(v) }
        sp = (sp - UInt64(words.count * 8)) & ~15
        let ok = words.withUnsafeBytes { mm.write(sp, $0) }
        guard ok else { throw UserError("initial stack overflow") }
        return sp
    }
}
