#if canImport(Glibc)
import Glibc
#endif

/// What reaches an image file, for tests that simulate power loss by replaying a prefix of these events.
enum ImageIOEvent {
    case write(offset: UInt64, data: [UInt8])
    case sync
    case truncate(size: UInt64)
}

/// One open image file, accessed with pread/pwrite (no FileHandle on the I/O path).
final class ImageFile {
    let path: String
    private(set) var fd: Int32
    let writable: Bool
    /// File length, kept current as writes extend the file.
    private(set) var length: UInt64
    /// Test hook (nil in normal use): sees every write, fsync and truncate of this file, in order.
    var observer: ((ImageIOEvent) -> Void)? = nil
    /// The locks this open takes (nil: none) and whether it holds them now. A migration destination opens
    /// its images without them and takes them when the stream is complete; the source gives them up at
    /// switch-over (QEMU inactivates images the same way).
    let lockRequest: ImageLockRequest?
    private(set) var lockHeld = false

    /// `lock`: QEMU-compatible locks to hold while open (nil: none, e.g. for probing the format).
    /// `create` empties the file, but only after the lock is held: an image in use is never truncated.
    init(path: String, writable: Bool, create: Bool = false, lock: ImageLockRequest? = nil, deferLock: Bool = false) throws {
        var flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC
        if create { flags |= O_CREAT }
        let fd = Glibc.open(path, flags, 0o644)
        if fd < 0 { throw StorageError("\(path): cannot open: \(errnoText())") }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let msg = errnoText(); Glibc.close(fd)
            throw StorageError("\(path): cannot stat: \(msg)")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            Glibc.close(fd)
            throw StorageError("\(path): is a directory")
        }
        if let lock, !deferLock {
            do { try applyImageLock(fd: fd, path: path, request: lock) } catch { Glibc.close(fd); throw error }
        }
        if create && ftruncate(fd, 0) != 0 {
            let msg = errnoText(); Glibc.close(fd)
            throw StorageError("\(path): cannot empty the file: \(msg)")
        }
        let end = lseek(fd, 0, SEEK_END)
        self.path = path
        self.fd = fd
        self.writable = writable
        self.length = end > 0 ? UInt64(end) : 0
        self.lockRequest = lock
        self.lockHeld = lock != nil && !deferLock
    }

    /// Takes this open's locks if it does not hold them (a migration destination, once the stream is whole).
    func activateLock() throws {
        guard let request = lockRequest, !lockHeld, fd >= 0 else { return }
        do { try applyImageLock(fd: fd, path: path, request: request) } catch {
            releaseImageLock(fd: fd)
            throw error
        }
        lockHeld = true
    }

    /// Gives up this open's locks while keeping the file open (a migration source at switch-over).
    func releaseLock() {
        guard lockHeld, fd >= 0 else { return }
        releaseImageLock(fd: fd)
        lockHeld = false
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Closes the file now (releasing its locks); later I/O fails with EBADF.
    func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }

    /// Reads up to buffer.count bytes; returns how many were read (fewer only at end of file).
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        guard offset <= UInt64(Int64.max) - UInt64(buffer.count) else {
            throw StorageError("\(path): read offset \(hex(offset)) out of range")
        }
        var done = 0
        while done < buffer.count {
            let n = pread(fd, base + done, buffer.count - done, off_t(offset + UInt64(done)))
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                throw StorageError("\(path): read at offset \(hex(offset)) failed: \(errnoText())", code: code)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads exactly buffer.count bytes or fails naming `what`.
    func readExact(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, what: String) throws {
        let n = try read(at: offset, into: buffer)
        if n != buffer.count {
            throw StorageError("\(path): \(what) at offset \(hex(offset)) runs past the end of the file")
        }
    }

    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        guard offset <= UInt64(Int64.max) - UInt64(buffer.count) else {
            throw StorageError("\(path): write offset \(hex(offset)) out of range")
        }
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, base + done, buffer.count - done, off_t(offset + UInt64(done)))
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                throw StorageError("\(path): write at offset \(hex(offset)) failed: \(errnoText())", code: code)
            }
            done += n
        }
        length = max(length, offset + UInt64(buffer.count))
        if let observe = observer { observe(.write(offset: offset, data: Array(buffer))) }
    }

    func sync() throws {
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            let code = errno
            throw StorageError("\(path): fsync failed: \(errnoText())", code: code)
        }
        if let observe = observer { observe(.sync) }
    }

    func truncate(to size: UInt64) throws {
        guard size <= UInt64(Int64.max) else { throw StorageError("\(path): file size \(size) out of range") }
        if ftruncate(fd, off_t(size)) != 0 {
            let code = errno
            throw StorageError("\(path): cannot set file size to \(size): \(errnoText())", code: code)
        }
        length = size
        if let observe = observer { observe(.truncate(size: size)) }
    }

    /// Space the file occupies on disk (st_blocks), for `info`'s disk size.
    func allocatedBytes() -> UInt64 {
        var st = stat()
        return fstat(fd, &st) == 0 ? UInt64(st.st_blocks) * 512 : 0
    }
}

@inline(__always) func loadBE64(_ p: UnsafeRawPointer, _ o: Int) -> UInt64 {
    UInt64(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self))
}
@inline(__always) func loadBE32(_ p: UnsafeRawPointer, _ o: Int) -> UInt32 {
    UInt32(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self))
}
@inline(__always) func loadBE16(_ p: UnsafeRawPointer, _ o: Int) -> UInt16 {
    UInt16(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self))
}
@inline(__always) func storeBE64(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt64) {
    p.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt64.self)
}
@inline(__always) func storeBE32(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt32) {
    p.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt32.self)
}
@inline(__always) func storeBE16(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt16) {
    p.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt16.self)
}
