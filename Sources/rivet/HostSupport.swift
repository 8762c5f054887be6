#if canImport(Glibc)
import Glibc
#endif
import RivetMemory
import RivetKit

/// Reads a whole file (bounded to 4 GiB).
func readFile(_ path: String) throws -> [UInt8] { try readWholeFile(path) }

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
