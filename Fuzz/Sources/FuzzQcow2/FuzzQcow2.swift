#if canImport(Glibc)
import Glibc
#endif
import RivetStorage

/// The input is a qcow2 file. Opening, reading every cluster, walking extents and checking must end in a
/// value or a one-line StorageError naming the file: never a crash, a hang or a huge allocation.
let path: String = {
    let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    return "\(dir)/rivet-fuzz-qcow2-\(getpid()).img"
}()

func expectOneLine(_ e: StorageError) {
    if e.description.contains("\n") { fatalError("multi-line error: \(e.description)") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQcow2(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // Corruption lines are expected by the thousand here; still, each must be one line.
    storageDiagnosticSink = { line in if line.contains("\n") { fatalError("multi-line diagnostic: \(line)") } }
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { return 0 }
    _ = write(fd, data, size)
    close(fd)
    // Reader: open (no backing chain: a fuzzer's names point nowhere useful), read, map extents.
    do {
        let disk = try Qcow2Disk(path: path, readOnly: true, openBacking: false, l2CacheBytes: 1 << 16)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buf.deallocate() }
        var pos: UInt64 = 0
        var steps = 0
        while pos < disk.size && steps < 64 {
            let n = Int(min(UInt64(buf.count), disk.size - pos))
            do { try disk.read(at: pos, into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<n])) } catch let e as StorageError { expectOneLine(e) }
            let e = try disk.extent(at: pos, maxLength: 1 << 20)
            if e.length == 0 { fatalError("extent of length 0 at \(pos) inside a disk of \(disk.size)") }
            pos += max(e.length, UInt64(n))
            steps += 1
        }
    } catch let e as StorageError { expectOneLine(e) } catch { fatalError("unexpected error \(error)") }
    // Checker.
    do { _ = try Qcow2Disk.check(path: path) } catch let e as StorageError { expectOneLine(e) } catch {
        fatalError("unexpected error \(error)")
    }
    // Writer: a few writes, a discard and a flush where the input's last bytes say, then check again.
    var seed: UInt64 = size >= 8 ? UnsafeRawPointer(data + size - 8).loadUnaligned(as: UInt64.self) : 1
    func next() -> UInt64 { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return seed >> 11 }
    do {
        let disk = try Qcow2Disk(path: path, readOnly: false, openBacking: false, l2CacheBytes: 1 << 16)
        if disk.size > 0 {
            let chunk = [UInt8](repeating: 0xa5, count: 4096)
            for _ in 0..<4 {
                let n = Int(next() % 4096) + 1
                let off = next() % disk.size
                let len = min(UInt64(n), disk.size - off)
                do {
                    try chunk.withUnsafeBytes { try disk.write(at: off, from: UnsafeRawBufferPointer(rebasing: $0[0..<Int(len)])) }
                } catch let e as StorageError { expectOneLine(e) }
            }
            do { try disk.discard(at: 0, length: min(disk.size, 65536)) } catch let e as StorageError { expectOneLine(e) }
        }
        try disk.close()
        _ = try Qcow2Disk.check(path: path)
    } catch let e as StorageError { expectOneLine(e) } catch { fatalError("unexpected error \(error)") }
    return 0
}
