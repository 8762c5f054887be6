#if canImport(Glibc)
import Glibc
#endif

/// A virtual disk: byte-addressed reads and writes of a fixed size.
/// Instances are not thread-safe: one caller (e.g. the virtio-blk device thread) at a time.
public protocol BlockDevice: AnyObject {
    var size: UInt64 { get }            // bytes
    var isReadOnly: Bool { get }
    /// offset+count must be <= size, else throws.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws
    /// fsync: data and metadata written so far are durable when this returns.
    func flush() throws
    /// Deallocates the range where possible; the range reads back as zeros afterwards.
    func discard(at offset: UInt64, length: UInt64) throws
}

public enum DiskFormat: String, Sendable { case raw, qcow2 }

/// One line that names the file and the problem; `code` is the host errno behind it (0 if none), so
/// error policies can tell a full disk (ENOSPC) from other failures.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public var code: Int32 = 0
    public init(_ description: String, code: Int32 = 0) {
        self.code = code
        // Keep the promise of a single line even when a path or message holds a newline.
        self.description = description.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ")
    }
}

/// What one layer of an image says about a range of guest bytes (for map, convert, commit).
public enum ExtentKind: Sendable { case data, zero, unallocated }

public struct Extent: Sendable {
    public var kind: ExtentKind
    public var length: UInt64
    /// Where the bytes live in this layer's file (data only, not for compressed clusters).
    public var hostOffset: UInt64?
    public var compressed: Bool
}

/// A block device backed by one image file, possibly on top of a backing device.
public protocol ImageLayer: BlockDevice {
    var path: String { get }
    var format: DiskFormat { get }
    var backingDevice: BlockDevice? { get }
    /// The longest run starting at `offset` (at most `maxLength` bytes, clipped to size) whose
    /// state in this layer alone is uniform.
    func extent(at offset: UInt64, maxLength: UInt64) throws -> Extent
}

/// Opens an image; format nil = probe (qcow2 magic, else raw). Backing files of qcow2 images are opened
/// read-only (their format from the header extension, else probed).
/// Every file is locked as QEMU locks it; `forceShare` (read-only only) takes no lock that refuses others.
/// `deferLocks`: open without taking the locks yet (a live-migration destination; see ImageLockHandover).
public func openDisk(path: String, format: DiskFormat?, readOnly: Bool, forceShare: Bool = false, deferLocks: Bool = false) throws -> BlockDevice {
    if forceShare && !readOnly { throw StorageError("\(path): force-share is only for read-only access") }
    var chain = OpenChain()
    chain.forceShare = forceShare
    chain.deferLocks = deferLocks
    return try openLayer(path: path, format: format, readOnly: readOnly, openBacking: true, chain: &chain)
}

/// Like openDisk, returning the layer type; `openBacking: false` skips the backing chain (check, info).
public func openImage(path: String, format: DiskFormat?, readOnly: Bool, openBacking: Bool = true, forceShare: Bool = false) throws -> ImageLayer {
    if forceShare && !readOnly { throw StorageError("\(path): force-share is only for read-only access") }
    var chain = OpenChain()
    chain.forceShare = forceShare
    return try openLayer(path: path, format: format, readOnly: readOnly, openBacking: openBacking, chain: &chain)
}

/// Reads the first bytes of a file and says whether it is qcow2.
public func probeFormat(path: String) throws -> DiskFormat {
    let f = try ImageFile(path: path, writable: false)
    var magic: UInt32 = 0
    let n = try withUnsafeMutableBytes(of: &magic) { try f.read(at: 0, into: $0) }
    return n == 4 && UInt32(bigEndian: magic) == qcow2Magic ? .qcow2 : .raw
}

/// Files already open in one backing chain, to refuse loops and absurd depths.
struct OpenChain {
    static let maxDepth = 256
    var seen: Set<String> = []
    var depth = 0
    /// Open every file of the chain without refusing others (qemu-img -U, force-share=on).
    var forceShare = false
    /// Open every file without taking its locks yet (ImageLockHandover.activateLocks takes them).
    var deferLocks = false
}

func openLayer(path: String, format: DiskFormat?, readOnly: Bool, openBacking: Bool, chain: inout OpenChain) throws -> ImageLayer {
    if chain.depth >= OpenChain.maxDepth {
        throw StorageError("\(path): backing chain deeper than \(OpenChain.maxDepth) images")
    }
    var st = stat()
    if stat(path, &st) != 0 {
        throw StorageError("\(path): cannot open: \(String(cString: strerror(errno)))")
    }
    let identity = "\(st.st_dev):\(st.st_ino)"
    if chain.seen.contains(identity) {
        throw StorageError("\(path): backing file loop (this file is already in the chain)")
    }
    chain.seen.insert(identity)
    chain.depth += 1
    defer { chain.depth -= 1 }
    let fmt = try format ?? probeFormat(path: path)
    switch fmt {
    case .raw: return try RawDisk(path: path, readOnly: readOnly, forceShare: chain.forceShare, deferLocks: chain.deferLocks)
    case .qcow2: return try Qcow2Disk(path: path, readOnly: readOnly, openBacking: openBacking, chain: &chain)
    }
}

/// Resolves a backing file name the way QEMU does: relative names are relative to the overlay's directory.
public func resolveBackingPath(_ name: String, relativeTo imagePath: String) -> String {
    if name.hasPrefix("/") { return name }
    guard let slash = imagePath.lastIndex(of: "/") else { return name }
    return String(imagePath[...slash]) + name
}

@inline(__always) func checkRange(_ path: String, _ offset: UInt64, _ count: Int, _ size: UInt64) throws {
    let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
    if overflow || end > size {
        throw StorageError("\(path): access at offset \(offset) length \(count) is beyond the disk size \(size)")
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

/// Where storage problems found during I/O are reported (one line each): stderr unless replaced.
nonisolated(unsafe) public var storageDiagnosticSink: (String) -> Void = { line in
    let text = "rivet: " + line.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ") + "\n"
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
}

func storageDiagnostic(_ line: String) { storageDiagnosticSink(line) }
