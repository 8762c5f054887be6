#if canImport(Glibc)
import Glibc
#endif

/// `--netdev tap,ifname=NAME`: frames go to and come from a host tap device (an existing one, e.g. made
/// with `ip tuntap add NAME mode tap`, or a new one if the process may create it). The host side is
/// configured with the host's own tools (addresses, bridges); Rivet runs no scripts.
public final class TapBackend: ThreadedBackend {
    private var tapFD: Int32 = -1
    public let interfaceName: String

    // <linux/if_tun.h>
    static let tunSetInterface: UInt = 0x4004_54ca   // TUNSETIFF
    static let flagTap: Int16 = 0x0002               // IFF_TAP
    static let flagNoPacketInfo: Int16 = 0x1000      // IFF_NO_PI
    static let interfaceNameSize = 16                // IFNAMSIZ

    public init(id: String, interfaceName: String) throws {
        self.interfaceName = interfaceName
        try super.init(label: "netdev \(id) (tap)")
        guard !interfaceName.isEmpty, interfaceName.utf8.count < TapBackend.interfaceNameSize else {
            throw NetworkError("\(label): ifname '\(interfaceName)' must be 1 to \(TapBackend.interfaceNameSize - 1) bytes")
        }
        let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw NetworkError("\(label): cannot open /dev/net/tun (\(errnoText()))") }
        // struct ifreq: the name (16 bytes), then ifr_flags (a short) at the start of the union.
        var request = [UInt8](repeating: 0, count: 40)
        for (i, b) in interfaceName.utf8.enumerated() { request[i] = b }
        let flags = TapBackend.flagTap | TapBackend.flagNoPacketInfo
        request[16] = UInt8(truncatingIfNeeded: flags)
        request[17] = UInt8(truncatingIfNeeded: flags >> 8)
        let r = request.withUnsafeMutableBytes { ioctl(fd, TapBackend.tunSetInterface, $0.baseAddress!) }
        guard r == 0 else {
            let why = errnoText()
            close(fd)
            throw NetworkError("\(label): cannot attach to tap device '\(interfaceName)' (\(why))")
        }
        tapFD = fd
    }

    override func closeResources() {
        if tapFD >= 0 { close(tapFD) }
        tapFD = -1
    }

    deinit { closeResources() }

    override func serve() {
        var buffer = [UInt8](repeating: 0, count: 65536 + 18)
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0), pollfd(fd: tapFD, events: Int16(POLLIN), revents: 0)]
        while !stopping {
            while let frame = outgoing.pop() {
                // A full tap queue drops the frame, as a busy link would.
                _ = frame.withUnsafeBytes { write(tapFD, $0.baseAddress, $0.count) }
            }
            fds[0].revents = 0; fds[1].revents = 0
            _ = pollFDs(&fds, timeoutMs: 1000)
            if fds[0].revents != 0 { drainWake() }
            if fds[1].revents & Int16(POLLIN) != 0 {
                // Each read returns one frame; take a bounded batch so the guest's frames are not starved.
                for _ in 0..<64 {
                    let n = buffer.withUnsafeMutableBytes { read(tapFD, $0.baseAddress, $0.count) }
                    guard n > 0 else { break }
                    deliver(Array(buffer[0..<n]))
                }
            } else if fds[1].revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                // The device went away (deleted): wait for shutdown without spinning.
                fds[1].fd = -1
            }
        }
    }
}
