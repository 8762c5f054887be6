#if canImport(Glibc)
import Glibc
#endif
import RivetMachine

/// Reads a whole file (bounded to 4 GiB); errors name the file and the problem.
public func readWholeFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw MachineError("\(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw MachineError("\(path): cannot stat: \(String(cString: strerror(errno)))") }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw MachineError("\(path): is a directory, not a file") }
    let size = Int(st.st_size)
    guard size >= 0, size <= (1 << 32) else { throw MachineError("\(path): file too large") }
    var buffer = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw MachineError("\(path): read error: \(String(cString: strerror(errno)))") }
        guard n > 0 else { throw MachineError("\(path): file shrank while being read") }
        done += n
    }
    return buffer
}

/// Refuses, before the machine starts, what would otherwise leave it spinning silently in the firmware:
/// an empty or foreign kernel, firmware that overlaps the kernel, RAM too small for what must be loaded.
func validateBootImages(_ config: VirtMachineConfig, biosPath: String, kernelPath: String?) throws {
    if config.firmware.isEmpty { throw MachineError("\(biosPath): firmware file is empty") }
    var footprint: UInt64 = 0
    if let kernel = config.kernel, let path = kernelPath {
        let kind = KernelImageKind(kernel)
        switch kind {
        case .empty: throw MachineError("\(path): kernel file is empty")
        case .elf(let machine, let is64):
            if machine != 243 { throw MachineError("\(path): not a RISC-V kernel (an ELF file for machine \(machine))") }
            if !is64 { throw MachineError("\(path): a 32-bit RISC-V ELF; this machine is RV64") }
            throw MachineError("\(path): is an ELF file (vmlinux?); --kernel takes the flat kernel Image (arch/riscv/boot/Image)")
        case .arm64Linux: throw MachineError("\(path): not a RISC-V kernel (an arm64 Linux Image)")
        case .x86Linux: throw MachineError("\(path): not a RISC-V kernel (an x86 Linux bzImage)")
        case .riscvLinux, .flat: break
        }
        footprint = kind.footprint(fileSize: kernel.count)
        if UInt64(config.firmware.count) > VirtMachine.kernelOffset {
            throw MachineError("\(biosPath): firmware (\(config.firmware.count) bytes) overlaps the kernel at offset 2 MiB of RAM")
        }
    }
    // The layout VirtMachine uses: firmware at the base, kernel at +2 MiB, device tree in the top 2 MiB
    // (2 MiB aligned), initrd below the tree and above the kernel.
    let initrdBytes = config.initrd.map { UInt64($0.count) + 0x1000 } ?? 0
    let treeAddress = (config.memorySize &- 0x20_0000) & ~UInt64(0x1f_ffff)
    let kernelEnd = config.kernel == nil ? UInt64(config.firmware.count) : VirtMachine.kernelOffset + footprint
    let needed = kernelEnd + initrdBytes
    if config.memorySize < 0x20_0000 || needed > treeAddress {
        let mib = ((needed + 0x20_0000 + (2 << 20) - 1) >> 21) << 1   // rounded up to 2 MiB, plus the tree's 2 MiB
        var parts = "firmware"
        if config.kernel != nil { parts += ", kernel (\(footprint >> 20) MiB in memory)" }
        if let r = config.initrd { parts += ", initrd (\(r.count >> 20) MiB)" }
        throw MachineError("--memory \(config.memorySize >> 20)M is too small for \(parts) and the device tree: they need at least \(mib)M")
    }
}

/// The time limit must be a positive number of seconds the clock can count (up to about 30 years).
func validateTimeLimit(_ seconds: Double?) throws {
    guard let s = seconds else { return }
    guard s.isFinite, s > 0, s <= 1e9 else {
        throw MachineError("--time-limit \(s): must be a number of seconds above 0 and at most 1000000000")
    }
}
