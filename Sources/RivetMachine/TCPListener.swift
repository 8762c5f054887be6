#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 socket address for a dotted-quad `host` ("localhost" is 127.0.0.1); nil if it is not one.
public func ipv4SocketAddress(host: String, port: UInt16) -> sockaddr_in? {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else { return nil }
    return address
}

/// A listening TCP socket (close-on-exec, SO_REUSEADDR) for the management, debug and migration servers.
/// The error's text is the cause alone; callers name the option or address in their own message.
public func listenTCP(_ address: sockaddr_in, backlog: Int32) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw MachineError("socket failed: \(String(cString: strerror(errno)))") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(4))
    var a = address
    let rc = withUnsafePointer(to: &a) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0, listen(fd, backlog) == 0 else {
        let e = String(cString: strerror(errno)); close(fd)
        throw MachineError(e)
    }
    return fd
}
