#if canImport(Glibc)
import Glibc
#endif

/// A file as the kernel knows it (device and inode), whatever path names it.
public struct FileIdentity: Hashable, Sendable {
    public let device: UInt64
    public let inode: UInt64

    /// nil when the file does not exist (or cannot be examined).
    public init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}

/// The layer of `top`'s opened chain (top included) that is the file at `path`, if any.
public func chainLayer(_ top: BlockDevice, containing path: String) -> ImageLayer? {
    guard let target = FileIdentity(path: path) else { return nil }
    var layer = top as? ImageLayer
    while let l = layer {
        if FileIdentity(path: l.path) == target { return l }
        layer = l.backingDevice as? ImageLayer
    }
    return nil
}

/// Refuses to make `image` use `backing` (already opened with its chain) when that would make the image its
/// own backing file, directly or through the chain: writing such an image would destroy its data.
public func refuseBackingLoop(image: String, backingPath: String, backing: BlockDevice) throws {
    if let a = FileIdentity(path: image), a == FileIdentity(path: backingPath) {
        throw StorageError("\(image): the backing file \(backingPath) is this image itself")
    }
    if let l = chainLayer(backing, containing: image) {
        throw StorageError("\(image): the backing file \(backingPath) would make a loop: its chain contains this image (as \(l.path))")
    }
}

/// Largest image size any command accepts: file offsets are signed 64-bit (off_t), as in QEMU.
public let maxImageSize = UInt64(Int64.max)
