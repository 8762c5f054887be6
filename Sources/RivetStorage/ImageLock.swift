#if canImport(Glibc)
import Glibc
#endif

/// QEMU's block permission bits (include/block/block-common.h). QEMU's file-posix driver locks one byte
/// per bit: offset 100+bit for each permission an open uses, 200+bit for each it refuses to share.
/// Taking the same bytes the same way makes Rivet and QEMU's tools exclude each other.
public struct ImagePermissions: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let consistentRead = ImagePermissions(rawValue: 1 << 0)
    public static let write = ImagePermissions(rawValue: 1 << 1)
    public static let writeUnchanged = ImagePermissions(rawValue: 1 << 2)
    public static let resize = ImagePermissions(rawValue: 1 << 3)
    static let all: [(ImagePermissions, Int, String)] = [
        (.consistentRead, 0, "consistent read"), (.write, 1, "write"),
        (.writeUnchanged, 2, "write unchanged"), (.resize, 3, "resize"),
    ]
}

/// What one open of an image file uses and what it refuses to share with other opens.
public struct ImageLockRequest: Sendable, Equatable {
    public var uses: ImagePermissions
    public var refuses: ImagePermissions

    public static func == (a: Self, b: Self) -> Bool { a.uses == b.uses && a.refuses == b.refuses }

    /// The permissions QEMU takes for a disk of this kind (measured on qemu-system 7.2 via /proc/locks):
    /// a writer uses read+write (+resize for qcow2, whose metadata grows the file) and refuses other
    /// writers (and resizers); a reader refuses writers too, since its view would change under it;
    /// force-share (`-U`) refuses nothing.
    public static func forImage(writable: Bool, metadata: Bool, forceShare: Bool) -> ImageLockRequest {
        if forceShare && !writable { return ImageLockRequest(uses: .consistentRead, refuses: []) }
        var uses: ImagePermissions = .consistentRead
        var refuses: ImagePermissions = .write
        if writable { uses.insert(.write) }
        if metadata {
            refuses.insert(.resize)
            if writable { uses.insert(.resize) }
        }
        return ImageLockRequest(uses: uses, refuses: refuses)
    }
}

/// Byte offsets of QEMU's lock bytes (block/file-posix.c: RAW_LOCK_PERM_BASE, RAW_LOCK_SHARED_BASE).
let lockPermissionBase: Int64 = 100
let lockSharedBase: Int64 = 200
let fcntlOFDGetLock: Int32 = 36   // F_OFD_GETLK
let fcntlOFDSetLock: Int32 = 37   // F_OFD_SETLK

/// Takes QEMU-compatible locks on `fd` (an open file description of its own), then checks no other
/// open conflicts. Throws a one-line error naming the image when one does. Locks last until fd is closed.
func applyImageLock(fd: Int32, path: String, request: ImageLockRequest) throws {
    // Lock first, then check, as QEMU does: two opens racing each see the other's bytes.
    for (perm, bit, _) in ImagePermissions.all {
        if request.uses.contains(perm) { try lockByte(fd, path, lockPermissionBase + Int64(bit)) }
        if request.refuses.contains(perm) { try lockByte(fd, path, lockSharedBase + Int64(bit)) }
    }
    for (perm, bit, name) in ImagePermissions.all {
        // Something we use must not be refused by another open...
        if request.uses.contains(perm), try byteHeldByOther(fd, path, lockSharedBase + Int64(bit)) {
            throw imageInUse(path, "cannot get the \"\(name)\" lock: another open refuses to share it")
        }
        // ...and something another open uses must not be one we refuse.
        if request.refuses.contains(perm), try byteHeldByOther(fd, path, lockPermissionBase + Int64(bit)) {
            throw imageInUse(path, "cannot get the shared \"\(name)\" lock: another open uses it")
        }
    }
}

/// Drops every lock byte this open file description holds.
func releaseImageLock(fd: Int32) {
    for base in [lockPermissionBase, lockSharedBase] {
        var fl = lockRange(F_UNLCK, base, length: 4)
        while fcntl(fd, fcntlOFDSetLock, &fl) != 0 && errno == EINTR {}
    }
}

/// Image locks handed over between two processes that open the same images (live migration): the
/// destination opens without locks and activates them when it takes over; the source releases them at
/// switch-over and takes them back if the migration fails.
public protocol ImageLockHandover {
    func activateLocks() throws
    func releaseLocks()
}

extension RawDisk: ImageLockHandover {
    public func activateLocks() throws { try file.activateLock() }
    public func releaseLocks() { file.releaseLock() }
}

extension Qcow2Disk: ImageLockHandover {
    public func activateLocks() throws {
        try file.activateLock()
        try (backingDevice as? ImageLockHandover)?.activateLocks()
    }
    public func releaseLocks() {
        file.releaseLock()
        (backingDevice as? ImageLockHandover)?.releaseLocks()
    }
}

func imageInUse(_ path: String, _ detail: String) -> StorageError {
    StorageError("\(path): image is in use by another process (\(detail)); for read-only access despite this use readonly,force-share=on (rivet run) or -U (rivet img)")
}

/// An OFD lock request of `type` on `length` bytes from `offset` (l_pid must be 0 for OFD locks).
private func lockRange(_ type: Int32, _ offset: Int64, length: Int64 = 1) -> flock {
    var fl = flock()
    fl.l_type = Int16(type)
    fl.l_whence = Int16(SEEK_SET)
    fl.l_start = off_t(offset)
    fl.l_len = off_t(length)
    fl.l_pid = 0
    return fl
}

private func lockByte(_ fd: Int32, _ path: String, _ offset: Int64) throws {
    var fl = lockRange(F_RDLCK, offset)
    while fcntl(fd, fcntlOFDSetLock, &fl) != 0 {
        if errno == EINTR { continue }
        if errno == EAGAIN || errno == EACCES {
            throw imageInUse(path, "byte \(offset) is locked exclusively")
        }
        // File systems without OFD locks (QEMU warns and goes on unlocked there too).
        if errno == EINVAL || errno == ENOLCK || errno == EOPNOTSUPP { return }
        throw StorageError("\(path): cannot lock byte \(offset): \(errnoText())")
    }
}

/// Whether an open file description other than `fd`'s holds any lock on the byte at `offset`.
private func byteHeldByOther(_ fd: Int32, _ path: String, _ offset: Int64) throws -> Bool {
    var fl = lockRange(F_WRLCK, offset)
    while fcntl(fd, fcntlOFDGetLock, &fl) != 0 {
        if errno == EINTR { continue }
        if errno == EINVAL || errno == ENOLCK || errno == EOPNOTSUPP { return false }
        throw StorageError("\(path): cannot test lock byte \(offset): \(errnoText())")
    }
    return fl.l_type != Int16(F_UNLCK)
}
