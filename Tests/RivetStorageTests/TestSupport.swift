#if canImport(Glibc)
import Glibc
#endif
@testable import RivetStorage

/// A fresh temporary directory per test.
func makeTempDir(_ tag: String) -> String {
    var template = Array("/tmp/rivet-storage-\(tag)-XXXXXX".utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    return dir
}

func removeTree(_ dir: String) {
    if let d = opendir(dir) {
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { unlink(dir + "/" + name) }
        }
        closedir(d)
    }
    rmdir(dir)
}

func readAllBytes(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return out
}

func writeAllBytes(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    defer { close(fd) }
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

struct TestRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

func readDisk(_ d: BlockDevice) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: Int(d.size))
    try out.withUnsafeMutableBytes { try d.read(at: 0, into: $0) }
    return out
}

func be64(_ b: [UInt8], _ o: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v = v << 8 | UInt64(b[o + i]) }
    return v
}

func be32(_ b: [UInt8], _ o: Int) -> UInt32 { UInt32(truncatingIfNeeded: be64(b, o) >> 32) }

func putBE(_ b: inout [UInt8], _ o: Int, _ v: UInt64, _ width: Int) {
    for i in 0..<width where o + i < b.count { b[o + i] = UInt8(truncatingIfNeeded: v >> UInt64(8 * (width - 1 - i))) }
}
