#if canImport(Glibc)
import Glibc
#endif

/// Creates a new, empty qcow2 overlay whose backing file is `basePath` (a disk snapshot: later writes go to
/// the overlay, the base stays as it is). The base's format is probed and recorded; the stored name is
/// relative when both files share a directory, else absolute. Refuses to replace an existing file.
public func createOverlay(basePath: String, overlayPath: String, clusterSize: Int = 65536) throws {
    let base = try openDisk(path: basePath, format: nil, readOnly: true)
    if access(overlayPath, F_OK) == 0 { throw StorageError("\(overlayPath): already exists") }
    var opts = Qcow2CreateOptions()
    opts.clusterSize = clusterSize
    opts.backingFormat = try probeFormat(path: basePath)
    opts.backingFile = backingName(for: basePath, overlay: overlayPath)
    try Qcow2Disk.create(path: overlayPath, size: base.size, options: opts)
}

/// The backing name to store in `overlay` for `base`.
func backingName(for base: String, overlay: String) -> String {
    func directory(_ p: String) -> String {
        guard let i = p.lastIndex(of: "/") else { return "." }
        return i == p.startIndex ? "/" : String(p[..<i])
    }
    func real(_ p: String) -> String? {
        guard let r = realpath(p, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }
    guard let baseReal = real(base), let overlayDir = real(directory(overlay)) else { return base }
    if directory(baseReal) == overlayDir, let slash = baseReal.lastIndex(of: "/") {
        return String(baseReal[baseReal.index(after: slash)...])
    }
    return baseReal
}
