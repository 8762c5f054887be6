#if canImport(Glibc)
import Glibc
#endif
import RivetMemory

/// Reads a whole file (bounded to 4 GiB).
func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw CLIError("\(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw CLIError("\(path): cannot stat: \(String(cString: strerror(errno)))") }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw CLIError("\(path): is a directory, not a file") }
    let size = Int(st.st_size)
    guard size >= 0, size <= (1 << 32) else { throw CLIError("\(path): file too large") }
    var buffer = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw CLIError("\(path): read error: \(String(cString: strerror(errno)))") }
        guard n > 0 else { throw CLIError("\(path): file shrank while being read") }
        done += n
    }
    return buffer
}

enum VirtualClockHost {
    static func now() -> UInt64 { VirtualClock.hostNanoseconds() }
}

enum ProcessInfoLite {
    static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }
}

/// Formats a number with a fixed count of decimals (no Foundation).
func fixed(_ v: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let r = (v * scale).rounded() / scale
    var s = "\(r)"
    if let dot = s.firstIndex(of: ".") {
        let have = s.distance(from: dot, to: s.endIndex) - 1
        if have < decimals { s += String(repeating: "0", count: decimals - have) }
    } else if decimals > 0 { s += "." + String(repeating: "0", count: decimals) }
    return s
}
