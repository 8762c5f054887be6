// Code memory for generated host code, W^X by construction: one memfd mapped twice, a read-write view the
// assembler writes into and a read-execute view the CPU runs. No mapping is ever writable and executable.
#if canImport(Glibc)
import Glibc
#endif

/// Errors setting up code memory; each names the system call that failed and errno's text.
public struct ExecutableMemoryError: Error, CustomStringConvertible {
    public let description: String
    init(_ call: String) { description = "\(call) failed: \(String(cString: strerror(errno)))" }
}

/// A fixed-size region of code memory with a bump allocator. `allocate` hands out writable space and the
/// address the same bytes have in the executable view; `reset` discards every allocation at once (the caller
/// must know no thread is running any of it, see docs/translator.md on epochs).
public final class ExecutableMemory {
    public let capacity: Int
    /// The read-write view: generated code is written here.
    public let writable: UnsafeMutableRawPointer
    /// The read-execute view of the same pages: generated code runs from here.
    public let executable: UnsafeRawPointer
    /// Bytes handed out so far (the bump pointer), always a multiple of `alignment`.
    public private(set) var used = 0
    public static let alignment = 16

    /// Maps `capacity` bytes (rounded up to whole pages) twice from one anonymous memfd.
    public init(capacity requested: Int) throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let size = max(page, (requested + page - 1) / page * page)
        let fd = try ExecutableMemory.makeMemfd(name: "rivet-jit")
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw ExecutableMemoryError("ftruncate") }
        guard let rw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), rw != MAP_FAILED else {
            throw ExecutableMemoryError("mmap (writable view)")
        }
        guard let rx = mmap(nil, size, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0), rx != MAP_FAILED else {
            let error = ExecutableMemoryError("mmap (executable view)")
            munmap(rw, size)
            throw error
        }
        capacity = size
        writable = rw
        executable = UnsafeRawPointer(rx)
    }

    deinit {
        munmap(writable, capacity)
        munmap(UnsafeMutableRawPointer(mutating: executable), capacity)
    }

    /// Reserves `size` bytes; nil when the region is full (the caller flushes with `reset` and retries).
    /// `alignment` (a power of two, at least `ExecutableMemory.alignment`) places the start further.
    public func allocate(_ size: Int, alignment: Int = ExecutableMemory.alignment) -> (offset: Int, writable: UnsafeMutableRawPointer, executable: UnsafeRawPointer)? {
        precondition(size >= 0 && alignment >= Self.alignment && alignment & (alignment - 1) == 0)
        let rounded = (size + Self.alignment - 1) & ~(Self.alignment - 1)
        let offset = (used + alignment - 1) & ~(alignment - 1)
        guard offset <= capacity, rounded <= capacity - offset else { return nil }
        used = offset + rounded
        return (offset, writable + offset, executable + offset)
    }

    /// Copies `bytes` into fresh space and returns their address in the executable view; nil when full.
    public func install(_ bytes: [UInt8]) -> UnsafeRawPointer? {
        guard let space = allocate(bytes.count) else { return nil }
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { space.writable.copyMemory(from: base, byteCount: source.count) }
        }
        // x86-64 keeps instruction fetch coherent with stores through any alias of the physical page.
        return space.executable
    }

    /// Forgets every allocation (the code cache flush) and hands the pages back to the host (a memfd's pages
    /// stay allocated until removed, so an idle guest's emptied cache would otherwise keep costing memory).
    public func reset() {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let bytes = min(capacity, (used + page - 1) / page * page)
        if bytes > 0 { _ = madvise(writable, bytes, MADV_REMOVE) }
        used = 0
    }

    /// glibc's memfd_create is not in Swift's Glibc module (it needs _GNU_SOURCE), so it is looked up by name.
    private static func makeMemfd(name: String) throws -> Int32 {
        typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memfd_create") else {
            // RTLD_DEFAULT is the null handle on glibc.
            throw ExecutableMemoryError("dlsym(memfd_create)")
        }
        let memfdCreate = unsafeBitCast(symbol, to: MemfdCreate.self)
        let mfdCloexec: UInt32 = 1
        let fd = memfdCreate(name, mfdCloexec)
        guard fd >= 0 else { throw ExecutableMemoryError("memfd_create") }
        return fd
    }
}
