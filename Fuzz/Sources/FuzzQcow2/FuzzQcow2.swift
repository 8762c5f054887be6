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
    return 0
}
