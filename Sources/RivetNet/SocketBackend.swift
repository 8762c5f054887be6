#if canImport(Glibc)
import Glibc
#endif

/// QEMU's `-netdev socket,listen=|connect=`: Ethernet frames over one TCP connection, each behind its
/// length as a 4-byte big-endian number. Two machines (Rivet or QEMU) joined this way share a link.
///
/// `listen` binds at once and accepts one peer at a time (a new peer may connect after the old one
/// left); `connect` connects at start-up and fails if nobody listens. Frames sent while no peer is
/// connected are dropped, as on an unplugged cable. The socket is non-blocking: a peer that stops reading
/// fills a bounded send buffer, after which frames are dropped instead of stalling the machine.
public final class SocketBackend: ThreadedBackend {
    public enum Mode { case listen, connect }

    private var listenFD: Int32 = -1
    private var peerFD: Int32 = -1
    private var receiveBuffer: [UInt8] = []
    private var sendBuffer: [UInt8] = []
    private var sendOffset = 0
    static let sendBufferLimit = 1 << 20
    static let readChunk = 65536

    public init(id: String, mode: Mode, host: String, port: UInt16) throws {
        try super.init(label: "netdev \(id) (socket)")
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        let bindHost = host.isEmpty ? (mode == .listen ? "0.0.0.0" : "127.0.0.1") : host
        guard inet_pton(AF_INET, bindHost, &address.sin_addr) == 1 else {
            throw NetworkError("\(label): '\(host)' is not an IPv4 address")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetworkError("\(label): socket: \(errnoText())") }
        let r: Int32 = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                if mode == .listen {
                    var one: Int32 = 1
                    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                    guard bind(fd, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 else { return -1 }
                    return listen(fd, 1)
                }
                return Glibc.connect(fd, sa, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard r == 0 else {
            let why = errnoText()
            close(fd)
            throw NetworkError("\(label): cannot \(mode == .listen ? "listen on" : "connect to") \(bindHost):\(port) (\(why))")
        }
        if mode == .listen { listenFD = fd } else { adopt(fd) }
    }

    private func adopt(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        peerFD = fd
        receiveBuffer.removeAll(keepingCapacity: true)
        sendBuffer.removeAll(keepingCapacity: true)
        sendOffset = 0
    }

    private func dropPeer() {
        if peerFD >= 0 { close(peerFD) }
        peerFD = -1
        receiveBuffer.removeAll()
        sendBuffer.removeAll()
        sendOffset = 0
    }

    override func closeResources() {
        dropPeer()
        if listenFD >= 0 { close(listenFD) }
        listenFD = -1
    }

    deinit { closeResources() }

    override func serve() {
        var chunk = [UInt8](repeating: 0, count: SocketBackend.readChunk)
        var fds: [pollfd] = []
        while !stopping {
            queueOutgoingFrames()
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            if peerFD >= 0 {
                let wantsOut = sendOffset < sendBuffer.count
                fds.append(pollfd(fd: peerFD, events: Int16(POLLIN) | (wantsOut ? Int16(POLLOUT) : 0), revents: 0))
            } else if listenFD >= 0 {
                fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0))
            }
            _ = pollFDs(&fds, timeoutMs: 1000)
            if fds[0].revents != 0 { drainWake() }
            guard fds.count > 1, fds[1].revents != 0 else { continue }
            if peerFD < 0 {
                let fd = accept(listenFD, nil, nil)
                if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC); adopt(fd) }
                continue
            }
            if fds[1].revents & Int16(POLLOUT) != 0 { flushSend() }
            if fds[1].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let n = chunk.withUnsafeMutableBytes { read(peerFD, $0.baseAddress, $0.count) }
                if n > 0 {
                    receiveBuffer.append(contentsOf: chunk[0..<n])
                    if !parseFrames() { dropPeer() }
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    dropPeer()
                }
            }
        }
    }

    /// Moves frames the guest sent into the send buffer (length-prefixed), dropping them while no peer is
    /// connected or the buffer is full; then writes what the socket takes.
    private func queueOutgoingFrames() {
        while let frame = outgoing.pop() {
            guard peerFD >= 0, sendBuffer.count - sendOffset + frame.count + 4 <= SocketBackend.sendBufferLimit else { continue }
            let n = UInt32(frame.count)
            sendBuffer.append(contentsOf: [UInt8(n >> 24), UInt8((n >> 16) & 255), UInt8((n >> 8) & 255), UInt8(n & 255)])
            sendBuffer.append(contentsOf: frame)
        }
        flushSend()
    }

    private func flushSend() {
        while peerFD >= 0 && sendOffset < sendBuffer.count {
            let n = sendBuffer.withUnsafeBytes { send(peerFD, $0.baseAddress! + sendOffset, $0.count - sendOffset, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sendOffset += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { break }
            dropPeer()
            return
        }
        if sendOffset == sendBuffer.count { sendBuffer.removeAll(keepingCapacity: true); sendOffset = 0 }
        else if sendOffset > 65536 { sendBuffer.removeFirst(sendOffset); sendOffset = 0 }
    }

    /// Splits complete frames off the receive buffer. False when the peer sent a length no Ethernet frame
    /// has (the stream cannot be trusted after that; the connection is closed).
    private func parseFrames() -> Bool {
        var at = 0
        while receiveBuffer.count - at >= 4 {
            let n = Int(receiveBuffer[at]) << 24 | Int(receiveBuffer[at + 1]) << 16 | Int(receiveBuffer[at + 2]) << 8 | Int(receiveBuffer[at + 3])
            guard n <= 65536 + 18 else {
                fputs("rivet: \(label): peer sent a frame length of \(n) bytes; closing the connection\n", stderr)
                return false
            }
            guard receiveBuffer.count - at - 4 >= n else { break }
            deliver(Array(receiveBuffer[(at + 4)..<(at + 4 + n)]))
            at += 4 + n
        }
        if at > 0 { receiveBuffer.removeFirst(at) }
        return true
    }
}
