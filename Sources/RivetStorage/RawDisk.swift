#if canImport(Glibc)
import Glibc
#endif

/// A raw image: guest byte N is file byte N.
public final class RawDisk: ImageLayer {
    let file: ImageFile
    public let size: UInt64
    public let isReadOnly: Bool
    public var path: String { file.path }
    public var format: DiskFormat { .raw }
    public var backingDevice: BlockDevice? { nil }

    public init(path: String, readOnly: Bool, forceShare: Bool = false, deferLocks: Bool = false) throws {
        file = try ImageFile(path: path, writable: !readOnly,
                             lock: .forImage(writable: !readOnly, metadata: false, forceShare: forceShare),
                             deferLock: deferLocks)
        size = file.length
        isReadOnly = readOnly
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(path, offset, buffer.count, size)
        let n = try file.read(at: offset, into: buffer)
        // The file may have been shortened behind our back: missing bytes read as zeros.
        if n < buffer.count { memset(buffer.baseAddress! + n, 0, buffer.count - n) }
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        if isReadOnly { throw StorageError("\(path): image is open read-only") }
        try checkRange(path, offset, buffer.count, size)
        try file.write(at: offset, from: buffer)
    }

    public func flush() throws {
        if !isReadOnly { try file.sync() }
    }

    public func discard(at offset: UInt64, length: UInt64) throws {
        if isReadOnly { throw StorageError("\(path): image is open read-only") }
        guard length > 0 else { return }
        guard length <= size, offset <= size - length else {
            throw StorageError("\(path): discard at offset \(offset) length \(length) is beyond the disk size \(size)")
        }
        // Punch a hole; where the file system cannot, write zeros so the range still reads as zeros.
        if let punch = fallocateFunction, punch(file.fd, 0x02 | 0x01 /* PUNCH_HOLE | KEEP_SIZE */, off_t(offset), off_t(length)) == 0 { return }
        let chunk = 1 << 20
        let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { zeros.deallocate() }
        memset(zeros.baseAddress!, 0, chunk)
        var pos = offset
        while pos < offset + length {
            let n = Int(min(UInt64(chunk), offset + length - pos))
            try file.write(at: pos, from: UnsafeRawBufferPointer(rebasing: zeros[0..<n]))
            pos += UInt64(n)
        }
    }

    public func extent(at offset: UInt64, maxLength: UInt64) throws -> Extent {
        let end = min(size, offset + maxLength)
        guard offset < end else { return Extent(kind: .zero, length: 0, hostOffset: nil, compressed: false) }
        // seekData/seekHole tell holes (sparse files) from data.
        let data = lseek(file.fd, off_t(offset), seekData)
        if data < 0 {
            if errno == ENXIO { return Extent(kind: .zero, length: end - offset, hostOffset: nil, compressed: false) }
            return Extent(kind: .data, length: end - offset, hostOffset: offset, compressed: false)
        }
        if UInt64(data) > offset {
            return Extent(kind: .zero, length: min(UInt64(data), end) - offset, hostOffset: nil, compressed: false)
        }
        let hole = lseek(file.fd, off_t(offset), seekHole)
        let stop = hole < 0 ? end : min(end, UInt64(hole))
        return Extent(kind: .data, length: max(stop, offset + 1) - offset, hostOffset: offset, compressed: false)
    }

    /// Creates (or truncates) a raw image of the given size.
    public static func create(path: String, size: UInt64) throws {
        guard size <= maxImageSize else { throw StorageError("\(path): size \(size) is too large (must be below 8 EiB)") }
        let f = try ImageFile(path: path, writable: true, create: true,
                              lock: .forImage(writable: true, metadata: false, forceShare: false))
        try f.truncate(to: size)
        try f.sync()
    }
}

// Linux values; Glibc's module map hides these GNU extensions from Swift.
let seekData: Int32 = 3
let seekHole: Int32 = 4
typealias FallocateFunction = @convention(c) (Int32, Int32, off_t, off_t) -> Int32
/// fallocate(2) looked up at run time, since the Glibc module does not export it.
let fallocateFunction: FallocateFunction? = {
    guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "fallocate") else { return nil }
    return unsafeBitCast(sym, to: FallocateFunction.self)
}()
